"""Property-based fuzzing of the whole API: schemathesis against a real uvicorn on PostgreSQL.

Every query and mutation is called with generated arguments, valid and not
(hypothesis-graphql builds the documents from the served schema), anonymously
and as a USER, a WORKER and an ADMIN. No response may be a 5xx or carry
INTERNAL_SERVER_ERROR, every error has one of DESIGN.md's codes, and every
response fits the schema and the document (tests/response_shape.py).

The run is derandomized, so CI sends the same examples every time. To fuzz
longer or elsewhere:
    FUZZ_EXAMPLES=200 .venv/bin/python -m pytest tests/test_fuzz.py   # examples per operation, role and mode
    FUZZ_SEED=12345 .venv/bin/python -m pytest tests/test_fuzz.py      # other examples than CI's
"""

import os
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import graphql
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.graphql import nodes
from sqlalchemy import select

from db.access import SYSTEM
from db.engine import Database
from db.enums import Role
from db.models import Analysis, Finding, SourceReference, Task, TaskEvent, User
from db.settings import Settings
from db.tasks import transition_task
from graph.access.tokens import issue_token
from graph.relay import to_global_id
from tests.factories import make_analysed_task, make_processing_task, make_task, make_user, move_task
from tests.live import live_server_in_thread
from tests.response_shape import response_problems

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("FUZZ_SEED")
ROLES: tuple[Role | None, ...] = (None, Role.USER, Role.WORKER, Role.ADMIN)
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
NODE_MODELS = (Task, User, Analysis, Finding, SourceReference, TaskEvent)

# Values of the API's own scalars: mostly well-formed, and the malformed ones a careless client sends.
_names = st.from_regex(r"[_A-Za-z][_0-9A-Za-z]{0,8}", fullmatch=True)
_text = st.text(max_size=40)
_json_leaves = st.one_of(
    st.just(nodes.Null),
    st.booleans().map(nodes.Boolean),
    st.integers().map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.sampled_from(["1e400", "-1e400"]).map(lambda text: graphql.FloatValueNode(value=text)),
    _text.map(nodes.String),
)
JSON_VALUES = st.recursive(
    _json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(nodes.List),
        st.dictionaries(_names, children, max_size=4).map(
            lambda fields: nodes.Object([
                graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=value)
                for name, value in fields.items()
            ])
        ),
    ),
    max_leaves=12,
)
DATETIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda moment: nodes.String(moment.isoformat())),
    st.datetimes().map(lambda moment: nodes.String(moment.isoformat())),
    st.dates().map(lambda day: nodes.String(day.isoformat())),
    st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]).map(nodes.String),
    _text.map(nodes.String),
)
BIG_INTS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(nodes.Int),
    st.integers().map(lambda number: nodes.String(str(number))),
    _text.map(nodes.String),
)
UPLOADS = st.one_of(_text.map(nodes.String), st.integers().map(nodes.Int), JSON_VALUES)
schemathesis.graphql.scalar("JSON", JSON_VALUES)
schemathesis.graphql.scalar("DateTime", DATETIMES)
schemathesis.graphql.scalar("BigInt", BIG_INTS)
schemathesis.graphql.scalar("Upload", UPLOADS)


async def _seed(database: Database) -> tuple[dict[Role, uuid.UUID], list[str]]:
    """One account per role, tasks in several states (one of another user's), and the global id of every row."""
    async with database.transaction() as session:
        accounts = {role: await make_user(session, role=role) for role in Role}
        owner = accounts[Role.USER]
        await make_task(session, owner)
        await make_analysed_task(session, owner)
        failed = await make_task(session, owner)
        await transition_task(session, failed.id, "PROCESSING", viewer=SYSTEM)
        await move_task(session, failed.id, "FAILED", error_message="broken")
        await make_processing_task(session, await make_user(session))
    global_ids: list[str] = []
    async with database.sessions() as session:
        for model in NODE_MODELS:
            global_ids += [to_global_id(model.__name__, pk) for pk in await session.scalars(select(model.id))]
    return {role: user.id for role, user in accounts.items()}, global_ids


def _ids(global_ids: list[str]) -> Any:
    """IDs of rows that exist, of rows that do not (of every type), and of nothing at all."""
    missing = st.builds(to_global_id, st.sampled_from([model.__name__ for model in NODE_MODELS]), st.uuids())
    return st.one_of(
        st.sampled_from(global_ids).map(nodes.String),
        missing.map(nodes.String),
        _text.map(nodes.String),
        st.integers().map(nodes.Int),
    )


def _check(schema: graphql.GraphQLSchema, outcomes: Counter[str]) -> Callable[[Any, requests.Response], None]:
    def check(case: Any, response: requests.Response) -> None:
        document = graphql.parse(case.body)
        assert response.status_code < 500, f"HTTP {response.status_code} for\n{case.body}\n{response.text[:2000]}"
        body = response.json()
        problems = response_problems(schema, document, body)
        assert not problems, f"{problems} for\n{case.body}\n{response.text[:2000]}"
        codes = sorted({error["extensions"]["code"] for error in body.get("errors", [])})
        outcomes[" ".join(codes) or "data"] += 1

    return check


def _fuzz(strategy: Any, call: Callable[[Any], None]) -> None:
    @settings(max_examples=EXAMPLES, derandomize=SEED is None, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=strategy)
    def run(case: Any) -> None:
        call(case)

    (seed(int(SEED))(run) if SEED is not None else run)()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_generated_requests_get_coded_errors_and_responses_that_fit_the_schema(settings: Settings) -> None:
    # given
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    with live_server_in_thread(settings) as (server, run), requests.Session() as http:
        accounts, global_ids = run(_seed(server.app.state.database))
        schemathesis.graphql.scalar("ID", _ids(global_ids))
        url = f"http://127.0.0.1:{server.port}/graphql"
        schema = schemathesis.graphql.from_url(url)
        check = _check(schema.client_schema, outcomes)
        accept = {"Accept": "application/graphql-response+json"}

        # when
        for role in ROLES:
            headers = accept if role is None else {
                **accept, "Authorization": f"Bearer {issue_token(accounts[role], settings)[0]}"
            }
            for result in schema.get_all_operations():
                operation = result.ok()  # type: ignore[union-attr]  # an Err would have raised on load

                def call(case: Any, headers: dict[str, str] = headers) -> None:
                    check(case, case.call(session=http, headers=headers))

                for mode in MODES:
                    try:
                        _fuzz(operation.as_strategy(generation_mode=mode), call)
                    except Exception as error:  # noqa: BLE001 - every operation and role is tried before failing
                        failures.append(f"{(role and role.value) or 'anonymous'} {operation.label} {mode}: {error}")

    # then
    print(f"fuzzing: {sum(outcomes.values())} requests, {len(failures)} failures; answers: {dict(outcomes)}")
    assert not failures, "\n\n".join(failures)
