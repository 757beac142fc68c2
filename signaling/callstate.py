"""The call state machine, pure: a call's state and the transitions people and deadlines
cause. No I/O; the service around it stores the result with a compare-and-set on ``state``.

    ringing ──overdue──> overdue
    ringing | overdue ──accept──> answered ──hangup / connection lost──> ended
    ringing | overdue ──everyone on duty declined──> declined
    ringing ──cancel──> cancelled          overdue ──cancel──> missed
    ringing | overdue ──ring limit──> missed

A call that became overdue and was never answered is a miss, whether it reached the limit
or the caller gave up; cancelled before it became overdue it is not; answered after it
became overdue it is answered late (DESIGN.md, "Call flow").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from tongban.errors import Forbidden, InvalidInput, InvalidState

RINGING = "ringing"
OVERDUE = "overdue"
ANSWERED = "answered"
ENDED = "ended"
DECLINED = "declined"
CANCELLED = "cancelled"
MISSED = "missed"

RINGING_STATES = frozenset({RINGING, OVERDUE})
LIVE_STATES = frozenset({RINGING, OVERDUE, ANSWERED})
FINAL_STATES = frozenset({ENDED, DECLINED, CANCELLED, MISSED})


@dataclass(frozen=True, slots=True)
class Call:
    id: str
    state: str
    caller_id: int
    rung: frozenset[int]  # staff on duty at the window when the call was requested
    declined: frozenset[int]
    requested_at: datetime
    overdue_at: datetime | None = None
    answered_at: datetime | None = None
    answered_by: int | None = None
    answered_late: bool = False
    ended_at: datetime | None = None
    end_reason: str | None = None
    experts: frozenset[int] = frozenset()
    in_office_hours: bool = True

    @property
    def participants(self) -> frozenset[int]:
        """Who is in the call once it is answered."""
        if self.answered_by is None:
            return frozenset({self.caller_id})
        return frozenset({self.caller_id, self.answered_by}) | self.experts

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def became_overdue(self) -> bool:
        return self.overdue_at is not None


def _refuse(call: Call, action: str) -> InvalidState:
    return InvalidState(
        f"通话处于“{STATE_NAMES.get(call.state, call.state)}”状态，不能{action}",
        state=call.state,
    )


STATE_NAMES = {
    RINGING: "呼叫中",
    OVERDUE: "超时未接",
    ANSWERED: "通话中",
    ENDED: "已结束",
    DECLINED: "已拒绝",
    CANCELLED: "已取消",
    MISSED: "未接听",
}


def mark_overdue(call: Call, now: datetime) -> Call:
    if call.state != RINGING:
        raise _refuse(call, "标记超时")
    return replace(call, state=OVERDUE, overdue_at=now)


def accept(call: Call, who: int, now: datetime) -> Call:
    if call.state not in RINGING_STATES:
        if call.state == ANSWERED:
            raise InvalidState("已有其他人接听", code="call_taken", state=call.state)
        raise _refuse(call, "接听")
    if who not in call.rung:
        raise Forbidden("您不在该窗口的值班人员中", code="not_rung")
    if who in call.declined:
        raise _refuse(call, "接听已拒绝的呼叫")
    return replace(
        call,
        state=ANSWERED,
        answered_at=now,
        answered_by=who,
        answered_late=call.state == OVERDUE,
    )


def decline(call: Call, who: int, reason: str, now: datetime) -> Call:
    """Stops ringing for ``who``; the call ends declined when all rung staff declined."""
    if not reason.strip():
        raise InvalidInput("拒绝时必须说明理由", code="reason_required")
    if call.state not in RINGING_STATES:
        raise _refuse(call, "拒绝")
    if who not in call.rung:
        raise Forbidden("您不在该窗口的值班人员中", code="not_rung")
    if who in call.declined:
        raise _refuse(call, "重复拒绝")
    declined = call.declined | {who}
    if declined >= call.rung:
        return replace(call, declined=declined, state=DECLINED, ended_at=now, end_reason=DECLINED)
    return replace(call, declined=declined)


def cancel(call: Call, who: int, now: datetime) -> Call:
    if who != call.caller_id:
        raise Forbidden("只有发起人可以取消呼叫", code="not_caller")
    if call.state not in RINGING_STATES:
        raise _refuse(call, "取消")
    if call.state == OVERDUE:
        return replace(call, state=MISSED, ended_at=now, end_reason=CANCELLED)
    return replace(call, state=CANCELLED, ended_at=now, end_reason=CANCELLED)


def reach_limit(call: Call, now: datetime) -> Call:
    if call.state not in RINGING_STATES:
        raise _refuse(call, "按未接听结束")
    return replace(call, state=MISSED, ended_at=now, end_reason=MISSED)


def invite(call: Call, who: int, expert: int) -> Call:
    if call.state != ANSWERED:
        raise _refuse(call, "邀请专家")
    if who != call.answered_by:
        raise Forbidden("只有接听的属地窗口人员可以邀请专家", code="not_answerer")
    if expert in call.participants:
        raise InvalidInput("该专家已在通话中", code="already_in_call")
    return replace(call, experts=call.experts | {expert})


def hang_up(call: Call, who: int | None, now: datetime, reason: str = "hangup") -> Call:
    """Ends an answered call for everyone; a ringing call hung up by its caller is a cancel."""
    if call.state in RINGING_STATES and who == call.caller_id:
        return cancel(call, who, now)
    if call.state != ANSWERED:
        raise _refuse(call, "挂断")
    if who is not None and who not in call.participants:
        raise Forbidden("您不在这个通话中", code="not_participant")
    return replace(call, state=ENDED, ended_at=now, end_reason=reason)


def responsible_for_miss(call: Call) -> frozenset[int]:
    """Who gets a miss: staff on duty when it rang who did not decline with a reason.
    Only for a call that ended missed inside office hours."""
    if call.state != MISSED or not call.in_office_hours or not call.became_overdue:
        return frozenset()
    return call.rung - call.declined
