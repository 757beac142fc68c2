"""Fires durable ring deadlines (overdue, ring limit, reconnect grace).

Deadlines live in the database, so they survive a restart and fire once: the service marks a
deadline fired in the same transaction as its effect. Any node may fire any deadline; the
conditional update decides which one does.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from signaling.service import CallService
from tongban.clock import Clock

log = logging.getLogger(__name__)


class DeadlineScheduler:
    def __init__(self, service: CallService, clock: Clock, *, max_sleep: float = 1.0) -> None:
        self._service = service
        self._clock = clock
        self._max_sleep = max_sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # when the loop looks next, while it sleeps (None while it runs)
        self._next_look: datetime | None = None

    def wake(self, due_at: datetime | None = None) -> None:
        """A deadline was added: look now only if it falls before the next look anyway
        (every call request adds two, 60 s and 300 s away: waking for them cost two
        queries per request)."""
        nxt = self._next_look
        if due_at is None or nxt is None or due_at < nxt or self._clock.now() >= nxt:
            self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="deadline-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run_due(self) -> int:
        """Fire every deadline that is due now; returns how many were looked at."""
        due = await self._service.due_deadlines(self._clock.now())
        for deadline_id, call_id, kind in due:
            try:
                await self._service.fire(deadline_id, call_id, kind)
            except Exception:
                log.exception("deadline %s failed; it will be retried", deadline_id)
        return len(due)

    async def _run(self) -> None:
        while True:
            self._next_look = None
            try:
                await self.run_due()
                nxt = await self._service.next_deadline()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deadline scheduler: database unavailable, retrying")
                nxt = None
            delay = self._max_sleep
            if nxt is not None:
                delay = max(0.0, min(delay, (nxt - self._clock.now()).total_seconds()))
            self._next_look = self._clock.now() + timedelta(seconds=delay)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass
