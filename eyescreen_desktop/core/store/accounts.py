"""The clinic's accounts: people, their roles, sign-in and sessions (issue 21).

* **Accounts live in the clinic database**, so every workstation sharing it asks
  for the same sign-in. A database with no accounts works as before, without
  sign-in; accounts start when the first admin is created, and from then on every
  guarded service refuses a caller who is not signed in (:func:`check_allowed`).
* **Passwords** are hashed with argon2id (argon2-cffi) and at least
  :data:`MIN_PASSWORD` characters long. No recovery: another admin resets it,
  audited. **No account is ever deleted** (the audit log names it): it is disabled,
  which also ends its sessions.
* **Failed sign-ins are audited**; after :data:`MAX_FAILURES` in a row the account
  refuses sign-in for :data:`LOCKOUT` (a refusal, not a sleep), counted per
  account. The store's ``clock`` is injectable so a test can move time.
* **Sessions**: a random token handed to the signed-in person (the command line
  keeps it in the data folder, :mod:`..signin`) and stored only as its SHA-256;
  it expires after :data:`SESSION_HOURS`. A service token (camera folder,
  scheduled batches) does not expire; both end when the account is disabled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from ..roles import Action, Role, may, parse_roles, role_needed
from .base import StoreBase, _datetime
from .engine import Db, Row
from .refusals import (  # noqa: F401 - re-exported: the refusals live where nothing imports SQLAlchemy
    SIGN_IN_FIRST,
    AccessRefused,
    NotSignedIn,
    PasswordRefused,
    RoleRefused,
    SignInRefused,
)

MIN_PASSWORD = 10
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(seconds=30)
SESSION_HOURS = 8
APPLIED_POINT_KEY = "applied_operating_point_sha256"


@dataclass(frozen=True)
class Person:
    """A signed-in (or listed) account: its name and roles."""

    name: str
    roles: tuple[Role, ...]
    disabled: bool = False

    def may(self, action: Action) -> bool:
        """Whether this person's roles allow ``action`` (:data:`roles.PERMISSIONS`)."""
        return may(self.roles, action)


def check_allowed(store: StoreBase, action: Action) -> None:
    """Raise :class:`RoleRefused` or :class:`NotSignedIn` unless ``store.person``
    may do ``action``; a database without accounts allows everything."""
    person = store.person
    if person is not None:
        if not person.may(action):
            raise RoleRefused(action, role_needed(action), person.name)
        return
    if store._has_accounts():
        raise NotSignedIn()


def check_password(password: str) -> None:
    """Refuse a password shorter than :data:`MIN_PASSWORD` characters."""
    if len(password) < MIN_PASSWORD:
        raise PasswordRefused(f"a password needs at least {MIN_PASSWORD} characters (this one has {len(password)})")


def token_digest(token: str) -> str:
    """What the database keeps of a session token: its SHA-256 (hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# argon2id at RFC 9106's second recommended setting (argon2-cffi's default): 3 passes
# over 64 MiB in 4 lanes, about 0.2 s of CPU per hash on a clinic PC. A stored hash
# carries its own cost, so raising it later leaves existing passwords verifiable.
PASSWORD_HASH_COST = {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 4}


def password_hasher():  # type: ignore[no-untyped-def]  # argon2's hasher, imported on first use
    """The hasher every password goes through, at :data:`PASSWORD_HASH_COST`."""
    from argon2 import PasswordHasher, Type

    return PasswordHasher(type=Type.ID, **PASSWORD_HASH_COST)


_hasher = password_hasher   # the one indirection the test suite replaces (tests/conftest.py)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def _person(row: Row) -> Person:
    return Person(row["name"], parse_roles(row["roles"].split(",")), row["disabled_at"] is not None)


class Accounts(StoreBase):
    """People, roles, sign-in and sessions (see the module's docstring)."""

    def has_accounts(self) -> bool:
        """Whether sign-in is required on this database (its first admin exists)."""
        return self._has_accounts()

    def _person_row(self, name: str) -> Row | None:
        rows = self._query("SELECT * FROM people WHERE name = ?", (name,))
        return rows[0] if rows else None

    def people(self) -> list[Person]:
        """Every account, disabled ones included (an admin's list)."""
        self.require(Action.USERS)
        return [_person(r) for r in self._query("SELECT * FROM people ORDER BY name")]

    def add_person(self, name: str, password: str, roles: tuple[Role | str, ...] | list[str]) -> Person:
        """Create an account. The first one must be an admin and needs no sign-in
        (accounts start with it); after that only an admin adds people."""
        name, chosen = name.strip(), parse_roles(roles)
        if not name or len(name) > 64 or not name.isprintable():
            raise ValueError("a name is 1 to 64 printable characters")
        check_password(password)
        with self._tx() as db:
            if self._has_accounts():
                self.require(Action.USERS)
            elif Role.ADMIN not in chosen:
                raise RoleRefused(Action.USERS, Role.ADMIN, "the first account")
            if self._person_row(name) is not None:
                raise ValueError(f"{name} already has an account (accounts are never deleted: "
                                 "reset the password or enable it instead)")
            now = _stamp(self.clock.now())
            db.execute("INSERT INTO people (name, roles, password_hash, created_at, created_by, password_set_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (name, ",".join(chosen), _hasher().hash(password), now,
                        self.person.name if self.person else "", now))
            self._audit(db, None, "person added", f"person:{name}", {"roles": list(chosen)})
        return Person(name, chosen)

    def disable_person(self, name: str) -> None:
        """Disable an account (never deleted) and end its sessions; the last admin stays."""
        self.require(Action.USERS)
        with self._tx() as db:
            row = self._existing(name)
            if Role.ADMIN in _person(row).roles and row["disabled_at"] is None:
                admins = [p for p in map(_person, self._query("SELECT * FROM people WHERE disabled_at IS NULL"))
                          if Role.ADMIN in p.roles]
                if len(admins) <= 1:
                    raise ValueError(f"{name} is the last admin: add another admin before disabling this one")
            now = _stamp(self.clock.now())
            db.execute("UPDATE people SET disabled_at = COALESCE(disabled_at, ?) WHERE name = ?", (now, name))
            db.execute("UPDATE sign_in_sessions SET ended_at = ? WHERE name = ? AND ended_at IS NULL", (now, name))
            self._audit(db, None, "person disabled", f"person:{name}")

    def reset_password(self, name: str, password: str) -> None:
        """An admin sets a new password (the only recovery); the lock-out is lifted, audited."""
        check_password(password)
        self.require(Action.USERS)
        with self._tx() as db:
            self._existing(name)
            db.execute("UPDATE people SET password_hash = ?, password_set_at = ?, failures = 0, locked_until = NULL "
                       "WHERE name = ?", (_hasher().hash(password), _stamp(self.clock.now()), name))
            self._audit(db, None, "password reset", f"person:{name}")

    def _existing(self, name: str) -> Row:
        row = self._person_row(name)
        if row is None:
            raise ValueError(f"no account named {name}")
        return row

    def sign_in(self, name: str, password: str) -> Person:
        """Check the password and act as this person from now on. Every refusal is
        audited; the :data:`MAX_FAILURES`-th failure in a row locks the account for
        :data:`LOCKOUT`, during which even the right password is refused."""
        now = self.clock.now()
        with self._tx() as db:
            row = self._person_row(name)
            refusal = self._sign_in_refusal(row, password, now)
            if refusal is None:
                db.execute("UPDATE people SET failures = 0, locked_until = NULL WHERE name = ?", (name,))
                self.person = _person(row)   # type: ignore[arg-type]  # a row of the people table
                self._audit(db, None, "signed in", f"person:{name}")
                return self.person
            self._record_failure(db, name, row, refusal, now)  # committed, then refused
        raise SignInRefused(refusal)

    def _sign_in_refusal(self, row: Row | None, password: str, now: dt.datetime) -> str | None:
        if row is None:
            return "wrong name or password"
        if row["disabled_at"] is not None:
            return f"{row['name']}'s account is disabled: ask an admin"
        if row["locked_until"] and dt.datetime.fromisoformat(row["locked_until"]) > now:
            wait = (dt.datetime.fromisoformat(row["locked_until"]) - now).total_seconds()
            return f"too many wrong passwords: {row['name']} can sign in again in {max(1, round(wait))} s"
        from argon2.exceptions import VerificationError

        try:
            _hasher().verify(row["password_hash"], password)
        except VerificationError:
            return "wrong name or password"
        return None

    def _record_failure(self, db: Db, name: str, row: Row | None, refusal: str, now: dt.datetime) -> None:
        details: dict[str, object] = {"why": refusal}
        if row is not None and refusal == "wrong name or password":
            failures = int(row["failures"]) + 1
            locked = _stamp(now + LOCKOUT) if failures >= MAX_FAILURES else None
            db.execute("UPDATE people SET failures = ?, locked_until = ? WHERE name = ?",
                             (0 if locked else failures, locked, name))
            details.update(failures_in_a_row=failures, locked_until=locked)
        self.person = None
        self._audit(db, None, "sign-in failed", f"person:{name}", details)

    def sign_out(self) -> None:
        """Stop acting as anyone (the window's lock or Switch person)."""
        if self.person is not None:
            with self._tx() as db:
                self._audit(db, None, "signed out", f"person:{self.person.name}")
            self.person = None

    def start_session(self, kind: str = "person", name: str | None = None) -> str:
        """A new session token for the signed-in person (expires after :data:`SESSION_HOURS`),
        or, ``kind="service"`` (admin only), a token for account ``name`` that does not expire.
        Only its SHA-256 is stored; the caller keeps the token."""
        from .workstations import workstation

        if kind == "service":
            self.require(Action.USERS)
            who = _person(self._existing(name or ""))
            if who.disabled:
                raise ValueError(f"{who.name}'s account is disabled")
        elif self.person is None:
            raise NotSignedIn()
        else:
            who = self.person
        token, now = secrets.token_urlsafe(32), self.clock.now()
        expires = None if kind == "service" else _stamp(now + dt.timedelta(hours=SESSION_HOURS))
        with self._tx() as db:
            db.execute("INSERT INTO sign_in_sessions (token_sha256, name, kind, workstation, created_at, expires_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (token_digest(token), who.name, kind, workstation(),
                                                   _stamp(now), expires))
            self._audit(db, None, "service token issued" if kind == "service" else "session started",
                        f"person:{who.name}")
        return token

    def resume_session(self, token: str) -> Person:
        """Act as the person a session or service token belongs to; refused
        (:class:`NotSignedIn`) once it expired, was ended or the account was disabled."""
        rows = self._query("SELECT s.expires_at, s.ended_at, p.* FROM sign_in_sessions s "
                           "JOIN people p ON p.name = s.name WHERE s.token_sha256 = ?", (token_digest(token.strip()),))
        if not rows:
            raise NotSignedIn("that session is not known here (signed in on another database?)")
        row = rows[0]
        if row["ended_at"] is not None or row["disabled_at"] is not None:
            raise NotSignedIn("that session was ended (signed out, or the account was disabled)")
        if row["expires_at"] and _datetime(row["expires_at"]) <= self.clock.now():
            raise NotSignedIn(f"the session expired ({SESSION_HOURS} hours after sign-in)")
        self.person = _person(row)
        return self.person

    def end_session(self, token: str) -> bool:
        """End a session (``eyescreen logout``); False when it was not open."""
        with self._tx() as db:
            ended = db.execute("UPDATE sign_in_sessions SET ended_at = ? WHERE token_sha256 = ? AND ended_at IS NULL",
                               (_stamp(self.clock.now()), token_digest(token.strip()))).rowcount
            if ended:
                self._audit(db, None, "session ended", "session")
        return bool(ended)

    def apply_operating_point(self, sha256: str, name: str = "") -> None:
        """An admin applies an operating point file (by its SHA-256) for the clinic:
        the one point that people without the admin role may screen with."""
        self.require(Action.OPERATING_POINT)
        with self._tx() as db:
            self._set_meta(APPLIED_POINT_KEY, sha256)
            self._audit(db, None, "operating point applied", f"operating-point:{sha256[:12]}",
                        {"sha256": sha256, "name": name})

    def applied_operating_point(self) -> str | None:
        """The SHA-256 of the operating point an admin applied, None when none was."""
        return self._meta(APPLIED_POINT_KEY)

    def check_operating_point(self, sha256: str) -> None:
        """Refuse screening with an operating point other than the applied one,
        unless the signed-in person is an admin (or the database has no accounts)."""
        if sha256 != self.applied_operating_point():
            self.require(Action.OPERATING_POINT)
