"""The JavaScript clients our users run, unmodified, against a live server: each flow is a script in tests/js.

Each script prints checkpoints where it waits for the test to write events, then one JSON result.
"""

import uuid
from typing import Any

import pytest

from db.settings import Settings
from graph.relay import from_global_id, to_global_id
from tests.live import LiveServer, live_server
from tests.node import NodeScript, node_or_skip, node_script, run_script
from tests.relay import Relay, relay
from tests.seeding import account, analyse, analysed_task, progress, queued_task

# @urql/core's default for queries and mutations (tests/test_negotiation.py quotes it from its source).
URQL_ACCEPT = ("application/graphql-response+json, application/graphql+json, application/json, text/event-stream, "
               "multipart/mixed")


@pytest.fixture(scope="session")
def node() -> str:
    return node_or_skip()


def graphql_url(server: LiveServer) -> str:
    return f"http://127.0.0.1:{server.port}/graphql"


async def test_graphql_ws_receives_live_events_and_resumes_after_a_reconnect(node: str, server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    task_id = await queued_task(server, owner)

    async with node_script(node, "graphql_ws.mjs", GRAPHQL_URL=graphql_url(server), TOKEN=token,
                           TASK_ID=to_global_id("Task", task_id)) as script:
        # when: two events while connected, two while away, one after the resume
        await script.checkpoint("subscribed")
        await progress(server, task_id, 2)
        await script.proceed()
        await script.checkpoint("disconnected")
        await progress(server, task_id, 2)
        await script.proceed()
        await script.checkpoint("resumed")
        await progress(server, task_id, 1)
        await script.proceed()
        result = await script.result()

    # then: every event exactly once, in order
    assert result["firstConnection"] == [1, 2, 3]
    assert result["secondConnection"] == [4, 5, 6]


async def test_subscriptions_transport_ws_receives_live_events(node: str, server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    task_id = await queued_task(server, owner)

    async with node_script(node, "subscriptions_transport_ws.mjs", GRAPHQL_URL=graphql_url(server), TOKEN=token,
                           TASK_ID=to_global_id("Task", task_id)) as script:
        # when
        await script.checkpoint("subscribed")
        await progress(server, task_id, 2)
        await script.proceed()
        result = await script.result()

    # then: the stored CREATED event, then both live ones
    assert result["sequences"] == [1, 2, 3]


async def test_apollo_client_uploads_queries_caches_and_subscribes(node: str, server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    analysed = to_global_id("Task", await analysed_task(server, owner))

    async with node_script(node, "apollo_upload.mjs", GRAPHQL_URL=graphql_url(server), TOKEN=token,
                           ANALYSED_TASK_ID=analysed) as script:
        # when: the pipeline analyses the uploaded task while Apollo watches it
        uploaded = (await script.checkpoint("subscribed"))["taskId"]
        await analyse(server, from_global_id(uploaded, "Task")[1])
        await script.proceed()
        result = await script.result()

    # then: the upload became a queued task
    upload = result["upload"]
    assert (upload["deduplicated"], upload["task"]["status"], upload["task"]["originalFilename"]) == (
        False, "QUEUED", "report.txt")
    assert int(upload["task"]["fileSize"]) == result["uploadedBytes"]
    # and the nested query reached every level, each object normalised under its typename and id
    task = result["nested"]
    findings = task["analysis"]["findings"]
    sources = [source for finding in findings for source in finding["sources"]]
    assert (task["id"], task["analysis"]["verdict"]) == (analysed, "REVIEW")
    assert [(finding["severity"], len(finding["sources"])) for finding in findings] == [("CRITICAL", 1), ("MINOR", 0)]
    assert {f"Task:{upload['task']['id']}", f"Task:{task['id']}", f"Analysis:{task['analysis']['id']}",
            *(f"Finding:{finding['id']}" for finding in findings),
            *(f"SourceReference:{source['id']}" for source in sources)} <= set(result["cacheKeys"])
    # and the subscription saw the analysis recorded, naming it by an id node(id:) resolves
    assert [(event["sequence"], event["type"]) for event in result["events"]] == [
        (1, "CREATED"), (2, "STATUS_CHANGED"), (3, "ANALYSIS_RECORDED")]
    assert result["analysis"] == {"__typename": "Analysis", "id": result["analysisId"], "verdict": "REVIEW"}


async def test_graphql_sse_receives_live_events_and_resumes_after_a_dropped_connection(
    node: str, server: LiveServer
) -> None:
    # given: the client reaches the server through a relay the test can cut
    owner, token = await account(server)
    task_id = await queued_task(server, owner)

    async with relay(server.port) as network, node_script(
        node, "graphql_sse.mjs", GRAPHQL_URL=network.url, TOKEN=token, TASK_ID=to_global_id("Task", task_id)
    ) as script:
        # when: two events while connected, the connection drops, two while away, one after the resume
        await script.checkpoint("subscribed")
        await progress(server, task_id, 2)
        await script.proceed()
        await script.checkpoint("received")
        network.cut()
        await script.proceed()
        await script.checkpoint("dropped")
        await progress(server, task_id, 2)
        network.restore()
        await script.proceed()
        await script.checkpoint("resumed")
        await progress(server, task_id, 1)
        await script.proceed()
        result = await script.result()

    # then: every event exactly once, in order
    assert result["firstConnection"] == [1, 2, 3]
    assert result["secondConnection"] == [4, 5, 6]


async def events_across_a_dropped_connection(script: NodeScript, server: LiveServer, network: Relay,
                                             task_id: uuid.UUID) -> dict[str, Any]:
    """Two events while the script's stream is connected; the connection dropped and two events written before
    the client gets through again; one more after it is back. What the script saw."""
    await script.checkpoint("subscribed")
    await progress(server, task_id, 2)
    await script.proceed()
    await script.checkpoint("received")
    network.cut()
    await progress(server, task_id, 2)
    network.restore()
    await script.proceed()
    await script.checkpoint("resumed")
    await progress(server, task_id, 1)
    await script.proceed()
    result: dict[str, Any] = await script.result()
    return result


async def test_eventsource_reconnects_by_itself_and_resumes_from_last_event_id(node: str, server: LiveServer) -> None:
    # given: the client reaches the server through a relay the test can cut
    owner, token = await account(server)
    task_id = await queued_task(server, owner)

    async with relay(server.port) as network, node_script(
        node, "eventsource.mjs", GRAPHQL_URL=network.url, TOKEN=token, TASK_ID=to_global_id("Task", task_id)
    ) as script:
        # when
        result = await events_across_a_dropped_connection(script, server, network, task_id)

    # then: every event exactly once, in order
    assert result["sequences"] == [1, 2, 3, 4, 5, 6]
    # and the client itself resumed: its second request named the last event it had received
    assert result["requests"] == [{"lastEventId": None}, {"lastEventId": result["eventIds"][2]}]


async def test_the_readmes_apollo_client_setup_queries_mutates_and_uploads_from_another_origin(
        node: str, settings: Settings) -> None:
    # given: a page of an allowed origin
    origin = "https://dashboard.example"
    async with live_server(settings.model_copy(update={"allowed_origins": [origin]})) as server:
        _, token = await account(server)

        # when
        result = await run_script(node, "apollo_frontend.mjs", GRAPHQL_URL=graphql_url(server), TOKEN=token,
                                  ORIGIN=origin)

    # then: every operation answered, each answer readable by the page
    assert result["query"]["me"]["email"].endswith("@example.com")
    assert len(result["mutation"]["createStreamTicket"]["ticket"]) >= 40
    assert result["upload"]["uploadDocument"]["task"]["status"] == "QUEUED"
    assert {(answer["status"], answer["contentType"], answer["allowOrigin"]) for answer in result["answers"]} == {
        (200, "application/graphql-response+json", origin)}


async def test_urql_with_its_default_exchanges_queries_mutates_and_uploads_from_another_origin(
        node: str, settings: Settings) -> None:
    # given: the README's urql setup, on a page of an allowed origin
    origin = "https://dashboard.example"
    async with live_server(settings.model_copy(update={"allowed_origins": [origin]})) as server:
        _, token = await account(server)

        # when
        result = await run_script(node, "urql.mjs", GRAPHQL_URL=graphql_url(server), TOKEN=token, ORIGIN=origin)

    # then: every operation answered, as one JSON answer of the type urql names first
    assert result["query"]["me"]["email"].endswith("@example.com")
    assert len(result["mutation"]["createStreamTicket"]["ticket"]) >= 40
    assert result["upload"]["uploadDocument"]["task"] == {"__typename": "Task", "originalFilename": "report.txt",
                                                          "fileSize": "35"}
    assert {(request["accept"], request["status"], request["contentType"], request["allowOrigin"])
            for request in result["sent"]} == {(URQL_ACCEPT, 200, "application/graphql-response+json", origin)}


async def test_the_readmes_eventsource_flow_resumes_with_a_new_ticket_after_a_drop(node: str, server: LiveServer) -> None:
    # given: the client reaches the server through a relay the test can cut
    owner, token = await account(server)
    task_id = await queued_task(server, owner)

    async with relay(server.port) as network, node_script(
        node, "eventsource_readme.mjs", GRAPHQL_URL=network.url, TOKEN=token,
    ) as script:
        # when
        result = await events_across_a_dropped_connection(script, server, network, task_id)

    # then: every live event exactly once, in order, over two streams, the second opened after the last id seen
    assert result["sequences"] == [2, 3, 4, 5, 6]
    assert len(result["opened"]) == 2 and result["opened"][0] == {"after": None} and result["opened"][1]["after"]


async def test_eventsource_on_another_origin_signs_in_with_stream_tickets_and_resumes(
        node: str, settings: Settings) -> None:
    # given: a server that allows the page's origin, reached through a relay the test can cut
    origin = "https://dashboard.example"
    async with live_server(settings.model_copy(update={"allowed_origins": [origin]})) as server:
        owner, token = await account(server)
        task_id = await queued_task(server, owner)
        async with relay(server.port) as network, node_script(
            node, "eventsource_ticket.mjs", GRAPHQL_URL=network.url, TOKEN=token,
            TASK_ID=to_global_id("Task", task_id), ORIGIN=origin,
        ) as script:
            # when: as in the test above, with no header but the page's origin on the stream's requests
            result = await events_across_a_dropped_connection(script, server, network, task_id)

    # then: every event exactly once, in order, over two connections each signed in by a ticket of its own
    assert result["sequences"] == [1, 2, 3, 4, 5, 6]
    opened = [request for request in result["requests"] if request["status"] == 200]
    assert [request["lastEventId"] for request in opened] == [None, result["eventIds"][2]]
    # and each answer let the page read it, and its request id, Retry-After and a write's position
    assert {(request["sentAuthorization"], request["allowOrigin"], request["exposed"].lower()) for request in opened
            } == {(False, origin, "x-request-id, retry-after, x-read-after")}


@pytest.mark.parametrize("backend", ["sqlite"])  # the audits read no rows: one backend says it all
async def test_graphql_http_server_audits_find_no_must_or_should_failure(node: str, server: LiveServer) -> None:
    result = await run_script(node, "server_audits.mjs", GRAPHQL_URL=graphql_url(server))

    counts, failures = result["counts"], result["failures"]
    required = [f"{failure['name']} ({failure['reason']})" for failure in failures
                if failure["name"].startswith(("MUST", "SHOULD"))]
    assert counts["MUST"]["failed"] == counts["SHOULD"]["failed"] == 0, (
        f"audit counts {counts}; failing:\n" + "\n".join(required))


async def test_apollo_clients_persisted_queries_link_registers_a_query_then_sends_only_its_hash(
    node: str, server: LiveServer
) -> None:
    # when
    result = await run_script(node, "apollo_persisted_queries.mjs", GRAPHQL_URL=graphql_url(server))

    # then: unknown hash, then the query with its hash, then the hash alone over GET
    assert result["data"] == [{"__typename": "Query"}, {"__typename": "Query"}]
    assert result["requests"] == [["GET", "hash"], ["POST", "query and hash"], ["GET", "hash"]]
