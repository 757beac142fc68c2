"""R2, R10, R12, R13: the monthly report over a small fixture month, as JSON, CSV and XLSX,
checked number by number. Runs on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from openpyxl import load_workbook

from tests.integration.oversight.helpers import (
    Member,
    add_absence,
    add_call,
    add_missed_call,
    add_presence,
    demo,
)

DAY = timedelta(days=1)
OCT_START = datetime(2026, 9, 30, 16, tzinfo=UTC)  # 1 October 00:00 in Asia/Shanghai
OCT_MINUTES = 31 * 24 * 60  # the Fengqiu hall is open around the clock


async def october(server: Any) -> None:
    """Four calls to the Fengqiu window in October (three answered, one missed), plus calls
    that must not count: one on 1 November local time, one to Lankao."""
    d = await demo(server)
    t = OCT_START + 5 * DAY
    both = [Member("fq.h1"), Member("fq.h2")]
    await add_call(server, d, at=t, members=[Member("zz.a1", "caller", rating=5), *both],
                   answered_after=10, answered_by="fq.h1")  # fmt: skip
    await add_call(
        server, d, at=t + DAY,
        members=[Member("zz.a1", "caller", rating=3), Member("fq.h1"),
                 Member("fq.h2", declined="正在办理其他业务")],
        answered_after=30, answered_by="fq.h1", late=True,
    )  # fmt: skip
    await add_call(server, d, at=t + 2 * DAY, members=both, answered_after=20,
                   answered_by="fq.h2", unnecessary_by="fq.h2")  # fmt: skip
    h1_miss, _h2_miss = await add_missed_call(server, d, t + 3 * DAY, ["fq.h1", "fq.h2"])
    # 2026-10-31T16:00Z is November there: not in October's report
    await add_call(server, d, at=datetime(2026, 10, 31, 16, 0, tzinfo=UTC), members=both,
                   answered_after=99, answered_by="fq.h1")  # fmt: skip
    await add_call(server, d, at=t, window="LK-ZJ-01", region="410225",
                   members=[Member("lk.h1")], answered_after=5, answered_by="lk.h1")  # fmt: skip
    # fq.h1 away for two hours on the 10th, online (or busy) the rest of the month and on
    tenth = OCT_START + 9 * DAY
    hour = timedelta(hours=1)
    await add_presence(server, d, "fq.h1", [
        ("online", OCT_START - DAY, tenth),
        ("busy", tenth, tenth + hour),
        ("away", tenth + hour, tenth + 3 * hour),
        ("online", tenth + 3 * hour, None),
    ])  # fmt: skip
    # fq.h2 never online, but on leave for one day of it
    await add_absence(server, d, "fq.h2", OCT_START + 20 * DAY, OCT_START + 21 * DAY)
    sup = await server.browser("fq.sup")
    status, _ = await sup.post(
        f"/api/misses/{h1_miss}/verify", {"verdict": "confirmed", "reason": "离岗未接"}
    )
    assert status == 200


def by_level(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in report["rows"]:
        key = row["level"] if row["level"] != "staff" else row["staff"]["username"]
        out[key] = row
    return out


async def test_monthly_report_numbers_as_json_csv_and_xlsx(start_server: Any) -> None:
    server = await start_server()
    await october(server)
    sup = await server.browser("fq.sup")
    status, report = await sup.get("/api/reports/monthly?month=2026-10")
    assert status == 200, report
    assert report["jurisdiction"]["region_code"] == "410727"
    assert [r["level"] for r in report["rows"]] == [
        "total", "agency", "hall", "window", "staff", "staff",
    ]  # fmt: skip
    rows = by_level(report)
    window = rows["window"]
    assert window["window"]["code"] == "FQ-ZJ-01"
    assert (window["requests"], window["answered"], window["answer_rate"]) == (4, 3, 0.75)
    assert (window["answer_p50_s"], window["answer_p90_s"]) == (20.0, 30.0)
    assert window["answered_late"] == 1
    assert window["misses"] == {"pending": 1, "confirmed": 1, "excused": 0}
    assert window["declines"] == 1
    assert window["decline_reasons"] == [{"reason": "正在办理其他业务", "count": 1}]
    assert window["unnecessary"] == 1
    assert (window["rating_avg"], window["ratings"]) == (4.0, 2)
    assert window["offline_minutes"] == 120 + OCT_MINUTES - 24 * 60

    h1, h2 = rows["fq.h1"], rows["fq.h2"]
    assert h1["staff"]["mobile"] == "138****0011"
    assert (h1["requests"], h1["answered"], h1["answer_rate"]) == (4, 2, 0.5)
    assert (h1["answer_p50_s"], h1["answer_p90_s"], h1["answered_late"]) == (10.0, 30.0, 1)
    assert h1["misses"] == {"pending": 0, "confirmed": 1, "excused": 0}
    assert (h1["declines"], h1["unnecessary"], h1["rating_avg"]) == (0, 0, 4.0)
    assert h1["offline_minutes"] == 120
    assert (h2["requests"], h2["answered"], h2["answer_p50_s"]) == (4, 1, 20.0)
    assert (h2["declines"], h2["unnecessary"], h2["rating_avg"]) == (1, 1, None)
    assert h2["misses"] == {"pending": 1, "confirmed": 0, "excused": 0}
    assert h2["offline_minutes"] == OCT_MINUTES - 24 * 60, "a day of leave is not offline"

    figures = {k: v for k, v in window.items() if k not in ("level", "agency", "hall", "window")}
    for level in ("total", "agency", "hall"):
        rolled = {k: v for k, v in rows[level].items() if k not in ("level", "agency", "hall")}
        assert rolled == {**figures, "window": None}, f"one window: the {level} row is the same"

    xx = await server.browser("xx.sup")
    status, city = await xx.get("/api/reports/monthly?month=2026-10")
    assert status == 200
    assert city["jurisdiction"]["region_code"] == "410700"
    assert by_level(city)["total"]["requests"] == 4, "Lankao is not below Xinxiang"

    # the same numbers as files for Excel
    async with sup.http.get("/api/reports/monthly?month=2026-10&format=csv") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in resp.headers["Content-Disposition"]
        raw = await resp.read()
    assert raw.startswith(b"\xef\xbb\xbf"), "a BOM, so Excel reads the Chinese as UTF-8"
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header = table[0]
    assert header[:3] == ["层级", "区划代码", "机构"] and "接听率" in header
    cells = {row[header.index("账号")]: dict(zip(header, row, strict=True)) for row in table[1:]}
    assert cells["fq.h1"]["手机号"] == "138****0011"
    assert b"13800000011" not in raw, "no unmasked phone number in the export (R11)"
    window = next(r for r in table[1:] if r[0] == "窗口")
    row = dict(zip(header, window, strict=True))
    assert (row["请求数"], row["接听数"], row["接听率"]) == ("4", "3", "75.0%")
    assert row["拒绝理由"] == "正在办理其他业务（1）"

    async with sup.http.get("/api/reports/monthly?month=2026-10&format=xlsx") as resp:
        assert resp.status == 200
        assert "spreadsheetml" in resp.headers["Content-Type"]
        data = await resp.read()
    sheet = load_workbook(io.BytesIO(data)).active
    values = list(sheet.iter_rows(values_only=True))
    assert "2026-10" in values[0][0]
    header = list(values[1])
    assert header == [h for h in header if h] and header[0] == "层级"
    window = dict(zip(header, next(v for v in values[2:] if v[0] == "窗口"), strict=True))
    assert (window["请求数"], window["接听数"], window["接听率"]) == (4, 3, 0.75)
    assert window["办公时间内离线（分钟）"] == 120 + OCT_MINUTES - 24 * 60


async def test_report_refusals(start_server: Any) -> None:
    server = await start_server()
    sup = await server.browser("fq.sup")
    status, body = await sup.get("/api/reports/monthly?month=2026-1")
    assert status == 400 and body["error"]["code"] == "invalid_month"
    status, body = await sup.get("/api/reports/monthly?month=2026-10&format=pdf")
    assert status == 400 and body["error"]["code"] == "invalid_format"
    staff = await server.browser("fq.h1")
    assert (await staff.get("/api/reports/monthly?month=2026-10"))[0] == 403
    auditor = await server.browser("fq.audit")
    status, body = await auditor.get("/api/reports/monthly?month=2026-10")
    assert status == 200 and body["rows"][0]["requests"] == 0
