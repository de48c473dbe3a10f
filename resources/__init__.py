"""Icons, fonts, stylesheet and report logo, installed as the data package
``eyescreen_desktop.resources`` (pyproject.toml maps this folder); find them
through ``eyescreen_desktop.core.paths.resources_dir()``, never by path."""
