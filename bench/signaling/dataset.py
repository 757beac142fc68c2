"""Benchmark data on top of `tongban demo`: home windows open around the clock, their staff,
applicant-side callers, cases, and sessions with known tokens.

Written with SQLAlchemy Core in bulk. One argon2 hash serves every account (nobody logs in:
the sessions are inserted directly, the `sessions` table keeps sha256(token) as `id`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.passwords import hash_password
from storage import schema as s
from storage.db import create_engine, migrate

WINDOWS_PER_HALL = 5
APPLICANT_WINDOW = "ZZ-TB-01"  # from the demo data: applicant side, Zhengzhou, 24 h
APPLICANT_AGENCY = "410100"
CASES_PER_WINDOW = 2


@dataclass
class BenchWindow:
    index: int
    id: int
    staff_tokens: list[str] = field(default_factory=list)
    case_ids: list[int] = field(default_factory=list)


@dataclass
class Dataset:
    windows: list[BenchWindow]
    caller_tokens: list[str]

    @property
    def staff(self) -> int:
        return sum(len(w.staff_tokens) for w in self.windows)


def _token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


async def _ids(conn: AsyncConnection, table: sa.Table, key: str, values: list[str]) -> list[int]:
    """Ids of freshly inserted rows, in the order of their unique ``key`` values."""
    rows = await conn.execute(sa.select(table.c.id, table.c[key]).where(table.c[key].in_(values)))
    by_key = {r[1]: r[0] for r in rows}
    return [by_key[v] for v in values]


async def _bulk(conn: AsyncConnection, table: sa.Table, rows: list[dict[str, object]]) -> None:
    for start in range(0, len(rows), 2000):
        await conn.execute(sa.insert(table), rows[start : start + 2000])


async def build(url: str, staff: int, per_window: int, callers: int) -> Dataset:
    """Add the benchmark population to a database that already holds the demo data."""
    engine = create_engine(url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            return await _build(conn, staff, per_window, callers)
    finally:
        await engine.dispose()


async def _build(conn: AsyncConnection, staff: int, per_window: int, callers: int) -> Dataset:
    now = datetime.now(UTC)
    password = hash_password("Bench#2026-" + secrets.token_hex(4))
    counties = list(
        await conn.execute(
            sa.select(s.agencies.c.id, s.agencies.c.region_code)
            .where(s.agencies.c.level == "county")
            .order_by(s.agencies.c.region_code)
        )
    )
    zz_agency = await conn.scalar(
        sa.select(s.agencies.c.id).where(s.agencies.c.region_code == APPLICANT_AGENCY)
    )
    applicant_window = await conn.scalar(
        sa.select(s.windows.c.id).where(s.windows.c.code == APPLICANT_WINDOW)
    )
    assert zz_agency is not None and applicant_window is not None, "run `tongban demo` first"

    n_windows = -(-staff // per_window)
    n_halls = -(-n_windows // WINDOWS_PER_HALL)
    hall_names = [f"基准测试政务服务中心{h:04d}" for h in range(n_halls)]
    hall_agency = [counties[h % len(counties)] for h in range(n_halls)]
    await _bulk(
        conn,
        s.halls,
        [{"name": n, "agency_id": a.id} for n, a in zip(hall_names, hall_agency, strict=True)],
    )
    hall_ids = await _ids(conn, s.halls, "name", hall_names)
    await _bulk(
        conn,
        s.office_hours,
        [{"hall_id": h, "days": "everyday", "opens": "00:00", "closes": "24:00"} for h in hall_ids],
    )
    window_codes = [f"BENCH-W-{w:05d}" for w in range(n_windows)]
    await _bulk(
        conn,
        s.windows,
        [
            {
                "hall_id": hall_ids[w // WINDOWS_PER_HALL],
                "code": code,
                "name": f"基准属地窗口{w:05d}",
                "kind": "home",
            }
            for w, code in enumerate(window_codes)
        ],
    )
    window_ids = await _ids(conn, s.windows, "code", window_codes)
    # each window owns its own matter for the region of its hall's agency
    matter_codes = [f"BENCH-M-{w:05d}" for w in range(n_windows)]
    await _bulk(
        conn,
        s.matters,
        [
            {"code": c, "name": f"基准测试事项{w:05d}", "department": "基准"}
            for w, c in enumerate(matter_codes)
        ],
    )
    matter_ids = await _ids(conn, s.matters, "code", matter_codes)
    region_of = [hall_agency[w // WINDOWS_PER_HALL].region_code for w in range(n_windows)]
    await _bulk(
        conn,
        s.window_matters,
        [
            {"window_id": window_ids[w], "matter_id": matter_ids[w], "region_code": region_of[w]}
            for w in range(n_windows)
        ],
    )

    def account(username: str, agency_id: int, i: int) -> dict[str, object]:
        return {
            "username": username,
            "display_name": f"基准{i:05d}",
            "role": "staff",
            "agency_id": agency_id,
            "mobile": f"139{i:08d}",
            "department": "",
            "password_hash": password,
            "disabled": False,
            "failed_logins": 0,
            "password_changed_at": now,
            "created_at": now,
        }

    staff_names = [f"bench.s{i:05d}" for i in range(staff)]
    caller_names = [f"bench.c{i:05d}" for i in range(callers)]
    await _bulk(
        conn,
        s.accounts,
        [
            account(n, hall_agency[(i // per_window) // WINDOWS_PER_HALL].id, i)
            for i, n in enumerate(staff_names)
        ]
        + [account(n, zz_agency, staff + i) for i, n in enumerate(caller_names)],
    )
    staff_ids = await _ids(conn, s.accounts, "username", staff_names)
    caller_ids = await _ids(conn, s.accounts, "username", caller_names)
    await _bulk(
        conn,
        s.account_windows,
        [
            {"account_id": a, "window_id": window_ids[i // per_window]}
            for i, a in enumerate(staff_ids)
        ]
        + [{"account_id": a, "window_id": applicant_window} for a in caller_ids],
    )
    case_nos = [f"BENCH-{w:05d}-{k}" for w in range(n_windows) for k in range(CASES_PER_WINDOW)]
    await _bulk(
        conn,
        s.cases,
        [
            {
                "case_no": no,
                "matter_id": matter_ids[w],
                "region_code": region_of[w],
                "applicant_name": "王小明",
                "applicant_id_number": "41072719900101123X",
                "applicant_phone": "13900000000",
                "applicant_window_id": applicant_window,
                "home_window_id": window_ids[w],
                "created_by": caller_ids[0],
                "created_at": now,
            }
            for no, w in zip(
                case_nos,
                [w for w in range(n_windows) for _ in range(CASES_PER_WINDOW)],
                strict=True,
            )
        ],
    )
    case_ids = await _ids(conn, s.cases, "case_no", case_nos)
    windows = [BenchWindow(w, window_ids[w]) for w in range(n_windows)]
    for i, cid in enumerate(case_ids):
        windows[i // CASES_PER_WINDOW].case_ids.append(cid)
    sessions: list[dict[str, object]] = []
    caller_tokens: list[str] = []
    for i, account_id in enumerate(staff_ids + caller_ids):
        token, sid = _token()
        sessions.append(
            {
                "id": sid,
                "account_id": account_id,
                "created_at": now,
                "last_seen_at": now,
                "expires_at": now + timedelta(hours=12),
                "source": "bench",
            }
        )
        if i < staff:
            windows[i // per_window].staff_tokens.append(token)
        else:
            caller_tokens.append(token)
    await _bulk(conn, s.sessions, sessions)
    return Dataset(windows, caller_tokens)
