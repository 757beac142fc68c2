"""The two SMS templates: which variables each takes, and the limits Aliyun enforces.

Aliyun caps each template variable at 35 characters and a whole message at 500, and refuses
(``isv.PARAM_LENGTH_LIMIT``) rather than truncating, so values are cut here, before the outbox
row is written. The template texts below are the ones submitted for approval in the Aliyun
console; the approved codes go in ``TONGBAN_ALIYUN_TEMPLATE_REMINDER`` / ``_ESCALATION``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

VALUE_LIMIT = 35
MESSAGE_LIMIT = 500
ELLIPSIS = "…"

# Variable names are those of the approved templates; do not rename them here alone.
TEXTS: dict[str, str] = {
    "reminder": "您好，${hall}有${count}个视频协助请求正在等待${window}接听，请尽快处理。",
    "escalation": (
        "${agency}${name}在${month}经核实未接视频协助请求${count}次，已超出规定，请督办。"
    ),
}
VARIABLES: dict[str, tuple[str, ...]] = {
    "reminder": ("window", "hall", "count"),
    "escalation": ("name", "agency", "month", "count"),
}


def cut(value: Any, limit: int = VALUE_LIMIT) -> str:
    """``value`` as text of at most ``limit`` characters; a cut one ends with an ellipsis."""
    text = " ".join(str(value).split())  # no newlines or runs of blanks inside an SMS variable
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def reminder_params(*, window: str, hall: str, waiting: int = 1) -> dict[str, str]:
    """Parameters of a reminder: ``waiting`` calls from ``hall`` ring at ``window``."""
    if waiting < 1:
        raise ValueError("a reminder is about at least one waiting call")
    return {"window": cut(window), "hall": cut(hall), "count": str(waiting)}


def escalation_params(*, name: str, agency: str, month: str, count: int) -> dict[str, str]:
    """Parameters of an escalation notice to the parent agency's supervisors: staff member
    ``name`` of ``agency`` had ``count`` confirmed misses in ``month`` (``YYYY-MM``)."""
    return {"name": cut(name), "agency": cut(agency), "month": cut(month), "count": str(count)}


def coalesce_reminders(many: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """One reminder standing for several: the waiting counts add up; a window or hall that
    differs between them is named once with 等 ("and others")."""
    items = list(many)
    if not items:
        raise ValueError("nothing to coalesce")
    total = 0
    for item in items:
        try:
            total += max(1, int(item.get("count", 1)))
        except (TypeError, ValueError):
            total += 1

    def common(key: str) -> str:
        names = list(dict.fromkeys(str(item.get(key, "")) for item in items if item.get(key)))
        if not names:
            return ""
        if len(names) == 1:
            return cut(names[0])
        return cut(names[0], VALUE_LIMIT - 1) + "等"

    return {"window": common("window"), "hall": common("hall"), "count": str(total)}


def render(template: str, params: Mapping[str, Any]) -> dict[str, str]:
    """The ``TemplateParam`` object sent to Aliyun: every variable present, cut to the
    limit, and the whole text within ``MESSAGE_LIMIT``. Raises ``ValueError`` otherwise."""
    if template not in VARIABLES:
        raise ValueError(f"unknown SMS template {template!r}")
    missing = [name for name in VARIABLES[template] if name not in params]
    if missing:
        raise ValueError(f"SMS template {template!r} lacks {', '.join(missing)}")
    values = {name: cut(params[name]) for name in VARIABLES[template]}
    if len(text_of(template, values)) > MESSAGE_LIMIT:  # only a longer template text could
        raise ValueError(f"SMS {template!r} would be longer than {MESSAGE_LIMIT} characters")
    return values


def text_of(template: str, values: Mapping[str, str], sign_name: str = "") -> str:
    """The message as the phone shows it (signature in 【】 first when given)."""
    text = TEXTS[template]
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return f"【{sign_name}】{text}" if sign_name else text
