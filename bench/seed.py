"""Deterministic seeding of the benchmark database, on PostgreSQL (COPY) or SQLite.

    python -m bench.seed --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench [--scale 10]

Every value comes from a random generator seeded per user, so two databases
seeded at the same scale hold the same rows (same ids, same text). The
database is migrated to head first; a marker written in the same transaction
as the rows (a comment on the PostgreSQL database, `PRAGMA user_version` on
SQLite) makes a second run at the same scale a no-op.
"""

import argparse
import asyncio
import hashlib
import os
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from argon2 import PasswordHasher
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from tqdm import tqdm

from bench.workload import BENCH_PASSWORD, Scale, user_email
from db import migrations
from db.base import Base
from db.models import User  # noqa: F401  (registers every table of the schema)

# Bump when the generated rows change, so old seeded databases are not reused.
SEED_VERSION = 1
BASE_TIME = datetime(2023, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=730)
BATCH_TASKS = 5_000

COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("id", "email", "hashed_password", "is_active", "role", "created_at", "updated_at"),
    "tasks": ("id", "user_id", "status", "original_filename", "content_type", "file_path", "file_size",
              "file_hash", "page_count", "started_at", "completed_at", "last_event_sequence",
              "created_at", "updated_at"),
    "analyses": ("id", "task_id", "equipment_type", "test_type", "equipment_tag", "verdict",
                 "compliance_score", "confidence_score", "summary", "extraction_result",
                 "created_at", "updated_at"),
    "findings": ("id", "analysis_id", "severity", "rule_id", "category", "message", "evidence",
                 "remediation", "confidence", "created_at", "updated_at"),
    "task_events": ("id", "task_id", "sequence", "type", "data", "position", "created_at", "updated_at"),
}
JSON_COLUMNS = {"analyses": {"extraction_result"}, "findings": {"evidence"}, "task_events": {"data"}}

# (rule id, category, what was checked, unit, limit, what to do about it)
RULES: tuple[tuple[str, str, str, str, float, str], ...] = (
    ("GND-01", "grounding", "Ground resistance above the permitted maximum", "ohm", 10.0,
     "Re-bond the grounding conductor, clean the contact surfaces and measure again"),
    ("GND-02", "grounding", "Equipotential bonding continuity not demonstrated", "ohm", 0.1,
     "Add the missing bonding jumpers and record a continuity test for each of them"),
    ("INS-01", "insulation", "Insulation resistance below the minimum for the rated voltage", "Mohm", 100.0,
     "Dry out the winding, repeat the test at the rated voltage and attach the polarisation index"),
    ("INS-02", "insulation", "Polarisation index outside the accepted band", "ratio", 2.0,
     "Investigate moisture ingress and repeat the ten-minute test after conditioning"),
    ("TMP-01", "thermal", "Hot spot temperature rise above the class limit", "K", 65.0,
     "Check the cooling circuit, tighten the terminations and repeat the thermographic survey"),
    ("VIB-01", "mechanical", "Vibration velocity above the alarm threshold", "mm/s", 4.5,
     "Re-balance the rotor, check the alignment and trend the readings for two weeks"),
    ("DOC-01", "documentation", "Calibration certificate of the test instrument is missing", "days", 365.0,
     "Attach a valid calibration certificate that covers the test date"),
    ("DOC-02", "documentation", "Test report is not signed by an authorised engineer", "signatures", 1.0,
     "Have the responsible engineer sign and date every page of the report"),
    ("DOC-03", "documentation", "Nameplate data differs from the asset register", "fields", 0.0,
     "Correct the asset register or the nameplate photograph and explain the difference"),
    ("PRT-01", "protection", "Protection relay trip time exceeds the coordination study", "ms", 80.0,
     "Adjust the relay settings to the coordination study and repeat the secondary injection"),
    ("PRT-02", "protection", "Residual current device did not trip within the limit", "ms", 300.0,
     "Replace the residual current device and repeat the trip test at the rated current"),
    ("OIL-01", "oil", "Dissolved gas analysis shows acetylene above the caution level", "ppm", 2.0,
     "Take a confirmation sample within a week and plan an internal inspection"),
    ("OIL-02", "oil", "Breakdown voltage of the insulating oil below the limit", "kV", 30.0,
     "Filter and dry the oil, then repeat the breakdown voltage test"),
    ("LBL-01", "labelling", "Arc flash label missing or out of date", "labels", 1.0,
     "Print labels from the current arc flash study and fix them to every panel door"),
    ("ENV-01", "environment", "Enclosure ingress protection below the site requirement", "IP", 54.0,
     "Replace the damaged gaskets and fit blanking plugs to the unused cable entries"),
    ("CAB-01", "cabling", "Cable bend radius below the manufacturer minimum", "mm", 120.0,
     "Re-route the cable with supports that keep the minimum bend radius"),
)
# Weighted pools: 10% CRITICAL, 30% MAJOR, 40% MINOR, 20% INFO; half the analyses APPROVED.
SEVERITIES = ("CRITICAL",) + ("MAJOR",) * 3 + ("MINOR",) * 4 + ("INFO",) * 2
VERDICTS = ("APPROVED",) * 5 + ("REVIEW",) * 3 + ("REJECTED",) * 2
LOCATIONS = ("the main switchboard", "feeder panel B", "transformer T2", "the pump room", "substation 4",
             "motor control centre 1", "the roof plant", "distribution board DB-7")
DOCUMENTS = (("insulation-test", "application/pdf", ".pdf"), ("loan-file", "application/pdf", ".pdf"),
             ("grounding-report", "application/pdf", ".pdf"), ("site-photos", "image/jpeg", ".jpg"),
             ("relay-settings", "text/csv", ".csv"), ("oil-analysis", "application/pdf", ".pdf"))
EQUIPMENT = (("transformer", "insulation resistance"), ("switchgear", "contact resistance"),
             ("motor", "vibration"), ("cable", "partial discharge"), ("relay", "secondary injection"))


class ForeignData(RuntimeError):
    """The database holds rows that are not this seed at this scale."""


@dataclass
class Batch:
    """Rows for a group of users, in table order, plus how many tasks they hold."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {name: [] for name in COLUMNS})
    tasks: int = 0


def marker(scale: Scale) -> str:
    return f"auditgraph-bench seed v{SEED_VERSION} scale {scale.factor}"


def sqlite_marker(scale: Scale) -> int:
    return SEED_VERSION * 1_000_000 + scale.factor


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _finding(rng: random.Random, analysis_id: uuid.UUID, at: datetime) -> tuple[Any, ...]:
    rule_id, category, title, unit, limit, fix = rng.choice(RULES)
    measured = round(limit * rng.uniform(1.05, 3.0) if limit else rng.uniform(1, 5), 2)
    clause = f"§{rng.randint(3, 12)}.{rng.randint(1, 9)}"
    message = f"{title} at {rng.choice(LOCATIONS)}: {measured} {unit}, limit {limit:g} {unit} ({clause})."
    remediation = f"{fix}."
    severity = rng.choice(SEVERITIES)
    evidence = {"measured": measured, "limit": limit, "unit": unit, "clause": clause}
    return (_uuid(rng), analysis_id, severity, rule_id, category, message, evidence, remediation,
            round(rng.uniform(0.5, 1.0), 3), at, at)


def _user_rows(batch: Batch, scale: Scale, index: int, password_hash: str) -> None:
    rng = random.Random(f"auditgraph-bench:{SEED_VERSION}:{index}")
    user_id = _uuid(rng)
    joined = BASE_TIME - timedelta(days=30 + index % 60)
    batch.rows["users"].append((user_id, user_email(index), password_hash, True, "USER", joined, joined))
    step = SPAN / scale.total_tasks
    for number in range(scale.user_tasks):
        # Interleave the users' tasks over the whole span, with jitter inside each slot.
        created = BASE_TIME + step * (number * scale.users + index) + timedelta(
            microseconds=rng.randrange(int(step.total_seconds() * 500_000)))
        started = created + timedelta(seconds=rng.randint(1, 300))
        completed = started + timedelta(seconds=rng.randint(5, 900))
        task_id, analysis_id = _uuid(rng), _uuid(rng)
        name, content_type, extension = rng.choice(DOCUMENTS)
        digest = hashlib.sha256(f"{user_id}:{number}".encode()).hexdigest()
        # One file in a hundred is larger than 4 GiB: the API must carry its size whole.
        size = rng.randint(5 * 2**30, 8 * 2**30) if rng.random() < 0.01 else rng.randint(20_000, 40_000_000)
        pages = rng.randint(1, 80)
        batch.rows["tasks"].append((
            task_id, user_id, "COMPLETED", f"{name}-{number:05d}{extension}", content_type,
            f"{digest[:2]}/{digest}", size, digest, pages, started, completed, 4, created, completed))
        equipment, test = rng.choice(EQUIPMENT)
        verdict = rng.choice(VERDICTS)
        recorded = completed - timedelta(milliseconds=1)
        batch.rows["analyses"].append((
            analysis_id, task_id, equipment, test, f"EQ-{rng.randint(1000, 9999)}", verdict,
            round(rng.uniform(0, 100), 1), round(rng.uniform(0.3, 1.0), 3),
            f"{scale.findings_per_task} findings on the {test} test of a {equipment}.",
            {"pages": pages, "tables": rng.randint(0, 12)}, recorded, recorded))
        batch.rows["findings"].extend(
            _finding(rng, analysis_id, recorded) for _ in range(scale.findings_per_task))
        events = (
            (1, "CREATED", {"status": "QUEUED"}, created),
            (2, "STATUS_CHANGED", {"from": "QUEUED", "to": "PROCESSING"}, started),
            (3, "ANALYSIS_RECORDED", {"analysisId": str(analysis_id), "verdict": verdict,
                                      "findingCount": scale.findings_per_task, "replaced": False}, recorded),
            (4, "STATUS_CHANGED", {"from": "PROCESSING", "to": "COMPLETED"}, completed),
        )
        # Log positions in the order of the tasks' slots, as live writes would have numbered them.
        slot = number * scale.users + index
        batch.rows["task_events"].extend(
            (_uuid(rng), task_id, sequence, kind, data, slot * len(events) + sequence, at, at)
            for sequence, kind, data, at in events)
    batch.tasks += scale.user_tasks


def generate(scale: Scale, password_hash: str) -> Iterator[Batch]:
    users_per_batch = max(1, BATCH_TASKS // scale.user_tasks)
    for first in range(0, scale.users, users_per_batch):
        batch = Batch()
        for index in range(first, min(first + users_per_batch, scale.users)):
            _user_rows(batch, scale, index, password_hash)
        yield batch


def _progress(scale: Scale, enabled: bool, target: str) -> "tqdm[Any]":
    return tqdm(total=scale.total_tasks, unit="task", unit_scale=True, disable=not enabled,
                desc=f"seeding {target} ({scale.describe()})")


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _seed_postgres(database_url: str, scale: Scale, password_hash: str, progress: bool) -> bool:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        comment = await connection.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()")
        if comment == marker(scale):
            return False
        if await connection.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
            raise ForeignData(f"the database holds other data ({comment or 'no seed marker'}); "
                               "seed an empty database")
        database = await connection.fetchval("SELECT current_database()")
        batches = generate(scale, password_hash)

        def next_batch() -> Batch | None:
            batch = next(batches, None)
            return batch and _json_as_text(batch)

        # The next batch is generated in a thread while this one is copied.
        pending = asyncio.create_task(asyncio.to_thread(next_batch))
        try:
            with _progress(scale, progress, "PostgreSQL") as bar:
                async with connection.transaction():
                    while (batch := await pending) is not None:
                        pending = asyncio.create_task(asyncio.to_thread(next_batch))
                        for table, rows in batch.rows.items():
                            await connection.copy_records_to_table(table, records=rows, columns=COLUMNS[table])
                        bar.update(batch.tasks)
                    await connection.execute(f'COMMENT ON DATABASE "{database}" IS \'{marker(scale)}\'')
        finally:
            pending.cancel()
        # The steady state autovacuum would reach: statistics and a visibility map.
        await connection.execute("VACUUM (ANALYZE)")
        return True
    finally:
        await connection.close()


def _json_as_text(batch: Batch) -> Batch:
    """asyncpg's COPY takes JSONB values as text."""
    for table, names in JSON_COLUMNS.items():
        positions = [COLUMNS[table].index(name) for name in names]
        batch.rows[table] = [_with_json_text(row, positions) for row in batch.rows[table]]
    return batch


def _with_json_text(row: tuple[Any, ...], positions: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for position in positions:
        if values[position] is not None:
            values[position] = orjson.dumps(values[position]).decode()
    return tuple(values)


def _seed_sqlite(database_url: str, scale: Scale, password_hash: str, progress: bool,
                 stop: threading.Event) -> bool:
    # The stdlib driver through the same Table objects, so values are stored
    # exactly as the app's own engine would store them.
    engine = create_engine(make_url(database_url).set(drivername="sqlite"))
    try:
        with engine.connect() as connection:
            version = connection.exec_driver_sql("PRAGMA user_version").scalar_one()
            if version == sqlite_marker(scale):
                return False
            if connection.execute(text("SELECT EXISTS (SELECT 1 FROM users)")).scalar_one():
                raise ForeignData(f"the database holds other data (user_version {version}); "
                                   "seed an empty database")
            connection.exec_driver_sql("PRAGMA synchronous=OFF")
            connection.commit()
            with _progress(scale, progress, "SQLite") as bar, connection.begin():
                for batch in generate(scale, password_hash):
                    if stop.is_set():
                        raise InterruptedError("seeding stopped")  # rolls the transaction back
                    for table, rows in batch.rows.items():
                        names = COLUMNS[table]
                        connection.execute(Base.metadata.tables[table].insert(),
                                           [dict(zip(names, row, strict=True)) for row in rows])
                    bar.update(batch.tasks)
                connection.exec_driver_sql(f"PRAGMA user_version={sqlite_marker(scale)}")
        return True
    finally:
        engine.dispose()


async def migrate(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


async def seed(database_url: str, scale: Scale, *, progress: bool = True) -> bool:
    """Migrates and seeds the database; False when it was already seeded at this scale."""
    await migrate(database_url)
    # One hash for every user: hashing 100 passwords with argon2 would only slow the seeding.
    password_hash = PasswordHasher().hash(BENCH_PASSWORD)
    if make_url(database_url).get_backend_name() == "sqlite":
        stop = threading.Event()
        try:
            return await asyncio.to_thread(_seed_sqlite, database_url, scale, password_hash, progress, stop)
        except asyncio.CancelledError:
            stop.set()  # the thread gives up at its next batch
            raise
    return await _seed_postgres(database_url, scale, password_hash, progress)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.seed", description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="SQLAlchemy URL (postgresql+asyncpg://… or sqlite+aiosqlite:///…); "
                             "default $DATABASE_URL")
    parser.add_argument("--scale", type=int, default=1, help="database size factor (default 1)")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    scale = Scale(factor=args.scale)
    seeded = asyncio.run(seed(args.database_url, scale))
    print(("seeded " if seeded else "already seeded: ") + scale.describe())


if __name__ == "__main__":
    main()
