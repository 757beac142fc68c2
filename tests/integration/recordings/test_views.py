"""R7, R11: an auditor watches each party of a recorded call in the page: one view per
participant and video source, muxed from the verified archive without re-encoding, served
with Range inside the reader's jurisdiction only, every play audited with its view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import av
import sqlalchemy as sa

from recorder.http import RECORDINGS_HTTP
from storage import schema as s
from tests.integration.recordings.helpers import (
    LUMA,
    TWO_PARTIES,
    audit_rows,
    insert_recording,
    recorded_call,
)

A = s.audit_log.c


async def fetch(api: Any, path: str, **headers: str) -> tuple[int, Any, Any]:
    async with api.http.get(path, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
        return resp.status, resp.headers, body


def play_url(recording_id: int, view: str) -> str:
    return f"/api/recordings/{recording_id}/play?track={quote(view)}"


async def listed(api: Any, recording_id: int) -> dict[str, Any]:
    status, body = await api.get("/api/recordings")
    assert status == 200, body
    return next(r for r in body["recordings"] if r["id"] == recording_id)


def inspect(path: Path) -> dict[str, Any]:
    """Tracks, decoded frame counts (every packet decoded: an error raises), the duration and
    the middle luma of the first picture of a view file."""
    with av.open(str(path)) as container:
        streams = [
            (st.type, st.codec_context.name, st.metadata.get("title")) for st in container.streams
        ]
        duration = (container.duration or 0) / av.time_base
        frames = {"video": 0, "audio": 0}
        packets: dict[str, int] = {}
        luma = None
        for packet in container.demux():
            if packet.size:
                title = packet.stream.metadata.get("title", "")
                packets[title] = packets.get(title, 0) + 1
            for frame in packet.decode():
                frames[packet.stream.type] += 1
                if luma is None and packet.stream.type == "video":
                    plane = frame.planes[0]
                    luma = bytes(plane)[(frame.height // 2) * plane.line_size + frame.width // 2]
    return {
        "streams": streams,
        "duration": duration,
        "frames": frames,
        "packets": packets,
        "luma": luma,
    }


async def test_real_call_each_party_plays_alone(
    start_server: Any, sockets: Any, tmp_path: Path, clock: Any
) -> None:
    """R7: both parties of a real call have their own view: one video, their own voice, the
    call's length, decodable; Range; 403 outside the jurisdiction; each view audited."""
    server = await start_server(media_addresses=("127.0.0.1",))
    rec = await recorded_call(server, sockets)
    auditor = await server.browser("fq.audit")
    row = await listed(auditor, rec["id"])
    assert [(v["id"], v["participant"], v["source"], v["kind"]) for v in row["views"]] == [
        ("zz.a1 camera", "zz.a1", "camera", "video"),
        ("fq.h1 camera", "fq.h1", "camera", "video"),
    ]
    call_s = row["duration_s"]
    assert call_s > 1

    bodies = {}
    for view in row["views"]:
        status, headers, body = await fetch(auditor, play_url(rec["id"], view["id"]))
        assert status == 200, body
        assert headers["Content-Type"] == "video/webm" and headers["Accept-Ranges"] == "bytes"
        assert headers["Content-Disposition"].startswith("inline;")
        path = tmp_path / f"{view['participant']}.webm"
        path.write_bytes(body)
        seen = inspect(path)
        who = view["participant"]
        assert seen["streams"] == [
            ("video", "vp8", f"{who} camera"),
            ("audio", "opus", f"{who} audio"),
        ], seen
        assert seen["frames"]["video"] >= 30 and seen["frames"]["audio"] >= 50, seen
        assert abs(seen["duration"] - call_s) < 1.5, (seen["duration"], call_s)
        bodies[view["id"]] = body
    assert bodies["zz.a1 camera"] != bodies["fq.h1 camera"]
    assert server.app[RECORDINGS_HTTP].views.derivations == 1, "all views in one pass"

    url = play_url(rec["id"], "fq.h1 camera")
    whole = bodies["fq.h1 camera"]
    status, headers, part = await fetch(auditor, url, Range="bytes=100-1099")
    assert status == 206 and part == whole[100:1100]
    assert headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
    status, _, tail = await fetch(auditor, url, Range="bytes=-300")
    assert status == 206 and tail == whole[-300:]
    status, headers, err = await fetch(auditor, url, Range=f"bytes={len(whole)}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(whole)}"
    etag = headers.get("ETag")
    status, _, again = await fetch(auditor, url, Range="bytes=0-", **{"If-Range": '"stale"'})
    assert status == 200 and again == whole, "another version held: the whole view"
    assert etag is None or etag.startswith('"')

    outsider = await server.browser("ly.audit")
    status, _, err = await fetch(outsider, url)
    assert status == 403 and err["error"]["code"] == "forbidden"
    assert (await fetch(await server.browser("zz.a1"), url))[0] == 403

    target = A.target == f"recording:{rec['id']}"
    plays = await audit_rows(server, target, A.action == "recording.play")
    assert [(r.actor, r.result, r.detail["view"]) for r in plays] == [
        ("fq.audit", "ok", "zz.a1 camera"),
        ("fq.audit", "ok", "fq.h1 camera"),
        ("ly.audit", "forbidden", "fq.h1 camera"),
        ("zz.a1", "forbidden", "fq.h1 camera"),
    ], "ranges of one view within minutes: one record per view"
    assert plays[0].source and plays[0].detail["call_id"] == rec["call_id"]
    clock.advance(minutes=6)
    assert (await fetch(auditor, url, Range="bytes=0-"))[0] == 206
    plays = await audit_rows(server, target, A.action == "recording.play", A.result == "ok")
    assert len(plays) == 3 and plays[-1].detail["range"] == "bytes=0-"


async def test_every_source_of_every_party(start_server: Any, tmp_path: Path) -> None:
    """R6, R7: the 高拍仪 is a view of its own, with its sender's voice; each view shows the
    right picture (one flat grey per track); the archive's timeline is kept."""
    server = await start_server()
    rec = await insert_recording(
        server, tmp_path, started_at=datetime.now(UTC), parties=TWO_PARTIES, seconds=3.0
    )
    archive = inspect(rec["path"])
    sup = await server.browser("xx.sup")  # Xinxiang: the parent of Fengqiu
    row = await listed(sup, rec["id"])
    assert [v["id"] for v in row["views"]] == ["zz.a1 camera", "fq.h1 camera", "fq.h1 document"]
    for view in row["views"]:
        status, _, body = await fetch(sup, play_url(rec["id"], view["id"]))
        assert status == 200, body
        path = tmp_path / "view.webm"
        path.write_bytes(body)
        seen = inspect(path)
        who = view["participant"]
        assert [t for _, _, t in seen["streams"]] == [view["id"], f"{who} audio"]
        assert seen["luma"] is not None and abs(seen["luma"] - LUMA[view["id"]]) <= 6, seen
        assert seen["frames"]["video"] == 30 and seen["frames"]["audio"] >= 150
        assert seen["packets"] == {t: archive["packets"][t] for t in seen["packets"]}
        assert abs(seen["duration"] - 3.0) < 0.5

    status, _, err = await fetch(sup, play_url(rec["id"], "fq.h2 camera"))
    assert status == 404 and err["error"]["code"] == "view_not_found"
    assert "fq.h1 document" in err["error"]["views"]
    status, _, err = await fetch(sup, f"/api/recordings/{rec['id']}/play")
    assert status == 400 and err["error"]["code"] == "view_required"
    assert (await fetch(sup, play_url(999999, "fq.h1 camera")))[0] == 404


async def test_tampered_archive_is_not_derived_nor_served(
    start_server: Any, tmp_path: Path
) -> None:
    """R7: a changed byte in storage: no view is made from it, nor served from the cache."""
    server = await start_server()
    state = server.app[RECORDINGS_HTTP]
    bad = await insert_recording(
        server, tmp_path, started_at=datetime.now(UTC), parties=TWO_PARTIES
    )
    good = await insert_recording(
        server, tmp_path, started_at=datetime.now(UTC), parties=TWO_PARTIES
    )
    root = Path(server.settings.recordings_url.removeprefix("file://"))

    def tamper(rec: dict[str, Any]) -> None:
        stored = root / rec["blob_key"]
        data = bytearray(stored.read_bytes())
        data[len(data) // 2] ^= 0xFF
        stored.write_bytes(bytes(data))

    auditor = await server.browser("fq.audit")
    tamper(bad)
    status, _, err = await fetch(auditor, play_url(bad["id"], "fq.h1 camera"), Range="bytes=0-")
    assert status == 409 and err["error"]["code"] == "recording_corrupt"
    assert not (state.views.root / bad["sha256"]).exists(), "nothing derived from it"
    rows = await audit_rows(server, A.target == f"recording:{bad['id']}")
    assert [(r.action, r.result, r.detail["view"]) for r in rows] == [
        ("recording.play", "corrupt", "fq.h1 camera")
    ]

    # views already cached: once the archive changes they are not served either
    url = play_url(good["id"], "zz.a1 camera")
    assert (await fetch(auditor, url, Range="bytes=0-"))[0] == 206
    tamper(good)
    status, _, err = await fetch(auditor, url)  # a request without Range hashes afresh
    assert status == 409 and err["error"]["code"] == "recording_corrupt"
    status, _, err = await fetch(auditor, play_url(good["id"], "fq.h1 document"), Range="bytes=0-")
    assert status == 409, "a failed check is not cached as good"


async def test_not_ready_deleted_and_purged(start_server: Any, tmp_path: Path, clock: Any) -> None:
    """R7: 409 before the archive is ready, 410 once purged; a purged archive's views leave
    the node's cache at the retention sweep."""
    server = await start_server()
    state = server.app[RECORDINGS_HTTP]
    auditor = await server.browser("fq.audit")
    busy = await insert_recording(server, tmp_path, started_at=datetime.now(UTC), state="recording")
    status, _, err = await fetch(auditor, play_url(busy["id"], "zz.a1 camera"))
    assert status == 409 and err["error"]["code"] == "recording_not_ready"

    old = await insert_recording(
        server, tmp_path, started_at=clock.now() - timedelta(days=200), parties=TWO_PARTIES
    )
    assert (await fetch(auditor, play_url(old["id"], "fq.h1 camera")))[0] == 200
    assert (state.views.root / old["sha256"]).is_dir()
    async with server.services.db.connect() as conn:
        assert (
            await conn.scalar(sa.select(s.recordings.c.state).where(s.recordings.c.id == old["id"]))
            == "ready"
        )
    await state.sweeper.run_now()  # the daily sweep, now
    assert not (state.views.root / old["sha256"]).exists(), "views go with their archive"
    status, _, err = await fetch(auditor, play_url(old["id"], "fq.h1 camera"))
    assert status == 410 and err["error"]["code"] == "recording_deleted"


async def test_cache_is_bounded(start_server: Any, tmp_path: Path) -> None:
    """Views of the least recently played archive are removed beyond the size bound; they
    are derived again (from the verified archive) when played again."""
    server = await start_server()
    views = server.app[RECORDINGS_HTTP].views
    views.in_use_s = 0
    auditor = await server.browser("fq.audit")
    recs = [
        await insert_recording(server, tmp_path, started_at=datetime.now(UTC), parties=TWO_PARTIES)
        for _ in range(3)
    ]
    assert (await fetch(auditor, play_url(recs[0]["id"], "zz.a1 camera")))[0] == 200
    one = sum(f.stat().st_size for f in (views.root / recs[0]["sha256"]).iterdir())
    views.max_bytes = 2 * one + one // 2
    for rec in recs[1:]:
        assert (await fetch(auditor, play_url(rec["id"], "zz.a1 camera")))[0] == 200
    cached = sorted(p.name for p in views.root.iterdir())
    assert cached == sorted(r["sha256"] for r in recs[1:]), "the oldest went"
    assert views.derivations == 3
    assert (await fetch(auditor, play_url(recs[0]["id"], "fq.h1 document")))[0] == 200
    assert views.derivations == 4
    assert not list(views.root.glob("*.part-*"))
