"""Bearer tokens: signed JWTs naming the user, with an expiry."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cachetools import LRUCache

from db.errors import Unauthenticated
from db.settings import Settings

ALGORITHM = "HS256"
ISSUER = "auditgraph"


def issue_token(user_id: uuid.UUID, settings: Settings, generation: int = 0) -> tuple[str, datetime]:
    """A token for the account, valid until it expires or the account's token generation moves on."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=settings.token_ttl_seconds)
    claims = {"sub": str(user_id), "iat": now, "exp": expires, "iss": ISSUER, "jti": uuid.uuid4().hex,
              "gen": generation}
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM), expires


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: uuid.UUID
    expires_at: datetime
    # The account's token generation when the token was issued (db/users.py).
    generation: int = 0


def read_token(token: str, settings: Settings) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
        generation = claims.get("gen", 0)
        if not isinstance(generation, int) or isinstance(generation, bool):
            raise ValueError("the generation is not a number")
        return TokenClaims(uuid.UUID(claims["sub"]), datetime.fromtimestamp(claims["exp"], UTC), generation)
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise Unauthenticated("the token is invalid") from None


# Far more live tokens than one worker sees between restarts of its busiest clients.
MAX_VERIFIED_TOKENS = 10_000


class VerifiedTokens:
    """read_token, remembering what a token says once its signature checked out.

    A token is immutable and the key cannot change while the process runs, so
    its claims are checked once (PyJWT's checks were a tenth of a small
    request's cost); only its expiry is checked again on every use. Per
    application, beside its settings.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._claims: LRUCache[str, TokenClaims] = LRUCache(MAX_VERIFIED_TOKENS)

    def read(self, token: str) -> TokenClaims:
        claims = self._claims.get(token)
        if claims is None:
            claims = self._claims[token] = read_token(token, self.settings)
        if claims.expires_at <= datetime.now(UTC):
            raise Unauthenticated("the token has expired")
        return claims


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("use an Authorization header of the form 'Bearer <token>'")
    return token.strip()
