#!/usr/bin/env python3
"""Regenerates docs/screenshots/*.png: each main page of the browser app, on the real server
with demo data, in Debian's Chromium (needs fonts-wqy-microhei for the Chinese text).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.calls import create_case, ring_and_answer, wait_remote_video  # noqa: E402
from tests.e2e.harness import launch_chromium, login, running_server  # noqa: E402

VIEWPORT = {"width": 1100, "height": 720}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(
            Path(tmp), {"TONGBAN_RING_TIMEOUT": "3", "TONGBAN_RING_LIMIT": "60"}
        ) as server,
        sync_playwright() as pw,
    ):
        browser = launch_chromium(pw)

        def page_for(username: str | None) -> Any:
            context = browser.new_context(
                base_url=server.url, locale="zh-CN", timezone_id="Asia/Shanghai",
                viewport=VIEWPORT,
            )  # fmt: skip
            context.grant_permissions(["camera", "microphone"], origin=server.url)
            page = context.new_page()
            if username:
                login(page, server.url, username)
            else:
                page.goto(server.url + "/")
            return page

        def shot(page: Any, name: str) -> None:
            path = args.out / f"{name}.png"
            page.screenshot(path=str(path))
            print(f"{path.relative_to(REPO)}  {path.stat().st_size // 1024} KB")

        login_page = page_for(None)
        login_page.locator("input[name=username]").fill("zz.a1")
        login_page.locator("input[name=password]").fill("wrong-password")
        login_page.get_by_role("button", name="登录").click()
        expect(login_page.locator("#login-error")).to_be_visible()
        shot(login_page, "login")

        caller = page_for("zz.a1")
        callee = page_for("fq.h1")
        caller.get_by_role("button", name="新建案件").click()
        caller.locator("#region_code").select_option("410727")
        caller.locator("#applicant_name").fill("张三")
        caller.locator("#applicant_id_number").press_sequentially("410727199003071230")
        shot(caller, "applicant-case-form")
        caller.get_by_role("button", name="取消").first.click()

        # a ringing call: the caller waits, the home-locality clerk is rung
        create_case(caller, "李四")
        caller.get_by_role("button", name="请求协助").click()
        expect(caller.locator("#sms-reminded")).to_be_visible()
        shot(caller, "applicant-ringing")
        expect(callee.locator("section.incoming")).to_be_visible()
        shot(callee, "home-incoming")
        caller.get_by_role("button", name="取消").click()
        expect(callee.locator("section.incoming")).to_have_count(0)

        ring_and_answer(caller, callee)
        wait_remote_video(callee)
        wait_remote_video(caller)
        shot(callee, "call")
        caller.get_by_role("button", name="挂断").click()
        expect(callee.locator("form#rating-form")).to_be_visible()
        shot(callee, "call-rating")

        supervisor = page_for("fq.sup")
        expect(supervisor.locator("#tab-body table")).to_be_visible()
        shot(supervisor, "supervisor-board")
        supervisor.get_by_role("tab", name="未接核实").click()
        expect(supervisor.locator("#misses")).to_be_visible()
        shot(supervisor, "supervisor-misses")
        supervisor.get_by_role("tab", name="月度报表").click()
        expect(supervisor.locator("#report")).to_be_visible()
        shot(supervisor, "supervisor-report")

        auditor = page_for("fq.audit")
        auditor.get_by_role("button", name="查找").click()
        expect(auditor.locator("#recordings table")).to_be_visible()
        shot(auditor, "auditor")

        admin = page_for("admin")
        expect(admin.locator("#accounts table")).to_be_visible()
        shot(admin, "admin")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
