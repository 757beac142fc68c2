"""Presence (R2): online / away / busy per staff member, and the stored intervals that
reports use for minutes offline during office hours.

A member is *offline* with no connected socket, *busy* while in an answered call, otherwise
the status they chose (``online`` or ``away``). The in-process store serves one node; the
cluster store (Redis, with TTLs so a dead node's users go offline) satisfies the same Protocol.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa

from storage import schema as s
from storage.database import Database

CHOSEN = ("online", "away")
OFFLINE = "offline"
BUSY = "busy"


class PresenceStore(Protocol):
    async def connected(self, account_id: int, sid: str) -> bool:
        """Record a socket; True if the account was offline before."""

    async def disconnected(self, account_id: int, sid: str) -> bool:
        """Forget a socket; True if the account is now offline."""

    async def choose(self, account_id: int, status: str) -> None: ...

    async def chosen(self, account_ids: Iterable[int]) -> dict[int, str]:
        """``online``/``away`` for connected accounts, ``offline`` for the others."""


class LocalPresence:
    def __init__(self) -> None:
        self._sockets: dict[int, set[str]] = defaultdict(set)
        self._status: dict[int, str] = {}

    async def connected(self, account_id: int, sid: str) -> bool:
        was_offline = not self._sockets[account_id]
        self._sockets[account_id].add(sid)
        self._status.setdefault(account_id, "online")
        return was_offline

    async def disconnected(self, account_id: int, sid: str) -> bool:
        sockets = self._sockets.get(account_id)
        if sockets is None:
            return False
        sockets.discard(sid)
        if sockets:
            return False
        del self._sockets[account_id]
        return True

    async def choose(self, account_id: int, status: str) -> None:
        self._status[account_id] = status

    async def chosen(self, account_ids: Iterable[int]) -> dict[int, str]:
        return {
            a: (self._status.get(a, "online") if self._sockets.get(a) else OFFLINE)
            for a in account_ids
        }


def effective(chosen: str, in_call: bool) -> str:
    if chosen == OFFLINE:
        return OFFLINE
    return BUSY if in_call else chosen


class PresenceLog:
    """Stored presence intervals: one open row per account, closed at each change."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def change(self, account_id: int, status: str, now: datetime) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(s.presence_intervals)
                .where(
                    s.presence_intervals.c.account_id == account_id,
                    s.presence_intervals.c.ended_at.is_(None),
                )
                .values(ended_at=now)
            )
            if status != OFFLINE:
                await conn.execute(
                    sa.insert(s.presence_intervals).values(
                        account_id=account_id, status=status, started_at=now
                    )
                )

    async def close_all(self, now: datetime) -> None:
        """At start-up: nobody is connected to a node that just started."""
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(s.presence_intervals)
                .where(s.presence_intervals.c.ended_at.is_(None))
                .values(ended_at=now)
            )
