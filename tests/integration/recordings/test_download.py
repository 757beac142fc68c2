"""R7, R11: recordings are found, played and downloaded only inside the reader's jurisdiction,
intact (SHA-256), with HTTP Range, every access audited; a corrupt archive is never served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recorder.http import RECORDINGS_HTTP
from storage import schema as s
from tests.integration.recordings.helpers import (
    audit_rows,
    insert_recording,
    recorded_call,
    sha256,
)

A = s.audit_log.c


async def fetch(api: Any, path: str, **headers: str) -> tuple[int, Any, Any]:
    async with api.http.get(path, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
        return resp.status, resp.headers, body


async def test_real_call_downloaded_whole_and_in_ranges(
    start_server: Any, sockets: Any, clock: Any
) -> None:
    """R7: a recorded call downloads intact; ranges slice it; outside the jurisdiction 403."""
    server = await start_server(media_addresses=("127.0.0.1",))
    rec = await recorded_call(server, sockets)
    url = f"/api/recordings/{rec['id']}/download"
    auditor = await server.browser("fq.audit")

    status, headers, body = await fetch(auditor, url)
    assert status == 200
    assert sha256(body) == rec["sha256"] and len(body) == rec["size"]
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["Content-Type"] in ("video/webm", "video/x-matroska")

    status, headers, part = await fetch(auditor, url + "?inline=1", Range="bytes=100-1099")
    assert status == 206 and part == body[100:1100]
    assert headers["Content-Range"] == f"bytes 100-1099/{len(body)}"
    assert headers["Content-Disposition"].startswith("inline;")
    status, _, tail = await fetch(auditor, url + "?inline=1", Range="bytes=-500")
    assert status == 206 and tail == body[-500:]
    status, _, rest = await fetch(auditor, url + "?inline=1", Range=f"bytes={len(body) - 10}-")
    assert status == 206 and rest == body[-10:]
    status, headers, err = await fetch(auditor, url, Range=f"bytes={len(body)}-")
    assert status == 416 and err["error"]["code"] == "range_not_satisfiable"
    assert headers["Content-Range"] == f"bytes */{len(body)}"

    outsider = await server.browser("ly.audit")
    status, _, err = await fetch(outsider, url)
    assert status == 403 and err["error"]["code"] == "forbidden"
    staff = await server.browser("zz.a1")
    assert (await fetch(staff, url))[0] == 403
    assert (await fetch(auditor, "/api/recordings/999999/download"))[0] == 404

    target = A.target == f"recording:{rec['id']}"
    downloads = await audit_rows(server, target, A.action == "recording.download")
    assert [(r.actor, r.result) for r in downloads] == [
        ("fq.audit", "ok"),
        ("ly.audit", "forbidden"),
        ("zz.a1", "forbidden"),
    ]
    assert downloads[0].source and downloads[0].detail["call_id"] == rec["call_id"]
    plays = await audit_rows(server, target, A.action == "recording.play")
    assert [(r.actor, r.result) for r in plays] == [("fq.audit", "ok")], "ranges: one record"
    clock.advance(minutes=6)
    assert (await fetch(auditor, url + "?inline=1", Range="bytes=0-"))[0] == 206
    assert len(await audit_rows(server, target, A.action == "recording.play")) == 2


async def test_list_filters_and_jurisdiction(start_server: Any, tmp_path: Path) -> None:
    """R7, R11: auditors and supervisors over either window see the call; others do not."""
    server = await start_server()
    # 2026-03-01 16:30 UTC is already 2 March in Shanghai
    late = await insert_recording(
        server, tmp_path, started_at=datetime(2026, 3, 1, 16, 30, tzinfo=UTC)
    )
    early = await insert_recording(
        server, tmp_path, started_at=datetime(2026, 3, 1, 15, 30, tzinfo=UTC), callee="fq.h2"
    )
    fq = await server.browser("fq.audit")

    async def ids(api: Any, query: str = "") -> list[int]:
        status, body = await api.get("/api/recordings" + query)
        assert status == 200, body
        return [r["id"] for r in body["recordings"]]

    assert await ids(fq) == [late["id"], early["id"]]
    assert await ids(fq, "?from=2026-03-02&to=2026-03-02") == [late["id"]]
    assert await ids(fq, "?from=2026-03-01&to=2026-03-01") == [early["id"]]
    assert await ids(fq, "?staff=fq.h2") == [early["id"]]
    assert await ids(fq, "?window=FQ-ZJ-01") == [late["id"], early["id"]]
    assert await ids(fq, "?window=ZZ-TB-01") == [late["id"], early["id"]]
    assert await ids(fq, "?window=NOPE") == []
    _, body = await fq.get("/api/recordings")
    case_no = body["recordings"][0]["case_no"]
    assert await ids(fq, f"?case_no={case_no}") == [late["id"]]
    assert (await fq.get("/api/recordings?from=2026-3-1"))[0] == 400

    row = body["recordings"][0]
    assert row["matter"]["code"] == "HN-ZJ-001"
    assert row["applicant_window"]["code"] == "ZZ-TB-01" and row["applicant_window"]["hall"]
    assert row["home_window"]["code"] == "FQ-ZJ-01" and row["home_window"]["hall"]
    assert [p["username"] for p in row["participants"]] == ["zz.a1", "fq.h1"]
    assert all(p["display_name"] for p in row["participants"])
    assert row["started_at"] == "2026-03-02T00:30:00+08:00"
    assert row["expires_on"] == "2026-09-02" and row["legal_hold"] is False
    assert row["size_bytes"] == late["size"] and row["codecs"] == ["OPUS", "VP8"]
    assert [t["title"] for t in row["tracks"]] == ["zz.a1 camera", "zz.a1 audio"]

    assert len(await ids(await server.browser("xx.sup"))) == 2  # parent of Fengqiu
    assert len(await ids(await server.browser("admin"))) == 2
    assert await ids(await server.browser("ly.audit")) == []
    assert (await (await server.browser("zz.a1")).get("/api/recordings"))[0] == 403


async def test_legal_hold_set_and_released(start_server: Any, tmp_path: Path) -> None:
    """R7: a hold needs a reason and jurisdiction; both directions are audited."""
    server = await start_server()
    rec = await insert_recording(server, tmp_path, started_at=datetime.now(UTC))
    url = f"/api/recordings/{rec['id']}/hold"
    sup = await server.browser("fq.sup")
    assert (await sup.post(url, {"hold": True}))[0] == 400
    assert (await sup.post(url, {"hold": True, "reason": "  "}))[0] == 400
    status, _ = await (await server.browser("ly.audit")).post(url, {"hold": True, "reason": "x"})
    assert status == 403
    status, _ = await (await server.browser("fq.h1")).post(url, {"hold": True, "reason": "x"})
    assert status == 403
    status, body = await sup.post(url, {"hold": True, "reason": "行政复议 2026-17"})
    assert status == 200 and body["legal_hold"] is True
    assert body["legal_hold_reason"] == "行政复议 2026-17"
    status, body = await (await server.browser("fq.audit")).post(
        url, {"hold": False, "reason": "复议结束"}
    )
    assert status == 200 and body["legal_hold"] is False
    rows = await audit_rows(server, A.target == f"recording:{rec['id']}")
    assert [(r.actor, r.action, r.result) for r in rows] == [
        ("ly.audit", "recording.hold", "forbidden"),
        ("fq.h1", "recording.hold", "forbidden"),
        ("fq.sup", "recording.hold", "ok"),
        ("fq.audit", "recording.release", "ok"),
    ]
    assert rows[2].detail["reason"] == "行政复议 2026-17"


async def test_corrupt_archive_is_refused(start_server: Any, tmp_path: Path) -> None:
    """R7: a byte changed in storage: not served, reported, audited; ranges share one hash."""
    server = await start_server()
    rec = await insert_recording(server, tmp_path, started_at=datetime.now(UTC) - timedelta(days=1))
    url = f"/api/recordings/{rec['id']}/download"
    auditor = await server.browser("fq.audit")
    verifier = server.app[RECORDINGS_HTTP].verifier
    for start in (0, 10, 20):
        status, _, _ = await fetch(auditor, url + "?inline=1", Range=f"bytes={start}-")
        assert status == 206
    assert verifier.hashes == 1, "a player's ranges share one verification"

    stored = Path(server.settings.recordings_url.removeprefix("file://")) / rec["blob_key"]
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    status, _, body = await fetch(auditor, url)
    assert status == 409 and body["error"]["code"] == "recording_corrupt"
    status, _, body = await fetch(auditor, url + "?inline=1", Range="bytes=0-")
    assert status == 409, "a failed check is not cached as good"
    rows = await audit_rows(server, A.target == f"recording:{rec['id']}", A.result == "corrupt")
    assert [(r.actor, r.action) for r in rows] == [
        ("fq.audit", "recording.download"),
        ("fq.audit", "recording.play"),
    ]
    stored.write_bytes(b"short")
    status, _, body = await fetch(auditor, url + "?inline=1", Range="bytes=0-")
    assert status == 409 and body["error"]["code"] == "recording_corrupt"
