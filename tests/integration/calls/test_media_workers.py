"""Issue 7: a node's media in worker processes. Calls spread over the workers, each worker
forwards and records its calls, and a worker that dies ends its calls with ``media_failure``
(their partial recordings stay playable) and is started again."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import av
import sqlalchemy as sa

from storage import schema as s
from tests.integration.calls.test_call_with_media import Participant
from tests.integration.signaling.test_calls import make_case


async def _answered(
    server: Any, sockets: Any, callee_name: str, case_id: int, caller: Any = None
) -> tuple[Any, Any, str]:
    caller = caller or await sockets(server, "zz.a1")  # a second login would end the first
    callee = await sockets(server, callee_name)
    ack = await caller.call("call:request", {"case_id": case_id})
    assert ack["ok"], ack
    call_id = ack["call_id"]
    await callee.next("call:incoming")
    assert (await callee.call("call:accept", {"call_id": call_id}))["ok"]
    return caller, callee, call_id


async def media_flows(caller: Any, callee: Any, call_id: str) -> tuple[Participant, Participant]:
    a = Participant(caller, call_id)
    b = Participant(callee, call_id)
    await a.offer()
    await b.offer()
    await a.follow_renegotiation()
    for p in (a, b):
        await p.peer.wait_for(
            lambda p=p: bool(p.video()) and all(len(r.numbers) >= 30 for r in p.video()),
            within=30,
            what="frames from the other side",
        )
    return a, b


async def finished_recording(server: Any, user: Any, call_id: str) -> Any:
    while True:
        update = await user.next("call:recording", timeout=30)
        if update["call_id"] == call_id and update["state"] != "recording":
            break
    async with server.services.db.connect() as conn:
        return (
            await conn.execute(sa.select(s.recordings).where(s.recordings.c.call_id == call_id))
        ).one()


async def second_caller(server: Any, sockets: Any) -> Any:
    """Another clerk at the Zhengzhou applicant window (one live request per clerk)."""
    admin = await server.browser("admin")
    status, body = await admin.post(
        "/api/admin/accounts",
        {
            "username": "zz.a2",
            "display_name": "郑州申请地窗口二",
            "role": "staff",
            "agency_region": "410100",
            "password": "Start#Pass2026",
            "mobile": "13800000002",
            "windows": ["ZZ-TB-01"],
        },
    )
    assert status == 201, body
    api = await server.browser()
    assert (await api.login("zz.a2", "Start#Pass2026"))[0] == 200
    return await sockets(server, "zz.a2", api=api)


async def test_calls_spread_over_two_workers(start_server: Any, sockets: Any) -> None:
    server = await start_server(media_workers=2, media_addresses=("127.0.0.1",))
    pool = server.services.extra["media_bridge"].host
    assert len({pid for pid in pool.pids()} - {os.getpid(), None}) == 2
    cases = [await make_case(server), await make_case(server)]  # before zz.a1's socket logs in
    other_caller = await second_caller(server, sockets)
    first = await _answered(server, sockets, "fq.h1", cases[0])
    calls = [first, await _answered(server, sockets, "fq.h2", cases[1], caller=other_caller)]
    assert sorted(pool.worker_of(call_id) for _, _, call_id in calls) == [0, 1]
    assert pool.loads() == [1, 1]
    peers: list[Participant] = []
    try:
        for caller, callee, call_id in calls:
            peers.extend(await media_flows(caller, callee, call_id))
        stats = await pool.stats()
        assert [st["calls"] for st in stats] == [1, 1]
        for _, callee, call_id in calls:
            assert (await callee.call("call:hangup", {"call_id": call_id}))["ok"]
    finally:
        for p in peers:
            await p.peer.close()
    for caller, _, call_id in calls:
        row = await finished_recording(server, caller, call_id)
        assert row.state == "ready" and row.duration_s > 0.5, (row.state, row.error)
    assert pool.loads() == [0, 0]


async def test_a_dead_worker_ends_its_calls_and_comes_back(start_server: Any, sockets: Any) -> None:
    server = await start_server(media_workers=2, media_addresses=("127.0.0.1",))
    pool = server.services.extra["media_bridge"].host
    caller, callee, call_id = await _answered(server, sockets, "fq.h1", await make_case(server))
    index = pool.worker_of(call_id)
    pid = pool.pids()[index]
    a, b = await media_flows(caller, callee, call_id)
    try:
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        ended = await caller.next("call:ended", timeout=10)
        status, health = await (await server.browser()).get("/healthz")
        assert status == 503 and "1 of 2 media workers" in health["checks"]["media_workers"]
        assert ended["call_id"] == call_id and ended["reason"] == "media_failure", ended
        assert (await callee.next("call:ended", timeout=10))["reason"] == "media_failure"
        assert time.monotonic() - killed_at < 5, "noticed when the worker's socket closed"
    finally:
        await a.peer.close()
        await b.peer.close()
    row = await finished_recording(server, caller, call_id)
    assert row.state == "ready", row.error
    assert row.duration_s >= 0.9, "the partial recording holds the media before the kill"
    path = Path(server.settings.recordings_url.removeprefix("file://")) / row.blob_key
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
    assert frames >= 20
    async with server.services.db.connect() as conn:
        state = await conn.scalar(sa.select(s.calls.c.state).where(s.calls.c.id == call_id))
    assert state == "ended"
    for _ in range(100):  # restarted after about a second
        if pool.pids()[index] not in (None, pid):
            break
        await asyncio.sleep(0.1)
    assert pool.pids()[index] not in (None, pid), "the dead worker is started again"
    assert pool.restarts == 1
    api = await server.browser()
    status, health = await api.get("/healthz")
    assert status == 200 and health["checks"]["media_workers"] == "ok", health
    metrics = await (await api.http.get(server.url + "/metrics")).text()
    assert "tongban_media_workers_alive 2.0" in metrics
    assert "tongban_media_worker_restarts 1.0" in metrics
