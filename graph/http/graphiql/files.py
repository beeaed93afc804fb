"""GraphiQL's built files, shipped in this package and served under /graphiql/static."""

import json
import re
from functools import cache
from os import PathLike, stat_result
from pathlib import Path
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from db.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"
MOUNT_PATH = "/graphiql/static"
# esbuild names each built file after a hash of its content, so a name never
# changes meaning: browsers may keep it for good. MANIFEST.json and the licence
# file keep their names across rebuilds and are revalidated instead.
CONTENT_HASHED = re.compile(r"-[A-Z2-7]{8}\.\w+$")
FOREVER = "public, max-age=31536000, immutable"


@cache
def manifest() -> dict[str, Any]:
    """What tools/graphiql/build.mjs recorded: entry files, workers, packages, checksums."""
    return json.loads((STATIC_DIR / "MANIFEST.json").read_text())  # type: ignore[no-any-return]


class GraphiQLFiles(StaticFiles):
    def file_response(self, full_path: PathLike[str] | str, stat_result: stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = FOREVER if CONTENT_HASHED.search(str(full_path)) else "no-cache"
        return response


def graphiql_routes(settings: Settings) -> list[BaseRoute]:
    if not settings.graphiql_enabled:
        return []
    return [Mount(MOUNT_PATH, app=GraphiQLFiles(directory=STATIC_DIR), name="graphiql-static")]
