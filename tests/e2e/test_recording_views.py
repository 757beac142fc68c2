"""R7: the auditor (and the supervisor) watches each party of a recorded call in the page,
switching between them."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.e2e.calls import ring_and_answer, wait_decoded_frames, wait_remote_video

pytestmark = pytest.mark.e2e

PLAYING = (
    "([track, after]) => { const v = document.querySelector('#recording-video');"
    " return v && v.currentSrc.includes('track=' + track) && v.videoWidth > 0"
    " && (v.currentTime > after || (v.ended && v.duration > 2)); }"
)
STATE = (
    "() => { const v = document.querySelector('#recording-video'); return v && "
    "{src: v.currentSrc, t: v.currentTime, d: v.duration, w: v.videoWidth, rs: v.readyState, "
    "paused: v.paused, ended: v.ended, error: v.error && v.error.message}; }"
)


def wait_playing(page: Any, view: str, after: float) -> None:
    try:
        page.wait_for_function(PLAYING, arg=[quote(view), after], timeout=20_000)
    except Exception as err:
        raise AssertionError(f"{view} does not play: {page.evaluate(STATE)}") from err


def test_auditor_switches_between_the_parties(open_page: Any) -> None:
    caller = open_page("zz.a1")
    callee = open_page("fq.h1")
    case_no = ring_and_answer(caller, callee)
    wait_remote_video(callee)
    wait_remote_video(caller)
    wait_decoded_frames(caller, at_least=120)  # a few seconds of both faces
    caller.get_by_role("button", name="挂断").click()
    expect(callee.locator("#call")).to_have_count(0)

    auditor = open_page("fq.audit")
    watch_both_parties(auditor, case_no)

    # supervisors of the home locality have the same view in their 录像调阅 tab
    supervisor = open_page("fq.sup")
    supervisor.get_by_role("tab", name="录像调阅").click()
    watch_both_parties(supervisor, case_no)
    supervisor.get_by_role("tab", name="实时看板").click()
    assert supervisor.evaluate("() => !document.querySelector('#recording-video')")


def watch_both_parties(page: Any, case_no: str) -> None:
    page.locator("#case_no").fill(case_no)
    row = page.locator("#recordings tr", has_text=case_no)
    deadline = time.monotonic() + 30
    while True:  # the archive is finalised a little after the hang-up
        page.get_by_role("button", name="查找").click()
        try:
            expect(row.get_by_role("button", name="播放")).to_be_enabled(timeout=2_000)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    row.get_by_role("button", name="播放").click()

    chooser = page.locator("#recording-view")
    expect(chooser.locator("option")).to_have_count(2)
    expect(chooser.locator("option").nth(0)).to_contain_text("申请地")
    expect(chooser.locator("option").nth(0)).to_contain_text("（zz.a1） · 摄像头")
    expect(chooser.locator("option").nth(1)).to_contain_text("属地")
    expect(chooser.locator("option").nth(1)).to_contain_text("（fq.h1） · 摄像头")
    expect(page.locator("#player")).not_to_contain_text("只播放其中第一路")

    wait_playing(page, "zz.a1 camera", 1.0)
    chooser.select_option("fq.h1 camera")
    at = float(page.evaluate("() => document.querySelector('#recording-video').currentTime"))
    wait_playing(page, "fq.h1 camera", max(1.0, at) + 0.5)
    chooser.select_option("zz.a1 camera")
    at = float(page.evaluate("() => document.querySelector('#recording-video').currentTime"))
    wait_playing(page, "zz.a1 camera", at + 0.5)
