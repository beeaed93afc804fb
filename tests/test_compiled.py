"""Compiled execution answers exactly as graphql-core does, and leaves to it what it cannot run."""

import asyncio
from typing import Any

import pytest
from graphql import parse
from sqlalchemy import select
from starlette.applications import Starlette

from db.access import Viewer
from db.models import User
from db.settings import Settings
from graph.engine.compiled import FieldPlan, SelectionPlan, Unsupported, compile_query, settle
from graph.loaders import Loaders
from graph.relay import to_global_id
from graph.schema import build_schema
from tests.api import Api
from tests.factories import make_analysed_task, make_task

QUERIES = [
    """query($first: Int!) { tasks(first: $first, orderBy: {field: CREATED_AT, direction: DESC}) { totalCount
         edges { cursor node { id status originalFilename fileSize createdAt startedAt
           analysis { verdict complianceScore confidenceScore findingCounts { total critical }
             findings { severity ruleId message remediation evidence sources { pageNumber snippet } } } } }
         pageInfo { hasNextPage endCursor } } }""",
    """fragment T on Task { id status owner { email __typename } }
       query { a: tasks(first: 1) { edges { node { ...T ... on Task { fileHash } } } }
               b: tasks(last: 2) { edges { node { ...T } } } me { email role } }""",
    """query($id: ID!) { task(id: $id) { id analysis { findings(severity: [CRITICAL]) { ruleId } task { id } } events { edges { node { sequence type data } } } } }""",
    """query($id: ID!) { node(id: $id) { id ... on Task { status } } }""",
    """query($id: ID!, $skip: Boolean!) { task(id: $id) { id status @skip(if: $skip) } }""",
    """{ tasks(first: 1000) { totalCount } }""",
    """{ dashboard { totalTasks tasksByStatus { status count } } }""",
    # The row lane: computed fields, __typename, nested lanes, a relationship the task list already loaded.
    """query($first: Int!) { tasks(first: $first) { edges { node { id downloadUrl
         owner { id email __typename } artifacts { id kind }
         analysis { id __typename verdict extractionResult findingCounts { total } task { id status }
           findings { id __typename severity ruleId category confidence evidence createdAt
             sources { id pageNumber section snippet finding { ruleId } } analysis { id verdict } } } } } } }""",
    """{ tasks(first: 5) { edges { node { analysis {
         all: findings { ruleId } critical: findings(severity: [CRITICAL]) { ruleId } } } } } }""",
]


async def _execute(schema: Any, app: Starlette, viewer: Viewer, query: str, variables: dict[str, Any]) -> Any:
    context = app.state.graphql.make_context(None, None, viewer, None)
    result = await schema.execute(query, variable_values=variables, context_value=context)
    return result.data, [(e.message, e.path, (e.extensions or {}).get("code")) for e in result.errors or []]


@pytest.mark.parametrize("query", QUERIES, ids=range(len(QUERIES)))
async def test_compiled_and_standard_execution_answer_the_same(api: Api, app: Starlette, settings: Settings, query: str) -> None:
    # given
    await api.sign_up("alice@example.com")
    async with api.database.transaction() as session:
        owner = await session.scalar(select(User).where(User.email == "alice@example.com"))
        assert owner is not None
        task, _ = await make_analysed_task(session, owner)
        await make_analysed_task(session, owner)
        await make_task(session, owner)
    viewer = Viewer(owner.id, owner.role)
    variables = {"first": 3, "id": to_global_id("Task", task.id), "skip": False}
    compiled = build_schema(settings)
    standard = build_schema(settings.model_copy(update={"compiled_execution": False}))

    # when
    fast = await _execute(compiled, app, viewer, query, variables)
    slow = await _execute(standard, app, viewer, query, variables)

    # then
    assert fast == slow


def _planned(selection: SelectionPlan, *path: str) -> FieldPlan:
    plan = next(field for field in selection.fields if field.key == path[0])
    if len(path) == 1:
        return plan
    assert plan.children is not None
    return _planned(plan.children, *path[1:])


def test_the_dashboard_reads_each_relationship_in_the_row_lane() -> None:
    dashboard = """query($first: Int!) { tasks(first: $first) { edges { node { id status
                     analysis { verdict findings { severity ruleId message remediation } } } } } }"""
    plan = compile_query(build_schema()._schema, parse(dashboard), None, Loaders.kind)

    analysis = _planned(plan.root, "tasks", "edges", "node", "analysis")
    findings = _planned(analysis.children, "findings")  # type: ignore[arg-type]

    assert (analysis.rows and analysis.rows.loader, findings.rows and findings.rows.loader) == (
        "analysis_by_task_id", "findings_by_analysis_id")


def test_a_selection_only_a_resolver_can_answer_keeps_its_relationship_out_of_the_row_lane() -> None:
    plan = compile_query(build_schema()._schema, parse(QUERIES[0]), None, Loaders.kind)

    analysis = _planned(plan.root, "tasks", "edges", "node", "analysis")

    # findingCounts reads the loader through its resolver; the findings below it still take the lane
    assert analysis.rows is None
    assert _planned(analysis.children, "findings", "sources").rows is not None  # type: ignore[arg-type]


def test_a_relationship_given_arguments_is_left_to_its_resolver() -> None:
    plan = compile_query(build_schema()._schema, parse(QUERIES[-1]), None, Loaders.kind)

    node = ("tasks", "edges", "node", "analysis")
    assert _planned(plan.root, *node, "all").rows is not None
    assert _planned(plan.root, *node, "critical").rows is None


def test_the_dashboard_read_is_compiled_and_unsupported_shapes_are_not() -> None:
    schema = build_schema()._schema
    compile_query(schema, parse(QUERIES[0]), None, Loaders.kind)
    compile_query(schema, parse(QUERIES[1]), None, Loaders.kind)
    for unsupported in (QUERIES[3], QUERIES[4], "mutation { login(email: \"a\", password: \"b\") { token } }",
                        "{ __schema { types { name } } }"):
        with pytest.raises(Unsupported):
            compile_query(schema, parse(unsupported), None, Loaders.kind)


async def test_settle_resumes_each_resolver_once_what_it_waits_on_is_done() -> None:
    # given: resolvers of one level that take turns on a lock (as a request's reads take turns on its connection)
    lock = asyncio.Lock()
    order: list[str] = []

    async def resolver(name: str) -> str:
        async with lock:
            order.append(name)
            await asyncio.sleep(0.01)
        return name

    # when
    results = await asyncio.wait_for(settle([resolver("a"), resolver("b"), resolver("c")]), timeout=5)

    # then
    assert (results, order) == (["a", "b", "c"], ["a", "b", "c"])


async def test_settle_raises_the_first_error_once_every_resolver_has_let_go_of_what_it_holds() -> None:
    # given
    lock = asyncio.Lock()

    async def failing() -> None:
        raise ValueError("first")

    async def holding() -> str:
        async with lock:
            await asyncio.sleep(0.01)
        return "done"

    # when
    with pytest.raises(ValueError, match="first"):
        await asyncio.wait_for(settle([holding(), failing(), holding()]), timeout=5)

    # then
    assert not lock.locked()
