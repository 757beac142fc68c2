"""The applicant-side clerk registers a case (R14); the ID number is checked as typed (R11:
masked once the server has it)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import id_number

pytestmark = pytest.mark.e2e


def test_id_number_check_digit_is_checked_as_typed_and_the_case_is_masked(open_page: Any) -> None:
    page = open_page("zz.a1")
    page.get_by_role("button", name="新建案件").click()
    form = page.locator("form#case-form")
    form.locator("#matter_code").select_option("HN-ZJ-001")
    form.locator("#region_code").select_option("410727")
    form.locator("#applicant_name").fill("张三")
    good = id_number("41072719900307123")
    wrong_digit = good[:17] + ("0" if good[17] != "0" else "1")
    id_input = form.locator("#applicant_id_number")
    id_input.press_sequentially(wrong_digit[:10])
    expect(page.locator("#id-number-feedback")).to_contain_text("还差 8 位")
    id_input.press_sequentially(wrong_digit[10:])
    # as typed, before anything is submitted
    expect(page.locator("#id-number-feedback")).to_contain_text("校验位不正确")
    expect(id_input).to_have_attribute("aria-invalid", "true")
    form.get_by_role("button", name="登记案件").click()
    expect(form).to_be_visible()  # refused in the page

    id_input.fill("")
    id_input.press_sequentially(good)
    expect(page.locator("#id-number-feedback")).to_contain_text("校验位正确")
    form.get_by_role("button", name="登记案件").click()
    expect(form).to_be_hidden()
    selected = page.locator("#case-list tr.selected")
    expect(selected).to_contain_text("二级建造师注册资格认定")
    expect(selected).to_contain_text(good[:6] + "********" + good[-4:])
    expect(page.locator("#cases")).not_to_contain_text(good)
    expect(page.locator("#request")).to_contain_text("张三")
    expect(page.locator("#status-line")).to_contain_text("已选择案件")


def test_birth_date_is_checked_before_the_number_is_complete(open_page: Any) -> None:
    page = open_page("zz.a1")
    page.get_by_role("button", name="新建案件").click()
    page.locator("#applicant_id_number").press_sequentially("41072719901332")
    expect(page.locator("#id-number-feedback")).to_contain_text("出生日期无效")
