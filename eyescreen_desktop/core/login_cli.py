"""``eyescreen login --user NAME``: sign in for the command line (issue 21).

The session token goes to ``sessions/<SHA-256 of the database URL>`` (0600) in
the data folder in force (:mod:`.signin`); it expires after 8 hours.
"""

from __future__ import annotations

import argparse

from . import signin
from .paths import data_paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``eyescreen login``."""
    signin.add_arguments(parser, token_file=False)
    parser.add_argument("--user", required=True, metavar="NAME", help="your account's name")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from one line of input")


def run(args: argparse.Namespace) -> int:
    """Sign in and keep the session; 1 for a wrong password or a locked account."""
    from .store import ClinicStore, StoreError

    paths = data_paths(args.data_dir)
    try:
        with ClinicStore.open(paths, args.database) as store:
            if not store.has_accounts():
                print(f"eyescreen login: {store.where} has no accounts, so nobody signs in: "
                      "eyescreen users add NAME --role admin starts them")
                return signin.DONE
            store.sign_in(args.user, signin.read_password(args.password_stdin))
            signin.write_session(signin.session_file(paths, store.url), store.start_session())
    except (StoreError, ValueError, OSError) as exc:
        return signin.refuse("login", exc)
    print(f"signed in as {args.user} for 8 hours on {store.where}")
    return signin.DONE
