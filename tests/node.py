"""Running the client scripts of tests/js under Node, on the test's own loop, step by step with the test."""

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from tests.cli import PROJECT_ROOT

SCRIPTS = PROJECT_ROOT / "tests" / "js"
TIMEOUT = 60.0


def node_or_skip() -> str:
    """Node, with the packages `./dev test` installs from tests/js/package-lock.json; under CI both must be there."""
    node = shutil.which("node")
    missing = what_is_missing(node)
    if missing is None:
        return str(node)
    if os.environ.get("CI") == "true":
        pytest.fail(f"the client contract tests must run under CI: {missing}")
    pytest.skip(f"the client contract tests need Node.js 20 and npm: {missing}")


def what_is_missing(node: str | None) -> str | None:
    if node is None:
        return "Node.js is not installed"
    if (SCRIPTS / "node_modules").is_dir():
        return None
    if shutil.which("npm") is None:
        return "npm is not installed, so tests/js/node_modules is missing"
    return "tests/js/node_modules is missing: `./dev test` installs it"


class NodeScript:
    """One script's process: its checkpoints (it waits for the test at each) and its final result."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        assert process.stderr is not None
        self._stderr = asyncio.ensure_future(process.stderr.read())

    async def checkpoint(self, name: str) -> dict[str, Any]:
        line = await self._line()
        assert line.get("checkpoint") == name, f"{self.name}: expected checkpoint {name!r}, got {line}"
        return line

    async def proceed(self, answer: str = "") -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{answer}\n".encode())
        await self.process.stdin.drain()

    async def result(self) -> Any:
        line = await self._line()
        await asyncio.wait_for(self.process.wait(), TIMEOUT)
        assert "result" in line and self.process.returncode == 0, f"{self.name}: {line}"
        return line["result"]

    async def _line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)
        if not raw:
            raise AssertionError(f"{self.name} exited with {await self._exit()} and no result: {await self._errors()}")
        line: dict[str, Any] = orjson.loads(raw)
        if "error" in line:
            await self._exit()
            raise AssertionError(f"{self.name} failed while waiting for {line.get('waitingFor')}: "
                                 f"{line['error']} {await self._errors()}".rstrip())
        return line

    async def _exit(self) -> int:
        return await asyncio.wait_for(self.process.wait(), TIMEOUT)

    async def _errors(self) -> str:
        return (await self._stderr).decode(errors="replace")


@asynccontextmanager
async def node_script(node: str, name: str, **settings: str) -> AsyncIterator[NodeScript]:
    """Start tests/js/<name> with `settings` as environment variables; killed if the test ends first."""
    process = await asyncio.create_subprocess_exec(
        node, str(SCRIPTS / name), cwd=SCRIPTS, env=os.environ | settings,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield NodeScript(name, process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def run_script(node: str, name: str, **settings: str) -> Any:
    """A script without checkpoints: its result."""
    async with node_script(node, name, **settings) as script:
        return await script.result()
