"""Entry script of the bundled ``eyescreen-desktop`` window (PyInstaller needs a file)."""

from eyescreen_desktop.cli import gui_main

raise SystemExit(gui_main())
