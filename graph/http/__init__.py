"""The ASGI edge: GraphQL over HTTP, WebSocket and SSE (the view, content negotiation, multipart uploads,
streams), the outermost middleware that gives each request its id, log line and metrics (observed_requests),
file downloads, cache headers, health and readiness, the refusals while the database is away or the process
stops, and GraphiQL's page and files.

May import everything below it: the schema's context and loaders, access, the engine, live events,
graph.observability and the shared vocabulary; only graph.app imports it."""
