"""R7 on S3-compatible storage (a local moto server): a real call's archive is uploaded,
downloaded whole and in ranges with its SHA-256 checked, and purged when it expires."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from recorder.purge import purge_now
from tests.integration.recordings.helpers import insert_recording, recorded_call, sha256
from tongban.settings import Secret

BUCKET = "tongban-recordings"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def s3_settings(endpoint: str) -> dict[str, Any]:
    return {
        "recordings_url": f"s3://{BUCKET}/t-{uuid.uuid4().hex[:8]}/rec",
        "s3_endpoint": endpoint,
        "s3_access_key": "test-key",
        "s3_secret_key": Secret("test-secret"),
        "media_addresses": ("127.0.0.1",),
    }


async def test_real_call_on_s3_downloads_intact(
    start_server: Any, sockets: Any, s3_endpoint: str
) -> None:
    server = await start_server(**s3_settings(s3_endpoint))
    rec = await recorded_call(server, sockets)
    url = f"/api/recordings/{rec['id']}/download"
    auditor = await server.browser("fq.audit")
    async with auditor.http.get(url) as resp:
        assert resp.status == 200
        body = await resp.read()
    assert sha256(body) == rec["sha256"]
    async with auditor.http.get(url + "?inline=1", headers={"Range": "bytes=1000-1999"}) as resp:
        assert resp.status == 206
        assert await resp.read() == body[1000:2000]
        assert resp.headers["Content-Range"] == f"bytes 1000-1999/{len(body)}"
    async with (await server.browser("ly.audit")).http.get(url) as resp:
        assert resp.status == 403


async def test_purge_on_s3(start_server: Any, s3_endpoint: str, tmp_path: Path, clock: Any) -> None:
    server = await start_server(**s3_settings(s3_endpoint))
    blobs = server.services.extra["recordings"].blobs
    now = clock.now()
    expired = await insert_recording(server, tmp_path, started_at=now - timedelta(days=200))
    held = await insert_recording(
        server, tmp_path, started_at=now - timedelta(days=200), legal_hold=True
    )
    assert await blobs.exists(expired["blob_key"])
    assert await purge_now(server.settings, server.services.db, now=now) == 1  # its own client
    assert not await blobs.exists(expired["blob_key"])
    assert await blobs.exists(held["blob_key"])
