"""Accounts: registration with a password policy, authentication, activation."""

import asyncio
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import Database
from db.enums import Role
from db.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from db.events import note_access_change
from db.models import User

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
SESSIONS_ENDED = "this session has ended (the password or the account's access changed): sign in again"
PASSWORD_POLICY = (
    f"a password needs {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters, "
    "not only spaces, and must differ from the email"
)

T = TypeVar("T")

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both failures take as long.
_DUMMY_HASH = _hasher.hash("a password nobody has")
# A hash costs tens of milliseconds of CPU and 64 MiB: it runs on these threads
# (argon2 releases the GIL), never on the event loop, and a storm of logins
# queues here instead of taking every core and gigabytes of memory. Threads
# start on first use and serve any event loop.
_HASHING = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="argon2")


async def _hashing(function: Callable[..., T], *args: str) -> T:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, function, *args)


def normalize_email(email: str) -> str:
    """The one spelling of an email that accounts are stored, looked up and throttled by.

    Surrounding spaces go, the domain is normalised by IDNA/UTS-46 (so fullwidth
    letters and ideographic full stops become what they look like), and the
    whole address is compared case-insensitively.
    """
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidInput(f"invalid email: {error}") from None
    return checked.normalized.lower()


def account_email(email: str) -> str | None:
    """`normalize_email`, or None for text that can be no account's email."""
    try:
        return normalize_email(email)
    except InvalidInput:
        return None


def check_password_policy(password: str, email: str) -> None:
    if (
        not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
        or not password.strip()
        or password.strip().lower() == email
    ):
        raise InvalidInput(PASSWORD_POLICY)


async def register_user(
    session: AsyncSession, email: str, password: str, role: Role = Role.USER
) -> User:
    normalized = normalize_email(email)
    check_password_policy(password, normalized)
    # Before the session's first statement, so no connection (nor SQLite's write lock) waits on the hash.
    hashed_password = await _hashing(_hasher.hash, password)
    user = User(id=uuid.uuid4(), email=normalized, hashed_password=hashed_password, role=role)
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:
        raise Conflict("an account with this email already exists") from None
    return user


async def authenticate(database: Database, email: str, password: str) -> tuple[uuid.UUID, int]:
    """The id of the active user with these credentials, and the generation its tokens carry;
    every failure reads the same to the caller.

    The password is checked with no connection held: a check takes longer than
    any query, and a storm of logins must not empty the pool.
    """
    normalized = account_email(email)
    account = None
    if normalized is not None:
        async with database.read() as connection:
            account = (await connection.execute(
                select(User.id, User.hashed_password, User.is_active, User.token_generation)
                .where(User.email == normalized)
            )).one_or_none()
    try:
        await _hashing(_hasher.verify, account.hashed_password if account else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        account = None
    if account is None or not account.is_active:
        raise Unauthenticated("invalid email or password")
    if _hasher.check_needs_rehash(account.hashed_password):
        rehashed = await _hashing(_hasher.hash, password)
        async with database.transaction() as session:
            await session.execute(update(User).where(User.id == account.id).values(hashed_password=rehashed))
    return account.id, account.token_generation


@dataclass(frozen=True, slots=True)
class Access:
    """What an active account may do now, and the generation its valid tokens carry."""

    role: Role
    generation: int


_ACTIVE_ACCESS = select(User.role, User.token_generation).where(
    User.id == bindparam("user_id"), User.is_active.is_(True))


async def active_access(database: Database, user_id: uuid.UUID) -> Access | None:
    """The access of an active user, or None: the one lookup every authenticated request makes."""
    rows = await database.prepared_rows(_ACTIVE_ACCESS, {"user_id": user_id})
    return Access(rows[0][0], rows[0][1]) if rows else None


async def set_user_active(session: AsyncSession, user_id: uuid.UUID, active: bool) -> User:
    return await _change_access(session, user_id, is_active=active)


async def set_user_role(session: AsyncSession, user_id: uuid.UUID, role: Role) -> User:
    return await _change_access(session, user_id, role=role)


async def _change_access(session: AsyncSession, user_id: uuid.UUID, **values: object) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    if all(getattr(user, name) == value for name, value in values.items()):
        # Nothing changed: what the user may see is re-checked all the same, and no session ends.
        note_access_change(session, user_id)
        return user
    for name, value in values.items():
        setattr(user, name, value)
    await _end_sessions(session, user)
    return user


async def _end_sessions(session: AsyncSession, user: User) -> None:
    """Every token issued before now stops working, and every open stream of the account ends, on every worker."""
    user.token_generation = User.token_generation + 1
    await session.flush()
    await session.refresh(user, ["token_generation"])
    note_access_change(session, user.id)


async def user_by_email(session: AsyncSession, email: str) -> User:
    """The account with this email (in any spelling that normalises to it); NotFound otherwise."""
    normalized = account_email(email)
    user = None if normalized is None else await session.scalar(select(User).where(User.email == normalized))
    if user is None:
        raise NotFound(f"no account with the email {email.strip()!r}")
    return user


async def list_users(session: AsyncSession, role: Role | None = None) -> list[User]:
    """Every account (of one role, if given), oldest first."""
    statement = select(User).order_by(User.created_at, User.id)
    if role is not None:
        statement = statement.where(User.role == role)
    return list((await session.scalars(statement)).all())


async def set_user_password(session: AsyncSession, user_id: uuid.UUID, password: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    check_password_policy(password, user.email)
    user.hashed_password = await _hashing(_hasher.hash, password)
    await _end_sessions(session, user)
    return user
