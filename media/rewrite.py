"""Per receiving-leg RTP stream state: sequence numbers and timestamps made continuous.

One :class:`StreamRewriter` per outgoing stream (one sender of one leg). The source feeding
it may change (a participant re-offers with a new SSRC, or a slot is given to another
participant); the receiver must still see one gapless stream, so each change of source opens
a new epoch whose offsets continue from the highest sequence number and timestamp sent.
"""

from __future__ import annotations

from collections import deque

from media.rtp_wire import seq_newer

_RETIRED_SOURCES = 8


class StreamRewriter:
    def __init__(self, clock_rate: int, *, first_seq: int, first_ts: int) -> None:
        self.clock_rate = clock_rate
        self.source_ssrc: int | None = None
        self._first_seq = first_seq & 0xFFFF
        self._first_ts = first_ts & 0xFFFFFFFF
        self._seq_offset = 0
        self._ts_offset = 0
        self._max_seq: int | None = None  # highest sequence number sent, 16-bit
        self._max_ts = 0
        self._max_time = 0.0
        self._floor_seq = 0  # first sequence number of the current epoch
        self._floor_ext = 0  # the same, extended (counting wraps since the first packet)
        self._src_first_seq = 0
        self._cycles = 0
        self._retired: deque[int] = deque(maxlen=_RETIRED_SOURCES)

    def map(self, ssrc: int, seq: int, ts: int, now: float) -> tuple[int, int] | None:
        """Output (seq, ts) for a source packet, or None when it must be dropped.

        Dropped: packets of a source that was replaced, and packets older than the start of
        the current epoch (they would collide with numbers already used).
        """
        if ssrc != self.source_ssrc:
            if ssrc in self._retired:
                return None
            self._start_epoch(ssrc, seq, ts, now)
        out_seq = (seq + self._seq_offset) & 0xFFFF
        if out_seq != self._floor_seq and not seq_newer(out_seq, self._floor_seq):
            return None
        out_ts = (ts + self._ts_offset) & 0xFFFFFFFF
        if self._max_seq is None or seq_newer(out_seq, self._max_seq):
            if self._max_seq is not None and out_seq < self._max_seq:
                self._cycles += 1
            self._max_seq = out_seq
            self._max_ts = out_ts
            self._max_time = now
        return out_seq, out_ts

    def _start_epoch(self, ssrc: int, seq: int, ts: int, now: float) -> None:
        if self.source_ssrc is not None:
            self._retired.append(self.source_ssrc)
        self.source_ssrc = ssrc
        if self._max_seq is None:
            start_seq, start_ts = self._first_seq, self._first_ts
        else:
            start_seq = (self._max_seq + 1) & 0xFFFF
            gap = max(1, int((now - self._max_time) * self.clock_rate))
            start_ts = (self._max_ts + gap) & 0xFFFFFFFF
        self._seq_offset = (start_seq - seq) & 0xFFFF
        self._ts_offset = (start_ts - ts) & 0xFFFFFFFF
        self._floor_seq = start_seq
        wraps = self._cycles + (1 if self._max_seq is not None and start_seq == 0 else 0)
        self._floor_ext = (wraps << 16) | start_seq
        self._src_first_seq = seq
        self._max_seq = (start_seq - 1) & 0xFFFF if self._max_seq is not None else None

    @property
    def highest_seq(self) -> int | None:
        return self._max_seq

    def out_timestamp(self, ssrc: int, ts: int) -> int | None:
        """Translate a source RTP timestamp (e.g. from a sender report) into this stream."""
        if ssrc != self.source_ssrc:
            return None
        return (ts + self._ts_offset) & 0xFFFFFFFF

    def source_seq(self, out_seq: int) -> int | None:
        """The source sequence number behind an output one (for NACKs), if in this epoch."""
        if self.source_ssrc is None:
            return None
        if out_seq != self._floor_seq and not seq_newer(out_seq, self._floor_seq):
            return None
        if self._max_seq is not None and seq_newer(out_seq, self._max_seq):
            return None
        return (out_seq - self._seq_offset) & 0xFFFF

    def source_extended_seq(self, out_ext: int) -> int:
        """Translate a receiver report's extended highest sequence number to the source."""
        return (out_ext - self._floor_ext + self._src_first_seq) & 0xFFFFFFFF
