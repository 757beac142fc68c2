"""R1, R6, R7: a whole call through the real server: Socket.IO signaling, RTP forwarded by
the media path, recorded, remuxed and stored; two aiortc clients on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import av
import sqlalchemy as sa

from media.testing import ClientPeer
from storage import schema as s
from tests.integration.signaling.test_calls import make_case

LOOPBACK = ["127.0.0.1"]


class Participant:
    """A SocketUser with an aiortc peer that signals through ``rtc:offer``."""

    def __init__(self, user: Any, call_id: str, **peer: Any) -> None:
        self.user = user
        self.call_id = call_id
        self.peer = ClientPeer(user.username, **peer)

    async def signal(self, name: str, sdp: str, tracks: dict[str, str]) -> str:
        ack = await self.user.call(
            "rtc:offer", {"call_id": self.call_id, "sdp": sdp, "tracks": tracks}
        )
        assert ack["ok"], ack
        self.peer.receive_map = ack["receive"]
        self.last_ack = ack
        return str(ack["sdp"])

    async def offer(self, needs: dict[str, int] | None = None) -> None:
        """Offer; again while the server says the answer could not carry every track."""
        for _ in range(3):
            self.peer.ensure_receivers(needs or {})
            await self.peer.negotiate(self.signal, LOOPBACK)
            if not self.last_ack["renegotiate"]:
                return
            needs = self.last_ack["needs"]

    async def follow_renegotiation(self, within: float = 10) -> None:
        request = await self.user.next("media:renegotiate", within)
        assert request["call_id"] == self.call_id
        await self.offer(request["needs"])

    def video(self) -> list[Any]:
        return [r for r in self.peer.received.values() if r.kind == "video"]


async def test_call_media_is_forwarded_and_recorded(start_server: Any, sockets: Any) -> None:
    server = await start_server(media_addresses=("127.0.0.1",))
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    callee = await sockets(server, "fq.h1")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    assert (await callee.call("call:accept", {"call_id": call_id}))["ok"]
    recording = await caller.next("call:recording")
    assert recording == {"call_id": call_id, "state": "recording"}

    a = Participant(caller, call_id)
    b = Participant(callee, call_id, document=True)  # R6: the document camera beside the face
    try:
        started = time.monotonic()
        await a.offer()
        await b.offer()
        await a.follow_renegotiation()
        for p, videos in ((a, 2), (b, 1)):
            await p.peer.wait_for(
                lambda p=p, videos=videos: (
                    len(p.video()) >= videos and all(len(r.numbers) >= 45 for r in p.video())
                ),
                within=30,
                what="frames from every remote video track",
            )
            for received in p.video():
                assert received.missing() == 0, received.numbers
        labels = sorted(m["label"] for m in a.peer.receive_map.values())
        assert labels == ["audio", "camera", "document"]
        assert (await callee.call("call:hangup", {"call_id": call_id}))["ok"]
        length = time.monotonic() - started
    finally:
        await a.peer.close()
        await b.peer.close()

    ready = await caller.next("call:recording", timeout=30)
    assert ready == {"call_id": call_id, "state": "ready"}
    async with server.services.db.connect() as conn:
        row = (
            await conn.execute(sa.select(s.recordings).where(s.recordings.c.call_id == call_id))
        ).one()
    assert row.state == "ready" and row.sha256 and row.size_bytes > 0
    assert abs(row.duration_s - length) < 2.0, (row.duration_s, length)
    assert (row.expires_at - row.started_at).days >= 181
    titles = sorted(t["title"] for t in row.tracks)
    assert titles == [
        "fq.h1 audio",
        "fq.h1 camera",
        "fq.h1 document",
        "zz.a1 audio",
        "zz.a1 camera",
    ]
    path = Path(server.settings.recordings_url.removeprefix("file://")) / row.blob_key
    frames = 0
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 3 and len(container.streams.audio) == 2
        for _frame in container.decode(container.streams.video[0]):
            frames += 1
    assert frames > 30
    work = list((server.settings.data_dir / "recording-work").iterdir())
    assert work == [], "the dump is removed once the archive is verified and stored"


async def test_offer_from_outside_the_call_is_refused(start_server: Any, sockets: Any) -> None:
    server = await start_server(media_addresses=("127.0.0.1",))
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    callee = await sockets(server, "fq.h1")
    stranger = await sockets(server, "fq.h2")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    await callee.call("call:accept", {"call_id": call_id})
    ack = await stranger.call("rtc:offer", {"call_id": call_id, "sdp": "v=0", "tracks": {}})
    assert ack["error"]["code"] == "not_participant"
    ack = await caller.call("rtc:offer", {"call_id": call_id, "sdp": "garbage", "tracks": {}})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_input"
    ack = await caller.call(
        "rtc:offer", {"call_id": call_id, "sdp": "v=0", "tracks": {"0": "selfie"}}
    )
    assert ack["error"]["code"] == "invalid_input"
    ack = await caller.call(
        "rtc:candidate", {"call_id": call_id, "candidate": {"candidate": "bogus"}}
    )
    assert ack["ok"] is False
    await asyncio.sleep(0)


async def test_a_new_peer_connection_replaces_the_old_leg(start_server: Any, sockets: Any) -> None:
    """A reloaded page (a new RTCPeerConnection, a new DTLS certificate) rejoins its call."""
    server = await start_server(media_addresses=("127.0.0.1",))
    case_id = await make_case(server)
    caller = await sockets(server, "zz.a1")
    callee = await sockets(server, "fq.h1")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    assert (await callee.call("call:accept", {"call_id": call_id}))["ok"]
    a = Participant(caller, call_id)
    b = Participant(callee, call_id)
    b2 = Participant(callee, call_id)
    try:
        await a.offer()
        await b.offer()
        await a.follow_renegotiation()
        await b.peer.wait_for(lambda: any(len(r.numbers) >= 20 for r in b.video()), within=20)
        await b.peer.close()  # the page reloads: its peer connection is gone
        seen_before = sum(len(r.numbers) for r in a.video())
        await b2.offer()
        await b2.peer.wait_for(
            lambda: any(len(r.numbers) >= 20 for r in b2.video()),
            within=20,
            what="video on the new peer connection",
        )
        request = await a.user.next("media:renegotiate", 10)
        await a.offer(request["needs"])
        await a.peer.wait_for(
            lambda: sum(len(r.numbers) for r in a.video()) >= seen_before + 20,
            within=20,
            what="the other side's video again, from its new peer connection",
        )
    finally:
        for p in (a, b, b2):
            await p.peer.close()
