"""RTCP wire format: the packets an SFU translates (RFC 3550, RFC 4585, RFC 5104, REMB).

Pure parse/serialise of compound packets. Types the forwarder does not translate come back
as :class:`RtcpOther` with their bytes, so nothing is silently reinterpreted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SR = 200
RR = 201
SDES = 202
BYE = 203
RTPFB = 205
PSFB = 206

FMT_NACK = 1
FMT_PLI = 1
FMT_FIR = 4
FMT_APP = 15

_BLOCK = struct.Struct("!IB3sIIII")


@dataclass(slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int
    packets_lost: int  # signed 24-bit cumulative
    highest_sequence: int  # extended: cycles << 16 | seq
    jitter: int
    lsr: int
    dlsr: int


@dataclass(slots=True)
class RtcpSr:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class RtcpRr:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class RtcpNack:
    sender_ssrc: int
    media_ssrc: int
    lost: list[int]


@dataclass(slots=True)
class RtcpPli:
    sender_ssrc: int
    media_ssrc: int


@dataclass(slots=True)
class RtcpFir:
    sender_ssrc: int
    entries: list[tuple[int, int]]  # (ssrc, command sequence number)


@dataclass(slots=True)
class RtcpRemb:
    sender_ssrc: int
    bitrate: int
    ssrcs: list[int]


@dataclass(slots=True)
class RtcpOther:
    packet_type: int
    raw: bytes


RtcpPacket = RtcpSr | RtcpRr | RtcpNack | RtcpPli | RtcpFir | RtcpRemb | RtcpOther


def _pack_lost(count: int) -> bytes:
    count = max(-(1 << 23), min(count, (1 << 23) - 1))
    return struct.pack("!i", count)[1:]


def _unpack_lost(b: bytes) -> int:
    return int.from_bytes(b, "big", signed=True)


def _parse_blocks(body: bytes, offset: int, count: int) -> list[ReportBlock]:
    if len(body) < offset + 24 * count:
        raise ValueError("RTCP report blocks truncated")
    blocks = []
    for i in range(count):
        ssrc, frac, lost, hseq, jitter, lsr, dlsr = _BLOCK.unpack_from(body, offset + 24 * i)
        blocks.append(ReportBlock(ssrc, frac, _unpack_lost(lost), hseq, jitter, lsr, dlsr))
    return blocks


def _pack_blocks(blocks: list[ReportBlock]) -> bytes:
    return b"".join(
        _BLOCK.pack(
            b.ssrc & 0xFFFFFFFF,
            b.fraction_lost & 0xFF,
            _pack_lost(b.packets_lost),
            b.highest_sequence & 0xFFFFFFFF,
            b.jitter & 0xFFFFFFFF,
            b.lsr & 0xFFFFFFFF,
            b.dlsr & 0xFFFFFFFF,
        )
        for b in blocks
    )


def _header(packet_type: int, count: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("RTCP body is not a multiple of 32 bits")
    return struct.pack("!BBH", 0x80 | (count & 0x1F), packet_type, len(body) // 4) + body


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a (decrypted) compound RTCP packet; ValueError when any part is malformed."""
    packets: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise ValueError("RTCP packet shorter than its header")
    while pos < len(data):
        if len(data) - pos < 4:
            raise ValueError("RTCP packet truncated")
        b0, packet_type, words = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != 2:
            raise ValueError("RTCP version is not 2")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise ValueError("RTCP length overruns the datagram")
        body = data[pos + 4 : end]
        if b0 & 0x20:  # padding: only valid on the last packet
            if end != len(data) or not body or body[-1] == 0 or body[-1] > len(body):
                raise ValueError("RTCP padding is invalid")
            body = body[: -body[-1]]
        count = b0 & 0x1F
        packets.append(_parse_one(packet_type, count, body, data[pos:end]))
        pos = end
    return packets


def _parse_one(packet_type: int, count: int, body: bytes, raw: bytes) -> RtcpPacket:
    if packet_type == SR:
        if len(body) < 24:
            raise ValueError("RTCP SR truncated")
        ssrc, ntp, rtp_ts, pkts, octets = struct.unpack_from("!IQIII", body)
        return RtcpSr(ssrc, ntp, rtp_ts, pkts, octets, _parse_blocks(body, 24, count))
    if packet_type == RR:
        if len(body) < 4:
            raise ValueError("RTCP RR truncated")
        (ssrc,) = struct.unpack_from("!I", body)
        return RtcpRr(ssrc, _parse_blocks(body, 4, count))
    if packet_type in (RTPFB, PSFB):
        if len(body) < 8:
            raise ValueError("RTCP feedback truncated")
        sender, media = struct.unpack_from("!II", body)
        fci = body[8:]
        if packet_type == RTPFB and count == FMT_NACK:
            if len(fci) % 4:
                raise ValueError("RTCP NACK FCI truncated")
            lost: list[int] = []
            for i in range(0, len(fci), 4):
                pid, blp = struct.unpack_from("!HH", fci, i)
                lost.append(pid)
                for bit in range(16):
                    if blp & (1 << bit):
                        lost.append((pid + bit + 1) & 0xFFFF)
            return RtcpNack(sender, media, lost)
        if packet_type == PSFB and count == FMT_PLI:
            return RtcpPli(sender, media)
        if packet_type == PSFB and count == FMT_FIR:
            if len(fci) % 8:
                raise ValueError("RTCP FIR FCI truncated")
            entries = [
                (struct.unpack_from("!I", fci, i)[0], fci[i + 4]) for i in range(0, len(fci), 8)
            ]
            return RtcpFir(sender, entries)
        if packet_type == PSFB and count == FMT_APP and fci[:4] == b"REMB":
            if len(fci) < 8:
                raise ValueError("REMB truncated")
            n = fci[4]
            exponent = fci[5] >> 2
            mantissa = ((fci[5] & 0x03) << 16) | struct.unpack_from("!H", fci, 6)[0]
            if len(fci) < 8 + 4 * n:
                raise ValueError("REMB SSRC list truncated")
            ssrcs = [struct.unpack_from("!I", fci, 8 + 4 * i)[0] for i in range(n)]
            return RtcpRemb(sender, mantissa << exponent, ssrcs)
    return RtcpOther(packet_type, bytes(raw))


def serialize(packet: RtcpPacket) -> bytes:
    if isinstance(packet, RtcpSr):
        body = struct.pack(
            "!IQIII",
            packet.ssrc & 0xFFFFFFFF,
            packet.ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
            packet.rtp_timestamp & 0xFFFFFFFF,
            packet.packet_count & 0xFFFFFFFF,
            packet.octet_count & 0xFFFFFFFF,
        )
        return _header(SR, len(packet.reports), body + _pack_blocks(packet.reports))
    if isinstance(packet, RtcpRr):
        body = struct.pack("!I", packet.ssrc & 0xFFFFFFFF) + _pack_blocks(packet.reports)
        return _header(RR, len(packet.reports), body)
    if isinstance(packet, RtcpNack):
        return _header(
            RTPFB,
            FMT_NACK,
            struct.pack("!II", packet.sender_ssrc, packet.media_ssrc) + pack_nack_fci(packet.lost),
        )
    if isinstance(packet, RtcpPli):
        return _header(PSFB, FMT_PLI, struct.pack("!II", packet.sender_ssrc, packet.media_ssrc))
    if isinstance(packet, RtcpFir):
        fci = b"".join(struct.pack("!IB3x", s, n & 0xFF) for s, n in packet.entries)
        return _header(PSFB, FMT_FIR, struct.pack("!II", packet.sender_ssrc, 0) + fci)
    if isinstance(packet, RtcpRemb):
        exponent, mantissa = 0, packet.bitrate
        while mantissa > 0x3FFFF:
            mantissa >>= 1
            exponent += 1
        fci = b"REMB" + struct.pack(
            "!BBH", len(packet.ssrcs), (exponent << 2) | (mantissa >> 16), mantissa & 0xFFFF
        )
        fci += b"".join(struct.pack("!I", s) for s in packet.ssrcs)
        return _header(PSFB, FMT_APP, struct.pack("!II", packet.sender_ssrc, 0) + fci)
    return packet.raw


def serialize_compound(packets: list[RtcpPacket]) -> bytes:
    return b"".join(serialize(p) for p in packets)


def pack_nack_fci(lost: list[int]) -> bytes:
    """Generic NACK FCI entries (PID + bitmask of the 16 following) for ``lost``."""
    if not lost:
        return b""
    fci = bytearray()
    seqs = sorted(set(s & 0xFFFF for s in lost), key=lambda s: (s - lost[0]) & 0xFFFF)
    i = 0
    while i < len(seqs):
        pid, blp = seqs[i], 0
        i += 1
        while i < len(seqs):
            delta = (seqs[i] - pid) & 0xFFFF
            if not 1 <= delta <= 16:
                break
            blp |= 1 << (delta - 1)
            i += 1
        fci += struct.pack("!HH", pid, blp)
    return bytes(fci)
