"""Live task events over real WebSockets against a real uvicorn, on both protocols and both databases."""

import asyncio
import gc
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from graphql.execution.collect_fields import CollectedFields
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from db.access import SYSTEM
from db.analyses import record_analysis
from db.engine import Database
from db.enums import EventType, Role, TaskStatus
from db.events import append_event
from db.settings import Settings
from db.tasks import claim_next_task, transition_task
from graph.access.tokens import issue_token
from graph.relay import to_global_id
from tests.cli import free_port, start_cli, wait_until_ready
from tests.conftest import make_settings
from tests.factories import analysis_input, make_task, make_user
from tests.live import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, LiveServer, Refused, bearer, graphql_socket, live_server
from tests.seeding import account, database, queued_task

TASK_EVENTS = """
subscription($taskId: ID!, $after: Int) {
  taskEvents(taskId: $taskId, afterSequence: $after) { id sequence type data createdAt taskId }
}
"""
MY_TASK_EVENTS = """
subscription($since: DateTime, $resume: [TaskSequenceInput!]) {
  myTaskEvents(since: $since, afterSequences: $resume) { sequence type taskId }
}
"""


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


async def progress(db: Database, task_id: uuid.UUID, count: int = 1) -> None:
    async with db.transaction() as session:
        for step in range(count):
            await append_event(session, task_id, EventType.PROGRESS, {"step": step})


async def received(socket: Any, count: int) -> list[dict[str, Any]]:
    events = []
    for _ in range(count):
        payload = await socket.next()
        assert "errors" not in payload, payload
        events.append(next(iter(payload["data"].values())))
    return events


async def test_a_subscriber_receives_the_whole_lifecycle_in_order(server: LiveServer, protocol: str) -> None:
    # given
    owner, token = await account(server)
    task_id = await queued_task(server, owner)
    worker, _ = await account(server, Role.WORKER)
    db = database(server)

    async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id), "after": 1})

        # when
        async with db.transaction() as session:
            claimed = await claim_next_task(session, worker.id)
            assert claimed is not None and claimed.id == task_id
        async with db.transaction() as session:
            await append_event(session, task_id, EventType.PROGRESS, {"percent": 50})
        async with db.transaction() as session:
            await record_analysis(session, task_id, analysis_input(verdict="APPROVED"), viewer=SYSTEM,
                                  claim_id=claimed.claim_id)
        async with db.transaction() as session:
            await transition_task(session, task_id, TaskStatus.COMPLETED, viewer=SYSTEM, claim_id=claimed.claim_id)
        events = await received(socket, 4)

    # then
    assert [(e["sequence"], e["type"]) for e in events] == [
        (2, "STATUS_CHANGED"), (3, "PROGRESS"), (4, "ANALYSIS_RECORDED"), (5, "STATUS_CHANGED"),
    ]
    assert events[0]["data"] == {"from": "QUEUED", "to": "PROCESSING", "attempt": 1}  # the worker's account is not the owner's business
    assert events[1]["data"] == {"percent": 50}
    assert events[2]["data"]["verdict"] == "APPROVED" and events[2]["data"]["findingCount"] == 2
    assert events[3]["data"] == {"from": "PROCESSING", "to": "COMPLETED"}
    assert {e["taskId"] for e in events} == {to_global_id("Task", task_id)}


async def test_a_reconnecting_subscriber_gets_what_it_missed_once_then_live_events(
    server: LiveServer, protocol: str
) -> None:
    # given: the subscriber saw event 2, then dropped while 3 and 4 were written
    owner, token = await account(server)
    task_id = await queued_task(server, owner)
    variables = {"taskId": to_global_id("Task", task_id), "after": 1}
    async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
        await socket.subscribe(TASK_EVENTS, variables)
        await progress(database(server), task_id)
        last_seen = (await received(socket, 1))[0]["sequence"]
    await progress(database(server), task_id, count=2)

    # when
    async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
        await socket.subscribe(TASK_EVENTS, variables | {"after": last_seen})
        replayed = await received(socket, 2)
        await progress(database(server), task_id)
        live = await received(socket, 1)
        nothing_more = await socket.silent()

    # then
    assert [e["sequence"] for e in replayed + live] == [3, 4, 5]
    assert nothing_more


async def test_events_written_during_the_replay_arrive_without_gap_or_duplicate(server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    task_id = await queued_task(server, owner)
    await progress(database(server), task_id, count=30)

    async def keep_writing() -> None:
        for _ in range(20):
            await progress(database(server), task_id)

    # when
    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        writer = asyncio.create_task(keep_writing())
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id), "after": 0})
        events = await received(socket, 51)
        await writer
        nothing_more = await socket.silent()

    # then
    assert [e["sequence"] for e in events] == list(range(1, 52))
    assert nothing_more


async def test_without_after_sequence_only_new_events_arrive(server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    task_id = await queued_task(server, owner)

    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id)})
        await asyncio.sleep(0.2)  # let the subscription start before the write

        # when
        await progress(database(server), task_id)
        events = await received(socket, 1)

    # then
    assert [e["sequence"] for e in events] == [2]


async def test_a_rolled_back_event_is_never_delivered(server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    task_id = await queued_task(server, owner)
    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id), "after": 1})

        # when
        with pytest.raises(RuntimeError):
            async with database(server).transaction() as session:
                await append_event(session, task_id, EventType.PROGRESS, {"doomed": True})
                raise RuntimeError("the request failed")
        await progress(database(server), task_id)
        events = await received(socket, 1)

    # then
    assert [(e["sequence"], e["data"]) for e in events] == [(2, {"step": 0})]


async def test_a_slow_subscriber_whose_queue_overflows_still_receives_everything(server: LiveServer) -> None:
    # given: room for one notice only
    server.app.state.broker.inbox_size = 1
    owner, token = await account(server)
    task_id = await queued_task(server, owner)

    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id), "after": 1})
        await asyncio.sleep(0.2)

        # when: many notices at once, in several transactions
        for _ in range(5):
            await progress(database(server), task_id, count=5)
        events = await received(socket, 25)
        nothing_more = await socket.silent()

    # then
    assert [e["sequence"] for e in events] == list(range(2, 27))
    assert nothing_more


async def test_a_connection_without_a_token_is_refused(server: LiveServer, protocol: str) -> None:
    with pytest.raises(Refused) as refused:
        async with graphql_socket(server.ws_url, protocol, {}) as socket:
            await socket.receive()

    assert refused.value.code == 4403 if protocol == TRANSPORT_WS else refused.value.payload["code"] == "UNAUTHENTICATED"


async def test_a_connection_with_a_bad_token_is_refused(server: LiveServer, protocol: str) -> None:
    with pytest.raises(Refused) as refused:
        async with graphql_socket(server.ws_url, protocol, {"token": "not-a-token"}) as socket:
            await socket.receive()

    if protocol == LEGACY_WS:
        assert refused.value.payload == {"message": "the token is invalid", "code": "UNAUTHENTICATED"}
    else:
        assert refused.value.code == 4403


async def test_the_token_may_travel_as_a_bare_token_field(server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    task_id = await queued_task(server, owner)

    # when
    async with graphql_socket(server.ws_url, LEGACY_WS, {"token": token}) as socket:
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id), "after": 0})
        events = await received(socket, 1)

    # then
    assert events[0]["type"] == "CREATED"


async def test_a_user_cannot_subscribe_to_someone_elses_task(server: LiveServer, protocol: str) -> None:
    # given
    owner, _ = await account(server)
    task_id = await queued_task(server, owner)
    _, stranger_token = await account(server)

    # when
    async with graphql_socket(server.ws_url, protocol, bearer(stranger_token)) as socket:
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id), "after": 0})
        payload = await socket.next()

    # then: refused, and told nothing of the task's existence
    assert payload.get("data") is None
    assert [error["extensions"]["code"] for error in payload["errors"]] == ["NOT_FOUND"]


async def test_my_task_events_never_carries_another_users_events(server: LiveServer, protocol: str) -> None:
    # given
    me, token = await account(server)
    someone, _ = await account(server)
    mine = await queued_task(server, me)
    theirs = await queued_task(server, someone)

    async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
        await socket.subscribe(MY_TASK_EVENTS)
        await asyncio.sleep(0.2)

        # when
        await progress(database(server), theirs)
        await progress(database(server), mine)
        events = await received(socket, 1)
        nothing_more = await socket.silent()

    # then
    assert [(e["taskId"], e["sequence"]) for e in events] == [(to_global_id("Task", mine), 2)]
    assert nothing_more


async def test_a_workers_my_task_events_carries_every_task(server: LiveServer) -> None:
    # given
    _, worker_token = await account(server, Role.WORKER)
    first, second = (await account(server))[0], (await account(server))[0]
    first_task, second_task = await queued_task(server, first), await queued_task(server, second)

    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(worker_token)) as socket:
        await socket.subscribe(MY_TASK_EVENTS)
        await asyncio.sleep(0.2)

        # when
        await progress(database(server), first_task)
        await progress(database(server), second_task)
        events = await received(socket, 2)

    # then
    assert {e["taskId"] for e in events} == {to_global_id("Task", first_task), to_global_id("Task", second_task)}


async def test_my_task_events_since_replays_the_viewers_recent_events_first(server: LiveServer) -> None:
    # given
    me, token = await account(server)
    task_id = await queued_task(server, me)
    await progress(database(server), task_id, count=2)

    # when
    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe(MY_TASK_EVENTS, {"since": "2000-01-01T00:00:00+00:00"})
        replayed = await received(socket, 3)
        await progress(database(server), task_id)
        live = await received(socket, 1)

    # then
    assert [e["sequence"] for e in replayed + live] == [1, 2, 3, 4]


async def test_my_task_events_resumes_each_listed_task_after_its_sequence(server: LiveServer, protocol: str) -> None:
    # given: the subscriber had seen events 1 and 2 of the first task and 1 of the second
    me, token = await account(server)
    first, second = await queued_task(server, me), await queued_task(server, me)
    await progress(database(server), first, count=3)
    await progress(database(server), second, count=1)
    resume = [{"taskId": to_global_id("Task", first), "afterSequence": 2},
              {"taskId": to_global_id("Task", second), "afterSequence": 1}]

    # when
    async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
        await socket.subscribe(MY_TASK_EVENTS, {"resume": resume})
        replayed = await received(socket, 3)
        await progress(database(server), first)
        live = await received(socket, 1)
        nothing_more = await socket.silent()

    # then: each task's missed events once, in order, then live ones
    seen = [(e["taskId"], e["sequence"]) for e in replayed + live]
    assert [sequence for task, sequence in seen if task == to_global_id("Task", first)] == [3, 4, 5]
    assert [sequence for task, sequence in seen if task == to_global_id("Task", second)] == [2]
    assert nothing_more


async def test_since_with_after_sequences_never_redelivers_a_listed_tasks_events(server: LiveServer) -> None:
    # given: the subscriber saw events 1 to 3 of one task; another task of theirs it never saw
    me, token = await account(server)
    seen, unseen = await queued_task(server, me), await queued_task(server, me)
    await progress(database(server), seen, count=3)
    await progress(database(server), unseen, count=1)

    # when: it resumes the first after 3, and asks for everything since long ago besides
    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe(MY_TASK_EVENTS, {"since": "2000-01-01T00:00:00+00:00",
                                                "resume": [{"taskId": to_global_id("Task", seen), "afterSequence": 3}]})
        replayed = await received(socket, 3)
        nothing_more = await socket.silent()

    # then: the first task's fourth event, and the other's two, each once
    assert sorted((e["taskId"], e["sequence"]) for e in replayed) == sorted([
        (to_global_id("Task", seen), 4), (to_global_id("Task", unseen), 1), (to_global_id("Task", unseen), 2),
    ])
    assert nothing_more


async def test_my_task_events_resumes_more_tasks_than_a_page_holds(server: LiveServer) -> None:
    # given: 150 tasks, each with one event the subscriber saw and one it missed
    me, token = await account(server)
    tasks = []
    async with database(server).transaction() as session:
        for _ in range(150):
            task = await make_task(session, me)
            await append_event(session, task.id, EventType.PROGRESS, {})
            tasks.append(task.id)
    resume = [{"taskId": to_global_id("Task", task_id), "afterSequence": 1} for task_id in tasks]

    # when
    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe(MY_TASK_EVENTS, {"resume": resume})
        replayed = await received(socket, 150)
        nothing_more = await socket.silent()

    # then
    assert sorted(e["taskId"] for e in replayed) == sorted(to_global_id("Task", task_id) for task_id in tasks)
    assert {e["sequence"] for e in replayed} == {2}
    assert nothing_more


async def test_my_task_events_never_resumes_into_someone_elses_task(server: LiveServer) -> None:
    # given
    _, token = await account(server)
    someone, _ = await account(server)
    theirs = await queued_task(server, someone)
    await progress(database(server), theirs, count=2)

    # when
    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe(MY_TASK_EVENTS, {"resume": [{"taskId": to_global_id("Task", theirs),
                                                            "afterSequence": 0}]})
        nothing = await socket.silent()

    # then
    assert nothing


async def test_a_negative_resume_point_is_refused(server: LiveServer) -> None:
    me, token = await account(server)
    task_id = await queued_task(server, me)

    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe(MY_TASK_EVENTS, {"resume": [{"taskId": to_global_id("Task", task_id),
                                                            "afterSequence": -1}]})
        payload = await socket.next()

    assert payload.get("data") is None
    assert [error["extensions"]["code"] for error in payload["errors"]] == ["BAD_USER_INPUT"]


async def test_a_closed_socket_frees_its_subscription(server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    task_id = await queued_task(server, owner)
    broker = server.app.state.broker
    async with graphql_socket(server.ws_url, LEGACY_WS, bearer(token)) as socket:
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id), "after": 0})
        await received(socket, 1)
        assert broker.subscriber_count == 1

    # when: the socket is gone
    deadline = time.monotonic() + 5
    while broker.subscriber_count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)

    # then
    assert broker.subscriber_count == 0


def field_collections_alive() -> int:
    gc.collect()
    return sum(isinstance(thing, CollectedFields) for thing in gc.get_objects())


async def test_a_long_lived_subscription_keeps_nothing_per_event_delivered(server: LiveServer) -> None:
    # given: a subscriber that has received its first events
    owner, token = await account(server)
    task_id = await queued_task(server, owner)
    db = database(server)
    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id), "after": 1})
        await progress(db, task_id, count=10)
        await received(socket, 10)
        before = field_collections_alive()

        # when: 300 more reach it
        for _ in range(3):
            await progress(db, task_id, count=100)
            await received(socket, 100)
        after = field_collections_alive()

    # then: what the executor collected for each event went with the event
    assert after - before < 10


async def test_a_thousand_connect_and_disconnect_cycles_leave_nothing_behind(server: LiveServer) -> None:
    # given: a subscriber's events have flowed once, so every lazy structure exists
    owner, token = await account(server)
    task_id = await queued_task(server, owner)
    broker = server.app.state.broker
    variables = {"taskId": to_global_id("Task", task_id), "after": 0}

    async def cycle() -> None:
        async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
            await socket.subscribe(TASK_EVENTS, variables)
            await received(socket, 1)

    await cycle()
    await asyncio.sleep(0.2)
    tasks_before = len(asyncio.all_tasks())

    # when: 1,000 sockets subscribe, receive, and go away, fifty at a time
    for _ in range(20):
        await asyncio.gather(*(cycle() for _ in range(50)))
    deadline = time.monotonic() + 10
    while (broker.subscriber_count or len(asyncio.all_tasks()) > tasks_before) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)

    # then: no inbox, no route, no connection count, no task is left over
    assert broker.subscriber_count == 0
    assert broker._by_task == {} and broker._connections == {} and broker._access_watchers == {}
    assert len(asyncio.all_tasks()) <= tasks_before


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_page_on_an_unlisted_origin_cannot_open_a_socket(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.ws_url, subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
                           additional_headers={"Origin": "https://evil.example"}):
            pass

    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_same_origin_and_configured_origins_may_open_a_socket(database_url: str, data_dir: Any) -> None:
    settings = make_settings(database_url, data_dir, websocket_allowed_origins=["https://app.example"])
    async with live_server(settings) as server:
        owner, token = await account(server)
        for origin in ("https://app.example", f"http://127.0.0.1:{server.port}"):
            async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token), origin=origin) as socket:
                await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", await queued_task(server, owner)),
                                                     "after": 0})
                assert (await received(socket, 1))[0]["type"] == "CREATED"


@pytest.fixture
def two_servers(settings: Settings) -> Iterator[tuple[int, int]]:
    environment = {"DATABASE_URL": settings.database_url, "DATA_DIR": str(settings.data_dir),
                   "SECRET_KEY": settings.secret_key, "LOG_LEVEL": "warning"}
    ports = free_port(), free_port()
    processes = [start_cli("serve", "--port", str(port), **environment) for port in ports]
    try:
        for port, process in zip(ports, processes):
            wait_until_ready(f"http://127.0.0.1:{port}", process)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_write_anywhere_reaches_subscribers_on_every_server_process(
    two_servers: tuple[int, int], db: Database, settings: Settings
) -> None:
    # given: a subscriber on each of two uvicorn processes sharing one PostgreSQL
    async with db.transaction() as session:
        owner = await make_user(session)
        task_id = (await make_task(session, owner)).id
    token = issue_token(owner.id, settings)[0]
    variables = {"taskId": to_global_id("Task", task_id), "after": 1}
    urls = [f"ws://127.0.0.1:{port}/graphql" for port in two_servers]
    async with graphql_socket(urls[0], TRANSPORT_WS, bearer(token)) as on_a, \
            graphql_socket(urls[1], LEGACY_WS, bearer(token)) as on_b:
        await on_a.subscribe(TASK_EVENTS, variables)
        await on_b.subscribe(TASK_EVENTS, variables)

        # when: a third process (this test) writes and commits
        async with db.transaction() as session:
            await claim_next_task(session)
        events = [await received(on_a, 1), await received(on_b, 1)]

    # then
    assert [[(e["sequence"], e["type"]) for e in got] for got in events] == [[(2, "STATUS_CHANGED")]] * 2


async def test_a_query_over_either_websocket_protocol_gets_its_answer_then_complete(
    server: LiveServer, protocol: str
) -> None:
    # given
    owner, token = await account(server)

    async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
        # when: what subscriptions-transport-ws clients send for queries and mutations too
        await socket.subscribe("{ me { email } }")
        answer = await socket.next()
        done = await socket.receive()

    # then
    assert answer == {"data": {"me": {"email": owner.email}}}
    assert done["type"] == "complete"


@pytest.mark.parametrize("document", ["subscription { myTaskEvents { ", "subscription { nothingLikeThis }"])
async def test_a_document_that_does_not_parse_or_validate_gets_a_coded_error_on_either_protocol(
    server: LiveServer, protocol: str, document: str
) -> None:
    _, token = await account(server)

    async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
        await socket.subscribe(document)
        message = await socket.receive()

    assert message["type"] == "error"
    errors = message["payload"] if isinstance(message["payload"], list) else [message["payload"]]
    assert [error["extensions"]["code"] for error in errors] == ["BAD_USER_INPUT"]
