"""The server's daily retention sweep: shortly after start, then every 24 hours.

Every node runs one; the purge claims each recording with a conditional UPDATE, so nodes
sweeping at the same time neither double-delete nor double-audit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

FIRST_SWEEP_AFTER_S = 60.0
SWEEP_EVERY_S = 24 * 3600.0


class RetentionSweeper:
    """Runs ``sweep()`` after ``first_after`` seconds, then every ``every`` seconds."""

    def __init__(
        self,
        sweep: Callable[[], Awaitable[int]],
        *,
        first_after: float = FIRST_SWEEP_AFTER_S,
        every: float = SWEEP_EVERY_S,
    ) -> None:
        self._sweep = sweep
        self._first_after = first_after
        self._every = every
        self._tasks: set[asyncio.Task[Any]] = set()
        self.runs = 0

    def start(self) -> None:
        if self._tasks:
            return
        task = asyncio.create_task(self._loop(), name="retention-sweep")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _loop(self) -> None:
        delay = self._first_after
        while True:
            await asyncio.sleep(delay)
            delay = self._every
            try:
                await self._sweep()
            except Exception:  # a failed sweep (database away) waits for the next one
                log.exception("retention sweep failed")
            self.runs += 1

    async def close(self) -> None:
        """Cancel and wait; idempotent."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
