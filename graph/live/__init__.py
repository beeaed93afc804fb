"""Live events: the broker that hears every committed event (PostgreSQL LISTEN, or in-process on SQLite)
and the housekeeping every worker runs beside the requests (expired leases, orphaned files).

May import db/, graph.observability and the shared vocabulary at graph/'s root; never the HTTP edge,
the schema, a domain or access: they subscribe to the broker, it knows none of them."""
