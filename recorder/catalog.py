"""Finding recordings for auditors and supervisors (R7, R11): one joined query per page.

Jurisdiction: an auditor or supervisor sees a recording when the agency subtree of their own
agency contains the agency of EITHER window of the call (the caller's window or the
home-locality window); the provincial admin sees all. Scope is applied in SQL through the
windows' halls, so a province-level reader costs the same query as a county one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.model import Account
from directory.snapshot import DirectorySnapshot
from recorder.retention import SHANGHAI
from recorder.views import plan_views
from storage import schema as s

READER_ROLES = ("auditor", "supervisor", "admin")
HOLD_ROLES = ("auditor", "supervisor")
MAX_ROWS = 500

_cw = s.windows.alias("caller_window")
_hw = s.windows.alias("home_window")
_ch = s.halls.alias("caller_hall")
_hh = s.halls.alias("home_hall")
_r = s.recordings
_calls = s.calls


@dataclass(frozen=True, slots=True)
class Filters:
    case_no: str = ""
    day_from: date | None = None  # Asia/Shanghai calendar days, both inclusive
    day_to: date | None = None
    window: str = ""  # window code, either side
    staff: str = ""  # username of anyone who took part
    limit: int = MAX_ROWS


def scope_of(account: Account, snap: DirectorySnapshot) -> frozenset[int] | None:
    """Agency ids whose calls the account may see; ``None`` means everything (admin)."""
    if account.role == "admin":
        return None
    if account.role in ("auditor", "supervisor"):
        return snap.subtree(account.agency_id)
    return frozenset()


def may_read(account: Account, scope: frozenset[int] | None, agencies: Collection[int]) -> bool:
    if account.role not in READER_ROLES:
        return False
    return scope is None or any(a in scope for a in agencies)


def local_day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=SHANGHAI)


def _joined() -> Any:
    return (
        _r.join(_calls, _calls.c.id == _r.c.call_id)
        .join(s.cases, s.cases.c.id == _r.c.case_id)
        .join(s.matters, s.matters.c.id == s.cases.c.matter_id)
        .join(_cw, _cw.c.id == _calls.c.caller_window_id)
        .join(_ch, _ch.c.id == _cw.c.hall_id)
        .join(_hw, _hw.c.id == _calls.c.window_id)
        .join(_hh, _hh.c.id == _hw.c.hall_id)
    )


_COLUMNS = (
    _r.c.id,
    _r.c.call_id,
    _r.c.case_id,
    _r.c.state,
    _r.c.blob_key,
    _r.c.started_at,
    _r.c.ended_at,
    _r.c.duration_s,
    _r.c.size_bytes,
    _r.c.codecs,
    _r.c.sha256,
    _r.c.tracks,
    _r.c.expires_at,
    _r.c.legal_hold,
    _r.c.legal_hold_reason,
    _r.c.deleted_at,
    _r.c.error,
    s.cases.c.case_no,
    s.matters.c.code.label("matter_code"),
    s.matters.c.name.label("matter_name"),
    _cw.c.code.label("caller_window_code"),
    _cw.c.name.label("caller_window_name"),
    _ch.c.name.label("caller_hall_name"),
    _ch.c.agency_id.label("caller_agency_id"),
    _hw.c.code.label("home_window_code"),
    _hw.c.name.label("home_window_name"),
    _hh.c.name.label("home_hall_name"),
    _hh.c.agency_id.label("home_agency_id"),
)


def _in_scope(scope: frozenset[int] | None) -> sa.ColumnElement[bool]:
    if scope is None:
        return sa.true()
    ids = sorted(scope)
    return sa.or_(_ch.c.agency_id.in_(ids), _hh.c.agency_id.in_(ids))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(
    conn: AsyncConnection, scope: frozenset[int] | None, filters: Filters
) -> tuple[list[dict[str, Any]], bool]:
    """Rows newest first, and whether more than ``limit`` matched."""
    where: list[sa.ColumnElement[bool]] = [_in_scope(scope)]
    if filters.case_no:
        where.append(s.cases.c.case_no.like(_escape_like(filters.case_no) + "%", escape="\\"))
    if filters.day_from is not None:
        where.append(_r.c.started_at >= local_day_start(filters.day_from))
    if filters.day_to is not None:
        where.append(_r.c.started_at < local_day_start(filters.day_to + timedelta(days=1)))
    if filters.window:
        where.append(sa.or_(_cw.c.code == filters.window, _hw.c.code == filters.window))
    if filters.staff:
        where.append(
            sa.exists(
                sa.select(1)
                .select_from(
                    s.call_members.join(s.accounts, s.accounts.c.id == s.call_members.c.account_id)
                )
                .where(
                    s.call_members.c.call_id == _r.c.call_id,
                    s.accounts.c.username == filters.staff,
                )
            )
        )
    query = (
        sa.select(*_COLUMNS)
        .select_from(_joined())
        .where(*where)
        .order_by(_r.c.started_at.desc(), _r.c.id.desc())
        .limit(filters.limit + 1)
    )
    rows = list(await conn.execute(query))
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    people = await participants(conn, [r.call_id for r in rows])
    return [present(r, people.get(r.call_id, [])) for r in rows], more


async def load(conn: AsyncConnection, recording_id: int) -> Any:
    """One recording with its case and both windows, or ``None``."""
    query = sa.select(*_COLUMNS).select_from(_joined()).where(_r.c.id == recording_id)
    return (await conn.execute(query)).first()


async def participants(
    conn: AsyncConnection, call_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Who took part in each call (joined it), caller first."""
    if not call_ids:
        return {}
    m, a = s.call_members, s.accounts
    rows = await conn.execute(
        sa.select(m.c.call_id, m.c.role, m.c.joined_at, a.c.username, a.c.display_name)
        .select_from(m.join(a, a.c.id == m.c.account_id))
        .where(m.c.call_id.in_(call_ids), m.c.joined_at.is_not(None))
        .order_by(m.c.call_id, m.c.joined_at, a.c.username)
    )
    order = {"caller": 0, "callee": 1, "expert": 2}
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r.call_id, []).append(
            {"username": r.username, "display_name": r.display_name, "role": r.role}
        )
    for people in out.values():
        people.sort(key=lambda p: order.get(p["role"], 9))
    return out


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(SHANGHAI).isoformat() if value is not None else None


def _views(tracks: list[Any], people: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The playable views, the caller's first, then the answerer's, then experts'."""
    order = {p["username"]: n for n, p in enumerate(people)}
    views = sorted(plan_views(tracks), key=lambda v: order.get(v.participant, len(order)))
    return [v.public() for v in views]


def present(row: Any, people: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON of one recording (times in Asia/Shanghai with their offset)."""
    tracks = row.tracks or []
    windows = {
        "caller": {
            "code": row.caller_window_code,
            "name": row.caller_window_name,
            "hall": row.caller_hall_name,
        },
        "home": {
            "code": row.home_window_code,
            "name": row.home_window_name,
            "hall": row.home_hall_name,
        },
    }
    for person in people:
        side = windows["caller"] if person["role"] == "caller" else windows["home"]
        person["window"] = side["name"]
        person["hall"] = side["hall"]
    return {
        "id": row.id,
        "call_id": row.call_id,
        "case_id": row.case_id,
        "case_no": row.case_no,
        "matter": {"code": row.matter_code, "name": row.matter_name},
        "applicant_window": windows["caller"],
        "home_window": windows["home"],
        "participants": people,
        "state": row.state,
        "started_at": _iso(row.started_at),
        "ended_at": _iso(row.ended_at),
        "duration_s": row.duration_s,
        "size_bytes": row.size_bytes,
        "codecs": row.codecs.split(",") if row.codecs else [],
        "tracks": [
            {k: t.get(k) for k in ("title", "participant", "label", "kind", "codec")}
            for t in tracks
            if isinstance(t, dict)
        ],
        # one playable view per party and video source (GET /api/recordings/{id}/play)
        "views": _views(tracks, people) if row.state == "ready" else [],
        "expires_at": _iso(row.expires_at),
        "expires_on": row.expires_at.astimezone(SHANGHAI).date().isoformat(),
        "legal_hold": bool(row.legal_hold),
        "legal_hold_reason": row.legal_hold_reason,
        "deleted_at": _iso(row.deleted_at),
        "error": row.error,
    }
