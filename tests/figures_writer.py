"""A process killed inside a write transaction, after its figures are written and before it commits.

    python -m tests.figures_writer OWNER_ID

Settings come from the environment, as the server's do. It prints one line when the transaction
has written everything (the task, its analysis, their figures), then waits to be killed.
"""

import asyncio
import sys
import uuid

from db.access import SYSTEM
from db.analyses import record_analysis
from db.engine import Database
from db.enums import TaskStatus
from db.figures import apply_changes
from db.settings import Settings
from db.tasks import create_file_task, transition_task
from tests.factories import analysis_input, stored_file

FOREVER = 3600


async def main(owner_id: uuid.UUID) -> None:
    database = Database.from_settings(Settings())
    async with database.write_sessions.begin() as session:
        task = await create_file_task(session, owner_id, stored_file())
        claimed = await transition_task(session, task.id, TaskStatus.PROCESSING, viewer=SYSTEM)
        await record_analysis(session, task.id, analysis_input(), viewer=SYSTEM, claim_id=claimed.claim_id)
        await apply_changes(session)
        await session.flush()
        print("written", flush=True)
        await asyncio.sleep(FOREVER)


if __name__ == "__main__":
    asyncio.run(main(uuid.UUID(sys.argv[1])))
