"""``python -m eyescreen_desktop`` runs the ``eyescreen`` command."""

from .cli import main

raise SystemExit(main())
