"""Nobody answers (R4, R5): the caller sees the SMS reminder; the supervisor confirms the miss."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.calls import create_case
from tests.e2e.conftest import RING_TIMEOUT_S

pytestmark = pytest.mark.e2e


def test_unanswered_call_reminds_by_sms_and_the_supervisor_confirms_the_miss(
    open_page: Any,
) -> None:
    caller = open_page("zz.a1")
    case_no = create_case(caller, "王五")
    caller.get_by_role("button", name="请求协助").click()
    expect(caller.locator("#ringing")).to_be_visible()
    expect(caller.locator("#sms-reminded")).to_contain_text(
        "已短信提醒", timeout=(RING_TIMEOUT_S + 15) * 1000
    )
    expect(caller.locator("#status-line")).to_contain_text("已短信提醒")
    caller.get_by_role("button", name="取消").click()
    expect(caller.locator("#last-result")).to_contain_text("未接")

    supervisor = open_page("fq.sup")
    supervisor.get_by_role("tab", name="未接核实").click()
    rows = supervisor.locator("#misses tr", has_text=case_no)
    expect(rows.first).to_contain_text("待核实")
    # one miss per home-locality clerk on duty (fq.h1, fq.h2)
    pending = rows.filter(has_text="待核实")
    for left in range(pending.count() - 1, -1, -1):
        pending.first.get_by_role("button", name="确认").click()
        form = supervisor.locator("form#verify-form")
        form.locator("#verify-reason").fill("在岗未接听，经核实属实")
        form.get_by_role("button", name="确认").click()
        expect(form).to_be_hidden()
        expect(pending).to_have_count(left)
    expect(rows.filter(has_text="待核实")).to_have_count(0)
    expect(rows.first).to_contain_text("已确认")

    # the monthly report counts it and exports it (R12)
    supervisor.get_by_role("tab", name="月度报表").click()
    expect(supervisor.locator('#report tr[data-level="total"]')).to_be_visible()
    for link, kind in (("#export-csv", "text/csv"), ("#export-xlsx", "spreadsheetml")):
        href = supervisor.locator(link).get_attribute("href")
        response = supervisor.request.get(href)
        assert response.ok, href
        assert kind in response.headers["content-type"]


def test_supervisor_registers_and_cancels_an_absence(open_page: Any) -> None:
    """Absent staff are not on duty; the supervisor records leave in the page."""
    supervisor = open_page("fq.sup")
    supervisor.get_by_role("tab", name="缺勤登记").click()
    form = supervisor.locator("#absence-form")
    form.locator("#absence-username").fill("fq.h2")
    form.locator("#absence-from").fill("2030-01-07T09:00")
    form.locator("#absence-to").fill("2030-01-07T17:00")
    form.locator("#absence-reason").fill("培训")
    form.get_by_role("button", name="登记缺勤").click()
    row = supervisor.locator("#tab-body tr", has_text="fq.h2")
    expect(row).to_contain_text("培训")
    row.get_by_role("button", name="提前结束").click()
    expect(supervisor.locator("#tab-body")).to_contain_text("当前没有登记的缺勤")
