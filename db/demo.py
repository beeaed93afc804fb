"""A small, realistic data set for a first look: accounts of every role, tasks in every status,
analyses with findings and their sources, an artifact, and the events all of that wrote.

Everything goes through the domain operations, as the API's own calls would, so
the rows, stored files and event log are exactly what real use leaves behind.
"""

import json
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from db.access import Viewer
from db.analyses import record_analysis
from db.engine import Database
from db.enums import Role, TaskStatus
from db.errors import Conflict
from db.models import User
from db.settings import Settings
from db.tasks import claim_next_task, create_url_task, report_progress, transition_task
from db.uploads import add_artifact, upload_document
from db.users import register_user

DOMAIN = "demo.example"
ACCOUNTS = (("admin", Role.ADMIN), ("pipeline", Role.WORKER), ("ann", Role.USER), ("bob", Role.USER))

PUMP_TEST_CSV = b"""tag,test,measured,limit,unit
P-101,insulation resistance,0.8,1.0,MOhm
P-101,vibration,4.1,4.5,mm/s
P-101,flow at rated head,212,200,m3/h
"""
VALVE_CERTIFICATE = b"""Valve certificate V-220
Pressure test: 16 bar for 5 minutes, no leak observed.
Seat leakage class: not stated.
Signed: (missing)
"""
LOAN_FILE = json.dumps({"applicant": "Example Ltd", "amount": 250000, "term_months": 60,
                        "documents": ["balance sheet 2025", "tax return 2025"]}, indent=2).encode()
NOTES = b"Inspection notes, level 2: fire doors checked, two closers to adjust.\n"
DRAFT = b"Draft: to be replaced by the signed report.\n"


@dataclass(frozen=True)
class DemoAccount:
    email: str
    role: Role
    password: str


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def load_demo_data(database: Database, settings: Settings) -> list[DemoAccount]:
    """Add the demo data set; refused if its accounts exist already. Returns the accounts with their passwords."""
    accounts = [DemoAccount(f"{name}@{DOMAIN}", role, secrets.token_urlsafe(12)) for name, role in ACCOUNTS]
    async with database.transaction() as session:
        existing = await session.scalar(select(func.count()).select_from(User).where(
            User.email.in_([account.email for account in accounts])))
        if existing:
            raise Conflict(f"the demo data set is already in this database (accounts @{DOMAIN})")
        users = {account.email.split("@")[0]: await register_user(session, account.email, account.password,
                                                                  account.role)
                 for account in accounts}
    demo = _Demo(database, settings, {name: Viewer(user.id, user.role) for name, user in users.items()})
    await demo.build()
    return accounts


class _Demo:
    def __init__(self, database: Database, settings: Settings, viewers: dict[str, Viewer]) -> None:
        self.database = database
        self.settings = settings
        self.viewers = viewers
        self.pipeline = viewers["pipeline"]
        # The claim the pipeline holds on each task it claimed, which its writes name.
        self.claims: dict[uuid.UUID, uuid.UUID | None] = {}

    async def build(self) -> None:
        # Each task that leaves QUEUED is claimed as soon as it exists, while it is the only one waiting.
        pump = await self.upload("ann", "pump-test-report.csv", PUMP_TEST_CSV)
        await self.claim()
        await self.progress(pump, 30, "extracting the measurements")
        table = await self.artifact(pump, "extraction", "measurements as a table",
                                    json.dumps({"rows": 3, "columns": 5}).encode())
        await self.progress(pump, 80, "checking against the limits")
        await self.analysis(pump, verdict="REVIEW", compliance_score=66.7, confidence_score=0.82,
                            summary="Two of three measurements within limits; insulation resistance below it.",
                            findings=[
                                _finding("MAJOR", "IR-MIN", "Insulation resistance 0.8 MOhm is below the 1.0 MOhm "
                                         "minimum.", "Dry the motor windings and measure again.",
                                         artifact_id=table, sources=[{"section": "row 1", "snippet": "P-101,"
                                                                      "insulation resistance,0.8,1.0,MOhm"}]),
                                _finding("MINOR", "VIB-MARGIN", "Vibration 4.1 mm/s is within 10% of the limit.",
                                         "Schedule a bearing check.", sources=[{"section": "row 2"}]),
                                _finding("INFO", "FLOW-OK", "Flow at rated head exceeds the rating.", None,
                                         sources=[{"section": "row 3"}]),
                            ])
        await self.move(pump, TaskStatus.COMPLETED)

        valve = await self.upload("bob", "valve-certificate.txt", VALVE_CERTIFICATE)
        await self.claim()
        await self.analysis(valve, verdict="REJECTED", compliance_score=20.0, confidence_score=0.9,
                            summary="The certificate is unsigned and does not state the seat leakage class.",
                            findings=[
                                _finding("CRITICAL", "SIGNATURE", "The certificate is not signed.",
                                         "Obtain a signed certificate from the test house.",
                                         sources=[{"page_number": 1, "snippet": "Signed: (missing)"}]),
                                _finding("MAJOR", "LEAK-CLASS", "Seat leakage class not stated.",
                                         "Ask for the class to EN 12266-1.",
                                         sources=[{"page_number": 1, "snippet": "Seat leakage class: not stated."}]),
                            ])
        await self.move(valve, TaskStatus.COMPLETED)

        loan = await self.upload("ann", "loan-file.json", LOAN_FILE)
        await self.claim()
        await self.analysis(loan, verdict="APPROVED", compliance_score=97.5, confidence_score=0.95,
                            summary="Every required document is present.",
                            findings=[_finding("INFO", "DOCS-COMPLETE", "Balance sheet and tax return present.",
                                               None, sources=[{"section": "documents"}])])
        await self.move(loan, TaskStatus.COMPLETED)

        survey = await self.url("ann", "https://example.com/audits/site-survey")
        await self.claim()
        await self.progress(survey, 40, "reading the page")

        unreachable = await self.url("bob", "https://example.com/unreachable")
        await self.claim()
        await self.move(unreachable, TaskStatus.FAILED, error="the page did not answer within 30 seconds")

        draft = await self.upload("ann", "draft-notes.txt", DRAFT)
        await self.move(draft, TaskStatus.CANCELLED, viewer=self.viewers["ann"])

        await self.upload("ann", "inspection-notes.txt", NOTES)
        await self.url("bob", "https://example.com/quarterly-report")

    async def upload(self, owner: str, filename: str, data: bytes) -> uuid.UUID:
        user_id = self.viewers[owner].user_id
        assert user_id is not None
        task_id, _ = await upload_document(self.database, self.settings, user_id, filename, _bytes(data))
        return task_id

    async def url(self, owner: str, url: str) -> uuid.UUID:
        user_id = self.viewers[owner].user_id
        assert user_id is not None
        async with self.database.transaction() as session:
            task, _ = await create_url_task(session, user_id, url)
        return task.id

    async def claim(self) -> None:
        async with self.database.transaction() as session:
            task = await claim_next_task(session, self.pipeline.user_id, self.settings.lease)
        assert task is not None
        self.claims[task.id] = task.claim_id

    async def progress(self, task_id: uuid.UUID, percent: int, message: str) -> None:
        async with self.database.transaction() as session:
            await report_progress(session, task_id, percent, message, viewer=self.pipeline,
                                  claim_id=self.claims.get(task_id), lease=self.settings.lease)

    async def artifact(self, task_id: uuid.UUID, kind: str, label: str, data: bytes) -> uuid.UUID:
        return await add_artifact(self.database, self.settings, task_id, _bytes(data), kind=kind, label=label,
                                  viewer=self.pipeline, claim_id=self.claims.get(task_id))

    async def analysis(self, task_id: uuid.UUID, **analysis: Any) -> None:
        async with self.database.transaction() as session:
            await record_analysis(session, task_id, analysis, viewer=self.pipeline, claim_id=self.claims.get(task_id))

    async def move(self, task_id: uuid.UUID, status: TaskStatus, *, error: str | None = None,
                   viewer: Viewer | None = None) -> None:
        async with self.database.transaction() as session:
            await transition_task(session, task_id, status, viewer=viewer or self.pipeline, error_message=error,
                                  claim_id=None if viewer else self.claims.get(task_id))


def _finding(severity: str, rule_id: str, message: str, remediation: str | None, *,
             sources: list[dict[str, Any]], artifact_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {"severity": severity, "rule_id": rule_id, "message": message, "remediation": remediation,
            "artifact_id": artifact_id, "sources": sources}
