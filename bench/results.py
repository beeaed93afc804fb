"""The figures of one benchmark run, and how repetitions are summarised."""

from collections import Counter
from dataclasses import dataclass, field
from statistics import median

from bench.load import LoadResult
from bench.pgstats import Snapshot

FLOOR = "floor"


@dataclass(frozen=True)
class LoadedRun:
    """One wrk run at full concurrency, and what the processes spent in a window inside it.

    The window leaves out the run's first and last moments, where clients
    connect or requests are abandoned in flight, so spending in the window
    divided by the requests served in it (wrk's rate times its length) is the
    cost of one request in the steady state.
    """

    load: LoadResult
    window_seconds: float
    server_cpu_seconds: float
    database: Snapshot | None  # what PostgreSQL did in the window; None on SQLite

    @property
    def window_requests(self) -> float:
        return self.window_seconds * self.load.requests_per_second


@dataclass
class Cell:
    """Every repetition of one server at one page size."""

    loaded: list[LoadedRun] = field(default_factory=list)
    sequential: list[LoadResult] = field(default_factory=list)
    response_bytes: int | None = None

    @property
    def measured(self) -> bool:
        return bool(self.loaded)

    @property
    def window_requests(self) -> float:
        return sum(run.window_requests for run in self.loaded)

    @property
    def requests_per_second(self) -> float:
        return median(run.load.requests_per_second for run in self.loaded)

    @property
    def requests_per_second_range(self) -> tuple[float, float]:
        rates = [run.load.requests_per_second for run in self.loaded]
        return min(rates), max(rates)

    @property
    def p50_ms(self) -> float:
        return median(run.load.p50_ms for run in self.loaded)

    @property
    def p99_ms(self) -> float:
        return median(run.load.p99_ms for run in self.loaded)

    @property
    def single_ms(self) -> float | None:
        return median(run.p50_ms for run in self.sequential) if self.sequential else None

    @property
    def errors(self) -> int:
        return sum(run.load.errors for run in self.loaded) + sum(run.errors for run in self.sequential)

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000 * sum(run.server_cpu_seconds for run in self.loaded) / self.window_requests

    @property
    def db_cpu_ms_per_request(self) -> float | None:
        if not self.loaded or any(run.database is None for run in self.loaded):
            return None
        return 1000 * sum(run.database.cpu_seconds for run in self.loaded if run.database) / self.window_requests

    @property
    def statements_per_request(self) -> float | None:
        if not self.loaded or any(run.database is None for run in self.loaded):
            return None
        return sum(run.database.data_statements for run in self.loaded if run.database) / self.window_requests

    def calls_per_request(self) -> list[tuple[str, float]]:
        """Every statement PostgreSQL ran during the runs under load, by calls per request."""
        calls: Counter[str] = Counter()
        for run in self.loaded:
            if run.database is not None:
                calls.update(run.database.calls)
        return [(query, count / self.window_requests) for query, count in calls.most_common()]


@dataclass
class RunResults:
    """Cells by (server, page size), in the order servers were listed; failures by server."""

    servers: dict[str, str]  # name -> label
    page_sizes: list[int]
    main_page_size: int
    settings: dict[str, str]
    environment: dict[str, str]
    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def cell(self, server: str, page_size: int) -> Cell:
        return self.cells.setdefault((server, page_size), Cell())

    def ratio_to_floor(self, server: str, page_size: int) -> float | None:
        floor, cell = self.cells.get((FLOOR, page_size)), self.cells.get((server, page_size))
        if floor is None or cell is None or not floor.measured or not cell.measured:
            return None
        return cell.requests_per_second / floor.requests_per_second
