"""The `auditgraph` command: serve, migrate, create-user."""

import argparse
import asyncio
import sys

import uvicorn

from db import migrations
from db.engine import create_engine
from db.settings import Settings


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
        log_level=settings.log_level,
        proxy_headers=True,
    )
    return 0


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.direction == "downgrade" and not args.revision:
        print("downgrade needs a target revision (e.g. -1 or base)", file=sys.stderr)
        return 2
    asyncio.run(_migrate(settings, args.direction, args.revision or "head"))
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
