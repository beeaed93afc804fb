"""A minimal HTTP client for single requests to the servers under test, on loopback only."""

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import orjson

from bench.processes import LOOPBACK
from bench.workload import dashboard_body, login_body

# No proxy, whatever the environment says: every request stays on this machine.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RequestFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise RequestFailed(f"HTTP {self.status}, not JSON: {self.body[:300]!r}") from None


def post(url: str, body: bytes, token: str | None = None, timeout: float = 30.0) -> Reply:
    if urllib.parse.urlsplit(url).hostname != LOOPBACK:
        raise ValueError(f"refusing to send traffic off this machine: {url}")
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            return Reply(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read())
    except (urllib.error.URLError, OSError) as error:
        raise RequestFailed(f"POST {url} failed: {error}") from error


def graphql_data(reply: Reply) -> dict[str, Any]:
    """The `data` of a GraphQL reply, or RequestFailed naming the errors."""
    document = reply.json()
    if not isinstance(document, dict):
        raise RequestFailed(f"HTTP {reply.status}: unexpected reply {reply.body[:300]!r}")
    if document.get("errors") or reply.status != 200 or not document.get("data"):
        messages = "; ".join(_describe(error) for error in document.get("errors") or [])
        raise RequestFailed(f"HTTP {reply.status}: {messages or reply.body[:300]!r}")
    return dict(document["data"])


def _describe(error: Any) -> str:
    if not isinstance(error, dict):
        return repr(error)
    code = (error.get("extensions") or {}).get("code")
    return f"{error.get('message')} [{code}]" if code else str(error.get("message"))


def login(graphql_url: str, email: str, password: str) -> str:
    data = graphql_data(post(graphql_url, login_body(email, password)))
    token = (data.get("login") or {}).get("token")
    if not isinstance(token, str):
        raise RequestFailed(f"login returned no token: {data!r}")
    return token


def dashboard(graphql_url: str, token: str, first: int) -> Reply:
    return post(graphql_url, dashboard_body(first), token)
