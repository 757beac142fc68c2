"""The call service: routes requests, applies the pure state machine, stores every
transition, schedules durable ring deadlines, records misses and queues SMS reminders.

It knows nothing of Socket.IO: what people must be told is handed to a ``Notifier`` after
the transaction that caused it has committed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cases.service import can_see_case
from directory import store
from directory.duty import Absence
from directory.model import Account
from directory.service import DirectoryService
from directory.snapshot import DirectorySnapshot
from oversight.rules import month_of
from signaling import callstate as cs
from signaling.callstate import Call
from sms.outbox import enqueue
from storage import schema as s
from storage import sqlfast
from storage.database import Database
from tongban.clock import Clock
from tongban.errors import Conflict, Forbidden, InvalidInput, InvalidState, NotFound
from tongban.masking import mask_name, mask_phone

log = logging.getLogger(__name__)
SHANGHAI = ZoneInfo("Asia/Shanghai")


class Notifier(Protocol):
    async def to_users(
        self, account_ids: Iterable[int], event: str, payload: dict[str, Any]
    ) -> None:
        """Deliver a Socket.IO event to every socket of these accounts, on any node."""


class CallHooks(Protocol):
    """What else must happen at call boundaries (media, recording, SMS worker wake-up)."""

    async def call_answered(self, call_id: str) -> None: ...

    async def call_finished(self, call_id: str) -> None: ...

    def sms_queued(self) -> None: ...

    def deadline_added(self, due_at: datetime) -> None: ...


class NoHooks:
    async def call_answered(self, call_id: str) -> None:
        return None

    async def call_finished(self, call_id: str) -> None:
        return None

    def sms_queued(self) -> None:
        return None

    def deadline_added(self, due_at: datetime) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Timing:
    ring_timeout: timedelta
    ring_limit: timedelta
    reconnect_grace: timedelta


@dataclass
class Outbox:
    """Events to send once the transaction commits."""

    items: list[tuple[frozenset[int], str, dict[str, Any]]] = field(default_factory=list)

    def add(self, to: Iterable[int], event: str, payload: dict[str, Any]) -> None:
        self.items.append((frozenset(to), event, payload))


class _LostRace(Exception):
    """A request met the caller's other live call at insert time (CallService.request)."""


@dataclass(frozen=True, slots=True)
class _Where:
    """The two columns of a call row the incoming view needs."""

    case_id: int
    window_id: int


@dataclass(frozen=True, slots=True)
class _Member:
    """The columns of a call member the state machine needs."""

    account_id: int
    role: str
    on_duty: bool
    declined_at: datetime | None
    joined_at: datetime | None


@dataclass
class _KeyedLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _request_query() -> sa.Select[Any]:
    """The case row, plus ``active_call_id`` (the caller's live call, if any),
    ``routed_window_id`` (the home window as the database routes the case: its own, else the
    owner of its matter in its region) and ``absent_at_window`` (how many absences of staff
    assigned to that window cover ``now``). Parameters: case_id, caller_id, now."""
    routed = sa.func.coalesce(
        s.cases.c.home_window_id,
        sa.select(s.window_matters.c.window_id)
        .where(
            s.window_matters.c.matter_id == s.cases.c.matter_id,
            s.window_matters.c.region_code == s.cases.c.region_code,
        )
        .limit(1)
        .correlate(s.cases)
        .scalar_subquery(),
    )
    active = (
        sa.select(s.calls.c.id)
        .where(
            s.calls.c.caller_id == sa.bindparam("caller_id"),
            # the partial unique index's own condition, in its words, so that SQLite and
            # PostgreSQL look the caller up in it (a bound parameter per state they cannot)
            s.LIVE_CALL,
        )
        .limit(1)
        .scalar_subquery()
    )
    absent = (
        sa.select(sa.func.count())
        .select_from(s.absences)
        .where(
            s.absences.c.account_id.in_(
                sa.select(s.account_windows.c.account_id)
                .where(s.account_windows.c.window_id == routed)
                .correlate(s.cases)
            ),
            s.absences.c.starts_at <= sa.bindparam("now"),
            s.absences.c.ends_at > sa.bindparam("now"),
        )
        .correlate(s.cases)
        .scalar_subquery()
    )
    return sa.select(
        s.cases,
        active.label("active_call_id"),
        routed.label("routed_window_id"),
        absent.label("absent_at_window"),
    ).where(s.cases.c.id == sa.bindparam("case_id"))


def _load_query() -> sa.Select[Any]:
    """A call and its members in one statement: one row per member (a call always has its
    caller; the outer join still yields the call if it had none). Parameter: call_id."""
    m = s.call_members.c
    return (
        sa.select(
            s.calls,
            m.account_id.label("m_account_id"),
            m.role.label("m_role"),
            m.on_duty.label("m_on_duty"),
            m.declined_at.label("m_declined_at"),
            m.joined_at.label("m_joined_at"),
        )
        .outerjoin(s.call_members, m.call_id == s.calls.c.id)
        .where(s.calls.c.id == sa.bindparam("call_id"))
    )


# The hot path's statements, built once: building and cache-keying a statement costs more
# CPU than SQLite takes to run it; on SQLite each runs in one hand-off to aiosqlite's thread
# (storage/sqlfast.py).
REQUEST_QUERY = _request_query()
LOAD_CALL = _load_query()
LOAD_CALL_LOCKED = LOAD_CALL.with_for_update(of=s.calls)
STORE_CALL = sa.update(s.calls).where(
    s.calls.c.id == sa.bindparam("b_id"), s.calls.c.state == sa.bindparam("b_state")
)
INSERT_CALL = sa.insert(s.calls)
INSERT_MEMBERS = sa.insert(s.call_members)
INSERT_EVENT = sa.insert(s.call_events)
INSERT_DEADLINES = sa.insert(s.deadlines)
CANCEL_DEADLINES = sa.delete(s.deadlines).where(
    s.deadlines.c.call_id == sa.bindparam("b_call_id"), s.deadlines.c.fired_at.is_(None)
)
LEAVE_CALL = (
    sa.update(s.call_members)
    .where(
        s.call_members.c.call_id == sa.bindparam("b_call_id"),
        s.call_members.c.joined_at.is_not(None),
        s.call_members.c.left_at.is_(None),
    )
    .values(left_at=sa.bindparam("left_at"))
)
CANCEL_DEADLINES_OF_KINDS = CANCEL_DEADLINES.where(
    s.deadlines.c.kind.in_(sa.bindparam("b_kinds", expanding=True))
)


def _event_row(
    call_id: str, kind: str, at: datetime, actor: int | None, detail: dict[str, Any] | None
) -> sqlfast.Change:
    """One ``call_events`` row as a change for ``sqlfast``."""
    params = {"call_id": call_id, "at": at, "kind": kind, "actor_id": actor, "detail": detail}
    return INSERT_EVENT, params


async def _member(conn: AsyncConnection, call_id: str, account_id: int) -> Any:
    """The account's row in the call's members, or None."""
    query = sa.select(s.call_members).where(
        s.call_members.c.call_id == call_id, s.call_members.c.account_id == account_id
    )
    return (await conn.execute(query)).first()


class CallService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        directory: DirectoryService,
        notifier: Notifier,
        timing: Timing,
        hooks: CallHooks | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._directory = directory
        self._notifier = notifier
        self.timing = timing
        self.hooks: CallHooks = hooks or NoHooks()
        self._locks: dict[str, _KeyedLock] = {}
        # set by the socket layer: async (ids, conn) -> {id: status}; ``conn`` is the caller's
        # connection, if it holds one, for the lookups that need the database
        self.online_probe: Any = None
        # set by the socket layer: who is in an answered call may have changed (someone
        # joined one, or one ended); not called for calls that end while still ringing
        self.on_busy_change: Callable[[], Awaitable[None]] | None = None
        self.clustered = False

    # --- plumbing -------------------------------------------------------------------------

    @asynccontextmanager
    async def _locked(
        self, call_id: str, *, writes_at_end: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """One transaction per call at a time: an in-process lock, plus a row lock on
        PostgreSQL so that several nodes serialise on the call too. With ``writes_at_end``
        the caller reads first and wraps its writes in ``Database.writing`` (on SQLite only
        they wait for the writer's turn); else the whole transaction does."""
        entry = self._locks.setdefault(call_id, _KeyedLock())
        entry.users += 1
        try:
            # reads first: on the server's SQLite a pooled connection only if a write needs it
            opened = self._db.lazy() if writes_at_end else self._db.write()
            async with entry.lock, opened as conn:
                yield conn
        finally:
            entry.users -= 1
            if entry.users == 0:
                self._locks.pop(call_id, None)

    async def _flush(self, outbox: Outbox) -> None:
        for to, event, payload in outbox.items:
            if to:
                try:
                    await self._notifier.to_users(to, event, payload)
                except Exception:
                    log.exception("could not deliver %s", event)

    async def _load(
        self, conn: AsyncConnection, call_id: str, *, lock: bool = False
    ) -> tuple[Call, Any]:
        query = LOAD_CALL_LOCKED if lock and conn.dialect.name == "postgresql" else LOAD_CALL
        rows = await sqlfast.fetch(conn, query, {"call_id": call_id})
        if not rows:
            raise NotFound("没有这个通话", code="call_not_found")
        row = rows[0]
        members = [
            _Member(r.m_account_id, r.m_role, r.m_on_duty, r.m_declined_at, r.m_joined_at)
            for r in rows
            if r.m_account_id is not None
        ]
        call = Call(
            id=row.id,
            state=row.state,
            caller_id=row.caller_id,
            rung=frozenset(m.account_id for m in members if m.role == "callee" and m.on_duty),
            declined=frozenset(
                m.account_id for m in members if m.role == "callee" and m.declined_at is not None
            ),
            requested_at=row.requested_at,
            overdue_at=row.overdue_at,
            answered_at=row.answered_at,
            answered_by=row.answered_by,
            answered_late=row.answered_late,
            ended_at=row.ended_at,
            end_reason=row.end_reason,
            experts=frozenset(
                m.account_id for m in members if m.role == "expert" and m.joined_at is not None
            ),
            in_office_hours=row.in_office_hours,
        )
        return call, row

    @staticmethod
    def _stored(before: Call, after: Call) -> dict[str, Any]:
        """STORE_CALL's parameters for moving ``before`` to ``after``."""
        return {
            "b_id": before.id,
            "b_state": before.state,
            "state": after.state,
            "overdue_at": after.overdue_at,
            "answered_at": after.answered_at,
            "answered_by": after.answered_by,
            "answered_late": after.answered_late,
            "ended_at": after.ended_at,
            "end_reason": after.end_reason,
        }

    async def _store(self, conn: AsyncConnection, before: Call, after: Call) -> None:
        """Compare-and-set on the state: if another node moved the call, nothing is written
        and the caller sees ``invalid_state``."""
        changed = await sqlfast.change(conn, STORE_CALL, self._stored(before, after))
        if changed != 1:
            raise InvalidState("通话状态已被改变，请刷新", state="changed")

    async def _event(
        self,
        conn: AsyncConnection,
        call_id: str,
        kind: str,
        at: datetime,
        actor: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        await sqlfast.change(conn, *_event_row(call_id, kind, at, actor, detail))

    async def _deadline(
        self, conn: AsyncConnection, call_id: str, kind: str, due: datetime
    ) -> None:
        await self._deadlines(conn, call_id, {kind: due})

    async def _deadlines(
        self, conn: AsyncConnection, call_id: str, due: dict[str, datetime]
    ) -> None:
        """Store deadlines in one statement; the scheduler is woken for the earliest."""
        await sqlfast.change(
            conn,
            INSERT_DEADLINES,
            [{"call_id": call_id, "kind": kind, "due_at": at} for kind, at in due.items()],
        )
        self.hooks.deadline_added(min(due.values()))

    async def _cancel_deadlines(self, conn: AsyncConnection, call_id: str, *kinds: str) -> None:
        if kinds:
            await conn.execute(
                CANCEL_DEADLINES_OF_KINDS, {"b_call_id": call_id, "b_kinds": list(kinds)}
            )
        else:
            await sqlfast.change(conn, CANCEL_DEADLINES, {"b_call_id": call_id})

    # --- views ----------------------------------------------------------------------------

    def person(self, snap: DirectorySnapshot, account_id: int) -> dict[str, Any]:
        account = snap.accounts.get(account_id)
        if account is None:
            return {"username": None, "display_name": "未知人员"}
        view: dict[str, Any] = {"username": account.username, "display_name": account.display_name}
        for wid in account.window_ids:
            if wid in snap.windows:
                view["window"] = self.window_view(snap, wid)
                view["hall"] = snap.hall_of(wid).name
                break
        return view

    @staticmethod
    def window_view(snap: DirectorySnapshot, window_id: int) -> dict[str, Any]:
        window = snap.window(window_id)
        return {
            "id": window.id,
            "code": window.code,
            "name": window.name,
            "hall": snap.hall_of(window_id).name,
        }

    async def _case_brief(
        self, conn: AsyncConnection, snap: DirectorySnapshot, case_id: int
    ) -> dict[str, Any]:
        row = (await conn.execute(sa.select(s.cases).where(s.cases.c.id == case_id))).first()
        if row is None:
            return {"id": case_id}
        return self._brief(snap, row)

    @staticmethod
    def _brief(snap: DirectorySnapshot, row: Any) -> dict[str, Any]:
        """What a ringing clerk sees of the case: number, matter, masked applicant."""
        matter = snap.matter_by_id(row.matter_id)
        return {
            "id": row.id,
            "case_no": row.case_no,
            "matter_name": matter.name if matter else "",
            "applicant_name": mask_name(row.applicant_name),
        }

    def _deadlines_view(self, requested_at: datetime) -> dict[str, str]:
        return {
            "overdue_at": (requested_at + self.timing.ring_timeout).isoformat(),
            "limit_at": (requested_at + self.timing.ring_limit).isoformat(),
        }

    async def _online(self, ids: Iterable[int], conn: AsyncConnection) -> dict[int, str]:
        if self.online_probe is None:
            return {i: "offline" for i in ids}
        return dict(await self.online_probe(list(ids), conn))

    async def ringing_view(
        self, conn: AsyncConnection, snap: DirectorySnapshot, call: Call, window_id: int
    ) -> dict[str, Any]:
        # on ``conn``: a second pooled connection taken while holding one deadlocked a busy
        # cluster node once every pooled connection was held by a request waiting for one
        status = await self._online(call.rung, conn)
        on_duty = [
            {
                **self.person(snap, a),
                "online": status.get(a, "offline") not in ("offline", "unknown"),
                "presence": status.get(a, "offline"),
                "declined": a in call.declined,
            }
            for a in sorted(call.rung)
        ]
        return {
            "call_id": call.id,
            "window": self.window_view(snap, window_id),
            "on_duty": on_duty,
            "online": sum(1 for p in on_duty if p["online"]),
            "requested_at": call.requested_at.isoformat(),
            "overdue": call.became_overdue,
            **self._deadlines_view(call.requested_at),
        }

    async def incoming_view(
        self,
        conn: AsyncConnection,
        snap: DirectorySnapshot,
        call: Call,
        row: Any,
        role: str = "callee",
        *,
        brief: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "call_id": call.id,
            "role": role,
            "case": brief if brief is not None else await self._case_brief(conn, snap, row.case_id),
            "caller": self.person(snap, call.caller_id),
            "window": self.window_view(snap, row.window_id),
            "requested_at": call.requested_at.isoformat(),
            "overdue": call.became_overdue,
            **self._deadlines_view(call.requested_at),
        }

    # --- request --------------------------------------------------------------------------

    async def request(self, caller: Account, case_id: int) -> dict[str, Any]:
        try:
            return await self._request(caller, case_id)
        except _LostRace:
            # the same clerk's other request got in first (uq_calls_caller_live): its call is
            # looked up once this request's transaction has ended and given its connection
            # back (on PostgreSQL the failed transaction cannot be read from, and a second
            # connection taken while holding one can wait for ever on a busy node)
            async with self._db.connect() as conn:
                found = await sqlfast.fetch(
                    conn,
                    REQUEST_QUERY,
                    {"case_id": case_id, "caller_id": caller.id, "now": self._clock.now()},
                )
            raise Conflict(
                "您已有一个进行中的协助请求",
                code="call_already_active",
                call_id=found[0].active_call_id if found else None,
            ) from None

    async def _request(self, caller: Account, case_id: int) -> dict[str, Any]:
        snap = await self._directory.snapshot()
        now = self._clock.now()
        applicant_windows = [
            w for w in caller.window_ids if w in snap.windows and snap.windows[w].applicant_side
        ]
        if caller.role != "staff" or not applicant_windows:
            raise Forbidden("只有申请地通办窗口人员可以发起协助请求", code="not_applicant_staff")
        outbox = Outbox()
        async with self._db.lazy() as conn:  # storage/database.py: no pooled connection here
            # one statement for the case, the caller's live call and whether anyone at the
            # home window is absent now (a round trip costs more than the three lookups)
            found = await sqlfast.fetch(
                conn, REQUEST_QUERY, {"case_id": case_id, "caller_id": caller.id, "now": now}
            )
            case = found[0] if found else None
            if case is None:
                raise NotFound("没有这个案件", code="case_not_found")
            if not can_see_case(caller, case, snap):
                raise Forbidden("无权查看该案件", code="case_not_visible")
            active = case.active_call_id
            if active is not None:
                raise Conflict(
                    "您已有一个进行中的协助请求", code="call_already_active", call_id=active
                )
            window = None
            if case.home_window_id is not None:
                window = snap.windows.get(case.home_window_id)
            if window is None:
                window = snap.home_window(case.matter_id, case.region_code)
            if window is None or not window.home_side:
                raise NotFound("没有属地窗口负责该事项", code="no_home_window")
            if not snap.window_open(window.id, now):
                nxt = snap.window_next_opening(window.id, now)
                raise InvalidInput(
                    "属地窗口当前不在工作时间"
                    + (f"，下次开放时间：{nxt.astimezone(SHANGHAI):%Y-%m-%d %H:%M}" if nxt else ""),
                    code="outside_office_hours",
                    next_opening=nxt.isoformat() if nxt else None,
                )
            absences: dict[int, list[Absence]] = {}
            if case.routed_window_id != window.id or case.absent_at_window:
                # someone there is absent (or the snapshot routes elsewhere): who, exactly
                absences = await store.absences_at(
                    conn, [a.id for a in snap.staff.get(window.id, ())], now
                )
            on_duty = snap.on_duty(window.id, now, absences)
            if not on_duty:
                raise InvalidInput("属地窗口当前没有值班人员", code="no_staff_on_duty")
            call_id = str(uuid.uuid4())
            overdue_at = now + self.timing.ring_timeout
            # the call, its members, its first event and its deadlines, committed together: on
            # SQLite the only part that waits for the writer's turn, and one trip at most
            # (none on the server's loop connection, sqlfast.changes)
            try:
                async with self._db.writing(conn):
                    await sqlfast.changes(
                        conn,
                        [
                            (
                                INSERT_CALL,
                                {
                                    "id": call_id,
                                    "case_id": case.id,
                                    "caller_id": caller.id,
                                    "caller_window_id": applicant_windows[0],
                                    "window_id": window.id,
                                    "state": cs.RINGING,
                                    "requested_at": now,
                                    "in_office_hours": True,
                                },
                            ),
                            (
                                INSERT_MEMBERS,
                                [
                                    {
                                        "call_id": call_id,
                                        "account_id": caller.id,
                                        "role": "caller",
                                        "on_duty": False,
                                        "joined_at": now,
                                    }
                                ]
                                + [
                                    {
                                        "call_id": call_id,
                                        "account_id": a.id,
                                        "role": "callee",
                                        "on_duty": True,
                                        "joined_at": None,
                                    }
                                    for a in on_duty
                                ],
                            ),
                            _event_row(
                                call_id,
                                "requested",
                                now,
                                caller.id,
                                {"window": window.code, "on_duty": [a.username for a in on_duty]},
                            ),
                            (
                                INSERT_DEADLINES,
                                [
                                    {"call_id": call_id, "kind": "overdue", "due_at": overdue_at},
                                    {
                                        "call_id": call_id,
                                        "kind": "limit",
                                        "due_at": now + self.timing.ring_limit,
                                    },
                                ],
                            ),
                        ],
                        commit=True,
                    )
            except (sa.exc.IntegrityError, sqlite3.IntegrityError) as err:
                if "caller" not in str(err):
                    raise
                raise _LostRace from None
            self.hooks.deadline_added(overdue_at)
            # the call as just written: no need to read it back
            call = Call(
                id=call_id,
                state=cs.RINGING,
                caller_id=caller.id,
                rung=frozenset(a.id for a in on_duty),
                declined=frozenset(),
                requested_at=now,
            )
            ringing = await self.ringing_view(conn, snap, call, window.id)
            incoming = await self.incoming_view(
                conn, snap, call, _Where(case.id, window.id), brief=self._brief(snap, case)
            )
        outbox.add(call.rung, "call:incoming", incoming)
        outbox.add([caller.id], "call:ringing", ringing)
        await self._flush(outbox)
        return ringing

    # --- answer, decline, cancel, hang up ------------------------------------------------

    async def accept(self, who: Account, call_id: str) -> dict[str, Any]:
        snap = await self._directory.snapshot()
        now = self._clock.now()
        outbox = Outbox()
        async with self._locked(call_id) as conn:
            call, row = await self._load(conn, call_id, lock=True)
            member = await _member(conn, call_id, who.id)
            expert = member is not None and member.role == "expert"
            if expert:
                payload = await self._expert_joins(conn, snap, call, who, member, now, outbox)
            else:
                after = cs.accept(call, who.id, now)
                await self._store(conn, call, after)
                await conn.execute(
                    sa.update(s.call_members)
                    .where(
                        s.call_members.c.call_id == call_id, s.call_members.c.account_id == who.id
                    )
                    .values(joined_at=now)
                )
                await self._cancel_deadlines(conn, call_id, "overdue", "limit")
                await self._event(
                    conn, call_id, "answered", now, who.id, {"late": after.answered_late}
                )
                payload = {
                    "call_id": call_id,
                    "by": self.person(snap, who.id),
                    "answered_late": after.answered_late,
                    "participants": [self.person(snap, a) for a in sorted(after.participants)],
                    "case": await self._case_brief(conn, snap, row.case_id),
                }
                outbox.add(after.participants, "call:answered", payload)
                outbox.add(
                    call.rung - {who.id},
                    "call:taken",
                    {"call_id": call_id, "by": self.person(snap, who.id)},
                )
        await self._flush(outbox)
        await self._busy_changed()
        if not expert:
            await self.hooks.call_answered(call_id)
        return payload

    async def _expert_joins(
        self,
        conn: AsyncConnection,
        snap: DirectorySnapshot,
        call: Call,
        who: Account,
        member: Any,
        now: datetime,
        outbox: Outbox,
    ) -> dict[str, Any]:
        if call.state != cs.ANSWERED:
            raise InvalidState("通话已结束", state=call.state)
        if member.joined_at is not None and member.left_at is None:
            raise InvalidInput("您已在通话中", code="already_in_call")
        await conn.execute(
            sa.update(s.call_members)
            .where(s.call_members.c.call_id == call.id, s.call_members.c.account_id == who.id)
            .values(joined_at=now, left_at=None, declined_at=None)
        )
        await self._event(conn, call.id, "expert_joined", now, who.id)
        participants = call.participants | {who.id}
        payload = {
            "call_id": call.id,
            "by": self.person(snap, who.id),
            "answered_late": call.answered_late,
            "participants": [self.person(snap, a) for a in sorted(participants)],
            "role": "expert",
        }
        outbox.add(
            call.participants,
            "call:joined",
            {"call_id": call.id, "who": self.person(snap, who.id), "role": "expert"},
        )
        outbox.add([who.id], "call:answered", payload)
        return payload

    async def decline(self, who: Account, call_id: str, reason: str) -> None:
        snap = await self._directory.snapshot()
        now = self._clock.now()
        outbox = Outbox()
        reason = reason.strip()
        async with self._locked(call_id) as conn:
            call, _row = await self._load(conn, call_id, lock=True)
            member = await _member(conn, call_id, who.id)
            if member is not None and member.role == "expert":
                if not reason:
                    raise InvalidInput("拒绝时必须说明理由", code="reason_required")
                await conn.execute(
                    sa.update(s.call_members)
                    .where(
                        s.call_members.c.call_id == call_id, s.call_members.c.account_id == who.id
                    )
                    .values(declined_at=now, decline_reason=reason[:500])
                )
                await self._event(conn, call_id, "expert_declined", now, who.id, {"reason": reason})
                outbox.add(
                    call.participants,
                    "call:declined",
                    {
                        "call_id": call_id,
                        "by": self.person(snap, who.id),
                        "reason": reason,
                        "remaining": 0,
                        "role": "expert",
                    },
                )
                after = call
            else:
                after = cs.decline(call, who.id, reason, now)
                await conn.execute(
                    sa.update(s.call_members)
                    .where(
                        s.call_members.c.call_id == call_id, s.call_members.c.account_id == who.id
                    )
                    .values(declined_at=now, decline_reason=reason[:500])
                )
                await self._event(conn, call_id, "declined", now, who.id, {"reason": reason})
                if after.state != call.state:
                    await self._store(conn, call, after)
                    await self._cancel_deadlines(conn, call_id)
                    await self._event(conn, call_id, "ended", now, None, {"reason": "declined"})
                outbox.add(
                    [call.caller_id],
                    "call:declined",
                    {
                        "call_id": call_id,
                        "by": self.person(snap, who.id),
                        "reason": reason,
                        "remaining": len(after.rung - after.declined),
                    },
                )
                if after.state == cs.DECLINED:
                    outbox.add(
                        call.rung | {call.caller_id},
                        "call:ended",
                        {"call_id": call_id, "reason": "declined"},
                    )
        await self._flush(outbox)
        if after.state in cs.FINAL_STATES:
            await self.hooks.call_finished(call_id)

    async def cancel(self, who: Account, call_id: str) -> None:
        await self._finish(call_id, lambda call, now: cs.cancel(call, who.id, now), who.id)

    async def hangup(self, who: Account, call_id: str) -> None:
        await self._finish(call_id, lambda call, now: cs.hang_up(call, who.id, now), who.id)

    async def end_for(self, call_id: str, reason: str, *, deadline_id: int | None = None) -> bool:
        """A deadline or the media layer ends a call; False if it had already moved on."""

        def transition(call: Call, now: datetime) -> Call:
            if reason == "missed":
                return cs.reach_limit(call, now)
            if call.state in cs.RINGING_STATES:
                return cs.cancel(call, call.caller_id, now)
            return cs.hang_up(call, None, now, reason)

        try:
            await self._finish(call_id, transition, None, deadline_id=deadline_id)
        except (InvalidState, NotFound):
            return False
        return True

    async def _finish(
        self, call_id: str, transition: Any, actor: int | None, *, deadline_id: int | None = None
    ) -> None:
        snap = await self._directory.snapshot()
        now = self._clock.now()
        outbox = Outbox()
        # a deadline's claim is a write: then the whole transaction takes the writer's turn
        async with self._locked(call_id, writes_at_end=deadline_id is None) as conn:
            if deadline_id is not None and not await self._claim(conn, deadline_id, now):
                return
            call, row = await self._load(conn, call_id, lock=True)
            try:
                after: Call = transition(call, now)
            except (InvalidState, Forbidden):
                if deadline_id is not None:
                    return  # the call moved on; the claim commits and the deadline is spent
                raise
            reason = after.end_reason or after.state
            steps: list[sqlfast.Change] = [
                (STORE_CALL, self._stored(call, after)),
                (CANCEL_DEADLINES, {"b_call_id": call_id}),
                _event_row(call_id, "ended", now, actor, {"reason": reason, "state": after.state}),
            ]
            if after.answered_by is not None:
                steps.append((LEAVE_CALL, {"b_call_id": call_id, "left_at": now}))
            missed = cs.responsible_for_miss(after)
            async with self._db.writing(conn):
                # the state's compare-and-set, the deadlines, the event: one trip at most on
                # SQLite (sqlfast.changes)
                stored, *_ = await sqlfast.changes(conn, steps, commit=not missed, first_changes=1)
                if stored != 1:
                    raise InvalidState("通话状态已被改变，请刷新", state="changed")
                await self._record_misses(conn, snap, after, row, missed, now)
            everyone = call.rung | {call.caller_id} | after.participants
            if after.state == cs.MISSED:
                outbox.add(everyone, "call:missed", {"call_id": call_id})
            ended: dict[str, Any] = {"call_id": call_id, "reason": reason, "state": after.state}
            if actor is not None:
                ended["by"] = self.person(snap, actor)
            outbox.add(everyone, "call:ended", ended)
        await self._flush(outbox)
        if call.state == cs.ANSWERED:  # a call that ends ringing had nobody in it yet
            await self._busy_changed()
        await self.hooks.call_finished(call_id)

    async def _record_misses(
        self,
        conn: AsyncConnection,
        snap: DirectorySnapshot,
        call: Call,
        row: Any,
        accounts: frozenset[int],
        now: datetime,
    ) -> None:
        for account_id in sorted(accounts):
            account = snap.accounts.get(account_id)
            if account is None:
                continue
            exists = await conn.scalar(
                sa.select(s.misses.c.id).where(
                    s.misses.c.call_id == call.id, s.misses.c.account_id == account_id
                )
            )
            if exists is not None:
                continue
            await conn.execute(
                sa.insert(s.misses).values(
                    call_id=call.id,
                    account_id=account_id,
                    window_id=row.window_id,
                    agency_id=account.agency_id,
                    occurred_at=now,
                    month=month_of(now),
                    status="pending",
                    updated_at=now,
                )
            )

    # --- deadlines ------------------------------------------------------------------------

    async def _claim(self, conn: AsyncConnection, deadline_id: int, now: datetime) -> bool:
        """Mark a deadline fired in the same transaction as its effect: it fires once."""
        result = await conn.execute(
            sa.update(s.deadlines)
            .where(s.deadlines.c.id == deadline_id, s.deadlines.c.fired_at.is_(None))
            .values(fired_at=now)
        )
        return result.rowcount == 1

    async def fire(self, deadline_id: int, call_id: str, kind: str) -> None:
        try:
            if kind == "overdue":
                await self._overdue(deadline_id, call_id)
            elif kind == "limit":
                await self.end_for(call_id, "missed", deadline_id=deadline_id)
            elif kind.startswith("grace:"):
                await self.end_for(call_id, "connection_lost", deadline_id=deadline_id)
            else:
                log.error("unknown deadline kind %s", kind)
        except Exception:
            log.exception("deadline %s (%s) of call %s failed", deadline_id, kind, call_id)
            raise

    async def _overdue(self, deadline_id: int, call_id: str) -> None:
        snap = await self._directory.snapshot()
        now = self._clock.now()
        outbox = Outbox()
        async with self._locked(call_id) as conn:
            if not await self._claim(conn, deadline_id, now):
                return
            call, row = await self._load(conn, call_id, lock=True)
            if call.state != cs.RINGING:
                return  # answered or ended meanwhile; the claim commits, nothing else
            after = cs.mark_overdue(call, now)
            await self._store(conn, call, after)
            await self._event(conn, call_id, "overdue", now)
            window = snap.window(row.window_id)
            caller_hall = self.person(snap, call.caller_id).get("hall", "")
            reminded = []
            for account_id in sorted(after.rung - after.declined):
                account = snap.accounts.get(account_id)
                if account is None or not account.mobile:
                    continue
                await enqueue(
                    conn,
                    dedupe_key=f"reminder:{call_id}:{account_id}",
                    account_id=account_id,
                    phone=account.mobile,
                    template="reminder",
                    params={"window": window.name, "hall": caller_hall, "call_id": call_id},
                    now=now,
                )
                reminded.append(
                    {"display_name": account.display_name, "mobile": mask_phone(account.mobile)}
                )
            payload = {
                "call_id": call_id,
                "reminded": reminded,
                "sms": bool(reminded),
                "overdue_at": now.isoformat(),
            }
        outbox.add([call.caller_id, *sorted(after.rung - after.declined)], "call:overdue", payload)
        await self._flush(outbox)
        self.hooks.sms_queued()

    async def due_deadlines(self, now: datetime, limit: int = 100) -> list[tuple[int, str, str]]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                sa.select(s.deadlines.c.id, s.deadlines.c.call_id, s.deadlines.c.kind)
                .where(s.deadlines.c.fired_at.is_(None), s.deadlines.c.due_at <= now)
                .order_by(s.deadlines.c.due_at)
                .limit(limit)
            )
            return [(r.id, r.call_id, r.kind) for r in rows]

    async def next_deadline(self) -> datetime | None:
        async with self._db.connect() as conn:
            due: datetime | None = await conn.scalar(
                sa.select(sa.func.min(s.deadlines.c.due_at)).where(s.deadlines.c.fired_at.is_(None))
            )
        return due

    async def end_orphaned_calls(self, node_id: str | None) -> int:
        """At start-up: answered calls lost their media with the process that carried it
        (in a cluster, only the calls whose media this node carried)."""
        query = sa.select(s.calls.c.id).where(s.calls.c.state == cs.ANSWERED)
        if node_id is not None:
            query = query.where(s.calls.c.media_node == node_id)
        async with self._db.connect() as conn:
            ids = list(await conn.scalars(query))
        ended = 0
        for call_id in ids:
            ended += await self.end_for(call_id, "media_failure")
        return ended

    # --- connection loss ------------------------------------------------------------------

    async def participant_dropped(self, account_id: int) -> None:
        """The last socket of an account closed: its live calls get a grace period."""
        now = self._clock.now()
        snap = await self._directory.snapshot()
        for call_id in await self.live_calls_of(account_id, participants_only=True):
            outbox = Outbox()
            async with self._locked(call_id) as conn:
                call, _row = await self._load(conn, call_id)
                if call.state not in cs.LIVE_STATES:
                    continue
                if call.state != cs.ANSWERED and account_id != call.caller_id:
                    continue  # a callee dropping while it rings leaves the others ringing
                kind = f"grace:{account_id}"
                await self._cancel_deadlines(conn, call_id, kind)
                await self._deadline(conn, call_id, kind, now + self.timing.reconnect_grace)
                await self._event(conn, call_id, "dropped", now, account_id)
                outbox.add(
                    call.participants - {account_id},
                    "call:reconnecting",
                    {
                        "call_id": call_id,
                        "who": self.person(snap, account_id),
                        "grace_s": self.timing.reconnect_grace.total_seconds(),
                    },
                )
            await self._flush(outbox)

    async def participant_back(self, account_id: int) -> list[str]:
        """An account reconnected: lift its grace periods; returns its live call ids."""
        calls = await self.live_calls_of(account_id, participants_only=True)
        if calls:  # most connections have no live call: no empty transaction for them
            async with self._db.write() as conn:
                for call_id in calls:
                    await self._cancel_deadlines(conn, call_id, f"grace:{account_id}")
        return calls

    async def live_calls_of(self, account_id: int, *, participants_only: bool = False) -> list[str]:
        async with self._db.connect() as conn:
            query = (
                sa.select(
                    s.calls.c.id,
                    s.calls.c.state,
                    s.call_members.c.role,
                    s.call_members.c.joined_at,
                    s.call_members.c.left_at,
                    s.call_members.c.declined_at,
                )
                .join(s.call_members, s.call_members.c.call_id == s.calls.c.id)
                .where(
                    s.call_members.c.account_id == account_id, s.calls.c.state.in_(cs.LIVE_STATES)
                )
            )
            out = []
            for r in await conn.execute(query):
                if participants_only and (r.joined_at is None or r.left_at is not None):
                    continue
                if r.declined_at is not None:
                    continue
                out.append(r.id)
            return out

    async def pending_for(self, account: Account) -> list[tuple[str, dict[str, Any]]]:
        """Events a (re)connecting user must see: calls ringing for them, and their own
        ringing or answered calls."""
        snap = await self._directory.snapshot()
        out: list[tuple[str, dict[str, Any]]] = []
        async with self._db.connect() as conn:
            rows = list(
                await conn.execute(
                    sa.select(
                        s.calls,
                        s.call_members.c.role.label("member_role"),
                        s.call_members.c.joined_at.label("member_joined"),
                        s.call_members.c.declined_at.label("member_declined"),
                    )
                    .join(s.call_members, s.call_members.c.call_id == s.calls.c.id)
                    .where(
                        s.call_members.c.account_id == account.id,
                        s.calls.c.state.in_(cs.LIVE_STATES),
                    )
                )
            )
            for r in rows:
                call, row = await self._load(conn, r.id)
                if r.member_declined is not None:
                    continue
                if call.state in cs.RINGING_STATES and r.member_role == "callee":
                    out.append(("call:incoming", await self.incoming_view(conn, snap, call, row)))
                elif call.state in cs.RINGING_STATES and r.member_role == "caller":
                    out.append(
                        ("call:ringing", await self.ringing_view(conn, snap, call, row.window_id))
                    )
                elif (
                    call.state == cs.ANSWERED
                    and r.member_role == "expert"
                    and r.member_joined is None
                ):
                    out.append(
                        ("call:incoming", await self.incoming_view(conn, snap, call, row, "expert"))
                    )
        return out

    async def busy_accounts(
        self, among: Iterable[int] | None = None, conn: AsyncConnection | None = None
    ) -> set[int]:
        """Everyone in an answered call right now (of ``among``, when given: a lookup by
        account instead of a pass over every answered call); on ``conn`` if given (a caller
        that holds a connection must not wait for a second one)."""
        query = (
            sa.select(s.call_members.c.account_id)
            .join(s.calls, s.calls.c.id == s.call_members.c.call_id)
            .where(
                s.calls.c.state == cs.ANSWERED,
                s.call_members.c.joined_at.is_not(None),
                s.call_members.c.left_at.is_(None),
            )
        )
        if among is not None:
            wanted = sorted(set(among))
            if not wanted:
                return set()
            query = query.where(s.call_members.c.account_id.in_(wanted))
        if conn is not None:
            return {r.account_id for r in await conn.execute(query)}
        async with self._db.connect() as own:
            return {r.account_id for r in await own.execute(query)}

    async def _busy_changed(self) -> None:
        if self.on_busy_change is not None:
            try:
                await self.on_busy_change()
            except Exception:
                log.exception("could not refresh who is in a call")

    async def refresh_ringing_for(self, account_id: int) -> None:
        """Someone rung by a call came or went: its caller sees who is online now."""
        snap = await self._directory.snapshot()
        outbox = Outbox()
        async with self._db.connect() as conn:
            ids = list(
                await conn.scalars(
                    sa.select(s.calls.c.id)
                    .join(s.call_members, s.call_members.c.call_id == s.calls.c.id)
                    .where(
                        s.call_members.c.account_id == account_id,
                        s.call_members.c.role == "callee",
                        s.calls.c.state.in_(cs.RINGING_STATES),
                    )
                )
            )
            for call_id in ids:
                call, row = await self._load(conn, call_id)
                view = await self.ringing_view(conn, snap, call, row.window_id)
                outbox.add([call.caller_id], "call:ringing", view)
        await self._flush(outbox)

    # --- expert, rating, unnecessary -----------------------------------------------------

    async def invite(self, who: Account, call_id: str, username: str) -> None:
        snap = await self._directory.snapshot()
        now = self._clock.now()
        expert = snap.account_by_username(username)
        if expert is None or expert.disabled:
            raise NotFound(f"没有账号 {username}", code="account_not_found")
        if expert.role != "expert":
            raise InvalidInput(f"{username} 不是业务部门专家", code="not_an_expert")
        outbox = Outbox()
        async with self._locked(call_id) as conn:
            call, row = await self._load(conn, call_id, lock=True)
            home_agency = snap.agency_of_window(row.window_id)
            if expert.agency_id not in snap.subtree(home_agency.id):
                raise Forbidden("只能邀请属地业务部门的专家", code="expert_not_local")
            cs.invite(call, who.id, expert.id)
            existing = await _member(conn, call_id, expert.id)
            if existing is None:
                await conn.execute(
                    sa.insert(s.call_members).values(
                        call_id=call_id, account_id=expert.id, role="expert", invited_at=now
                    )
                )
            else:
                await conn.execute(
                    sa.update(s.call_members)
                    .where(
                        s.call_members.c.call_id == call_id,
                        s.call_members.c.account_id == expert.id,
                    )
                    .values(invited_at=now, declined_at=None, decline_reason=None)
                )
            await self._event(
                conn, call_id, "expert_invited", now, who.id, {"expert": expert.username}
            )
            incoming = await self.incoming_view(conn, snap, call, row, "expert")
            incoming["invited_by"] = self.person(snap, who.id)
        outbox.add([expert.id], "call:incoming", incoming)
        await self._flush(outbox)

    async def rate(self, who: Account, call_id: str, score: int, comment: str) -> None:
        now = self._clock.now()
        async with self._locked(call_id) as conn:
            member = await _member(conn, call_id, who.id)
            if member is None or member.joined_at is None:
                raise Forbidden("只有通话参与者可以评价", code="not_participant")
            await conn.execute(
                sa.update(s.call_members)
                .where(s.call_members.c.call_id == call_id, s.call_members.c.account_id == who.id)
                .values(rating=score, rating_comment=comment[:500], rated_at=now)
            )
            await self._event(conn, call_id, "rated", now, who.id, {"score": score})

    async def mark_unnecessary(self, who: Account, call_id: str, unnecessary: bool) -> None:
        now = self._clock.now()
        async with self._locked(call_id) as conn:
            call, _row = await self._load(conn, call_id)
            if who.id not in call.rung and who.id != call.answered_by:
                raise Forbidden("只有属地窗口人员可以标记无必要的协助请求", code="not_home_staff")
            await conn.execute(
                sa.update(s.calls)
                .where(s.calls.c.id == call_id)
                .values(unnecessary=unnecessary, unnecessary_by=who.id if unnecessary else None)
            )
            await self._event(
                conn, call_id, "unnecessary" if unnecessary else "necessary", now, who.id
            )

    # --- reading ------------------------------------------------------------------------

    async def require_participant(self, who: Account, call_id: str) -> Call:
        async with self._db.connect() as conn:
            call, _row = await self._load(conn, call_id)
        if call.state != cs.ANSWERED or who.id not in call.participants:
            raise Forbidden("您不在这个通话中", code="not_participant")
        return call

    async def view(self, who: Account, call_id: str) -> dict[str, Any]:
        snap = await self._directory.snapshot()
        async with self._db.connect() as conn:
            call, row = await self._load(conn, call_id)
            case = (await conn.execute(sa.select(s.cases).where(s.cases.c.id == row.case_id))).one()
            members = list(
                await conn.execute(
                    sa.select(s.call_members).where(s.call_members.c.call_id == call_id)
                )
            )
            if not (
                who.id in {m.account_id for m in members}
                or (
                    who.role in ("supervisor", "auditor", "admin") and can_see_case(who, case, snap)
                )
            ):
                raise Forbidden("无权查看该通话", code="forbidden")
            events = list(
                await conn.execute(
                    sa.select(s.call_events)
                    .where(s.call_events.c.call_id == call_id)
                    .order_by(s.call_events.c.id)
                )
            )
            brief = await self._case_brief(conn, snap, row.case_id)

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": call.id,
            "case": brief,
            "state": call.state,
            "requested_at": iso(row.requested_at),
            "overdue_at": iso(row.overdue_at),
            "answered_at": iso(row.answered_at),
            "ended_at": iso(row.ended_at),
            "end_reason": row.end_reason,
            "answered_late": row.answered_late,
            "unnecessary": row.unnecessary,
            "in_office_hours": row.in_office_hours,
            "caller": self.person(snap, call.caller_id),
            "answered_by": self.person(snap, row.answered_by) if row.answered_by else None,
            "window": self.window_view(snap, row.window_id),
            "members": [
                {
                    **self.person(snap, m.account_id),
                    "role": m.role,
                    "on_duty": m.on_duty,
                    "declined_at": iso(m.declined_at),
                    "decline_reason": m.decline_reason,
                    "invited_at": iso(m.invited_at),
                    "joined_at": iso(m.joined_at),
                    "left_at": iso(m.left_at),
                    "rating": m.rating,
                }
                for m in members
            ],
            "events": [
                {
                    "at": iso(e.at),
                    "kind": e.kind,
                    "actor": snap.accounts[e.actor_id].username
                    if e.actor_id in snap.accounts
                    else None,
                    "detail": e.detail,
                }
                for e in events
            ],
            "deadlines": self._deadlines_view(row.requested_at),
        }
