"""RTP wire format (RFC 3550, RFC 8285, RFC 4588): parse a header, rewrite it, wrap RTX.

Pure functions on ``bytes``; no asyncio and no aiortc. The forwarding path calls these once
per packet, so they work on slices and ``struct`` rather than building objects per field.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

RTP_VERSION = 2
FIXED_HEADER = 12
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000

_HDR = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_U16X2 = struct.Struct("!HH")


class RtpHeader(NamedTuple):
    """The parts of an RTP header the forwarder needs; offsets index the original bytes.

    A NamedTuple (immutable, built in C) rather than a frozen dataclass: one is made per
    forwarded packet, and the frozen dataclass's ``__init__`` cost about 2 µs of it.
    """

    marker: bool
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    csrc_count: int
    ext_profile: int | None  # None when the X bit is clear
    ext_start: int  # offset of the extension body (after its 4-byte header)
    ext_end: int  # offset where the extension ends; == payload offset
    payload_end: int  # offset where padding starts (== len(data) without padding)


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 demultiplexing: payload types 192..223 are RTCP."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def parse_header(data: bytes) -> RtpHeader:
    """Parse and validate an RTP header; raise ValueError when it is malformed."""
    if len(data) < FIXED_HEADER:
        raise ValueError("RTP packet shorter than its fixed header")
    b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise ValueError("RTP version is not 2")
    cc = b0 & 0x0F
    offset = FIXED_HEADER + 4 * cc
    if len(data) < offset:
        raise ValueError("RTP packet truncated in its CSRC list")
    ext_profile: int | None = None
    ext_start = ext_end = offset
    if b0 & 0x10:
        if len(data) < offset + 4:
            raise ValueError("RTP packet truncated in its extension header")
        ext_profile, words = _U16X2.unpack_from(data, offset)
        ext_start = offset + 4
        ext_end = ext_start + 4 * words
        if len(data) < ext_end:
            raise ValueError("RTP packet truncated in its header extension")
    payload_end = len(data)
    if b0 & 0x20:
        if payload_end == ext_end:
            raise ValueError("RTP padding bit set on an empty payload")
        pad = data[-1]
        if pad == 0 or pad > payload_end - ext_end:
            raise ValueError("RTP padding length is invalid")
        payload_end -= pad
    return RtpHeader(
        b1 > 127, b1 & 0x7F, seq, ts, ssrc, cc, ext_profile, ext_start, ext_end, payload_end
    )


def parse_extensions(profile: int, body: bytes) -> list[tuple[int, bytes]]:
    """Elements of a one-byte (RFC 8285 §4.2) or two-byte (§4.3) extension block."""
    out: list[tuple[int, bytes]] = []
    i, n = 0, len(body)
    if profile == ONE_BYTE_PROFILE:
        while i < n:
            b = body[i]
            if b == 0:  # padding
                i += 1
                continue
            ext_id, length = b >> 4, (b & 0x0F) + 1
            if ext_id == 15:  # reserved: stop parsing (RFC 8285 §4.2)
                break
            if i + 1 + length > n:
                raise ValueError("one-byte header extension overruns its block")
            out.append((ext_id, bytes(body[i + 1 : i + 1 + length])))
            i += 1 + length
    elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        while i < n:
            ext_id = body[i]
            if ext_id == 0:
                i += 1
                continue
            if i + 2 > n:
                raise ValueError("two-byte header extension truncated")
            length = body[i + 1]
            if i + 2 + length > n:
                raise ValueError("two-byte header extension overruns its block")
            out.append((ext_id, bytes(body[i + 2 : i + 2 + length])))
            i += 2 + length
    return out


def one_byte_element(data: bytes, header: RtpHeader, ext_id: int) -> tuple[int, int] | None:
    """(offset, length) of element ``ext_id``'s value in a one-byte extension block.

    ``None`` when the packet has no one-byte block or no such element (or the block is bad).
    Lets the forwarder overwrite one value in place instead of re-serialising the block.
    """
    if header.ext_profile != ONE_BYTE_PROFILE:
        return None
    i, end = header.ext_start, header.ext_end
    while i < end:
        b = data[i]
        if b == 0:
            i += 1
            continue
        found, length = b >> 4, (b & 0x0F) + 1
        if found == 15 or i + 1 + length > end:
            return None
        if found == ext_id:
            return i + 1, length
        i += 1 + length
    return None


def build_extensions(elements: list[tuple[int, bytes]]) -> bytes:
    """A complete extension block (4-byte header + body, padded to 32 bits), or b"" if none."""
    if not elements:
        return b""
    one_byte = all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in elements)
    body = bytearray()
    if one_byte:
        profile = ONE_BYTE_PROFILE
        for ext_id, value in elements:
            body.append((ext_id << 4) | (len(value) - 1))
            body += value
    else:
        profile = TWO_BYTE_PROFILE
        for ext_id, value in elements:
            if not 1 <= ext_id <= 255 or len(value) > 255:
                raise ValueError("header extension id or value out of range")
            body += bytes((ext_id, len(value)))
            body += value
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", profile, len(body) // 4) + bytes(body)


def rewrite(
    data: bytes,
    header: RtpHeader,
    *,
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    extension_block: bytes | None = None,
    patch: tuple[int, bytes] | None = None,
) -> bytes:
    """Copy of ``data`` with new PT/seq/ts/SSRC; ``extension_block`` replaces the extension.

    ``extension_block=None`` keeps the original extension byte for byte (the fast path);
    ``b""`` removes it. ``patch=(offset, value)`` then overwrites ``len(value)`` bytes at
    ``offset`` of the original (an extension value of the same length, e.g. the mid).
    CSRCs, marker, payload and padding are kept.
    """
    if extension_block is None:
        out = bytearray(data)
        if patch is not None:
            at, value = patch
            out[at : at + len(value)] = value
    else:
        ext_header_start = FIXED_HEADER + 4 * header.csrc_count
        out = bytearray(data[:ext_header_start])
        out += extension_block
        out += data[header.ext_end :]
        if extension_block:
            out[0] |= 0x10
        else:
            out[0] &= ~0x10 & 0xFF
    _HDR.pack_into(
        out,
        0,
        out[0],
        (out[1] & 0x80) | (payload_type & 0x7F),
        sequence_number & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )
    return bytes(out)


def rewrite_fixed(
    data: bytes, payload_type: int, sequence_number: int, timestamp: int, ssrc: int
) -> bytes:
    """:func:`rewrite` for the byte-for-byte path (extension kept): the per-packet case."""
    out = bytearray(data)
    _HDR.pack_into(
        out,
        0,
        out[0],
        (out[1] & 0x80) | (payload_type & 0x7F),
        sequence_number & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )
    return bytes(out)


def wrap_rtx(
    data: bytes, header: RtpHeader, *, payload_type: int, sequence_number: int, ssrc: int
) -> bytes:
    """RFC 4588 retransmission: new PT/seq/SSRC, original seq (OSN) ahead of the payload.

    The header extension is kept; padding is dropped.
    """
    head = bytearray(data[: header.ext_end])
    head[0] &= ~0x20 & 0xFF  # no padding
    head[1] = (head[1] & 0x80) | (payload_type & 0x7F)
    _HDR.pack_into(
        head, 0, head[0], head[1], sequence_number & 0xFFFF, header.timestamp, ssrc & 0xFFFFFFFF
    )
    return (
        bytes(head) + _U16.pack(header.sequence_number) + data[header.ext_end : header.payload_end]
    )


def unwrap_rtx(data: bytes, header: RtpHeader, *, payload_type: int, ssrc: int) -> bytes:
    """Rebuild the original packet from an RTX packet; ValueError when there is no OSN."""
    if header.payload_end - header.ext_end < 2:
        raise ValueError("RTX packet without an original sequence number")
    (osn,) = _U16.unpack_from(data, header.ext_end)
    head = bytearray(data[: header.ext_end])
    head[0] &= ~0x20 & 0xFF
    head[1] = (head[1] & 0x80) | (payload_type & 0x7F)
    _HDR.pack_into(head, 0, head[0], head[1], osn, header.timestamp, ssrc & 0xFFFFFFFF)
    return bytes(head) + data[header.ext_end + 2 : header.payload_end]


def seq_newer(a: int, b: int) -> bool:
    """True if 16-bit sequence number ``a`` comes after ``b`` (RFC 1982 arithmetic)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000
