"""`python -m bench.profile`: where the API's time goes under load, as flame graphs.

Starts the benchmark's PostgreSQL and the API on it (as `python -m bench`
does), drives the dashboard read with wrk at each page size and records the
server with py-spy meanwhile: bench/profiles/page-N.svg (open it in a browser)
and bench/profiles/page-N.txt, the frames that hold the most samples, by
their own time and with their callees. py-spy samples from outside the
process: the code runs as deployed.
"""

import argparse
import asyncio
import shutil
import sys
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

from bench.__main__ import WORK_DIR, Databases, start_postgres
from bench.load import run_wrk, write_script
from bench.targets import Kind, make_target, obtain_token
from bench.workload import PAGE_SIZES, Scale, dashboard_body, user_email

PROFILES = Path(__file__).resolve().parent / "profiles"
TOP = 30


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--page-sizes", default=",".join(map(str, PAGE_SIZES)),
                        help="comma-separated page sizes (default %(default)s)")
    parser.add_argument("--seconds", type=int, default=20, help="seconds recorded per page size (default 20)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second (default 250)")
    args = parser.parse_args(argv)
    args.page_size_list = [int(size) for size in args.page_sizes.split(",") if size.strip()]
    return args


def summary(raw: Path) -> str:
    """The frames with the most samples of their own, and with their callees, from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples, frames = int(count), stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(TOP)]
    lines += ["", "with callees:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(TOP * 2)]
    return "\n".join(lines) + "\n"


async def record(pid: int, seconds: int, rate: int, svg: Path, raw: Path) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    for output, form in ((svg, "flamegraph"), (raw, "raw")):
        process = await asyncio.create_subprocess_exec(
            py_spy, "record", "--pid", str(pid), "--duration", str(seconds // 2), "--rate", str(rate),
            "--format", form, "--output", str(output), "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        if await process.wait() != 0:
            raise RuntimeError(f"py-spy failed (exit {process.returncode}); it needs ptrace rights")


async def profile(args: argparse.Namespace) -> None:
    PROFILES.mkdir(exist_ok=True)
    async with AsyncExitStack() as stack:
        databases = Databases()
        await start_postgres(stack, databases, Scale())
        target = make_target(Kind.GRAPHQL_POSTGRES, postgres_url=databases.postgres_url, sqlite_url=None,
                             sqlite_dir=None, work_dir=WORK_DIR, workers=1)
        stack.callback(target.server.stop)
        await target.server.start()
        token = await obtain_token(target, user_email(0))
        for page in args.page_size_list:
            script = write_script(WORK_DIR / "scripts" / f"profile-{page}.lua", dashboard_body(page), token)
            await run_wrk(target.graphql_url, script, connections=10, threads=2, seconds=3)  # warm-up
            svg, raw = PROFILES / f"page-{page}.svg", WORK_DIR / f"profile-{page}.raw"
            load = asyncio.create_task(run_wrk(target.graphql_url, script, connections=10, threads=2,
                                               seconds=args.seconds + 2))
            await record(target.server.pid, args.seconds, args.rate, svg, raw)
            await load
            (PROFILES / f"page-{page}.txt").write_text(summary(raw))
            print(f"page {page}: {svg} and {svg.with_suffix('.txt')}", flush=True)


def main(argv: list[str] | None = None) -> int:
    asyncio.run(profile(parse_arguments(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
