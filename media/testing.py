"""aiortc client peers for tests and the benchmark: numbered frames in, numbered frames out.

Each sent video frame carries its number in the luma plane (16 large black/white blocks that
survive VP8), so a receiver can tell exactly which frames it decoded and which are missing.
The client behaves as media/README.md asks a browser to: it offers its own tracks
``sendonly`` plus one ``recvonly`` m-line per track it must receive, and re-offers when told.
"""

from __future__ import annotations

import asyncio
import fractions
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from media import aiortc_internals as ai

VIDEO_CLOCK = 90000
BITS = 16


def noise_table(amplitude: int) -> bytes:
    """``bytes.translate`` table turning random bytes into grey ± ``amplitude``."""
    span = 2 * amplitude + 1
    return bytes(max(0, min(255, 128 + v % span - amplitude)) for v in range(256))


def encode_number(
    width: int, height: int, number: int, noise: bytes | None = None
) -> av.VideoFrame:
    """A grey frame whose top band holds ``number`` as 16 black/white blocks.

    ``noise`` (a :func:`noise_table`) fills the rest with fresh random texture, so the
    encoder has to spend its whole bitrate as it does on a real camera (a flat frame
    encodes to ~50 kbit/s whatever the target).
    """
    frame = av.VideoFrame(width, height, "yuv420p")
    block_w = width // BITS
    band_h = max(16, (height // 6) // 16 * 16)
    y = bytearray([128]) * (width * height)
    if noise is not None:
        y[band_h * width :] = os.urandom(width * (height - band_h)).translate(noise)
    for bit in range(BITS):
        value = 235 if number >> bit & 1 else 16
        row = bytes([value]) * block_w
        for line in range(band_h):
            start = line * width + bit * block_w
            y[start : start + block_w] = row
    frame.planes[0].update(bytes(y))
    chroma = bytes([128]) * frame.planes[1].buffer_size
    frame.planes[1].update(chroma)
    frame.planes[2].update(chroma)
    return frame


def decode_number(frame: av.VideoFrame) -> int:
    plane = frame.planes[0]
    data = bytes(plane)
    stride = plane.line_size
    width = frame.width
    block_w = width // BITS
    band_h = max(16, (frame.height // 6) // 16 * 16)
    line = band_h // 2
    number = 0
    for bit in range(BITS):
        x0 = bit * block_w + block_w // 4
        x1 = bit * block_w + 3 * block_w // 4
        row = data[line * stride + x0 : line * stride + x1]
        if sum(row) / max(1, len(row)) > 128:
            number |= 1 << bit
    return number


class NumberedVideoTrack(MediaStreamTrack):
    """Video at a steady frame rate; frame ``n`` shows ``n`` (see :func:`encode_number`)."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30, noise: int = 0) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._noise = noise_table(noise) if noise else None
        self.count = 0
        self.sent_at: dict[int, float] = {}  # frame number -> wall time it was produced
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.count / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # media clock, not waiting for an event
        n = self.count & 0xFFFF
        frame = encode_number(self.width, self.height, n, self._noise)
        frame.pts = self.count * (VIDEO_CLOCK // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent_at[n] = time.time()
        if len(self.sent_at) > 4096:
            self.sent_at.pop(next(iter(self.sent_at)))
        self.count += 1
        return frame


def encode_vp8_loop(
    width: int, height: int, frames: int, bitrate: int, noise: int, keyframe_every: int = 150
) -> list[bytes]:
    """Numbered, textured frames 0..frames-1 encoded once as aiortc's VP8 encoder would.

    Same libvpx settings as ``aiortc.codecs.vpx.Vp8Encoder`` (realtime, CBR at ``bitrate``)
    plus a keyframe every ``keyframe_every`` frames, so a :class:`ReplayVideoTrack` puts
    the same kind of packets on the wire without a client spending a quarter of a core per
    640x480 stream on encoding: on a shared machine the clients, not the server, decide
    whether 30 fps and ~325 packets/s per call actually reach the server.
    """
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.bit_rate = bitrate
    codec.pix_fmt = "yuv420p"
    codec.gop_size = keyframe_every
    codec.thread_count = 1
    codec.qmin, codec.qmax = 2, 56
    codec.options = {
        "bufsize": str(bitrate),
        "cpu-used": "-6",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "noise-sensitivity": "4",
        "overshoot-pct": "15",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
    }
    table = noise_table(noise) if noise else None
    out = []
    for n in range(frames):
        frame = encode_number(width, height, n, table)
        frame.pts = n * (VIDEO_CLOCK // 30)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        out.append(b"".join(bytes(p) for p in codec.encode(frame)))
    return out


class ReplayVideoTrack(MediaStreamTrack):
    """Pre-encoded VP8 frames (see :func:`encode_vp8_loop`) at a steady rate, in a loop.

    aiortc packetises them without encoding. Frame ``n`` shows ``n % len(frames)``;
    ``sent_at`` holds the last time each number was sent. Keyframe requests are not
    honoured (the loop has a keyframe every ``keyframe_every`` frames).
    """

    kind = "video"

    def __init__(self, frames: list[bytes], fps: int = 30) -> None:
        super().__init__()
        self.frames, self.fps = frames, fps
        self.count = 0
        self.sent_at: dict[int, float] = {}
        self._start: float | None = None

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.count / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # media clock
        n = self.count % len(self.frames)
        packet = av.Packet(self.frames[n])
        packet.pts = self.count * (VIDEO_CLOCK // self.fps)
        packet.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent_at[n] = time.time()
        self.count += 1
        return packet


class ToneTrack(MediaStreamTrack):
    """20 ms of 48 kHz mono audio per recv (a constant tone; Opus-encoded by aiortc)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self._start: float | None = None
        samples = [int(3000 * ((i // 24) % 2 * 2 - 1)) for i in range(960)]
        self._pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.count * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(self._pcm)
        frame.sample_rate = 48000
        frame.pts = self.count * 960
        frame.time_base = fractions.Fraction(1, 48000)
        self.count += 1
        return frame


@dataclass
class Received:
    """What one client decoded from one incoming m-line."""

    mid: str
    kind: str
    numbers: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    audio_frames: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def missing(self) -> int:
        """Frames skipped between the first and the last decoded one."""
        if len(self.numbers) < 2:
            return 0
        return ((self.numbers[-1] - self.numbers[0]) & 0xFFFF) + 1 - len(set(self.numbers))


Signal = Callable[[str, str, dict[str, str]], Awaitable[str]]


def pin_video_bitrate(bits_per_second: int | None) -> None:
    """Benchmark/test clients only: hold aiortc's VP8 encoders in this process at a fixed
    target bitrate (``None``: back to aiortc's REMB-driven 250 kbit/s-1.5 Mbit/s)."""
    ai.pin_vp8_bitrate(bits_per_second)


async def inbound_rtp(pc: RTCPeerConnection) -> tuple[int, int]:
    """(datagrams, bytes) a client's transport received so far (media, RTCP, ICE, DTLS)."""
    report = await pc.getStats()
    packets = octets = 0
    for stats in report.values():
        if getattr(stats, "type", None) == "transport":
            packets += int(stats.packetsReceived)
            octets += int(stats.bytesReceived)
    return packets, octets


class ClientPeer:
    """One participant: an aiortc peer connection talking to the server's CallMedia."""

    def __init__(
        self,
        name: str,
        *,
        video: bool = True,
        audio: bool = True,
        document: bool = False,
        width: int = 320,
        height: int = 240,
        fps: int = 30,
        noise: int = 0,
        replay: list[bytes] | None = None,
        sent_at_lookup: Callable[[str, int], float | None] | None = None,
    ) -> None:
        self.name = name
        self.pc: RTCPeerConnection = ai.new_peer_connection([])
        self._size = (width, height)
        self._fps = fps
        self._noise = noise
        self.tracks: dict[str, MediaStreamTrack] = {}
        if video and replay is not None:
            self.tracks["camera"] = ReplayVideoTrack(replay, fps)
        elif video:
            self.tracks["camera"] = NumberedVideoTrack(width, height, fps, noise)
        if document:
            self.tracks["document"] = NumberedVideoTrack(width, height, fps, noise)
        if audio:
            self.tracks["audio"] = ToneTrack()
        self._label_by_transceiver: dict[int, str] = {}
        for label, track in self.tracks.items():
            t = self.pc.addTransceiver(track, direction="sendonly")
            self._label_by_transceiver[id(t)] = label
        self.received: dict[str, Received] = {}
        self.receive_map: dict[str, dict[str, str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent_at_lookup = sent_at_lookup
        self.pc.on("track", self._on_track)

    def add_document_camera(self) -> None:
        """Start sending a second video track (takes effect at the next negotiate)."""
        track = NumberedVideoTrack(self._size[0], self._size[1], self._fps, self._noise)
        self.tracks["document"] = track
        t = self.pc.addTransceiver(track, direction="sendonly")
        self._label_by_transceiver[id(t)] = "document"

    def ensure_receivers(self, needs: dict[str, int]) -> None:
        """One recvonly m-line per remote track of each kind (never removed, reused)."""
        for kind in ("video", "audio"):
            have = sum(
                1
                for t in self.pc.getTransceivers()
                if t.kind == kind and id(t) not in self._label_by_transceiver
            )
            for _ in range(needs.get(kind, 0) - have):
                self.pc.addTransceiver(kind, direction="recvonly")

    async def negotiate(self, signal: Signal, host_addresses: list[str]) -> None:
        """Offer, send it through ``signal(participant, sdp, tracks)``, apply the answer.

        A re-offer waits for the first connection to complete: aiortc's own connect task
        races a re-offer's answer otherwise (IndexError in ``__remoteRtp``, harmless but loud).
        """
        if self.pc.remoteDescription is not None:
            await self.connected(within=10)
        ai.restrict_host_candidates(self.pc, host_addresses)
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        tracks = {}
        for t in self.pc.getTransceivers():
            label = self._label_by_transceiver.get(id(t))
            if label is not None and t.mid is not None:
                tracks[t.mid] = label
        local = self.pc.localDescription
        answer = await signal(self.name, local.sdp, tracks)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def answer(self, offer_sdp: str, host_addresses: list[str]) -> str:
        """Answer a remote offer (e.g. an SFU that offers its subscribers); returns the SDP."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        ai.restrict_host_candidates(self.pc, host_addresses)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def connected(self, within: float) -> None:
        if self.pc.connectionState == "connected":
            return
        done = asyncio.get_running_loop().create_future()

        def changed() -> None:
            if self.pc.connectionState in ("connected", "failed", "closed") and not done.done():
                done.set_result(self.pc.connectionState)

        self.pc.on("connectionstatechange", changed)
        try:
            state = await asyncio.wait_for(done, within)
        finally:
            self.pc.remove_listener("connectionstatechange", changed)
        if state != "connected":
            raise ConnectionError(f"{self.name}: peer connection {state}")

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        if mid is None:
            return
        received = self.received.setdefault(mid, Received(mid=mid, kind=track.kind))
        task = asyncio.get_running_loop().create_task(self._consume(track, received))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume(self, track: MediaStreamTrack, received: Received) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    n = decode_number(frame)
                    received.numbers.append(n)
                    if self._sent_at_lookup is not None:
                        sent = self._sent_at_lookup(received.mid, n)
                        if sent is not None:
                            received.latencies.append(time.time() - sent)
                else:
                    received.audio_frames += 1
                received.changed.set()
        except MediaStreamError:
            return

    async def wait_for(
        self, predicate: Callable[[], bool], within: float, what: str = "condition"
    ) -> None:
        """Wait (without polling sleeps) until a received frame makes ``predicate`` true."""

        async def waiter() -> None:
            while not predicate():
                events = [r.changed for r in self.received.values()]
                for e in events:
                    e.clear()
                if predicate():
                    return
                waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(e.wait()) for e in events]
                waits.append(asyncio.ensure_future(self._track_added()))
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()

        try:
            await asyncio.wait_for(waiter(), within)
        except TimeoutError as err:
            raise AssertionError(f"{self.name}: timed out waiting for {what}") from err

    async def _track_added(self) -> None:
        before = len(self.received)
        event = asyncio.Event()

        def check(_: Any) -> None:
            event.set()

        self.pc.on("track", check)
        try:
            while len(self.received) == before:
                await event.wait()
                event.clear()
        finally:
            self.pc.remove_listener("track", check)

    async def close(self) -> None:
        await self.pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
