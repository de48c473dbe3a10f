"""Entry script of the bundled ``eyescreen`` command (PyInstaller needs a file)."""

from eyescreen_desktop.cli import main

raise SystemExit(main())
