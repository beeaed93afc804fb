"""The soak's clients: owners who upload, submit and read; pipeline workers, some of which die mid-task and come
back too late; and subscribers that keep disconnecting and resuming over WebSocket and Server-Sent Events.

Every request goes to one of the servers at random and is counted, with its error codes; a client that meets
an error carries on the way a real one would (a worker abandons its task, a subscriber resumes).
"""

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

CLAIM = "mutation { claimNextTask { claimId attempt task { id } } }"
PROGRESS = "mutation($t: ID!, $c: ID!, $p: Int!) { reportProgress(taskId: $t, claimId: $c, percent: $p) { event { sequence } } }"
RECORD = """
mutation($t: ID!, $c: ID, $v: Verdict!) {
  recordAnalysis(input: {taskId: $t, claimId: $c, verdict: $v, replace: true, complianceScore: 80,
    findings: [{severity: MINOR, ruleId: "SOAK-1", message: "seen", sources: [{pageNumber: 1}]}]}) {
    analysis { id }
  }
}
"""
COMPLETE = "mutation($t: ID!, $c: ID) { updateTaskStatus(taskId: $t, claimId: $c, status: COMPLETED) { task { status } } }"
ARTIFACT = """
mutation($t: ID!, $c: ID, $file: Upload!) { addArtifact(taskId: $t, claimId: $c, file: $file, kind: "report") { artifact { id } } }
"""
UPLOAD = "mutation($file: Upload!) { uploadDocument(file: $file) { task { id } deduplicated } }"
SUBMIT_URL = "mutation($u: String!) { submitUrl(url: $u) { task { id } } }"
CANCEL = "mutation($t: ID!) { cancelTask(taskId: $t) { task { status } } }"
READ_TASKS = "{ tasks(first: 20) { totalCount edges { node { id status analysis { verdict findings { ruleId } } } } } }"
DASHBOARD = "{ dashboard { totalTasks tasksByStatus { status count } averageComplianceScore } }"
MY_TASK_EVENTS = "subscription($after: BigInt) { myTaskEvents(afterPosition: $after) { position } }"
PROTOCOLS = ("graphql-transport-ws", "graphql-ws", "sse")


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # (code, kind of request): where each code came from
    sources: Counter[tuple[str, str]] = field(default_factory=Counter)
    late_writes: Counter[str] = field(default_factory=Counter)
    deaths: int = 0

    def record(self, kind: str, codes: list[str]) -> None:
        self.requests[kind] += 1
        for code in codes:
            self.errors[code] += 1
            self.sources[code, kind] += 1

    def described_errors(self) -> str:
        def where(code: str) -> str:
            kinds = sorted(((count, kind) for (error, kind), count in self.sources.items() if error == code),
                           reverse=True)
            return ", ".join(f"{kind} {count}" for count, kind in kinds)

        return "; ".join(f"{code} {count} ({where(code)})" for code, count in self.errors.most_common()) or "none"


class Client:
    """GraphQL over HTTP to whichever server is picked, counting every request."""

    def __init__(self, urls: list[str], tally: Tally) -> None:
        self.urls = urls
        self.tally = tally
        self.http = httpx.AsyncClient(timeout=30)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, kind: str, query: str, variables: dict[str, Any] | None = None, token: str | None = None,
                   file: tuple[str, bytes] | None = None) -> dict[str, Any] | None:
        """The data, or None after an error (counted by its code)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = random.choice(self.urls) + "/graphql"
        try:
            if file is None:
                response = await self.http.post(url, json={"query": query, "variables": variables or {}},
                                                headers=headers)
            else:
                operations = {"query": query, "variables": {**(variables or {}), "file": None}}
                response = await self.http.post(
                    url, headers=headers | {"Apollo-Require-Preflight": "true"},
                    data={"operations": orjson.dumps(operations).decode(), "map": '{"0": ["variables.file"]}'},
                    files={"0": file})
        except httpx.TransportError as error:
            self.tally.record(kind, [f"transport: {type(error).__name__}"])
            return None
        try:
            body = response.json()
        except ValueError:
            self.tally.record(kind, [f"HTTP {response.status_code}, not JSON"])
            return None
        codes = [(error.get("extensions") or {}).get("code", "no code") for error in body.get("errors") or []]
        self.tally.record(kind, codes)
        return None if codes else body.get("data")


async def owner(client: Client, token: str, stop: asyncio.Event, seed: int) -> None:
    """Uploads (some of them the same bytes again, some of a megabyte), URL submissions, reads, a cancellation now and then."""
    rng = random.Random(seed)
    sent: list[bytes] = []
    mine: list[str] = []
    while not stop.is_set():
        roll = rng.random()
        if roll < 0.3:
            size = 1024 * 1024 if rng.random() < 0.03 else rng.randrange(200, 64 * 1024)
            content = rng.choice(sent) if sent and rng.random() < 0.2 else rng.randbytes(size // 2).hex().encode()
            sent = [*sent[-19:], content]  # the last few, to send again
            data = await client.call("uploadDocument", UPLOAD, token=token, file=("report.txt", content))
            if data:
                mine.append(data["uploadDocument"]["task"]["id"])
        elif roll < 0.5:
            data = await client.call("submitUrl", SUBMIT_URL, {"u": f"https://soak.example/{seed}/{rng.randrange(10**9)}"},
                                     token)
            if data:
                mine.append(data["submitUrl"]["task"]["id"])
        elif roll < 0.52 and mine:
            await client.call("cancelTask", CANCEL, {"t": rng.choice(mine)}, token)
        elif roll < 0.8:
            await client.call("tasks", READ_TASKS, token=token)
        else:
            await client.call("dashboard", DASHBOARD, token=token)
        await asyncio.sleep(rng.uniform(0.05, 0.25))


@dataclass
class Zombie:
    """A claim whose worker died mid-task and that comes back after its lease, as a paused process would."""

    task_id: str
    claim_id: str
    back_at: float


async def pipeline_worker(client: Client, token: str, stop: asyncio.Event, seed: int, death_rate: float,
                          zombies: list[Zombie], lease_seconds: float) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        data = await client.call("claimNextTask", CLAIM, token=token)
        claim = data and data["claimNextTask"]
        if not claim:
            await asyncio.sleep(0.2)
            continue
        task_id, claim_id = claim["task"]["id"], claim["claimId"]
        if not await client.call("reportProgress", PROGRESS, {"t": task_id, "c": claim_id, "p": 10}, token):
            continue  # abandoned, as a crash would: the lease brings the task back
        if rng.random() < death_rate:
            client.tally.deaths += 1
            zombies.append(Zombie(task_id, claim_id, time.monotonic() + 2.5 * lease_seconds))
            continue
        await asyncio.sleep(rng.uniform(0.05, 0.5))
        if rng.random() < 0.2 and not await client.call(
                "addArtifact", ARTIFACT, {"t": task_id, "c": claim_id}, token,
                file=("shot.txt", rng.randbytes(512).hex().encode())):
            continue
        if not await client.call("recordAnalysis", RECORD, {"t": task_id, "c": claim_id, "v": "APPROVED"}, token):
            continue
        await client.call("updateTaskStatus", COMPLETE, {"t": task_id, "c": claim_id}, token)


async def zombie_writes(client: Client, token: str, stop: asyncio.Event, zombies: list[Zombie]) -> None:
    """Dead workers' late recordAnalysis calls: each must be refused (CONFLICT) once its lease ran out."""
    while not stop.is_set() or zombies:
        due = [zombie for zombie in zombies if zombie.back_at <= time.monotonic()]
        for zombie in due:
            zombies.remove(zombie)
            before = client.tally.errors["CONFLICT"]
            data = await client.call("late recordAnalysis", RECORD,
                                     {"t": zombie.task_id, "c": zombie.claim_id, "v": "REJECTED"}, token)
            if data:
                client.tally.late_writes["accepted"] += 1
            elif client.tally.errors["CONFLICT"] > before:
                client.tally.late_writes["refused with CONFLICT"] += 1
            else:
                client.tally.late_writes["failed otherwise"] += 1
        await asyncio.sleep(0.2)


@dataclass
class Subscriber:
    name: str
    token: str
    protocol: str
    last: int
    received: list[int] = field(default_factory=list)
    sessions: int = 0
    ended_by: Counter[str] = field(default_factory=Counter)

    def take(self, position: int) -> None:
        self.received.append(position)
        self.last = max(self.last, position)


async def _websocket_positions(url: str, protocol: str, token: str, after: int) -> AsyncGenerator[int, None]:
    async with connect(url, subprotocols=[protocol], open_timeout=10, ping_interval=None,  # type: ignore[list-item]
                       max_queue=None) as socket:
        await socket.send(orjson.dumps({"type": "connection_init", "payload": {"token": token}}).decode())
        assert orjson.loads(await socket.recv())["type"] == "connection_ack"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        await socket.send(orjson.dumps({"id": "1", "type": start, "payload": {
            "query": MY_TASK_EVENTS, "variables": {"after": str(after)}}}).decode())
        async for raw in socket:
            message = orjson.loads(raw)
            if message["type"] in ("next", "data"):
                payload = message["payload"]
                if payload.get("errors"):
                    raise RuntimeError(payload["errors"][0].get("extensions", {}).get("code", "error"))
                yield int(payload["data"]["myTaskEvents"]["position"])
            elif message["type"] in ("error", "complete"):
                raise RuntimeError(f"stream {message['type']}")
    raise RuntimeError("socket closed")


async def _sse_positions(http: httpx.AsyncClient, url: str, token: str, after: int) -> AsyncGenerator[int, None]:
    headers = {"accept": "text/event-stream", "authorization": f"Bearer {token}", "last-event-id": str(after)}
    async with http.stream("POST", url, headers=headers, json={"query": MY_TASK_EVENTS}) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        event: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                key, _, value = line.partition(":")
                event[key] = value.removeprefix(" ")
                continue
            if event.get("event") == "next":
                payload = orjson.loads(event["data"])
                if payload.get("errors"):
                    raise RuntimeError(payload["errors"][0].get("extensions", {}).get("code", "error"))
                yield int(payload["data"]["myTaskEvents"]["position"])
            elif event.get("event") == "complete":
                raise RuntimeError("stream complete")
            event = {}
    raise RuntimeError("stream ended")


async def follow(subscriber: Subscriber, urls: list[str], seconds: float, until: int | None = None) -> None:
    """One session: subscribe after the last position received, on a server picked at random, for `seconds`
    (or until position `until` arrived); then disconnect, as a client leaving or losing its network would."""
    base = random.choice(urls)
    subscriber.sessions += 1
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as http:
        if subscriber.protocol == "sse":
            positions = _sse_positions(http, base + "/graphql", subscriber.token, subscriber.last)
        else:
            positions = _websocket_positions(base.replace("http", "ws") + "/graphql", subscriber.protocol,
                                             subscriber.token, subscriber.last)
        try:
            async with asyncio.timeout(seconds):
                async for position in positions:
                    subscriber.take(position)
                    if until is not None and subscriber.last >= until:
                        break
            subscriber.ended_by["client left"] += 1
        except TimeoutError:
            subscriber.ended_by["client left"] += 1
        except RuntimeError as error:
            subscriber.ended_by[f"the server: {error}"] += 1
        except OSError:
            subscriber.ended_by["could not connect"] += 1
        except ConnectionClosed as closed:
            subscriber.ended_by[f"socket closed ({closed.rcvd.code if closed.rcvd else 'no close frame'})"] += 1
        except (WebSocketException, httpx.HTTPError, AssertionError) as error:
            subscriber.ended_by[f"the connection broke ({type(error).__name__})"] += 1
        finally:
            await positions.aclose()


async def subscribe_on_and_off(subscriber: Subscriber, urls: list[str], stop: asyncio.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        await follow(subscriber, urls, rng.uniform(3, 20))
        await asyncio.sleep(rng.uniform(0.1, 2))
