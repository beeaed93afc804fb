"""Accounts from the shell: create, list, change a role, (de)activate, set a password, invite.

Role and activation changes go through the same operations as the API's, which
announce the change: the account's open subscriptions end on every worker.
"""

import argparse
import asyncio
import getpass
import sys
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from db.enums import Role
from db.models import User
from db.settings import Settings
from db.users import list_users, register_user, set_user_active, set_user_password, set_user_role, user_by_email
from graph.access.invitations import issue_invitation
from graph.cli.arguments import positive
from graph.cli.commands.database import existing_database
from graph.cli.commands.failures import REFUSED, CommandError


def read_password() -> str:
    """From a prompt, twice, on a terminal; else the first line of stdin. Never from argv: it would sit in the
    shell history and the process list."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise CommandError("the passwords differ", REFUSED)
    return password


def create_user(settings: Settings, args: argparse.Namespace) -> int:
    password = read_password()

    async def create() -> str:
        async with existing_database(settings) as database, database.transaction() as session:
            return (await register_user(session, args.email, password, Role(args.role))).email

    print(f"created {args.role} {asyncio.run(create())}")
    return 0


def list_accounts(settings: Settings, args: argparse.Namespace) -> int:
    async def read() -> list[tuple[str, str, str, str]]:
        async with existing_database(settings) as database, database.sessions() as session:
            return [(user.email, user.role.value, "active" if user.is_active else "inactive",
                     user.created_at.strftime("%Y-%m-%d %H:%M"))
                    for user in await list_users(session, Role(args.role) if args.role else None)]

    rows = asyncio.run(read())
    if not rows:
        print("no accounts")
        return 0
    width = max(len(row[0]) for row in rows)
    for email, role, active, created in rows:
        print(f"{email:<{width}}  {role:<6}  {active:<8}  {created}")
    return 0


def _changed(settings: Settings, email: str, change: Callable[[AsyncSession, uuid.UUID], Awaitable[User]]) -> str:
    """Apply `change` to the account with this email, in one transaction; the account's stored email."""

    async def run() -> str:
        async with existing_database(settings) as database, database.transaction() as session:
            user = await user_by_email(session, email)
            return (await change(session, user.id)).email

    return asyncio.run(run())


def set_role(settings: Settings, args: argparse.Namespace) -> int:
    email = _changed(settings, args.email, lambda session, user_id: set_user_role(session, user_id, Role(args.role)))
    print(f"{email} is now {args.role}")
    return 0


def set_active(settings: Settings, args: argparse.Namespace) -> int:
    active = args.active == "yes"
    email = _changed(settings, args.email, lambda session, user_id: set_user_active(session, user_id, active))
    print(f"{email} is now {'active' if active else 'inactive'}")
    return 0


def set_password(settings: Settings, args: argparse.Namespace) -> int:
    password = read_password()
    email = _changed(settings, args.email, lambda session, user_id: set_user_password(session, user_id, password))
    print(f"the password of {email} is changed")
    return 0


def invite(settings: Settings, args: argparse.Namespace) -> int:
    # Signed with SECRET_KEY: one anyone could know would let anyone mint them.
    settings.check_production_ready()
    token, email, expires_at = issue_invitation(args.email, Role(args.role), settings, args.days)
    # The invitation alone on stdout, for a script to capture; what it grants on stderr, for the operator.
    print(token)
    print(f"an invitation for {email} to register as {args.role}, valid until {expires_at:%Y-%m-%d %H:%M} UTC",
          file=sys.stderr)
    if settings.registration == "closed":
        print("REGISTRATION is closed: register accepts no invitation until it is invite or open", file=sys.stderr)
    return 0


def add_parsers(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    roles = [role.value for role in Role]
    create = commands.add_parser(
        "create-user", help="create an account; the password is read from a prompt or stdin",
        description="Create an account. The password is read from a prompt (twice) or, when stdin is not a "
                    "terminal, from its first line; never from the command line.")
    create.add_argument("--email", required=True, help="the account's email")
    create.add_argument("--role", choices=roles, default=Role.USER.value, help="the account's role (default USER)")
    create.set_defaults(handler=create_user)

    users = commands.add_parser("users", help="list accounts, change a role, (de)activate, set a password",
                                description="Manage accounts.")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every account, oldest first", description="List accounts.")
    listing.add_argument("--role", choices=roles, help="only accounts of this role")
    listing.set_defaults(handler=list_accounts)

    role = actions.add_parser("set-role", help="change an account's role (its sessions end)",
                              description="Change an account's role; its tokens stop working and its open subscriptions end on "
                                          "every worker.")
    role.add_argument("email", help="the account's email")
    role.add_argument("role", choices=roles, help="the new role")
    role.set_defaults(handler=set_role)

    active = actions.add_parser(
        "set-active", help="activate or deactivate an account (deactivation ends its live subscriptions)",
        description="Activate or deactivate an account. A deactivated account cannot sign in, its tokens are "
                    "refused (for good: they stay refused once it is active again) and its open subscriptions end "
                    "on every worker.")
    active.add_argument("email", help="the account's email")
    active.add_argument("active", choices=["yes", "no"], help="yes to activate, no to deactivate")
    active.set_defaults(handler=set_active)

    password = actions.add_parser(
        "set-password", help="set an account's password (read from a prompt or stdin)",
        description="Set an account's password, read from a prompt (twice) or the first line of stdin. Every "
                    "session opened before ends: its tokens stop working and its open subscriptions end.")
    password.add_argument("email", help="the account's email")
    password.set_defaults(handler=set_password)

    invitation = actions.add_parser(
        "invite", help="print an invitation for one email to register (REGISTRATION=invite)",
        description="Print an invitation that lets one email register, with a role, until it expires: "
                    "`register(email, password, invitation)`. It is signed with SECRET_KEY (no database is "
                    "needed) and registers one account, as an email has one.")
    invitation.add_argument("email", help="the email it is for")
    invitation.add_argument("--role", choices=roles, default=Role.USER.value,
                            help="the role it grants (default USER)")
    invitation.add_argument("--days", type=positive, help="how long it lasts (default INVITATION_DAYS, 7)")
    invitation.set_defaults(handler=invite)
