"""GraphiQL in a real headless Chromium that may reach nothing but 127.0.0.1.

Drives Debian's chromium (`./dev test` installs it) through Playwright; each
flow saves a screenshot under .artifacts/ and prints its path.
"""

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
from playwright.async_api import Locator, Page, Route, async_playwright, expect

from db.enums import EventType
from db.events import append_event
from db.models import User
from graph.access.tokens import issue_token
from graph.relay import to_global_id
from tests.cli import PROJECT_ROOT
from tests.factories import make_task, make_user
from tests.live import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / ".artifacts"
TIMEOUT_MS = 20_000


@pytest.fixture
def backend() -> str:
    # These tests are about the browser client; both databases' subscriptions are
    # covered by tests/test_subscriptions.py.
    return "sqlite"


@dataclass
class GraphiQL:
    """The GraphiQL page in a browser, used through its editors and buttons as a person would."""

    page: Page
    requested_elsewhere: list[str] = field(default_factory=list)

    @property
    def response(self) -> Locator:
        return self.page.locator(".graphiql-response")

    async def type_into(self, editor: str, text: str) -> None:
        await self.page.locator(editor).click()
        await self.page.keyboard.press("ControlOrMeta+A")
        await self.page.keyboard.press("Delete")
        # One insertion, as a paste would be: typed key by key, the editor would add closing brackets.
        await self.page.keyboard.insert_text(text)

    async def type_query(self, query: str) -> None:
        await self.type_into(".graphiql-query-editor .monaco-editor", query)

    async def type_headers(self, headers: dict[str, str]) -> None:
        await self.page.get_by_role("button", name="Headers").click()
        await self.type_into('.monaco-editor[data-uri$="headers.json"]', orjson.dumps(headers).decode())

    async def run(self) -> None:
        await self.page.locator(".graphiql-execute-button").click()

    async def screenshot(self, flow: str) -> Path:
        path = ARTIFACTS / f"graphiql-{flow}.png"
        await self.page.screenshot(path=path)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        reason = "chromium is not installed (`./dev test` installs it: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the GraphiQL browser tests must run under CI: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
async def graphiql(chromium: str, server: LiveServer) -> AsyncIterator[GraphiQL]:
    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            opened = GraphiQL(page)

            async def only_this_machine(route: Route) -> None:
                if urlsplit(route.request.url).hostname == "127.0.0.1":
                    await route.continue_()
                else:
                    opened.requested_elsewhere.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_this_machine)
            await page.goto(f"http://127.0.0.1:{server.port}/graphql")
            yield opened
        finally:
            await browser.close()


async def account(server: LiveServer) -> tuple[User, str]:
    async with server.app.state.database.transaction() as session:
        user = await make_user(session)
    return user, issue_token(user.id, server.app.state.settings)[0]


async def task_of(server: LiveServer, owner: User) -> uuid.UUID:
    async with server.app.state.database.transaction() as session:
        return (await make_task(session, owner)).id


async def test_the_page_renders_its_editor_and_explorer_offline(graphiql: GraphiQL) -> None:
    # when: the schema has loaded, so the explorer lists the root fields
    explorer = graphiql.page.locator(".graphiql-explorer-root")
    await expect(explorer.locator(".graphiql-explorer-node.graphiql-explorer-me")).to_be_visible()

    # then
    await graphiql.screenshot("renders")
    await expect(graphiql.page.locator(".graphiql-query-editor .monaco-editor")).to_be_visible()
    await expect(graphiql.page.get_by_text("Loading")).to_have_count(0)
    assert graphiql.requested_elsewhere == []


async def test_a_query_with_a_bearer_token_in_the_headers_tab_shows_the_signed_in_user(
    server: LiveServer, graphiql: GraphiQL
) -> None:
    # given
    user, token = await account(server)

    # when
    await graphiql.type_query("query Who { me { email role } }")
    await graphiql.type_headers({"Authorization": f"Bearer {token}"})
    await graphiql.run()

    # then
    await expect(graphiql.response).to_contain_text(user.email)
    await graphiql.screenshot("query")
    assert graphiql.requested_elsewhere == []


async def test_a_subscription_shows_live_events_as_they_are_written(server: LiveServer, graphiql: GraphiQL) -> None:
    # given: subscribed from the first event on, so the stored CREATED shows the subscription is live
    owner, token = await account(server)
    task_id = await task_of(server, owner)
    await graphiql.type_query(
        f'subscription Watch {{ taskEvents(taskId: "{to_global_id("Task", task_id)}", afterSequence: 0) '
        "{ sequence type data } }"
    )
    await graphiql.type_headers({"Authorization": f"Bearer {token}"})
    await graphiql.run()
    await expect(graphiql.response).to_contain_text("CREATED")

    # when
    async with server.app.state.database.transaction() as session:
        await append_event(session, task_id, EventType.PROGRESS, {"percent": 42})

    # then
    await expect(graphiql.response).to_contain_text("PROGRESS")
    await expect(graphiql.response).to_contain_text("percent")
    await graphiql.screenshot("subscription")
    assert graphiql.requested_elsewhere == []


async def test_a_subscription_with_a_refused_token_says_what_to_put_in_the_headers_tab(graphiql: GraphiQL) -> None:
    # given
    await graphiql.type_query("subscription Mine { myTaskEvents { sequence } }")
    await graphiql.type_headers({"Authorization": "Bearer not-a-token"})

    # when
    await graphiql.run()

    # then
    await expect(graphiql.response).to_contain_text("put a valid token in the Headers tab")
    assert graphiql.requested_elsewhere == []
