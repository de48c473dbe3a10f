"""Who may do what: the clinic's roles and the one permission table (issue 21).

A screening clinic shares a workstation between nurses, graders, coordinators
and an administrator; a programme must know which of them did what, and only
who may. This module is that rule, stated once: the store's services check it
(:meth:`ClinicStore._require`), the command line and the window read it to say
which role an action needs. Pure: no I/O, no Qt.

A database with no accounts needs none of this: every action is allowed, as
before accounts existed (the store decides, :mod:`.store.accounts`).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    """A role a person holds; a person may hold several."""

    NURSE = "nurse"
    GRADER = "grader"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


class Action(StrEnum):
    """Something the services guard, in the words an audit line or a refusal uses."""

    SCREEN = "screen"                          # register patients, capture, record results, the camera folder
    OPEN_RECORD = "open a patient's record"
    PRINT_DOCUMENT = "print the patient's document"
    GRADE = "grade"                            # the grading desk, arbitration
    FLAG_FOR_GRADER = "flag an encounter for a grader"   # put a visit on the grading worklist
    CHANGE_QUEUE = "change a queue"            # override, mark referred or seen, close
    EXPORT = "export identifiable data"        # reports, queue CSV, FHIR, grades and audit exports
    OPERATING_POINT = "change the operating point"
    SETTINGS = "change Settings"
    MODELS = "change models"
    USERS = "manage users"
    DATABASE = "manage the database"


PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.NURSE: frozenset({Action.SCREEN, Action.OPEN_RECORD, Action.PRINT_DOCUMENT, Action.FLAG_FOR_GRADER}),
    Role.GRADER: frozenset({Action.GRADE, Action.OPEN_RECORD}),
    Role.COORDINATOR: frozenset({Action.CHANGE_QUEUE, Action.EXPORT, Action.OPEN_RECORD, Action.PRINT_DOCUMENT,
                                 Action.FLAG_FOR_GRADER}),
    Role.ADMIN: frozenset({Action.SETTINGS, Action.OPERATING_POINT, Action.MODELS, Action.USERS,
                           Action.DATABASE}),
}
"""Role -> what it may do: the only copy of this rule."""


def may(roles: Iterable[Role | str], action: Action) -> bool:
    """Whether someone holding ``roles`` may do ``action``."""
    return any(action in PERMISSIONS[Role(role)] for role in roles)


def role_needed(action: Action) -> Role:
    """The role a refusal names: the first (in the order the issue lists them) that may do it."""
    return next(role for role in Role if action in PERMISSIONS[role])


def parse_roles(names: Iterable[str]) -> tuple[Role, ...]:
    """Roles from what a person typed (``--role nurse --role grader``), sorted and
    without repeats; an unknown name raises ValueError naming the known ones."""
    roles = set()
    for name in names:
        try:
            roles.add(Role(name.strip().lower()))
        except ValueError:
            raise ValueError(f"unknown role {name!r}: choose from {', '.join(r.value for r in Role)}") from None
    if not roles:
        raise ValueError(f"give at least one role ({', '.join(r.value for r in Role)})")
    return tuple(sorted(roles, key=list(Role).index))
