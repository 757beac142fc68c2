"""One report row's numbers (R2, R10, R12, R13), as a value that adds up across rows."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from oversight.rules import STATUSES
from oversight.stats import nearest_ranks


@dataclass
class Figures:
    """One report row's numbers; they all add up across rows (percentiles via ``waits``)."""

    requests: int = 0
    answered: int = 0
    answered_late: int = 0
    unnecessary: int = 0
    decline_reasons: Counter[str] = field(default_factory=Counter)
    misses: Counter[str] = field(default_factory=Counter)
    rating_sum: float = 0.0
    ratings: int = 0
    offline_seconds: float = 0.0
    waits: Counter[int] = field(default_factory=Counter)  # seconds to answer -> calls

    def add(self, other: Figures) -> None:
        self.requests += other.requests
        self.answered += other.answered
        self.answered_late += other.answered_late
        self.unnecessary += other.unnecessary
        if other.decline_reasons:  # mostly empty: skipping them saves a third of a report
            self.decline_reasons.update(other.decline_reasons)
        if other.misses:
            self.misses.update(other.misses)
        self.rating_sum += other.rating_sum
        self.ratings += other.ratings
        self.offline_seconds += other.offline_seconds
        if other.waits:
            self.waits.update(other.waits)

    def as_dict(self) -> dict[str, Any]:
        p50, p90 = nearest_ranks(self.waits, (50, 90))
        return {
            "requests": self.requests,
            "answered": self.answered,
            "answer_rate": round(self.answered / self.requests, 4) if self.requests else None,
            "answer_p50_s": p50,
            "answer_p90_s": p90,
            "answered_late": self.answered_late,
            "misses": {status: self.misses.get(status, 0) for status in STATUSES},
            "declines": sum(self.decline_reasons.values()),
            "decline_reasons": [
                {"reason": reason, "count": count}
                for reason, count in sorted(
                    self.decline_reasons.items(), key=lambda i: (-i[1], i[0])
                )
            ],
            "unnecessary": self.unnecessary,
            "rating_avg": round(self.rating_sum / self.ratings, 2) if self.ratings else None,
            "ratings": self.ratings,
            "offline_minutes": round(self.offline_seconds / 60, 1),
        }


@contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection while a report builds its figures and rows, for code that does
    not await (so nothing else runs meanwhile). A province report creates some 200,000
    containers that all live until the response is written; CPython's collector would walk
    them, and the whole heap, three times over for nothing (bench/report: 0.3-0.8 s of a
    1-2 s report)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
