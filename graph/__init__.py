"""The GraphQL API, by role, top to bottom: app.py and cli/ (the doors), http/ (the ASGI edge), schema.py,
loaders.py, the domains (tasks/, analyses/, users/, dashboard/, node.py), access/, engine/ and live/,
context.py, and the shared vocabulary (errors, relay, scalars, enums, observability/). Imports only point
down that list: README's Layout and the import contracts in pyproject.toml say so, and ./dev check holds it."""
