"""Accounts: registration with a password policy, authentication, activation."""

import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.enums import Role
from db.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from db.events import note_access_change
from db.models import User

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
PASSWORD_POLICY = (
    f"a password needs {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters, "
    "not only spaces, and must differ from the email"
)

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both failures take as long.
_DUMMY_HASH = _hasher.hash("a password nobody has")


def normalize_email(email: str) -> str:
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidInput(f"invalid email: {error}") from None
    return checked.normalized.lower()


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
    user = User(id=uuid.uuid4(), email=normalized, hashed_password=_hasher.hash(password), role=role)
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:
        raise Conflict("an account with this email already exists") from None
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    """The active user with these credentials; every failure reads the same to the caller."""
    try:
        normalized = normalize_email(email)
    except InvalidInput:
        normalized = None
    user = None
    if normalized is not None:
        user = await session.scalar(select(User).where(User.email == normalized))
    try:
        _hasher.verify(user.hashed_password if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None or not user.is_active:
        raise Unauthenticated("invalid email or password")
    if _hasher.check_needs_rehash(user.hashed_password):
        user.hashed_password = _hasher.hash(password)
    return user


async def active_role(connection: AsyncConnection, user_id: uuid.UUID) -> Role | None:
    """The role of an active user, or None: the one lookup every authenticated request makes."""
    return await connection.scalar(select(User.role).where(User.id == user_id, User.is_active.is_(True)))


async def set_user_active(session: AsyncSession, user_id: uuid.UUID, active: bool) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    user.is_active = active
    await session.flush()
    # A deactivated user's open subscriptions end, on every worker.
    note_access_change(session, user_id)
    return user


async def set_user_role(session: AsyncSession, user_id: uuid.UUID, role: Role) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    user.role = role
    await session.flush()
    # What the user may see changed: their open subscriptions end, on every worker.
    note_access_change(session, user_id)
    return user
