"""RTP packets of one track -> whole encoded frames, with their time on the call's clock.

Packets are put back in sequence order within a small window, frames are rebuilt from their
packets, and a frame with a missing packet is dropped; after a video loss everything is dropped
up to the next keyframe, so the archive never holds a frame that decodes into garbage.
A new SSRC on the same track (the browser restarted its encoder) starts a fresh sequence.

Time: each SSRC's RTP clock is tied to the server's arrival clock by the smallest
``arrival - rtp_time`` seen over the whole dump (the least-delayed packet), worked out in a
first pass (:class:`ClockSurvey`). That removes network jitter and aligns tracks of different
participants; clock drift between sender and server (tens of ppm, well under a second an hour)
is not corrected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recorder import depay

NS = 1_000_000_000
REORDER_WINDOW = 256  # packets; the dump is read offline, so this costs memory, not latency


def rtp_ns(ext_ts: int, clock_rate: int) -> int:
    return ext_ts * NS // clock_rate


class ClockSurvey:
    """First pass over one track: how each SSRC's RTP clock maps to arrival time."""

    def __init__(self, clock_rate: int, payload_type: int) -> None:
        self.clock_rate = clock_rate
        self.payload_type = payload_type
        self.offsets: dict[int, int] = {}
        self.min_ts: dict[int, int] = {}
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self._unwrap: dict[int, depay.Unwrapper] = {}

    def add(self, header: depay.RtpHeader, arrival_ns: int) -> None:
        unwrap = self._unwrap.get(header.ssrc)
        if unwrap is None:
            unwrap = self._unwrap[header.ssrc] = depay.Unwrapper(32)
        ext_ts = unwrap(header.timestamp)
        offset = arrival_ns - rtp_ns(ext_ts, self.clock_rate)
        if ext_ts < self.min_ts.get(header.ssrc, ext_ts + 1):
            self.min_ts[header.ssrc] = ext_ts
        best = self.offsets.get(header.ssrc)
        if best is None or offset < best:
            self.offsets[header.ssrc] = offset
        if self.first_ns is None:
            self.first_ns = arrival_ns
        self.last_ns = arrival_ns

    def start_ns(self) -> int | None:
        """Corrected time of the earliest media of this track."""
        starts = [self.offsets[s] + rtp_ns(ts, self.clock_rate) for s, ts in self.min_ts.items()]
        return min(starts, default=None)


@dataclass(slots=True)
class Frame:
    time_ns: int  # on the arrival clock, corrected for jitter
    data: bytes
    keyframe: bool
    duration_ns: int = 0  # known for audio only
    size: tuple[int, int] | None = None  # video keyframes


@dataclass(slots=True)
class TrackStats:
    packets: int = 0
    malformed: int = 0
    foreign: int = 0  # another payload type (RTX, FEC, RED): not recorded
    late: int = 0  # arrived after the window moved past it, or duplicated
    lost: int = 0
    frames: int = 0
    dropped_frames: int = 0
    ssrc_changes: int = 0
    sizes: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class _Pending:
    ts: int
    time_ns: int
    parts: list[bytes]
    ok: bool
    keyframe: bool = False
    size: tuple[int, int] | None = None


class TrackAssembler:
    """Second pass over one track: feed packets in arrival order, get frames in order."""

    def __init__(
        self,
        codec: str,
        clock_rate: int,
        payload_type: int,
        offsets: dict[int, int],
        window: int = REORDER_WINDOW,
    ) -> None:
        self.codec = codec.upper()
        if self.codec not in ("VP8", "H264", "OPUS"):
            raise ValueError(f"unsupported codec {codec}")
        self.clock_rate = clock_rate
        self.payload_type = payload_type
        self.offsets = offsets
        self.window = window
        self.stats = TrackStats()
        self._ssrc: int | None = None
        self._retired: set[int] = set()
        self._ts_unwrap: dict[int, depay.Unwrapper] = {}
        self._seq_unwrap = depay.Unwrapper(16)
        self._buffer: dict[int, tuple[depay.RtpHeader, int]] = {}
        self._next_seq: int | None = None
        self._pending: _Pending | None = None
        self._need_keyframe = True
        self._out: list[Frame] = []

    def push(self, packet: bytes) -> list[Frame]:
        """One packet in arrival order; returns the frames it completed."""
        header = depay.parse_rtp(packet)
        if header is None:
            self.stats.malformed += 1
            return []
        if header.payload_type != self.payload_type:
            self.stats.foreign += 1
            return []
        self.stats.packets += 1
        # Timestamps are unwrapped in arrival order, as ClockSurvey did, so offsets match.
        unwrap = self._ts_unwrap.get(header.ssrc)
        if unwrap is None:
            unwrap = self._ts_unwrap[header.ssrc] = depay.Unwrapper(32)
        ext_ts = unwrap(header.timestamp)
        if header.ssrc != self._ssrc:
            if header.ssrc in self._retired:
                self.stats.late += 1
                return []
            if self._ssrc is not None:
                self.stats.ssrc_changes += 1
                self._drain(everything=True)
                self._retired.add(self._ssrc)
            self._ssrc = header.ssrc
            self._seq_unwrap = depay.Unwrapper(16)
            self._next_seq = None
        seq = self._seq_unwrap(header.sequence)
        if self._next_seq is None:
            self._next_seq = seq
        if seq < self._next_seq or seq in self._buffer:
            self.stats.late += 1
        else:
            self._buffer[seq] = (header, ext_ts)
            self._drain(everything=False)
        return self._take()

    def flush(self) -> list[Frame]:
        """End of the dump: release what the window still holds; incomplete frames drop."""
        self._drain(everything=True)
        return self._take()

    def _take(self) -> list[Frame]:
        out, self._out = self._out, []
        return out

    def _drain(self, everything: bool) -> None:
        buffer = self._buffer
        while buffer:
            assert self._next_seq is not None
            item = buffer.pop(self._next_seq, None)
            if item is not None:
                self._next_seq += 1
                self._packet(*item)
                continue
            if not everything and len(buffer) <= self.window:
                return
            missing_to = min(buffer)
            self.stats.lost += missing_to - self._next_seq
            self._next_seq = missing_to
            self._gap()
        if everything:
            self._close_pending()

    # --- frame assembly, packets in sequence order ---

    def _gap(self) -> None:
        if self._pending is not None:
            self._pending.ok = False
        if self.codec != "OPUS":
            self._need_keyframe = True

    def _close_pending(self) -> None:
        if self._pending is not None:  # never saw its marker bit: incomplete
            self.stats.dropped_frames += 1
            self._pending = None
            self._need_keyframe = True

    def _packet(self, header: depay.RtpHeader, ext_ts: int) -> None:
        assert self._ssrc is not None
        time_ns = self.offsets.get(self._ssrc, 0) + rtp_ns(ext_ts, self.clock_rate)
        payload = header.payload
        if not payload:
            return  # padding only (bandwidth probe)
        if self.codec == "OPUS":
            samples = depay.opus_duration_samples(payload)
            self._emit(Frame(time_ns, payload, True, samples * NS // 48000))
            return
        if self.codec == "VP8":
            parsed = depay.vp8_payload(payload)
            if parsed is None:
                self.stats.malformed += 1
                self._gap()
                return
            start, data = parsed
        else:
            h = depay.h264_payload(payload)
            if h is None:
                self.stats.malformed += 1
                self._gap()
                return
            start, data, nals = h
        pending = self._pending
        if pending is not None and pending.ts != ext_ts:
            self._close_pending()
            pending = None
        if pending is None:
            # A VP8 frame must begin with the first partition's start; H.264 with a whole NAL
            # or a first fragment. Anything else means its first packet was lost.
            pending = self._pending = _Pending(ext_ts, time_ns, [], ok=start)
            if self.codec == "VP8" and start:
                pending.size = depay.vp8_keyframe_size(data)
                pending.keyframe = pending.size is not None
        if self.codec == "H264":
            self._h264_inspect(pending, payload, nals)
        pending.parts.append(data)
        if header.marker:
            self._pending = None
            if pending.ok:
                self._emit(
                    Frame(
                        pending.time_ns, b"".join(pending.parts), pending.keyframe, 0, pending.size
                    )
                )
            else:
                self.stats.dropped_frames += 1
                self._need_keyframe = True

    def _h264_inspect(self, pending: _Pending, payload: bytes, nals: list[bytes]) -> None:
        if depay.h264_fu_type(payload) == depay.H264_NAL_IDR:
            pending.keyframe = True
        for nal in nals:
            kind = nal[0] & 0x1F
            if kind == depay.H264_NAL_IDR:
                pending.keyframe = True
            elif kind == depay.H264_NAL_SPS and pending.size is None:
                pending.size = depay.h264_sps_size(nal)

    def _emit(self, frame: Frame) -> None:
        if self._need_keyframe:
            if not frame.keyframe:
                self.stats.dropped_frames += 1
                return
            self._need_keyframe = False
        if frame.size is not None and (not self.stats.sizes or self.stats.sizes[-1] != frame.size):
            self.stats.sizes.append(frame.size)
        self.stats.frames += 1
        self._out.append(frame)
