"""What else happens around a call, as the clerks see it: a decline with its reason (R10), an
expert joining (R3), the other side dropping, a window outside its office hours (R2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.e2e.calls import create_case, rate, ring_and_answer, wait_online, wait_remote_video

pytestmark = pytest.mark.e2e


def test_decline_needs_a_reason_and_the_caller_reads_it(open_page: Any) -> None:
    caller = open_page("zz.a1")
    callee = open_page("fq.h1")
    wait_online(callee)
    create_case(caller, "赵六")
    caller.get_by_role("button", name="请求协助").click()
    card = callee.locator("section.incoming")
    card.get_by_role("button", name="拒绝").click()
    form = callee.locator("form#decline-form")
    form.get_by_role("button", name="确定拒绝").click()
    expect(form.locator(".error-box")).to_contain_text("请填写拒绝的原因")  # R10
    form.locator("#decline-reason").fill("该事项不属于本窗口办理")
    form.get_by_role("button", name="确定拒绝").click()
    expect(card).to_have_count(0)
    expect(caller.locator("#request")).to_contain_text("该事项不属于本窗口办理")
    # fq.h2 is on duty too (though offline), so the call rings on until the caller gives up
    caller.get_by_role("button", name="取消").click()
    expect(caller.locator("#last-result")).to_be_visible()


def test_home_side_invites_the_department_expert(open_page: Any) -> None:
    """R3: a third party joins; everyone sees everyone else's camera."""
    caller = open_page("zz.a1")
    callee = open_page("fq.h1")
    expert = open_page("fq.expert")
    ring_and_answer(caller, callee)
    wait_remote_video(callee)
    callee.get_by_role("button", name="邀请专家").click()
    form = callee.locator("form#invite-form")
    form.locator("#expert-username").fill("fq.expert")
    form.get_by_role("button", name="发出邀请").click()
    expect(form).to_be_hidden()
    card = expert.locator("section.incoming")
    expect(card).to_contain_text("专家邀请")
    card.get_by_role("button", name="接听").click()
    wait_remote_video(expert, count=2)
    wait_remote_video(caller, count=2)
    expect(caller.locator("#remote-videos")).to_contain_text("封丘住建业务专家")
    callee.get_by_role("button", name="挂断").click()
    for page in (caller, expert):
        expect(page.locator("form#rating-form")).to_be_visible()
    rate(expert, 5)


def test_the_other_side_dropping_is_said_on_screen(open_page: Any) -> None:
    caller = open_page("zz.a1")
    callee = open_page("fq.h1")
    ring_and_answer(caller, callee)
    wait_remote_video(caller)
    callee.context.close()  # the home-locality clerk's browser goes away
    expect(caller.locator("#call-state")).to_contain_text("网络中断")
    caller.get_by_role("button", name="挂断").click()
    expect(caller.locator("form#rating-form")).to_be_visible()


def _lankao_open_now() -> bool:
    import chinese_calendar

    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    hhmm = now.strftime("%H:%M")
    return chinese_calendar.is_workday(now.date()) and (
        "09:00" <= hhmm < "12:00" or "13:00" <= hhmm < "17:00"
    )


def test_outside_office_hours_names_the_next_opening(open_page: Any) -> None:
    """The demo's Lankao window keeps real office hours (09:00-12:00, 13:00-17:00 on workdays)."""
    if _lankao_open_now():
        pytest.skip("the Lankao window is open right now")
    caller = open_page("zz.a1")
    caller.get_by_role("button", name="新建案件").click()
    form = caller.locator("form#case-form")
    form.locator("#region_code").select_option("410225")
    form.locator("#applicant_name").fill("孙七")
    form.locator("#applicant_id_number").fill("11010519491231002X")
    form.get_by_role("button", name="登记案件").click()
    expect(form).to_be_hidden()
    caller.get_by_role("button", name="请求协助").click()
    error = caller.locator("#request-error")
    expect(error).to_contain_text("不在办公时间")
    expect(error).to_contain_text("下次开放时间")


def test_a_reloaded_page_rejoins_the_running_call(open_page: Any) -> None:
    """A clerk who reloads (or whose browser restarts) mid-call is back in it with video."""
    caller = open_page("zz.a1")
    callee = open_page("fq.h1")
    ring_and_answer(caller, callee)
    wait_remote_video(callee)
    callee.reload()
    expect(callee.locator("#call")).to_be_visible()
    wait_remote_video(callee)
    wait_remote_video(caller)
    caller.get_by_role("button", name="挂断").click()
    expect(callee.locator("form#rating-form")).to_be_visible()
