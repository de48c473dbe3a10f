"""``eyescreen users add|disable|reset|list|token``: the clinic's accounts (issue 21).

The first ``users add NAME --role admin`` on a database without accounts needs no
sign-in and starts accounts; after that an admin, signed in (``eyescreen login``),
manages people. Passwords come from a prompt or one line of ``--password-stdin``.
``users token NAME --out FILE`` writes a service account's token (mode 0600) for
the camera folder and scheduled batches (``--token-file FILE``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from . import signin
from .paths import data_paths
from .roles import Action, Role

if TYPE_CHECKING:
    from .store import ClinicStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands of ``eyescreen users``."""
    signin.add_arguments(parser)
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add a person (the first must be an admin)")
    add.add_argument("name")
    add.add_argument("--role", action="append", required=True, choices=[r.value for r in Role],
                     help="a role the person holds; repeat for several")
    add.add_argument("--password-stdin", action="store_true", help="read the password from one line of input")
    disable = sub.add_parser("disable", help="disable a person (accounts are never deleted); ends their sessions")
    disable.add_argument("name")
    reset = sub.add_parser("reset", help="set a new password for a person (audited)")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from one line of input")
    listing = sub.add_parser("list", help="list every account and its roles")
    token = sub.add_parser("token", help="write a service account's token for --token-file")
    token.add_argument("name")
    token.add_argument("--out", type=Path, required=True, metavar="FILE", help="file to write the token into (0600)")
    for action in (add, disable, reset, listing, token):
        signin.add_arguments(action, after=True)


def run(args: argparse.Namespace) -> int:
    """Run one ``users`` action as the signed-in admin (or as nobody, for the first admin)."""
    from .store import ClinicStore, StoreError

    paths = data_paths(args.data_dir)
    try:
        with ClinicStore.open(paths, args.database) as store:
            signin.act_as_signed_in(store, paths, args.token_file)
            return _action(store, args)
    except (StoreError, ValueError, OSError) as exc:
        return signin.refuse("users", exc)


def _action(store: ClinicStore, args: argparse.Namespace) -> int:
    name = getattr(args, "name", "")
    if args.users_command == "add":
        first = not store.has_accounts()
        store.add_person(name, signin.read_password(args.password_stdin, f"Password for {name}: ", confirm=True),
                         args.role)
        print(f"{name} added ({', '.join(args.role)})" + (": accounts have started, sign in with "
                                                          f"eyescreen login --user {name}" if first else ""))
    elif args.users_command == "disable":
        store.disable_person(name)
        print(f"{name} disabled; their sessions have ended")
    elif args.users_command == "reset":
        store.require(Action.USERS)
        store.reset_password(name, signin.read_password(args.password_stdin, f"New password for {name}: ",
                                                        confirm=True))
        print(f"{name}'s password was reset")
    elif args.users_command == "list":
        for person in store.people():
            print(f"{person.name}\t{','.join(person.roles)}\t{'disabled' if person.disabled else 'active'}")
    elif args.users_command == "token":
        signin.write_session(args.out, store.start_session("service", name))
        print(f"service token for {name} written to {args.out}: use it with --token-file {args.out}")
    return signin.DONE
