"""The execution engine: compiled query plans and prepared operations, batched loading and the row lane,
the selection a document makes, the executor's and extensions' hooks, the cost budget and input limits,
the bounded caches of what is worked out from documents, and which reads go to the replica.

May import db/, graphql-core, Strawberry, graph.observability and the shared vocabulary at graph/'s root;
never a domain (tasks, analyses, users, dashboard), graph.loaders, access, live or the HTTP edge: what it
needs of them (the loader classes behind `@loads`) the schema passes in."""
