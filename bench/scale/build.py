"""Databases of 20,000 × F tasks, built by the project's migrations and bulk-loaded on the server.

Every value is computed by PostgreSQL from the row's series number (`hashint8extended`, the
hash PostgreSQL keeps stable for hash partitioning), so two builds at one factor hold the
same rows and nothing crosses the wire but the statements. The schema is migrated to
0003 (`LOAD_REVISION`); its keys, unique constraints, foreign keys and indexes are
dropped while the rows go in and then made again from their own definitions, and the
catalogue is compared before and after, so the loaded schema is the migrated one exactly.
A comment on the database, written last, marks a finished build; a later run reuses it.

The shape at factor F (N = 20,000 F tasks, task number n = 1..N in creation order over
two years ending at the build's hour):
- one "big" user owns every even n (half the tasks); one "small" user owns 25 odd n,
  spread over the 10% of tasks before the backlog; 400 other users share the other
  odd n; one WORKER and one ADMIN own nothing;
- the newest 5% of tasks are QUEUED (no analysis); the 0.1% before them PROCESSING
  (claimed by the WORKER, with a lease far in the future so the API's lease sweep
  leaves the data alone while it is measured); of the rest 1.5% FAILED, 0.5%
  CANCELLED and the others COMPLETED, each with one analysis of 3–18 findings
  (10.5 on average, ~9.8 per task overall), two source references each;
- verdicts 50% APPROVED, 30% REVIEW, 20% REJECTED; compliance scores 0–100; filenames
  carry one of 500 plant codes (`plant137`), so a `filenameContains` on one is selective;
- events as the API writes them (CREATED, STATUS_CHANGED, 0–4 PROGRESS,
  ANALYSIS_RECORDED, STATUS_CHANGED: ~5.5 per task), positions gap-free in
  (created_at, task_id, sequence) order as migration 0002 numbers them, and
  tasks.last_event_sequence equal to the task's event count.
"""

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import create_async_engine

from bench.seed import DOCUMENTS, EQUIPMENT, LOCATIONS, RULES
from bench.workload import BENCH_PASSWORD
from db import migrations

# Bump when the generated rows change, so databases built before are built again.
BUILD_VERSION = 1
# 0003, the head when this benchmark was written: the rows are loaded into its schema,
# then `upgrade head` runs whatever came after (timed).
LOAD_REVISION = "61e069a4908c"
TASKS_PER_FACTOR = 20_000
OTHER_USERS = 400
SMALL_USER_TASKS = 25
SPAN = timedelta(days=730)
BUILD_SCHEMA = "scale_build"


def _md5_uuid(text: str) -> uuid.UUID:
    # The same as PostgreSQL's md5(text)::uuid, which names every generated row.
    return uuid.UUID(hashlib.md5(text.encode()).hexdigest())


@dataclass(frozen=True)
class Account:
    key: str
    email: str
    role: str

    @property
    def id(self) -> uuid.UUID:
        return _md5_uuid(f"user:{self.key}")


BIG = Account("big", "scale-big@example.com", "USER")
SMALL = Account("small", "scale-small@example.com", "USER")
WORKER = Account("worker", "scale-worker@example.com", "WORKER")
ADMIN = Account("admin", "scale-admin@example.com", "ADMIN")
OTHERS = tuple(Account(str(index), f"scale-user-{index}@example.com", "USER") for index in range(OTHER_USERS))
ACCOUNTS = (BIG, SMALL, WORKER, ADMIN, *OTHERS)


@dataclass(frozen=True)
class Shape:
    factor: int

    @property
    def tasks(self) -> int:
        return TASKS_PER_FACTOR * self.factor

    @property
    def queued_after(self) -> int:
        """Tasks numbered above this are the QUEUED backlog (the newest 5%)."""
        return self.tasks * 95 // 100

    @property
    def processing_after(self) -> int:
        return self.queued_after - self.tasks // 1000

    @property
    def small_top(self) -> int:
        # Odd (queued_after is a multiple of 950), as every task of a user other than the big one.
        return self.queued_after - 1

    @property
    def small_step(self) -> int:
        # Even: 25 tasks over the ~10% of tasks before the backlog.
        return 2 * (self.tasks // 500)

    def database(self) -> str:
        return f"auditgraph_scale_{self.factor}"

    def marker(self) -> str:
        return f"auditgraph-bench scale v{BUILD_VERSION} factor {self.factor}"

    def describe(self) -> str:
        return f"{self.factor}x ({self.tasks:,} tasks)"


def _hash(key: str, salt: int) -> str:
    """A non-negative 31-bit hash of an integer expression, deterministic across servers."""
    return f"(hashint8extended({key}, {salt}) & 2147483647)"


def _plan_sql(shape: Shape, end: datetime) -> str:
    start = end - SPAN
    seconds_per_task = SPAN.total_seconds() / shape.tasks
    small = (f"n % 2 = 1 AND n <= {shape.small_top} AND ({shape.small_top} - n) % {shape.small_step} = 0 "
             f"AND ({shape.small_top} - n) / {shape.small_step} < {SMALL_USER_TASKS}")
    return f"""
CREATE UNLOGGED TABLE {BUILD_SCHEMA}.plan AS
SELECT n, id, user_id, status, created_at,
       CASE WHEN status IN ('QUEUED', 'CANCELLED') THEN NULL ELSE started END AS started_at,
       CASE WHEN status IN ('COMPLETED', 'FAILED') THEN finished
            WHEN status = 'CANCELLED' THEN created_at + (1 + h2 % 3600) * interval '1 second' END AS completed_at,
       progress, finding_count, verdict, page_count, h1, h2, h3,
       CASE WHEN status = 'FAILED'
            THEN 'the document could not be read: page ' || (1 + h3 % page_count) || ' is unreadable' END
           AS error_message,
       CASE status WHEN 'QUEUED' THEN 1 WHEN 'CANCELLED' THEN 2 WHEN 'PROCESSING' THEN 2 + progress
                   WHEN 'FAILED' THEN 3 + progress ELSE 4 + progress END AS event_count
FROM (
    SELECT n, id, user_id, status, created_at, h1, h2, h3,
           created_at + (1 + h1 % 300) * interval '1 second' AS started,
           created_at + (1 + h1 % 300 + 5 + h2 % 896) * interval '1 second' AS finished,
           (h3 % 9) / 2 AS progress,
           3 + (h3 / 9) % 16 AS finding_count,
           CASE WHEN (h3 / 144) % 10 < 5 THEN 'APPROVED' WHEN (h3 / 144) % 10 < 8 THEN 'REVIEW'
                ELSE 'REJECTED' END AS verdict,
           1 + (h2 / 3600) % 80 AS page_count
    FROM (
        SELECT n, md5('task:' || n)::uuid AS id,
               CASE WHEN n % 2 = 0 THEN '{BIG.id}'::uuid WHEN {small} THEN '{SMALL.id}'::uuid
                    ELSE md5('user:' || (n / 2) % {OTHER_USERS})::uuid END AS user_id,
               CASE WHEN n > {shape.queued_after} THEN 'QUEUED' WHEN n > {shape.processing_after} THEN 'PROCESSING'
                    WHEN {_hash('n', 1)} % 1000 < 15 THEN 'FAILED'
                    WHEN {_hash('n', 1)} % 1000 < 20 THEN 'CANCELLED' ELSE 'COMPLETED' END AS status,
               timestamptz '{start.isoformat()}'
                   + ((n - 1) + ({_hash('n', 2)} % 1000000) / 1000000.0) * {seconds_per_task!r} * interval '1 second'
                   AS created_at,
               {_hash('n', 3)} AS h1, {_hash('n', 4)} AS h2, {_hash('n', 5)} AS h3
        FROM generate_series(1, {shape.tasks}) AS n
    ) AS hashed
) AS derived
"""


def _vocabulary_sql() -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Small lookup tables of bench/seed.py's vocabulary, joined by a hash modulo their size."""
    rules = [(index, rule_id, category, title, unit, limit, f"{limit:g}", fix)
             for index, (rule_id, category, title, unit, limit, fix) in enumerate(RULES)]
    documents = [(index, name, content_type, extension)
                 for index, (name, content_type, extension) in enumerate(DOCUMENTS)]
    equipment = [(index, kind, test) for index, (kind, test) in enumerate(EQUIPMENT)]
    locations = [(index, location) for index, location in enumerate(LOCATIONS)]
    return [
        (f"CREATE UNLOGGED TABLE {BUILD_SCHEMA}.rules (i int PRIMARY KEY, rule_id text, category text, title text, "
         "unit text, lim float8, lim_text text, fix text)", rules),
        (f"CREATE UNLOGGED TABLE {BUILD_SCHEMA}.documents (i int PRIMARY KEY, name text, content_type text, "
         "extension text)", documents),
        (f"CREATE UNLOGGED TABLE {BUILD_SCHEMA}.equipment (i int PRIMARY KEY, kind text, test text)", equipment),
        (f"CREATE UNLOGGED TABLE {BUILD_SCHEMA}.locations (i int PRIMARY KEY, name text)", locations),
    ]


def _users_sql(password_hash: str, start: datetime) -> tuple[str, list[tuple[Any, ...]]]:
    joined = start - timedelta(days=30)
    rows = [(account.id, account.email, password_hash, True, account.role, joined, joined) for account in ACCOUNTS]
    return ("INSERT INTO users (id, email, hashed_password, is_active, role, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)", rows)


TASKS_SQL = f"""
INSERT INTO tasks (id, user_id, status, original_filename, content_type, file_path, file_size, file_hash,
                   page_count, error_message, started_at, completed_at, last_event_sequence,
                   claim_id, claimed_by, attempts, lease_expires_at, created_at, updated_at)
SELECT p.id, p.user_id, p.status,
       d.name || '-plant' || lpad((p.h1 / 6 % 500)::text, 3, '0') || '-' || lpad(p.n::text, 7, '0') || d.extension,
       d.content_type, substr(f.file_hash, 1, 2) || '/' || f.file_hash,
       CASE WHEN p.h2 % 100 = 0 THEN 5368709120 + p.h3::bigint * 1000 % 3221225472
            ELSE 20000 + p.h3 % 39980000 END,
       f.file_hash, p.page_count, p.error_message, p.started_at, p.completed_at, p.event_count,
       CASE WHEN p.status IN ('PROCESSING', 'COMPLETED', 'FAILED') THEN md5('claim:' || p.n)::uuid END,
       CASE WHEN p.status IN ('PROCESSING', 'COMPLETED', 'FAILED') THEN '{WORKER.id}'::uuid END,
       CASE WHEN p.status IN ('PROCESSING', 'COMPLETED', 'FAILED') THEN 1 ELSE 0 END,
       CASE WHEN p.status = 'PROCESSING' THEN p.started_at + interval '100 years' END,
       p.created_at, coalesce(p.completed_at, p.started_at, p.created_at)
FROM {BUILD_SCHEMA}.plan AS p
JOIN {BUILD_SCHEMA}.documents AS d ON d.i = p.h1 % 6
CROSS JOIN LATERAL (SELECT encode(sha256(convert_to('file:' || p.n, 'UTF8')), 'hex') AS file_hash) AS f
"""

ANALYSES_SQL = f"""
INSERT INTO analyses (id, task_id, equipment_type, test_type, equipment_tag, verdict, compliance_score,
                      confidence_score, summary, extraction_result, created_at, updated_at)
SELECT md5('analysis:' || p.n)::uuid, p.id, e.kind, e.test, 'EQ-' || (1000 + p.h1 % 9000), p.verdict,
       (p.h2 % 1001) / 10.0, 0.3 + (p.h3 % 701) / 1000.0,
       p.finding_count || ' findings on the ' || e.test || ' test of a ' || e.kind || '.',
       jsonb_build_object('pages', p.page_count, 'tables', p.h1 % 13),
       p.completed_at - interval '1 millisecond', p.completed_at - interval '1 millisecond'
FROM {BUILD_SCHEMA}.plan AS p
JOIN {BUILD_SCHEMA}.equipment AS e ON e.i = p.h2 % 5
WHERE p.status = 'COMPLETED'
"""

FINDINGS_SQL = f"""
INSERT INTO findings (id, analysis_id, severity, rule_id, category, message, evidence, remediation, confidence,
                      created_at, updated_at)
SELECT md5('finding:' || p.n || ':' || j)::uuid, md5('analysis:' || p.n)::uuid,
       CASE WHEN x.fh / 16 % 10 = 0 THEN 'CRITICAL' WHEN x.fh / 16 % 10 < 4 THEN 'MAJOR'
            WHEN x.fh / 16 % 10 < 8 THEN 'MINOR' ELSE 'INFO' END,
       r.rule_id, r.category,
       r.title || ' at ' || l.name || ': ' || m.measured || ' ' || r.unit || ', limit ' || r.lim_text || ' '
           || r.unit || ' (' || m.clause || ').',
       jsonb_build_object('measured', m.measured, 'limit', r.lim, 'unit', r.unit, 'clause', m.clause),
       r.fix || '.', 0.5 + (x.fh / 160 % 501) / 1000.0,
       p.completed_at - interval '1 millisecond', p.completed_at - interval '1 millisecond'
FROM {BUILD_SCHEMA}.plan AS p
CROSS JOIN LATERAL generate_series(1, p.finding_count) AS j
CROSS JOIN LATERAL (SELECT {_hash('p.n * 32 + j', 6)} AS fh) AS x
JOIN {BUILD_SCHEMA}.rules AS r ON r.i = x.fh % 16
JOIN {BUILD_SCHEMA}.locations AS l ON l.i = x.fh / 1280 % 8
CROSS JOIN LATERAL (
    SELECT CASE WHEN r.lim > 0 THEN round((r.lim * (1.05 + (x.fh / 80000 % 1951) / 1000.0))::numeric, 2)
                ELSE round(1 + (x.fh / 80000 % 4001) / 1000.0, 2) END AS measured,
           '§' || (3 + x.fh / 10240 % 10) || '.' || (1 + x.fh / 102400 % 9) AS clause
) AS m
WHERE p.status = 'COMPLETED'
"""

SOURCES_SQL = f"""
INSERT INTO source_references (id, finding_id, page_number, section, snippet, created_at, updated_at)
SELECT md5('source:' || p.n || ':' || j || ':' || s)::uuid, md5('finding:' || p.n || ':' || j)::uuid,
       1 + x.sh % p.page_count, 'Section ' || (1 + x.sh / 80 % 12) || '.' || (1 + x.sh / 960 % 9),
       'Reading ' || (1 + x.sh / 8640 % 40) || ' of table ' || (1 + x.sh / 345600 % 12)
           || ', recorded by the test instrument on site.',
       p.completed_at - interval '1 millisecond', p.completed_at - interval '1 millisecond'
FROM {BUILD_SCHEMA}.plan AS p
CROSS JOIN LATERAL generate_series(1, p.finding_count) AS j
CROSS JOIN generate_series(1, 2) AS s
CROSS JOIN LATERAL (SELECT {_hash('(p.n * 32 + j) * 2 + s', 7)} AS sh) AS x
WHERE p.status = 'COMPLETED'
"""

EVENTS_SQL = f"""
INSERT INTO task_events (id, task_id, sequence, position, type, data, created_at, updated_at)
SELECT md5('event:' || n || ':' || sequence)::uuid, task_id, sequence,
       row_number() OVER (ORDER BY at, task_id, sequence), type, data, at, at
FROM (
    SELECT p.n, p.id AS task_id, k.sequence, k.type,
           CASE WHEN k.type = 'CREATED' THEN jsonb_build_object('status', 'QUEUED')
                WHEN p.status = 'CANCELLED' THEN jsonb_build_object('from', 'QUEUED', 'to', 'CANCELLED')
                WHEN k.sequence = 2 THEN jsonb_build_object('from', 'QUEUED', 'to', 'PROCESSING', 'attempt', 1,
                                                            'workerId', '{WORKER.id}')
                WHEN k.type = 'PROGRESS' THEN jsonb_build_object(
                    'percent', 100 * (k.sequence - 2) / (p.progress + 1),
                    'message', 'page ' || (k.sequence - 2) || ' of ' || p.page_count)
                WHEN k.type = 'ANALYSIS_RECORDED' THEN jsonb_build_object(
                    'analysisId', md5('analysis:' || p.n)::uuid::text, 'verdict', p.verdict,
                    'findingCount', p.finding_count, 'replaced', false)
                WHEN p.status = 'FAILED' THEN jsonb_build_object('from', 'PROCESSING', 'to', 'FAILED',
                                                                 'errorMessage', p.error_message)
                ELSE jsonb_build_object('from', 'PROCESSING', 'to', 'COMPLETED') END AS data,
           CASE WHEN k.type = 'CREATED' THEN p.created_at
                WHEN p.status = 'CANCELLED' THEN p.completed_at
                WHEN k.sequence = 2 THEN p.started_at
                WHEN k.type = 'PROGRESS' AND p.status = 'PROCESSING'
                    THEN p.started_at + (k.sequence - 2) * interval '10 seconds'
                WHEN k.type = 'PROGRESS'
                    THEN p.started_at + (p.completed_at - p.started_at) * (k.sequence - 2) / (p.progress + 1)
                WHEN k.type = 'ANALYSIS_RECORDED' THEN p.completed_at - interval '1 millisecond'
                ELSE p.completed_at END AS at
    FROM {BUILD_SCHEMA}.plan AS p
    CROSS JOIN LATERAL (
        SELECT sequence,
               CASE WHEN sequence = 1 THEN 'CREATED'
                    WHEN p.status = 'CANCELLED' OR sequence = 2 THEN 'STATUS_CHANGED'
                    WHEN sequence <= 2 + p.progress THEN 'PROGRESS'
                    WHEN p.status = 'COMPLETED' AND sequence = 3 + p.progress THEN 'ANALYSIS_RECORDED'
                    ELSE 'STATUS_CHANGED' END AS type
        FROM generate_series(1, p.event_count) AS sequence
    ) AS k
) AS events
"""

SCHEMA_OBJECTS_SQL = """
SELECT 'constraint' AS kind, conrelid::regclass::text AS table_name, conname AS name, contype::text AS type,
       pg_get_constraintdef(oid) AS definition
FROM pg_constraint
WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'u', 'f') AND conrelid::regclass::text <> 'alembic_version'
UNION ALL
SELECT 'index', tablename::text, indexname::text, '', indexdef
FROM pg_indexes
WHERE schemaname = 'public' AND tablename <> 'alembic_version'
  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace)
ORDER BY 1, 2, 3
"""


@dataclass(frozen=True)
class SchemaObject:
    kind: str
    table: str
    name: str
    type: str
    definition: str


async def schema_objects(connection: asyncpg.Connection) -> list[SchemaObject]:
    rows = await connection.fetch(SCHEMA_OBJECTS_SQL)
    return [SchemaObject(row["kind"], row["table_name"], row["name"], row["type"], row["definition"])
            for row in rows]


async def _drop(connection: asyncpg.Connection, objects: list[SchemaObject]) -> None:
    # Foreign keys first: a key or unique constraint cannot go while one refers to it.
    for item in sorted(objects, key=lambda item: item.type != "f"):
        if item.kind == "constraint":
            await connection.execute(f'ALTER TABLE "{item.table}" DROP CONSTRAINT "{item.name}"')
        else:
            await connection.execute(f'DROP INDEX "{item.name}"')


def _create_statement(item: SchemaObject) -> str:
    if item.kind == "constraint":
        return f'ALTER TABLE "{item.table}" ADD CONSTRAINT "{item.name}" {item.definition}'
    return item.definition


async def _in_parallel(pool: asyncpg.Pool, statements: list[str],
                       run: Callable[[asyncpg.Connection, str], Awaitable[None]]) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for statement in statements:
        queue.put_nowait(statement)

    async def drain() -> None:
        async with pool.acquire() as connection:
            while not queue.empty():
                await run(connection, queue.get_nowait())

    await asyncio.gather(*(drain() for _ in range(pool.get_max_size())))


class Builder:
    """Builds one database on a running server; `connections` statements run at a time."""

    def __init__(self, dsn: Callable[[str], str], url: Callable[[str], str], connections: int = 2) -> None:
        self.dsn = dsn
        self.url = url
        self.connections = connections
        self.steps: dict[str, float] = {}

    async def is_built(self, shape: Shape) -> bool:
        connection = await asyncpg.connect(self.dsn("postgres"))
        try:
            comment = await connection.fetchval(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
                shape.database())
        finally:
            await connection.close()
        return bool(comment == shape.marker())

    async def build(self, shape: Shape) -> float:
        """Builds the database from nothing; returns the seconds it took."""
        started = time.monotonic()
        self.steps = {}
        await self._step("create and migrate to 0003", self._create(shape))
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        pool = await asyncpg.create_pool(self.dsn(shape.database()), min_size=self.connections,
                                         max_size=self.connections, init=_build_session, statement_cache_size=0)
        assert pool is not None
        try:
            async with pool.acquire() as connection:
                migrated = await schema_objects(connection)
                await _drop(connection, migrated)
                await connection.execute(f"CREATE SCHEMA {BUILD_SCHEMA}")
                for create, rows in _vocabulary_sql():
                    await connection.execute(create)
                    table = create.split()[3]
                    marks = ", ".join(f"${index + 1}" for index in range(len(rows[0])))
                    await connection.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
                await self._step("plan", connection.execute(_plan_sql(shape, end)))
                password_hash = PasswordHasher().hash(BENCH_PASSWORD)
                await connection.executemany(*_users_sql(password_hash, end - SPAN))
            # Largest first, two at a time: the two cores stay busy until the end.
            loads = [("findings", FINDINGS_SQL), ("source_references", SOURCES_SQL), ("task_events", EVENTS_SQL),
                     ("tasks", TASKS_SQL), ("analyses", ANALYSES_SQL)]
            await self._step("load rows", _in_parallel(pool, [sql for _, sql in loads], self._timed_load(loads)))
            creates = [_create_statement(item) for item in migrated if item.type != "f"]
            # The biggest tables' indexes first, for the same reason.
            creates.sort(key=lambda sql: not any(name in sql for name in ("findings", "source_references")))
            await self._step("keys and indexes", _in_parallel(pool, creates, _execute))
            await self._step("foreign keys", _in_parallel(
                pool, [_create_statement(item) for item in migrated if item.type == "f"], _execute))
            async with pool.acquire() as connection:
                rebuilt = await schema_objects(connection)
                if rebuilt != migrated:
                    raise RuntimeError("the rebuilt keys and indexes differ from the migrated schema's:\n"
                                       f"{sorted(set(migrated) ^ set(rebuilt), key=str)}")
                await connection.execute(f"DROP SCHEMA {BUILD_SCHEMA} CASCADE")
            # The steady state autovacuum would reach: statistics and a visibility map.
            await self._step("vacuum and analyze", _in_parallel(
                pool, [f'VACUUM (ANALYZE) "{table}"' for table in
                       ("source_references", "findings", "task_events", "tasks", "analyses", "users")], _execute))
            async with pool.acquire() as connection:
                await connection.execute(f"COMMENT ON DATABASE \"{shape.database()}\" IS '{shape.marker()}'")
        finally:
            await pool.close()
        return time.monotonic() - started

    async def _create(self, shape: Shape) -> None:
        connection = await asyncpg.connect(self.dsn("postgres"))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{shape.database()}"')
            await connection.execute(f'CREATE DATABASE "{shape.database()}"')
        finally:
            await connection.close()
        engine = create_async_engine(self.url(shape.database()))
        try:
            await migrations.upgrade(engine, LOAD_REVISION)
        finally:
            await engine.dispose()

    def _timed_load(self, loads: list[tuple[str, str]]) -> Callable[[asyncpg.Connection, str], Awaitable[None]]:
        names = {sql: name for name, sql in loads}

        async def run(connection: asyncpg.Connection, sql: str) -> None:
            await self._step(names[sql], connection.execute(sql), indent=True)

        return run

    async def _step(self, name: str, work: Awaitable[object], indent: bool = False) -> None:
        started = time.monotonic()
        await work
        self.steps[name] = time.monotonic() - started
        print(f"{'    ' if indent else '  '}{name}: {self.steps[name]:.1f} s", flush=True)


async def _build_session(connection: asyncpg.Connection) -> None:
    # Big sorts (the event positions, the index builds) in memory; the two cores are
    # shared by the two connections, not by parallel workers as well.
    await connection.execute("SET work_mem = '1GB'; SET maintenance_work_mem = '2GB'; "
                             "SET max_parallel_maintenance_workers = 0; SET max_parallel_workers_per_gather = 0")


async def _execute(connection: asyncpg.Connection, sql: str) -> None:
    await connection.execute(sql)
