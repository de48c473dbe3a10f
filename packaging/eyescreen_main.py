"""Entry script of both bundled programs (PyInstaller needs a file): started as
``eyescreen-desktop`` it opens the window, as ``eyescreen`` it is the command line.

On Linux the bundle has one executable, ``eyescreen``, and ``eyescreen-desktop``
is a symbolic link to it (one copy of the bootloader and the compressed Python
modules instead of two); on Windows and macOS they are two executables (the
window has no console there). Either way the name it was started by decides.
"""

import os
import sys

from eyescreen_desktop.cli import gui_main, main

WINDOW = os.path.basename(sys.argv[0]).lower().startswith("eyescreen-desktop")
raise SystemExit(gui_main() if WINDOW else main())
