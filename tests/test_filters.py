"""Every filter and ordering returns exactly what a plain SQL query over the same data returns."""

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from db.access import SYSTEM
from db.analyses import record_analysis
from db.enums import Role
from db.models import User
from db.tasks import transition_task
from graph.relay import to_global_id
from tests.api import Api
from tests.factories import analysis_input, backdate_task, make_task, make_user

NOW = datetime.now(UTC).replace(microsecond=0)


async def _generated(api: Api) -> tuple[str, User]:
    """40 tasks of one user with varied status, names, sizes, times, verdicts and findings."""
    token = await api.sign_up("alice@example.com")
    rng = random.Random(7)
    async with api.database.transaction() as session:
        owner = await session.scalar(select(User).where(User.email == "alice@example.com"))
        assert owner is not None
        other = await make_user(session)
        await make_task(session, other)
        for i in range(40):
            task = await make_task(session, owner, original_filename=rng.choice(["Grid_A.pdf", "loan%file.pdf", "site.csv", "b_100.txt"]),
                                   file_size=rng.randrange(0, 10**10))
            created = NOW - timedelta(days=rng.randrange(0, 20), minutes=i)
            await backdate_task(session, task, created)
            path = rng.choice(["queued", "processing", "analysed", "completed", "failed", "cancelled"])
            if path == "cancelled":
                await transition_task(session, task.id, "CANCELLED", viewer=SYSTEM)
            if path in ("processing", "analysed", "completed", "failed"):
                task = await transition_task(session, task.id, "PROCESSING", viewer=SYSTEM)
            if path in ("analysed", "completed"):
                findings = [
                    {"severity": rng.choice(["CRITICAL", "MAJOR", "MINOR", "INFO"]), "rule_id": rng.choice(["GND-01", "DOC-03"]),
                     "category": rng.choice(["grounding", "paperwork"]), "message": "m"}
                    for _ in range(rng.randrange(0, 4))
                ]
                await record_analysis(session, task.id, analysis_input(
                    verdict=rng.choice(["APPROVED", "REVIEW", "REJECTED"]),
                    compliance_score=rng.choice([None, rng.uniform(0, 100)]),
                    confidence_score=rng.uniform(0, 1), findings=findings), viewer=SYSTEM, claim_id=task.claim_id)
            if path == "completed":
                await transition_task(session, task.id, "COMPLETED", viewer=SYSTEM, claim_id=task.claim_id)
            if path == "failed":
                await transition_task(session, task.id, "FAILED", viewer=SYSTEM, error_message="x",
                                      claim_id=task.claim_id)
    return token, owner


async def _sql_ids(api: Api, where: str, params: dict[str, Any], order: str = "t.created_at DESC, t.id DESC") -> list[str]:
    query = f"""
        SELECT t.id FROM tasks t LEFT JOIN analyses a ON a.task_id = t.id
        WHERE t.user_id = :owner AND ({where}) ORDER BY {order}
    """
    async with api.database.sessions() as session:
        rows = (await session.execute(text(query), params)).scalars().all()
    return [to_global_id("Task", uuid.UUID(str(row)) if not isinstance(row, uuid.UUID) else row) for row in rows]


async def _api_ids(api: Api, token: str, filter: dict[str, Any], order: dict[str, str] | None = None) -> list[str]:
    data = await api.data(
        "query($f: TaskFilter, $o: TaskOrder) { tasks(first: 100, filter: $f, orderBy: $o) { totalCount edges { node { id } } } }",
        {"f": filter, "o": order}, token,
    )
    ids = [edge["node"]["id"] for edge in data["tasks"]["edges"]]
    assert data["tasks"]["totalCount"] == len(ids)
    return ids


FILTERS: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("status", {"status": ["QUEUED", "FAILED"]}, "t.status IN ('QUEUED', 'FAILED')", {}),
    ("verdict", {"verdict": ["REJECTED"]}, "a.verdict = 'REJECTED'", {}),
    ("created between", {"createdAfter": (NOW - timedelta(days=10)).isoformat(), "createdBefore": (NOW - timedelta(days=3)).isoformat()},
     "t.created_at >= :after AND t.created_at < :before", {"after": NOW - timedelta(days=10), "before": NOW - timedelta(days=3)}),
    ("filename contains, case-insensitively and literally", {"filenameContains": "%FILE"}, "lower(t.original_filename) LIKE '%\\%file%' ESCAPE '\\'", {}),
    ("filename with underscore", {"filenameContains": "_a"}, "lower(t.original_filename) LIKE '%\\_a%' ESCAPE '\\'", {}),
    ("has findings of severity", {"hasFindingsOfSeverity": ["CRITICAL"]},
     "EXISTS (SELECT 1 FROM findings f WHERE f.analysis_id = a.id AND f.severity = 'CRITICAL')", {}),
    ("combined", {"status": ["COMPLETED", "PROCESSING"], "verdict": ["APPROVED", "REVIEW"]},
     "t.status IN ('COMPLETED', 'PROCESSING') AND a.verdict IN ('APPROVED', 'REVIEW')", {}),
]


@pytest.mark.parametrize(("name", "filter", "where", "params"), FILTERS, ids=[f[0] for f in FILTERS])
async def test_each_filter_matches_plain_sql(api: Api, name: str, filter: dict[str, Any], where: str, params: dict[str, Any]) -> None:
    token, owner = await _generated(api)
    bound = {key: (value.replace(tzinfo=None) if api.database.dialect == "sqlite" and isinstance(value, datetime) else value)
             for key, value in params.items()}

    expected = await _sql_ids(api, where, {"owner": owner.id if api.database.dialect != "sqlite" else owner.id.hex, **bound})
    actual = await _api_ids(api, token, filter)

    assert actual == expected
    assert expected, "the generated data should exercise the filter"


@pytest.mark.parametrize(
    ("field", "column"),
    [("CREATED_AT", "t.created_at"), ("FILE_SIZE", "COALESCE(t.file_size, -1)"), ("COMPLIANCE_SCORE", "COALESCE(a.compliance_score, -1)")],
)
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_each_ordering_matches_plain_sql(api: Api, field: str, column: str, direction: str) -> None:
    token, owner = await _generated(api)

    expected = await _sql_ids(api, "1 = 1", {"owner": owner.id if api.database.dialect != "sqlite" else owner.id.hex},
                              order=f"{column} {direction}, t.id {direction}")
    actual = await _api_ids(api, token, {}, {"field": field, "direction": direction})

    assert actual == expected


@pytest.mark.parametrize(("filter", "where"), [
    ({"verdict": ["REVIEW"]}, "a.verdict = 'REVIEW'"),
    ({"hasFindingsOfSeverity": ["CRITICAL", "MAJOR"]},
     "EXISTS (SELECT 1 FROM findings f WHERE f.analysis_id = a.id AND f.severity IN ('CRITICAL', 'MAJOR'))"),
], ids=["verdict", "has findings of severity"])
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_a_filter_on_the_analysis_combines_with_ordering_by_compliance_score(
    api: Api, filter: dict[str, Any], where: str, direction: str
) -> None:
    # given
    token, owner = await _generated(api)

    # when
    actual = await _api_ids(api, token, filter, {"field": "COMPLIANCE_SCORE", "direction": direction})

    # then
    expected = await _sql_ids(api, where, {"owner": owner.id if api.database.dialect != "sqlite" else owner.id.hex},
                              order=f"COALESCE(a.compliance_score, -1) {direction}, t.id {direction}")
    assert actual == expected
    assert expected, "the generated data should exercise the filter"


DASHBOARD = """
query Dashboard($after: DateTime, $before: DateTime) {
  dashboard(filter: {days: 30, createdAfter: $after, createdBefore: $before}) {
    totalTasks averageComplianceScore averageConfidenceScore
    tasksByStatus { status count } analysesByVerdict { verdict count } findingsBySeverity { severity count }
    tasksPerDay { day count }
} }
"""
MIDNIGHT = NOW.replace(hour=0, minute=0, second=0)


@pytest.mark.parametrize(("after", "before"), [
    (None, None),
    (NOW - timedelta(days=12, hours=5), NOW - timedelta(days=3, hours=7)),
    (MIDNIGHT - timedelta(days=9), MIDNIGHT - timedelta(days=2)),
    (MIDNIGHT - timedelta(days=9), None),
    (None, NOW - timedelta(days=4, minutes=17)),
    (NOW - timedelta(days=5, hours=3), NOW - timedelta(days=5, hours=1)),
], ids=["everything", "from and to the middle of days", "whole days", "since a midnight", "until a moment",
        "within one day"])
@pytest.mark.parametrize("viewer", [Role.USER, Role.WORKER])
async def test_dashboard_figures_equal_independent_counts(
    api: Api, after: datetime | None, before: datetime | None, viewer: Role
) -> None:
    token, owner = await _generated(api)
    if viewer is Role.WORKER:
        # Everyone's figures: the owner's and the other user's task (_generated makes one).
        token = await api.sign_up("worker@example.com", Role.WORKER)
    owner_key = owner.id if api.database.dialect != "sqlite" else owner.id.hex
    window = " AND t.created_at >= :after" if after else ""
    window += " AND t.created_at < :before" if before else ""
    sqlite = api.database.dialect == "sqlite"
    bounds = {name: (value.replace(tzinfo=None) if sqlite else value)
              for name, value in (("after", after), ("before", before)) if value}

    async with api.database.sessions() as session:
        async def one(sql: str) -> Any:
            return (await session.execute(text(sql), {"owner": owner_key, **bounds})).all()

        owned = f"{'t.user_id = :owner' if viewer is Role.USER else '1 = 1'}{window}"
        statuses = dict(await one(f"SELECT status, count(*) FROM tasks t WHERE {owned} GROUP BY status"))
        verdicts = dict(await one(f"SELECT a.verdict, count(*) FROM analyses a JOIN tasks t ON t.id = a.task_id WHERE {owned} GROUP BY a.verdict"))
        severities = dict(await one(f"SELECT f.severity, count(*) FROM findings f JOIN analyses a ON a.id = f.analysis_id JOIN tasks t ON t.id = a.task_id WHERE {owned} GROUP BY f.severity"))
        scores = await one(f"SELECT a.compliance_score, a.confidence_score FROM analyses a JOIN tasks t ON t.id = a.task_id WHERE {owned}")
        created = [row[0] for row in await one(f"SELECT created_at FROM tasks t WHERE {owned}")]

    variables = {name: value.isoformat() for name, value in (("after", after), ("before", before)) if value}
    data = (await api.data(DASHBOARD, variables, token=token))["dashboard"]

    assert data["totalTasks"] == len(created)
    assert {c["status"]: c["count"] for c in data["tasksByStatus"] if c["count"]} == statuses
    assert {c["verdict"]: c["count"] for c in data["analysesByVerdict"] if c["count"]} == verdicts
    assert {c["severity"]: c["count"] for c in data["findingsBySeverity"] if c["count"]} == severities
    compliance = [s[0] for s in scores if s[0] is not None]
    assert data["averageComplianceScore"] == (pytest.approx(sum(compliance) / len(compliance)) if compliance else None)
    assert data["averageConfidenceScore"] == (pytest.approx(sum(s[1] for s in scores) / len(scores)) if scores else None)
    days: dict[str, int] = {}
    for value in created:
        day = (value if isinstance(value, datetime) else datetime.fromisoformat(value)).date().isoformat()
        days[day] = days.get(day, 0) + 1
    assert {d["day"]: d["count"] for d in data["tasksPerDay"] if d["count"]} == days
    assert len(data["tasksPerDay"]) == 30 and data["tasksPerDay"][-1]["day"] == datetime.now(UTC).date().isoformat()
