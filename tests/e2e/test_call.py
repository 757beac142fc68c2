"""A whole assisted call in two real browsers (R1, R6, R7, R13), then the auditor's view of it."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.calls import rate, ring_and_answer, wait_decoded_frames, wait_remote_video

pytestmark = pytest.mark.e2e


def test_request_answer_talk_hang_up_rate_then_audit_the_recording(open_page: Any) -> None:
    caller = open_page("zz.a1")
    callee = open_page("fq.h1")
    case_no = ring_and_answer(caller, callee)

    # both see and decode the other side's camera (R1)
    wait_remote_video(callee)
    wait_remote_video(caller)
    expect(caller.locator("#recording")).to_have_text("录像中")  # R7
    expect(callee.locator("#btn-invite")).to_be_visible()  # R3: only the home side invites
    expect(caller.locator("#btn-invite")).to_have_count(0)
    # a few seconds of conversation, so that the recording has something to play
    wait_decoded_frames(caller, at_least=120)

    caller.get_by_role("button", name="挂断").click()
    expect(caller.locator("#call")).to_have_count(0)
    expect(callee.locator("#call")).to_have_count(0)
    rate(caller, 5, "答复清楚")  # R13
    expect(callee.locator("#unnecessary")).to_be_visible()  # R10
    rate(callee, 4)

    # the auditor of the home locality finds, plays and downloads it (R7)
    auditor = open_page("fq.audit")
    auditor.locator("#case_no").fill(case_no)
    row = auditor.locator("#recordings tr", has_text=case_no)
    deadline = time.monotonic() + 30
    while True:  # the archive is finalised a little after the hang-up
        auditor.get_by_role("button", name="查找").click()
        try:
            expect(row.get_by_role("button", name="播放")).to_be_enabled(timeout=2_000)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    expect(row).to_contain_text("可调阅")
    row.get_by_role("button", name="播放").click()
    try:
        auditor.wait_for_function(
            "() => { const v = document.querySelector('#recording-video');"
            " return v && v.videoWidth > 0"
            " && (v.currentTime > 1.5 || (v.ended && v.duration > 2)); }",
            timeout=20_000,
        )
    except Exception as err:
        state = auditor.evaluate(
            "() => { const v = document.querySelector('#recording-video'); return v && "
            "{t: v.currentTime, d: v.duration, w: v.videoWidth, rs: v.readyState, "
            "paused: v.paused, ended: v.ended, error: v.error && v.error.message}; }"
        )
        raise AssertionError(f"the recording does not play in the page: {state}") from err
    with auditor.expect_download() as download_info:
        row.get_by_role("link", name="下载").click()
    path = download_info.value.path()
    with open(path, "rb") as f:
        assert f.read(4) == b"\x1a\x45\xdf\xa3", "the download is a Matroska (EBML) file"

    # legal hold: kept past its expiry date until released
    expires = row.locator("td").nth(5)  # 保留至: the retention expiry date (R7)
    expect(expires).to_have_text(re.compile(r"^\d{4}-\d{2}-\d{2}$"))
    row.get_by_role("button", name="法律保全").click()
    hold = auditor.locator("form#hold-form")
    hold.locator("#hold-reason").fill("信访调查 2026-001")
    hold.get_by_role("button", name="保全").click()
    expect(hold).to_be_hidden()
    expect(row).to_contain_text("法律保全中")
    expect(row.get_by_role("button", name="解除保全")).to_be_visible()


def test_document_camera_reaches_the_other_side(open_page: Any) -> None:
    """R6: the applicant side adds the 高拍仪 as a second video beside the face."""
    caller = open_page("zz.a1")
    callee = open_page("fq.h1")
    ring_and_answer(caller, callee)
    wait_remote_video(callee)

    caller.get_by_role("button", name="高拍仪").click()
    dialog = caller.locator("form#document-form")
    source = dialog.locator("#document-source")
    source.select_option(label=source.locator("option", has_text="fake_device_2").inner_text())
    dialog.get_by_role("button", name="开始发送").click()
    expect(caller.locator("#btn-document")).to_have_attribute("aria-pressed", "true")

    wait_remote_video(callee, count=2)
    expect(callee.locator('#remote-videos .tile[data-kind="document"]')).to_contain_text("高拍仪")
    caller.get_by_role("button", name="挂断").click()
    expect(callee.locator("form#rating-form")).to_be_visible()
