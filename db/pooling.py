"""How a connection to PostgreSQL is opened, by the way it reaches the server (DATABASE_POOLER).

Directly, or through a pooler in session mode, a client connection is one
server session for its whole life: its statements are prepared once and kept
(asyncpg's statement cache, SQLAlchemy's), and its settings are given at
startup (plan_cache_mode, statement_timeout).

Through a pooler in transaction mode each transaction (each statement, in
autocommit) may run on another server session, and PgBouncer refuses startup
settings it does not know. So nothing may rely on the session:
- No statement is kept. asyncpg prepares each one unnamed (its cache and
  SQLAlchemy's both off): Parse, Describe and Flush, then Bind, Execute and
  Sync, with no ReadyForQuery in between, so the pooler hands both halves to
  the same server session; the next unnamed statement replaces it there.
- No startup settings. An unnamed statement is planned for the values it
  runs with, a custom plan by construction: force_custom_plan has nothing
  left to force, and the repeated reads lose their generic plans (each is
  planned anew: bench/RESULTS.md has what that costs). A read past its
  request's time budget is stopped by the request's cancellation, which
  asyncpg sends to the server as a cancel request (PgBouncer forwards it).
- No session state. Advisory locks are taken per transaction, and LISTEN
  has a connection of its own, straight to PostgreSQL (LISTEN_DATABASE_URL).
- One startup setting PgBouncer does know, client_encoding, spelt as the
  server spells it. asyncpg sends 'utf-8'; PgBouncer compares that as text
  with the server's UTF8 and, finding them different, sent a SET
  client_encoding ahead of nearly every statement (2.05 per dashboard read).
"""

from typing import Any

from db.settings import Settings


def _transaction_pooled() -> dict[str, Any]:
    """asyncpg's arguments behind a pooler in transaction mode: no statement kept, nothing set but the encoding."""
    return {"statement_cache_size": 0, "server_settings": {"client_encoding": "UTF8"}}


def engine_connect_args(settings: Settings, server_settings: dict[str, str]) -> dict[str, Any]:
    """SQLAlchemy's connect_args for an asyncpg engine whose sessions start with `server_settings`."""
    if settings.database_pooler == "transaction":
        return {**_transaction_pooled(), "prepared_statement_cache_size": 0}
    return {"server_settings": server_settings}


def driver_connect_args(settings: Settings, server_settings: dict[str, str]) -> dict[str, Any]:
    """asyncpg's own connection arguments, for a pool whose sessions start with `server_settings`."""
    if settings.database_pooler == "transaction":
        return _transaction_pooled()
    return {"server_settings": server_settings}
