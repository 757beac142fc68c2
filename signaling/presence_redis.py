"""Presence shared by the nodes of a cluster, in Redis.

Each socket is a field of the account's hash whose value is the time until which its node
vouches for it; nodes refresh their own fields every few seconds. A node that dies stops
refreshing, so its users go offline within ``ttl`` without anyone cleaning up after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

PREFIX = "tongban:presence:"


def _vouched(sockets: Mapping[Any, Any], now: float) -> bool:
    """Whether any of an account's sockets is still vouched for by its node."""
    return any(float(until) > now for until in sockets.values())


class RedisPresence:
    def __init__(self, client: aioredis.Redis, node_id: str, *, ttl: float = 30.0) -> None:
        self._redis = client
        self._node = node_id
        self._ttl = ttl
        self._local: dict[str, int] = {}  # this node's sockets: field -> account
        self._task: asyncio.Task[None] | None = None

    def _sockets_key(self, account_id: int) -> str:
        return f"{PREFIX}sockets:{account_id}"

    def _status_key(self, account_id: int) -> str:
        return f"{PREFIX}status:{account_id}"

    def _field(self, sid: str) -> str:
        return f"{self._node}/{sid}"

    async def _online(self, account_id: int) -> bool:
        return _vouched(await self._redis.hgetall(self._sockets_key(account_id)), time.time())

    async def connected(self, account_id: int, sid: str) -> bool:
        was_offline = not await self._online(account_id)
        key = self._sockets_key(account_id)
        self._local[self._field(sid)] = account_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, self._field(sid), time.time() + self._ttl)
            pipe.expire(key, int(self._ttl * 4))
            await pipe.execute()
        return was_offline

    async def disconnected(self, account_id: int, sid: str) -> bool:
        self._local.pop(self._field(sid), None)
        await self._redis.hdel(self._sockets_key(account_id), self._field(sid))
        return not await self._online(account_id)

    async def choose(self, account_id: int, status: str) -> None:
        await self._redis.set(self._status_key(account_id), status, ex=7 * 24 * 3600)

    async def chosen(self, account_ids: Iterable[int]) -> dict[int, str]:
        """One round trip for all of them (a call request asks for its window's 10 staff;
        two trips each made a request wait 20 trips with its transaction open)."""
        ids = list(account_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for account_id in ids:
                pipe.hgetall(self._sockets_key(account_id))
                pipe.get(self._status_key(account_id))
            replies = await pipe.execute()
        now = time.time()
        out: dict[int, str] = {}
        for i, account_id in enumerate(ids):
            sockets, status = replies[2 * i], replies[2 * i + 1]
            if not _vouched(sockets, now):
                out[account_id] = "offline"
            else:
                out[account_id] = (
                    status.decode() if isinstance(status, bytes) else (status or "online")
                )
        return out

    async def refresh(self) -> None:
        """Vouch again for this node's sockets."""
        until = time.time() + self._ttl
        async with self._redis.pipeline(transaction=False) as pipe:
            for field, account_id in self._local.items():
                key = self._sockets_key(account_id)
                pipe.hset(key, field, until)
                pipe.expire(key, int(self._ttl * 4))
            await pipe.execute()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._heartbeat(), name="presence-heartbeat")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self.refresh()
            except Exception:  # Redis restarting: try again at the next beat
                log.warning("presence heartbeat failed", exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            for field, account_id in list(self._local.items()):
                await self._redis.hdel(self._sockets_key(account_id), field)
        except Exception:
            log.warning("could not clear this node's presence", exc_info=True)
        self._local.clear()
