"""Backoff between SMS attempts: exponential, jittered, capped; long after the number limit."""

from __future__ import annotations

import random
from datetime import timedelta

from sms.retry import RetryPolicy

POLICY = RetryPolicy()


def test_the_pause_doubles_from_30_seconds_with_jitter_between_half_and_all() -> None:
    rng = random.Random(7)
    for attempts, step in [(1, 30), (2, 60), (3, 120), (4, 240)]:
        for _ in range(50):
            pause = POLICY.delay(attempts, rng=rng)
            assert timedelta(seconds=step / 2) <= pause <= timedelta(seconds=step)


def test_the_pause_is_capped_at_30_minutes_even_after_many_attempts() -> None:
    rng = random.Random(1)
    pauses = [POLICY.delay(n, rng=rng) for n in (11, 12, 50, 10_000)]
    assert all(timedelta(minutes=15) <= p <= timedelta(minutes=30) for p in pauses)


def test_jitter_spreads_entries_that_failed_together() -> None:
    rng = random.Random(3)
    assert len({POLICY.delay(1, rng=rng) for _ in range(20)}) > 10


def test_the_number_limit_waits_long() -> None:
    rng = random.Random(5)
    first = POLICY.delay(1, limited=True, rng=rng)
    assert timedelta(minutes=5) <= first <= timedelta(minutes=10)
    assert POLICY.delay(20, limited=True, rng=rng) <= timedelta(hours=2)


def test_a_maybe_sent_attempt_waits_at_least_for_its_receipt() -> None:
    rng = random.Random(2)
    assert POLICY.delay(1, maybe_sent=True, rng=rng) >= POLICY.receipt_wait


def test_gives_up_after_max_attempts() -> None:
    assert not POLICY.gives_up(POLICY.max_attempts - 1)
    assert POLICY.gives_up(POLICY.max_attempts)
