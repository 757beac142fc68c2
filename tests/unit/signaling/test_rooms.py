"""The room-indexed Socket.IO managers behave as python-socketio's own, without the scan."""

from __future__ import annotations

import random
from typing import Any

import pytest
import socketio

from signaling.rooms import RoomIndex

NS = "/"


def _join(manager: Any, sid: str, eio_sid: str) -> None:
    # what pre_connect does once it has an id: the namespace's room and the socket's own
    manager.basic_enter_room(sid, NS, None, eio_sid=eio_sid)
    manager.basic_enter_room(sid, NS, sid, eio_sid=eio_sid)
    manager.pending_connect.setdefault(NS, []).append(sid)
    socketio.base_manager.BaseManager.connect(manager, sid, NS)  # no longer pending


def _table(manager: Any) -> dict[str, dict[Any, dict[str, str]]]:
    return {
        ns: {room: dict(members) for room, members in rooms.items()}
        for ns, rooms in manager.rooms.items()
    }


def _reverse(manager: Any) -> dict[str, dict[str, set[Any]]]:
    out: dict[str, dict[str, set[Any]]] = {}
    for ns, rooms in manager.rooms.items():
        for room, members in rooms.items():
            for sid in members:
                out.setdefault(ns, {}).setdefault(sid, set()).add(room)
    return out


class Indexed(RoomIndex, socketio.base_manager.BaseManager):  # type: ignore[misc]
    pass


def _replay(seed: int, steps: int = 3000) -> None:
    rnd = random.Random(seed)
    ours: Any = Indexed()
    theirs: Any = socketio.base_manager.BaseManager()
    live: dict[str, str] = {}
    rooms = [f"user:{i}" for i in range(6)] + [f"session:{i}" for i in range(6)]
    counter = 0
    for _ in range(steps):
        op = rnd.random()
        if op < 0.2 or not live:
            counter += 1
            sid, eio_sid = f"s{counter}", f"e{counter}"
            live[sid] = eio_sid
            for m in (ours, theirs):
                _join(m, sid, eio_sid)
        elif op < 0.55:
            sid, room = rnd.choice(sorted(live)), rnd.choice(rooms)
            for m in (ours, theirs):
                m.basic_enter_room(sid, NS, room)
        elif op < 0.75:
            sid, room = rnd.choice(sorted(live)), rnd.choice([*rooms, "never-made"])
            for m in (ours, theirs):
                m.basic_leave_room(sid, NS, room)
        elif op < 0.82:
            room = rnd.choice(rooms)
            for m in (ours, theirs):
                m.basic_close_room(room, NS)
        else:
            sid = rnd.choice(sorted(live))
            del live[sid]
            for m in (ours, theirs):
                m.pre_disconnect(sid, NS)
                m.callbacks[sid] = {0: None}
                m.basic_disconnect(sid, NS)
        assert _table(ours) == _table(theirs)
        assert ours.pending_connect == theirs.pending_connect
        assert ours.pending_disconnect == theirs.pending_disconnect
        assert ours.callbacks.keys() == theirs.callbacks.keys()
        assert {ns: {s: set(r) for s, r in by.items()} for ns, by in ours.sid_rooms.items()} == (
            _reverse(theirs)
        )
    for sid in sorted(live):
        assert sorted(ours.get_rooms(sid, NS)) == sorted(theirs.get_rooms(sid, NS))
        for m in (ours, theirs):
            m.basic_disconnect(sid, NS)
    assert ours.rooms == theirs.rooms == {}
    assert ours.sid_rooms == {}


@pytest.mark.parametrize("seed", range(8))
def test_random_operations_leave_the_same_tables_as_the_library(seed: int) -> None:
    _replay(seed)


class _NoScan(dict[Any, Any]):
    """A namespace's room table that fails if anyone walks it."""

    def copy(self) -> Any:
        raise AssertionError("the namespace's room table was copied")

    def items(self) -> Any:
        raise AssertionError("the namespace's room table was walked")

    def __iter__(self) -> Any:
        raise AssertionError("the namespace's room table was walked")


@pytest.mark.parametrize("cls", [Indexed, socketio.base_manager.BaseManager])
def test_a_disconnect_touches_only_the_sockets_own_rooms(cls: type) -> None:
    manager: Any = cls()
    for i in range(50):
        _join(manager, f"s{i}", f"e{i}")
        manager.basic_enter_room(f"s{i}", NS, f"user:{i}")
    manager.rooms[NS] = _NoScan(manager.rooms[NS])
    if cls is socketio.base_manager.BaseManager:
        # the library's own walks every room: the reason for the index
        with pytest.raises(AssertionError, match="room table was"):
            manager.basic_disconnect("s7", NS)
        return
    manager.basic_disconnect("s7", NS)
    assert "user:7" not in dict.keys(manager.rooms[NS])
    assert "s7" not in dict.keys(manager.rooms[NS])
    assert "s7" not in manager.rooms[NS][None]
    assert manager.get_rooms("s8", NS) == ["s8", "user:8"]


class _Server:
    """What a manager's emit uses of the server: its packet class and the engine.io send."""

    packet_class = socketio.packet.Packet

    def __init__(self, failing: str = "") -> None:
        self.sent: list[tuple[str, str]] = []
        self.failing = failing

    async def _send_eio_packet(self, eio_sid: str, pkt: Any) -> None:
        if eio_sid == self.failing:
            raise RuntimeError("socket gone")
        self.sent.append((eio_sid, pkt.encode()))


def _emitting(failing: str = "") -> Any:
    from signaling.rooms import Manager

    manager: Any = Manager()
    manager.server = _Server(failing)
    for i in range(4):
        _join(manager, f"s{i}", f"e{i}")
        manager.basic_enter_room(f"s{i}", NS, f"user:{i % 2}")
    return manager


def test_an_emit_reaches_every_member_of_its_rooms_once_without_suspending() -> None:
    manager = _emitting()
    # driven by hand, with no event loop: it must finish in one step (the library's waits
    # for a task per recipient, after everything else ready on the loop)
    step = manager.emit("call:incoming", {"n": 1}, NS, to=["user:0", "user:1"], skip_sid="s3")
    with pytest.raises(StopIteration):
        step.send(None)
    assert sorted(e for e, _ in manager.server.sent) == ["e0", "e1", "e2"]
    assert {p for _, p in manager.server.sent} == {'42["call:incoming",{"n":1}]'}


def test_one_recipient_failing_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    manager = _emitting(failing="e0")
    step = manager.emit("call:ended", None, NS, to="user:0")
    with pytest.raises(StopIteration):
        step.send(None)
    assert [e for e, _ in manager.server.sent] == ["e2"]
    assert "sending call:ended to socket s0 failed" in caplog.text


def test_the_redis_managers_local_delivery_is_in_turn_too() -> None:
    """Every node delivers each emit that reaches it over Redis to its own sockets: in turn,
    as one node does (no Redis is touched: the message is handed over as the listener would)."""
    from signaling.rooms import InTurn, RedisManager

    order = RedisManager.__mro__
    from socketio.async_pubsub_manager import AsyncPubSubManager

    assert order.index(AsyncPubSubManager) < order.index(InTurn)
    manager: Any = RedisManager("redis://127.0.0.1:6379/15")
    manager.server = _Server()
    for i in range(3):
        _join(manager, f"s{i}", f"e{i}")
        manager.basic_enter_room(f"s{i}", NS, f"user:{i}")
    message = {
        "method": "emit", "event": "call:incoming", "data": [{"n": 1}], "binary": False,
        "namespace": NS, "room": ["user:0", "user:2"], "skip_sid": None, "callback": None,
        "host_id": "another-node",
    }  # fmt: skip
    step = manager._handle_emit(message)
    with pytest.raises(StopIteration):
        step.send(None)
    assert sorted(e for e, _ in manager.server.sent) == ["e0", "e2"]
