"""Trusted documents: Apollo's automatic persisted queries, and the allow-list a production server
may be limited to.

Automatic persisted queries: a client sends `extensions.persistedQuery =
{version: 1, sha256Hash}` without the query; the server runs the document it
knows by that hash, or answers `PERSISTED_QUERY_NOT_FOUND` (message
"PersistedQueryNotFound", as Apollo's link expects), and the client sends the
query with its hash once. The server checks that the hash is the query's and
remembers it, so later requests carry only the hash and fit a GET URL that
HTTP caches can key on. What is registered is stored in the database
(db/persisted_queries.py), so a hash learnt through one process runs on every
process of every host behind a load balancer; each process keeps the documents
it has used in memory in front of it, bounded in bytes and least recently used
first out, so only a process's first sight of a hash costs a query.

The allow-list (TRUSTED_DOCUMENTS_FILE, a JSON object mapping each
document's sha256 to its text, as `auditgraph trusted-documents build`
writes it): hashes are looked up in the list, nothing is learned, and any
other document is refused with FORBIDDEN over every transport (HTTP, SSE,
WebSocket), introspection included: add the tools' introspection queries
to the list to allow them.
"""

import hashlib
import re
from collections.abc import Iterator, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import orjson
from cachetools import LRUCache
from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, parse, print_ast, validate
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLRequestData

from db.engine import Database
from db.errors import DomainError, InvalidInput
from db.persisted_queries import store_document, stored_document, stored_size, trim_documents
from db.settings import Settings

APQ_VERSION = 1
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
UNTRUSTED = "This server runs only trusted documents, and this one is not among them."
# A process trims the stored documents each time it has stored this fraction of their bound since it last did.
TRIM_EVERY = 8


class PersistedQueryNotFound(DomainError):
    code = "PERSISTED_QUERY_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotFound")


class TrustedDocumentsError(RuntimeError):
    """The allow-list file cannot be used; the server refuses to start."""


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def load_trusted_documents(path: Path) -> dict[str, str]:
    """The allow-list at `path`, each entry checked: a hash that is not its document's is refused."""
    try:
        manifest = orjson.loads(path.read_bytes())
    except OSError as error:
        raise TrustedDocumentsError(f"cannot read TRUSTED_DOCUMENTS_FILE {path}: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise TrustedDocumentsError(f"TRUSTED_DOCUMENTS_FILE {path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or not all(isinstance(text, str) for text in manifest.values()):
        raise TrustedDocumentsError(f"TRUSTED_DOCUMENTS_FILE {path} must map each sha256 to a document")
    for sha256, text in manifest.items():
        if document_hash(text) != sha256:
            raise TrustedDocumentsError(f"TRUSTED_DOCUMENTS_FILE {path}: {sha256} is not the sha256 of its document")
    return manifest


def _located(path: Path, error: GraphQLError) -> str:
    where = f":{error.locations[0].line}:{error.locations[0].column}" if error.locations else ""
    return f"{path}{where}: {error.message}"


def build_manifest(folder: Path, schema: GraphQLSchema) -> dict[str, str]:
    """The allow-list of the documents in the .graphql files under `folder`, each checked against the schema.

    Each file is one document, as its client sends it; files that hold only
    fragments are not sent alone and are skipped. A document is listed both
    as written and as graphql-js's print() gives it, the form Apollo Client
    sends, so either matches.
    """
    if not folder.is_dir():
        raise TrustedDocumentsError(f"no such folder: {folder}")
    manifest: dict[str, str] = {}
    for path in sorted(folder.rglob("*.graphql")):
        try:
            text = path.read_text(encoding="utf-8")
            document = parse(text)
        except (OSError, UnicodeDecodeError) as error:
            raise TrustedDocumentsError(f"cannot read {path}: {error}") from None
        except GraphQLError as error:
            raise TrustedDocumentsError(_located(path, error)) from None
        if not any(isinstance(node, OperationDefinitionNode) for node in document.definitions):
            continue
        if errors := validate(schema, document):
            raise TrustedDocumentsError(_located(path, errors[0]))
        for form in (text, print_ast(document)):
            manifest[document_hash(form)] = form
    if not manifest:
        raise TrustedDocumentsError(f"no operations in .graphql files under {folder}")
    return dict(sorted(manifest.items()))


def trusted_documents(settings: Settings) -> dict[str, str] | None:
    """The allow-list the settings name, or None when any document may run."""
    path = settings.trusted_documents_file
    return None if path is None else load_trusted_documents(path)


def _requested_hash(persisted: Any) -> str:
    if not isinstance(persisted, dict) or persisted.get("version") != APQ_VERSION:
        raise InvalidInput(f"extensions.persistedQuery must be {{version: {APQ_VERSION}, sha256Hash}}")
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256):
        raise InvalidInput("extensions.persistedQuery.sha256Hash must be a sha256 in lowercase hex")
    return sha256


class PersistedQueries:
    """Where a hash finds its document: the allow-list when there is one, else what clients have registered."""

    def __init__(self, trusted: Mapping[str, str] | None, database: Database, max_bytes: int) -> None:
        self.trusted = trusted
        self.database = database
        self.max_bytes = max_bytes
        self._learned: LRUCache[str, str] = LRUCache(maxsize=max_bytes, getsizeof=len)
        # What this process has stored since it last trimmed the table (db/persisted_queries.py).
        self._stored_since_trim = 0

    async def resolve(self, request: GraphQLRequestData) -> None:
        """Fill in the query of a request that names a persisted one; register a query sent with its hash."""
        persisted = (request.extensions or {}).get("persistedQuery")
        if persisted is None:
            return
        sha256 = _requested_hash(persisted)
        if request.query is None:
            document = await self._document(sha256)
            if document is None:
                raise PersistedQueryNotFound()
            request.query = document
            return
        if document_hash(request.query) != sha256:
            raise InvalidInput("extensions.persistedQuery.sha256Hash is not the sha256 of the query")
        if self.trusted is None and sha256 not in self._learned:
            # Stored first: a registration the database refused is not taken as done, and the client's next one
            # tries again.
            await self._store(sha256, request.query)
            self._remember(sha256, request.query)

    async def _document(self, sha256: str) -> str | None:
        if self.trusted is not None:
            return self.trusted.get(sha256)
        document = self._learned.get(sha256)
        if document is None and (document := await stored_document(self.database, sha256)) is not None:
            self._remember(sha256, document)
        return document

    async def _store(self, sha256: str, document: str) -> None:
        size = stored_size(document)
        if size > self.max_bytes:
            return  # runs, but is not remembered: it would push every other document out
        self._stored_since_trim += size
        trim = self._stored_since_trim > self.max_bytes // TRIM_EVERY
        async with self.database.transaction() as session:
            await store_document(session, sha256, document)
            if trim:
                await trim_documents(session, self.max_bytes)
        if trim:
            self._stored_since_trim = 0

    def _remember(self, sha256: str, document: str) -> None:
        # A document larger than the whole store runs, but is not remembered.
        with suppress(ValueError):
            self._learned[sha256] = document


class TrustedDocumentsOnly(SchemaExtension):
    """Refuses every document that is not in the allow-list.

    Placed after the validation cache: the refusal replaces whatever validation
    found, so an untrusted document learns nothing about the schema.
    """

    def __init__(self, trusted: Mapping[str, str]) -> None:
        self.trusted = trusted

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is None or document_hash(context.query) not in self.trusted:
            context.pre_execution_errors = [GraphQLError(UNTRUSTED, extensions={"code": "FORBIDDEN"})]
        yield
