"""Two touches of python-engineio's internals: how a socket's writer waits for packets, and
that a WebSocket is not compressed.

engine.io's ``AsyncSocket.poll`` (4.15.1) waits for a socket's next packet with
``asyncio.wait_for(queue.get(), timeout)``. On Python 3.11 that wraps the get in a task of
its own: a packet put on the queue reaches the writer after three turns of the event loop
(the get's future, the get's task, wait_for's waiter), each behind everything else ready,
and every wait costs a task and a timer. A call request sends a frame to each of the
window's staff, so at 100 requests/s with 5,000 staff that is a few thousand waits a second.

``poll`` below is the library's, waiting with ``asyncio.timeout`` instead: the writer's own
task waits on the queue, and the packet reaches it after one turn. Same time-out, same
answers (the packets, ``[]`` once the socket is closing, ``QueueEmpty`` on time-out or
cancellation). python-engineio is pinned in pyproject.toml and
``tests/unit/signaling/test_engineio_internals.py`` fails if the library's ``poll`` changes.

Compression: engine.io's aiohttp driver opens each WebSocket with aiohttp's default
``compress=True``, so every browser (Chromium always offers permessage-deflate) gets a
compressed connection: a zlib compressor and decompressor per socket, ~100 KiB more per
connected staff member (132.8–136.3 against 33.7–35.0 KiB, BENCHMARKS.md), and every frame
deflated and inflated for signaling messages of a few hundred bytes. The reference server
turned it off by default for that reason (engine.io 4.0, "disable perMessageDeflate by
default"). ``UncompressedWebSocket`` is the driver's class with ``compress=False``; the same
test guards its source.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.web import WebSocketResponse
from engineio import async_socket, exceptions
from engineio.async_drivers import aiohttp as engineio_aiohttp

ORIGINAL_POLL = async_socket.AsyncSocket.poll
ORIGINAL_WEBSOCKET_CALL = engineio_aiohttp.WebSocket.__call__


class UncompressedWebSocket(engineio_aiohttp.WebSocket):  # type: ignore[misc]
    """engine.io's aiohttp WebSocket, refusing permessage-deflate."""

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def uncompressed(eio: Any) -> None:
    """Open this engine.io server's WebSockets without compression."""
    eio._async = {**eio._async, "websocket": UncompressedWebSocket}


async def poll(self: Any) -> list[Any]:
    """Wait for packets to send to the client."""
    queue = self.queue
    try:
        async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
            packets = [await queue.get()]
        queue.task_done()
    except (TimeoutError, asyncio.CancelledError):
        raise exceptions.QueueEmpty() from None
    if packets == [None]:
        return []
    while True:
        try:
            pkt = queue.get_nowait()
            queue.task_done()
            if pkt is None:
                queue.put_nowait(None)
                break
            packets.append(pkt)
        except asyncio.QueueEmpty:
            break
    return packets


def install() -> None:
    """Make every engine.io socket of this process wait for packets as above (idempotent)."""
    async_socket.AsyncSocket.poll = poll
