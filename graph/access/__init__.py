"""Who may do what: bearer tokens, stream tickets and invitations (who may register), the login throttle,
viewers' roles (cached, forgotten on any access change), permission classes on fields, the checks that end a
live stream when access ends, and the trusted documents and persisted queries a request may run.

May import db/, graph.context, graph.live, graph.engine, graph.observability and the shared vocabulary at
graph/'s root; never the HTTP edge, the schema or a domain: the domains import these checks, not the reverse."""
