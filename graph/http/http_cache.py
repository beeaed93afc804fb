"""Cache headers for queries over GET, which a persisted query's hash keeps short and stable.

Every answer depends on who asks (the Authorization header) and on the media
type negotiated (Accept), so only the client's own cache may keep one
(`private`, never a shared cache), only a result without errors, and for at
most GET_CACHE_MAX_AGE_SECONDS (0: revalidate every time).
"""

from collections.abc import Mapping
from typing import Any

VARY = "Authorization, Accept"


def cache_headers(response: Mapping[str, Any], max_age: int) -> dict[str, str]:
    if response.get("errors") or "data" not in response:
        return {"cache-control": "no-store", "vary": VARY}
    return {"cache-control": f"private, max-age={max_age}", "vary": VARY}
