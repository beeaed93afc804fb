"""GraphiQL, served by the API itself from files built into this package (see tools/graphiql/)."""
