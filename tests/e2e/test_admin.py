"""The provincial administrator manages accounts (R8) and sees what needs attention."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_admin_creates_then_disables_an_account(open_page: Any) -> None:
    admin = open_page("admin")
    expect(admin.locator("#warnings")).to_be_visible()  # calendar and health warnings
    expect(admin.locator("#sms-failures")).to_be_visible()
    admin.get_by_role("button", name="新建账号").click()
    form = admin.locator("form#account-form")
    form.locator("#new-username").fill("fq.h3")
    form.locator("#new-display_name").fill("封丘属地窗口三")
    form.locator("#new-role").select_option("staff")
    form.locator("#new-agency_region").fill("410727")
    form.locator("#new-windows").fill("FQ-ZJ-01")
    form.locator("#new-mobile").fill("13800000014")
    form.locator("#new-password").fill("short")
    form.get_by_role("button", name="创建").click()
    expect(form.locator(".error-box")).to_contain_text("密码")  # weak_password in words
    form.locator("#new-password").fill("Fengqiu#2026h3")
    form.get_by_role("button", name="创建").click()
    expect(form).to_be_hidden()
    row = admin.locator("#accounts tr", has_text="fq.h3")
    expect(row).to_contain_text("住房和城乡建设窗口")
    expect(row).to_contain_text("正常")
    row.get_by_role("button", name="停用").click()
    expect(row).to_contain_text("已停用")

    refused = open_page()
    refused.locator("input[name=username]").fill("fq.h3")
    refused.locator("input[name=password]").fill("Fengqiu#2026h3")
    refused.get_by_role("button", name="登录").click()
    expect(refused.locator("#login-error")).to_be_visible()


def test_admin_sees_office_hours_and_loads_next_year_s_calendar(open_page: Any) -> None:
    admin = open_page("admin")
    directory = admin.locator("#directory")
    lankao = directory.locator(".hall", has_text="兰考县政务服务中心")
    expect(lankao).to_contain_text("工作日 09:00-12:00，工作日 13:00-17:00")
    expect(lankao).to_contain_text("HN-ZJ-001@410225")
    calendar = admin.locator("#calendar")
    calendar.get_by_role("button", name="导入节假日安排").click()
    dialog = admin.locator("form", has=admin.locator("textarea"))
    dialog.locator("textarea").fill("2027-01-01 放假 元旦")
    dialog.get_by_role("button", name="保存").click()
    expect(dialog.locator(".error-box")).to_contain_text("班")  # a mistyped line is explained
    dialog.locator("textarea").fill("2027-01-01 休 元旦\n2027-02-07 班 春节调休")
    dialog.get_by_role("button", name="保存").click()
    expect(dialog).to_be_hidden()
    expect(calendar).to_contain_text("2027")
