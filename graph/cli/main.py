"""The `auditgraph` command: serve the API, migrate the database, manage accounts and trusted documents,
check a deployment.

Settings come from the environment and a `.env` file (see README.md); `.env` and
a relative DATA_DIR are found in the source checkout this runs from whatever the
current directory, or, for an installed package, in the current directory.
"""

import argparse
import asyncio
import os
import sys
from contextlib import ExitStack

import uvicorn

from db import migrations
from db.engine import create_engine
from db.settings import Settings
from graph.access.trusted_documents import trusted_documents as read_trusted_documents
from graph.cli.arguments import port, positive
from graph.cli.commands import check, demo, trusted_documents, users
from graph.cli.commands.database import migrate as run_migration
from graph.cli.commands.database import prepare_embedded, sqlite_file_missing
from graph.cli.commands.failures import REFUSED, CommandError, describe
from graph.observability.logs import log_config
from graph.observability.workers import shared_by_workers

DEBUG = "AUDITGRAPH_DEBUG"


def serve(settings: Settings, args: argparse.Namespace) -> int:
    settings.check_production_ready()
    if settings.is_sqlite and args.workers > 1:
        raise CommandError(
            "--workers above 1 needs PostgreSQL (DATABASE_URL): on the embedded SQLite default each worker "
            "would hear only its own writes, and live subscribers would miss the others' events", REFUSED)
    # Read here too, so a bad file is one line on the terminal, not a traceback from a worker.
    read_trusted_documents(settings)
    prepare_embedded(settings)
    with ExitStack() as stack:
        if args.workers > 1:
            stack.enter_context(shared_by_workers())
        uvicorn.run(
            "graph.app:create_app_from_environment",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers,
            log_config=log_config(settings),
            log_level=settings.log_level,
            # The request line (graph/http/observed_requests.py) says all the access line did, and more.
            access_log=False,
            proxy_headers=True,
            # Live events are messages of a few hundred bytes: compressing them saves little, and
            # permessage-deflate costs every connection about 50 KiB of zlib state, half of what an
            # idle subscriber holds, and every message a deflate.
            ws_per_message_deflate=False,
            # A WebSocket message is bounded like an HTTP body: larger ones close the socket with 1009.
            ws_max_size=settings.max_request_bytes,
            # Past it, requests still in flight (a stalled upload) are cut off so the process can stop.
            timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        )
    return 0


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.direction == "status":
        return migration_status(settings)
    if args.direction == "downgrade" and not args.revision:
        raise CommandError("downgrade needs a target revision (e.g. -1 or base)", REFUSED)
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(run_migration(settings, args.direction, args.revision or "head"))
    return 0


def migration_status(settings: Settings) -> int:
    if reason := sqlite_file_missing(settings):
        raise CommandError(reason)

    async def current() -> str | None:
        engine = create_engine(settings)
        try:
            return await migrations.current_revision(engine)
        finally:
            await engine.dispose()

    revision, head = asyncio.run(current()), migrations.head_revision()
    if revision == head:
        print(f"at head ({head})")
        return 0
    print(f"at {revision or 'no revision (empty database)'}; the newest is {head}: run `auditgraph migrate`")
    return 1


def schema(settings: Settings | None, args: argparse.Namespace) -> int:
    # Imported here, as in graph/cli/commands/trusted_documents.py: the schema brings the metrics.
    from graph.schema import export_sdl

    print(export_sdl(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditgraph", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = commands.add_parser(
        "serve", help="serve the API with uvicorn (the embedded SQLite default is created and migrated first)",
        description="Serve the API. On the embedded SQLite default the data folder and database are created "
                    "and migrated first; on PostgreSQL run `auditgraph migrate` once per deploy instead.")
    serve_parser.add_argument("--host", help="address to listen on (default: HOST, 127.0.0.1)")
    serve_parser.add_argument("--port", type=port, help="port to listen on, 1 to 65535 (default: PORT, 8000)")
    serve_parser.add_argument("--workers", type=positive, default=1,
                              help="worker processes (default 1; more than 1 needs PostgreSQL)")
    serve_parser.set_defaults(handler=serve)

    migrate_parser = commands.add_parser(
        "migrate", help="upgrade or downgrade the database schema, or show where it stands",
        description="Upgrade the database to the newest migration (the default), downgrade it to a revision, "
                    "or show its status (exit 1 when it is behind).")
    migrate_parser.add_argument("direction", choices=["upgrade", "downgrade", "status"], nargs="?",
                                default="upgrade", help="what to do (default upgrade)")
    migrate_parser.add_argument("revision", nargs="?",
                                help="the target revision (default head; downgrade needs one, e.g. -1 or base)")
    migrate_parser.set_defaults(handler=migrate)

    users.add_parsers(commands)
    check.add_parser(commands)
    demo.add_parser(commands)
    trusted_documents.add_parser(commands)

    schema_parser = commands.add_parser("schema", help="print the GraphQL schema (SDL)",
                                        description="Print the GraphQL schema in SDL, as schema.graphql holds it.")
    schema_parser.set_defaults(handler=schema, needs_settings=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = None
    try:
        if getattr(args, "needs_settings", True):
            settings = Settings()
        return int(args.handler(settings, args))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if os.environ.get(DEBUG):
            raise
        message, exit_code = describe(error, settings.database_url if settings else None)
        print(message, file=sys.stderr)
        return exit_code

