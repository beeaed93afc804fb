"""Bearer tokens: signed JWTs naming the user, with an expiry."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from db.errors import Unauthenticated
from db.settings import Settings

ALGORITHM = "HS256"
ISSUER = "auditgraph"


def issue_token(user_id: uuid.UUID, settings: Settings) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=settings.token_ttl_seconds)
    claims = {"sub": str(user_id), "iat": now, "exp": expires, "iss": ISSUER, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM), expires


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: uuid.UUID
    expires_at: datetime


def read_token(token: str, settings: Settings) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
        return TokenClaims(uuid.UUID(claims["sub"]), datetime.fromtimestamp(claims["exp"], UTC))
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise Unauthenticated("the token is invalid") from None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("use an Authorization header of the form 'Bearer <token>'")
    return token.strip()
