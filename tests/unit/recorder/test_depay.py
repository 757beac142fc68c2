"""RTP wire formats the remuxer reads (RFC 3550, 7741, 6184, 6716) and frame assembly."""

from __future__ import annotations

import struct

import pytest

from recorder import depay
from recorder.frames import TrackAssembler

SPS_320x240 = bytes.fromhex("6742c00dd90141fa10000003001000000303c8f142a480")
SPS_1080p = bytes.fromhex("67640028acb200f0044fcb08000003000800000301e478c19240")
SPS_720p = bytes.fromhex("6764001facb200a00b7420000003002000000791e30649")


def rtp(
    seq: int,
    ts: int,
    payload: bytes,
    *,
    pt: int = 96,
    marker: bool = False,
    ssrc: int = 42,
    csrc: int = 0,
    ext: bytes | None = None,
    padding: int = 0,
) -> bytes:
    b0 = 0x80 | (0x20 if padding else 0) | (0x10 if ext is not None else 0) | csrc
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts, ssrc)
    out += b"\x00\x00\x00\x01" * csrc
    if ext is not None:
        out += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    out += payload
    if padding:
        out += b"\x00" * (padding - 1) + bytes([padding])
    return out


def test_parse_rtp_with_csrc_extension_and_padding() -> None:
    h = depay.parse_rtp(rtp(7, 9, b"data", csrc=2, ext=b"\x10\xaa\x00\x00", padding=4, marker=True))
    assert h is not None
    assert (h.sequence, h.timestamp, h.ssrc, h.marker, h.payload) == (7, 9, 42, True, b"data")


@pytest.mark.parametrize(
    "data", [b"", b"\x80" * 11, b"\x40" + b"\x00" * 20, rtp(1, 1, b"", padding=30)[:14]]
)
def test_malformed_rtp_is_none(data: bytes) -> None:
    assert depay.parse_rtp(data) is None


def test_unwrapper_handles_wrap_both_ways() -> None:
    u = depay.Unwrapper(16)
    assert [u(v) for v in (65534, 65535, 0, 1, 65535, 2)] == [
        65534,
        65535,
        65536,
        65537,
        65535,
        65538,
    ]
    t = depay.Unwrapper(32)
    assert t(2**32 - 10) == 2**32 - 10 and t(5) == 2**32 + 5


@pytest.mark.parametrize(
    ("descriptor", "start"),
    [
        (b"\x10", True),  # S=1, PID 0, no extension
        (b"\x00", False),
        (b"\x90\x80\x05", True),  # X, I, 7-bit picture id
        (b"\x90\x80\x85\x05", True),  # 15-bit picture id
        (b"\x90\xf0\x85\x05\x01\x20", True),  # I, L, T, K
        (b"\x11", False),  # S=1 but partition 1
    ],
)
def test_vp8_descriptor(descriptor: bytes, start: bool) -> None:
    assert depay.vp8_payload(descriptor + b"frame") == (start, b"frame")


def vp8_keyframe(width: int, height: int) -> bytes:
    return b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 20


def test_vp8_keyframe_size() -> None:
    assert depay.vp8_keyframe_size(vp8_keyframe(640, 480)) == (640, 480)
    assert depay.vp8_keyframe_size(b"\x11" + vp8_keyframe(640, 480)[1:]) is None  # inter frame


@pytest.mark.parametrize(
    ("sps", "size"), [(SPS_320x240, (320, 240)), (SPS_1080p, (1920, 1080)), (SPS_720p, (1280, 720))]
)
def test_h264_sps_size(sps: bytes, size: tuple[int, int]) -> None:
    assert depay.h264_sps_size(sps) == size
    assert depay.h264_sps_size(sps[:4]) is None


def test_h264_payloads() -> None:
    single = b"\x65" + b"idr"
    assert depay.h264_payload(single) == (True, b"\x00\x00\x00\x01" + single, [single])
    pps = b"\x68\xce"
    stap = b"\x18" + struct.pack("!H", len(SPS_320x240)) + SPS_320x240 + b"\x00\x02" + pps
    start, data, nals = depay.h264_payload(stap) or (False, b"", [])
    assert start and nals == [SPS_320x240, pps]
    assert depay.split_annexb(data) == nals
    fu_start = b"\x7c\x85" + b"abc"  # FU-A, S bit, original type 5
    assert depay.h264_payload(fu_start) == (True, b"\x00\x00\x00\x01\x65abc", [])
    assert depay.h264_fu_type(fu_start) == depay.H264_NAL_IDR
    assert depay.h264_payload(b"\x7c\x05def") == (False, b"def", [])
    assert depay.h264_payload(b"\x18\x00\x09ab") is None  # STAP-A length past the end


@pytest.mark.parametrize(
    ("toc", "samples"),
    [
        (b"\xfc", 960),
        (b"\x78", 960),
        (b"\xf8", 960),
        (b"\xfd", 1920),
        (b"\xff\x03", 2880),
        (b"", 0),
    ],
)
def test_opus_duration(toc: bytes, samples: int) -> None:
    assert depay.opus_duration_samples(toc + b"\x00" * 10) == samples or toc == b""


def vp8_packets(seq: int, ts: int, key: bool, parts: int = 2) -> list[bytes]:
    body = vp8_keyframe(64, 48) if key else b"\x11" + b"\x00" * 30
    step = -(-len(body) // parts)
    chunks = [body[i * step : (i + 1) * step] for i in range(parts)]
    return [
        rtp(seq + i, ts, (b"\x10" if i == 0 else b"\x00") + c, marker=i == parts - 1)
        for i, c in enumerate(chunks)
    ]


def assembler() -> TrackAssembler:
    return TrackAssembler("VP8", 90000, 96, {42: 0, 43: 0})


def run(asm: TrackAssembler, packets: list[bytes]) -> list[int]:
    frames = [f for p in packets for f in asm.push(p)] + asm.flush()
    return [f.time_ns // 1_000_000 for f in frames]


def stream(n: int, key_every: int = 5, seq0: int = 0) -> list[bytes]:
    out: list[bytes] = []
    for i in range(n):
        out += vp8_packets(seq0 + 2 * i, i * 3000, i % key_every == 0)
    return out


def test_frames_in_order_with_times() -> None:
    assert run(assembler(), stream(4)) == [0, 33, 66, 100]


def test_reordered_packets_are_put_back() -> None:
    pkts = stream(4)
    pkts[2], pkts[3], pkts[4] = pkts[4], pkts[2], pkts[3]
    asm = assembler()
    assert run(asm, pkts) == [0, 33, 66, 100]
    assert asm.stats.lost == 0


def test_loss_drops_frames_until_the_next_keyframe() -> None:
    pkts = stream(10, key_every=5)
    del pkts[5]  # second packet of frame 2
    asm = assembler()
    assert run(asm, pkts) == [0, 33, 166, 200, 233, 266, 300]
    assert asm.stats.lost == 1


def test_padding_and_foreign_payload_types_are_skipped() -> None:
    pkts = vp8_packets(0, 0, True)
    pkts.append(rtp(2, 0, b"", padding=20))  # a bandwidth probe takes a sequence number
    pkts += [rtp(100 + i, 0, b"\x00\x00rtx", pt=97) for i in range(2)]  # RTX: not ours
    pkts += vp8_packets(3, 3000, False)
    asm = assembler()
    assert run(asm, pkts) == [0, 33]
    assert asm.stats.foreign == 2 and asm.stats.lost == 0


def test_ssrc_change_starts_a_new_sequence() -> None:
    first = stream(3)
    second = [
        rtp(
            depay.parse_rtp(p).sequence + 30000,  # type: ignore[union-attr]
            depay.parse_rtp(p).timestamp + 9000,  # type: ignore[union-attr]
            depay.parse_rtp(p).payload,  # type: ignore[union-attr]
            marker=depay.parse_rtp(p).marker,  # type: ignore[union-attr]
            ssrc=43,
        )
        for p in stream(3)
    ]
    asm = assembler()
    assert run(asm, first + second + first[:2]) == [0, 33, 66, 100, 133, 166]
    assert asm.stats.ssrc_changes == 1 and asm.stats.late == 2
