"""Reaching a call's media on another node of the cluster.

A call's media lives on the node that answered it; a participant's socket may be on any
node. ``rtc:offer`` and ``rtc:candidate`` that arrive elsewhere are carried to the media node
over Redis (one channel per node) and its answer comes back the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from tongban.errors import NotFound, TongbanError
from tongban.periodic import Periodic

log = logging.getLogger(__name__)

CHANNEL = "tongban:media:"
Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class RemoteError(TongbanError):
    """An error the media node answered with, carried back with its code."""


class MediaRpc:
    def __init__(self, client: aioredis.Redis, node_id: str, handler: Handler) -> None:
        self._redis = client
        self._node = node_id
        self._handler = handler
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.timeout = 10.0  # seconds for the media node to answer

    async def start(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(CHANNEL + self._node)
        self._task = asyncio.create_task(self._listen(pubsub), name="media-rpc")

    async def stop(self) -> None:
        for task in [self._task, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._task, *self._tasks] if t), return_exceptions=True)
        for waiter in self._waiting.values():
            waiter.cancel()

    async def call(self, node: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        try:
            message = {"id": request_id, "reply_to": self._node, "method": method, "params": params}
            if not await self._redis.publish(CHANNEL + node, json.dumps(message)):
                raise NotFound("承载该通话媒体的节点不在线", code="media_unavailable")
            reply = await asyncio.wait_for(waiter, self.timeout)
        except TimeoutError:
            raise NotFound("承载该通话媒体的节点没有应答", code="media_unavailable") from None
        finally:
            self._waiting.pop(request_id, None)
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise RemoteError(
                str(error.get("message", "媒体节点出错")),
                code=str(error.get("code", "media_error")),
            )
        result: dict[str, Any] = reply["result"]
        return result

    async def _listen(self, pubsub: Any) -> None:
        while True:
            try:
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self._dispatch(json.loads(message["data"]))
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception:
                log.warning("media RPC listener lost Redis; resubscribing", exc_info=True)
                await asyncio.sleep(1)
                try:
                    await pubsub.subscribe(CHANNEL + self._node)
                except Exception:
                    log.debug("resubscribe failed", exc_info=True)

    def _dispatch(self, data: dict[str, Any]) -> None:
        if "reply" in data:
            waiter = self._waiting.get(data.get("id", ""))
            if waiter is not None and not waiter.done():
                waiter.set_result(data["reply"])
            return
        task = asyncio.create_task(self._serve(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, data: dict[str, Any]) -> None:
        try:
            reply: dict[str, Any] = {
                "ok": True,
                "result": await self._handler(str(data["method"]), dict(data["params"])),
            }
        except TongbanError as err:
            reply = {"ok": False, "error": err.to_dict()}
        except Exception:
            log.exception("media RPC %s failed", data.get("method"))
            reply = {"ok": False, "error": {"code": "internal_error", "message": "媒体节点出错"}}
        await self._redis.publish(
            CHANNEL + str(data["reply_to"]), json.dumps({"id": data["id"], "reply": reply})
        )


LOAD_KEY = "tongban:media:load"


class MediaPlacement:
    """Places a call's media on the least-loaded media worker of the cluster.

    Every node publishes how many calls each of its workers carries (a Redis hash, one field
    per ``node/worker``, with the time of the reading); the node that answers a call picks the
    worker with the fewest calls among fresh readings, its own workers first on a tie (no hop
    over Redis for the offers). Placements made since the last reading are counted too, so a
    burst of answers spreads out instead of piling onto the same worker.
    """

    every = 2.0  # seconds between readings
    fresh = 15.0  # a reading older than this is a node that stopped publishing

    def __init__(
        self, client: aioredis.Redis, node_id: str, loads: Callable[[], list[int]]
    ) -> None:
        self._redis = client
        self._node = node_id
        self._loads = loads
        self._recent: dict[tuple[str, int], list[float]] = {}
        self._publisher = Periodic(
            self.publish, name="media placement", first_after=0.0, every=self.every
        )

    async def publish(self) -> None:
        now = time.time()
        loads = self._loads()
        fields: dict[Any, Any] = {
            f"{self._node}/{i}": json.dumps({"calls": n, "at": now})
            for i, n in enumerate(loads)
            if n >= 0
        }
        dead = [f"{self._node}/{i}" for i, n in enumerate(loads) if n < 0]
        if fields:
            await self._redis.hset(LOAD_KEY, mapping=fields)
        if dead:
            await self._redis.hdel(LOAD_KEY, *dead)

    async def choose(self, local: list[int]) -> tuple[str, int | None]:
        """(node, worker) for a new call; this node when Redis cannot tell."""
        now = time.time()
        candidates: list[tuple[int, int, str, int]] = [
            (n, 0, self._node, i) for i, n in enumerate(local) if n >= 0
        ]
        try:
            readings = await self._redis.hgetall(LOAD_KEY)
        except Exception:
            log.warning("media placement: Redis unavailable; placing the call here")
            readings = {}
        for raw_field, raw_value in readings.items():
            field_text = raw_field.decode() if isinstance(raw_field, bytes) else str(raw_field)
            node, _, index = field_text.rpartition("/")
            if node == self._node or not index.isdigit():
                continue
            try:
                reading = json.loads(raw_value)
            except ValueError:
                continue
            if now - float(reading.get("at", 0)) > self.fresh:
                continue
            calls = int(reading.get("calls", 0)) + self._placed_since(node, int(index), reading)
            candidates.append((calls, 1, node, int(index)))
        if not candidates:
            return self._node, None
        _, _, chosen, worker = min(candidates)
        if chosen != self._node:
            self._recent.setdefault((chosen, worker), []).append(now)
        return chosen, worker

    def _placed_since(self, node: str, index: int, reading: dict[str, Any]) -> int:
        at = float(reading.get("at", 0))
        placed = [t for t in self._recent.get((node, index), []) if t > at]
        if placed:
            self._recent[(node, index)] = placed
        else:
            self._recent.pop((node, index), None)
        return len(placed)

    def start(self) -> None:
        self._publisher.start()

    async def stop(self) -> None:
        await self._publisher.close()
        try:
            fields = [f"{self._node}/{i}" for i in range(len(self._loads()))]
            if fields:
                await self._redis.hdel(LOAD_KEY, *fields)
        except Exception:
            log.warning("could not withdraw this node's media load", exc_info=True)
