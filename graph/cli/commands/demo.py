"""`auditgraph demo`: a data set for a first look in GraphiQL."""

import argparse
import asyncio

from sqlalchemy import func, select

from db.demo import DOMAIN, DemoAccount, load_demo_data
from db.models import User
from db.settings import Settings
from graph.cli.commands.database import existing_database, prepare_embedded


async def _load(settings: Settings, only_if_empty: bool) -> list[DemoAccount] | None:
    async with existing_database(settings) as database:
        if only_if_empty:
            async with database.read() as connection:
                if await connection.scalar(select(func.count()).select_from(User)):
                    return None
        return await load_demo_data(database, settings)


def demo(settings: Settings, args: argparse.Namespace) -> int:
    prepare_embedded(settings)
    accounts = asyncio.run(_load(settings, args.if_empty))
    if accounts is None:
        print("the database has accounts already: no demo data added")
        return 0
    print(f"Added the demo data set: tasks in every status, analyses with findings, events. "
          f"The accounts (@{DOMAIN}) and their passwords, shown only now:")
    for account in accounts:
        print(f"  {account.email:<24} {account.role.value:<6} {account.password}")
    print("Sign in with the `login` mutation in GraphiQL, then put the token in the Headers tab as "
          '{"Authorization": "Bearer <token>"}.')
    return 0


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "demo", help="add a demo data set (accounts, tasks in every status, analyses, events) for a first look",
        description="Add a demo data set: an ADMIN, a WORKER and two USER accounts with new passwords (printed "
                    "once), tasks in every status with stored files, analyses with findings and sources, an "
                    "artifact, and their events. The embedded SQLite database is created first if need be.")
    parser.add_argument("--if-empty", action="store_true",
                        help="add it only when the database has no accounts yet (and say so otherwise)")
    parser.set_defaults(handler=demo)
