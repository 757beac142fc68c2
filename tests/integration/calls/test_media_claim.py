"""Issue 7: a call's media is carried by exactly one node. The node that answers asks the
least-loaded node to take it; if that node does not answer in time, the answering node carries
the call itself, unless the other got to it after all. Whoever claims ``calls.media_node``
first carries it; the other opens nothing. Only the RPC to the other node is stood in for
here (the two-node tests run the real one)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from storage import schema as s
from tests.integration.calls.test_media_workers import _answered
from tests.integration.signaling.test_calls import make_case
from tongban.errors import NotFound

OTHER = "node-b"


class LateNode:
    """Another node that takes the call just after this one stopped waiting for its answer."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.asked: list[tuple[str, str]] = []

    async def call(self, node: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.asked.append((node, method))
        if method == "open_call":
            async with self._db.begin() as conn:  # its open_local's claim
                await conn.execute(
                    sa.update(s.calls)
                    .where(s.calls.c.id == params["call_id"], s.calls.c.media_node.is_(None))
                    .values(media_node=node)
                )
            raise NotFound("承载该通话媒体的节点没有应答", code="media_unavailable")
        return {}

    async def stop(self) -> None:
        return None


class Placement:
    async def choose(self, local: list[int]) -> tuple[str, int | None]:
        return OTHER, 0

    async def stop(self) -> None:
        return None


async def _media_node(server: Any, call_id: str) -> str | None:
    async with server.services.db.connect() as conn:
        node: str | None = await conn.scalar(
            sa.select(s.calls.c.media_node).where(s.calls.c.id == call_id)
        )
    return node


async def test_a_node_that_gave_up_waiting_does_not_open_media_the_other_node_took(
    start_server: Any, sockets: Any
) -> None:
    server = await start_server(media_addresses=("127.0.0.1",))
    bridge = server.services.extra["media_bridge"]
    other = LateNode(server.services.db)
    bridge.rpc, bridge.placement = other, Placement()
    case_id = await make_case(server)
    _caller, callee, call_id = await _answered(server, sockets, "fq.h1", case_id)

    assert other.asked == [(OTHER, "open_call")]
    assert await _media_node(server, call_id) == OTHER
    assert not bridge.host.has_call(call_id), "no second copy of the media here"
    assert not bridge.recordings.is_recording(call_id)

    assert (await callee.call("call:hangup", {"call_id": call_id}))["ok"]
    assert (OTHER, "close_call") in other.asked, "the hang-up reaches the node with the media"


async def test_a_node_asked_late_opens_nothing_once_another_carries_the_call(
    start_server: Any, sockets: Any
) -> None:
    server = await start_server(media_addresses=("127.0.0.1",))
    bridge = server.services.extra["media_bridge"]
    case_id = await make_case(server)
    _caller, _callee, call_id = await _answered(server, sockets, "fq.h1", case_id)
    assert bridge.host.has_call(call_id), "carried here, where it was answered"
    node = await _media_node(server, call_id)
    assert node is not None

    # the request another node sent and stopped waiting for, arriving now: this node keeps
    # the one copy of the media it opened, and a node another has claimed opens nothing
    assert await bridge.serve_rpc("open_call", {"call_id": call_id, "worker": 0}) == {}
    assert bridge.host.has_call(call_id)
    async with server.services.db.begin() as conn:
        await conn.execute(
            sa.update(s.calls).where(s.calls.c.id == call_id).values(media_node=OTHER)
        )
    await bridge.close_local(call_id)
    assert await bridge.serve_rpc("open_call", {"call_id": call_id, "worker": 0}) == {}
    assert not bridge.host.has_call(call_id), "claimed by another node: not opened again"
    assert await _media_node(server, call_id) == OTHER
