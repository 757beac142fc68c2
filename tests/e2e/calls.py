"""Steps shared by the call scenarios: register a case, ring, answer, check media in the page."""

from __future__ import annotations

import itertools
from typing import Any

from playwright.sync_api import expect

from tests.e2e.harness import id_number

_serial = itertools.count(1)

# Sum of frames decoded over the page's inbound video streams (getStats inbound-rtp).
FRAMES_DECODED = """async () => {
  const call = window.__tongbanCall;
  if (!call || !call.pc) return 0;
  let total = 0;
  (await call.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") total += s.framesDecoded || 0;
  });
  return total;
}"""

PLAYING_VIDEOS = """() => [...document.querySelectorAll('#remote-videos video')]
  .filter((v) => v.videoWidth > 0 && !v.paused).length"""


def create_case(page: Any, applicant: str = "李四") -> str:
    """Registers a case through the form on the applicant-side console; returns its number."""
    n = next(_serial)
    page.get_by_role("button", name="新建案件").click()
    form = page.locator("form#case-form")
    form.locator("#matter_code").select_option("HN-ZJ-001")
    form.locator("#region_code").select_option("410727")
    form.locator("#applicant_name").fill(applicant)
    form.locator("#applicant_id_number").fill(
        id_number(f"4107271988{n % 12 + 1:02d}15{n % 1000:03d}")
    )
    form.get_by_role("button", name="登记案件").click()
    expect(form).to_be_hidden()
    selected = page.locator("#case-list tr.selected td").nth(1)
    expect(selected).not_to_be_empty()
    return str(selected.inner_text()).strip().splitlines()[0]


def wait_online(page: Any) -> None:
    """A home-locality clerk whose presence the server has confirmed."""
    expect(page.locator("#presence-text")).to_contain_text("在线，可以接听来电")


def ring_and_answer(caller: Any, callee: Any) -> str:
    """zz.a1 requests assistance on a new case, fq.h1 answers; returns the case number."""
    wait_online(callee)
    case_no = create_case(caller)
    caller.get_by_role("button", name="请求协助").click()
    expect(caller.locator("#ringing")).to_be_visible()
    expect(caller.locator("#ring-window")).to_contain_text("封丘")
    expect(caller.locator("#status-line")).to_contain_text("正在呼叫")
    card = callee.locator("section.incoming")
    expect(card).to_contain_text(case_no)
    expect(card).to_contain_text("郑州市政务服务中心")
    card.get_by_role("button", name="接听").click()
    for page in (caller, callee):
        expect(page.locator("#call")).to_be_visible()
    return case_no


def wait_decoded_frames(
    page: Any, *, more: int = 0, at_least: int = 0, timeout_ms: int = 20_000
) -> int:
    """Waits in the page until inbound video has decoded ``more`` frames than now (and at
    least ``at_least`` in all); returns the count. (``wait_for_function`` does not await an
    async predicate, so the page polls its own getStats here.)"""
    return int(
        page.evaluate(
            """async ([more, atLeast, timeoutMs]) => {
              const frames = """
            + FRAMES_DECODED
            + """;
              const start = await frames();
              const deadline = Date.now() + timeoutMs;
              for (;;) {
                const now = await frames();
                if (now > start + more && now >= atLeast) return now;
                if (Date.now() > deadline) {
                  throw new Error(`decoded video frames did not rise enough: ${start} -> ${now}`);
                }
                await new Promise((r) => setTimeout(r, 200));
              }
            }""",
            [more, at_least, timeout_ms],
        )
    )


def wait_remote_video(page: Any, count: int = 1, timeout: float = 20_000) -> None:
    """``count`` remote videos are playing and decoded frames keep rising."""
    page.wait_for_function(f"() => ({PLAYING_VIDEOS})() >= {count}", timeout=timeout)
    wait_decoded_frames(page, more=15 * count, timeout_ms=int(timeout))


def rate(page: Any, score: int, comment: str = "") -> None:
    form = page.locator("form#rating-form")
    expect(form).to_be_visible()
    form.get_by_role("button", name=f"{score} 分").click()
    if comment:
        form.locator("#rating-comment").fill(comment)
    form.get_by_role("button", name="提交评价").click()
    expect(form).to_be_hidden()
