"""GraphiQL over HTTP: a browser's GET /graphql gets a page whose every file the server itself serves."""

import hashlib
import json
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from db.settings import Settings
from graph.http.graphiql.page import DEFAULT_QUERY
from tests.api import Api
from tests.conftest import make_settings
from tests.live import live_server

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
MANIFEST = Path(__file__).resolve().parent.parent / "graph" / "http" / "graphiql" / "static" / "MANIFEST.json"
CONTENT_TYPES = {
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".ttf": {"font/ttf", "application/x-font-ttf"},
    ".txt": {"text/plain"},
    ".json": {"application/json"},
}


@pytest.fixture
def backend() -> str:
    # The page and its files never touch the database: one backend is enough.
    return "sqlite"


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with live_server(settings) as server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        yield client


class References(HTMLParser):
    """Every src and href in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(page: str) -> list[str]:
    parser = References()
    parser.feed(page)
    return parser.urls


def page_url(http: httpx.AsyncClient) -> str:
    return str(http.base_url.join("/graphql"))


def content_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


async def test_a_browser_gets_the_graphiql_page(http: httpx.AsyncClient) -> None:
    # when
    response = await http.get("/graphql", headers=BROWSER)

    # then
    assert response.status_code == 200
    assert content_type(response) == "text/html"
    assert '<div id="graphiql">' in response.text


async def test_the_page_refers_to_nothing_outside_the_server(http: httpx.AsyncClient) -> None:
    # when
    page = (await http.get("/graphql", headers=BROWSER)).text

    # then
    urls = references(page)
    assert urls, "the page loads its script and stylesheet"
    outside = [url for url in urls if urlsplit(urljoin(page_url(http), url)).netloc != urlsplit(page_url(http)).netloc]
    assert outside == []


async def test_every_file_the_page_refers_to_is_served_with_its_content_type(http: httpx.AsyncClient) -> None:
    # given
    urls = [urljoin(page_url(http), url) for url in references((await http.get("/graphql", headers=BROWSER)).text)]

    # when
    responses = {url: await http.get(url) for url in urls}

    # then
    for url, response in responses.items():
        assert response.status_code == 200, url
        assert content_type(response) in CONTENT_TYPES[Path(urlsplit(url).path).suffix], url


async def test_the_served_files_are_those_the_manifest_records(http: httpx.AsyncClient) -> None:
    # given
    files = json.loads(MANIFEST.read_text())["files"]

    # when
    responses = {name: await http.get(f"/graphiql/static/{name}") for name in files}

    # then
    for name, response in responses.items():
        assert response.status_code == 200, name
        assert content_type(response) in CONTENT_TYPES[Path(name).suffix], name
        assert hashlib.sha256(response.content).hexdigest() == files[name]["sha256"], name


async def test_files_named_by_their_content_are_cached_for_good(http: httpx.AsyncClient) -> None:
    # given
    script = json.loads(MANIFEST.read_text())["entries"]["script"]

    # when
    response = await http.get(f"/graphiql/static/{script}")

    # then
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_the_example_query_on_the_page_shows_the_signed_in_user(api: Api) -> None:
    # given
    token = await api.sign_up("reader@example.com")

    # when
    data = await api.data(DEFAULT_QUERY, token=token)

    # then
    assert data["me"]["email"] == "reader@example.com"


async def test_graphiql_enabled_false_serves_neither_the_page_nor_its_files(
    monkeypatch: pytest.MonkeyPatch, database_url: str, data_dir: Path
) -> None:
    # given
    monkeypatch.setenv("GRAPHIQL_ENABLED", "false")
    script = json.loads(MANIFEST.read_text())["entries"]["script"]

    # when
    async with live_server(make_settings(database_url, data_dir)) as server:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            page = await client.get("/graphql", headers=BROWSER)
            file = await client.get(f"/graphiql/static/{script}")
            query = await client.post("/graphql", json={"query": "{ __typename }"})

    # then
    assert page.status_code == 404 and "graphiql" not in page.text.lower()
    assert file.status_code == 404
    assert query.json() == {"data": {"__typename": "Query"}}
