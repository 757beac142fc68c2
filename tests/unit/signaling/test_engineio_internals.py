"""The writer's wait (signaling/engineio_internals.py) answers as engine.io's own does; the
uncompressed WebSocket is the driver's own but for compression."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from typing import Any

import pytest
from engineio import exceptions

from signaling import engineio_internals
from signaling.engineio_internals import ORIGINAL_POLL, ORIGINAL_WEBSOCKET_CALL, poll

# engine.io 4.15.1's AsyncSocket.poll: an upgrade that changes it must be looked at
POLL_SHA256 = "826f58a9f3606db208e5d1266f075ad655b6eeda47b0a5616748624899ca5954"
# its aiohttp driver's WebSocket.__call__, which UncompressedWebSocket repeats
WEBSOCKET_CALL_SHA256 = "71f9a94476d737c35a2971f606da0937fc1ac8704d717cb5bac44960864c4453"


def test_the_librarys_poll_is_the_one_replaced() -> None:
    source = inspect.getsource(ORIGINAL_POLL)
    assert hashlib.sha256(source.encode()).hexdigest() == POLL_SHA256, (
        "python-engineio's AsyncSocket.poll changed: compare it with "
        "signaling/engineio_internals.poll before updating the hash"
    )


def test_the_drivers_websocket_opening_is_the_one_repeated() -> None:
    source = inspect.getsource(ORIGINAL_WEBSOCKET_CALL)
    assert hashlib.sha256(source.encode()).hexdigest() == WEBSOCKET_CALL_SHA256, (
        "python-engineio's aiohttp WebSocket.__call__ changed: compare it with "
        "signaling/engineio_internals.UncompressedWebSocket before updating the hash"
    )


def test_uncompressed_replaces_only_this_servers_websocket() -> None:
    from engineio import async_server

    eio = async_server.AsyncServer(async_mode="aiohttp")
    other = async_server.AsyncServer(async_mode="aiohttp")
    engineio_internals.uncompressed(eio)
    assert eio._async["websocket"] is engineio_internals.UncompressedWebSocket
    assert other._async["websocket"] is not engineio_internals.UncompressedWebSocket
    assert eio._async["make_response"] is other._async["make_response"]


class _Socket:
    def __init__(self, timeout: float = 5.0) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.server = type("S", (), {"ping_interval": timeout / 2, "ping_timeout": timeout / 2})


@pytest.mark.parametrize("wait", [ORIGINAL_POLL, poll], ids=["library", "ours"])
async def test_both_answer_alike(wait: Any) -> None:
    sock = _Socket()
    for p in ("a", "b"):
        sock.queue.put_nowait(p)
    assert await wait(sock) == ["a", "b"], "what is queued, in one batch"
    sock.queue.put_nowait("c")
    sock.queue.put_nowait(None)
    assert await wait(sock) == ["c"], "up to the end mark, which stays for the next poll"
    assert await wait(sock) == [], "closing"
    assert sock.queue.empty()
    with pytest.raises(exceptions.QueueEmpty):
        await wait(_Socket(timeout=0.05))
    waiting = asyncio.ensure_future(wait(_Socket()))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises((exceptions.QueueEmpty, asyncio.CancelledError)):
        await waiting


async def test_a_packet_reaches_the_waiting_writer_in_one_turn() -> None:
    sock = _Socket()
    got: list[Any] = []

    async def writer() -> None:
        got.extend(await poll(sock))

    task = asyncio.ensure_future(writer())
    await asyncio.sleep(0)  # the writer now waits on the queue
    sock.queue.put_nowait("frame")
    await asyncio.sleep(0)  # one turn of the loop
    assert got == ["frame"]
    await task


def test_install_replaces_the_sockets_poll() -> None:
    from engineio import async_socket

    engineio_internals.install()
    assert async_socket.AsyncSocket.poll is poll
