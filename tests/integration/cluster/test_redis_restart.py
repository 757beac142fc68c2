"""Cluster mode survives a Redis restart: no call record is lost, and events cross nodes
again once python-socketio's Redis manager has reconnected."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from storage import schema as s
from tests.integration.signaling.test_calls import make_case


@pytest.fixture(params=["postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class RedisProcess:
    """A redis-server of the test's own, on a free loopback port, that can be killed."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is installed by scripts/test"
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise AssertionError("redis-server did not start")

    async def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await self.proc.wait()
            self.proc = None


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    await server.start()
    yield server
    await server.kill()


async def test_redis_restart_loses_no_call_and_nodes_recover(
    start_server: Any, sockets: Any, redis_server: RedisProcess
) -> None:
    one = await start_server(redis_url=redis_server.url, node_id="node-1")
    two = await start_server(redis_url=redis_server.url, node_id="node-2")
    case_id = await make_case(one)
    caller = await sockets(one, "zz.a1")
    callee = await sockets(two, "fq.h1")
    first = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    await callee.next("call:incoming")
    assert (await callee.call("call:accept", {"call_id": first}))["ok"]
    await caller.next("call:answered")

    await redis_server.kill()
    assert (await caller.call("call:hangup", {"call_id": first}))["ok"], "the database decides"
    await redis_server.start()

    # events cross nodes again once the manager has resubscribed (it retries with backoff)
    second = None
    for _ in range(12):
        ack = await caller.call("call:request", {"case_id": case_id})
        assert ack["ok"], ack
        try:
            incoming = await callee.next("call:incoming", timeout=5)
        except TimeoutError:
            assert (await caller.call("call:cancel", {"call_id": ack["call_id"]}))["ok"]
            continue
        if incoming["call_id"] == ack["call_id"]:
            second = ack["call_id"]
            break
    assert second is not None, "node 2 never heard from node 1 again"
    assert (await callee.call("call:accept", {"call_id": second}))["ok"]

    async with one.services.db.connect() as conn:
        states = dict((await conn.execute(sa.select(s.calls.c.id, s.calls.c.state))).all())
        kinds = list(
            await conn.scalars(
                sa.select(s.call_events.c.kind)
                .where(s.call_events.c.call_id == first)
                .order_by(s.call_events.c.id)
            )
        )
    assert states[first] == "ended" and states[second] == "answered"
    assert kinds == ["requested", "answered", "ended"]
    for node in (one, two):
        _status, health = await (await node.browser()).get("/healthz")
        assert health["checks"]["redis"] in ("ok", "restarted pub/sub listener"), health
