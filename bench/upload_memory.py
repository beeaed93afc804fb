"""Peak memory of the real server while it takes a 200 MB upload: `python -m bench.upload_memory`.

Starts `python -m graph.cli serve` on a temporary data folder, streams a file
generated on the fly (never held in memory on either side) through the GraphQL
multipart request, and prints the server process's peak RSS (VmHWM) before and
after, next to the file's size.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

from tests.cli import free_port, stop, wait_until_ready

MIB = 1024 * 1024
REPOSITORY = Path(__file__).resolve().parent.parent
EMAIL = "bench@example.com"
PASSWORD = "bench password 0123456789"
UPLOAD = (
    "mutation($file: Upload!) { uploadDocument(file: $file) "
    "{ deduplicated task { id status fileSize fileHash contentType } } }"
)
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found for process {pid}")


class RssSampler(threading.Thread):
    """Polls a process's resident set size, keeping the highest value seen."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.highest_kib = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.highest_kib = max(self.highest_kib, memory_kib(self.pid, "VmRSS"))
            time.sleep(self.interval)


def text_chunks(size: int, chunk_size: int = MIB) -> Iterator[bytes]:
    """`size` bytes of numbered text lines, produced a chunk at a time."""
    line_number = 0
    produced = 0
    while produced < size:
        lines = []
        length = 0
        while length < chunk_size:
            line = f"{line_number:010d},insulation resistance,{line_number % 997} megaohm\n"
            lines.append(line)
            length += len(line)
            line_number += 1
        chunk = "".join(lines).encode()[: min(chunk_size, size - produced)]
        produced += len(chunk)
        yield chunk


class MultipartBody:
    """A GraphQL multipart request whose file part is streamed, with its length known up front."""

    def __init__(self, size: int, filename: str = "readings.csv") -> None:
        self.size = size
        self.boundary = uuid.uuid4().hex
        operations = orjson.dumps({"query": UPLOAD, "variables": {"file": None}}).decode()
        self.head = (
            self._field("operations", operations)
            + self._field("map", '{"0": ["variables.file"]}')
            + f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="0"; filename="{filename}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.sha256 = hashlib.sha256()

    def _field(self, name: str, value: str) -> str:
        return f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        for chunk in text_chunks(self.size):
            self.sha256.update(chunk)
            yield chunk
        yield self.tail


def create_account(environment: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "graph.cli", "create-user", "--email", EMAIL],
        input=f"{PASSWORD}\n".encode(), cwd=REPOSITORY, env=environment, capture_output=True, check=True,
    )


def server_environment(data_dir: Path, port: int, max_upload_bytes: int) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    return environment | {
        "DATA_DIR": str(data_dir),
        "MAX_UPLOAD_BYTES": str(max_upload_bytes),
        "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=200)
    args = parser.parse_args(argv)
    size = args.size_mib * MIB
    max_upload_bytes = size + 64 * MIB

    with tempfile.TemporaryDirectory(prefix="auditgraph-bench-") as folder:
        data_dir = Path(folder) / "data"
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        environment = server_environment(data_dir, port, max_upload_bytes)
        server = subprocess.Popen([sys.executable, "-m", "graph.cli", "serve"], cwd=REPOSITORY, env=environment)
        try:
            # The server migrates the new database on start; the account comes after.
            wait_until_ready(base_url, server)
            create_account(environment)
            with httpx.Client(base_url=base_url, timeout=None) as client:
                login = client.post("/graphql", json={"query": LOGIN, "variables": {"e": EMAIL, "p": PASSWORD}})
                token = login.json()["data"]["login"]["token"]
                idle_peak = memory_kib(server.pid, "VmHWM")
                idle_rss = memory_kib(server.pid, "VmRSS")
                sampler = RssSampler(server.pid)
                sampler.start()
                body = MultipartBody(size)
                started = time.monotonic()
                response = client.post(
                    "/graphql",
                    content=iter(body),
                    headers={
                        "Content-Type": body.content_type,
                        "Content-Length": str(body.length),
                        "Apollo-Require-Preflight": "true",
                        "Authorization": f"Bearer {token}",
                    },
                )
                elapsed = time.monotonic() - started
                sampler.stopped.set()
                sampler.join()
            peak = memory_kib(server.pid, "VmHWM")
            result = response.json()
            task = result["data"]["uploadDocument"]["task"]
            stored = data_dir / "files" / task["fileHash"][:2] / task["fileHash"]
            print(f"file size:                  {size / MIB:8.1f} MiB ({size} bytes)")
            print(f"upload time:                {elapsed:8.1f} s ({size / MIB / elapsed:.0f} MiB/s)")
            print(f"server peak RSS before:     {idle_peak / 1024:8.1f} MiB (VmHWM after start-up and login)")
            print(f"server peak RSS after:      {peak / 1024:8.1f} MiB (VmHWM)")
            print(f"server RSS before upload:   {idle_rss / 1024:8.1f} MiB (VmRSS)")
            print(f"server RSS during upload:   {sampler.highest_kib / 1024:8.1f} MiB (highest VmRSS, sampled every 10 ms)")
            print(f"growth during upload:       {(sampler.highest_kib - idle_rss) / 1024:8.1f} MiB "
                  f"= {(sampler.highest_kib - idle_rss) * 1024 / size:.2%} of the file size")
            print(f"task: {task['status']} {task['contentType']} size={task['fileSize']} "
                  f"sha256 matches={task['fileHash'] == body.sha256.hexdigest()} "
                  f"stored size matches={stored.stat().st_size == size}")
        finally:
            stop(server, timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
