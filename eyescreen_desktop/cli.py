"""The ``eyescreen`` command.

Each sub-command lives in the module that owns its work and exposes two
functions: ``add_arguments(parser)`` and ``run(args) -> int``. They are imported
only when that sub-command is chosen, so ``eyescreen --help`` is instant and
never imports TensorFlow or Qt. This module never imports ``gui`` except for
``eyescreen gui``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from typing import Sequence

from . import __version__

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "screen": ("eyescreen_desktop.core.batch_cli", "screen image files or folders into the clinic queues"),
    "report": ("eyescreen_desktop.core.export_cli", "export patients' documents, queues (CSV) or FHIR from the clinic database"),
    "train": ("eyescreen_desktop.training.train", "train a grading model by transfer learning"),
    "train-external": ("eyescreen_desktop.training.external",
                       "train the external-eye check (eye photographs and selfies) by transfer learning"),
    "train-gate": ("eyescreen_desktop.training.gate", "train the learned gate (modality, photo quality, familiarity)"),
    "evaluate": ("eyescreen_desktop.training.evaluate", "evaluate a model on labelled photographs"),
    "grades": ("eyescreen_desktop.core.grades_cli",
               "import a reading centre's grades, or export the photographs that need grading"),
    "calibrate": ("eyescreen_desktop.core.calibrate_cli",
                  "choose this clinic's operating point on its own graded photographs"),
    "login": ("eyescreen_desktop.core.login_cli", "sign in for the command line (a session of 8 hours)"),
    "logout": ("eyescreen_desktop.core.logout_cli", "end the command line's session"),
    "users": ("eyescreen_desktop.core.users_cli", "add, disable, reset and list the clinic's accounts"),
    "audit": ("eyescreen_desktop.core.audit_cli", "verify the audit log's hash chain or export it (CSV)"),
    "bench": ("eyescreen_desktop.bench", "measure screening speed and memory"),
    "gui": ("eyescreen_desktop.gui.app", "open the desktop window"),
}
# Commands that need the `train` extra: a clinic's install and the desktop bundle
# screen with ONNX Runtime and carry no TensorFlow.
NEEDS_TRAIN_EXTRA: dict[str, tuple[str, ...]] = {
    "train": ("tensorflow", "keras"),
    "evaluate": ("tensorflow", "keras", "matplotlib"),
    "train-external": ("tensorflow", "keras"),
    "train-gate": ("tensorflow", "keras", "scipy"),
}
TRAIN_EXTRA = "pip install 'eyescreen-desktop[train]'"
# Commands whose modules the desktop bundle leaves out (packaging/eyescreen.spec): they run
# from a source checkout, with the `train` extra
NOT_IN_BUNDLE: dict[str, str] = {"bench": "measure screening speed"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; ``command`` pulls in that one command's arguments."""
    parser = argparse.ArgumentParser(
        prog="eyescreen",
        description="EyeScreen: offline diabetic-retinopathy screening. A screening aid, not a diagnosis.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eyescreen`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _chosen_command(argv)
    if command is not None and (refusal := not_installed(command)):
        print(refusal, file=sys.stderr)   # before its module is imported: the bundle has none
        return 2
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if missing := missing_modules(NEEDS_TRAIN_EXTRA.get(args.command, ())):
        print(needs_extra(args.command, missing), file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: what was finished is saved; run the same command again to continue", file=sys.stderr)
        return 130


def needs_extra(command: str, missing: Sequence[str]) -> str:
    """What to install for a training command (``missing``: the packages it lacks)."""
    return (f"eyescreen {command} needs {', '.join(missing)}, which this installation does not have: "
            f"training is an extra, install it with  {TRAIN_EXTRA}  (the desktop bundle only screens; "
            "train from a source checkout)")


def not_installed(command: str) -> str:
    """Why ``command`` cannot run here when its own module is not in this installation
    (the desktop bundle leaves training/ and bench.py out), else ''. Checked before the
    module is imported, so the bundle says what to install instead of a traceback."""
    if not missing_modules((COMMANDS[command][0],)):
        return ""
    if command in NEEDS_TRAIN_EXTRA:
        return needs_extra(command, missing_modules(NEEDS_TRAIN_EXTRA[command]) or NEEDS_TRAIN_EXTRA[command])
    return (f"eyescreen {command} ({NOT_IN_BUNDLE.get(command, command)}) is not part of this installation: "
            f"the desktop bundle only screens; run it from a source checkout with  {TRAIN_EXTRA}")


def missing_modules(names: Sequence[str]) -> list[str]:
    """Those of ``names`` that cannot be imported, found without importing them
    (TensorFlow costs seconds)."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def gui_main() -> int:
    """Entry point of the ``eyescreen-desktop`` GUI script."""
    return main(["gui", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
