"""R7: after 6 months a recording is deleted (archive removed, row kept as ``deleted``, audited),
never while under legal hold; purges on several nodes at once claim each recording once;
``tongban purge`` does the same from the command line."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from recorder.http import RECORDINGS_HTTP
from recorder.purge import purge_now
from storage import schema as s
from tests.integration.recordings.helpers import audit_rows, insert_recording
from tests.integration.signaling.test_calls import make_case

A = s.audit_log.c
TONGBAN = Path(sys.executable).parent / "tongban"


async def recording_row(server: Any, recording_id: int) -> Any:
    async with server.services.db.connect() as conn:
        return (
            await conn.execute(sa.select(s.recordings).where(s.recordings.c.id == recording_id))
        ).one()


async def test_purge_deletes_expired_but_never_held(
    start_server: Any, tmp_path: Path, clock: Any
) -> None:
    server = await start_server()
    blobs = server.services.extra["recordings"].blobs
    now = clock.now()
    old = now - timedelta(days=200)
    case_id = await make_case(server)
    expired = await insert_recording(server, tmp_path, started_at=old, case_id=case_id)
    failed = await insert_recording(
        server, tmp_path, started_at=old, state="failed", case_id=case_id
    )
    held = await insert_recording(
        server, tmp_path, started_at=old, legal_hold=True, case_id=case_id
    )
    fresh = await insert_recording(
        server, tmp_path, started_at=now - timedelta(days=30), case_id=case_id
    )

    assert await purge_now(server.settings, server.services.db, now=now, blobs=blobs) == 2
    for rec in (expired, failed):
        row = await recording_row(server, rec["id"])
        assert row.state == "deleted" and row.deleted_at == now
        assert not await blobs.exists(rec["blob_key"])
    for rec in (held, fresh):
        assert (await recording_row(server, rec["id"])).state == "ready"
        assert await blobs.exists(rec["blob_key"])
    rows = await audit_rows(server, A.action == "recording.purge")
    assert sorted(r.target for r in rows) == sorted(
        f"recording:{r['id']}" for r in (expired, failed)
    )
    assert {r.actor for r in rows} == {"system"}
    assert await purge_now(server.settings, server.services.db, now=now, blobs=blobs) == 0

    auditor = await server.browser("fq.audit")
    status, body = await auditor.get(f"/api/recordings/{expired['id']}/download")
    assert status == 410 and body["error"]["code"] == "recording_deleted"
    status, body = await auditor.post(
        f"/api/recordings/{expired['id']}/hold", {"hold": True, "reason": "晚了"}
    )
    assert status == 410
    _, listed = await auditor.get("/api/recordings")
    states = {r["id"]: r["state"] for r in listed["recordings"]}
    assert states[expired["id"]] == "deleted" and states[held["id"]] == "ready"

    # released from hold: goes at the next sweep
    status, _ = await auditor.post(
        f"/api/recordings/{held['id']}/hold", {"hold": False, "reason": "结案"}
    )
    assert status == 200
    assert await purge_now(server.settings, server.services.db, now=now, blobs=blobs) == 1
    assert server.app[RECORDINGS_HTTP].sweeper is not None


async def test_nodes_purging_at_once_claim_each_recording_once(
    start_server: Any, tmp_path: Path, clock: Any
) -> None:
    server = await start_server()
    blobs = server.services.extra["recordings"].blobs
    now = clock.now()
    case_id = await make_case(server)
    recs = [
        await insert_recording(
            server, tmp_path, started_at=now - timedelta(days=190), case_id=case_id
        )
        for _ in range(4)
    ]
    counts = await asyncio.gather(
        *(purge_now(server.settings, server.services.db, now=now, blobs=blobs) for _ in range(3))
    )
    assert sum(counts) == 4
    rows = await audit_rows(server, A.action == "recording.purge")
    assert sorted(r.target for r in rows) == sorted(f"recording:{r['id']}" for r in recs)


async def test_tongban_purge_command(start_server: Any, tmp_path: Path) -> None:
    """The CLI (a subprocess on the test's database) applies the same rule."""
    server = await start_server()
    now = datetime.now(UTC)
    expired = await insert_recording(server, tmp_path, started_at=now - timedelta(days=200))
    held = await insert_recording(
        server, tmp_path, started_at=now - timedelta(days=200), legal_hold=True
    )
    env = {
        **os.environ,
        "TONGBAN_DATA_DIR": str(server.settings.data_dir),
        "TONGBAN_DATABASE_URL": server.settings.database_url,
        "TONGBAN_RECORDINGS_URL": server.settings.recordings_url,
    }
    proc = await asyncio.create_subprocess_exec(
        str(TONGBAN),
        "purge",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "purged 1 expired recording(s)" in out.decode()
    assert (await recording_row(server, expired["id"])).state == "deleted"
    assert (await recording_row(server, held["id"])).state == "ready"
    blobs = server.services.extra["recordings"].blobs
    assert not await blobs.exists(expired["blob_key"])
    assert await blobs.exists(held["blob_key"])
