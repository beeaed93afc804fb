from datetime import timedelta
from typing import Annotated

import strawberry
from sqlalchemy import select

from db import models
from db.errors import Unauthenticated
from db.stream_tickets import mint_ticket
from db.users import authenticate, register_user, set_user_active, set_user_role
from graph.access.invitations import issue_invitation, registration_role
from graph.access.permissions import IsAdmin, IsAuthenticated
from graph.access.tokens import issue_token
from graph.context import Info
from graph.enums import Role
from graph.relay import from_global_id
from graph.users.types import USER_COLUMNS, AuthPayload, Invitation, StreamTicket, User


async def _user(info: Info, user_id: object) -> User:
    async with info.context.database.read() as connection:
        row = (await connection.execute(select(*USER_COLUMNS).where(models.User.id == user_id))).one()
    return User.from_row(row)


@strawberry.type
class UserMutations:
    @strawberry.mutation(description=(
        "Create an account and sign it in: a USER, or the role its invitation grants. Whether an invitation is "
        "needed, or registration is closed, is the deployment's choice (FORBIDDEN when refused)."
    ))
    async def register(
        self, info: Info, email: str, password: str,
        invitation: Annotated[str | None, strawberry.argument(
            description="An invitation for this email (createInvitation)")] = None,
    ) -> AuthPayload:
        context = info.context
        await context.throttle.count_registration(email, context.client_address)
        role = registration_role(email, invitation, context.settings)
        async with context.database.transaction() as session:
            user = await register_user(session, email, password, role)
        token, expires = issue_token(user.id, context.settings, user.token_generation or 0)
        return AuthPayload(token=token, expires_at=expires, user=await _user(info, user.id))

    @strawberry.mutation(description="Exchange an email and password for a bearer token.")
    async def login(self, info: Info, email: str, password: str) -> AuthPayload:
        context = info.context
        await context.throttle.check_login(email, context.client_address)
        try:
            user_id, generation = await authenticate(context.database, email, password)
        except Unauthenticated:
            await context.throttle.record_login_failure(email, context.client_address)
            raise
        await context.throttle.record_login_success(email)
        token, expires = issue_token(user_id, context.settings, generation)
        return AuthPayload(token=token, expires_at=expires, user=await _user(info, user_id))

    @strawberry.mutation(permission_classes=[IsAuthenticated], description=(
        "A short-lived, single-use ticket that signs in one Server-Sent Events stream of the viewer from its URL, "
        "for the browser's own EventSource, which cannot send the Authorization header."
    ))
    async def create_stream_ticket(self, info: Info) -> StreamTicket:
        context = info.context
        viewer = context.require_viewer()
        assert viewer.user_id is not None and context.access_expires_at is not None
        async with context.database.transaction() as session:
            ticket, expires_at = await mint_ticket(session, viewer.user_id, context.token_generation,
                                                   context.access_expires_at,
                                                   timedelta(seconds=context.settings.stream_ticket_seconds))
        return StreamTicket(ticket=ticket, expires_at=expires_at)

    @strawberry.mutation(permission_classes=[IsAdmin], description=(
        "An invitation for one email to register with this role (ADMIN), valid for INVITATION_DAYS."
    ))
    async def create_invitation(self, info: Info, email: str, role: Role = Role.USER) -> Invitation:
        token, normalized, expires_at = issue_invitation(email, role, info.context.settings)
        return Invitation(token=token, email=normalized, role=role, expires_at=expires_at)

    @strawberry.mutation(permission_classes=[IsAdmin], description=(
        "Activate or deactivate an account (ADMIN). Deactivating it ends its sessions: its tokens stop working "
        "and its live subscriptions end."
    ))
    async def set_user_active(self, info: Info, user_id: strawberry.ID, active: bool) -> User:
        _, pk = from_global_id(user_id, "User")
        async with info.context.database.transaction() as session:
            await set_user_active(session, pk, active)
        return await _user(info, pk)

    @strawberry.mutation(permission_classes=[IsAdmin], description=(
        "Give an account another role (ADMIN). Its sessions end: its tokens stop working and its live "
        "subscriptions end."
    ))
    async def set_user_role(self, info: Info, user_id: strawberry.ID, role: Role) -> User:
        _, pk = from_global_id(user_id, "User")
        async with info.context.database.transaction() as session:
            await set_user_role(session, pk, role)
        return await _user(info, pk)
