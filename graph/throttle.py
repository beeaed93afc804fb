"""Login throttling: too many failures for one email or from one client are refused for a while."""

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from db.errors import RateLimited


class LoginThrottle:
    """Counts failed logins per email and per client in a moving window.

    The counts live in this process; with several workers each keeps its own,
    so the effective limit is at most workers × the setting.
    """

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self._limit = RateLimitItemPerSecond(max_failures, max(1, round(window_seconds)))
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def check(self, email: str, client: str) -> None:
        for scope, key in (("email", email.strip().lower()), ("client", client)):
            if not await self._limiter.test(self._limit, scope, key):
                raise RateLimited("too many failed sign-in attempts; try again later")

    async def record_failure(self, email: str, client: str) -> None:
        await self._limiter.hit(self._limit, "email", email.strip().lower())
        await self._limiter.hit(self._limit, "client", client)

    async def record_success(self, email: str) -> None:
        await self._limiter.clear(self._limit, "email", email.strip().lower())
