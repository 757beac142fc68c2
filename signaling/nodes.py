"""Which nodes of a cluster are alive, and what happens to the calls of one that is not.

Each node keeps a key in Redis that expires unless renewed. A call's media lives on one node;
when that node's key has expired, any other node ends its answered calls with
``media_failure`` (the compare-and-set on the call's state lets exactly one node do it), so
the people in them are told instead of staring at frozen video.

A node that dies also leaves its users' presence intervals open (the monthly report would
count them online). Once a minute one node (a Redis lock) looks for open intervals whose
account has no live socket on any node, and closes those it found so at the look before too.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime

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
# the open intervals the last look found unvouched for, and when: {"at": iso, "ids": [...]}
SUSPECTS = "tongban:presence-sweep:suspects"


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
        """Close the open presence intervals of accounts that no node vouched for at this
        look nor at the one before (``presence_every`` apart, whichever node made it);
        returns how many. They end at the earlier look, when they were first seen so.

        One look is not enough: a socket's disconnect takes it out of Redis before its
        handler closes the interval, so when thousands of sockets left at once, one look
        closed 3,312 intervals whose disconnects were still being handled (bench/signaling
        ``--nodes 2``) and blamed a dead node for them."""
        now = self._clock.now()
        async with self._db.connect() as conn:
            rows = list(
                await conn.execute(
                    sa.select(s.presence_intervals.c.id, s.presence_intervals.c.account_id).where(
                        s.presence_intervals.c.ended_at.is_(None)
                    )
                )
            )
        stale: set[int] = set()
        if rows:
            chosen = await self._presence.chosen({row.account_id for row in rows})
            # by row id: an account that connects meanwhile opens a new row, which stays open
            stale = {row.id for row in rows if chosen.get(row.account_id) == OFFLINE}
        raw = await self._redis.get(SUSPECTS)
        before = json.loads(raw) if raw else {"at": None, "ids": []}
        confirmed = sorted(stale.intersection(before["ids"]))
        await self._redis.set(
            SUSPECTS,
            json.dumps({"at": now.isoformat(), "ids": sorted(stale.difference(confirmed))}),
            px=int(self.presence_every * 3000),
        )
        if not confirmed:
            return 0
        first_seen = datetime.fromisoformat(before["at"])
        async with self._db.begin() as conn:
            result = await conn.execute(
                sa.update(s.presence_intervals)
                .where(
                    s.presence_intervals.c.id.in_(confirmed),
                    s.presence_intervals.c.ended_at.is_(None),
                )
                .values(ended_at=first_seen)
            )
        closed = int(result.rowcount or 0)
        if closed:
            log.warning(
                "closed %d presence interval(s) at %s: no node has vouched for their accounts "
                "since (a node that died, or a disconnect never written)",
                closed,
                first_seen.isoformat(),
            )
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
