"""Checking one dashboard response against the database it was read from."""

import base64
import binascii
import math
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from db.models import Analysis, Finding, Task, User


class ValidationFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class ExpectedTask:
    id: uuid.UUID
    status: str
    original_filename: str | None
    file_size: int | None
    created_at: datetime
    verdict: str | None
    compliance_score: float | None
    confidence_score: float | None
    findings: Counter[tuple[str, str, str, str | None]]


async def expected_page(database_url: str, email: str, first: int) -> list[ExpectedTask]:
    """The user's `first` newest tasks with their analyses and findings, straight from the tables."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            user_id = (await connection.execute(select(User.id).where(User.email == email))).scalar_one()
            tasks = (await connection.execute(
                select(Task.id, Task.status, Task.original_filename, Task.file_size, Task.created_at)
                .where(Task.user_id == user_id)
                .order_by(Task.created_at.desc(), Task.id.desc())
                .limit(first)
            )).all()
            analyses = {row.task_id: row for row in (await connection.execute(
                select(Analysis.id, Analysis.task_id, Analysis.verdict, Analysis.compliance_score,
                       Analysis.confidence_score)
                .where(Analysis.task_id.in_([task.id for task in tasks]))
            )).all()}
            findings: dict[uuid.UUID, Counter[tuple[str, str, str, str | None]]] = {
                analysis.id: Counter() for analysis in analyses.values()}
            for row in (await connection.execute(
                select(Finding.analysis_id, Finding.severity, Finding.rule_id, Finding.message,
                       Finding.remediation)
                .where(Finding.analysis_id.in_(list(findings)))
            )).all():
                findings[row.analysis_id][(str(row.severity), row.rule_id, row.message, row.remediation)] += 1
    finally:
        await engine.dispose()
    page = []
    for task in tasks:
        analysis = analyses.get(task.id)
        page.append(ExpectedTask(
            id=task.id, status=str(task.status), original_filename=task.original_filename,
            file_size=task.file_size, created_at=task.created_at,
            verdict=str(analysis.verdict) if analysis else None,
            compliance_score=analysis.compliance_score if analysis else None,
            confidence_score=analysis.confidence_score if analysis else None,
            findings=findings[analysis.id] if analysis else Counter(),
        ))
    return page


def _task_pk(global_id: Any) -> uuid.UUID | None:
    try:
        type_name, _, raw = base64.b64decode(str(global_id), validate=True).decode().partition(":")
        return uuid.UUID(raw) if type_name == "Task" else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _same_float(actual: Any, expected: float | None) -> bool:
    if expected is None or actual is None:
        return actual is None and expected is None
    return isinstance(actual, int | float) and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)


def _same_size(actual: Any, expected: int | None) -> bool:
    if expected is None or actual is None:
        return actual is None and expected is None
    try:
        return int(actual) == expected and not isinstance(actual, bool | float)
    except (TypeError, ValueError):
        return False


def _same_time(actual: Any, expected: datetime) -> bool:
    try:
        parsed = datetime.fromisoformat(str(actual))
    except ValueError:
        return False
    return parsed.tzinfo is not None and parsed == expected


def _task_problems(node: dict[str, Any], expected: ExpectedTask) -> list[str]:
    label = f"task {expected.id}"
    problems = []
    if _task_pk(node.get("id")) != expected.id:
        problems.append(f"{label}: id {node.get('id')!r} is not the global id of this task")
    if node.get("status") != expected.status:
        problems.append(f"{label}: status {node.get('status')!r} != {expected.status!r}")
    if node.get("originalFilename") != expected.original_filename:
        problems.append(f"{label}: originalFilename {node.get('originalFilename')!r}")
    if not _same_size(node.get("fileSize"), expected.file_size):
        problems.append(f"{label}: fileSize {node.get('fileSize')!r} != {expected.file_size}")
    if not _same_time(node.get("createdAt"), expected.created_at):
        problems.append(f"{label}: createdAt {node.get('createdAt')!r} != {expected.created_at.isoformat()}")
    analysis = node.get("analysis")
    if expected.verdict is None:
        if analysis is not None:
            problems.append(f"{label}: an analysis where there is none")
        return problems
    if not isinstance(analysis, dict):
        return [*problems, f"{label}: analysis missing"]
    if analysis.get("verdict") != expected.verdict:
        problems.append(f"{label}: verdict {analysis.get('verdict')!r} != {expected.verdict!r}")
    if not _same_float(analysis.get("complianceScore"), expected.compliance_score):
        problems.append(f"{label}: complianceScore {analysis.get('complianceScore')!r}")
    if not _same_float(analysis.get("confidenceScore"), expected.confidence_score):
        problems.append(f"{label}: confidenceScore {analysis.get('confidenceScore')!r}")
    findings = Counter(
        (f.get("severity"), f.get("ruleId"), f.get("message"), f.get("remediation"))
        for f in analysis.get("findings") or [])
    if findings != expected.findings:
        problems.append(f"{label}: {sum(findings.values())} findings differ from the "
                        f"{sum(expected.findings.values())} stored")
    return problems


def check_page(data: dict[str, Any], expected: list[ExpectedTask]) -> None:
    """Raises ValidationFailed unless `data` is exactly the expected page, in order."""
    try:
        nodes = [edge["node"] for edge in data["tasks"]["edges"]]
    except (KeyError, TypeError):
        raise ValidationFailed(f"not a tasks connection: {str(data)[:300]}") from None
    if len(nodes) != len(expected):
        raise ValidationFailed(f"{len(nodes)} tasks returned, {len(expected)} expected")
    problems = [problem for node, task in zip(nodes, expected, strict=True)
                for problem in _task_problems(node, task)]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValidationFailed("; ".join(problems[:5]) + more)
