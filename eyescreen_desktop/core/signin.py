"""Signing in on the command line, as ``docker login`` and ``gh auth login`` do it (issue 21).

``eyescreen login`` keeps the session token in ``sessions/<SHA-256 of the
database URL>`` (mode 0600) inside the data folder in force, so ``--data-dir``
and ``--database`` choose which session a command runs under; the database keeps
only the token's hash. A command that changes or exports clinical records opens
its store, then calls :func:`act_as_signed_in`, which resumes that session (or
the service token of ``--token-file``) when the database has accounts. A
database without accounts needs none of it.

The exit codes every command shares live here too (:func:`exit_code`).
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import os
import sys
from pathlib import Path

from .paths import DataPaths
from .roles import Action
from .store.accounts import (
    AccessRefused,
    NotSignedIn,
    PasswordRefused,
    RoleRefused,
    SignInRefused,
)
from .store.base import StoreBase
from .store.engine import StoreError

DONE, CONTENT, USAGE, MODEL, DATABASE, NOT_SIGNED_IN, ROLE_REFUSED = range(7)
"""Exit codes, the same for every command: 0 done (a re-import that changed nothing
too), 1 content refused (bad rows, a broken audit chain, a wrong password), 2 usage,
3 model, 4 database, 5 not signed in, 6 role refused (naming the role it needs)."""


def session_file(paths: DataPaths, url: str) -> Path:
    """Where ``eyescreen login`` keeps the session for database ``url`` in this data folder."""
    return paths.root / "sessions" / hashlib.sha256(url.encode("utf-8")).hexdigest()


def add_arguments(parser: argparse.ArgumentParser, token_file: bool = True, after: bool = False) -> None:
    """``--data-dir``, ``--database`` (as ``screen`` takes them) and ``--token-file``.
    ``after``: on a sub-command's action (``users add ...``), so they may also come
    after it, without overwriting what was given before it."""
    from .store.engine import add_database_argument

    default = argparse.SUPPRESS if after else None
    parser.add_argument("--data-dir", type=Path, default=default, metavar="DIR",
                        help="clinic data folder (database, image store, sign-in session)")
    if after:
        parser.add_argument("--database", metavar="URL", default=default, help="clinic database URL")
    else:
        add_database_argument(parser)
    if token_file:
        add_token_argument(parser, default)


def add_token_argument(parser: argparse.ArgumentParser, default: object = None) -> None:
    """``--token-file FILE``: run as a service account (``eyescreen users token``)."""
    parser.add_argument("--token-file", type=Path, default=default, metavar="FILE",
                        help="run as the service account whose token this file holds (eyescreen users token)")


def write_session(path: Path, token: str) -> None:
    """Write a token readable by its owner only (0600), in a folder only they can list."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)


def act_as_signed_in(store: StoreBase, paths: DataPaths, token_file: Path | None = None,
                     action: Action | None = None) -> None:
    """Act as the person signed in for this database (or the ``token_file``'s service
    account), then check ``action``; nothing when the database has no accounts.
    Raises :class:`NotSignedIn` or :class:`RoleRefused`."""
    if not store._has_accounts():
        return
    source = token_file or session_file(paths, store.url)
    try:
        token = source.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise NotSignedIn(f"no token in {token_file}" if token_file else "") from None
    store.resume_session(token)   # type: ignore[attr-defined]  # a ClinicStore: StoreBase is the type the CLI passes
    if action is not None:
        store.require(action)


def read_password(from_stdin: bool, prompt: str = "Password: ", confirm: bool = False) -> str:
    """A password from one line of standard input (``--password-stdin``) or a
    prompt that does not echo (typed twice when ``confirm``)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != password:
        raise PasswordRefused("the two passwords differ")
    return password


def exit_code(exc: BaseException) -> int:
    """The exit code an error gives (see :data:`DONE`)."""
    if isinstance(exc, NotSignedIn):
        return NOT_SIGNED_IN
    if isinstance(exc, RoleRefused):
        return ROLE_REFUSED
    if isinstance(exc, (SignInRefused, PasswordRefused, ValueError)):
        return CONTENT
    if isinstance(exc, StoreError):
        return DATABASE
    return CONTENT


def refuse(command: str, exc: BaseException) -> int:
    """Say why ``eyescreen COMMAND`` stopped (one line) and give its exit code."""
    print(f"eyescreen {command}: {' '.join(str(exc).split())}", file=sys.stderr)
    return exit_code(exc)


__all__ = [
    "DONE",
    "AccessRefused",
    "act_as_signed_in",
    "add_arguments",
    "exit_code",
    "read_password",
    "refuse",
    "session_file",
    "write_session",
]
