"""The demo data set of CONTRACT.md: Henan's agency tree, two halls with windows open around
the clock, one hall with real office hours, the two matters and every demo account.

Loading is idempotent: it creates what is missing and refreshes what is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.passwords import hash_password
from storage import schema as s
from storage.database import audit

DEMO_PASSWORD = "Demo#2026"
PROVINCE = ("410000", "河南省政务服务和大数据管理局")
CITIES = [
    ("410100", "郑州市"), ("410200", "开封市"), ("410300", "洛阳市"), ("410400", "平顶山市"),
    ("410500", "安阳市"), ("410600", "鹤壁市"), ("410700", "新乡市"), ("410800", "焦作市"),
    ("410900", "濮阳市"), ("411000", "许昌市"), ("411100", "漯河市"), ("411200", "三门峡市"),
    ("411300", "南阳市"), ("411400", "商丘市"), ("411500", "信阳市"), ("411600", "周口市"),
    ("411700", "驻马店市"), ("419001", "济源示范区"),
]  # fmt: skip
# The ten counties administered directly by the province.
DIRECT_COUNTIES = [
    ("410181", "巩义市"), ("410225", "兰考县"), ("410482", "汝州市"), ("410526", "滑县"),
    ("410783", "长垣市"), ("411381", "邓州市"), ("411481", "永城市"), ("411525", "固始县"),
    ("411628", "鹿邑县"), ("411729", "新蔡县"),
]  # fmt: skip
COUNTIES = [("410727", "封丘县", "410700")]

AGENCY_SUFFIX = "政务服务和大数据管理局"
HOUSING = "河南省住房和城乡建设厅"
MATTERS = [
    ("HN-ZJ-001", "二级建造师注册资格认定", HOUSING),
    ("HN-ZJ-002", "二级造价工程师注册资格认定", HOUSING),
]
AROUND_THE_CLOCK = [("everyday", "00:00", "24:00")]
REAL_HOURS = [("workday", "09:00", "12:00"), ("workday", "13:00", "17:00")]


@dataclass(frozen=True)
class DemoHall:
    name: str
    agency: str
    hours: list[tuple[str, str, str]]
    windows: list[tuple[str, str, str]]  # code, name, kind


HALLS = [
    DemoHall(
        "郑州市政务服务中心",
        "410100",
        AROUND_THE_CLOCK,
        [("ZZ-TB-01", "跨省域通办窗口（申请地）", "applicant")],
    ),
    DemoHall(
        "封丘县政务服务中心",
        "410727",
        AROUND_THE_CLOCK,
        [("FQ-ZJ-01", "住房和城乡建设窗口", "home")],
    ),
    # keeps real office hours, to show a request refused outside them
    DemoHall(
        "兰考县政务服务中心", "410225", REAL_HOURS, [("LK-ZJ-01", "住房和城乡建设窗口", "home")]
    ),
]
# window code -> home regions whose matters it owns
OWNERS = {"FQ-ZJ-01": ["410727"], "LK-ZJ-01": ["410225"]}


@dataclass(frozen=True)
class DemoAccount:
    username: str
    display_name: str
    role: str
    agency: str
    mobile: str
    windows: tuple[str, ...] = ()
    department: str = ""
    who: str = ""


ACCOUNTS = [
    DemoAccount("admin", "省级管理员", "admin", "410000", "13800000099",
                who="provincial administrator"),
    DemoAccount("zz.a1", "郑州申请地窗口一", "staff", "410100", "13800000001", ("ZZ-TB-01",),
                who="applicant-side staff, Zhengzhou"),
    DemoAccount("fq.h1", "封丘属地窗口一", "staff", "410727", "13800000011", ("FQ-ZJ-01",),
                who="home-locality staff, Fengqiu housing window"),
    DemoAccount("fq.h2", "封丘属地窗口二", "staff", "410727", "13800000012", ("FQ-ZJ-01",),
                who="home-locality staff, Fengqiu housing window"),
    DemoAccount("fq.expert", "封丘住建业务专家", "expert", "410727", "13800000013",
                department="封丘县住房和城乡建设局", who="expert, Fengqiu housing department"),
    DemoAccount("fq.sup", "封丘县监督员", "supervisor", "410727", "13800000021",
                who="supervisor, Fengqiu County agency"),
    DemoAccount("xx.sup", "新乡市监督员", "supervisor", "410700", "13800000031",
                who="supervisor, Xinxiang City agency"),
    DemoAccount("fq.audit", "封丘县审计员", "auditor", "410727", "13800000041",
                who="auditor, Fengqiu County agency"),
    DemoAccount("ly.audit", "洛阳市审计员", "auditor", "410300", "13800000051",
                who="auditor, Luoyang City agency"),
    DemoAccount("lk.h1", "兰考属地窗口一", "staff", "410225", "13800000061", ("LK-ZJ-01",),
                who="home-locality staff, Lankao (real office hours)"),
]  # fmt: skip


async def _upsert(
    conn: AsyncConnection, table: sa.Table, key: dict[str, Any], values: dict[str, Any]
) -> int:
    where = [table.c[k] == v for k, v in key.items()]
    existing = await conn.scalar(sa.select(table.c.id).where(*where))
    if existing is None:
        return int(
            await conn.scalar(sa.insert(table).values(**key, **values).returning(table.c.id))
        )
    if values:
        await conn.execute(sa.update(table).where(table.c.id == existing).values(**values))
    return int(existing)


async def load_demo(conn: AsyncConnection, now: datetime) -> list[DemoAccount]:
    ids: dict[str, int] = {}
    ids[PROVINCE[0]] = await _upsert(
        conn,
        s.agencies,
        {"region_code": PROVINCE[0]},
        {"name": PROVINCE[1], "level": "province", "parent_id": None},
    )
    for code, name in CITIES:
        ids[code] = await _upsert(
            conn,
            s.agencies,
            {"region_code": code},
            {"name": name + AGENCY_SUFFIX, "level": "city", "parent_id": ids[PROVINCE[0]]},
        )
    for code, name in DIRECT_COUNTIES:
        ids[code] = await _upsert(
            conn,
            s.agencies,
            {"region_code": code},
            {"name": name + AGENCY_SUFFIX, "level": "county", "parent_id": ids[PROVINCE[0]]},
        )
    for code, name, parent in COUNTIES:
        ids[code] = await _upsert(
            conn,
            s.agencies,
            {"region_code": code},
            {"name": name + AGENCY_SUFFIX, "level": "county", "parent_id": ids[parent]},
        )
    matter_ids = {
        code: await _upsert(conn, s.matters, {"code": code}, {"name": name, "department": dept})
        for code, name, dept in MATTERS
    }
    window_ids: dict[str, int] = {}
    for hall in HALLS:
        hall_id = await _upsert(conn, s.halls, {"name": hall.name}, {"agency_id": ids[hall.agency]})
        await conn.execute(sa.delete(s.office_hours).where(s.office_hours.c.hall_id == hall_id))
        for days, opens, closes in hall.hours:
            await conn.execute(
                sa.insert(s.office_hours).values(
                    hall_id=hall_id, days=days, opens=opens, closes=closes
                )
            )
        for code, name, kind in hall.windows:
            window_ids[code] = await _upsert(
                conn, s.windows, {"code": code}, {"hall_id": hall_id, "name": name, "kind": kind}
            )
    for code, regions in OWNERS.items():
        for matter_id in matter_ids.values():
            for region in regions:
                key = {"window_id": window_ids[code], "matter_id": matter_id, "region_code": region}
                found = await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(s.window_matters)
                    .where(*[s.window_matters.c[k] == v for k, v in key.items()])
                )
                if not found:
                    await conn.execute(sa.insert(s.window_matters).values(**key))
    password = hash_password(DEMO_PASSWORD)
    for a in ACCOUNTS:
        account_id = await _upsert(
            conn,
            s.accounts,
            {"username": a.username},
            {
                "display_name": a.display_name,
                "role": a.role,
                "agency_id": ids[a.agency],
                "mobile": a.mobile,
                "department": a.department,
                "password_hash": password,
                "disabled": False,
                "failed_logins": 0,
                "locked_until": None,
                "password_changed_at": now,
                "created_at": now,
            },
        )
        await conn.execute(
            sa.delete(s.account_windows).where(s.account_windows.c.account_id == account_id)
        )
        for code in a.windows:
            await conn.execute(
                sa.insert(s.account_windows).values(
                    account_id=account_id, window_id=window_ids[code]
                )
            )
    await audit(
        conn,
        at=now,
        actor="system",
        action="demo.load",
        result="ok",
        detail={"accounts": len(ACCOUNTS)},
    )
    return ACCOUNTS
