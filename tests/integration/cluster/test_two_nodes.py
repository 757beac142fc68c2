"""Cluster mode: two nodes sharing the real Redis and PostgreSQL. Signaling crosses nodes
through python-socketio's Redis manager, presence lives in Redis, deadlines in the database
fire once whichever node is alive."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from signaling.rooms import RedisManager
from signaling.server import SIO
from storage import schema as s
from tests.integration.signaling.test_calls import make_case

REDIS_URL = os.environ.get("TONGBAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """A cluster shares PostgreSQL; SQLite is single-node only."""
    return str(request.param)


@pytest.fixture(autouse=True)
async def clean_presence() -> Any:
    client = aioredis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter("tongban:presence:*")]
    keys += ["tongban:media:load", "tongban:presence-sweep:suspects"]
    if keys:
        await client.delete(*keys)
    yield
    await client.aclose()


async def two_nodes(start_server: Any, **settings: Any) -> tuple[Any, Any]:
    one = await start_server(redis_url=REDIS_URL, node_id="node-1", **settings)
    two = await start_server(redis_url=REDIS_URL, node_id="node-2", **settings)
    for node in (one, two):  # Redis pub/sub, with the socket → rooms index (signaling/rooms.py)
        assert isinstance(node.app[SIO].manager, RedisManager)
    return one, two


async def test_caller_on_one_node_callee_on_the_other(start_server: Any, sockets: Any) -> None:
    one, two = await two_nodes(start_server)
    case_id = await make_case(one)
    caller = await sockets(one, "zz.a1")
    h1 = await sockets(two, "fq.h1")
    ack = await caller.call("call:request", {"case_id": case_id})
    assert ack["ok"], ack
    assert {p["username"]: p["online"] for p in ack["on_duty"]} == {
        "fq.h1": True,
        "fq.h2": False,
    }, "presence is shared through Redis"
    incoming = await h1.next("call:incoming")
    assert incoming["call_id"] == ack["call_id"]
    assert (await h1.call("call:accept", {"call_id": ack["call_id"]}))["ok"]
    answered = await caller.next("call:answered")
    assert answered["by"]["username"] == "fq.h1"
    assert (await caller.call("call:hangup", {"call_id": ack["call_id"]}))["ok"]
    assert (await h1.next("call:ended"))["reason"] == "hangup"
    _status, board = await (await one.browser("fq.sup")).get("/api/board")
    (fq,) = [w for w in board["windows"] if w["code"] == "FQ-ZJ-01"]
    assert {p["username"]: p["presence"] for p in fq["staff"]}["fq.h1"] == "online"
    _status, health = await (await two.browser()).get("/healthz")
    assert health["checks"]["redis"] == "ok"


async def test_a_call_request_holds_one_pooled_connection_at_a_time(
    start_server: Any, sockets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request looked its callees' presence up, and in a cluster whether they are in a
    call, on a second pooled connection while holding its own: with every pooled connection
    held by such a request, a busy node stopped until the pool's time-out (bench/signaling
    --nodes 2 at 100 requests/s). One pooled connection must be enough."""
    import web.app

    made = web.app.create_engine

    def one_connection(url: str, **kwargs: Any) -> Any:
        return made(url, pool_size=1, max_overflow=0, pool_timeout=3, **kwargs)

    monkeypatch.setattr(web.app, "create_engine", one_connection)
    node = await start_server(redis_url=REDIS_URL, node_id="node-1")
    case_id = await make_case(node)
    caller = await sockets(node, "zz.a1")
    h1 = await sockets(node, "fq.h1")
    ack = await caller.call("call:request", {"case_id": case_id}, timeout=20)
    assert ack["ok"], ack
    assert {p["username"]: p["online"] for p in ack["on_duty"]}["fq.h1"] is True
    assert (await h1.next("call:incoming"))["call_id"] == ack["call_id"]


async def test_a_stopped_node_s_deadlines_fire_once_on_the_other(
    start_server: Any, sockets: Any
) -> None:
    one, two = await two_nodes(start_server, ring_timeout=1.0, ring_limit=2.0)
    case_id = await make_case(one)
    caller = await sockets(two, "zz.a1")
    ack = await (await sockets(one, "fq.h2")).call("presence:set", {"status": "online"})
    assert ack["ok"]
    request = await caller.call("call:request", {"case_id": case_id})
    assert request["ok"], request
    await one.client.close()  # the node where a callee was connected goes away
    overdue = await caller.next("call:overdue")
    assert len(overdue["reminded"]) == 2
    assert (await caller.next("call:ended"))["reason"] == "missed"
    async with two.services.db.connect() as conn:
        reminders = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(s.sms_outbox)
            .where(s.sms_outbox.c.template == "reminder")
        )
        misses = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(s.misses)
            .where(s.misses.c.call_id == request["call_id"])
        )
        fired = list(
            await conn.execute(
                sa.select(s.deadlines.c.kind, s.deadlines.c.fired_at).where(
                    s.deadlines.c.call_id == request["call_id"]
                )
            )
        )
    assert reminders == 2 and misses == 2
    assert sorted(k for k, at in fired if at is not None) == ["limit", "overdue"]


async def test_media_on_one_node_offer_through_the_other(start_server: Any, sockets: Any) -> None:
    """The callee's node answered and carries the media; the caller's offers arrive at the
    other node and are carried there over Redis."""
    from tests.integration.calls.test_call_with_media import Participant

    one, two = await two_nodes(start_server, media_addresses=("127.0.0.1",))
    case_id = await make_case(one)
    caller = await sockets(one, "zz.a1")
    callee = await sockets(two, "fq.h1")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    assert (await callee.call("call:accept", {"call_id": call_id}))["ok"]
    a = Participant(caller, call_id)
    b = Participant(callee, call_id)
    try:
        await a.offer()
        await b.offer()
        await a.follow_renegotiation()
        for p in (a, b):
            await p.peer.wait_for(
                lambda p=p: any(len(r.numbers) >= 30 for r in p.video()),
                within=30,
                what="video across nodes",
            )
    finally:
        await a.peer.close()
        await b.peer.close()
    async with one.services.db.connect() as conn:
        node = await conn.scalar(sa.select(s.calls.c.media_node).where(s.calls.c.id == call_id))
    assert node == "node-2"


async def test_calls_of_a_dead_media_node_end_with_media_failure(
    start_server: Any, sockets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signaling.nodes import NodeWatch

    monkeypatch.setattr(NodeWatch, "ttl", 1.0)
    monkeypatch.setattr(NodeWatch, "every", 0.2)
    one, two = await two_nodes(start_server, media_addresses=("127.0.0.1",))
    case_id = await make_case(one)
    caller = await sockets(one, "zz.a1")
    callee = await sockets(two, "fq.h1")
    call_id = (await caller.call("call:request", {"case_id": case_id}))["call_id"]
    assert (await callee.call("call:accept", {"call_id": call_id}))["ok"]
    await caller.next("call:answered")
    await two.client.close()  # the node carrying the call's media goes away
    ended = await caller.next("call:ended", timeout=20)
    assert ended["call_id"] == call_id and ended["reason"] == "media_failure"


async def test_a_call_is_placed_on_the_least_loaded_node(start_server: Any, sockets: Any) -> None:
    """Node 1 already carries a call, node 2 none: the next call answered on node 1 gets its
    media on node 2; offers, hang-up and the recording go there and back over Redis."""
    from tests.integration.calls.test_media_workers import (
        finished_recording,
        media_flows,
        second_caller,
    )

    one, two = await two_nodes(start_server, media_addresses=("127.0.0.1",))
    bridge_one = one.services.extra["media_bridge"]
    bridge_two = two.services.extra["media_bridge"]
    cases = [await make_case(one), await make_case(one)]  # before zz.a1's socket logs in
    caller = await sockets(one, "zz.a1")
    first_callee = await sockets(one, "fq.h1")
    first = (await caller.call("call:request", {"case_id": cases[0]}))["call_id"]
    assert (await first_callee.call("call:accept", {"call_id": first}))["ok"]
    assert bridge_one.host.has_call(first), "a tie stays on the answering node"
    await bridge_two.placement.publish()  # node 2's reading: no calls

    callee = await sockets(one, "fq.h2")
    caller = await second_caller(one, sockets)  # one live request per clerk
    call_id = (await caller.call("call:request", {"case_id": cases[1]}))["call_id"]
    await callee.next("call:incoming")
    assert (await callee.call("call:accept", {"call_id": call_id}))["ok"]
    assert bridge_two.host.has_call(call_id) and not bridge_one.host.has_call(call_id)
    async with one.services.db.connect() as conn:
        node = await conn.scalar(sa.select(s.calls.c.media_node).where(s.calls.c.id == call_id))
    assert node == "node-2"
    a, b = await media_flows(caller, callee, call_id)
    try:
        assert (await callee.call("call:hangup", {"call_id": call_id}))["ok"]
    finally:
        await a.peer.close()
        await b.peer.close()
    row = await finished_recording(two, callee, call_id)
    assert row.state == "ready", row.error
    assert not bridge_two.host.has_call(call_id), "the hang-up on node 1 closed node 2's media"
    assert (await first_callee.call("call:hangup", {"call_id": first}))["ok"]


async def test_a_directory_change_on_one_node_reaches_the_other(
    start_server: Any, sockets: Any
) -> None:
    """An account created through node 1 can be found (and rung, and told) by node 2."""
    from tests.integration.calls.test_media_workers import second_caller

    one, two = await two_nodes(start_server)
    assert (await two.services.directory.snapshot()).account_by_username("zz.a2") is None
    await second_caller(one, sockets)
    for _ in range(50):
        if (await two.services.directory.snapshot()).account_by_username("zz.a2") is not None:
            break
        await asyncio.sleep(0.1)
    assert (await two.services.directory.snapshot()).account_by_username("zz.a2") is not None
    assert two.services.directory.reloads_announced >= 1


async def test_presence_left_open_by_a_dead_node_is_closed(start_server: Any, sockets: Any) -> None:
    """A node that died could not close its users' presence intervals; a surviving node closes
    those of accounts no node vouches for, and leaves those of connected users alone."""
    from datetime import timedelta

    from signaling.nodes import NodeWatch
    from signaling.presence import OFFLINE, PresenceLog
    from tests.integration.recordings.helpers import account_id

    one, two = await two_nodes(start_server)
    connected = await sockets(two, "fq.h1")
    await connected.call("presence:set", {"status": "online"})
    gone = await account_id(one, "fq.h2")  # was online on a node that crashed
    since = one.services.clock.now() - timedelta(minutes=5)
    row = {"account_id": gone, "status": "online", "started_at": since}
    async with one.services.db.begin() as conn:
        await conn.execute(sa.insert(s.presence_intervals).values(**row))
    # and one whose disconnect is being handled: out of Redis, its interval not closed yet
    leaving = await account_id(one, "zz.a1")
    async with one.services.db.begin() as conn:
        await conn.execute(sa.insert(s.presence_intervals).values(**{**row, "account_id": leaving}))
    client = aioredis.from_url(REDIS_URL)
    no_calls: Any = None  # closing presence needs no call service
    clock = one.services.clock
    try:
        watch = NodeWatch(client, "node-1", one.services.db, no_calls, clock=clock)
        before_look = clock.now()
        assert await watch.close_stale_presence() == 0, "one look is not enough"
        after_look = clock.now()
        await PresenceLog(one.services.db).change(leaving, OFFLINE, clock.now())
        clock.advance(minutes=1)
        # the next look, by another node: both looks found the dead node's user unvouched for
        other = NodeWatch(client, "node-2", one.services.db, no_calls, clock=clock)
        assert await other.close_stale_presence() == 1
        assert await other.close_stale_presence() == 0
    finally:
        await client.aclose()
    async with one.services.db.connect() as conn:
        rows = list(await conn.execute(sa.select(s.presence_intervals)))
    h1 = await account_id(one, "fq.h1")
    still_open = [r.account_id for r in rows if r.ended_at is None]
    assert still_open == [h1], "the connected user's interval stays open"
    (dead,) = [r for r in rows if r.account_id == gone]
    assert before_look <= dead.ended_at <= after_look, "ended when first seen unvouched for"
