"""``eyescreen audit verify|export``: the tamper-evident audit log (issue 21).

``verify`` walks the hash chain and its head and names the first broken link
(exit 1); it shows no patient data, so it needs no sign-in. ``export`` writes the
log as CSV and, on a database with accounts, needs the coordinator role.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import signin
from .paths import data_paths
from .roles import Action


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands of ``eyescreen audit``."""
    signin.add_arguments(parser)
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    check = sub.add_parser("verify", help="check the audit log's hash chain; exit 1 at the first broken link")
    export = sub.add_parser("export", help="write the audit log as CSV (coordinator)")
    export.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
    for action in (check, export):
        signin.add_arguments(action, after=True)


def run(args: argparse.Namespace) -> int:
    """Verify or export the audit log of the database in force."""
    from .store import ClinicStore, StoreError

    paths = data_paths(args.data_dir)
    try:
        with ClinicStore.open(paths, args.database) as store:
            if args.audit_command == "verify":
                check = store.verify_audit()
                if not check.ok:
                    print(f"eyescreen audit verify: BROKEN: {check.problem}")
                    return signin.CONTENT
                print(f"audit log whole: {check.entries} entries chained"
                      + (f" ({check.before_accounts} before accounts)" if check.before_accounts else ""))
                return signin.DONE
            signin.act_as_signed_in(store, paths, args.token_file, Action.EXPORT)
            rows = store.export_audit(args.out)
    except (StoreError, OSError) as exc:
        return signin.refuse("audit", exc)
    print(f"{rows} audit entries written to {args.out}")
    return signin.DONE
