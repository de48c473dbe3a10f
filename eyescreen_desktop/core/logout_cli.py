"""``eyescreen logout``: end the command line's session on this database (issue 21);
without one it does nothing and exits 0."""

from __future__ import annotations

import argparse

from . import signin
from .paths import data_paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``eyescreen logout``."""
    signin.add_arguments(parser, token_file=False)


def run(args: argparse.Namespace) -> int:
    """End the session in the database and remove its file."""
    from .store import ClinicStore, StoreError

    paths = data_paths(args.data_dir)
    try:
        with ClinicStore.open(paths, args.database) as store:
            path = signin.session_file(paths, store.url)
            if not path.is_file():
                print("not signed in")
                return signin.DONE
            store.end_session(path.read_text(encoding="utf-8"))
            path.unlink()
    except (StoreError, OSError) as exc:
        return signin.refuse("logout", exc)
    print("signed out")
    return signin.DONE
