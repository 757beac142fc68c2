"""R7: the server's retention sweep runs soon after start, survives a failed sweep, and is
cancelled and drained on shutdown."""

from __future__ import annotations

import asyncio

from recorder.sweeper import RetentionSweeper


async def test_first_sweep_soon_then_again_after_a_failure() -> None:
    calls: list[int] = []
    second = asyncio.Event()

    async def sweep() -> int:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("database away")
        second.set()
        return 0

    sweeper = RetentionSweeper(sweep, first_after=0, every=0)
    sweeper.start()
    sweeper.start()  # idempotent: still one loop
    await asyncio.wait_for(second.wait(), 5)
    await sweeper.close()
    await sweeper.close()
    assert calls[:2] == [0, 1]


async def test_close_cancels_a_waiting_sweeper() -> None:
    async def sweep() -> int:
        raise AssertionError("must not run before its delay")

    sweeper = RetentionSweeper(sweep, first_after=3600)
    sweeper.start()
    await asyncio.wait_for(sweeper.close(), 5)
    assert sweeper.runs == 0
