"""The directory snapshot of a cluster node, kept current with the other nodes.

Every node keeps the directory (agencies, windows, accounts, office hours, absences) in
memory. A change made through one node (an account created, a window's hours edited, an
absence registered) reloads that node's snapshot and is announced on a Redis channel; the
other nodes reload theirs at once. A node that missed an announcement (Redis restarting)
still reloads every minute.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis

from directory.service import DirectoryService
from directory.snapshot import DirectorySnapshot
from storage.database import Database
from tongban.clock import Clock

log = logging.getLogger(__name__)

CHANNEL = "tongban:directory"


class ClusterDirectory(DirectoryService):
    every = 60.0  # seconds between reloads without an announcement

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        calendar_fallback: str,
        redis_url: str,
        node_id: str,
    ) -> None:
        super().__init__(db, clock, calendar_fallback=calendar_fallback)
        self._redis = aioredis.from_url(redis_url)
        self._node = node_id
        self._task: asyncio.Task[None] | None = None
        self.reloads_announced = 0  # reloads caused by another node's change

    async def reload(self) -> DirectorySnapshot:
        """Reload from the database and tell the other nodes to do the same."""
        snap = await super().reload()
        try:
            await self._redis.publish(CHANNEL, self._node)
        except Exception:
            log.warning(
                "could not announce a directory change; other nodes reload within a minute",
                exc_info=True,
            )
        return snap

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="directory-sync")

    async def _listen(self) -> None:
        while True:
            pubsub: Any = self._redis.pubsub()  # redis-py's PubSub is not fully typed
            try:
                await pubsub.subscribe(CHANNEL)
                await super().reload()  # whatever changed while not listening
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self.every
                    )
                    if message is not None:
                        sender = message["data"]
                        if isinstance(sender, bytes):
                            sender = sender.decode()
                        if sender == self._node:
                            continue
                        self.reloads_announced += 1
                    await super().reload()
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception:
                log.warning("directory sync lost Redis; listening again", exc_info=True)
                await pubsub.aclose()
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._redis.aclose()
