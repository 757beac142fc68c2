"""Cluster mode: a burst of sockets connecting or disconnecting at once (a service hall's
network dropping, a proxy restarted) waits for the node's pooled Redis connections instead
of failing with "Too many connections" (signaling/redis_pool.py), and presence stays right."""

from __future__ import annotations

import asyncio
import os
import uuid

import redis.asyncio as aioredis

from signaling.presence_redis import RedisPresence
from signaling.redis_pool import redis_client

REDIS_URL = os.environ.get("TONGBAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BURST = 300  # sockets; redis-py's own pool refuses past 100 connections in use


async def test_a_burst_of_commands_waits_for_a_pooled_connection() -> None:
    client = redis_client(REDIS_URL, max_connections=8)
    key = f"tongban:test:empty:{uuid.uuid4().hex}"
    try:
        # each holds its connection for 50 ms; 300 of them share 8 connections
        got = await asyncio.gather(*(client.blpop([key], timeout=0.05) for _ in range(BURST)))
        assert got == [None] * BURST
    finally:
        await client.aclose()


async def test_presence_survives_hundreds_of_sockets_dropping_at_once() -> None:
    client = redis_client(REDIS_URL)
    presence = RedisPresence(client, f"node-{uuid.uuid4().hex[:8]}")
    base = 900_000_000 + int(uuid.uuid4().int % 1_000_000) * 1000  # accounts no test uses
    accounts = [base + i for i in range(BURST)]
    try:
        came = await asyncio.gather(*(presence.connected(a, f"sid{a}") for a in accounts))
        assert all(came), "each was offline before"
        assert set((await presence.chosen(accounts)).values()) == {"online"}
        went = await asyncio.gather(*(presence.disconnected(a, f"sid{a}") for a in accounts))
        assert all(went), "each is offline now"
        assert set((await presence.chosen(accounts)).values()) == {"offline"}
    finally:
        await presence.stop()
        check = aioredis.from_url(REDIS_URL)
        left = [k async for k in check.scan_iter(f"tongban:presence:sockets:{base}*")]
        await check.aclose()
        await client.aclose()
    assert left == []
