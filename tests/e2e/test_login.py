"""Logging in (R8): errors in words, each role lands on its own page, one session per account."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import DEMO_PASSWORD

pytestmark = pytest.mark.e2e


def submit_login(page: Any, username: str, password: str) -> None:
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    with page.expect_response("**/api/login"):
        page.get_by_role("button", name="登录").click()


def test_wrong_password_says_so(open_page: Any) -> None:
    page = open_page()
    submit_login(page, "zz.a1", "not-the-password")
    expect(page.locator("#login-error")).to_contain_text("用户名或密码错误")
    expect(page.locator("#topbar")).to_be_hidden()


def test_locked_account_says_so_after_repeated_failures(open_page: Any) -> None:
    """R8: lockout after 5 failures; even the right password is then refused with 423."""
    page = open_page()
    for _ in range(5):
        submit_login(page, "ly.audit", "wrong-password-1")
    submit_login(page, "ly.audit", DEMO_PASSWORD)
    expect(page.locator("#login-error")).to_contain_text("锁定")
    expect(page.locator("#topbar")).to_be_hidden()


@pytest.mark.parametrize(
    ("username", "landmark"),
    [
        ("zz.a1", "#btn-request"),  # applicant-side console: 请求协助
        ("fq.h1", "#presence-online"),  # home-locality console: presence
        ("fq.expert", "#presence"),
        ("fq.sup", "#tab-board"),
        ("fq.audit", "#recording-search"),
        ("admin", "#accounts"),
    ],
)
def test_each_role_lands_on_its_page(open_page: Any, username: str, landmark: str) -> None:
    page = open_page(username)
    expect(page.locator(landmark)).to_be_visible()
    expect(page.locator("#who")).to_contain_text(username)
    expect(page.locator("#status-line")).not_to_be_empty()


def test_applicant_console_has_the_contract_words(open_page: Any) -> None:
    page = open_page("zz.a1")
    expect(page.get_by_role("button", name="请求协助")).to_be_visible()
    expect(page.get_by_role("button", name="新建案件")).to_be_visible()


def test_login_elsewhere_ends_this_page_and_says_why(open_page: Any) -> None:
    """One live session per account (R8): ``session:revoked`` sends the first page to the
    login form at once; reloading it still says why."""
    first = open_page("fq.h2")
    open_page("fq.h2")
    expect(first.locator("#login-message")).to_contain_text("该账号已在其他地方登录")
    expect(first.locator("#topbar")).to_be_hidden()
    first.reload()
    expect(first.locator("#login-message")).to_contain_text("该账号已在其他地方登录")
    expect(first.locator("form#login-form")).to_be_visible()


def test_change_own_password_then_log_in_with_it(open_page: Any) -> None:
    page = open_page("xx.sup")
    new_password = "Xinxiang#2026ab"
    page.get_by_role("button", name="修改密码").click()
    page.locator("#pw-current").fill("wrong-current-1")
    page.locator("#pw-new").fill(new_password)
    page.locator("#pw-again").fill(new_password)
    page.get_by_role("button", name="保存新密码").click()
    expect(page.locator("#password-form .error-box")).to_contain_text("当前密码不正确")
    page.locator("#pw-current").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="保存新密码").click()
    expect(page.locator("#password-form")).to_be_hidden()
    page.get_by_role("button", name="退出").click()
    expect(page.locator("form#login-form")).to_be_visible()
    submit_login(page, "xx.sup", new_password)
    expect(page.locator("#tab-board")).to_be_visible()
