"""The `auditgraph` command: serve, migrate, create-user."""

import argparse
import asyncio
import getpass
import sys

import uvicorn

from db import migrations
from db.engine import Database, create_engine
from db.enums import Role
from db.errors import DomainError
from db.settings import Settings
from db.users import register_user
from graph.observability.logs import log_config


async def _migrate(settings: Settings, direction: str, revision: str) -> None:
    engine = create_engine(settings)
    try:
        if direction == "upgrade":
            await migrations.upgrade(engine, revision)
        else:
            await migrations.downgrade(engine, revision)
    finally:
        await engine.dispose()


def serve(settings: Settings, args: argparse.Namespace) -> int:
    settings.check_production_ready()
    if settings.is_sqlite:
        # The embedded default sets itself up: data folder, database file, schema.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(_migrate(settings, "upgrade", "head"))
    uvicorn.run(
        "graph.app:create_app_from_environment",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        log_config=log_config(settings),
        log_level=settings.log_level,
        # The request line (graph/observability/requests.py) says all the access line did, and more.
        access_log=False,
        proxy_headers=True,
    )
    return 0


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.direction == "downgrade" and not args.revision:
        print("downgrade needs a target revision (e.g. -1 or base)", file=sys.stderr)
        return 2
    asyncio.run(_migrate(settings, args.direction, args.revision or "head"))
    return 0


async def _create_user(settings: Settings, email: str, password: str, role: Role) -> str:
    database = Database.from_settings(settings)
    try:
        async with database.transaction() as session:
            user = await register_user(session, email, password, role)
        return user.email
    finally:
        await database.dispose()


def create_user(settings: Settings, args: argparse.Namespace) -> int:
    # Never from argv: it would sit in the shell history and the process list.
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        email = asyncio.run(_create_user(settings, args.email, password, Role(args.role)))
    except DomainError as error:
        print(error.message, file=sys.stderr)
        return 2
    print(f"created {args.role} {email}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditgraph", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="serve the API with uvicorn")
    serve_parser.add_argument("--host")
    serve_parser.add_argument("--port", type=int)
    serve_parser.add_argument("--workers", type=int, default=1)
    serve_parser.set_defaults(handler=serve)

    migrate_parser = commands.add_parser("migrate", help="upgrade or downgrade the schema")
    migrate_parser.add_argument("direction", choices=["upgrade", "downgrade"], nargs="?", default="upgrade")
    migrate_parser.add_argument("revision", nargs="?")
    migrate_parser.set_defaults(handler=migrate)

    user_parser = commands.add_parser("create-user", help="create an account; the password is read from stdin")
    user_parser.add_argument("--email", required=True)
    user_parser.add_argument("--role", choices=[role.value for role in Role], default=Role.USER.value)
    user_parser.set_defaults(handler=create_user)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValueError as error:
        print(f"invalid settings: {error}", file=sys.stderr)
        return 2
    try:
        return args.handler(settings, args)
    except RuntimeError as error:
        print(str(error), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
