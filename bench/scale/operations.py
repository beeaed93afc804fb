"""The reads measured at every size: one API request each, beside hand-written SQL for the same answer.

Each operation knows its request, the SQL that answers it over the base tables (run with
custom plans, `statement_cache_size=0`, as the best a person would write today) and how to
compare the two answers; a reply that differs from the SQL's stops the run.
"""

import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as day_start
from typing import Any

import asyncpg
import httpx
import orjson

from graph.relay import from_global_id

# `dashboard`'s default window: tasksPerDay covers 30 days ending today (UTC).
DASHBOARD_DAYS = 30
PAGE = 50
# A plant code (bench/scale/build.py): one task in 500 carries it.
SELECTIVE_FILENAME = "plant137"
# The quiet user resumes this share of the whole event log back.
RESUME_SHARE = 0.04

DASHBOARD_QUERY = (
    "query ScaleDashboard { dashboard { totalTasks tasksByStatus { status count } "
    "analysesByVerdict { verdict count } findingsBySeverity { severity count } averageComplianceScore "
    "averageConfidenceScore tasksPerDay { day count } } }"
)
TASKS_QUERY = (
    "query ScaleTasks($filter: TaskFilter, $orderBy: TaskOrder) { tasks(first: 50, filter: $filter, "
    "orderBy: $orderBy) { totalCount%s edges { node { id status originalFilename analysis { verdict "
    "complianceScore } } } } }"
)
# Where the schema has it (issue #23): a count past the server's limit says so instead of counting on.
EXACTNESS = " totalCountIsExact"
EVENTS_SUBSCRIPTION = (
    "subscription ScaleResume($after: BigInt) { myTaskEvents(afterPosition: $after) { position sequence taskId } }"
)


class AnswerDiffers(AssertionError):
    """The API's answer is not the hand-written SQL's."""


@dataclass
class Answer:
    """What an operation must return, in a form both sides are reduced to."""

    value: Any

    def check(self, name: str, got: Any) -> None:
        if not (_same_listing(self.value, got) if isinstance(got, Listing) else _same(self.value, got)):
            raise AnswerDiffers(f"{name}: the API answered\n  {_short(got)}\nbut the SQL says\n  {_short(self.value)}")


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, float) and isinstance(got, float):
        return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(_same(expected[key], got[key]) for key in expected)
    if isinstance(expected, list | tuple) and isinstance(got, list | tuple):
        return len(expected) == len(got) and all(_same(a, b) for a, b in zip(expected, got, strict=True))
    return bool(expected == got)


@dataclass(frozen=True)
class Listing:
    """A page of tasks as the API answered it: the count, whether it is exact, the nodes."""

    total_count: int
    exact: bool
    nodes: list[tuple[Any, ...]]


def _same_listing(expected: dict[str, Any], got: Listing) -> bool:
    # A count the API says is inexact is its limit, below the true count: never a wrong number unsaid.
    count_holds = got.total_count == expected["totalCount"] if got.exact else got.total_count < expected["totalCount"]
    return count_holds and _same(expected["nodes"], got.nodes)


def _short(value: Any, length: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= length else text[:length] + "…"


@dataclass
class Operation:
    name: str
    # One API request, timed by the caller; returns the reply reduced like the SQL's answer.
    request: Callable[[], Awaitable[Any]]
    # The hand-written SQL on one connection; returns the answer.
    sql: Callable[[asyncpg.Connection], Awaitable[Any]]


# --- dashboard -------------------------------------------------------------------------------------

def _scope(user_id: uuid.UUID | None) -> tuple[str, list[Any]]:
    return ("t.user_id = $1", [user_id]) if user_id is not None else ("true", [])


def _first_day() -> datetime:
    today = datetime.now(UTC).date()
    return datetime.combine(today - timedelta(days=DASHBOARD_DAYS - 1), day_start(), tzinfo=UTC)


async def dashboard_sql(connection: asyncpg.Connection, user_id: uuid.UUID | None) -> dict[str, Any]:
    scope, args = _scope(user_id)
    day_arg = f"${len(args) + 1}"
    statuses = await connection.fetch(f"SELECT status, count(*) FROM tasks t WHERE {scope} GROUP BY status", *args)
    verdicts = await connection.fetch(
        "SELECT a.verdict, count(*), sum(a.compliance_score), count(a.compliance_score), "
        "sum(a.confidence_score), count(a.confidence_score) "
        f"FROM analyses a JOIN tasks t ON t.id = a.task_id WHERE {scope} GROUP BY a.verdict", *args)
    severities = await connection.fetch(
        "SELECT f.severity, count(*) FROM findings f JOIN analyses a ON a.id = f.analysis_id "
        f"JOIN tasks t ON t.id = a.task_id WHERE {scope} GROUP BY f.severity", *args)
    first_day = _first_day()
    days = await connection.fetch(
        "SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day, count(*) FROM tasks t "
        f"WHERE {scope} AND t.created_at >= {day_arg} GROUP BY 1", *args, first_day)
    per_day = {row["day"]: row["count"] for row in days}
    compliance_count = sum(row[3] for row in verdicts)
    confidence_count = sum(row[5] for row in verdicts)
    return {
        "totalTasks": sum(row["count"] for row in statuses),
        "tasksByStatus": {row["status"]: row["count"] for row in statuses},
        "analysesByVerdict": {row["verdict"]: row["count"] for row in verdicts},
        "findingsBySeverity": {row["severity"]: row["count"] for row in severities},
        "averageComplianceScore": (sum(row[2] or 0.0 for row in verdicts) / compliance_count
                                   if compliance_count else None),
        "averageConfidenceScore": (sum(row[4] or 0.0 for row in verdicts) / confidence_count
                                   if confidence_count else None),
        "tasksPerDay": {(first_day.date() + timedelta(days=offset)).isoformat():
                        per_day.get(first_day.date() + timedelta(days=offset), 0)
                        for offset in range(DASHBOARD_DAYS)},
    }


def dashboard_reply(data: dict[str, Any]) -> dict[str, Any]:
    figures = data["dashboard"]

    def nonzero(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
        # The API lists every value, zeros included; GROUP BY only those present.
        return {row[key]: row["count"] for row in rows if row["count"]}

    return {
        "totalTasks": figures["totalTasks"],
        "tasksByStatus": nonzero(figures["tasksByStatus"], "status"),
        "analysesByVerdict": nonzero(figures["analysesByVerdict"], "verdict"),
        "findingsBySeverity": nonzero(figures["findingsBySeverity"], "severity"),
        "averageComplianceScore": figures["averageComplianceScore"],
        "averageConfidenceScore": figures["averageConfidenceScore"],
        "tasksPerDay": {row["day"]: row["count"] for row in figures["tasksPerDay"]},
    }


# --- a page of tasks ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskListing:
    """A `tasks(first: 50)` request with totalCount, and the same in SQL."""

    filter: dict[str, Any] | None = None
    order_by: dict[str, str] | None = None

    def variables(self) -> dict[str, Any]:
        return {"filter": self.filter, "orderBy": self.order_by}

    def _condition(self) -> tuple[str, str]:
        """(join, condition) the filter adds."""
        if self.filter is None:
            return "", ""
        if "verdict" in self.filter:
            verdicts = ", ".join(f"'{verdict}'" for verdict in self.filter["verdict"])
            return "JOIN analyses v ON v.task_id = t.id", f"AND v.verdict IN ({verdicts})"
        if "filenameContains" in self.filter:
            # The substring holds no LIKE wildcard.
            return "", f"AND t.original_filename ILIKE '%{self.filter['filenameContains']}%'"
        raise ValueError(f"no SQL for the filter {self.filter}")

    def _order(self) -> str:
        if self.order_by is None or self.order_by["field"] == "CREATED_AT":
            key = "t.created_at"
        elif self.order_by["field"] == "COMPLIANCE_SCORE":
            key = "coalesce(a.compliance_score, -1)"
        else:
            raise ValueError(f"no SQL for the ordering {self.order_by}")
        direction = "ASC" if self.order_by is not None and self.order_by["direction"] == "ASC" else "DESC"
        return f"{key} {direction}, t.id {direction}"

    async def sql(self, connection: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, Any]:
        join, condition = self._condition()
        rows = await connection.fetch(
            "SELECT t.id, t.status, t.original_filename, a.verdict, a.compliance_score "
            f"FROM tasks t LEFT JOIN analyses a ON a.task_id = t.id {join} "
            f"WHERE t.user_id = $1 {condition} ORDER BY {self._order()} LIMIT {PAGE}", user_id)
        count = await connection.fetchval(f"SELECT count(*) FROM tasks t {join} WHERE t.user_id = $1 {condition}",
                                          user_id)
        return {"totalCount": count, "nodes": [
            (row["id"], row["status"], row["original_filename"],
             None if row["verdict"] is None else (row["verdict"], row["compliance_score"]))
            for row in rows]}


def tasks_reply(data: dict[str, Any]) -> Listing:
    connection = data["tasks"]
    nodes = []
    for edge in connection["edges"]:
        node = edge["node"]
        analysis = node["analysis"]
        nodes.append((from_global_id(node["id"], "Task")[1], node["status"], node["originalFilename"],
                      None if analysis is None else (analysis["verdict"], analysis["complianceScore"])))
    return Listing(connection["totalCount"], connection.get("totalCountIsExact", True), nodes)


# --- resuming the event log ----------------------------------------------------------------------------

async def resume_position(connection: asyncpg.Connection) -> int:
    """The position RESUME_SHARE of the log back from its end (positions have no gaps)."""
    last = await connection.fetchval("SELECT max(position) FROM task_events")
    return int(last - round(RESUME_SHARE * last))


async def events_sql(connection: asyncpg.Connection, user_id: uuid.UUID, after: int) -> list[tuple[int, int, str]]:
    rows = await connection.fetch(
        "SELECT e.position, e.sequence, e.task_id FROM task_events e JOIN tasks t ON t.id = e.task_id "
        "WHERE t.user_id = $1 AND e.position > $2 ORDER BY e.position", user_id, after)
    return [(row["position"], row["sequence"], str(row["task_id"])) for row in rows]


async def resume_over_sse(client: httpx.AsyncClient, url: str, token: str, after: int,
                          expected: int) -> list[tuple[int, int, str]]:
    """Subscribes after `after` and returns the first `expected` events: the catch-up, then it hangs up."""
    received: list[tuple[int, int, str]] = []
    headers = {"accept": "text/event-stream", "authorization": f"Bearer {token}"}
    body = {"query": EVENTS_SUBSCRIPTION, "variables": {"after": str(after)}}
    async with client.stream("POST", url, headers=headers, json=body) as response:
        if response.status_code != 200:
            raise AnswerDiffers(f"myTaskEvents over SSE: HTTP {response.status_code}: {await response.aread()!r}")
        data: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                payload = orjson.loads("\n".join(data))
                data = []
                if payload.get("errors"):
                    raise AnswerDiffers(f"myTaskEvents over SSE: {payload['errors']}")
                event = payload["data"]["myTaskEvents"]
                received.append((int(event["position"]), event["sequence"],
                                 str(from_global_id(event["taskId"])[1])))
                if len(received) >= expected:
                    break
    return received


# --- /metrics --------------------------------------------------------------------------------------------

async def metrics_sql(connection: asyncpg.Connection) -> dict[str, Any]:
    """What the scrape reads about the queue (db/queue_stats.py), by hand."""
    statuses = await connection.fetch("SELECT status, count(*) FROM tasks GROUP BY status")
    await connection.fetchval("SELECT min(created_at) FROM tasks WHERE status = 'QUEUED'")
    expired = await connection.fetchval(
        "SELECT count(*) FROM tasks WHERE status = 'PROCESSING' AND lease_expires_at < now()")
    return {"tasks": {row["status"]: row["count"] for row in statuses}, "expired": expired}


def metrics_reply(text: str) -> dict[str, Any]:
    tasks: dict[str, int] = {}
    expired = None
    for line in text.splitlines():
        if line.startswith('auditgraph_tasks{status="'):
            labels, _, value = line.rpartition(" ")
            if float(value):
                tasks[labels.split('"')[1]] = int(float(value))
        elif line.startswith("auditgraph_expired_leases "):
            expired = int(float(line.split()[1]))
    return {"tasks": tasks, "expired": expired}


# --- timing -------------------------------------------------------------------------------------------------

@dataclass
class Timings:
    api_ms: list[float]
    sql_ms: list[float]

    @staticmethod
    def median(values: list[float]) -> float:
        ordered = sorted(values)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    @staticmethod
    def p95(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Plan:
    """How many times each side runs: warm-up, then measured until `requests` or `budget` seconds."""

    warmup: int
    requests: int
    budget: float
    least: int = 5


async def _in_turns(plan: Plan, runs: list[Callable[[], Awaitable[Any]]], answers: list[Answer],
                    name: str) -> list[list[float]]:
    """Each side's requests, one from each in turn (which goes first rotates), so that whatever the shared
    machine does meanwhile falls on every side alike instead of on whichever ran at that moment."""
    timings: list[list[float]] = [[] for _ in runs]
    measuring_since = None
    for count in range(plan.warmup + plan.requests):
        first = count % len(runs)
        round_started = time.perf_counter()
        for index in [*range(first, len(runs)), *range(first)]:
            started = time.perf_counter()
            got = await runs[index]()
            elapsed = time.perf_counter() - started
            answers[index].check(name, got)
            if count >= plan.warmup:
                timings[index].append(elapsed * 1000)
        if count < plan.warmup:
            continue
        measuring_since = measuring_since or round_started
        if count - plan.warmup + 1 >= plan.least and time.perf_counter() - measuring_since > plan.budget:
            break
    return timings


async def measure(sides: list[tuple[Operation, asyncpg.Connection]], plan: Plan) -> list[Timings]:
    """One operation at every size, request by request in turn: the SQL first (its answer is the
    reference), then the API, each checked against that answer."""
    answers = [Answer(await operation.sql(connection)) for operation, connection in sides]
    name = sides[0][0].name

    def sql(operation: Operation, connection: asyncpg.Connection) -> Callable[[], Awaitable[Any]]:
        return lambda: operation.sql(connection)

    sql_ms = await _in_turns(plan, [sql(operation, connection) for operation, connection in sides], answers,
                             f"{name} (SQL)")
    api_ms = await _in_turns(plan, [operation.request for operation, _ in sides], answers, name)
    return [Timings(api_ms=api, sql_ms=sql) for api, sql in zip(api_ms, sql_ms, strict=True)]
