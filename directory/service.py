"""Holds the current directory snapshot and rebuilds it after a change."""

from __future__ import annotations

import asyncio
import logging

from directory.snapshot import DirectorySnapshot
from directory.store import load_snapshot
from storage.database import Database
from tongban.clock import Clock

log = logging.getLogger(__name__)


class DirectoryService:
    def __init__(self, db: Database, clock: Clock, *, calendar_fallback: str) -> None:
        self._db = db
        self._clock = clock
        self._fallback = calendar_fallback
        self._snapshot: DirectorySnapshot | None = None
        self._lock = asyncio.Lock()

    async def reload(self) -> DirectorySnapshot:
        async with self._lock:
            async with self._db.connect() as conn:
                self._snapshot = await load_snapshot(conn, calendar_fallback=self._fallback)
        for warning in self._snapshot.calendar.warnings(self._clock.now().date()):
            log.warning("calendar: %s", warning)
        return self._snapshot

    async def snapshot(self) -> DirectorySnapshot:
        if self._snapshot is None:
            return await self.reload()
        return self._snapshot
