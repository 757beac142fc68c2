"""Pacing of feedback sent to a source: keyframe requests, NACK de-duplication, REMB.

Pure: every method takes ``now`` (seconds, monotonic) as an argument.
"""

from __future__ import annotations

from collections import OrderedDict

PLI_INTERVAL = 0.5
NACK_REPEAT_INTERVAL = 0.1
REMB_MAX_AGE = 5.0


class RateLimiter:
    """At most one event per ``interval``; the first is always allowed."""

    __slots__ = ("_interval", "_last")

    def __init__(self, interval: float = PLI_INTERVAL) -> None:
        self._interval = interval
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True


class NackDeduper:
    """Several receivers NACK the same lost packet; ask the source once per interval."""

    def __init__(self, capacity: int = 512, interval: float = NACK_REPEAT_INTERVAL) -> None:
        self._capacity = capacity
        self._interval = interval
        self._asked: OrderedDict[int, float] = OrderedDict()

    def filter(self, seqs: list[int], now: float) -> list[int]:
        out = []
        for seq in seqs:
            last = self._asked.get(seq)
            if last is not None and now - last < self._interval:
                continue
            self._asked[seq] = now
            self._asked.move_to_end(seq)
            out.append(seq)
        while len(self._asked) > self._capacity:
            self._asked.popitem(last=False)
        return out


class RembAggregator:
    """The bitrate a source may send is the lowest any of its receivers reports."""

    def __init__(self, max_age: float = REMB_MAX_AGE) -> None:
        self._max_age = max_age
        self._latest: dict[str, tuple[int, float]] = {}

    def update(self, receiver: str, bitrate: int, now: float) -> int:
        self._latest[receiver] = (bitrate, now)
        for key in [k for k, (_, t) in self._latest.items() if now - t > self._max_age]:
            del self._latest[key]
        return min(b for b, _ in self._latest.values())

    def forget(self, receiver: str) -> None:
        self._latest.pop(receiver, None)
