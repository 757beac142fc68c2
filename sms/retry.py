"""When to try an SMS again: exponential backoff with jitter, capped. Pure.

Jitter spreads the retries of many entries (and many nodes) that failed together during one
outage, so that the provider is not hit by all of them at the same instant when it returns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """``first`` doubles per attempt up to ``cap``. ``limited`` is the pause after Aliyun's
    per-number frequency limit (``isv.BUSINESS_LIMIT_CONTROL``), doubling up to ``limited_cap``:
    sending sooner would only hit the limit again. ``receipt_wait`` is the least pause after an
    attempt that may have reached Aliyun (a read timeout), so that its delivery receipt can
    arrive before the message is sent again. After ``max_attempts`` the entry fails for good."""

    first: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(minutes=30)
    limited: timedelta = timedelta(minutes=10)
    limited_cap: timedelta = timedelta(hours=2)
    receipt_wait: timedelta = timedelta(seconds=60)
    max_attempts: int = 20

    def delay(
        self,
        attempts: int,
        *,
        limited: bool = False,
        maybe_sent: bool = False,
        rng: random.Random | None = None,
    ) -> timedelta:
        """The pause after the ``attempts``-th failed attempt (1 for the first failure):
        between half and all of the exponential step ("equal jitter")."""
        base, cap = (self.limited, self.limited_cap) if limited else (self.first, self.cap)
        exponent = min(max(attempts, 1) - 1, 30)
        step = min(cap, base * (2**exponent))
        fraction = (rng or random).uniform(0.5, 1.0)
        pause: timedelta = step * fraction
        if maybe_sent:
            pause = max(pause, self.receipt_wait)
        return pause

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
