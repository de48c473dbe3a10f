"""The shipped models, installed as the data package ``eyescreen_desktop.models``
(pyproject.toml maps this folder; only what screening reads is packaged); find
them through ``eyescreen_desktop.core.paths.models_dir()``, never by path."""
