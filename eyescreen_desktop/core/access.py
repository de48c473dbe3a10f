"""Who may do what: the one place a permission is checked.

Why one function: the accounts issue (21) brings signed-in people and a
role -> permission table. Until it is merged, every place that needs a
permission ("grade": import or enter grades; "admin": calibrate the site's
operating point from its database) calls :func:`require`, which only resolves
and logs who did it; the lead wires it to the roles table at merge, in this one
function, and every caller is checked from then on.
"""

from __future__ import annotations

import logging
from typing import Any

from .store.base import default_user

log = logging.getLogger(__name__)

PERMISSIONS = ("grade", "admin")


def require(store: Any, person: str | None, permission: str) -> str:
    """The person doing something that needs ``permission``, by name (the
    operating-system user when none is given), for the audit rows the work writes.

    issue 21: check ``person``'s role against core/roles.py here and raise
    PermissionError when it lacks ``permission``; ``store`` holds the accounts."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; one of {', '.join(PERMISSIONS)}")
    who = (person or "").strip() or default_user()
    log.info("%s acts with permission %r on %s", who, permission, getattr(store, "where", "the clinic database"))
    return who
