"""Real RTP for recorder tests: aiortc's own encoders and packetisers, then RtpPacket.

Also a script: ``python rtpgen.py DUMP SECONDS`` writes a VP8 + Opus dump in real time and
prints the media time of every packet it has written, for the SIGKILL test (which puts the
repository on ``PYTHONPATH``).
"""

from __future__ import annotations

import fractions
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import av
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from media.ports import TrackInfo

VIDEO_PT = {"VP8": 96, "H264": 102}
OPUS_PT = 111


@dataclass(frozen=True)
class Pkt:
    offset_ns: int  # media time of the packet since the track's first frame
    data: bytes


def _video_frame(width: int, height: int, i: int, fps: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    shift = (i * 4) % 256
    row = bytes((x + shift) % 256 for x in range(width))
    frame.planes[0].update(row * height)
    frame.planes[1].update(bytes([(i * 3) % 256]) * frame.planes[1].buffer_size)
    frame.planes[2].update(bytes([128]) * frame.planes[2].buffer_size)
    frame.pts = i * (90000 // fps)
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def video_track(
    codec: str,
    seconds: float,
    *,
    ssrc: int = 1111,
    seq_start: int = 1000,
    ts_start: int = 0,
    fps: int = 30,
    sizes: tuple[tuple[int, int], ...] = ((320, 240),),
    bitrate: int | None = None,
) -> list[Pkt]:
    """Encode a moving pattern; with several sizes the picture is resized in equal parts."""
    encoder = get_encoder(
        RTCRtpCodecParameters(mimeType=f"video/{codec}", clockRate=90000, payloadType=96)
    )
    if bitrate is not None:
        encoder.target_bitrate = bitrate
    n_frames = round(seconds * fps)
    out: list[Pkt] = []
    seq = seq_start
    for i in range(n_frames):
        width, height = sizes[min(len(sizes) - 1, i * len(sizes) // n_frames)]
        payloads, ts = encoder.encode(_video_frame(width, height, i, fps), force_keyframe=i == 0)
        for k, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=VIDEO_PT[codec],
                marker=1 if k == len(payloads) - 1 else 0,
                sequence_number=seq & 0xFFFF,
                timestamp=(ts_start + ts) & 0xFFFFFFFF,
                ssrc=ssrc,
                payload=payload,
            )
            seq += 1
            out.append(Pkt(ts * 1_000_000_000 // 90000, packet.serialize()))
    return out


def audio_track(
    seconds: float, *, ssrc: int = 2222, seq_start: int = 5000, ts_start: int = 0
) -> list[Pkt]:
    """Encode a 440 Hz tone with aiortc's Opus encoder, 20 ms per packet."""
    encoder = get_encoder(
        RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)
    )
    out: list[Pkt] = []
    seq = seq_start
    for i in range(round(seconds * 50)):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        samples = bytearray()
        for n in range(960):
            v = int(8000 * math.sin(2 * math.pi * 440 * (i * 960 + n) / 48000))
            samples += v.to_bytes(2, "little", signed=True) * 2
        frame.planes[0].update(bytes(samples))
        frame.sample_rate = 48000
        frame.pts = i * 960
        frame.time_base = fractions.Fraction(1, 48000)
        payloads, ts = encoder.encode(frame)
        for payload in payloads:
            packet = RtpPacket(
                payload_type=OPUS_PT,
                marker=0,
                sequence_number=seq & 0xFFFF,
                timestamp=(ts_start + ts) & 0xFFFFFFFF,
                ssrc=ssrc,
                payload=payload,
            )
            seq += 1
            out.append(Pkt(ts * 1_000_000_000 // 48000, packet.serialize()))
    return out


def video_info(track_id: str, participant: str, label: str, codec: str = "VP8") -> TrackInfo:
    return TrackInfo(track_id, participant, label, "video", codec, 90000, VIDEO_PT[codec])


def audio_info(track_id: str, participant: str) -> TrackInfo:
    return TrackInfo(track_id, participant, "audio", "audio", "opus", 48000, OPUS_PT, 2)


def schedule(
    tracks: dict[str, list[Pkt]], starts_ns: dict[str, int] | None = None
) -> list[tuple[int, str, bytes]]:
    """Merge tracks into one arrival-ordered list of (arrival offset ns, track id, packet)."""
    starts_ns = starts_ns or {}
    merged = [
        (starts_ns.get(tid, 0) + p.offset_ns, tid, p.data)
        for tid, pkts in tracks.items()
        for p in pkts
    ]
    merged.sort(key=lambda item: item[0])
    return merged


def _main(dump_path: str, seconds: float) -> None:
    from recorder.dump import DumpWriter

    cam = video_info("a/0", "fq.h1", "camera")
    mic = audio_info("a/1", "fq.h1")
    plan = schedule({"a/0": video_track("VP8", seconds), "a/1": audio_track(seconds)})
    writer = DumpWriter(dump_path, "call-killed", datetime.now(UTC))
    writer.on_track(cam)
    writer.on_track(mic)
    print("ready", flush=True)
    base = time.monotonic_ns()
    for offset, tid, data in plan:
        delay = (base + offset - time.monotonic_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)  # a live source: packets come at media pace
        writer.on_rtp(tid, data, time.time_ns())
        print(f"{offset / 1e9:.3f}", flush=True)
    writer.close()
    print("done", flush=True)


if __name__ == "__main__":
    _main(sys.argv[1], float(sys.argv[2]))
