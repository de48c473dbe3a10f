"""Who may do what, for the grading desk's commands and services: one function over
the accounts' permission table (:mod:`.roles`).

The grades import and export, and calibration from the clinic database, call
:func:`require` with the permission they need ("grade": import or enter grades;
"export": photographs and names for a reading centre, a coordinator's; "admin":
calibrate the site's operating point). On a database with accounts
it refuses whoever is not signed in or lacks the role (``store.require``: the one
table in :data:`.roles.PERMISSIONS`); on a database without accounts everything is
allowed, as before accounts. It returns the name the audit rows carry: the
signed-in person, else the ``person`` given, else the operating-system user.
"""

from __future__ import annotations

import logging
from typing import Any

from .roles import Action
from .store.base import default_user

log = logging.getLogger(__name__)

PERMISSIONS: dict[str, Action] = {"grade": Action.GRADE, "export": Action.EXPORT, "admin": Action.OPERATING_POINT}
"""The permission a grading command names -> the action the roles table guards."""


def require(store: Any, person: str | None, permission: str) -> str:
    """The person doing something that needs ``permission``, by name; raises the
    store's ``NotSignedIn`` or ``RoleRefused`` when the signed-in person may not."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; one of {', '.join(PERMISSIONS)}")
    store.require(PERMISSIONS[permission])
    signed_in = getattr(store, "person", None)
    who = signed_in.name if signed_in is not None else ((person or "").strip() or default_user())
    log.info("%s acts with permission %r on %s", who, permission, getattr(store, "where", "the clinic database"))
    return who
