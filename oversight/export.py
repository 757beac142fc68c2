"""The monthly report as files for Excel: CSV (UTF-8 with a BOM, or Excel shows the Chinese
as mojibake) and XLSX. Blocking work: callers run these off the event loop.

Personal data is already masked in the rows (R11). Text that a spreadsheet would run as a
formula (a decline reason starting with "=") is prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

LEVEL_NAMES = {
    "total": "合计",
    "agency": "机构",
    "hall": "服务大厅",
    "window": "窗口",
    "staff": "工作人员",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _get(*path: str) -> Callable[[dict[str, Any]], Any]:
    def get(row: dict[str, Any]) -> Any:
        value: Any = row
        for key in path:
            if value is None:
                return None
            value = value[key]
        return value

    return get


def _reasons(row: dict[str, Any]) -> str:
    return "；".join(f"{r['reason']}（{r['count']}）" for r in row["decline_reasons"])


# (header, value, kind): kind "rate" is a fraction shown as a percentage
COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("层级", lambda r: LEVEL_NAMES[r["level"]], "text"),
    ("区划代码", _get("agency", "region_code"), "text"),
    ("机构", _get("agency", "name"), "text"),
    ("服务大厅", _get("hall", "name"), "text"),
    ("窗口编号", _get("window", "code"), "text"),
    ("窗口", _get("window", "name"), "text"),
    ("工作人员", _get("staff", "display_name"), "text"),
    ("账号", _get("staff", "username"), "text"),
    ("手机号", _get("staff", "mobile"), "text"),
    ("请求数", _get("requests"), "int"),
    ("接听数", _get("answered"), "int"),
    ("接听率", _get("answer_rate"), "rate"),
    ("接听用时中位数（秒）", _get("answer_p50_s"), "num"),
    ("接听用时P90（秒）", _get("answer_p90_s"), "num"),
    ("超时后接听数", _get("answered_late"), "int"),
    ("未接-待核实", _get("misses", "pending"), "int"),
    ("未接-确认", _get("misses", "confirmed"), "int"),
    ("未接-免责", _get("misses", "excused"), "int"),
    ("拒绝数", _get("declines"), "int"),
    ("拒绝理由", _reasons, "text"),
    ("标记为不必要的呼叫", _get("unnecessary"), "int"),
    ("平均评分", _get("rating_avg"), "num"),
    ("评分数", _get("ratings"), "int"),
    ("办公时间内离线（分钟）", _get("offline_minutes"), "num"),
]


def _safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _title(report: dict[str, Any]) -> str:
    return f"{report['jurisdiction']['name']} {report['month']} 视频协助月报"


def to_csv(report: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header for header, _get_value, _kind in COLUMNS])
    for row in report["rows"]:
        cells = []
        for _header, get, kind in COLUMNS:
            value = get(row)
            if value is None:
                cells.append("")
            elif kind == "rate":
                cells.append(f"{value * 100:.1f}%")
            else:
                cells.append(_safe(value))
        writer.writerow(cells)
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def to_xlsx(report: dict[str, Any]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = f"月报 {report['month']}"
    sheet.append([_title(report)])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append([header for header, _get_value, _kind in COLUMNS])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in report["rows"]:
        sheet.append([_safe(get(row)) for _header, get, _kind in COLUMNS])
        if row["level"] != "staff":
            for cell in sheet[sheet.max_row]:
                cell.font = Font(bold=True)
    for index, (_header, _get_value, kind) in enumerate(COLUMNS, start=1):
        if kind == "rate":
            for (cell,) in sheet.iter_rows(min_row=3, min_col=index, max_col=index):
                cell.number_format = "0.0%"
    sheet.freeze_panes = "A3"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
