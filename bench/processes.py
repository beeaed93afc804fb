"""Server processes: started on loopback in their own process group, always stopped, CPU accounted."""

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
# Looked up here, not in the forked child, where loading a library is unsafe.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


class ServerFailed(RuntimeError):
    pass


def _die_with_parent() -> None:
    # Runs in the child before exec: if the benchmark is killed outright, its
    # servers get SIGTERM instead of lingering.
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


@dataclass
class ServerProcess:
    """One uvicorn server (and its workers) listening on 127.0.0.1:port."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    port: int
    log_path: Path
    cwd: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    async def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            # A session of its own: Ctrl-C reaches the benchmark only, which then
            # stops the server itself, in order.
            self.process = subprocess.Popen(
                self.argv, env=dict(self.env), cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while not self._accepting():
            if self.process.poll() is not None:
                raise ServerFailed(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerFailed(f"{self.name} did not listen within {timeout:.0f}s:\n{self.log_tail()}")
            await asyncio.sleep(0.1)

    def _accepting(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # The group holds the server and any workers it forked; it is ours alone.
        self._signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(process, signal.SIGKILL)
            process.wait()

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return "(no log)"


def uvicorn_argv(app: str, app_dir: Path, port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--factory", "--app-dir", str(app_dir),
            "--host", LOOPBACK, "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning"]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name sits in parentheses and may hold spaces: split after it.
    return raw[raw.rindex(")") + 2:].split()


def process_tree_cpu_seconds(root: int) -> float:
    """User + system CPU of a process and every live descendant."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            stats[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        if (fields := stats.get(pid)) is not None:
            # Fields 14 and 15 of stat (utime, stime), counted after the name.
            total += int(fields[11]) + int(fields[12])
        pending.extend(children.get(pid, []))
    return total / CLOCK_TICKS


async def settle(root: int, *, idle_cpu_seconds: float = 0.005, interval: float = 0.1,
                 timeout: float = 15.0) -> None:
    """Waits until a process tree is idle: requests a load generator abandoned have finished."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    previous, quiet = process_tree_cpu_seconds(root), 0
    while quiet < 2 and loop.time() < deadline:
        await asyncio.sleep(interval)
        current = process_tree_cpu_seconds(root)
        quiet = quiet + 1 if current - previous < idle_cpu_seconds else 0
        previous = current
