"""The call state machine, without an event loop: every legal transition, and every illegal
one refused with ``invalid_state`` (R1, R4, R5, R10)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signaling import callstate as cs
from signaling.callstate import Call
from tongban.errors import Forbidden, InvalidInput, InvalidState

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
CALLER, H1, H2, EXPERT = 1, 11, 12, 13


def ringing(**over: Any) -> Call:
    base = Call(
        id="c1",
        state=cs.RINGING,
        caller_id=CALLER,
        rung=frozenset({H1, H2}),
        declined=frozenset(),
        requested_at=T0,
    )
    return replace(base, **over)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_answer_in_time_and_hang_up() -> None:
    call = cs.accept(ringing(), H2, at(10))
    assert call.state == cs.ANSWERED and call.answered_by == H2 and not call.answered_late
    assert call.participants == {CALLER, H2}
    ended = cs.hang_up(call, CALLER, at(100))
    assert ended.state == cs.ENDED and ended.end_reason == "hangup"
    assert cs.responsible_for_miss(ended) == frozenset()


def test_answer_after_overdue_is_late_not_a_miss() -> None:
    call = cs.accept(cs.mark_overdue(ringing(), at(60)), H1, at(70))
    assert call.answered_late
    assert cs.responsible_for_miss(cs.hang_up(call, H1, at(80))) == frozenset()


def test_limit_makes_a_miss_for_everyone_on_duty_who_did_not_decline() -> None:
    call = cs.decline(cs.mark_overdue(ringing(), at(60)), H1, "正在办理其他业务", at(61))
    missed = cs.reach_limit(call, at(300))
    assert missed.state == cs.MISSED and missed.end_reason == cs.MISSED
    assert cs.responsible_for_miss(missed) == {H2}


def test_cancel_before_overdue_is_no_miss_after_overdue_is() -> None:
    early = cs.cancel(ringing(), CALLER, at(5))
    assert early.state == cs.CANCELLED and cs.responsible_for_miss(early) == frozenset()
    late = cs.cancel(cs.mark_overdue(ringing(), at(60)), CALLER, at(90))
    assert late.state == cs.MISSED and late.end_reason == cs.CANCELLED
    assert cs.responsible_for_miss(late) == {H1, H2}


def test_calls_outside_office_hours_never_make_misses() -> None:
    call = cs.reach_limit(cs.mark_overdue(ringing(in_office_hours=False), at(60)), at(300))
    assert cs.responsible_for_miss(call) == frozenset()


def test_everyone_declining_ends_the_call_declined() -> None:
    call = cs.decline(ringing(), H1, "材料不属本窗口", at(3))
    assert call.state == cs.RINGING and call.declined == {H1}
    call = cs.decline(call, H2, "材料不属本窗口", at(4))
    assert call.state == cs.DECLINED and call.ended_at == at(4)
    assert cs.responsible_for_miss(call) == frozenset()


def test_decline_needs_a_reason() -> None:
    with pytest.raises(InvalidInput) as err:
        cs.decline(ringing(), H1, "  ", at(1))
    assert err.value.code == "reason_required"


def test_expert_invited_only_by_the_answerer_while_answered() -> None:
    call = cs.accept(ringing(), H1, at(5))
    with pytest.raises(Forbidden):
        cs.invite(call, CALLER, EXPERT)
    joined = cs.invite(call, H1, EXPERT)
    assert joined.participants == {CALLER, H1, EXPERT}
    with pytest.raises(InvalidInput):
        cs.invite(joined, H1, EXPERT)


def test_only_the_caller_cancels_and_only_rung_staff_answer() -> None:
    with pytest.raises(Forbidden):
        cs.cancel(ringing(), H1, at(1))
    with pytest.raises(Forbidden):
        cs.accept(ringing(), 99, at(1))
    with pytest.raises(Forbidden):
        cs.hang_up(cs.accept(ringing(), H1, at(1)), 99, at(2))


FINAL = {
    cs.ENDED: lambda: cs.hang_up(cs.accept(ringing(), H1, at(1)), H1, at(2)),
    cs.DECLINED: lambda: cs.decline(cs.decline(ringing(), H1, "x", at(1)), H2, "y", at(2)),
    cs.CANCELLED: lambda: cs.cancel(ringing(), CALLER, at(1)),
    cs.MISSED: lambda: cs.reach_limit(ringing(), at(300)),
}
ACTIONS: dict[str, Callable[[Call], Call]] = {
    "accept": lambda c: cs.accept(c, H1, at(400)),
    "decline": lambda c: cs.decline(c, H2, "reason", at(400)),
    "cancel": lambda c: cs.cancel(c, CALLER, at(400)),
    "overdue": lambda c: cs.mark_overdue(c, at(400)),
    "limit": lambda c: cs.reach_limit(c, at(400)),
    "invite": lambda c: cs.invite(c, H1, EXPERT),
    "hangup": lambda c: cs.hang_up(c, H1, at(400)),
}


@pytest.mark.parametrize("final", sorted(FINAL))
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_a_finished_call_refuses_everything(final: str, action: str) -> None:
    call = FINAL[final]()
    assert call.state == final
    with pytest.raises(InvalidState) as err:
        ACTIONS[action](call)
    assert err.value.code in ("invalid_state", "call_taken")
    assert err.value.details["state"] == final


@pytest.mark.parametrize("action", ["overdue", "invite"])
def test_ringing_refuses_what_only_other_states_allow(action: str) -> None:
    overdue = cs.mark_overdue(ringing(), at(60))
    target = overdue if action == "overdue" else ringing()
    with pytest.raises(InvalidState) as err:
        ACTIONS[action](target)
    assert err.value.code == "invalid_state"


@pytest.mark.parametrize("action", ["accept", "decline", "overdue", "limit"])
def test_an_answered_call_refuses_ringing_actions(action: str) -> None:
    call = cs.accept(ringing(), H2, at(5))
    with pytest.raises(InvalidState) as err:
        ACTIONS[action](call)
    assert err.value.code in ("invalid_state", "call_taken")
    assert err.value.details["state"] == cs.ANSWERED


def test_a_second_accept_says_taken() -> None:
    call = cs.accept(ringing(), H2, at(5))
    with pytest.raises(InvalidState) as err:
        cs.accept(call, H1, at(6))
    assert err.value.code == "call_taken"


def test_cancel_after_answer_is_refused_but_hangup_works() -> None:
    call = cs.accept(ringing(), H1, at(5))
    with pytest.raises(InvalidState):
        cs.cancel(call, CALLER, at(6))
    assert cs.hang_up(call, CALLER, at(7)).state == cs.ENDED
