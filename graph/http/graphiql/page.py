"""The GraphiQL page that GET /graphql renders for a browser, set up for this API."""

import json
from functools import cache
from pathlib import Path
from string import Template

from graph.http.graphiql.files import MOUNT_PATH, manifest

# Relative to the page, which is served at /graphql: the files resolve on the same
# host and under whatever path prefix a reverse proxy puts in front of both.
STATIC_URL = MOUNT_PATH.removeprefix("/")

DEFAULT_QUERY = """\
# Most of this API needs a signed-in user.
# Get a bearer token (or use register):
#
#   mutation {
#     login(email: "you@example.com",
#           password: "your password") {
#       token
#     }
#   }
#
# and put it in the Headers tab below:
#   {"Authorization": "Bearer <token>"}
# Subscriptions (taskEvents, myTaskEvents)
# take it from the same tab, over a
# WebSocket to this same address.

query Me {
  me {
    email
    role
    tasks(first: 5) {
      totalCount
      edges { node { id status } }
    }
  }
}
"""

# Commented out, so GraphiQL can load the schema before you have a token:
# a placeholder token would be refused and fail the introspection.
DEFAULT_HEADERS = """\
{
  // Paste the token from login or register, then uncomment:
  // "Authorization": "Bearer <token>"
}
"""


# Everything the page loads is served from here; its one inline style is GraphiQL's sizing, and Monaco's
# editor sets styles on its elements. No other site may frame it (clickjacking a signed-in explorer).
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data: blob:",
    "font-src 'self' data:", "worker-src 'self' blob:", "connect-src 'self'", "object-src 'none'",
    "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
))
GRAPHIQL_HEADERS = {"content-security-policy": CONTENT_SECURITY_POLICY, "x-frame-options": "DENY"}


@cache
def graphiql_page() -> str:
    files = manifest()["entries"]
    config = json.dumps({"defaultQuery": DEFAULT_QUERY, "defaultHeaders": DEFAULT_HEADERS})
    template = Template((Path(__file__).parent / "page.html").read_text())
    return template.substitute(
        script=f"{STATIC_URL}/{files['script']}",
        stylesheet=f"{STATIC_URL}/{files['stylesheet']}",
        licenses=f"{STATIC_URL}/THIRD-PARTY-LICENSES.txt",
        # Inside <script>, "</" would end the element early.
        config=config.replace("<", "\\u003c"),
    )
