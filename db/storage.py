"""Content-addressed file storage: stream to a temporary file while hashing, sniff, move into place.

A stored file lives at `<upload_dir>/<first two hex digits>/<sha256>`, shared by
every task and artifact with the same bytes. Moving a file in and removing one
both happen under a per-content lock inside a write transaction, so a file is
never removed while a row that references it is being written (db/orphans.py
relies on it). The file and its folder are fsynced before that row commits: a
committed row never names a file a power cut could take back.

A full disk or quota, for the staging file or the store, is InsufficientStorage,
and leaves nothing behind.
"""

import asyncio
import csv
import errno
import hashlib
import logging
import os
import unicodedata
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO, TypeVar

import filetype
import orjson
from pypdf import PdfReader
from sqlalchemy import CompoundSelect, select, text, union
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import Database
from db.errors import InsufficientStorage, InvalidInput, PayloadTooLarge
from db.models import Artifact, Task
from db.staging import create_staging_file, staging_dir

logger = logging.getLogger("auditgraph.storage")

T = TypeVar("T")
CHUNK_SIZE = 1024 * 1024
# Enough for filetype's signatures (8 KiB) and for telling text from binary.
SNIFF_BYTES = 64 * 1024
# JSON is recognised by parsing the whole document, which only small files get.
MAX_JSON_SNIFF_BYTES = 1024 * 1024
MAX_FILENAME_LENGTH = 255

ALLOWED_CONTENT_TYPES = frozenset(
    {
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/tiff",
        "text/plain",
        "text/csv",
        "application/json",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
)


# What a full disk or an exhausted quota looks like to a write.
STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True, slots=True)
class StagedFile:
    """An upload written to a temporary file, with what was learned on the way.

    `handle` stays open, holding the staging lock (db/staging.py), until the
    file is placed in the store or discarded.
    """

    path: Path
    size: int
    sha256: str
    content_type: str
    page_count: int | None
    handle: BinaryIO = field(repr=False)

    @property
    def relative_path(self) -> str:
        return f"{self.sha256[:2]}/{self.sha256}"


@contextmanager
def storage_errors() -> Iterator[None]:
    """A full disk or quota becomes InsufficientStorage; any other OS error stays what it is."""
    try:
        yield
    except OSError as error:
        if error.errno in STORAGE_FULL:
            raise InsufficientStorage("the server has no room to store this file now; try again later") from None
        raise


def stored_path(upload_dir: Path, relative_path: str) -> Path:
    """The absolute path of a stored file; refuses anything that would leave the store."""
    root = upload_dir.resolve()
    path = (root / relative_path).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{relative_path!r} is outside the file store")
    return path


def clean_filename(filename: str | None, fallback: str = "upload") -> str:
    """The client's file name without directories or control characters, and not too long."""
    name = PureWindowsPath(PurePosixPath(filename or "").name).name
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C").strip()
    if name in {"", ".", ".."}:
        return fallback
    if len(name) <= MAX_FILENAME_LENGTH:
        return name
    stem, dot, suffix = name.rpartition(".")
    if dot and len(suffix) <= 16:
        return stem[: MAX_FILENAME_LENGTH - len(suffix) - 1] + "." + suffix
    return name[:MAX_FILENAME_LENGTH]


async def stage_upload(chunks: AsyncIterable[bytes], data_dir: Path, max_bytes: int) -> StagedFile:
    """Write the chunks to a temporary file under the data folder, hashing and counting as they come.

    Refuses with PayloadTooLarge as soon as the size passes max_bytes, and with
    InvalidInput when the bytes are of a type not accepted; nothing remains then.
    """
    with storage_errors():
        sink, path = await asyncio.to_thread(create_staging_file, staging_dir(data_dir))
    digest = hashlib.sha256()
    head = bytearray()
    size = 0
    try:
        with storage_errors():
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"the file is larger than the limit of {max_bytes} bytes")
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                # Hashing and writing a chunk are blocking; keep them off the event loop.
                await asyncio.to_thread(_write_chunk, sink, digest, chunk)
            await asyncio.to_thread(_make_durable, sink)
        if size == 0:
            raise InvalidInput("the file is empty")
        content_type = await asyncio.to_thread(sniff_content_type, bytes(head), path, size)
        if content_type not in ALLOWED_CONTENT_TYPES:
            raise InvalidInput(
                f"files of type {content_type} are not accepted; accepted types: "
                + ", ".join(sorted(ALLOWED_CONTENT_TYPES))
            )
        page_count = await asyncio.to_thread(count_pdf_pages, path) if content_type == "application/pdf" else None
    except BaseException:
        path.unlink(missing_ok=True)
        _close(sink)
        raise
    return StagedFile(path=path, size=size, sha256=digest.hexdigest(), content_type=content_type,
                      page_count=page_count, handle=sink)


def _write_chunk(sink: BinaryIO, digest: Any, chunk: bytes) -> None:
    digest.update(chunk)
    sink.write(chunk)


def _make_durable(sink: BinaryIO) -> None:
    sink.flush()
    os.fsync(sink.fileno())


def _close(handle: BinaryIO) -> None:
    # Closing flushes what is buffered, which fails again on a full disk; the file is gone anyway.
    with suppress(OSError):
        handle.close()


def _fsync_directory(path: Path) -> None:
    """Make a rename or a new entry in the folder durable."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sniff_content_type(head: bytes, path: Path, size: int) -> str:
    """The type the bytes show, whatever the client claimed."""
    kind = filetype.guess(head)
    if kind is not None:
        return str(kind.mime)
    text_sample = _as_text(head, complete=size <= len(head))
    if text_sample is None:
        return "application/octet-stream"
    stripped = text_sample.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("{", "[") and size <= MAX_JSON_SNIFF_BYTES and _is_json(path):
        return "application/json"
    if _looks_like_csv(text_sample, complete=size <= len(head)):
        return "text/csv"
    return "text/plain"


def _as_text(head: bytes, *, complete: bool) -> str | None:
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as error:
        # The sample may end in the middle of a multi-byte character.
        if not complete and error.start >= len(head) - 3 and error.reason == "unexpected end of data":
            return head[: error.start].decode("utf-8")
        return None


def _is_json(path: Path) -> bool:
    try:
        orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return False
    return True


def _looks_like_csv(sample: str, *, complete: bool) -> bool:
    lines = sample.splitlines()
    if not complete:
        lines = lines[:-1]  # the last line may be cut short
    lines = [line for line in lines if line.strip()]
    if len(lines) < 2:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=",;\t|")
    except csv.Error:
        return False
    widths = {len(row) for row in csv.reader(lines[:50], dialect)}
    return len(widths) == 1 and widths.pop() >= 2


def count_pdf_pages(path: Path) -> int | None:
    """The number of pages, or None for a PDF too broken to tell."""
    try:
        return len(PdfReader(path, strict=False).pages)
    except Exception:  # any parser failure only means the count is unknown
        logger.info("could not count the pages of %s", path.name, exc_info=True)
        return None


def discard(staged: StagedFile) -> None:
    """Remove the staging file (if it is still there) and release its lock."""
    staged.path.unlink(missing_ok=True)
    _close(staged.handle)


def _place(staged: StagedFile, upload_dir: Path) -> None:
    target = stored_path(upload_dir, staged.relative_path)
    if target.exists():
        # The same bytes are already stored (and durable); the staged copy is not needed.
        discard(staged)
        return
    new_folder = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged.path, target)
    _fsync_directory(target.parent)
    if new_folder:
        _fsync_directory(target.parent.parent)


async def lock_stored_file(session: AsyncSession, file_hash: str) -> None:
    """Serialise whoever moves in or removes the file with this hash, until the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(bytes.fromhex(file_hash[:16]), "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        # SQLite's write transactions begin IMMEDIATE and so already exclude each
        # other; starting one is the lock.
        await session.connection()


async def referenced_paths(session: AsyncSession, paths: Iterable[str]) -> set[str]:
    wanted = list(set(paths))
    if not wanted:
        return set()
    statement: CompoundSelect[str | None] = union(
        select(Task.file_path).where(Task.file_path.in_(wanted)),
        select(Artifact.file_path).where(Artifact.file_path.in_(wanted)),
    )
    return set((await session.scalars(statement)).all())  # type: ignore[arg-type]


async def release_files(session: AsyncSession, upload_dir: Path, paths: Iterable[str]) -> list[str]:
    """Remove those of the stored files that no task or artifact references; returns the removed ones.

    Run it in a write transaction of its own, after the rows were deleted.
    """
    candidates = sorted(set(paths))
    for path in candidates:
        await lock_stored_file(session, PurePosixPath(path).name)
    kept = await referenced_paths(session, candidates)
    removed = []
    for path in candidates:
        if path not in kept:
            stored_path(upload_dir, path).unlink(missing_ok=True)
            removed.append(path)
    return removed


async def store_and_commit(
    database: Database,
    staged: StagedFile,
    upload_dir: Path,
    write_rows: Callable[[AsyncSession, str], Awaitable[T]],
) -> T:
    """Move a staged file into the store and commit the rows that reference it, or leave nothing.

    `write_rows` gets the session and the stored file's relative path. If it or
    the commit fails, the file is removed again unless another row references it.
    """
    placed = False
    try:
        async with database.transaction() as session:
            await lock_stored_file(session, staged.sha256)
            with storage_errors():
                await asyncio.to_thread(_place, staged, upload_dir)
            placed = True
            return await write_rows(session, staged.relative_path)
    except BaseException:
        if placed:
            await _release_after_failure(database, upload_dir, staged.relative_path)
        raise
    finally:
        discard(staged)


async def _release_after_failure(database: Database, upload_dir: Path, relative_path: str) -> None:
    try:
        async with database.transaction() as session:
            await release_files(session, upload_dir, [relative_path])
    except Exception:
        # The original failure is what the caller must see; an orphan file is
        # only disk space, and the log says which.
        logger.exception("could not remove the stored file %s after a failed write", relative_path)
