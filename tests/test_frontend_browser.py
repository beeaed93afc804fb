"""A page on another origin, in Chromium, using Apollo Client, urql (its default exchanges) and graphql-sse
as README.md shows them: a query, an upload, and a subscription that stays live, every event once, through
a restart of the API and through PostgreSQL terminating every connection of the database.

Each page is the README snippet bundled with esbuild from tests/js (tests/js/lib/snippets.mjs), given the
API's address and a token in its query string, then the page's own use of the client (tests/js/browser/).
It is served by a static server on another port and host name (`localhost` against the API's
`127.0.0.1`), so every request is cross-origin: CORS preflights, the WebSocket's Origin check.

PostgreSQL only: the terminations exist only there, and one server set (the API process, the static
server) serves the whole module to keep it short; tests/test_resume_snippets.py runs the same snippets
through a restart on SQLite too.
"""

import asyncio
import functools
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, async_playwright

from db.engine import Database
from db.settings import Settings
from graph.access.tokens import issue_token
from tests.conftest import _create_postgres_database, _drop_postgres_database, make_settings, run_in_thread
from tests.factories import make_user
from tests.node import SCRIPTS, node_or_skip
from tests.restarts import Pipeline, Worker
from tests.test_graphiql_browser import CHROMIUM_ARGS, chromium  # noqa: F401 - the fixture
from tests.throwaway_postgres import PostgresServer

CLIENTS = ("apollo", "urql", "graphql-sse")
TERMINATIONS = 3
# A page's wait for its events: a reconnect backs off up to 5 s (the snippets' retry settings).
WAIT_SECONDS = 30.0
PAGE = '<!doctype html><meta charset="utf-8"><title>{name}</title><script type="module" src="{name}.js"></script>'


@pytest.fixture(scope="module")
def node() -> str:
    return node_or_skip()


@pytest.fixture(scope="module")
def site(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The pages, served from their own origin."""
    folder = tmp_path_factory.mktemp("site")
    for name in CLIENTS:
        subprocess.run([node, "resume/build.mjs", name, "browser/host.mjs", "browser", str(folder / f"{name}.js"),
                        f"browser/{name}.js"], cwd=SCRIPTS, check=True, timeout=120)
        (folder / f"{name}.html").write_text(PAGE.format(name=name))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Stack:
    settings: Settings
    api: Worker
    postgres: PostgresServer
    database_name: str


@pytest.fixture(scope="module")
def stack(postgres_server: PostgresServer, postgres_template: str, site: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    name = run_in_thread(_create_postgres_database(postgres_server, postgres_template))
    settings = make_settings(postgres_server.url(name), tmp_path_factory.mktemp("data"))
    api = Worker(settings, {"ALLOWED_ORIGINS": site})
    run_in_thread(api.start())
    try:
        yield Stack(settings, api, postgres_server, name)
    finally:
        run_in_thread(api.stop())
        run_in_thread(_drop_postgres_database(postgres_server, name))


@pytest.fixture
async def pipeline(stack: Stack) -> AsyncIterator[Pipeline]:
    database = Database.from_settings(stack.settings)
    try:
        async with database.transaction() as session:
            owner = await make_user(session, email=f"page-{uuid.uuid4().hex[:8]}@example.com")
        yield Pipeline(database, owner.id, issue_token(owner.id, stack.settings)[0])
    finally:
        await database.dispose()


@dataclass
class Opened:
    page: Page
    errors: list[str]

    async def positions(self) -> list[int]:
        return [int(position) for position in await self.page.evaluate("window.received.map((e) => e.position)")]

    async def until_received(self, last: int) -> list[int]:
        """Every position the page received, once it has `last`, and after a short quiet time (a duplicate would come in it)."""
        async with asyncio.timeout(WAIT_SECONDS):
            while not (positions := await self.positions()) or positions[-1] < last:
                assert not self.errors, self.errors
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        return await self.positions()


@pytest.fixture
async def browser_page(chromium: str, site: str, stack: Stack, pipeline: Pipeline,  # noqa: F811
                       request: pytest.FixtureRequest) -> AsyncIterator[Opened]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(WAIT_SECONDS * 1000)
            opened = Opened(page, [])
            page.on("pageerror", lambda error: opened.errors.append(str(error)))
            api = f"{stack.api.url}/graphql"
            await page.goto(f"{site}/{request.param}.html?api={api}&token={pipeline.token}")
            await page.wait_for_function("window.app !== undefined")
            yield opened
        finally:
            await browser.close()


async def until_live(opened: Opened, pipeline: Pipeline, api: Worker) -> int:
    """Events now and then until the page has one (its subscription started at the log's head): its position."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not (positions := await opened.positions()):
            await pipeline.through(api)
            await asyncio.sleep(0.2)
    return positions[0]


async def terminate_every_backend(stack: Stack) -> int:
    connection = await asyncpg.connect(stack.postgres.dsn("postgres"))
    try:
        return len(await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = $1",
            stack.database_name))
    finally:
        await connection.close()


@pytest.mark.parametrize("browser_page", CLIENTS, indirect=True)
async def test_a_page_on_another_origin_queries_uploads_and_stays_live_through_a_restart_and_terminations(
    browser_page: Opened, stack: Stack, pipeline: Pipeline, request: pytest.FixtureRequest
) -> None:
    client = request.node.callspec.params["browser_page"]
    page = browser_page.page

    # a query, across origins
    me = await page.evaluate("app.me()")
    assert me.startswith("page-")

    # an upload (the GraphQL over SSE protocol carries no files)
    if client != "graphql-sse":
        upload = await page.evaluate("app.upload('insulation resistance: 550 megaohm\\n')")
        assert (upload["deduplicated"], upload["task"]["status"], upload["task"]["originalFilename"]) == (
            False, "QUEUED", "report.txt")

    # given: the page's subscription is live
    first = await until_live(browser_page, pipeline, stack.api)
    await pipeline.through(stack.api, 2)

    # when: the API restarts, with events written while it is down and once it is back
    await stack.api.stop()
    await pipeline.directly(3)
    await stack.api.start()
    await pipeline.through(stack.api, 3)
    restarted = await pipeline.log_from(first)

    # then: every event once, in order
    received = await browser_page.until_received(restarted[-1])
    print(f"{client} in Chromium across a restart: {len(restarted)} events expected, {len(received)} received")
    assert received == restarted

    # when: PostgreSQL terminates every connection of the database, again and again, under traffic
    for _ in range(TERMINATIONS):
        assert await terminate_every_backend(stack) >= 1
        await pipeline.through(stack.api, 3)
    expected = await pipeline.log_from(first)

    # then: the subscription did not end: every event once, in order, and nothing went wrong on the page
    received = await browser_page.until_received(expected[-1])
    print(f"{client} in Chromium after {TERMINATIONS} terminations: {len(expected)} events expected, "
          f"{len(received)} received, {len(browser_page.errors)} page errors")
    assert received == expected
    assert len(expected) >= len(restarted) + 3 * TERMINATIONS
    assert browser_page.errors == []
