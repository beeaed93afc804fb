"""The reference floor: the dashboard read with nothing but Starlette, asyncpg and orjson.

    BENCH_FLOOR_DSN=postgresql://postgres@127.0.0.1:5432/bench \\
        uvicorn bench.floor:create_app --factory --host 127.0.0.1 --port 8001

It answers POST /graphql with a body of the dashboard query's shape
(`{"variables": {"first": N}}`; the query text itself is not parsed) and returns
the very JSON the GraphQL API returns for `bench.workload.DASHBOARD_QUERY`:
same fields, same global ids, same ordering (tasks newest first, findings by
severity rank, rule id, id). Three SQL statements per request: the page of
tasks, their analyses, the analyses' findings.

The floor does no authentication: `Authorization: Bearer <user uuid>` names the
viewer. It is the least work a server can do for this response, the yardstick
the API's throughput is divided by, never a thing to deploy.
"""

import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.workload import MAX_PAGE_SIZE

POOL_SIZE = 10

TASKS_SQL = """
SELECT id, status, original_filename, file_size, created_at
FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2
"""
ANALYSES_SQL = """
SELECT id, task_id, verdict, compliance_score, confidence_score
FROM analyses WHERE task_id = ANY($1::uuid[])
"""
FINDINGS_SQL = """
SELECT analysis_id, severity, rule_id, message, remediation
FROM findings WHERE analysis_id = ANY($1::uuid[])
ORDER BY CASE severity WHEN 'CRITICAL' THEN 0 WHEN 'MAJOR' THEN 1 WHEN 'MINOR' THEN 2 ELSE 3 END,
         rule_id, id
"""


def global_id(type_name: str, pk: uuid.UUID) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(message: str, status_code: int) -> JSONResponse:
    return JSONResponse({"data": None, "errors": [{"message": message}]}, status_code=status_code)


async def dashboard(request: Request) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        user_id = uuid.UUID(token) if scheme.lower() == "bearer" else None
        first = int(orjson.loads(await request.body())["variables"]["first"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return _error("expected a bearer user id and variables.first", 400)
    if user_id is None:
        return _error("expected a bearer user id", 401)
    first = max(0, min(first, MAX_PAGE_SIZE))

    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection:
        tasks = await connection.fetch(TASKS_SQL, user_id, first)
        analyses = await connection.fetch(ANALYSES_SQL, [task["id"] for task in tasks])
        findings = await connection.fetch(FINDINGS_SQL, [analysis["id"] for analysis in analyses])

    findings_of: dict[uuid.UUID, list[dict[str, Any]]] = {analysis["id"]: [] for analysis in analyses}
    for finding in findings:
        findings_of[finding["analysis_id"]].append({
            "severity": finding["severity"],
            "ruleId": finding["rule_id"],
            "message": finding["message"],
            "remediation": finding["remediation"],
        })
    analysis_of = {
        analysis["task_id"]: {
            "verdict": analysis["verdict"],
            "complianceScore": analysis["compliance_score"],
            "confidenceScore": analysis["confidence_score"],
            "findings": findings_of[analysis["id"]],
        }
        for analysis in analyses
    }
    edges = [
        {"node": {
            "id": global_id("Task", task["id"]),
            "status": task["status"],
            "originalFilename": task["original_filename"],
            # BigInt: carried as a string, like the API does.
            "fileSize": None if task["file_size"] is None else str(task["file_size"]),
            "createdAt": task["created_at"],
            "analysis": analysis_of.get(task["id"]),
        }}
        for task in tasks
    ]
    return OrjsonResponse({"data": {"tasks": {"edges": edges}}})


async def healthz(_request: Request) -> Response:
    return OrjsonResponse({"status": "ok"})


async def _keep_session(_connection: asyncpg.Connection) -> None:
    # The floor never changes session state, so a connection goes back to the
    # pool without asyncpg's reset round trip (RESET ALL, UNLISTEN *, ...).
    return None


def create_app() -> Starlette:
    dsn = os.environ["BENCH_FLOOR_DSN"]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_keep_session)
        try:
            yield
        finally:
            await app.state.pool.close()

    return Starlette(
        routes=[Route("/graphql", dashboard, methods=["POST"]), Route("/healthz", healthz)],
        lifespan=lifespan,
    )
