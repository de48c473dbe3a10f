"""PyInstaller: the checkout's resources/ and models/ are the subpackages
eyescreen_desktop.resources and eyescreen_desktop.models (pyproject.toml maps
them; the editable install's finder does it at run time). PyInstaller's module
graph does not run that finder, so let it search the checkout root too."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def pre_safe_import_module(api):
    api.append_package_path(str(ROOT))
