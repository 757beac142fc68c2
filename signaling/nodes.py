"""Which nodes of a cluster are alive, and what happens to the calls of one that is not.

Each node keeps a key in Redis that expires unless renewed. A call's media lives on one node;
when that node's key has expired, any other node ends its answered calls with
``media_failure`` (the compare-and-set on the call's state lets exactly one node do it), so
the people in them are told instead of staring at frozen video.

A node that dies also leaves its users' presence intervals open (the monthly report would
count them online). Once a minute one node (a Redis lock) closes every open interval whose
account has no live socket on any node.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
import sqlalchemy as sa

from signaling import callstate as cs
from signaling.presence import OFFLINE
from signaling.presence_redis import RedisPresence
from signaling.service import CallService
from storage import schema as s
from storage.database import Database
from tongban.clock import Clock, SystemClock
from tongban.periodic import Periodic

log = logging.getLogger(__name__)

KEY = "tongban:node:"
PRESENCE_LOCK = "tongban:presence-sweep"


class NodeWatch:
    ttl = 30.0  # seconds a node is believed alive after its last beat
    every = 10.0  # seconds between beats and sweeps
    presence_every = 60.0  # seconds between closings of stale presence intervals

    def __init__(
        self,
        client: aioredis.Redis,
        node_id: str,
        db: Database,
        calls: CallService,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._redis = client
        self._node = node_id
        self._db = db
        self._calls = calls
        self._clock = clock or SystemClock()
        self._presence = RedisPresence(client, node_id)  # read only: who has a live socket
        self._periodic: Periodic | None = None
        self._presence_checked = 0.0

    async def beat(self) -> None:
        await self._redis.set(KEY + self._node, str(time.time()), px=int(self.ttl * 1000))

    async def sweep(self) -> int:
        """End answered calls whose media node is gone; returns how many this node ended."""
        async with self._db.connect() as conn:
            rows = list(
                await conn.execute(
                    sa.select(s.calls.c.id, s.calls.c.media_node).where(
                        s.calls.c.state == cs.ANSWERED,
                        s.calls.c.media_node.is_not(None),
                        s.calls.c.media_node != self._node,
                    )
                )
            )
        ended = 0
        alive: dict[str, bool] = {}
        for call_id, node in rows:
            if node not in alive:
                alive[node] = bool(await self._redis.exists(KEY + node))
            if not alive[node]:
                log.warning("node %s is gone: ending call %s (media_failure)", node, call_id)
                ended += await self._calls.end_for(call_id, "media_failure")
        return ended

    async def close_stale_presence(self) -> int:
        """Close open presence intervals of accounts no node vouches for; returns how many."""
        async with self._db.connect() as conn:
            rows = list(
                await conn.execute(
                    sa.select(s.presence_intervals.c.id, s.presence_intervals.c.account_id).where(
                        s.presence_intervals.c.ended_at.is_(None)
                    )
                )
            )
        if not rows:
            return 0
        chosen = await self._presence.chosen({row.account_id for row in rows})
        # by row id: an account that connects meanwhile opens a new row, which stays open
        stale = [row.id for row in rows if chosen.get(row.account_id) == OFFLINE]
        if not stale:
            return 0
        async with self._db.begin() as conn:
            result = await conn.execute(
                sa.update(s.presence_intervals)
                .where(
                    s.presence_intervals.c.id.in_(stale), s.presence_intervals.c.ended_at.is_(None)
                )
                .values(ended_at=self._clock.now())
            )
        closed = int(result.rowcount or 0)
        if closed:
            log.warning("closed %d presence interval(s) left open by a node that is gone", closed)
        return closed

    async def _maybe_close_stale_presence(self) -> None:
        if time.monotonic() - self._presence_checked < self.presence_every:
            return
        self._presence_checked = time.monotonic()
        # one node at a time does it
        if await self._redis.set(
            PRESENCE_LOCK, self._node, nx=True, px=int(self.presence_every * 900)
        ):
            await self.close_stale_presence()

    def start(self) -> None:
        if self._periodic is None:  # ``every`` read now: tests shorten it
            self._periodic = Periodic(
                self._round, name="node watch", first_after=0.0, every=self.every
            )
            self._periodic.start()

    async def _round(self) -> None:
        await self.beat()
        await self.sweep()
        await self._maybe_close_stale_presence()

    async def stop(self) -> None:
        """A node that stops takes its calls' media with it: say so at once."""
        if self._periodic is not None:
            await self._periodic.close()
            self._periodic = None
        try:
            await self._redis.delete(KEY + self._node)
        except Exception:
            log.warning("could not clear this node's heartbeat", exc_info=True)
