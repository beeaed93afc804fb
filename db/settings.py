"""The one settings object read by the app, the CLI and Alembic."""

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_LEASE_SECONDS = 60.0


def _home() -> Path:
    """Where `.env` is read from and a relative DATA_DIR starts: the source checkout this code runs
    from (whatever the current directory), or, for an installed package, the current directory."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "alembic.ini").is_file():
        return checkout
    return Path.cwd()


HOME = _home()
# The spellings people write, each mapped to the async driver the server runs on.
DATABASE_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-do-not-use-in-production"
MIN_SECRET_KEY_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=HOME / ".env", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    data_dir: Path = HOME / "data"
    # Empty means the embedded default: a SQLite file inside data_dir.
    database_url_override: str | None = Field(default=None, alias="DATABASE_URL")
    secret_key: str = DEVELOPMENT_SECRET_KEY
    token_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    # How long a stream ticket (createStreamTicket: an SSE stream signed in from its URL) may wait to be used.
    stream_ticket_seconds: float = Field(default=60.0, gt=0)

    max_upload_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    # A JSON request body larger than this is refused while it is read, before it is parsed.
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    # JSON request bodies larger than this (a pipeline's analysis) take turns, so many at once take no more
    # of a worker's event loop than HEAVY_REQUESTS_AT_ONCE of them: graph/http/view.py.
    heavy_request_bytes: int = Field(default=256 * 1024, gt=0)
    heavy_requests_at_once: int = Field(default=1, gt=0)
    # Every argument, in the document or a variable: the longest string (an analysis summary
    # may hold 100,000 characters), the longest list (an analysis may hold 10,000 findings),
    # and the deepest nesting of lists and objects (JSON evidence included).
    max_string_length: int = Field(default=100_000, gt=0)
    max_list_length: int = Field(default=10_000, gt=0)
    max_input_depth: int = Field(default=32, gt=0)
    max_subscriptions_per_connection: int = Field(default=50, gt=0)
    # Open WebSocket and SSE connections of one user, counted per worker process.
    max_connections_per_user: int = Field(default=100, gt=0)
    max_page_size: int = Field(default=100, gt=0)
    # How far a totalCount that the maintained figures cannot answer (a filename or date filter, say)
    # counts before it stops and says so (totalCountIsExact false): a count's cost has a ceiling.
    count_limit: int = Field(default=10_000, gt=0)
    max_query_depth: int = Field(default=12, gt=0)
    max_query_tokens: int = Field(default=5000, gt=0)
    max_aliases: int = Field(default=30, ge=0)
    # The most times one field (by its response name) may appear in one selection set.
    max_repeated_fields: int = Field(default=20, gt=0)
    # Each cache of what is worked out from documents (parse, validation, plan, cost): graph/engine/document_cache.py.
    document_cache_max_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    # The most a document may cost (graph/engine/cost.py): fields, multiplied by the pages and lists they return.
    max_query_cost: int = Field(default=100_000, gt=0)
    introspection_enabled: bool = True
    # Run only the documents of this allow-list (graph/access/trusted_documents.py); unset runs any document.
    trusted_documents_file: Path | None = None
    # The memory each process gives the documents clients register as automatic persisted queries
    # (counted as the documents' length: they are ASCII but for the odd string literal).
    persisted_queries_max_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    get_cache_max_age_seconds: int = Field(default=0, ge=0)
    # GraphiQL at GET /graphql for browsers, from files shipped in the package.
    graphiql_enabled: bool = True
    # Runs common queries from cached plans instead of graphql-core's executor
    # (graph/engine/compiled.py); off switches back to the standard path everywhere.
    compiled_execution: bool = True

    login_max_failures: int = Field(default=5, gt=0)
    login_lockout_seconds: float = Field(default=300.0, gt=0)
    register_max_attempts: int = Field(default=10, gt=0)
    register_window_seconds: float = Field(default=3600.0, gt=0)
    # Who may call `register` (graph/access/invitations.py): anyone ("open", which cannot hide that an email is
    # taken), only holders of an invitation for that email ("invite"), or nobody ("closed").
    registration: Literal["open", "invite", "closed"] = "open"
    # How long an invitation (createInvitation, `auditgraph users invite`) lasts unless minted with another span.
    invitation_days: int = Field(default=7, gt=0)
    # submitUrl calls per user in a moving minute (each queues a fetch of someone else's page).
    submit_url_max_per_minute: int = Field(default=30, gt=0)

    # Origins whose pages may use the API from a browser: HTTP (CORS) and WebSocket alike.
    allowed_origins: Annotated[list[str], NoDecode] = []
    # Either one, when set, replaces allowed_origins for its side alone.
    cors_allowed_origins: Annotated[list[str] | None, NoDecode] = None
    websocket_allowed_origins: Annotated[list[str] | None, NoDecode] = None

    # The work queue: a claim is a lease that lasts this long unless its worker reports progress or
    # sends a heartbeat; every worker looks for expired ones this often, puts their tasks back in
    # the queue, and fails a task whose lease expired max_attempts times.
    lease_seconds: float = Field(default=DEFAULT_LEASE_SECONDS, gt=0)
    lease_check_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, gt=0)
    # Besides at start, how often each worker sweeps files that interrupted writes left behind
    # (a crash, or a database outage that kept a failed upload from cleaning up after itself).
    file_sweep_seconds: float = Field(default=3600.0, gt=0)
    # How long a live subscription waits for an unreachable database to answer again (it retries its read
    # on a fresh connection, then resumes where it was) before it ends with SERVICE_UNAVAILABLE.
    subscription_outage_seconds: float = Field(default=30.0, ge=0)
    # Notices a live subscription may fall behind by before it re-reads the log instead.
    subscriber_inbox_size: int = Field(default=256, gt=0)
    # How long `serve` lets in-flight requests finish after SIGTERM before it cuts them off.
    shutdown_timeout_seconds: int = Field(default=30, gt=0)

    # How request connections reach PostgreSQL. "session": PostgreSQL itself, or a pooler in session mode.
    # "transaction": a pooler in transaction mode (PgBouncer's usual setting), where consecutive
    # transactions of one client connection may run on different server connections (db/pooling.py).
    database_pooler: Literal["session", "transaction"] = "session"
    # The LISTEN connection of each process (graph/live/broker.py): PostgreSQL itself, never a transaction-mode
    # pooler (a LISTEN lasts as long as its session). Unset means DATABASE_URL.
    listen_database_url: str | None = None
    # A streaming replica that answers queries (db/replica.py); unset reads the primary.
    replica_database_url: str | None = None
    # How long a query that carries X-Read-After waits for the replica to replay that position before
    # it reads the primary instead.
    replica_wait_seconds: float = Field(default=0.5, ge=0)

    db_pool_size: int = Field(default=10, gt=0)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_pre_ping: bool = True
    # The time budget of one HTTP request (WebSocket and SSE streams excepted): past it, its database work is
    # cancelled (statement_timeout on PostgreSQL's reads, an interrupt on SQLite) and it is answered
    # SERVICE_UNAVAILABLE (503).
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    # The longest a request waits for a pooled connection before it is answered SERVICE_UNAVAILABLE (503).
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    # How long a worker may reuse an account's role between requests on PostgreSQL (graph/access/viewer_roles.py);
    # any access change forgets it at once. 0 reads it on every request.
    viewer_role_cache_seconds: float = Field(default=30.0, ge=0)
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "info"

    # Observability (graph/observability/): "auto" is text on a terminal and JSON lines otherwise.
    log_format: Literal["auto", "json", "text"] = "auto"
    # /metrics (Prometheus) on the API's own port: off unless asked for, as it tells anyone the traffic.
    metrics_enabled: bool = False
    # Spans go to this OTLP/HTTP collector (e.g. http://collector:4318); unset means no tracing at all.
    otel_exporter_otlp_endpoint: str | None = None

    @field_validator("allowed_origins", "cors_allowed_origins", "websocket_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object, info: ValidationInfo) -> object:
        # The environment carries a list as one comma-separated string; an override left blank is no override.
        if isinstance(value, str):
            origins = [origin.strip() for origin in value.split(",") if origin.strip()]
            return None if not origins and info.field_name != "allowed_origins" else origins
        return value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _anchor_data_dir(cls, value: Path) -> Path:
        return value if value.is_absolute() else HOME / value

    @field_validator("database_url_override", "listen_database_url", "replica_database_url", mode="after")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        # The messages never repeat the URL: it may hold a password.
        if value is None or not value.strip():
            return None
        try:
            url = make_url(value.strip())
        except ArgumentError:
            raise ValueError("not a URL (e.g. postgresql://user:password@host/auditgraph)") from None
        driver = DATABASE_DRIVERS.get(url.drivername)
        if driver is None:
            raise ValueError(f"{url.drivername!r} databases are not served: use "
                             "postgresql://user:password@host/name or sqlite:///path/to/file.db")
        return url.set(drivername=driver).render_as_string(hide_password=False)

    @model_validator(mode="after")
    def _check_topology(self) -> "Settings":
        postgres = self.database_url_override is not None and self.database_url_override.startswith("postgresql")
        for name, url in (("LISTEN_DATABASE_URL", self.listen_database_url),
                          ("REPLICA_DATABASE_URL", self.replica_database_url)):
            if url is not None and not (postgres and url.startswith("postgresql")):
                raise ValueError(f"{name} names a PostgreSQL server, beside a PostgreSQL DATABASE_URL")
        if self.database_pooler == "transaction" and postgres and self.listen_database_url is None:
            raise ValueError("DATABASE_POOLER=transaction needs LISTEN_DATABASE_URL: the LISTEN connection "
                             "goes to PostgreSQL itself, as a LISTEN cannot pass a pooler in transaction mode")
        return self

    @property
    def listen_url(self) -> str:
        """Where each process LISTENs for committed events."""
        return self.listen_database_url or self.database_url

    @cached_property
    def database_url(self) -> str:
        if self.database_url_override:
            return self.database_url_override
        return f"sqlite+aiosqlite:///{(self.data_dir / 'auditgraph.db').resolve()}"

    @property
    def cors_origins(self) -> list[str]:
        return self.allowed_origins if self.cors_allowed_origins is None else self.cors_allowed_origins

    @property
    def websocket_origins(self) -> list[str]:
        return self.allowed_origins if self.websocket_allowed_origins is None else self.websocket_allowed_origins

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "files"

    def check_production_ready(self) -> None:
        """Refuse to run in production with a secret anyone could know or guess."""
        if self.environment != "production":
            return
        if self.secret_key == DEVELOPMENT_SECRET_KEY or len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            raise RuntimeError(
                f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_KEY_LENGTH} "
                "characters when ENVIRONMENT=production"
            )
