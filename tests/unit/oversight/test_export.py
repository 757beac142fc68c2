"""R12 exports: Chinese headers Excel can read, and free text never run as a formula."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import load_workbook

from oversight.export import to_csv, to_xlsx


def report() -> dict[str, Any]:
    row = {
        "level": "staff",
        "agency": {"id": 1, "region_code": "410727", "name": "封丘县政务服务和大数据管理局"},
        "hall": {"id": 1, "name": "封丘县政务服务中心"},
        "window": {"id": 1, "code": "FQ-ZJ-01", "name": "住房和城乡建设窗口"},
        "staff": {"id": 5, "username": "fq.h1", "display_name": "=HYPERLINK(1)",
                  "mobile": "138****0011"},
        "requests": 3, "answered": 2, "answer_rate": 2 / 3, "answer_p50_s": 12.0,
        "answer_p90_s": None, "answered_late": 0,
        "misses": {"pending": 0, "confirmed": 1, "excused": 0}, "declines": 1,
        "decline_reasons": [{"reason": "+忙", "count": 1}], "unnecessary": 0,
        "rating_avg": None, "ratings": 0, "offline_minutes": 12.5,
    }  # fmt: skip
    return {"month": "2026-10", "jurisdiction": row["agency"], "rows": [row]}


def test_csv_has_a_bom_and_defuses_formulas() -> None:
    data = to_csv(report())
    assert data.startswith("\ufeff".encode())
    text = data.decode("utf-8-sig")
    header, line = text.splitlines()
    assert header.startswith("层级,区划代码,机构,服务大厅")
    assert "'=HYPERLINK(1)" in line and "'+忙（1）" in line
    assert ",66.7%," in line and ",12.5" in line


def test_xlsx_keeps_numbers_numeric_and_text_as_text() -> None:
    sheet = load_workbook(io.BytesIO(to_xlsx(report()))).active
    header = [c.value for c in sheet[2]]
    row = dict(zip(header, [c.value for c in sheet[3]], strict=True))
    assert row["工作人员"] == "'=HYPERLINK(1)"
    assert sheet.cell(3, header.index("工作人员") + 1).data_type == "s"
    assert row["请求数"] == 3 and abs(row["接听率"] - 2 / 3) < 1e-9
    assert row["接听用时P90（秒）"] is None
