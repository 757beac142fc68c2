"""Getting recordings for the HTTP and retention tests: one real call through the server, or
a recordings row beside a real small Matroska file (PyAV) put into the server's blob store."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import sqlalchemy as sa

from recorder.retention import expires_at
from recorder.service import blob_key
from storage import schema as s
from tests.integration.calls.test_call_with_media import Participant
from tests.integration.signaling.test_calls import make_case

# Each synthetic video track is one flat grey, so a test can tell whose picture a view shows.
LUMA = {"zz.a1 camera": 40, "zz.a1 document": 90, "fq.h1 camera": 150, "fq.h1 document": 210}
ONE_PARTY: dict[str, tuple[str, ...]] = {"zz.a1": ("camera", "audio")}
TWO_PARTIES: dict[str, tuple[str, ...]] = {
    "zz.a1": ("camera", "audio"),
    "fq.h1": ("camera", "document", "audio"),
}


def make_mkv(
    path: Path,
    seconds: float = 1.0,
    fps: int = 10,
    parties: dict[str, tuple[str, ...]] | None = None,
) -> list[dict[str, Any]]:
    """A VP8 + Opus Matroska file like the recorder's archives: per participant the given
    sources (``camera``, ``document``, ``audio``), titled ``"<participant> <source>"`` in
    that order. Returns the track list as the recorder stores it."""
    tracks: list[dict[str, Any]] = []
    with av.open(str(path), "w", format="matroska") as out:
        streams = []
        for participant, sources in (parties or ONE_PARTY).items():
            for source in sources:
                title = f"{participant} {source}"
                if source == "audio":
                    stream = out.add_stream("libopus", rate=48000)
                else:
                    stream = out.add_stream("libvpx", rate=fps)
                    stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
                stream.metadata["title"] = title
                kind = "audio" if source == "audio" else "video"
                tracks.append(
                    {
                        "stream_index": len(streams),
                        "title": title,
                        "participant": participant,
                        "label": source,
                        "kind": kind,
                        "codec": "OPUS" if kind == "audio" else "VP8",
                        "start_seconds": 0.0,
                        "duration_seconds": seconds,
                    }
                )
                streams.append((title, stream))
        for title, stream in streams:
            if stream.type == "video":
                luma = LUMA.get(title, 128)
                for i in range(int(seconds * fps)):
                    frame = av.VideoFrame(160, 120, "yuv420p")
                    for n, plane in enumerate(frame.planes):
                        plane.update(bytes([luma if n == 0 else 128]) * plane.buffer_size)
                    frame.pts = i
                    frame.time_base = Fraction(1, fps)
                    out.mux(stream.encode(frame))
            else:
                for i in range(int(seconds * 50)):
                    aframe = av.AudioFrame(format="s16", layout="mono", samples=960)
                    aframe.planes[0].update(bytes(aframe.planes[0].buffer_size))
                    aframe.sample_rate = 48000
                    aframe.pts = i * 960
                    out.mux(stream.encode(aframe))
            out.mux(stream.encode())
    return tracks


async def account_id(server: Any, username: str) -> int:
    snap = await server.services.directory.snapshot()
    account = snap.account_by_username(username)
    assert account is not None, username
    return int(account.id)


async def insert_recording(
    server: Any,
    tmp_path: Path,
    *,
    started_at: datetime,
    case_id: int | None = None,
    caller: str = "zz.a1",
    callee: str = "fq.h1",
    state: str = "ready",
    legal_hold: bool = False,
    months: int | None = None,
    parties: dict[str, tuple[str, ...]] | None = None,
    seconds: float = 1.0,
) -> dict[str, Any]:
    """An ended call with a stored archive; returns ``{"id", "call_id", "sha256", ...}``."""
    case_id = case_id or await make_case(server)
    caller_id = await account_id(server, caller)
    callee_id = await account_id(server, callee)
    snap = await server.services.directory.snapshot()
    caller_window = snap.account(caller_id).window_ids[0]
    home_window = snap.account(callee_id).window_ids[0]
    call_id = str(uuid.uuid4())
    key = blob_key(call_id, started_at)
    archive = tmp_path / f"{call_id}.mkv"
    who = parties or {caller: ("camera", "audio")}
    tracks = await asyncio.to_thread(make_mkv, archive, seconds, 10, who)
    info = await server.services.extra["recordings"].blobs.put_file(key, archive)
    months = server.settings.retention_months if months is None else months
    async with server.services.db.begin() as conn:
        await conn.execute(
            sa.insert(s.calls).values(
                id=call_id,
                case_id=case_id,
                caller_id=caller_id,
                caller_window_id=caller_window,
                window_id=home_window,
                state="ended",
                requested_at=started_at - timedelta(seconds=5),
                answered_at=started_at,
                ended_at=started_at + timedelta(seconds=1),
                end_reason="hangup",
                answered_by=callee_id,
            )
        )
        for account, role in ((caller_id, "caller"), (callee_id, "callee")):
            await conn.execute(
                sa.insert(s.call_members).values(
                    call_id=call_id, account_id=account, role=role, joined_at=started_at
                )
            )
        recording_id = (
            await conn.execute(
                sa.insert(s.recordings)
                .values(
                    call_id=call_id,
                    case_id=case_id,
                    state=state,
                    blob_key=key,
                    started_at=started_at,
                    ended_at=started_at + timedelta(seconds=seconds),
                    duration_s=seconds,
                    size_bytes=info.size,
                    codecs="OPUS,VP8",
                    sha256=info.sha256,
                    tracks=tracks,
                    expires_at=expires_at(started_at, months),
                    legal_hold=legal_hold,
                    legal_hold_reason="调查中" if legal_hold else None,
                )
                .returning(s.recordings.c.id)
            )
        ).scalar_one()
    return {
        "id": recording_id,
        "call_id": call_id,
        "case_id": case_id,
        "blob_key": key,
        "sha256": info.sha256,
        "size": info.size,
        "path": archive,
    }


async def recorded_call(server: Any, sockets: Any, seconds_of_frames: int = 30) -> dict[str, Any]:
    """A real call through the server (two aiortc clients), hung up and archived."""
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    callee = await sockets(server, "fq.h1")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    assert (await callee.call("call:accept", {"call_id": call_id}))["ok"]
    assert (await caller.next("call:recording"))["state"] == "recording"
    a = Participant(caller, call_id)
    b = Participant(callee, call_id)
    try:
        await a.offer()
        await b.offer()
        await a.follow_renegotiation()
        for p in (a, b):
            await p.peer.wait_for(
                lambda p=p: (
                    bool(p.video()) and all(len(r.numbers) >= seconds_of_frames for r in p.video())
                ),
                within=30,
                what="frames from the other side",
            )
        assert (await callee.call("call:hangup", {"call_id": call_id}))["ok"]
    finally:
        await a.peer.close()
        await b.peer.close()
    ready = await caller.next("call:recording", timeout=30)
    assert ready == {"call_id": call_id, "state": "ready"}, ready
    async with server.services.db.connect() as conn:
        row = (
            await conn.execute(sa.select(s.recordings).where(s.recordings.c.call_id == call_id))
        ).one()
    return {
        "id": row.id,
        "call_id": call_id,
        "case_id": case_id,
        "blob_key": row.blob_key,
        "sha256": row.sha256,
        "size": row.size_bytes,
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def audit_rows(server: Any, *where: Any) -> list[Any]:
    async with server.services.db.connect() as conn:
        return list(
            await conn.execute(sa.select(s.audit_log).where(*where).order_by(s.audit_log.c.id))
        )
