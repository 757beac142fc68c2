"""A node's Redis clients (presence, node watch, media RPC): a pool that makes a burst wait.

redis-py's asyncio pool refuses a command outright once 100 connections are in use
(``MaxConnectionsError: Too many connections``). The presence store sends a command or two
per socket that connects or disconnects, so when hundreds of clerks' sockets drop at once (a
service hall's network, a proxy restarted, every client of ``bench/signaling --nodes 2``
closing at the end of its run) most of the disconnects failed: their presence intervals were
left open and their sockets stayed listed until the entries expired. Here a command waits
for a free connection instead, up to ``timeout`` seconds, and a connection a restarted Redis
broke is retried on a fresh one.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

MAX_CONNECTIONS = 64
WAIT_S = 10.0


def redis_client(
    url: str, *, max_connections: int = MAX_CONNECTIONS, timeout: float = WAIT_S
) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool
