"""Pure RTP wire-format code the remuxer needs: headers, VP8 / H.264 payloads, Opus TOC.

Written here rather than borrowed from aiortc's private depayloaders because the remuxer needs
more than they return (frame start flags, keyframe sizes, SPS dimensions), and because this is
the only code that must stay correct for archives kept six months: no dependency on private
parts of a library that moves.
"""

from __future__ import annotations

from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"

H264_NAL_IDR = 5
H264_NAL_SPS = 7
H264_NAL_PPS = 8
H264_STAP_A = 24
H264_FU_A = 28


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The fields of an RTP packet the remuxer looks at; ``payload`` has padding removed."""

    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpHeader | None:
    """Parse an RTP packet (RFC 3550); ``None`` if malformed, never an exception."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    padding = data[0] & 0x20
    extension = data[0] & 0x10
    pos = 12 + 4 * (data[0] & 0x0F)
    if extension:
        if len(data) < pos + 4:
            return None
        pos += 4 + 4 * int.from_bytes(data[pos + 2 : pos + 4], "big")
    end = len(data)
    if padding:
        pad = data[-1]
        if pad == 0 or end - pad < pos:
            return None
        end -= pad
    if end < pos:
        return None
    return RtpHeader(
        payload_type=data[1] & 0x7F,
        marker=bool(data[1] & 0x80),
        sequence=int.from_bytes(data[2:4], "big"),
        timestamp=int.from_bytes(data[4:8], "big"),
        ssrc=int.from_bytes(data[8:12], "big"),
        payload=data[pos:end],
    )


class Unwrapper:
    """Extends a wrapping counter (16-bit sequence, 32-bit timestamp) to a monotonic int.

    Each value is placed nearest to the previous one, so reordering and wrap both work.
    """

    __slots__ = ("_bits", "_half", "_last", "_mask")

    def __init__(self, bits: int) -> None:
        self._bits = bits
        self._mask = (1 << bits) - 1
        self._half = 1 << (bits - 1)
        self._last: int | None = None

    def __call__(self, value: int) -> int:
        last = self._last
        if last is None:
            self._last = value
            return value
        delta = (value - last) & self._mask
        if delta >= self._half:
            delta -= 1 << self._bits
        ext = last + delta
        self._last = ext
        return ext


# --- VP8 (RFC 7741) ----------------------------------------------------------------------


def vp8_payload(payload: bytes) -> tuple[bool, bytes] | None:
    """(starts a frame, VP8 data) from an RTP payload; ``None`` if the descriptor is bad."""
    if not payload:
        return None
    b0 = payload[0]
    pos = 1
    if b0 & 0x80:  # X: extended control bits
        if len(payload) < 2:
            return None
        x = payload[1]
        pos = 2
        if x & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) < pos + 1:
                return None
            pos += 2 if payload[pos] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            pos += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX byte
            pos += 1
    if len(payload) < pos:
        return None
    start = bool(b0 & 0x10) and (b0 & 0x0F) == 0
    return start, payload[pos:]


def vp8_keyframe_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height if ``frame`` is a VP8 keyframe (RFC 6386 9.1), else ``None``."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height


# --- H.264 (RFC 6184) -------------------------------------------------------------------


def h264_payload(payload: bytes) -> tuple[bool, bytes, list[bytes]] | None:
    """(starts NAL unit(s), Annex B bytes, complete NAL units in this packet).

    A middle or last FU-A fragment returns its bytes without a start code; the list of
    complete NALs lets the caller see SPS/PPS/IDR without reassembling.
    """
    if len(payload) < 2:
        return None
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:
        return True, START_CODE + payload, [payload]
    if nal_type == H264_STAP_A:
        pos = 1
        nals: list[bytes] = []
        while pos + 2 <= len(payload):
            size = int.from_bytes(payload[pos : pos + 2], "big")
            pos += 2
            if size == 0 or pos + size > len(payload):
                return None
            nals.append(payload[pos : pos + size])
            pos += size
        if not nals:
            return None
        return True, b"".join(START_CODE + n for n in nals), nals
    if nal_type == H264_FU_A:
        fu = payload[1]
        if fu & 0x80:  # start of a fragmented NAL: rebuild its header
            header = bytes(((payload[0] & 0xE0) | (fu & 0x1F),))
            return True, START_CODE + header + payload[2:], []
        return False, payload[2:], []
    return None  # STAP-B, MTAP, FU-B: not used by browsers in packetization-mode 1


def h264_fu_type(payload: bytes) -> int | None:
    """The original NAL type of a FU-A fragment, for keyframe detection."""
    if len(payload) >= 2 and payload[0] & 0x1F == H264_FU_A:
        return payload[1] & 0x1F
    return None


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (start codes of 3 or 4 bytes)."""
    out: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        end = len(data) if j < 0 else j
        nal = data[start:end]
        if j >= 0 and nal.endswith(b"\x00"):
            nal = nal[:-1]  # the leading zero of a 4-byte start code
        if nal:
            out.append(nal)
        i = j
    return out


class _Bits:
    def __init__(self, rbsp: bytes) -> None:
        self.data = rbsp
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]  # IndexError on truncation, caught by the caller
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _unescape(nal: bytes) -> bytes:
    """Drop emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_sps_size(sps: bytes) -> tuple[int, int] | None:
    """Width and height from an SPS NAL unit (ITU-T H.264 7.3.2.1), ``None`` if unreadable."""
    if not sps or sps[0] & 0x1F != H264_NAL_SPS:
        return None
    try:
        b = _Bits(_unescape(sps[1:]))
        profile_idc = b.u(8)
        b.u(16)  # constraint flags, level
        b.ue()  # seq_parameter_set_id
        chroma_format_idc = 1
        if profile_idc in _HIGH_PROFILES:
            chroma_format_idc = b.ue()
            if chroma_format_idc == 3:
                b.u(1)
            b.ue()
            b.ue()
            b.u(1)
            if b.u(1):  # seq_scaling_matrix_present_flag
                for i in range(8 if chroma_format_idc != 3 else 12):
                    if b.u(1):
                        last = nxt = 8
                        for _ in range(16 if i < 6 else 64):
                            if nxt:
                                nxt = (last + b.se() + 256) % 256
                            last = nxt or last
        b.ue()  # log2_max_frame_num_minus4
        poc_type = b.ue()
        if poc_type == 0:
            b.ue()
        elif poc_type == 1:
            b.u(1)
            b.se()
            b.se()
            for _ in range(b.ue()):
                b.se()
        b.ue()  # max_num_ref_frames
        b.u(1)
        width_mbs = b.ue() + 1
        height_map_units = b.ue() + 1
        frame_mbs_only = b.u(1)
        if not frame_mbs_only:
            b.u(1)
        b.u(1)  # direct_8x8_inference_flag
        width = width_mbs * 16
        height = (2 - frame_mbs_only) * height_map_units * 16
        if b.u(1):  # frame_cropping_flag
            left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
            sub_w, sub_h = {1: (2, 2), 2: (2, 1)}.get(chroma_format_idc, (1, 1))
            width -= (left + right) * sub_w
            height -= (top + bottom) * sub_h * (2 - frame_mbs_only)
    except (IndexError, ValueError):
        return None
    if width <= 0 or height <= 0:
        return None
    return width, height


# --- Opus (RFC 6716 3.1) ----------------------------------------------------------------


def opus_duration_samples(packet: bytes, rate: int = 48000) -> int:
    """Samples (at ``rate``) an Opus packet holds, from its TOC byte; 0 if unreadable."""
    if not packet:
        return 0
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        tenth_ms = (100, 200, 400, 600)[config % 4]
    elif config < 16:
        tenth_ms = (100, 200)[config % 2]
    else:
        tenth_ms = (25, 50, 100, 200)[config % 4]
    code = toc & 0x03
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(packet) < 2:
            return 0
        count = packet[1] & 0x3F
    return count * tenth_ms * rate // 10000
