"""Every bad input is refused with a code and a message a person can act on, and changes nothing, on both databases.

Each case is a request a careless client or an attacker sends; before these
were handled, each ended in INTERNAL_SERVER_ERROR (or an HTTP 500), or on one
database only was taken in.
"""

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from db.engine import Database
from db.enums import Role
from db.models import User
from db.settings import Settings
from graph.access.tokens import issue_token
from graph.app import create_app
from graph.relay import to_global_id
from tests.api import Api, error_codes
from tests.conftest import make_settings
from tests.factories import make_processing_task, make_user
from tests.live import TRANSPORT_WS, bearer, graphql_socket, live_server
from tests.rows import snapshot
from tests.test_sse import TASK_EVENTS, event_stream, next_events, owner_with_task

UPLOAD = "mutation($file: Upload!) { uploadDocument(file: $file) { task { id originalFilename } } }"
ADD_ARTIFACT = """
mutation($task: ID!, $file: Upload!, $label: String) {
  addArtifact(taskId: $task, file: $file, kind: "screenshot", label: $label) { artifact { id } }
}
"""
RECORD = "mutation($input: RecordAnalysisInput!) { recordAnalysis(input: $input) { analysis { id } } }"
TASKS = "query($filter: TaskFilter) { tasks(filter: $filter) { totalCount } }"
TASKS_AFTER = "query($after: String) { tasks(after: $after) { totalCount } }"
OFFSET = "add Z for UTC or the offset"
NUL = "NUL character (U+0000)"
UPLOAD_ONLY = "Upload takes a file part of a multipart request"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def cursor(values: list[Any], ordering: str = "tasks:CREATED_AT:DESC") -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ordering, values])).decode()


def finding(**overrides: Any) -> dict[str, Any]:
    return {"severity": "MAJOR", "ruleId": "GND-01", "message": "ground resistance above limit"} | overrides


def analysis(**overrides: Any) -> dict[str, Any]:
    return {"taskId": "<task>", "claimId": "<claim>", "verdict": "REVIEW", "findings": [finding()]} | overrides


# (name, who asks, query, variables, message fragment); "<task>" and "<user>" become global ids, "<claim>"
# the claim the task is processed under.
BAD_INPUTS: list[tuple[str, Role | None, str, dict[str, Any], str]] = [
    ("DateTime without an offset in a filter", Role.USER,
     '{ tasks(filter: {createdAfter: "2024-05-01T12:00:00"}) { totalCount } }', {}, OFFSET),
    ("a bare date as a DateTime variable", Role.USER, TASKS, {"filter": {"createdBefore": "2024-05-01"}}, OFFSET),
    ("DateTime without an offset on the dashboard", Role.USER,
     '{ dashboard(filter: {createdAfter: "2024-05-01T00:00:00"}) { totalTasks } }', {}, OFFSET),
    ("DateTime without an offset in a user's tasks", Role.USER,
     '{ me { tasks(filter: {createdBefore: "2024-05-01"}) { totalCount } } }', {}, OFFSET),
    ("DateTime past year 9999 in UTC", Role.USER, TASKS,
     {"filter": {"createdAfter": "9999-12-31T23:59:59-14:00"}}, "between the years 1 and 9999"),
    ("DateTime before year 1 in UTC", Role.USER, TASKS,
     {"filter": {"createdAfter": "0001-01-01T00:00:00+14:00"}}, "between the years 1 and 9999"),
    ("DateTime that is not a date", Role.USER, TASKS, {"filter": {"createdAfter": "yesterday"}}, "ISO 8601"),
    ("NUL in filenameContains", Role.USER, '{ tasks(filter: {filenameContains: "a\\u0000b"}) { totalCount } }', {}, NUL),
    ("NUL in a sourceUrl filter", Role.USER, TASKS, {"filter": {"sourceUrl": "http://example.com/\x00"}}, NUL),
    ("NUL in a finding filter", Role.USER, "query($rule: String) { findings(filter: {ruleId: $rule}) { totalCount } }",
     {"rule": "GND\x00"}, NUL),
    ("NUL in a category filter", Role.USER, '{ findings(filter: {category: "\\u0000"}) { totalCount } }', {}, NUL),
    ("NUL in a registering email", None,
     "mutation($e: String!) { register(email: $e, password: \"correct horse battery\") { token } }",
     {"e": "new\x00@example.com"}, NUL),
    ("NUL in a registering password", None,
     "mutation($p: String!) { register(email: \"new@example.com\", password: $p) { token } }",
     {"p": "correct horse\x00battery"}, NUL),
    ("NUL in a login email", None,
     "mutation($e: String!) { login(email: $e, password: \"correct horse battery\") { token } }",
     {"e": "owner@example.com\x00"}, NUL),
    ("NUL in a URL to audit", Role.USER, "mutation($u: String!) { submitUrl(url: $u) { task { id } } }",
     {"u": "https://example.com/a\x00b"}, NUL),
    ("NUL in an analysis summary", Role.WORKER, RECORD, {"input": analysis(summary="two\x00findings")}, NUL),
    ("NUL in a finding message", Role.WORKER, RECORD, {"input": analysis(findings=[finding(message="\x00")])}, NUL),
    ("NUL in a string of evidence", Role.WORKER, RECORD,
     {"input": analysis(findings=[finding(evidence={"measured": "12\x00ohm"})])}, NUL),
    ("NUL in a key of evidence", Role.WORKER, RECORD,
     {"input": analysis(findings=[finding(evidence={"meas\x00ured": 12})])}, NUL),
    ("NUL in a source snippet", Role.WORKER, RECORD,
     {"input": analysis(findings=[finding(sources=[{"pageNumber": 1, "snippet": "\x00"}])])}, NUL),
    ("NUL in an error message", Role.WORKER,
     "mutation($t: ID!, $c: ID, $m: String) { updateTaskStatus(taskId: $t, claimId: $c, status: FAILED, errorMessage: $m) "
     "{ task { id } } }",
     {"t": "<task>", "c": "<claim>", "m": "disk\x00full"}, NUL),
    ("NUL in a progress message", Role.WORKER,
     "mutation($t: ID!, $c: ID!, $m: String) { reportProgress(taskId: $t, claimId: $c, percent: 5, message: $m) "
     "{ task { id } } }",
     {"t": "<task>", "c": "<claim>", "m": "\x00"}, NUL),
    ("evidence nested 500 deep", Role.WORKER, RECORD,
     {"input": analysis(findings=[finding(evidence=nested(500))])}, "nested deeper than 32 levels"),
    ("an extraction result of lists nested 300 deep", Role.WORKER, RECORD,
     {"input": analysis(extractionResult={"a": orjson.loads("[" * 300 + "]" * 300)})}, "nested deeper than 32 levels"),
    ("a JSON integer past 64 bits", Role.WORKER, RECORD,
     {"input": analysis(findings=[finding(evidence={"n": 2**64 - 1})])}, "64 bits"),
    ("a JSON number that is infinite", Role.WORKER,
     'mutation($t: ID!, $c: ID) { recordAnalysis(input: {taskId: $t, claimId: $c, verdict: REVIEW, '
     'validationResult: {x: 1e400}}) { analysis { id } } }', {"t": "<task>", "c": "<claim>"}, "finite"),
    ("a JSON string where an Upload goes", Role.USER, UPLOAD, {"file": "abc"}, UPLOAD_ONLY),
    ("a JSON object where an Upload goes", Role.USER, UPLOAD, {"file": {}}, UPLOAD_ONLY),
    ("a string literal where an Upload goes", Role.USER, 'mutation { uploadDocument(file: "abc") { task { id } } }', {},
     UPLOAD_ONLY),
    ("a JSON value where an artifact's Upload goes", Role.WORKER, ADD_ARTIFACT,
     {"task": "<task>", "file": {"filename": "x.png"}}, UPLOAD_ONLY),
    ("a cursor whose id is a number", Role.USER, TASKS_AFTER,
     {"after": cursor(["2024-05-01T00:00:00+00:00", 5])}, "cursor is malformed"),
    ("a cursor past year 9999 in UTC", Role.USER, TASKS_AFTER,
     {"after": cursor(["9999-12-31T23:59:59-14:00", "00000000-0000-0000-0000-000000000000"])}, "cursor is malformed"),
    ("a cursor of another list", Role.USER, TASKS_AFTER, {"after": cursor([1], "users")}, "another list"),
    ("a cursor that is not base64", Role.USER, TASKS_AFTER, {"after": "%%%"}, "cursor is malformed"),
    ("an id that is not a global id", Role.USER, '{ task(id: "42") { id } }', {}, "not a valid id"),
    ("a global id of another type", Role.USER, "query($id: ID!) { task(id: $id) { id } }", {"id": "<user>"},
     "not the id of a Task"),
    ("a negative page size", Role.USER, "{ tasks(first: -1) { totalCount } }", {}, "between 0 and"),
    ("a page size past the maximum", Role.USER, "{ tasks(last: 101) { totalCount } }", {}, "between 0 and"),
    ("first and last together", Role.USER, "{ tasks(first: 1, last: 1) { totalCount } }", {}, "either first or last"),
    ("an enum value that does not exist", Role.USER, "{ tasks(filter: {status: [DONE]}) { totalCount } }", {},
     "TaskStatus"),
    ("a URL that is not http(s)", Role.USER, 'mutation { submitUrl(url: "javascript:alert(1)") { task { id } } }',
     {}, "http:// or https://"),
    ("a URL of 3,000 characters", Role.USER, "mutation($u: String!) { submitUrl(url: $u) { task { id } } }",
     {"u": "https://example.com/" + "a" * 3000}, "at most 2048"),
    ("an invalid email", None,
     'mutation { register(email: "not an email", password: "correct horse battery") { token } }', {}, "invalid email"),
    ("an error message of 10,001 characters", Role.WORKER,
     "mutation($t: ID!, $c: ID, $m: String) { updateTaskStatus(taskId: $t, claimId: $c, status: FAILED, errorMessage: $m) "
     "{ task { id } } }",
     {"t": "<task>", "c": "<claim>", "m": "x" * 10_001}, "at most 10000"),
    ("a sha256 that is not hex", Role.USER, '{ taskByHash(sha256: "xyz") { id } }', {}, "64 hexadecimal"),
]


@dataclass
class World:
    tokens: dict[Role, str]
    ids: dict[str, str]


@pytest.fixture
async def world(api: Api, settings: Settings) -> World:
    return await make_world(api, settings)


async def make_world(api: Api, settings: Settings) -> World:
    """An owner with a task being processed, and a worker to process it."""
    async with api.database.transaction() as session:
        owner = await make_user(session, email="owner@example.com")
        worker = await make_user(session, role=Role.WORKER)
        task = await make_processing_task(session, owner)
    tokens = {Role.USER: issue_token(owner.id, settings)[0], Role.WORKER: issue_token(worker.id, settings)[0]}
    return World(tokens=tokens, ids={"<task>": to_global_id("Task", task.id), "<user>": to_global_id("User", owner.id),
                                     "<claim>": str(task.claim_id)})


def with_ids(variables: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The variables with the placeholders of ids, at the top or one level down, replaced."""
    def swap(value: Any) -> Any:
        return ids.get(value, value) if isinstance(value, str) else value

    return {
        key: {name: swap(item) for name, item in value.items()} if isinstance(value, dict) else swap(value)
        for key, value in variables.items()
    }


async def everything(database: Database, data_dir: Path) -> tuple[Any, ...]:
    """Every row and every stored file: what a refused request must leave as it was."""
    async with database.sessions() as session:
        users = (await session.execute(select(User.id, User.email, User.is_active).order_by(User.id))).all()
    return await snapshot(database), users, stored_files(data_dir)


def stored_files(data_dir: Path) -> list[Path]:
    return sorted(path for path in data_dir.rglob("*") if path.is_file() and path.parent != data_dir)


@pytest.mark.parametrize(("name", "role", "query", "variables", "message"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
async def test_a_bad_input_is_a_coded_error_that_changes_nothing(
    api: Api, world: World, data_dir: Path, name: str, role: Role | None, query: str, variables: dict[str, Any],
    message: str,
) -> None:
    # given
    before = await everything(api.database, data_dir)

    # when
    body = await api.post(query, with_ids(variables, world.ids), world.tokens.get(role) if role else None)

    # then
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert message in body["errors"][0]["message"]
    assert await everything(api.database, data_dir) == before


@pytest.fixture
async def deep_input_api(database_url: str, data_dir: Path) -> AsyncIterator[tuple[Api, Settings]]:
    """The app with MAX_INPUT_DEPTH raised past what JSON may nest."""
    settings = make_settings(database_url, data_dir, max_input_depth=100)
    app = create_app(settings)
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield Api(client=client, database=app.state.database), settings


RECORD_EVIDENCE = (
    "mutation($input: RecordAnalysisInput!) { recordAnalysis(input: $input) { analysis { findings { evidence } } } }"
)


async def test_json_nested_64_deep_is_stored_and_read_back(deep_input_api: tuple[Api, Settings]) -> None:
    # given
    api, settings = deep_input_api
    world = await make_world(api, settings)
    evidence = nested(64)

    # when
    data = await api.data(RECORD_EVIDENCE, with_ids({"input": analysis(findings=[finding(evidence=evidence)])}, world.ids),
                          world.tokens[Role.WORKER])

    # then
    assert data["recordAnalysis"]["analysis"]["findings"][0]["evidence"] == evidence


async def test_json_nested_65_deep_is_refused_whatever_the_input_depth_setting(
    deep_input_api: tuple[Api, Settings], data_dir: Path
) -> None:
    # given: deeper JSON would be stored, then never read back (the response encoder stops at 255 levels)
    api, settings = deep_input_api
    world = await make_world(api, settings)
    before = await everything(api.database, data_dir)

    # when
    body = await api.post(RECORD_EVIDENCE, with_ids({"input": analysis(findings=[finding(evidence=nested(65))])},
                                                     world.ids), world.tokens[Role.WORKER])

    # then
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "nest at most 64" in body["errors"][0]["message"]
    assert await everything(api.database, data_dir) == before


async def test_a_datetime_with_an_offset_is_read_as_that_instant(api: Api, world: World) -> None:
    # given: the task was created just now, so an instant an hour ahead, written in UTC+02:00, is after it
    later = "2999-01-01T02:00:00+02:00"

    # when
    body = await api.data(TASKS, {"filter": {"createdBefore": later}}, world.tokens[Role.USER])

    # then
    assert body["tasks"]["totalCount"] == 1


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    return f"Content-Disposition: {disposition}\r\n\r\n".encode() + value


def multipart(*parts: bytes) -> bytes:
    return b"".join(b"--XX\r\n" + part + b"\r\n" for part in parts) + b"--XX--\r\n"


OPERATIONS = orjson.dumps({"query": UPLOAD, "variables": {"file": None}})
MAP = b'{"0": ["variables.file"]}'
FILE = part("0", b"insulation resistance: 550 megaohm\n", "report.txt")

# (name, body, message fragment): each refused before execution with a 400 and a JSON error.
BAD_MULTIPART: list[tuple[str, bytes, str]] = [
    ("map that is a list", multipart(part("operations", OPERATIONS), part("map", b"[1]"), FILE), "`map` field must be"),
    ("map that is a string", multipart(part("operations", OPERATIONS), part("map", b'"0"'), FILE), "`map` field must be"),
    ("map paths that are not a list", multipart(part("operations", OPERATIONS), part("map", b'{"0": "variables.file"}'), FILE),
     "`map` field must be"),
    ("map paths that are numbers", multipart(part("operations", OPERATIONS), part("map", b'{"0": [5]}'), FILE),
     "`map` field must be"),
    ("map that is not JSON", multipart(part("operations", OPERATIONS), part("map", b"{"), FILE), "not valid JSON"),
    ("a path that points nowhere", multipart(part("operations", OPERATIONS), part("map", b'{"0": ["variables.f.x"]}'), FILE),
     "points nowhere"),
    ("a path past the end of a list", multipart(part("operations", OPERATIONS), part("map", b'{"0": ["variables.file.3"]}'),
                                                FILE), "points nowhere"),
    ("a path outside the variables", multipart(part("operations", OPERATIONS), part("map", b'{"0": ["query"]}'), FILE),
     "point into the variables"),
    ("a path to a value that is not a placeholder",
     multipart(part("operations", orjson.dumps({"query": UPLOAD, "variables": {"file": "x"}})), part("map", MAP), FILE),
     "null placeholder"),
    ("variables that are null", multipart(part("operations", orjson.dumps({"query": UPLOAD, "variables": None})),
                                          part("map", MAP), FILE), "points nowhere"),
    ("a map entry for a file part that is missing", multipart(part("operations", OPERATIONS), part("map", b'{"1": ["variables.file"]}'), FILE),
     "holds no part of that name"),
    ("a file part without a filename", multipart(part("operations", OPERATIONS), part("map", MAP), part("0", b"abc")),
     "plain field, not a file"),
    ("no operations", multipart(part("map", MAP), FILE), "needs an `operations` field"),
    ("operations that are a list", multipart(part("operations", b"[]"), part("map", MAP), FILE), "one operation"),
    ("operations sent as a file", multipart(part("operations", OPERATIONS, "operations.json"), part("map", MAP), FILE),
     "not a file"),
    ("a part without a name", multipart(b"Content-Disposition: form-data\r\n\r\nabc"), "could not be read"),
]


@pytest.mark.parametrize(("name", "body", "message"), BAD_MULTIPART, ids=[case[0] for case in BAD_MULTIPART])
async def test_a_malformed_multipart_request_is_refused_before_execution(
    api: Api, world: World, data_dir: Path, name: str, body: bytes, message: str
) -> None:
    # given
    before = await everything(api.database, data_dir)

    # when
    response = await api.client.post("/graphql", content=body, headers={
        "Authorization": f"Bearer {world.tokens[Role.USER]}", "Apollo-Require-Preflight": "true",
        "Content-Type": "multipart/form-data; boundary=XX",
    })

    # then
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert message in response.json()["errors"][0]["message"]
    assert await everything(api.database, data_dir) == before


async def test_a_multipart_variable_that_is_not_a_file_is_refused(api: Api, world: World, data_dir: Path) -> None:
    # given
    before = await everything(api.database, data_dir)
    operations = orjson.dumps({"query": UPLOAD, "variables": {"file": "abc"}})

    # when
    response = await api.client.post(
        "/graphql", content=multipart(part("operations", operations), part("map", b"{}"), FILE),
        headers={"Authorization": f"Bearer {world.tokens[Role.USER]}", "Apollo-Require-Preflight": "true",
                 "Content-Type": "multipart/form-data; boundary=XX"},
    )

    # then
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert UPLOAD_ONLY in response.json()["errors"][0]["message"]
    assert await everything(api.database, data_dir) == before


async def test_a_nul_in_a_multipart_variable_stores_no_artifact(api: Api, world: World, data_dir: Path) -> None:
    # given
    before = await everything(api.database, data_dir)

    # when
    response = await api.upload(ADD_ARTIFACT, {"task": world.ids["<task>"], "file": None, "label": "shot\x00 1"},
                                {"file": ("shot.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)}, token=world.tokens[Role.WORKER])

    # then
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert NUL in response.json()["errors"][0]["message"]
    assert await everything(api.database, data_dir) == before


async def test_a_file_part_with_an_empty_filename_is_stored_under_a_default_name(api: Api, world: World) -> None:
    # given: what a browser's form sends for a file it knows no name of
    body = multipart(part("operations", OPERATIONS), part("map", MAP), part("0", b"550 megaohm\n", ""))

    # when
    response = await api.client.post("/graphql", content=body, headers={
        "Authorization": f"Bearer {world.tokens[Role.USER]}", "Apollo-Require-Preflight": "true",
        "Content-Type": "multipart/form-data; boundary=XX",
    })

    # then
    assert response.json()["data"]["uploadDocument"]["task"]["originalFilename"] == "upload"


MY_TASK_EVENTS = "subscription($since: DateTime, $after: BigInt) { myTaskEvents(since: $since, afterPosition: $after) { sequence } }"


@pytest.fixture
async def server_token(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    async with live_server(settings) as server:
        async with server.app.state.database.transaction() as session:
            user = await make_user(session)
        yield server.ws_url, issue_token(user.id, settings)[0]


@pytest.mark.parametrize(("variables", "message"), [
    ({"since": "2024-05-01T12:00:00"}, OFFSET),
    ({"since": "2024-05-01"}, OFFSET),
    ({"since": "9999-12-31T23:59:59-14:00"}, "between the years 1 and 9999"),
    ({"after": "12a"}, "BigInt takes an integer"),
    ({"after": str(2**64)}, "signed 64-bit"),
])
async def test_a_subscription_with_a_bad_argument_gets_a_coded_error(
    server_token: tuple[str, str], variables: dict[str, Any], message: str
) -> None:
    # given
    url, token = server_token
    async with graphql_socket(url, TRANSPORT_WS, bearer(token)) as socket:
        # when
        await socket.subscribe(MY_TASK_EVENTS, variables)
        result = await socket.next()

    # then
    assert error_codes(result) == ["BAD_USER_INPUT"], result
    assert message in result["errors"][0]["message"]



@pytest.mark.parametrize("last_event_id", ["99999999999999999999", "2147483648", "9" * 5000, "-1", "1e3", ""])
@pytest.mark.parametrize("stream", ["taskEvents", "myTaskEvents"])
async def test_a_last_event_id_no_stream_could_send_is_a_coded_error(
    settings: Settings, stream: str, last_event_id: str
) -> None:
    async with live_server(settings) as server:
        # given
        token, task_id = await owner_with_task(server)
        query, variables = ((TASK_EVENTS, {"taskId": to_global_id("Task", task_id)}) if stream == "taskEvents"
                            else ("subscription { myTaskEvents { sequence } }", {}))
        if stream == "myTaskEvents" and last_event_id == "2147483648":
            last_event_id = str(2**63)  # a position may pass 2**31; it may not pass 2**63 - 1

        # when
        async with event_stream(server, token, query, variables, last_event_id=last_event_id) as (_, events):
            error, complete = await next_events(events, 2)

    # then
    assert error["data"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Last-Event-ID" in error["data"]["errors"][0]["message"]
    assert complete["event"] == "complete"
