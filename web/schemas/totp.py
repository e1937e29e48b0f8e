"""Two-factor login: the code of the login's second step and of the user's own set-up."""

from __future__ import annotations

from pydantic import Field

from web.schemas.types import Body, Text

MAX_CODE_CHARS = 64  # a 6-digit code or an 11-character recovery code, with some spaces


class TotpCode(Body):
    code: Text(MAX_CODE_CHARS) = Field(
        description="the 6 digits the authenticator app shows now, or an unused recovery code")


class TotpCodeForm(Body):
    """The login's second-step form (beside its double-submit token and the `next` target)."""

    code: Text(MAX_CODE_CHARS, allow_empty=True) = ""
    next: Text(2000, allow_empty=True) = ""
    csrf_token: Text(256, allow_empty=True) = ""


class SecurityForm(Body):
    """A form of the Security page: the code that confirms the action, when it needs one."""

    code: Text(MAX_CODE_CHARS, allow_empty=True) = ""


class AdminTotpForm(Body):
    """The admin pages' two-factor buttons: on (a new secret) or off; for a web user, whose."""

    action: Text(10)
    username: Text(100, allow_empty=True) = ""
