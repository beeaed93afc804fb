"""The browser's own EventSource signs in with a stream ticket: short-lived, single-use, never the token in a URL.
An SSE subscription without any credential is refused with 401 before the stream opens."""

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from db.base import utcnow
from db.models import StreamTicket
from db.users import SESSIONS_ENDED, set_user_password
from graph.relay import to_global_id
from tests.live import TIMEOUT, LiveServer
from tests.seeding import account, queued_task
from tests.test_sse import next_events, parse_events

CREATE_TICKET = "mutation { createStreamTicket { ticket expiresAt } }"
TASK_EVENTS = "subscription($taskId: ID!) { taskEvents(taskId: $taskId, afterSequence: 0) { sequence type } }"
STREAM = "text/event-stream"


def url(server: LiveServer) -> str:
    return f"http://127.0.0.1:{server.port}/graphql"


async def mint(server: LiveServer, token: str) -> str:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        response = await http.post(url(server), json={"query": CREATE_TICKET},
                                   headers={"authorization": f"Bearer {token}"})
    return str(response.json()["data"]["createStreamTicket"]["ticket"])


async def open_stream(server: LiveServer, params: dict[str, str], accept: str = STREAM
                      ) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """GET the stream as an EventSource does; its first event when it opens, else the refusal's body."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as http, http.stream(
            "GET", url(server), params=params, headers={"accept": accept}) as response:
        if response.status_code != 200 or not response.headers["content-type"].startswith(STREAM):
            await response.aread()
            return response, []
        return response, await next_events(parse_events(response), 1)


async def subscription(server: LiveServer) -> tuple[str, dict[str, str]]:
    """A token of an account with a queued task, and the parameters of a subscription to that task's events."""
    owner, token = await account(server)
    task_id = await queued_task(server, owner)
    return token, {"query": TASK_EVENTS, "variables": f'{{"taskId": "{to_global_id("Task", task_id)}"}}'}


def refusal(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, response.headers.get("www-authenticate", ""), body["errors"][0]["extensions"]["code"]


async def test_a_ticket_signs_in_one_stream_once(server: LiveServer) -> None:
    # given
    token, params = await subscription(server)
    ticket = await mint(server, token)

    # when: an EventSource opens the stream with it, then something shows it again
    opened, events = await open_stream(server, {**params, "ticket": ticket})
    again, _ = await open_stream(server, {**params, "ticket": ticket})

    # then
    assert opened.status_code == 200
    assert events[0]["data"]["data"]["taskEvents"] == {"sequence": 1, "type": "CREATED"}
    assert refusal(again) == (401, 'Bearer realm="auditgraph"', "UNAUTHENTICATED")


async def test_an_expired_ticket_is_refused(server: LiveServer) -> None:
    # given: a ticket whose minute has passed
    token, params = await subscription(server)
    ticket = await mint(server, token)
    async with server.app.state.database.transaction() as session:
        await session.execute(update(StreamTicket).values(expires_at=utcnow() - timedelta(seconds=1)))

    # when
    response, _ = await open_stream(server, {**params, "ticket": ticket})

    # then
    assert refusal(response) == (401, 'Bearer realm="auditgraph"', "UNAUTHENTICATED")


async def test_a_ticket_minted_before_a_password_change_is_refused(server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    ticket = await mint(server, token)
    async with server.app.state.database.transaction() as session:
        await set_user_password(session, owner.id, "a new and much longer password")

    # when
    response, _ = await open_stream(server, {"query": "subscription { myTaskEvents { sequence } }",
                                             "ticket": ticket})

    # then
    assert refusal(response)[::2] == (401, "UNAUTHENTICATED")
    assert response.json()["errors"][0]["message"] == SESSIONS_ENDED


async def test_a_stream_without_any_credential_is_a_401_before_it_opens(server: LiveServer) -> None:
    _, params = await subscription(server)

    response, _ = await open_stream(server, params)

    assert refusal(response) == (401, 'Bearer realm="auditgraph"', "UNAUTHENTICATED")
    assert response.json()["errors"][0]["extensions"]["requestId"] == response.headers["x-request-id"]


@pytest.mark.parametrize(("query", "accept"), [
    ("{ me { id } }", STREAM),                                        # a query, over a stream
    (TASK_EVENTS, "application/json"),                                # a subscription, but no stream accepted
])
async def test_a_ticket_signs_in_nothing_but_a_subscription_over_sse(server: LiveServer, query: str,
                                                                     accept: str) -> None:
    token, params = await subscription(server)

    response, _ = await open_stream(server, {**params, "query": query, "ticket": await mint(server, token)}, accept)

    assert response.status_code in (200, 401)
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in response.json() or response.json()["data"] is None


async def test_a_ticket_needs_a_signed_in_viewer(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        response = await http.post(url(server), json={"query": CREATE_TICKET})

    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_ticket_shown_to_two_workers_at_once_opens_one_stream(
        workers: tuple[LiveServer, LiveServer]) -> None:
    # given: one ticket, shown at the same moment to each worker
    first, _ = workers
    token, params = await subscription(first)
    ticket = await mint(first, token)

    # when
    answers = await asyncio.gather(*(open_stream(server, {**params, "ticket": ticket}) for server in workers))

    # then: exactly one stream opened
    assert sorted(response.status_code for response, _ in answers) == [200, 401]
