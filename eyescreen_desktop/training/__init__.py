"""Transfer learning, evaluation and model export (TensorFlow is imported here, lazily)."""
