"""Who may register (REGISTRATION), and the invitations that let one email do so.

An invitation is a JWT bound to one email (in the spelling accounts are stored
by) and the role it grants, signed with the bearer tokens' key but for an
audience of its own: PyJWT refuses a token that names an audience where none is
expected (a bearer token's check, graph/access/tokens.py) and one that names
none where one is (an invitation's), so neither ever passes for the other. No
table keeps invitations: an account's email is unique, so one registers at most
one account.
"""

import uuid
from datetime import UTC, datetime, timedelta

import jwt

from db.enums import Role
from db.errors import Forbidden
from db.settings import Settings
from db.users import account_email, normalize_email
from graph.access.tokens import ALGORITHM, ISSUER

AUDIENCE = "auditgraph:invitation"
CLOSED = "registration is closed: an administrator creates accounts"
NEEDED = "registration is by invitation: register with the invitation you were sent for this email"
EXPIRED = "the invitation has expired: ask for a new one"
NOT_VALID = "the invitation is not valid for this email"


def issue_invitation(email: str, role: Role, settings: Settings, days: int | None = None) -> tuple[str, str, datetime]:
    """An invitation for the email (normalised, which is returned too), valid for `days` or INVITATION_DAYS."""
    normalized = normalize_email(email)
    now = datetime.now(UTC)
    expires = now + timedelta(days=settings.invitation_days if days is None else days)
    claims = {"sub": normalized, "role": role.value, "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": expires,
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM), normalized, expires


def registration_role(email: str, invitation: str | None, settings: Settings) -> Role:
    """The role `register` gives this email, or Forbidden.

    Decided from the request alone, before any password hash or read: a refusal
    is the same, and as quick, whether the email has an account or not.
    """
    if settings.registration == "closed":
        raise Forbidden(CLOSED)
    if invitation is None:
        if settings.registration == "invite":
            raise Forbidden(NEEDED)
        return Role.USER
    return _invited_role(invitation, email, settings)


def _invited_role(invitation: str, email: str, settings: Settings) -> Role:
    try:
        claims = jwt.decode(invitation, settings.secret_key, algorithms=[ALGORITHM], audience=AUDIENCE,
                            issuer=ISSUER, options={"require": ["sub", "role", "exp", "iat", "iss", "aud"]})
        role = Role(claims["role"])
    except jwt.ExpiredSignatureError:
        raise Forbidden(EXPIRED) from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise Forbidden(NOT_VALID) from None
    if claims["sub"] != account_email(email):
        raise Forbidden(NOT_VALID)
    return role
