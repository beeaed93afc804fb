"""A process that is killed in the middle of storing an upload, as a crash would leave it.

    python -m tests.crashing_writer staging   # dies while the upload is still being written to staging
    python -m tests.crashing_writer store     # dies after the file moved into the store, before its row commits

Settings come from the environment, as the server's do. It prints one line when
it has reached the point where it should be killed, then waits to be.
"""

import asyncio
import sys
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import Database
from db.settings import Settings
from db.storage import stage_upload, store_and_commit

FOREVER = 3600


async def half_an_upload() -> AsyncIterator[bytes]:
    yield b"the first half of an upload"
    print("staging", flush=True)
    await asyncio.sleep(FOREVER)


async def whole_upload() -> AsyncIterator[bytes]:
    yield b"an upload whose row never commits"


async def main(where: str) -> None:
    settings = Settings()
    if where == "staging":
        await stage_upload(half_an_upload(), settings.data_dir, settings.max_upload_bytes)
        return
    database = Database.from_settings(settings)
    staged = await stage_upload(whole_upload(), settings.data_dir, settings.max_upload_bytes)

    async def never_commits(session: AsyncSession, relative_path: str) -> None:
        print(f"placed {relative_path}", flush=True)
        await asyncio.sleep(FOREVER)

    await store_and_commit(database, staged, settings.upload_dir, never_commits)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
