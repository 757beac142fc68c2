from __future__ import annotations

import pytest

from media import rtcp_wire as w


def test_compound_round_trip() -> None:
    block = w.ReportBlock(5, 12, -3, (2 << 16) | 100, 40, 0x1234, 0x5678)
    packets: list[w.RtcpPacket] = [
        w.RtcpSr(1, 0x0102030405060708, 90000, 10, 2000, [block]),
        w.RtcpRr(2, [block]),
        w.RtcpNack(3, 4, [10, 11, 13, 40]),
        w.RtcpPli(3, 4),
        w.RtcpFir(3, [(4, 7)]),
        w.RtcpRemb(3, 1_500_000, [4, 5]),
    ]
    parsed = w.parse_compound(w.serialize_compound(packets))
    assert parsed[:5] == packets[:5]
    remb = parsed[5]
    assert isinstance(remb, w.RtcpRemb)
    assert remb.ssrcs == [4, 5] and abs(remb.bitrate - 1_500_000) < 1_500_000 / 2**17


def test_nack_fci_uses_bitmask_and_wraps() -> None:
    fci = w.pack_nack_fci([65534, 65535, 0, 1, 30])
    assert len(fci) == 8  # one PID+BLP for 65534..1, one for 30
    nack = w.parse_compound(w._header(w.RTPFB, w.FMT_NACK, b"\0" * 8 + fci))[0]
    assert isinstance(nack, w.RtcpNack)
    assert nack.lost == [65534, 65535, 0, 1, 30]
    assert w.pack_nack_fci([]) == b""


def test_unknown_types_come_back_as_raw_bytes() -> None:
    sdes = bytes([0x81, 202, 0, 2, 0, 0, 0, 1, 1, 1, ord("x"), 0])
    (other,) = w.parse_compound(sdes)
    assert isinstance(other, w.RtcpOther) and other.raw == sdes and w.serialize(other) == sdes


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\xc8",
        bytes([0x80, 201, 0, 9]) + b"\0" * 4,  # length overruns
        bytes([0x40, 201, 0, 1]) + b"\0" * 4,  # version 1
        bytes([0x81, 201, 0, 1]) + b"\0" * 4,  # claims a report block it lacks
        bytes([0x81, 206, 0, 0]),  # feedback without its SSRCs
    ],
)
def test_malformed_compounds_raise(data: bytes) -> None:
    with pytest.raises(ValueError):
        w.parse_compound(data)
