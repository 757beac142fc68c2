"""A job a node runs in the background: shortly after start, then at a fixed interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``job()`` after ``first_after`` seconds, then every ``every`` seconds; a failed
    run (database away) is logged and waits for the next one."""

    def __init__(
        self,
        job: Callable[[], Awaitable[Any]],
        *,
        name: str,
        first_after: float,
        every: float,
    ) -> None:
        self._job = job
        self.name = name
        self._first_after = first_after
        self._every = every
        self._tasks: set[asyncio.Task[Any]] = set()
        self.runs = 0

    def start(self) -> None:
        if self._tasks:
            return
        task = asyncio.create_task(self._loop(), name=self.name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_now(self) -> Any:
        return await self._job()

    async def _loop(self) -> None:
        delay = self._first_after
        while True:
            await asyncio.sleep(delay)
            delay = self._every
            try:
                await self._job()
            except Exception:
                log.exception("%s failed", self.name)
            self.runs += 1

    async def close(self) -> None:
        """Cancel and wait; idempotent."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
