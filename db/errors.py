"""Domain errors: each names what went wrong and carries the code clients see."""


class DomainError(Exception):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    code = "BAD_USER_INPUT"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class InvalidTransition(DomainError):
    code = "INVALID_TRANSITION"

    def __init__(self, current: str, requested: str, message: str | None = None) -> None:
        super().__init__(message or f"cannot move a task from {current} to {requested}")
        self.current = current
        self.requested = requested


class Conflict(DomainError):
    code = "CONFLICT"


class AlreadyExists(Conflict):
    """What the request would create is there already, made by the caller's own claim or hand: ask to replace it.

    Its own code, so a client tells it from CONFLICT's "your claim is stale, move on" without reading messages.
    """

    code = "ALREADY_EXISTS"


class DuplicateTask(Conflict):
    """The owner already has a task for these bytes; `task_id` points at it."""

    def __init__(self, task_id: object) -> None:
        super().__init__("a task for this file already exists")
        self.task_id = task_id


class PayloadTooLarge(DomainError):
    code = "PAYLOAD_TOO_LARGE"


class RateLimited(DomainError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        # Without retry_after, the limit lifts when something the caller holds ends (a connection).
        super().__init__(message if retry_after is None else f"{message}; try again in {retry_after} seconds")
        self.retry_after = retry_after


class DatabaseUnavailable(DomainError):
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str = "the database is unreachable at the moment; retry shortly") -> None:
        super().__init__(message)


class DatabaseBusy(DatabaseUnavailable):
    """Every connection of the pool stayed in use for DB_POOL_TIMEOUT_SECONDS: the server is overloaded, not broken."""

    def __init__(self) -> None:
        super().__init__("the server is too busy to take this request now; retry shortly")


class RequestTimedOut(DatabaseUnavailable):
    """The request ran past REQUEST_TIMEOUT_SECONDS: its database work was cancelled."""

    def __init__(self) -> None:
        super().__init__("the request ran past its time budget and was stopped; ask for less, or retry shortly")


class InsufficientStorage(DomainError):
    """The disk (or quota) that takes files is full: nothing was stored; retrying later may succeed."""

    code = "INSUFFICIENT_STORAGE"
