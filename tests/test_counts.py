"""totalCount: exact from the kept figures where they answer, counted up to the count limit elsewhere,
and saying which (totalCountIsExact)."""

from pathlib import Path

import pytest
from sqlalchemy import select

from db.access import SYSTEM
from db.analyses import record_analysis
from db.models import User
from db.settings import Settings
from db.tasks import transition_task
from tests.api import Api
from tests.conftest import make_settings
from tests.factories import analysis_input, make_task, make_user
from tests.sql_counter import count_statements

COUNT_LIMIT = 3
TASKS = """
query Tasks($filter: TaskFilter) {
  tasks(first: 1, filter: $filter) { totalCount totalCountIsExact edges { node { id } } }
}
"""
FINDINGS = """
query Findings($filter: FindingFilter) { findings(first: 1, filter: $filter) { totalCount totalCountIsExact } }
"""
DASHBOARD = "{ dashboard { totalTasks tasksByStatus { status count } findingsBySeverity { severity count } } }"


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return make_settings(database_url, data_dir, count_limit=COUNT_LIMIT)


async def _tasks(api: Api, email: str, names: list[str], rejected: int = 0) -> str:
    """A user with one task per name, the first `rejected` of them analysed and REJECTED."""
    token = await api.sign_up(email)
    async with api.database.transaction() as session:
        owner = await make_user(session, email=f"other-{email}")
        await make_task(session, owner, original_filename="report.pdf")  # another user's: never counted
    async with api.database.transaction() as session:
        user = await session.scalar(select(User).where(User.email == email))
        assert user is not None
        for number, name in enumerate(names):
            task = await make_task(session, user, original_filename=name)
            if number < rejected:
                claimed = await transition_task(session, task.id, "PROCESSING", viewer=SYSTEM)
                await record_analysis(session, task.id, analysis_input(verdict="REJECTED"), viewer=SYSTEM,
                                      claim_id=claimed.claim_id)
    return token


@pytest.mark.parametrize("filter", [None, {"status": ["QUEUED"]}, {"verdict": ["REJECTED"]}],
                         ids=["no filter", "status", "verdict"])
async def test_a_count_the_figures_answer_is_exact_past_the_count_limit(api: Api, filter: dict | None) -> None:
    # given: more tasks than the count limit
    token = await _tasks(api, "alice@example.com", [f"report-{n}.pdf" for n in range(5)], rejected=4)
    expected = {"no filter": 5, "status": 1, "verdict": 4}[
        "no filter" if filter is None else "status" if "status" in filter else "verdict"]

    # when
    connection = (await api.data(TASKS, {"filter": filter}, token=token))["tasks"]

    # then
    assert (connection["totalCount"], connection["totalCountIsExact"]) == (expected, True)


async def test_a_filename_count_stops_at_the_count_limit_and_says_so(api: Api) -> None:
    # given
    token = await _tasks(api, "alice@example.com", ["report-a.pdf", "report-b.pdf", "report-c.pdf", "report-d.pdf",
                                                     "summary.pdf"])

    # when
    many = (await api.data(TASKS, {"filter": {"filenameContains": "report"}}, token=token))["tasks"]
    few = (await api.data(TASKS, {"filter": {"filenameContains": "summary"}}, token=token))["tasks"]

    # then
    assert (many["totalCount"], many["totalCountIsExact"]) == (COUNT_LIMIT, False)
    assert (few["totalCount"], few["totalCountIsExact"]) == (1, True)


async def test_a_count_of_findings_by_severity_is_read_from_the_figures(api: Api) -> None:
    # given: two analysed tasks, each with one CRITICAL and one MINOR finding
    token = await _tasks(api, "alice@example.com", ["a.pdf", "b.pdf"], rejected=2)

    # when
    critical = (await api.data(FINDINGS, {"filter": {"severity": ["CRITICAL"]}}, token=token))["findings"]
    by_rule = (await api.data(FINDINGS, {"filter": {"ruleId": "GND-01"}}, token=token))["findings"]

    # then
    assert (critical["totalCount"], critical["totalCountIsExact"]) == (2, True)
    assert (by_rule["totalCount"], by_rule["totalCountIsExact"]) == (2, True)


async def test_the_dashboard_reads_the_same_statements_for_two_tasks_as_for_twenty(api: Api) -> None:
    # given
    small = await _tasks(api, "small@example.com", [f"s{n}.pdf" for n in range(2)])
    big = await _tasks(api, "big@example.com", [f"b{n}.pdf" for n in range(20)])

    # when
    with count_statements(api.database) as for_small:
        small_dashboard = (await api.data(DASHBOARD, token=small))["dashboard"]
    with count_statements(api.database) as for_big:
        big_dashboard = (await api.data(DASHBOARD, token=big))["dashboard"]

    # then: one read of the owner's figures and one of their last days, whatever the size (the account's
    # role may be read too, when its cache has lapsed)
    assert (small_dashboard["totalTasks"], big_dashboard["totalTasks"]) == (2, 20)
    dashboard_reads = [[statement for statement in statements if "FROM users" not in statement]
                       for statements in (for_small, for_big)]
    assert len(dashboard_reads[0]) == len(dashboard_reads[1]) == 2
    assert all("figures" in statement for statement in dashboard_reads[1])
