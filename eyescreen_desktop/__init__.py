"""EyeScreen Desktop: an offline diabetic-retinopathy screening workstation."""

__version__ = "0.1.0"
