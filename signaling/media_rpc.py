"""Reaching a call's media on another node of the cluster.

A call's media lives on the node that answered it; a participant's socket may be on any
node. ``rtc:offer`` and ``rtc:candidate`` that arrive elsewhere are carried to the media node
over Redis (one channel per node) and its answer comes back the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from tongban.errors import NotFound, TongbanError

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
