"""The monthly report over a generated month on PostgreSQL (issue 7: 1,000,000 calls and
10,000 staff, the report in at most 1 s).

    .venv/bin/python -m bench.report.run [--calls 1000000] [--staff 10000] [--keep] [--scratch]

1. Creates a fresh database, migrates it, loads the demo data, then generates November 2026
   (Asia/Shanghai) with set-based SQL (INSERT ... SELECT over generate_series): ~100 halls
   over the demo's city and county agencies (one in four open around the clock, the others
   working days 09:00-12:00 and 13:00-17:00), 10 home windows per hall and 10 staff per
   window, one applicant window and caller per hall, two calls per case, calls inserted in
   time order with realistic outcomes, call members (the caller and three rung staff),
   misses with their verdicts, and presence intervals (a few per staff member per day).
2. VACUUM ANALYZE, then times ``monthly_report`` for the province (the whole jurisdiction):
   once on its own, since the first report of a month rolls up its finished days, then
   3 runs each for the province and one city, and for the province at noon on the month's
   last day (the month still running: that day's hours rolled up but the one in progress,
   12:00-13:00, read live), with the time of each of the report's
   stages, and the CSV and JSON serialisation of the province report. With ``--scratch``, also the
   province report from the raw rows (no rollup), checked equal to the rollup's.
3. Drops the database unless ``--keep``. Everything runs under one overall timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import json
import os
import secrets
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.demo import load_demo
from directory.passwords import hash_password
from directory.store import load_snapshot
from directory.workcalendar import WorkCalendar
from oversight import export
from oversight import report as report_module
from oversight.rules import SHANGHAI
from storage.database import Database
from storage.db import create_engine, migrate

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
MONTH = "2026-11"
FIRST_DAY = date(2026, 11, 1)
DAYS = 30
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)  # the month is over
# its last day, at noon: the hour in progress is read live, the day's other hours rolled up
# (those after noon too, holding the afternoon's calls: a real noon has none yet)
RUNNING = datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI).astimezone(UTC)
CITY = "410700"  # 新乡市: its own halls and those of 封丘县 below it
WINDOWS_PER_HALL = 10
STAFF_PER_WINDOW = 10
RUNG = 3  # staff rung per call (on duty at the window)
# ids of generated rows, clear of the demo's (the sequences are moved past them afterwards)
HALL0, WINDOW0, APPLICANT_WINDOW0, STAFF0, CALLER0 = 1_000, 10_000, 900_000, 100_000, 900_000
DECLINE_REASONS = ["正在办理其他业务", "窗口人员临时离开", "非本窗口事项", "网络故障", "其他"]
# the report's stages: rolling up finished days (the first report only) and the current day's
# hours, reading the rollups, aggregating the rest live, then misses, people, offline minutes
# and the rows
STAGES = ("_refresh", "_refresh_hours", "_rolled", "_rolled_hours", "_live", "_misses",
          "_people", "_offline", "_assemble")  # fmt: skip


def _workday_offsets() -> list[int]:
    calendar = WorkCalendar({})
    return [d for d in range(DAYS) if calendar.is_workday(FIRST_DAY + timedelta(days=d))]


LOCAL_MONTH = "(TIMESTAMP '2026-11-01 00:00' AT TIME ZONE 'Asia/Shanghai')"

# One row per call with every random draw made once; the INSERTs below read it.
STAGING = (
    """
CREATE TEMP TABLE gc AS
WITH b AS (
    SELECT g, (g + 1) / 2 AS ci,
           random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5,
           random() AS r6, random() AS r7, random() AS r8, random() AS r9, random() AS r10
    FROM generate_series(1, {calls}) AS g
), w AS (  -- both calls of a case go to its home window; some windows are busier
    SELECT b.*, least({windows} - 1, floor({windows} * power(
               (hashint4(ci) & 2147483647)::float8 / 2147483648.0, 1.25)))::int AS w
    FROM b
), t AS (
    SELECT w.*, w.w % {halls} AS h, (w.w % {halls}) % 4 = 0 AS allday FROM w
), r AS (
    SELECT t.*,
        """
    + LOCAL_MONTH
    + """
        + make_interval(days => CASE WHEN allday THEN floor(r1 * {days})::int
                                     ELSE (ARRAY[{workdays}])[1 + floor(r1 * {nworkdays})::int]
                                END)
        + make_interval(secs => CASE
            WHEN allday AND r2 < 0.85 THEN 28800 + r2 / 0.85 * 43200   -- mostly 08:00-20:00
            WHEN allday THEN (r2 - 0.85) / 0.15 * 86400
            WHEN r2 * 25200 < 10800 THEN 32400 + r2 * 25200            -- 09:00-12:00
            ELSE 46800 + r2 * 25200 - 10800                              -- 13:00-17:00
        END) AS req,
        CASE WHEN r3 < 0.84 THEN 'ok' WHEN r3 < 0.87 THEN 'late' WHEN r3 < 0.91 THEN 'missed'
             WHEN r3 < 0.92 THEN 'gaveup' WHEN r3 < 0.95 THEN 'declined' ELSE 'cancelled'
        END AS kind
    FROM t
), a AS (
    SELECT r.*,
        CASE kind WHEN 'ok' THEN req + make_interval(secs => least(59.5, 2 - ln(1 - r4) * 12))
                  WHEN 'late' THEN req + make_interval(secs => 60 + r4 * 180) END AS answered_at
    FROM r
)
SELECT g, ci, w, h, (h + 1 + ci % ({halls} - 1)) % {halls} AS ah,
    md5('bench-call-' || g)::uuid::text AS id, kind, req, answered_at,
    CASE WHEN kind IN ('late', 'missed', 'gaveup') THEN req + interval '60 s' END AS overdue_at,
    CASE kind
        WHEN 'missed' THEN req + interval '300 s'
        WHEN 'gaveup' THEN req + make_interval(secs => 60 + r4 * 200)
        WHEN 'declined' THEN req + make_interval(secs => 5 + r4 * 40)
        WHEN 'cancelled' THEN req + make_interval(secs => 3 + r4 * 50)
        ELSE answered_at + make_interval(secs => 60 + r9 * 1500)
    END AS ended_at,
    floor(r7 * 10)::int AS k0,
    CASE WHEN answered_at IS NOT NULL THEN floor(r5 * {rung})::int END AS ans_j,
    answered_at IS NOT NULL AND r8 < 0.02 AS unnecessary,
    CASE WHEN answered_at IS NOT NULL AND r8 >= 0.02 AND r8 < 0.07
         THEN (floor(r5 * {rung})::int + 1) % {rung} END AS extra_decline_j,
    floor(r6 * 5)::int AS reason0,
    CASE WHEN answered_at IS NULL OR r10 >= 0.6 THEN NULL
         WHEN r10 < 0.38 THEN 5 WHEN r10 < 0.5 THEN 4 WHEN r10 < 0.56 THEN 3
         WHEN r10 < 0.58 THEN 2 ELSE 1 END AS rating
FROM a
"""
)

CALLS = """
INSERT INTO calls (id, case_id, caller_id, caller_window_id, window_id, state, requested_at,
    overdue_at, answered_at, ended_at, end_reason, answered_by, answered_late, in_office_hours,
    unnecessary, unnecessary_by, media_node)
SELECT id, ci, {caller0} + ah, {applicant_window0} + ah, {window0} + w,
    CASE kind WHEN 'ok' THEN 'ended' WHEN 'late' THEN 'ended' WHEN 'gaveup' THEN 'missed'
              ELSE kind END,
    req, overdue_at, answered_at, ended_at,
    CASE kind WHEN 'ok' THEN 'hangup' WHEN 'late' THEN 'hangup' WHEN 'gaveup' THEN 'cancelled'
              ELSE kind END,
    CASE WHEN ans_j IS NOT NULL THEN {staff0} + w * {per_window} + (k0 + ans_j) % {per_window} END,
    kind = 'late', true, unnecessary,
    CASE WHEN unnecessary THEN {staff0} + w * {per_window} + (k0 + ans_j) % {per_window} END,
    CASE WHEN answered_at IS NOT NULL THEN 'media-1' END
FROM gc ORDER BY req
"""

MEMBERS = """
INSERT INTO call_members (call_id, account_id, role, on_duty, declined_at, decline_reason,
    joined_at, left_at, rating, rated_at)
SELECT id, account_id, role, on_duty, declined_at, decline_reason, joined_at, left_at, rating,
    rated_at
FROM (
    SELECT req, id, {caller0} + ah AS account_id, 'caller' AS role, false AS on_duty,
        NULL::timestamptz AS declined_at, NULL AS decline_reason, req AS joined_at,
        ended_at AS left_at, rating,
        CASE WHEN rating IS NOT NULL THEN ended_at + interval '20 s' END AS rated_at
    FROM gc
    UNION ALL
    SELECT req, id, {staff0} + w * {per_window} + (k0 + j) % {per_window}, 'callee', true,
        CASE WHEN kind = 'declined' THEN req + (ended_at - req) * (j + 1) / {rung}
             WHEN j = extra_decline_j THEN req + (answered_at - req) / 2 END,
        CASE WHEN kind = 'declined' OR j = extra_decline_j
             THEN (CAST(:reasons AS text[]))[1 + (reason0 + j) % 5] END,
        CASE WHEN j = ans_j THEN answered_at END,
        CASE WHEN j = ans_j THEN ended_at END,
        NULL, NULL
    FROM gc CROSS JOIN generate_series(0, {rung} - 1) AS j
) AS m
ORDER BY req
"""

MISSES = """
INSERT INTO misses (call_id, account_id, window_id, agency_id, occurred_at, month, status,
    updated_at)
SELECT id, account_id, window_id, agency_id, ended_at,
    to_char(ended_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'),
    CASE WHEN q < 0.15 THEN 'pending' WHEN q < 0.7 THEN 'confirmed' ELSE 'excused' END,
    ended_at + CASE WHEN q < 0.15 THEN interval '0 s' ELSE interval '1 day' END
FROM (
    SELECT gc.id, {staff0} + w * {per_window} + (k0 + j) % {per_window} AS account_id,
        {window0} + w AS window_id, bh.agency_id, ended_at, random() AS q
    FROM gc JOIN bh ON bh.h = gc.h CROSS JOIN generate_series(0, {rung} - 1) AS j
    WHERE kind IN ('missed', 'gaveup')
) AS m
ORDER BY ended_at
"""

VERDICTS = """
INSERT INTO miss_verdicts (miss_id, verdict, reason, by_id, at)
SELECT id, status, CASE status WHEN 'confirmed' THEN '核实为本人未接' ELSE '系统原因，予以免责' END,
    (SELECT id FROM accounts WHERE username = 'fq.sup'), updated_at
FROM misses WHERE status <> 'pending'
"""

# Working-day halls: on line 08:45-12:00 and 12:50-17:00 with a busy spell, away at lunch;
# 4% of the days absent. Around-the-clock halls: 8-hour shifts, 7 days in 10.
PRESENCE_WORKDAYS = (
    """
INSERT INTO presence_intervals (account_id, status, started_at, ended_at)
SELECT a, v.status, base + make_interval(secs => v.s), base + make_interval(secs => v.e)
FROM (
    SELECT {staff0} + i AS a, """
    + LOCAL_MONTH
    + """ + make_interval(days => d) AS base,
        random() AS q1, random() AS q2, random() AS q3, random() AS q4
    FROM generate_series(0, {staff} - 1) AS i CROSS JOIN unnest(ARRAY[{workdays}]) AS d
    WHERE ((i / {per_window}) % {halls}) % 4 <> 0
) AS x
CROSS JOIN LATERAL (VALUES
    ('online', 31500 + q1 * 1800, 43200 + q2 * 600),
    ('away', 43200 + q2 * 600, 46200 + q2 * 1200),
    ('online', 46200 + q2 * 1200, 54000.0),
    ('busy', 54000.0, 55200.0),
    ('online', 55200.0, 61200 + q3 * 1200)
) AS v(status, s, e)
WHERE q4 > 0.04
ORDER BY base, v.s
"""
)

PRESENCE_ALLDAY = (
    """
INSERT INTO presence_intervals (account_id, status, started_at, ended_at)
SELECT a, v.status, base + make_interval(secs => v.s), base + make_interval(secs => v.e)
FROM (
    SELECT {staff0} + i AS a, """
    + LOCAL_MONTH
    + """ + make_interval(days => d) AS base,
        (i % 3) * 28800 AS st, random() AS q1, random() AS q2
    FROM generate_series(0, {staff} - 1) AS i CROSS JOIN generate_series(0, {days} - 1) AS d
    WHERE ((i / {per_window}) % {halls}) % 4 = 0 AND (d + i) % 10 < 7
) AS x
CROSS JOIN LATERAL (VALUES
    ('online', st + q1 * 900, st + 14400.0),
    ('busy', st + 14400.0, st + 15600.0),
    ('online', st + 15600.0, st + 28800 - q2 * 900)
) AS v(status, s, e)
ORDER BY base, v.s
"""
)

COUNTED = (
    "halls", "windows", "accounts", "account_windows", "cases", "calls", "call_members",
    "misses", "miss_verdicts", "presence_intervals",
)  # fmt: skip


@contextmanager
def _timed(label: str, out: dict[str, float]) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    out[label] = time.perf_counter() - t0
    print(f"  {label:<22} {out[label]:7.2f} s", flush=True)


async def _generate(conn: AsyncConnection, calls: int, staff: int) -> dict[str, float]:
    windows = max(1, staff // STAFF_PER_WINDOW)
    halls = max(1, windows // WINDOWS_PER_HALL)
    workdays = _workday_offsets()
    v: dict[str, int] = {
        "calls": calls, "staff": windows * STAFF_PER_WINDOW, "windows": windows, "halls": halls,
        "days": DAYS, "nworkdays": len(workdays), "rung": RUNG, "per_window": STAFF_PER_WINDOW,
        "hall0": HALL0, "window0": WINDOW0, "applicant_window0": APPLICANT_WINDOW0,
        "staff0": STAFF0, "caller0": CALLER0,
    }  # fmt: skip
    fmt: dict[str, Any] = {**v, "workdays": ",".join(str(d) for d in workdays)}

    def q(text: str) -> sa.TextClause:
        return sa.text(text.format(**fmt))

    t: dict[str, float] = {}
    ex = conn.execute
    await ex(sa.text("SET LOCAL work_mem = '256MB'"))
    # generated rows reference each other correctly by construction: no per-row FK triggers
    await ex(sa.text("SET LOCAL session_replication_role = replica"))
    await ex(sa.text("SELECT setseed(0.7)"))
    with _timed("directory", t):
        await ex(q("""
            CREATE TEMP TABLE bh AS
            SELECT h, {hall0} + h AS hall_id, a.id AS agency_id, a.region_code,
                   h % 4 = 0 AS allday
            FROM generate_series(0, {halls} - 1) AS h
            JOIN (SELECT id, region_code,
                         row_number() OVER (ORDER BY region_code) - 1 AS n,
                         count(*) OVER () AS total
                  FROM agencies WHERE level IN ('city', 'county')) AS a
              ON a.n = h % a.total
        """))  # fmt: skip
        await ex(
            q("""INSERT INTO halls (id, agency_id, name)
            SELECT hall_id, agency_id, '压测政务服务中心' || lpad(h::text, 4, '0') FROM bh""")
        )
        await ex(
            q("""INSERT INTO office_hours (hall_id, days, opens, closes)
            SELECT hall_id, p.days, p.opens, p.closes FROM bh CROSS JOIN LATERAL (
                SELECT * FROM (VALUES ('everyday', '00:00', '24:00', true),
                    ('workday', '09:00', '12:00', false), ('workday', '13:00', '17:00', false))
                    AS v(days, opens, closes, allday) WHERE v.allday = bh.allday) AS p
            ORDER BY hall_id""")
        )
        await ex(
            q("""INSERT INTO windows (id, hall_id, code, name, kind)
            SELECT {window0} + w, {hall0} + w % {halls}, 'BENCH-H' || lpad(w::text, 5, '0'),
                   '属地窗口' || w, 'home'
            FROM generate_series(0, {windows} - 1) AS w
            UNION ALL
            SELECT {applicant_window0} + h, {hall0} + h, 'BENCH-A' || lpad(h::text, 4, '0'),
                   '申请地窗口' || h, 'applicant'
            FROM generate_series(0, {halls} - 1) AS h""")
        )
        params = {"hash": hash_password("Bench#2026"), "now": NOW}
        await ex(q("""INSERT INTO accounts (id, username, display_name, role, agency_id, mobile,
                password_hash, password_changed_at, created_at)
            SELECT {staff0} + i, 'bench.s' || lpad(i::text, 6, '0'), '属地人员' || i, 'staff',
                   bh.agency_id, '139' || lpad(i::text, 8, '0'), :hash,
                   CAST(:now AS timestamptz), CAST(:now AS timestamptz)
            FROM generate_series(0, {staff} - 1) AS i JOIN bh ON bh.h = (i / {per_window}) % {halls}
            UNION ALL
            SELECT {caller0} + h, 'bench.a' || lpad(h::text, 4, '0'), '申请地人员' || h, 'staff',
                   agency_id, '137' || lpad(h::text, 8, '0'), :hash,
                   CAST(:now AS timestamptz), CAST(:now AS timestamptz)
            FROM bh"""), params)  # fmt: skip
        await ex(
            q("""INSERT INTO account_windows (account_id, window_id)
            SELECT {staff0} + i, {window0} + i / {per_window}
            FROM generate_series(0, {staff} - 1) AS i
            UNION ALL SELECT {caller0} + h, {applicant_window0} + h FROM bh""")
        )
    with _timed("staging (random draws)", t):
        await ex(q(STAGING))
    with _timed("cases", t):
        await ex(q("""INSERT INTO cases (id, case_no, matter_id, region_code, applicant_name,
                applicant_id_number, applicant_phone, applicant_window_id, home_window_id,
                created_by, created_at)
            SELECT ci, 'BENCH-2026-' || lpad(ci::text, 8, '0'),
                (SELECT min(id) FROM matters) + ci % 2, bh.region_code, '申请人' || ci,
                '410' || lpad((ci::bigint * 7919 % 1000000000000000)::text, 15, '0'),
                '136' || lpad(ci::text, 8, '0'), {applicant_window0} + g.ah, {window0} + g.w,
                {caller0} + g.ah, g.created_at
            FROM (SELECT ci, min(w) AS w, min(h) AS h, min(ah) AS ah,
                         min(req) - interval '3 min' AS created_at
                  FROM gc GROUP BY ci) AS g
            JOIN bh ON bh.h = g.h
            ORDER BY g.created_at"""))  # fmt: skip
    with _timed("calls", t):
        await ex(q(CALLS))
    with _timed("call_members", t):
        await ex(q(MEMBERS), {"reasons": DECLINE_REASONS})
    with _timed("misses", t):
        await ex(q(MISSES))
        await ex(q(VERDICTS))
    with _timed("presence_intervals", t):
        await ex(q(PRESENCE_WORKDAYS))
        await ex(q(PRESENCE_ALLDAY))
    for table in ("halls", "windows", "accounts", "cases"):
        await ex(sa.text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
        ))  # fmt: skip
    await ex(sa.text("DROP TABLE gc"))
    await ex(sa.text("DROP TABLE bh"))
    return t


def _instrument() -> dict[str, list[float]]:
    """Wrap the report's stages (module globals, looked up at call time) to time each one."""
    spent: dict[str, list[float]] = defaultdict(list)
    for name in STAGES:
        original = getattr(report_module, name)
        if inspect.iscoroutinefunction(original):

            def wrap_async(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
                @functools.wraps(fn)
                async def timed(*args: Any, **kwargs: Any) -> Any:
                    t0 = time.perf_counter()
                    try:
                        return await fn(*args, **kwargs)
                    finally:
                        spent[label].append(time.perf_counter() - t0)

                return timed

            setattr(report_module, name, wrap_async(original, name))
        else:

            def wrap_sync(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
                @functools.wraps(fn)
                def timed(*args: Any, **kwargs: Any) -> Any:
                    t0 = time.perf_counter()
                    try:
                        return fn(*args, **kwargs)
                    finally:
                        spent[label].append(time.perf_counter() - t0)

                return timed

            setattr(report_module, name, wrap_sync(original, name))
    return spent


async def _time_reports(db: Database, runs: int, scratch: bool) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        t0 = time.perf_counter()
        snap = await load_snapshot(conn, calendar_fallback="weekdays")
        snapshot_s = time.perf_counter() - t0
        province = await conn.scalar(sa.text("SELECT id FROM agencies WHERE level = 'province'"))
        city = await conn.scalar(
            sa.text("SELECT id FROM agencies WHERE region_code = :code"), {"code": CITY}
        )
    print(f"\nload_snapshot: {snapshot_s:.3f} s (cached by the directory service in the server)")
    spent = _instrument()
    results: list[dict[str, Any]] = []
    province_data: dict[str, Any] = {}
    scopes = [
        ("province, first (rolls up)", province, 1, True, NOW),
        ("province", province, runs, True, NOW),
        ("city " + CITY, city, runs, True, NOW),
        # the month still running: 29 days rolled up (summed anew once), the 30th's hours
        # rolled up and summed but 12:00-13:00, read live
        ("province 30 Nov 12:00, first", province, 1, True, RUNNING),
        ("province 30 Nov 12:00", province, runs, True, RUNNING),
    ]
    if scratch:
        scopes.append(("province from scratch", province, 1, False, NOW))
    for label, agency_id, times_run, rollup_days, now in scopes:
        totals: list[float] = []
        stages: dict[str, list[float]] = defaultdict(list)
        data: dict[str, Any] = {}
        for _ in range(times_run):
            spent.clear()
            t0 = time.perf_counter()
            data = await report_module.monthly_report(
                db, snap, agency_id=int(agency_id), month=MONTH, now=now, rollup_days=rollup_days
            )
            totals.append(time.perf_counter() - t0)
            for name in STAGES:
                stages[name].append(sum(spent[name]))
        if label == "province":
            province_data = data
        if not rollup_days:
            same = data == province_data
            print(f"province from scratch == from the rollup: {same}")
        total_row = data["rows"][0]
        results.append({
            "scope": label,
            "rows": len(data["rows"]),
            "requests": total_row["requests"],
            "answered": total_row["answered"],
            "p50": total_row["answer_p50_s"],
            "p90": total_row["answer_p90_s"],
            "min": min(totals),
            "median": statistics.median(totals),
            "stages": {k: statistics.median(v) for k, v in stages.items()},
        })  # fmt: skip
    for name, fn in (
        ("csv export", export.to_csv),
        ("json body", lambda d: json.dumps(d, ensure_ascii=False).encode()),
    ):
        times = []
        size = 0
        for _ in range(runs):
            t0 = time.perf_counter()
            size = len(fn(province_data))
            times.append(time.perf_counter() - t0)
        results.append({
            "scope": f"province {name} ({size / 1e6:.1f} MB)", "rows": len(province_data["rows"]),
            "min": min(times), "median": statistics.median(times), "stages": {},
        })  # fmt: skip
    return results


def _print_results(results: list[dict[str, Any]]) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nnproc {os.cpu_count()}, load average {load} (1, 5, 15 min) after the runs")
    print(f"\n{'what':<34} {'rows':>7} {'requests':>9} {'min s':>7} {'median s':>9}")
    for r in results:
        requests = r.get("requests", "")
        print(f"{r['scope']:<34} {r['rows']:>7} {requests:>9} {r['min']:7.3f} {r['median']:9.3f}")
    for r in results:
        if r["stages"]:
            parts = ", ".join(f"{k.strip('_')} {v:.3f}" for k, v in r["stages"].items())
            print(f"  {r['scope']} (median s per stage): {parts}")
            print(f"  {r['scope']}: p50 {r['p50']} s, p90 {r['p90']} s, answered {r['answered']}")


async def _run(args: argparse.Namespace) -> None:
    base = args.url
    name = f"tongban_bench_report_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0)
    bench_url = base.rsplit("/", 1)[0] + "/" + name
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    print(f"database {name}")
    engine = create_engine(bench_url)
    try:
        async with asyncio.timeout(args.timeout):
            t0 = time.perf_counter()
            await migrate(engine)
            async with engine.begin() as conn:
                await load_demo(conn, NOW)
            print(f"migrated and demo loaded in {time.perf_counter() - t0:.1f} s; generating:")
            t0 = time.perf_counter()
            async with engine.begin() as conn:
                await _generate(conn, args.calls, args.staff)
            generated = time.perf_counter() - t0
            async with engine.connect() as conn:
                ac = await conn.execution_options(isolation_level="AUTOCOMMIT")
                t0 = time.perf_counter()
                await ac.execute(sa.text("VACUUM ANALYZE"))
                vacuumed = time.perf_counter() - t0
                counts = {t: await ac.scalar(sa.text(f"SELECT count(*) FROM {t}")) for t in COUNTED}
                size = await ac.scalar(
                    sa.text("SELECT pg_size_pretty(pg_database_size(current_database()))")
                )
            print(f"generated in {generated:.1f} s, VACUUM ANALYZE {vacuumed:.1f} s, size {size}")
            for table, n in counts.items():
                print(f"  {table:<20} {n:>10,}")
            _print_results(await _time_reports(Database(engine), args.runs, args.scratch))
    finally:
        await engine.dispose()
        if args.keep:
            print(f"\nkept: {bench_url}")
        else:
            async with admin.connect() as conn:
                await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            print(f"\ndropped {name}")
        await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--staff", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--scratch", action="store_true",
        help="also time the province report from the raw rows, and compare it with the rollup's",
    )  # fmt: skip
    parser.add_argument(
        "--url", default=os.environ.get("TONGBAN_BENCH_PG_URL", DEFAULT_URL),
        help="a PostgreSQL URL whose user may CREATE DATABASE; the bench database goes next to it",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for everything")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
