"""R4: the reminder and escalation SMS fit Aliyun's limits (35 per variable, 500 a message)."""

from __future__ import annotations

import pytest

from sms.templates import (
    MESSAGE_LIMIT,
    TEXTS,
    VALUE_LIMIT,
    coalesce_reminders,
    cut,
    escalation_params,
    reminder_params,
    render,
    text_of,
)


def test_a_reminder_names_window_hall_and_waiting_calls() -> None:
    params = reminder_params(window="住房和城乡建设窗口", hall="郑州市政务服务大厅", waiting=2)
    assert params == {"window": "住房和城乡建设窗口", "hall": "郑州市政务服务大厅", "count": "2"}
    text = text_of("reminder", render("reminder", params), sign_name="通办")
    assert text.startswith("【通办】") and "郑州市政务服务大厅有2个视频协助请求" in text


def test_an_escalation_names_staff_agency_month_and_count() -> None:
    params = escalation_params(
        name="王五", agency="封丘县政务服务和大数据管理局", month="2026-03", count=4
    )
    values = render("escalation", params)
    assert values == {
        "name": "王五",
        "agency": "封丘县政务服务和大数据管理局",
        "month": "2026-03",
        "count": "4",
    }
    assert text_of("escalation", values).startswith("封丘县政务服务和大数据管理局王五在2026-03")


@pytest.mark.parametrize("length", [VALUE_LIMIT - 1, VALUE_LIMIT, VALUE_LIMIT + 1, 400])
def test_every_value_is_cut_to_the_limit(length: int) -> None:
    value = "窗" * length
    out = cut(value)
    assert len(out) <= VALUE_LIMIT
    if length <= VALUE_LIMIT:
        assert out == value
    else:
        assert out.endswith("…") and out[:-1] == value[: VALUE_LIMIT - 1]


def test_values_lose_newlines_and_runs_of_blanks() -> None:
    assert cut("郑州\n市  大厅\t") == "郑州 市 大厅"


def test_render_cuts_values_an_old_outbox_row_may_still_carry() -> None:
    values = render("reminder", {"window": "x" * 80, "hall": "y" * 80, "count": 3})
    assert all(len(v) <= VALUE_LIMIT for v in values.values())
    assert values["count"] == "3"


@pytest.mark.parametrize("template", sorted(TEXTS))
def test_the_longest_message_stays_within_500(template: str) -> None:
    longest = render(
        template, dict.fromkeys(("window", "hall", "count", "name", "agency", "month"), "长" * 99)
    )
    assert (
        len(text_of(template, longest, sign_name="河南省政务服务和大数据管理局")) <= MESSAGE_LIMIT
    )


def test_render_refuses_an_unknown_template_or_missing_variables() -> None:
    with pytest.raises(ValueError, match="unknown"):
        render("advert", {})
    with pytest.raises(ValueError, match="lacks hall"):
        render("reminder", {"window": "w", "count": "1"})


def test_coalesced_reminders_add_up_and_name_a_second_hall_with_deng() -> None:
    one = reminder_params(window="住建窗口", hall="郑州市政务服务大厅")
    two = reminder_params(window="住建窗口", hall="洛阳市政务服务大厅", waiting=2)
    assert coalesce_reminders([one, one]) == {**one, "count": "2"}
    merged = coalesce_reminders([one, two])
    assert merged == {"window": "住建窗口", "hall": "郑州市政务服务大厅等", "count": "3"}
    long_hall = reminder_params(window="w", hall="厅" * 50)
    merged = coalesce_reminders([long_hall, two])
    assert len(merged["hall"]) <= VALUE_LIMIT and merged["hall"].endswith("等")


def test_coalescing_tolerates_rows_without_a_count() -> None:
    assert coalesce_reminders([{"window": "w", "hall": "h"}, {"count": "x"}])["count"] == "2"
    with pytest.raises(ValueError):
        coalesce_reminders([])


def test_the_rows_signaling_writes_render_as_one_waiting_call() -> None:
    row = {"window": "住房和城乡建设窗口", "hall": "郑州市政务服务大厅", "call_id": "c-1"}
    values = render("reminder", coalesce_reminders([row]))
    assert values == {"window": "住房和城乡建设窗口", "hall": "郑州市政务服务大厅", "count": "1"}
