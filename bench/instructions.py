"""`python -m bench.instructions`: the CPU instructions one dashboard request costs the floor and the API,
counted by valgrind's callgrind, so the figure is the same on a busy machine as on an idle one.

Starts the benchmark's PostgreSQL (as `python -m bench` does). Each server then runs in its own process
under valgrind, with no HTTP server in front (bench/asgi_driver.py): every request goes straight to the
ASGI application, as uvicorn hands it over, so what is counted is the application's own work and its
database driver's, and none of the kernel's or of PostgreSQL's. A run of N requests and a run of 2N, after
the same warm-up, give the cost of N requests with start-up cancelled out; two runs of the same code agree
to within about 1%. `--baseline` counts earlier commits of the API beside the current one. It needs
valgrind (`apt-get install valgrind`); each server and page size takes a minute or two.
"""

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.__main__ import WORK_DIR, Databases, start_postgres
from bench.seed import asyncpg_dsn
from bench.targets import API_FACTORY, FLOOR_FACTORY, PROJECT_ROOT, SECRET_KEY, export_revision
from bench.workload import BENCH_PASSWORD, MAX_PAGE_SIZE, Scale, dashboard_body, login_body, user_email

DRIVER = Path(__file__).resolve().parent / "asgi_driver.py"
COLLECTED = re.compile(r"Collected : (\d+)")


@dataclass(frozen=True)
class Counted:
    label: str
    factory: str
    root: Path  # first on the path: the project, or an earlier commit of it
    floor: bool = False


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--page-sizes", default="10,50,200", help="comma-separated page sizes (default %(default)s)")
    parser.add_argument("--requests", type=int, default=3000,
                        help="requests × page size counted per run, at least 10 requests (default %(default)s)")
    parser.add_argument("--baseline", default="",
                        help="comma-separated commits of the API to count beside the current code")
    args = parser.parse_args(argv)
    args.page_size_list = [int(size) for size in args.page_sizes.split(",") if size.strip()]
    args.baselines = [revision for revision in args.baseline.split(",") if revision.strip()]
    return args


async def instructions(counted: Counted, env: dict[str, str], body: Path, requests: int,
                       credentials: list[str]) -> int:
    """The instructions of one run under callgrind: the program's whole life."""
    process = await asyncio.create_subprocess_exec(
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, str(DRIVER), counted.factory, str(body), str(requests), *credentials,
        env=env | {"PYTHONPATH": str(counted.root)}, cwd=counted.root,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, errors = await process.communicate()
    found = COLLECTED.search(errors.decode(errors="replace"))
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"{counted.label} under valgrind failed:\n{errors.decode(errors='replace')[-2000:]}")
    return int(found.group(1))


async def count(args: argparse.Namespace) -> None:
    servers = [Counted("floor", FLOOR_FACTORY, PROJECT_ROOT, floor=True), Counted("API", API_FACTORY, PROJECT_ROOT)]
    for revision in args.baselines:
        short, folder = export_revision(revision, WORK_DIR)
        servers.append(Counted(f"API at {short}", API_FACTORY, folder))
    async with AsyncExitStack() as stack:
        databases = Databases()
        await start_postgres(stack, databases, Scale())
        url = databases.postgres_url
        assert url is not None
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            user_id = str(await connection.fetchval("SELECT id FROM users WHERE email = $1", user_email(0)))
        finally:
            await connection.close()
        files = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        login = files / "login.json"
        login.write_bytes(login_body(user_email(0), BENCH_PASSWORD))
        # The runs' settings come from here alone, not from whatever the shell exported.
        base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")}
        floor_env = base | {"BENCH_FLOOR_DSN": asyncpg_dsn(url)}
        api_env = base | {"DATABASE_URL": url, "DATA_DIR": str(files), "SECRET_KEY": SECRET_KEY,
                          "ENVIRONMENT": "production", "LOG_LEVEL": "warning", "MAX_PAGE_SIZE": str(MAX_PAGE_SIZE)}
        print("\n| page | " + " | ".join(f"{server.label}, instructions/request" for server in servers)
              + " | API ÷ floor |")
        print("|---|" + "---:|" * len(servers) + "---:|")
        for page in args.page_size_list:
            body = files / f"page-{page}.json"
            body.write_bytes(dashboard_body(page))
            requests = max(10, args.requests // page)
            per_request = []
            for server in servers:
                env, credentials = (floor_env, [user_id]) if server.floor else (api_env, ["--login", str(login)])
                # Side by side: each run is one process on one core.
                shorter, longer = await asyncio.gather(
                    instructions(server, env, body, requests, credentials),
                    instructions(server, env, body, 2 * requests, credentials))
                per_request.append((longer - shorter) / requests)
            cells = " | ".join(f"{figure:,.0f}" for figure in per_request)
            print(f"| {page} | {cells} | {per_request[1] / per_request[0]:.2f}× |", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 1
    asyncio.run(count(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
