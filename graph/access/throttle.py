"""Throttles on accounts: failed logins, and registrations, per email and per client address; URL submissions
per user."""

import math
import time
from collections.abc import Iterator

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from db.errors import RateLimited
from db.settings import Settings
from db.users import account_email

Scope = tuple[str, str, str]


class AccountThrottle:
    """Counts attempts in moving windows.

    An email is counted in the spelling accounts are looked up by, so no other
    spelling of a locked address gets through. The counts live in this process;
    with several workers each keeps its own, so the effective limit is at most
    workers × the setting.
    """

    def __init__(self, settings: Settings) -> None:
        self._login = _per_window(settings.login_max_failures, settings.login_lockout_seconds)
        self._register = _per_window(settings.register_max_attempts, settings.register_window_seconds)
        self._submissions = _per_window(settings.submit_url_max_per_minute, 60)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def check_login(self, email: str, client: str) -> None:
        for scope in _scopes("login", email, client):
            if not await self._limiter.test(self._login, *scope):
                raise await self._refusal(self._login, scope, "too many failed sign-in attempts")

    async def record_login_failure(self, email: str, client: str) -> None:
        for scope in _scopes("login", email, client):
            await self._limiter.hit(self._login, *scope)

    async def record_login_success(self, email: str) -> None:
        for scope in _scopes("login", email, None):
            await self._limiter.clear(self._login, *scope)

    async def count_registration(self, email: str, client: str) -> None:
        """Counts every attempt, whatever becomes of it: each costs a password hash."""
        scopes = list(_scopes("register", email, client))
        for scope in scopes:
            if not await self._limiter.test(self._register, *scope):
                raise await self._refusal(self._register, scope, "too many registrations")
        for scope in scopes:
            await self._limiter.hit(self._register, *scope)

    async def count_submission(self, user_id: object) -> None:
        """Counts a user's submitUrl calls, refusing those past the limit."""
        scope: Scope = ("submit-url", "user", str(user_id))
        if not await self._limiter.hit(self._submissions, *scope):
            raise await self._refusal(self._submissions, scope, "too many URLs submitted")

    async def _refusal(self, limit: RateLimitItem, scope: Scope, message: str) -> RateLimited:
        # The moving window frees its oldest attempt first: that is when one more is allowed.
        stats = await self._limiter.get_window_stats(limit, *scope)
        return RateLimited(message, retry_after=max(1, math.ceil(stats.reset_time - time.time())))


def _per_window(attempts: int, seconds: float) -> RateLimitItem:
    return RateLimitItemPerSecond(attempts, max(1, round(seconds)))


def _scopes(action: str, email: str, client: str | None) -> Iterator[Scope]:
    # Text that can be no account's email is counted by client only.
    if (key := account_email(email)) is not None:
        yield action, "email", key
    if client is not None:
        yield action, "client", client
