"""Rendering a run: markdown tables for the console and bench/RESULTS.md, and a PNG plot."""

from collections.abc import Callable
from pathlib import Path

from bench.results import Cell, RunResults

NOTES_MARKER = "<!-- notes: written by hand, kept as they are by `python -m bench` -->"
RUNS_MARKER = "<!-- runs: newest first; the method above is rewritten by `python -m bench` -->"

METHOD = """\
# Benchmark results: the dashboard read

Produced by `./dev bench` (`python -m bench`; `python -m bench --help` lists the
options, `--quick` takes about two minutes). Every figure below was measured on
the machine named in its section; wrk, the servers and PostgreSQL share its
CPUs, so absolute figures belong to that machine and *vs floor* is the one to
compare across machines.

## Method

**Workload.** The dashboard read: the N most recent tasks of one user
(`bench-user-0@example.com`), each with id, status, originalFilename,
fileSize, createdAt, its analysis (verdict, complianceScore, confidenceScore)
and all of the analysis's findings (severity, ruleId, message, remediation),
as one GraphQL query (`bench/workload.py`). N = 50 is the headline (500
findings, about 140 KB of JSON per response); 10 and 200 are measured too (every server
runs with a page limit of 200).

**Data.** `bench/seed.py` seeds 100 users, 20,000 tasks (one analysis each,
four task events each) and 200,000 findings, deterministically (a random
generator seeded per user: every run and both databases hold the same rows).
`--scale 10` gives each user ten times the history (200,000 tasks, 2,000,000
findings). On PostgreSQL the rows go in by COPY and the database is vacuumed
and analysed afterwards; SQLite is filled through the app's own table
definitions and kept in `bench/.work/` for the next run.

**Servers.** Each in its own process on 127.0.0.1, under uvicorn with the same
flags (`--workers 1` unless `--workers` says otherwise; access log off):

- *floor*: `bench/floor.py`, plain Starlette + asyncpg + orjson: three
  prepared SQL statements (the page of tasks, their analyses, their findings)
  and the same JSON as the API (same fields, global ids, order and types).
  It does no authentication (the bearer token is the user's id) and no
  GraphQL parsing: the least work a Python server can do for this response.
  Ratios divide by it.
- *graphql (PostgreSQL)*: the API, `graph.app:create_app_from_environment`,
  with `ENVIRONMENT=production`, a 48-character `SECRET_KEY` and the default
  pool, on the same PostgreSQL database as the floor, with a token from the
  `login` mutation.
- *graphql (SQLite)*: the same app on the embedded default (a SQLite file in WAL mode).

PostgreSQL 15 is a throwaway cluster on the same machine (`tests/throwaway_postgres.py`:
fsync off, shared_buffers 512 MB, `pg_stat_statements` preloaded).

**Correctness.** Before a server is measured at a page size, its reply is
checked against the database: the same task ids in the same order, the same
status, file name, size (compared as a number), creation time (with an
offset), verdict and scores, and each task's findings as a multiset. After
the last run it is checked again. Under load, the Lua script counts every
reply that is not HTTP 200 or that carries GraphQL `errors` (column *errors*).

**Load.** wrk, closed loop: 10 connections over 2 threads, each sending its
next request when the reply arrives (`bench/load.py`). For each page size,
each server gets one warm-up run, then the repetitions alternate between the
servers (the order rotates) so that drift hits all of them alike. A
repetition is a run under load and a sequential run (one connection, one
request at a time). Between runs the benchmark waits until the server's CPU
is idle, so requests abandoned by wrk never leak into the next measurement.

**Columns.** Medians over the repetitions:

- *req/s*: completed requests per second under load (in brackets, the lowest
  and highest repetition).
- *p50 / p99 ms*: latency under load, as wrk reports it (queueing included).
- *single ms*: median latency of sequential requests (no queueing).
- *CPU ms/req*: user + system CPU of the server process and its workers
  (`/proc/<pid>/stat`), read in a window inside each run under load (its first
  and last tenth, at most 1 s each, left out), divided by the requests served
  in the window (wrk's rate × the window's length): the steady-state cost.
- *DB CPU ms/req*: the same for the whole PostgreSQL cluster (postmaster and
  every backend); for SQLite the database works inside the server process.
- *SQL/req*: statements executed in the benchmark database in the same
  window (`pg_stat_statements` calls; transaction control and pings left
  out), per request. Not measured for SQLite. Each section lists the
  statements behind this figure, transaction control included.
- *KB/resp*: size of the checked response body.
- *vs floor*: req/s divided by the floor's req/s at the same page size in the same run.

`bench/results.png` plots the newest run: throughput and latency by page size.
"""


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _escape(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _rate(cell: Cell) -> str:
    low, high = cell.requests_per_second_range
    return f"{cell.requests_per_second:,.1f} ({low:,.0f}–{high:,.0f})"


def _ratio(results: RunResults, server: str, page_size: int) -> str:
    ratio = results.ratio_to_floor(server, page_size)
    return "—" if ratio is None else f"{ratio:.2f}×"


def _kilobytes(cell: Cell) -> str:
    return "—" if cell.response_bytes is None else f"{cell.response_bytes / 1024:,.1f}"


def _rows(results: RunResults, page_sizes: list[int],
          columns: Callable[[str, int, Cell], list[str]], width: int) -> list[list[str]]:
    rows = []
    for server, label in results.servers.items():
        measured = [size for size in page_sizes if results.cells.get((server, size), Cell()).measured]
        for size in measured:
            rows.append([label, *columns(server, size, results.cells[(server, size)])])
        if server in results.failures:
            rows.append([label, f"**failed**: {_escape(results.failures[server])}", *[""] * (width - 2)])
        elif not measured:
            rows.append([label, "not measured", *[""] * (width - 2)])
    return rows


def main_table(results: RunResults) -> str:
    size = results.main_page_size
    header = ["server", "req/s", "p50 ms", "p99 ms", "single ms", "CPU ms/req", "DB CPU ms/req",
              "SQL/req", "KB/resp", "vs floor", "errors"]

    def columns(server: str, page_size: int, cell: Cell) -> list[str]:
        return [_rate(cell), _number(cell.p50_ms), _number(cell.p99_ms), _number(cell.single_ms),
                _number(cell.server_cpu_ms_per_request, 2), _number(cell.db_cpu_ms_per_request, 2),
                _number(cell.statements_per_request, 1), _kilobytes(cell), _ratio(results, server, page_size),
                str(cell.errors)]

    return _table(header, _rows(results, [size], columns, len(header)))


def page_size_table(results: RunResults) -> str:
    header = ["server", "page", "req/s", "p50 ms", "p99 ms", "single ms", "CPU ms/req", "DB CPU ms/req",
              "SQL/req", "KB/resp", "vs floor"]

    def columns(server: str, page_size: int, cell: Cell) -> list[str]:
        return [str(page_size), _rate(cell), _number(cell.p50_ms), _number(cell.p99_ms),
                _number(cell.single_ms), _number(cell.server_cpu_ms_per_request, 2),
                _number(cell.db_cpu_ms_per_request, 2), _number(cell.statements_per_request, 1),
                _kilobytes(cell), _ratio(results, server, page_size)]

    return _table(header, _rows(results, results.page_sizes, columns, len(header)))


def pooler_table(results: RunResults) -> str | None:
    """The API through PgBouncer in transaction mode against the same API on direct connections, when both ran."""
    pooled, direct = "graphql-pgbouncer", "graphql-postgres"
    rows = []
    for size in results.page_sizes:
        through, straight = results.cells.get((pooled, size)), results.cells.get((direct, size))
        if through is None or straight is None or not (through.measured and straight.measured):
            continue
        rows.append([str(size), f"{through.requests_per_second / straight.requests_per_second:.2f}",
                     f"{through.p50_ms / straight.p50_ms:.2f}",
                     _number(through.server_cpu_ms_per_request / straight.server_cpu_ms_per_request, 2),
                     "—" if through.db_cpu_ms_per_request is None or not straight.db_cpu_ms_per_request
                     else f"{through.db_cpu_ms_per_request / straight.db_cpu_ms_per_request:.2f}"])
    if not rows:
        return None
    return ("### PgBouncer (transaction mode) against direct connections\n\n"
            + _table(["page", "req/s ratio", "p50 ratio", "API CPU/req ratio", "DB CPU/req ratio"], rows))


def statement_table(results: RunResults) -> str | None:
    """Calls per request of every statement PostgreSQL ran, at the headline page size."""
    rows = []
    for server, label in results.servers.items():
        cell = results.cells.get((server, results.main_page_size))
        if cell is None or cell.statements_per_request is None:
            continue
        for query, per_request in cell.calls_per_request():
            if per_request >= 0.005:
                code = _escape(query).replace("`", "'")
                rows.append([label, f"{per_request:.2f}", f"`{code}`"])
    if not rows:
        return None
    return (f"<details><summary>Statements PostgreSQL ran per request, page of {results.main_page_size} "
            "(transaction control included)</summary>\n\n"
            + _table(["server", "calls/req", "statement"], rows) + "\n\n</details>")


def section(results: RunResults, title: str) -> str:
    settings = ", ".join(f"{key} {value}" for key, value in results.settings.items())
    environment = "; ".join(f"{key}: {value}" for key, value in results.environment.items())
    return "\n\n".join([
        f"## {title}",
        f"Settings: {settings}.\n\nMachine: {environment}.",
        f"### Page of {results.main_page_size} tasks\n\n{main_table(results)}",
        f"### By page size\n\n{page_size_table(results)}",
        *filter(None, [pooler_table(results), statement_table(results)]),
    ]) + "\n"


def write_markdown(path: Path, new_section: str) -> None:
    """Rewrites the method header, keeps the notes, and puts the new section above the older ones."""
    notes = older = ""
    if path.exists():
        head, found, rest = path.read_text().partition(RUNS_MARKER)
        older = rest.strip() if found else ""
        notes = head.partition(NOTES_MARKER)[2].strip()
    parts = [METHOD.rstrip(), NOTES_MARKER, *filter(None, [notes]), RUNS_MARKER, new_section.rstrip()]
    if older:
        parts.append(older)
    path.write_text("\n\n".join(parts) + "\n")


def write_plot(path: Path, results: RunResults, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
    for server, label in results.servers.items():
        sizes = [size for size in results.page_sizes if results.cells.get((server, size), Cell()).measured]
        if not sizes:
            continue
        cells = [results.cells[(server, size)] for size in sizes]
        line, = throughput.plot(sizes, [cell.requests_per_second for cell in cells], marker="o", label=label)
        latency.plot(sizes, [cell.p50_ms for cell in cells], marker="o", color=line.get_color())
        singles = [(size, cell.single_ms) for size, cell in zip(sizes, cells, strict=True)
                   if cell.single_ms is not None]
        if singles:
            latency.plot(*zip(*singles, strict=True), marker="s", linestyle="--", color=line.get_color())
    throughput.set(title="Throughput under load", xlabel="tasks per page", ylabel="requests/s")
    latency.set(title="Latency: p50 under load (solid), single request (dashed)", xlabel="tasks per page",
                ylabel="ms")
    for axes in (throughput, latency):
        # Logarithmic: the floor and the API can be an order of magnitude apart.
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(ScalarFormatter())
        axes.set_xticks(results.page_sizes)
        axes.grid(alpha=0.3, which="both")
    figure.legend(loc="outside lower center", ncols=max(1, len(results.servers)))
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
