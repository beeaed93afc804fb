"""Every failure of a command as one line a person can act on, with an exit code; never a traceback,
never a secret (database URLs are shown without their password) and never a hash."""

import socket

from alembic.util.exc import CommandError as AlembicCommandError
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from db.errors import DatabaseUnavailable, DomainError

# Exit codes: 1 the command could not do its work, 2 it was asked for something it refuses.
FAILED, REFUSED = 1, 2


class CommandError(Exception):
    def __init__(self, message: str, exit_code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def shown_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def describe(error: BaseException, database_url: str | None) -> tuple[str, int]:
    """The line to print for a failure, and the exit code."""
    where = f" at {shown_url(database_url)}" if database_url else ""
    if isinstance(error, CommandError):
        return error.message, error.exit_code
    if isinstance(error, DatabaseUnavailable):
        cause = _first_line(error.__cause__) if error.__cause__ else "no detail"
        url = f"; DATABASE_URL {shown_url(database_url)}" if database_url else ""
        return f"{error.message} ({cause}{url})", FAILED
    if isinstance(error, DomainError):
        return error.message, REFUSED
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']).upper() or 'settings'}: "
            f"{problem['msg'].removeprefix('Value error, ')}"
            for problem in error.errors(include_input=False, include_url=False)
        )
        return f"invalid settings: {problems}", REFUSED
    if isinstance(error, DBAPIError):
        # The driver's own message, never SQLAlchemy's: that one repeats the statement's parameters.
        return f"the database{where} failed: {_first_line(error.orig or error)}", FAILED
    if isinstance(error, (OSError, socket.gaierror, TimeoutError)):
        return f"cannot reach the database{where}: {_first_line(error)}", FAILED
    if isinstance(error, SQLAlchemyError):
        return f"the database{where} failed: {type(error).__name__}", FAILED
    if isinstance(error, AlembicCommandError):
        # Alembic's reason names a revision, never a secret: "Can't locate revision identified by 'x'".
        return f"cannot migrate: {_first_line(error)}", REFUSED
    if isinstance(error, RuntimeError):
        return str(error), FAILED
    # Its text could hold anything, a secret included: the traceback only on request.
    return f"unexpected {type(error).__name__} (set AUDITGRAPH_DEBUG=1 to see the traceback)", FAILED
