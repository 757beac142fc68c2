from __future__ import annotations

import struct

import pytest

from media import rtp_wire


def packet(
    *,
    pt: int = 96,
    seq: int = 1000,
    ts: int = 5000,
    ssrc: int = 0x11223344,
    marker: bool = True,
    ext: bytes = b"",
    payload: bytes = b"\x10\x20\x30",
    pad: int = 0,
) -> bytes:
    b0 = 0x80 | (0x10 if ext else 0) | (0x20 if pad else 0)
    head = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    tail = (b"\x00" * (pad - 1) + bytes([pad])) if pad else b""
    return head + ext + payload + tail


def one_byte_ext(elements: list[tuple[int, bytes]]) -> bytes:
    return rtp_wire.build_extensions(elements)


def test_parse_plain_header() -> None:
    h = rtp_wire.parse_header(packet())
    assert (h.payload_type, h.sequence_number, h.timestamp, h.ssrc, h.marker) == (
        96,
        1000,
        5000,
        0x11223344,
        True,
    )
    assert h.ext_profile is None and h.ext_end == 12 and h.payload_end == 15


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80" * 11, b"\x40" + b"\x00" * 11, packet()[:12] + b"", packet(pad=4)[:-1] + b"\x09"],
)
def test_malformed_headers_raise(data: bytes) -> None:
    if data == packet()[:12]:
        rtp_wire.parse_header(data)  # an empty payload is legal
        return
    with pytest.raises(ValueError):
        rtp_wire.parse_header(data)


def test_truncated_extension_raises() -> None:
    data = packet(ext=one_byte_ext([(1, b"0"), (3, b"abc")]))
    with pytest.raises(ValueError):
        rtp_wire.parse_header(data[:14])


def test_rewrite_keeps_payload_marker_and_extension_byte_for_byte() -> None:
    ext = one_byte_ext([(1, b"0"), (3, b"\x01\x02\x03")])
    data = packet(ext=ext, pad=3)
    h = rtp_wire.parse_header(data)
    out = rtp_wire.rewrite(data, h, payload_type=97, sequence_number=7, timestamp=9, ssrc=5)
    o = rtp_wire.parse_header(out)
    assert (o.payload_type, o.sequence_number, o.timestamp, o.ssrc, o.marker) == (97, 7, 9, 5, True)
    assert out[12:] == data[12:]


def test_rewrite_replaces_extension_block() -> None:
    data = packet(ext=one_byte_ext([(1, b"0"), (3, b"\x01\x02\x03")]))
    h = rtp_wire.parse_header(data)
    new_ext = one_byte_ext([(4, b"12"), (3, b"\x01\x02\x03")])
    out = rtp_wire.rewrite(
        data, h, payload_type=96, sequence_number=1, timestamp=2, ssrc=3, extension_block=new_ext
    )
    o = rtp_wire.parse_header(out)
    assert o.ext_profile == rtp_wire.ONE_BYTE_PROFILE
    assert rtp_wire.parse_extensions(o.ext_profile, out[o.ext_start : o.ext_end]) == [
        (4, b"12"),
        (3, b"\x01\x02\x03"),
    ]
    assert out[o.ext_end :] == b"\x10\x20\x30"
    stripped = rtp_wire.rewrite(
        data, h, payload_type=96, sequence_number=1, timestamp=2, ssrc=3, extension_block=b""
    )
    assert rtp_wire.parse_header(stripped).ext_profile is None
    assert stripped[12:] == b"\x10\x20\x30"


def test_two_byte_extensions_round_trip() -> None:
    elements = [(1, b""), (20, b"x" * 20)]
    block = rtp_wire.build_extensions(elements)
    profile = struct.unpack("!H", block[:2])[0]
    assert profile & 0xFFF0 == 0x1000
    assert rtp_wire.parse_extensions(profile, block[4:]) == elements


def test_rtx_wrap_and_unwrap_round_trip() -> None:
    data = packet(seq=4242, ext=one_byte_ext([(1, b"0")]), pad=2)
    h = rtp_wire.parse_header(data)
    rtx = rtp_wire.wrap_rtx(data, h, payload_type=97, sequence_number=9, ssrc=0xABCD)
    rh = rtp_wire.parse_header(rtx)
    assert (rh.payload_type, rh.sequence_number, rh.ssrc) == (97, 9, 0xABCD)
    back = rtp_wire.unwrap_rtx(rtx, rh, payload_type=96, ssrc=0x11223344)
    bh = rtp_wire.parse_header(back)
    assert (bh.sequence_number, bh.payload_type, bh.ssrc) == (4242, 96, 0x11223344)
    assert back[bh.ext_end :] == b"\x10\x20\x30"


def test_rtx_without_osn_is_rejected() -> None:
    data = packet(payload=b"\x01")
    with pytest.raises(ValueError):
        rtp_wire.unwrap_rtx(data, rtp_wire.parse_header(data), payload_type=96, ssrc=1)


def test_sequence_comparison_wraps() -> None:
    assert rtp_wire.seq_newer(1, 65535)
    assert not rtp_wire.seq_newer(65535, 1)
    assert not rtp_wire.seq_newer(5, 5)


def test_is_rtcp() -> None:
    assert rtp_wire.is_rtcp(bytes([0x80, 200]))
    assert not rtp_wire.is_rtcp(packet())


def test_mid_patched_in_place_equals_reserialised_block() -> None:
    # abs-send-time (3 bytes), mid "0", audio level: the mid becomes "2" on the receiving leg.
    elements = [(3, b"\x01\x02\x03"), (1, b"0"), (2, b"\x85")]
    data = packet(ext=one_byte_ext(elements), pad=3)
    h = rtp_wire.parse_header(data)
    where = rtp_wire.one_byte_element(data, h, 1)
    assert where is not None and data[where[0] : where[0] + where[1]] == b"0"
    fast = rtp_wire.rewrite(
        data, h, payload_type=100, sequence_number=7, timestamp=9, ssrc=5, patch=(where[0], b"2")
    )
    slow = rtp_wire.rewrite(
        data,
        h,
        payload_type=100,
        sequence_number=7,
        timestamp=9,
        ssrc=5,
        extension_block=one_byte_ext([(3, b"\x01\x02\x03"), (1, b"2"), (2, b"\x85")]),
    )
    assert fast == slow
    assert rtp_wire.one_byte_element(data, h, 9) is None
    assert rtp_wire.one_byte_element(packet(), rtp_wire.parse_header(packet()), 1) is None


def test_rewrite_fixed_equals_rewrite() -> None:
    data = packet(ext=one_byte_ext([(1, b"0"), (3, b"abc")]), pad=2, marker=True)
    h = rtp_wire.parse_header(data)
    expected = rtp_wire.rewrite(
        data, h, payload_type=111, sequence_number=0x1FFFF, timestamp=1 << 33, ssrc=77
    )
    assert rtp_wire.rewrite_fixed(data, 111, 0x1FFFF, 1 << 33, 77) == expected
