"""What a guarded service says when it refuses: nobody signed in, a role missing, a
sign-in or a password refused (:mod:`.accounts` raises them).

Kept apart from the accounts (which import SQLAlchemy through the store) so that
the window can name them before its first paint, while the database still opens.
"""

from __future__ import annotations

from ..roles import Action, Role
from .names import StoreError

SIGN_IN_FIRST = "sign in first: eyescreen login"


class AccessRefused(StoreError):
    """A guarded service refused: nobody signed in, or a role missing."""


class NotSignedIn(AccessRefused):
    """The database has accounts and nobody is signed in (or the session ended)."""

    def __init__(self, why: str = ""):
        super().__init__(f"{why}: {SIGN_IN_FIRST}" if why else SIGN_IN_FIRST)


class RoleRefused(AccessRefused):
    """The signed-in person's roles do not allow the action; names the role it needs."""

    def __init__(self, action: Action, role: Role, who: str = ""):
        self.action, self.role = action, role
        lead = f"{who} may not {action.value}" if who else f"may not {action.value}"
        super().__init__(f"{lead}: it needs the {role.value} role")


class SignInRefused(StoreError):
    """Wrong name or password, a disabled account, or one locked after failures."""


class PasswordRefused(ValueError):
    """A new password that does not meet the rule (too short)."""
