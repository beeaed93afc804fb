"""`auditgraph check`: what /readyz sees, from the shell, before a server is started."""

import argparse
import asyncio
import tempfile
from pathlib import Path

from db.engine import Database, create_engine
from db.figures import drift
from db.settings import HOME, Settings
from db.storage_marker import unshared_storage
from graph.cli.commands.database import schema_behind, sqlite_file_missing
from graph.cli.commands.failures import FAILED, describe, shown_url


def _writable_folder(folder: Path) -> str | None:
    """Why files cannot be written under `folder` (made on first upload if missing), or None."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"cannot write in {existing}: {error.strerror}"
    return None


async def _database(settings: Settings) -> tuple[str | None, str | None]:
    """(why the database cannot be reached, why its schema is not at head)."""
    if reason := sqlite_file_missing(settings):
        return reason, None
    try:
        behind = await schema_behind(settings)
    except Exception as error:  # noqa: BLE001 - whatever it is, it is the one line to show
        return describe(error, settings.database_url)[0], None
    return None, behind


async def _shared_storage(settings: Settings) -> str | None:
    """Why the upload folder is not the one the deployment's other processes share, or None."""
    database = Database.from_settings(settings)
    try:
        return await unshared_storage(database, settings.upload_dir)
    finally:
        await database.dispose()


async def _figures(settings: Settings) -> tuple[str | None, str]:
    """(how the kept figures differ from a recount, or None; what was compared)."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            found = await drift(connection)
    finally:
        await engine.dispose()
    compared = (f"{found.owners_checked} owners, {found.days_checked} owner-days and everyone's tasks per day "
                "equal a recount from the tasks")
    if not found.differences:
        return None, compared
    shown = "; ".join(found.differences[:5])
    more = f" (and {len(found.differences) - 5} more)" if len(found.differences) > 5 else ""
    return f"{len(found.differences)} kept figures differ from a recount: {shown}{more}", compared


def check(settings: Settings, args: argparse.Namespace) -> int:
    results: list[tuple[str, str | None, str]] = []
    try:
        settings.check_production_ready()
        problem = None
    except RuntimeError as error:
        problem = str(error)
    results.append(("settings", problem,
                    f"{settings.environment}, .env and relative paths from {HOME}, data in {settings.data_dir}"))
    unreachable, behind = asyncio.run(_database(settings))
    results.append(("database", unreachable, f"reachable at {shown_url(settings.database_url)}"))
    if unreachable is None:
        results.append(("schema", behind, "at the newest migration"))
    storage, stored = _writable_folder(settings.upload_dir), f"uploads writable in {settings.upload_dir}"
    if storage is None and unreachable is None and behind is None:
        storage = asyncio.run(_shared_storage(settings))
        stored += ", the folder every process shares (it holds the marker the database names)"
    results.append(("storage", storage, stored))
    if args.figures and unreachable is None and behind is None:
        results.append(("figures", *asyncio.run(_figures(settings))))
    for name, problem, fine in results:
        print(f"{name:<9} {'ok' if problem is None else 'FAILED':<6} {problem or fine}")
    return 0 if all(problem is None for _, problem, _ in results) else FAILED


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "check", help="check the settings, the database (reachable, schema at head) and storage",
        description="Check what the server needs before it starts: settings fit for the environment, the "
                    "database reachable with its schema at the newest migration, the upload folder writable. "
                    "Exits 1 when anything fails.")
    parser.add_argument("--figures", action="store_true",
                        help="also recount every owner's dashboard figures from the tasks, analyses and findings "
                             "and compare them with the figures kept as the data changes (reads every row: slow "
                             "on a large database)")
    parser.set_defaults(handler=check)
