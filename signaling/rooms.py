"""Socket.IO client managers that know each socket's rooms.

python-socketio 5.18 keeps a namespace's rooms as ``rooms[namespace][room][sid] = eio_sid``
and nothing from a socket to its rooms, so ``basic_disconnect`` copies the namespace's
whole room table and tests every room for the leaving socket. Each of our sockets is in
three rooms (its own, ``user:…``, ``session:…``), so with 5,000 staff connected a single
disconnect walks about 15,000 rooms, and when a hall's network drops and a few thousand
sockets leave together the node spends seconds in that loop while clerks elsewhere wait for
their calls (5,000 back to back: 3.2 s against 0.026 s here, ``bench/rooms``; BENCHMARKS.md,
"Issue 7 on the sixth machine").

``RoomIndex`` keeps the reverse index (namespace → sid → rooms) next to the library's table,
updated in the three places that change membership (``basic_enter_room``,
``basic_leave_room``; ``basic_close_room`` goes through the latter), so a disconnect leaves
exactly the socket's own rooms. Everything else, the pub/sub managers' forwarding
included, goes through those methods, so the library's behaviour is unchanged:
``tests/unit/signaling/test_rooms.py`` replays random operation sequences against both and
compares their tables.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

log = logging.getLogger(__name__)

Room = str | None


class RoomIndex:
    """Mixin for a python-socketio manager: a socket's rooms without scanning all rooms."""

    rooms: dict[str, dict[Room, Any]]
    callbacks: dict[str, Any]
    pending_connect: dict[str, list[str]]
    pending_disconnect: dict[str, list[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # insertion-ordered like the library's table, so get_rooms keeps its order
        self.sid_rooms: dict[str, dict[str, dict[Room, None]]] = {}

    def basic_enter_room(
        self, sid: str, namespace: str, room: Room, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self.sid_rooms.setdefault(namespace, {}).setdefault(sid, {})[room] = None

    def basic_leave_room(self, sid: str, namespace: str, room: Room) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        by_sid = self.sid_rooms.get(namespace)
        if by_sid is None:
            return
        joined = by_sid.get(sid)
        if joined is None:
            return
        joined.pop(room, None)
        if not joined:
            del by_sid[sid]
            if not by_sid:
                del self.sid_rooms[namespace]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        # The library's method with its room scan replaced by the index; the rest as it is.
        if namespace not in self.rooms:
            return
        joined = self.sid_rooms.get(namespace, {}).get(sid)
        for room in list(joined) if joined else ():
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        _drop(self.pending_connect, namespace, sid)
        _drop(self.pending_disconnect, namespace, sid)

    def get_rooms(self, sid: str, namespace: str) -> list[str]:
        joined = self.sid_rooms.get(namespace, {}).get(sid, ())
        return [room for room in joined if room is not None]


def _drop(pending: dict[str, list[str]], namespace: str, sid: str) -> None:
    sids = pending.get(namespace)
    if sids is not None and sid in sids:
        sids.remove(sid)
        if not sids:
            del pending[namespace]


class InTurn(socketio.AsyncManager):  # type: ignore[misc]
    """A manager that sends an event to this node's recipients in turn.

    The library's ``emit`` makes a task per recipient and waits for them all: the caller is
    suspended behind everything else ready on the loop (at 100 call requests/s with 5,000
    staff, thousands of frames a second), once per emit, and the call request emits twice
    before it answers. Handing a packet to a recipient's socket is putting it on that
    socket's unbounded queue, which never waits, so in turn the emit is done without
    leaving the loop's current step (and without the task per recipient: 60 -> 9 us for 12
    recipients here). With a callback (a packet per recipient) the library's way is kept.
    Placed after the Redis manager in ``RedisManager``'s bases, it is what that manager's
    local delivery (``super().emit`` in python-socketio's pub/sub manager) runs."""

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback,
                to=to, **kwargs,
            )  # fmt: skip
            return
        # from here as in socketio.AsyncManager.emit (5.18.1), but for the tasks
        room = to or room
        if namespace not in self.rooms:
            return
        if isinstance(data, tuple):
            data = list(data)
        elif data is not None:
            data = [data]
        else:
            data = []
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        pkt = self.server.packet_class(packet.EVENT, namespace=namespace, data=[event, *data])
        encoded = pkt.encode()
        eio_pkts = [
            eio_packet.Packet(eio_packet.MESSAGE, p)
            for p in (encoded if isinstance(encoded, list) else [encoded])
        ]
        for sid, eio_sid in self.get_participants(namespace, room):  # a copy: safe to leave
            if sid in skip:
                continue
            for eio_pkt in eio_pkts:
                try:
                    await self.server._send_eio_packet(eio_sid, eio_pkt)
                except Exception:  # one recipient's failure is not the others'
                    log.exception("sending %s to socket %s failed", event, sid)


class Manager(RoomIndex, InTurn):
    """The in-process manager (one node)."""


class RedisManager(RoomIndex, socketio.AsyncRedisManager, InTurn):  # type: ignore[misc]
    """The Redis pub/sub manager (a cluster): every emit goes through Redis to every node,
    each delivering to its own sockets in turn (``InTurn`` comes after the pub/sub manager
    in the method order)."""
