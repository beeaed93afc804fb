"""Driving a server with wrk and reading its figures back.

The Lua script sets the POST body and the bearer token, counts replies that
are not HTTP 200 or carry GraphQL errors (wrk itself sees only HTTP errors),
and its `done` hook prints wrk's exact counters and latency percentiles as one
JSON line, so nothing is parsed out of wrk's human-readable report.
"""

import asyncio
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.processes import LOOPBACK

RESULT_PREFIX = "BENCH_RESULT "

_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. [==[{token}]==]
wrk.body = [==[{body}]==]

-- wrk counts only HTTP errors; a GraphQL error comes back as 200 with "errors".
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) failed = 0 end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then failed = failed + 1 end
end

function done(summary, latency, requests)
  local failed_replies = 0
  for _, thread in ipairs(threads) do failed_replies = failed_replies + thread:get("failed") end
  local e = summary.errors
  io.write(string.format(
    '{prefix}{{"requests":%d,"duration_us":%d,"bytes":%d,"failed_replies":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, summary.bytes, failed_replies,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


class LoadFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadResult:
    requests: int
    duration_s: float
    bytes: int
    errors: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise LoadFailed("wrk is not installed (Debian: apt-get install wrk)")
    return path


def write_script(path: Path, body: bytes, token: str) -> Path:
    text_body = body.decode()
    if "]==]" in text_body or "]==]" in token:
        raise ValueError("the request cannot be quoted as a Lua long string")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_LUA.format(token=token, body=text_body, prefix=RESULT_PREFIX))
    return path


def parse_output(output: str) -> LoadResult:
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            raw = orjson.loads(line[len(RESULT_PREFIX):])
            # A non-200 reply is both a status error and a failed reply: count it once.
            errors = raw["failed_replies"] + sum(
                raw[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts"))
            return LoadResult(
                requests=raw["requests"], duration_s=raw["duration_us"] / 1e6, bytes=raw["bytes"],
                errors=errors, mean_ms=raw["mean_us"] / 1e3, p50_ms=raw["p50_us"] / 1e3,
                p90_ms=raw["p90_us"] / 1e3, p99_ms=raw["p99_us"] / 1e3, max_ms=raw["max_us"] / 1e3)
    raise LoadFailed(f"wrk printed no result:\n{output[-2000:]}")


async def run_wrk(url: str, script: Path, *, connections: int, threads: int, seconds: int,
                  timeout_s: float = 10.0) -> LoadResult:
    """One closed-loop wrk run: `connections` clients, each sending its next request on a reply."""
    if urllib.parse.urlsplit(url).hostname != LOOPBACK:
        raise ValueError(f"refusing to send traffic off this machine: {url}")
    argv = [wrk_path(), f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s",
            f"--timeout={timeout_s:g}s", "--latency", "-s", str(script), url]
    # Its own session: on Ctrl-C the benchmark stops wrk, rather than wrk
    # stopping early and its short run being taken for a result.
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise LoadFailed(f"wrk exited with {process.returncode}:\n{output.decode(errors='replace')[-2000:]}")
    result = parse_output(output.decode(errors="replace"))
    if result.requests == 0:
        raise LoadFailed("wrk completed no request")
    return result
