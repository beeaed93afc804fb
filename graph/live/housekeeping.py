"""What every worker process does beside serving: expire lapsed leases, and sweep what interrupted writes left
(at start, then every FILE_SWEEP_SECONDS).

Each process runs the same loops, whatever the number of processes and hosts:
the operations they call are safe to run concurrently (db/leases.py,
db/orphans.py), so there is no leader to elect and nothing to configure.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from contextvars import ContextVar

from db.engine import Database
from db.errors import DatabaseUnavailable
from db.leases import EXPIRED_PER_TRANSACTION, requeue_expired_leases
from db.orphans import sweep_store
from db.settings import Settings
from db.staging import staging_dir, sweep_staging

logger = logging.getLogger("auditgraph.housekeeping")
# Set inside the housekeeping loops: what counts a request's statements (tests, benchmarks) leaves theirs out.
in_housekeeping: ContextVar[bool] = ContextVar("auditgraph_housekeeping", default=False)


class Housekeeping:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._repeat(self.requeue_expired, self.settings.lease_check_seconds,
                                             "requeueing tasks with expired leases"),
                                name="auditgraph-lease-expiry"),
            # From the start, in the background: a large store takes a while to go through, and serving need not wait.
            asyncio.create_task(self._repeat(self.sweep_files, self.settings.file_sweep_seconds,
                                             "sweeping the files interrupted writes left behind"),
                                name="auditgraph-file-sweep"),
        ]

    async def stop(self) -> None:
        # Set first: a cancellation that lands inside a database call may come out as another error.
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _repeat(self, work: Callable[[], Awaitable[None]], every: float, doing: str) -> None:
        in_housekeeping.set(True)  # this task's own context
        # One line when a run of failures begins and one when it ends: an outage retried every few
        # seconds must not fill the log. Only a failure that is not an outage, a bug, gets its traceback.
        failures = 0
        while not self._stopping.is_set():
            try:
                await work()
            except Exception as error:  # a database outage must not end the loop
                if failures == 0:
                    outage = error.message if isinstance(error, DatabaseUnavailable) else None
                    logger.warning("%s failed%s; retrying every %g s, quietly until it works again", doing,
                                   f" ({outage})" if outage else "", every, exc_info=outage is None)
                failures += 1
            else:
                if failures:
                    logger.info("%s works again, after %d failed tries", doing, failures)
                failures = 0
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), every)

    async def sweep_files(self) -> None:
        """What interrupted writes left: staging files no live upload holds, then stored files no row references."""
        await asyncio.to_thread(sweep_staging, staging_dir(self.settings.data_dir))
        await sweep_store(self.database, self.settings.upload_dir)

    async def requeue_expired(self) -> None:
        while True:
            async with self.database.transaction() as session:
                count = await requeue_expired_leases(session, max_attempts=self.settings.max_attempts)
            if count:
                logger.info("requeued or failed %d tasks whose lease expired", count)
            if count < EXPIRED_PER_TRANSACTION:
                return
