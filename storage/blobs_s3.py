"""S3-compatible blob store (MinIO, Ceph, Aliyun OSS in S3 mode, AWS) for clustered nodes.

boto3 is synchronous; every call runs in a worker thread (``asyncio.to_thread``), one chunk
at a time when streaming, so a slow download holds a thread only while a chunk is in flight.
aiobotocore would avoid the threads but ties us to a narrow botocore pin that must move in
step with boto3; at a few recordings written and read per minute the threads cost nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from storage.blobs import CHUNK_SIZE, BlobInfo, check_range, hash_blob, validate_key
from tongban.errors import NotFound

_MISSING = {"404", "NoSuchKey", "NotFound"}


def _missing(err: ClientError) -> bool:
    return str(err.response.get("Error", {}).get("Code")) in _MISSING


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class S3BlobStore:
    """Blobs as objects ``prefix/key`` in one bucket."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self._client: Any = client or boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region or "us-east-1",
            # Path-style addressing: most self-hosted S3 servers have no wildcard DNS.
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            ),
        )
        self._transfer = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20)

    def __repr__(self) -> str:  # never the credentials
        where = f"bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={self.endpoint!r}"
        return f"S3BlobStore({where})"

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put_file(self, key: str, path: str | os.PathLike[str]) -> BlobInfo:
        object_key = self._key(key)
        source = Path(path)

        def run() -> tuple[int, str]:
            digest = _file_sha256(source)
            self._client.upload_file(
                str(source),
                self.bucket,
                object_key,
                ExtraArgs={"Metadata": {"sha256": digest}},
                Config=self._transfer,
            )
            return source.stat().st_size, digest

        size, digest = await asyncio.to_thread(run)
        return BlobInfo(key, size, digest)

    async def _head(self, key: str) -> dict[str, Any]:
        object_key = self._key(key)
        try:
            head: dict[str, Any] = await asyncio.to_thread(
                self._client.head_object, Bucket=self.bucket, Key=object_key
            )
        except ClientError as err:
            if _missing(err):
                raise NotFound(f"no blob {key}") from err
            raise
        return head

    async def size(self, key: str) -> int:
        return int((await self._head(key))["ContentLength"])

    async def exists(self, key: str) -> bool:
        try:
            await self._head(key)
        except NotFound:
            return False
        return True

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        # One HEAD first: S3 answers an unsatisfiable range with 416 but clips a range that
        # runs past the end, and callers need the same errors from every backend.
        stop = check_range(start, end, await self.size(key))
        if stop == start:
            return
        object_key = self._key(key)
        try:
            response = await asyncio.to_thread(
                self._client.get_object,
                Bucket=self.bucket,
                Key=object_key,
                Range=f"bytes={start}-{stop - 1}",
            )
        except ClientError as err:
            if _missing(err):
                raise NotFound(f"no blob {key}") from err
            raise
        body = response["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK_SIZE):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def sha256(self, key: str) -> str:
        return await hash_blob(self, key)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
