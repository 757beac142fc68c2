"""Where finished recordings live: a local folder by default, S3-compatible storage in a cluster.

Services take a :class:`BlobStore` (a Protocol) so tests and the embedded default need nothing
but a folder. Every method is async and keeps blocking file and network I/O off the event loop
(``asyncio.to_thread``), reading in bounded chunks so a 1 GB archive streams to an auditor's
browser without ever being held in memory. Ranges serve HTTP ``Range`` requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Protocol
from urllib.parse import unquote, urlparse

from tongban.errors import InvalidInput, NotFound, TongbanError

CHUNK_SIZE = 256 * 1024
MAX_KEY_LENGTH = 512
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class RangeNotSatisfiable(TongbanError):
    """A byte range outside the blob (HTTP 416)."""

    code = "range_not_satisfiable"
    status = 416


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    sha256: str


def validate_key(key: str) -> str:
    """Accept only ``segment/segment/...`` of ``[A-Za-z0-9._-]`` not starting with a dot.

    Keys are chosen by the server (e.g. ``2026/03/call-id.mkv``), never taken from a client
    as is; this refusal is the second line against path traversal and odd object names.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput("blob key is empty or too long", code="invalid_blob_key")
    if not all(_SEGMENT.match(part) for part in key.split("/")):
        raise InvalidInput(f"invalid blob key {key!r}", code="invalid_blob_key")
    return key


def check_range(start: int, end: int | None, size: int) -> int:
    """Resolve ``[start, end)`` against ``size``; returns the end. Raises on a bad range."""
    stop = size if end is None else end
    if start < 0 or stop < start or stop > size:
        raise RangeNotSatisfiable(f"range {start}-{end} outside a blob of {size} bytes", size=size)
    return stop


class BlobStore(Protocol):
    """Write-once storage of recordings by key."""

    async def put_file(self, key: str, path: str | os.PathLike[str]) -> BlobInfo:
        """Copy a local file in, replacing any blob of that key; the file is left in place."""
        ...

    async def size(self, key: str) -> int:
        """Size in bytes; raises :class:`~tongban.errors.NotFound`."""
        ...

    async def exists(self, key: str) -> bool: ...

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` (end exclusive, ``None`` = to the end) in bounded chunks.

        HTTP's ``bytes=a-b`` is inclusive: pass ``end=b + 1``. Raises NotFound or
        :class:`RangeNotSatisfiable` on first iteration.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; removing a missing blob is not an error (purges are retried)."""
        ...

    async def sha256(self, key: str) -> str:
        """Hash the stored bytes (reads them all): proves an archive is what was recorded."""
        ...

    async def close(self) -> None: ...


async def hash_blob(store: BlobStore, key: str) -> str:
    """sha256 of a blob by streaming it; shared by the implementations."""
    digest = hashlib.sha256()
    async for chunk in store.open_range(key):
        digest.update(chunk)
    return digest.hexdigest()


def _copy_with_hash(src: Path, dest: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(1 << 20):
                digest.update(chunk)
                fout.write(chunk)
                size += len(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dest)  # readers see the old blob or the whole new one, never half
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return size, digest.hexdigest()


class LocalBlobStore:
    """Blobs as files under one root folder (the embedded default)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root):  # a symlink inside the root pointing out
            raise InvalidInput(f"invalid blob key {key!r}", code="invalid_blob_key")
        return path

    async def put_file(self, key: str, path: str | os.PathLike[str]) -> BlobInfo:
        dest = self._path(key)

        def run() -> tuple[int, str]:
            dest.parent.mkdir(parents=True, exist_ok=True)
            return _copy_with_hash(Path(path), dest)

        size, digest = await asyncio.to_thread(run)
        return BlobInfo(key, size, digest)

    async def size(self, key: str) -> int:
        path = self._path(key)
        try:
            stat = await asyncio.to_thread(path.stat)
        except FileNotFoundError as err:
            raise NotFound(f"no blob {key}") from err
        if not S_ISREG(stat.st_mode):
            raise NotFound(f"no blob {key}")
        return stat.st_size

    async def exists(self, key: str) -> bool:
        path = self._path(key)
        return await asyncio.to_thread(path.is_file)

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except (FileNotFoundError, IsADirectoryError) as err:
            raise NotFound(f"no blob {key}") from err
        try:
            stop = check_range(start, end, os.fstat(f.fileno()).st_size)
            await asyncio.to_thread(f.seek, start)
            remaining = stop - start
            while remaining > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK_SIZE, remaining))
                if not chunk:
                    raise TongbanError(f"blob {key} shrank while being read", code="blob_changed")
                remaining -= len(chunk)
                yield chunk
        finally:
            f.close()

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def sha256(self, key: str) -> str:
        return await hash_blob(self, key)

    async def close(self) -> None:
        return None


def open_blob_store(
    url: str,
    *,
    s3_endpoint: str | None = None,
    s3_access_key: str | None = None,
    s3_secret_key: str | None = None,
    s3_region: str | None = None,
) -> BlobStore:
    """Build the store named by ``TONGBAN_RECORDINGS_URL``; raises ValueError at start-up.

    ``file:///srv/tongban/recordings`` -> a local folder (created if missing);
    ``s3://bucket/optional/prefix`` -> S3-compatible storage at ``s3_endpoint`` (``None``
    means AWS itself), credentials passed in by the caller.
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file URL must name a local path, not host {parsed.netloc!r}")
        path = Path(unquote(parsed.path))
        if not path.is_absolute():
            raise ValueError("file URL must hold an absolute path (file:///...)")
        path.mkdir(parents=True, exist_ok=True)
        return LocalBlobStore(path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError("s3 URL must name a bucket: s3://bucket/prefix")
        from storage.blobs_s3 import S3BlobStore  # boto3 is only imported when used

        return S3BlobStore(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            endpoint=s3_endpoint,
            access_key=s3_access_key,
            secret_key=s3_secret_key,
            region=s3_region,
        )
    raise ValueError(f"recordings URL must start with file:// or s3://, got {url!r}")
