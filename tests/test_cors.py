"""A page on another origin: one setting (ALLOWED_ORIGINS) lets it use the API over HTTP and WebSocket alike."""

from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from db.settings import Settings
from tests.conftest import make_settings
from tests.live import TRANSPORT_WS, LiveServer, bearer, graphql_socket, live_server
from tests.seeding import account

APP = "https://app.example"
ELSEWHERE = "https://elsewhere.example"
# What a frontend sends: its token, a JSON body, a resume of an SSE stream, its own request id, and the
# CSRF header of an upload (Apollo-Require-Preflight or X-Apollo-Operation-Name).
REQUESTED = "authorization, content-type, last-event-id, x-request-id, apollo-require-preflight, x-apollo-operation-name"


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return make_settings(database_url, data_dir, allowed_origins=[APP])


async def socket_opens(server: LiveServer, origin: str) -> bool:
    """Whether a page on `origin` gets a WebSocket acknowledged (False: the handshake is refused with 403)."""
    _, token = await account(server)
    try:
        async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token), origin=origin):
            return True
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
        return False


def preflight(origin: str) -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": "POST", "access-control-request-headers": REQUESTED}


async def test_the_preflight_allows_every_header_a_frontend_sends(client: httpx.AsyncClient) -> None:
    response = await client.options("/graphql", headers=preflight(APP))

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    allowed = {header.strip().lower() for header in response.headers["access-control-allow-headers"].split(",")}
    assert set(REQUESTED.split(", ")) <= allowed


async def test_a_response_to_another_origin_exposes_its_request_id_retry_after_and_write_position(
        client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ __typename }"},
                                 headers={"origin": APP, "x-request-id": "from-the-page"})

    assert response.headers["access-control-allow-origin"] == APP
    exposed = {header.strip().lower() for header in response.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"x-request-id", "retry-after", "x-read-after"}
    assert response.headers["x-request-id"] == "from-the-page"


async def test_an_origin_not_listed_is_refused_the_preflight(client: httpx.AsyncClient) -> None:
    response = await client.options("/graphql", headers=preflight(ELSEWHERE))

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_the_same_setting_lets_the_origin_open_a_websocket_and_no_other(settings: Settings) -> None:
    async with live_server(settings) as server:
        opened = [await socket_opens(server, origin) for origin in (APP, ELSEWHERE)]

    assert opened == [True, False]


async def test_each_side_may_be_given_origins_of_its_own(database_url: str, data_dir: Path) -> None:
    # given: ALLOWED_ORIGINS, with the WebSocket side overridden
    settings = make_settings(database_url, data_dir, allowed_origins=[APP], websocket_allowed_origins=[ELSEWHERE])

    async with live_server(settings) as server:
        async with httpx.AsyncClient() as http:
            preflighted = await http.options(f"http://127.0.0.1:{server.port}/graphql", headers=preflight(APP))
        opened = [await socket_opens(server, origin) for origin in (ELSEWHERE, APP)]

    # then: HTTP keeps ALLOWED_ORIGINS, the WebSocket side takes its own list only
    assert preflighted.headers["access-control-allow-origin"] == APP
    assert opened == [True, False]


def test_origins_read_from_the_environment_as_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: one list for both sides, an override left blank (as a copied .env.example line would be), one set
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://app.example, http://localhost:5173")
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "")
    monkeypatch.setenv("WEBSOCKET_ALLOWED_ORIGINS", "https://elsewhere.example")

    # when
    settings = Settings(_env_file=None)

    # then
    assert settings.cors_origins == ["https://app.example", "http://localhost:5173"]
    assert settings.websocket_origins == ["https://elsewhere.example"]
