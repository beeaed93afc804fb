"""Sends the same POST /graphql to an ASGI application N times, in process, as uvicorn would hand it over.

    python bench/asgi_driver.py FACTORY BODY_FILE REQUESTS [TOKEN | --login LOGIN_BODY_FILE]

Run by path, not as a module, by bench/instructions.py under valgrind: it imports nothing of bench/, so the
application it drives (`module:factory`, found on PYTHONPATH) may be an earlier commit's, exported beside this
one. The application's settings come from the environment. A warm-up of the same request runs first.
"""

import sys
from pathlib import Path

# Run by path, Python puts this folder first on the path, where bench/profile.py would stand for the standard
# library's profile module (and the rest for whatever shares their names): the application's path alone.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import asyncio  # noqa: E402
import importlib  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402

WARM_UP = 50


async def call(app: Any, body: bytes, token: str | None) -> tuple[int, bytes]:
    headers = [(b"host", b"localhost"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    received = False
    status, parts = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            await asyncio.Event().wait()  # the client stays until the response is out
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(parts)


async def drive(factory: str, body: bytes, requests: int, token: str | None, login: bytes | None) -> None:
    module, _, name = factory.partition(":")
    app = getattr(importlib.import_module(module), name)()
    async with LifespanManager(app) as manager:
        if login is not None:
            status, answer = await call(manager.app, login, None)
            token = orjson.loads(answer)["data"]["login"]["token"]
        status, answer = await call(manager.app, body, token)
        if status != 200 or b'"errors"' in answer:
            raise SystemExit(f"{factory} answered {status}: {answer[:300]!r}")
        for _ in range(WARM_UP + requests):
            await call(manager.app, body, token)


def main(argv: list[str]) -> int:
    factory, body_file, requests, *rest = argv
    token, login = (None, Path(rest[1]).read_bytes()) if rest[0] == "--login" else (rest[0], None)
    asyncio.run(drive(factory, Path(body_file).read_bytes(), int(requests), token, login))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
