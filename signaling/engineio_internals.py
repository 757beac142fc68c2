"""The one touch of python-engineio's internals: how a socket's writer waits for packets.

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
"""

from __future__ import annotations

import asyncio
from typing import Any

from engineio import async_socket, exceptions

ORIGINAL_POLL = async_socket.AsyncSocket.poll


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
