"""What PostgreSQL did for a run: statements executed in one database, CPU of the whole cluster."""

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.processes import process_tree_cpu_seconds

_STATEMENTS = """
SELECT query, calls FROM pg_stat_statements WHERE dbid = $1 AND toplevel
"""
# Transaction control, session settings and pool pings are not statements the
# application chose to run; they are left out of "SQL statements per request".
_NOT_DATA = re.compile(
    r"\s*(begin|commit|rollback|start|end|savepoint|release|set|reset|show|discard|deallocate|"
    r"listen|unlisten|close)\b|\s*(select\s+(1|\$1))?\s*;?\s*$",
    re.IGNORECASE)


def is_data_statement(query: str) -> bool:
    return _NOT_DATA.match(query) is None


def _short(query: str, length: int = 160) -> str:
    text = " ".join(query.split())
    return text if len(text) <= length else text[: length - 1] + "…"


@dataclass(frozen=True)
class Snapshot:
    calls: Counter[str]  # by (shortened) statement text, utility statements included
    cpu_seconds: float

    def since(self, before: "Snapshot") -> "Snapshot":
        calls = Counter(self.calls)
        calls.subtract(before.calls)
        return Snapshot(+calls, self.cpu_seconds - before.cpu_seconds)

    @property
    def data_statements(self) -> int:
        return sum(count for query, count in self.calls.items() if is_data_statement(query))


class PostgresStats:
    """Reads pg_stat_statements (preloaded by the server) from the maintenance database."""

    def __init__(self, connection: asyncpg.Connection, database_oid: int, postmaster_pid: int) -> None:
        self._connection = connection
        self._database_oid = database_oid
        self._postmaster_pid = postmaster_pid

    @classmethod
    async def open(cls, maintenance_dsn: str, database: str) -> "PostgresStats":
        connection = await asyncpg.connect(maintenance_dsn)
        try:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            oid = await connection.fetchval("SELECT oid FROM pg_database WHERE datname = $1", database)
            data_directory = await connection.fetchval("SHOW data_directory")
            # The first line of postmaster.pid is the postmaster's pid.
            pid = int((Path(data_directory) / "postmaster.pid").read_text().split()[0])
        except BaseException:
            await connection.close()
            raise
        return cls(connection, int(oid), pid)

    async def snapshot(self) -> Snapshot:
        calls: Counter[str] = Counter()
        for row in await self._connection.fetch(_STATEMENTS, self._database_oid):
            calls[_short(row["query"])] += row["calls"]
        return Snapshot(calls, process_tree_cpu_seconds(self._postmaster_pid))

    async def server_version(self) -> str:
        return str(await self._connection.fetchval("SHOW server_version"))

    async def close(self) -> None:
        await self._connection.close()
