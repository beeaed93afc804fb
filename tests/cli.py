"""Running the `auditgraph` command the way an operator does, in a child process."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cli_environment(**settings: str) -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DATA_DIR", "SECRET_KEY", "ENVIRONMENT", "LOG_FORMAT", "METRICS_ENABLED",
                       "PROMETHEUS_MULTIPROC_DIR", "OTEL_EXPORTER_OTLP_ENDPOINT"}
    }
    return environment | settings


def run_cli(*args: str, input: str | None = None, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graph.cli", *args],
        cwd=PROJECT_ROOT, env=cli_environment(**settings), input=input,
        capture_output=True, text=True, timeout=120,
    )


def start_cli(*args: str, **settings: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "graph.cli", *args],
        cwd=PROJECT_ROOT, env=cli_environment(**settings),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def stop(process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM, as an operator stops a server; SIGKILL if it has not exited within `timeout` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(base_url: str, process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """Until the server answers /readyz (database reachable, schema at head); fails if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"the server exited with {process.returncode}: {output}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not become ready")


def wait_until_listening(base_url: str, process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """Until the server answers /healthz, ready or not; fails if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            httpx.get(f"{base_url}/healthz", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not listen")


@contextmanager
def serve_processes(*environments: dict[str, str]) -> Iterator[list[str]]:
    """One `auditgraph serve` process per environment, started in turn, each listening; their base URLs."""
    processes: list[subprocess.Popen[str]] = []
    urls: list[str] = []
    try:
        for environment in environments:
            port = free_port()
            processes.append(start_cli("serve", "--port", str(port), **environment))
            urls.append(f"http://127.0.0.1:{port}")
            wait_until_listening(urls[-1], processes[-1])
        yield urls
    finally:
        for process in processes:
            stop(process)
