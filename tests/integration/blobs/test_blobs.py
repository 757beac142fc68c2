"""One suite, two backends: the local folder and S3 against a real local S3 API (moto server).

R7: recordings are stored and downloaded (HTTP Range) intact.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from storage.blobs import (
    BlobStore,
    LocalBlobStore,
    RangeNotSatisfiable,
    open_blob_store,
)
from tongban.errors import InvalidInput, NotFound

BUCKET = "recordings"
CREDS = {"s3_access_key": "test-key", "s3_secret_key": "test-secret", "s3_region": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=CREDS["s3_access_key"],
        aws_secret_access_key=CREDS["s3_secret_key"],
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture(params=["file", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "file":
        blobs = open_blob_store((tmp_path / "blobs").as_uri())
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        prefix = f"t-{uuid.uuid4().hex[:8]}/calls"
        blobs = open_blob_store(f"s3://{BUCKET}/{prefix}", s3_endpoint=endpoint, **CREDS)
    yield blobs
    await blobs.close()


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(700_000)  # several read chunks
    path = tmp_path / "archive.mkv"
    path.write_bytes(data)
    return path, data


async def read(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.open_range(key, start, end)])


async def test_put_then_read_back(store: BlobStore, payload: tuple[Path, bytes]) -> None:
    path, data = payload
    info = await store.put_file("2026/03/call-1.mkv", path)

    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert path.exists()  # copied, not moved
    assert await store.exists("2026/03/call-1.mkv")
    assert await store.size("2026/03/call-1.mkv") == len(data)
    assert await read(store, "2026/03/call-1.mkv") == data
    assert await store.sha256("2026/03/call-1.mkv") == info.sha256


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 1), (0, None), (1000, 300_001), (699_999, 700_000), (699_999, None), (5, 5)],
)
async def test_ranges(
    store: BlobStore, payload: tuple[Path, bytes], start: int, end: int | None
) -> None:
    path, data = payload
    await store.put_file("r.mkv", path)
    assert await read(store, "r.mkv", start, end) == data[start:end]


@pytest.mark.parametrize(("start", "end"), [(-1, 10), (10, 5), (0, 700_001), (700_001, None)])
async def test_bad_ranges(
    store: BlobStore, payload: tuple[Path, bytes], start: int, end: int | None
) -> None:
    await store.put_file("r.mkv", payload[0])
    with pytest.raises(RangeNotSatisfiable):
        await read(store, "r.mkv", start, end)


async def test_missing_blob(store: BlobStore) -> None:
    assert not await store.exists("nope.mkv")
    with pytest.raises(NotFound):
        await store.size("nope.mkv")
    with pytest.raises(NotFound):
        await read(store, "nope.mkv")
    await store.delete("nope.mkv")  # idempotent


async def test_overwrite_and_delete(store: BlobStore, tmp_path: Path) -> None:
    first, second = tmp_path / "1", tmp_path / "2"
    first.write_bytes(b"first version")
    second.write_bytes(b"second")
    await store.put_file("a/b.mkv", first)
    await store.put_file("a/b.mkv", second)
    assert await read(store, "a/b.mkv") == b"second"

    await store.delete("a/b.mkv")

    assert not await store.exists("a/b.mkv")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../x.mkv",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        ".hidden",
        "a/./b",
        "a\\b",
        "a\x00b",
        "a b",
        "x" * 600,
    ],
)
async def test_unsafe_keys_are_refused(
    store: BlobStore, payload: tuple[Path, bytes], key: str
) -> None:
    with pytest.raises(InvalidInput):
        await store.put_file(key, payload[0])
    with pytest.raises(InvalidInput):
        await store.exists(key)


async def test_local_store_stays_inside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    (tmp_path / "secret").write_bytes(b"x")
    store = LocalBlobStore(root)
    with pytest.raises(InvalidInput):
        await store.size("link/secret")
    with pytest.raises(InvalidInput):
        await read(store, "link/secret")


def test_open_blob_store_urls(tmp_path: Path) -> None:
    local = open_blob_store((tmp_path / "new" / "dir").as_uri())
    assert isinstance(local, LocalBlobStore) and (tmp_path / "new" / "dir").is_dir()
    s3 = open_blob_store("s3://bucket/a/b/", s3_endpoint="http://127.0.0.1:9", **CREDS)
    assert "bucket" in repr(s3) and "test-secret" not in repr(s3)
    for bad in ["http://x/y", "s3:///prefix", "file://host/x", "file:relative", "/plain/path"]:
        with pytest.raises(ValueError):
            open_blob_store(bad)
