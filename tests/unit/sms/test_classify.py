"""What each Aliyun answer means for the outbox: retry, back off, or an administrator."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sms.outbox import Entry
from sms.providers import classify, parse_endpoint, scrub
from sms.worker import batches


@pytest.mark.parametrize(
    ("code", "status", "retryable", "backoff", "attention"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", None, False, True, False),
        ("isv.MOBILE_NUMBER_ILLEGAL", None, False, False, True),
        ("isv.SMS_TEMPLATE_ILLEGAL", None, False, False, True),
        ("isv.AMOUNT_NOT_ENOUGH", None, False, False, True),
        ("Throttling.User", 400, True, False, False),
        ("Throttling.Api", 400, True, False, False),
        ("ServiceUnavailable", 503, True, False, False),
        ("SDK.UnknownServerError", 502, True, False, False),
        ("InvalidAccessKeySecret", 400, False, False, True),
        ("InvalidAccessKeyId.NotFound", 404, False, False, True),
        ("SDK.InvalidParams", None, False, False, True),
    ],
)
def test_classification(
    code: str, status: int | None, retryable: bool, backoff: bool, attention: bool
) -> None:
    err = classify(code, "msg", status)
    assert (err.code, err.retryable, err.backoff, err.needs_attention) == (
        code,
        retryable,
        backoff,
        attention,
    )


def test_a_read_timeout_may_have_sent_the_message_a_refused_connection_not() -> None:
    timeout = classify(
        "SDK.HttpError", "HTTPConnectionPool(host='h', port=1): Read timed out. (read timeout=1)"
    )
    assert timeout.retryable and timeout.maybe_sent
    refused = classify(
        "SDK.HttpError",
        "Max retries exceeded with url: /?x (Caused by NewConnectionError(... "
        "[Errno 111] Connection refused'))",
    )
    assert refused.retryable and not refused.maybe_sent


def test_errors_carry_no_phone_number_nor_the_signed_url() -> None:
    err = classify(
        "SDK.HttpError",
        "Max retries exceeded with url: /?PhoneNumbers=13800000011&AccessKeyId=LTAIabc "
        "(Caused by NewConnectionError('refused'))",
    )
    assert "13800000011" not in str(err) and "LTAIabc" not in str(err)
    assert scrub("call 13800000011 now") == "call 138****0011 now"


def test_endpoint_urls() -> None:
    assert parse_endpoint("https://dysmsapi.aliyuncs.com").port == 443
    local = parse_endpoint("http://127.0.0.1:9000")
    assert (local.host, local.port, local.scheme) == ("127.0.0.1", 9000, "http")
    with pytest.raises(ValueError):
        parse_endpoint("ftp://x")


def entry(id_: int, phone: str, template: str = "reminder", **params: str) -> Entry:
    now = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    return Entry(
        id=id_, dedupe_key=f"k{id_}", account_id=None, phone=phone, template=template,
        params=params, state="sending", attempts=1, next_attempt_at=now, claimed_by="n",
        claimed_until=now, biz_id=None, request_id=None, last_error=None, created_at=now,
        sent_at=None, delivered_at=None,
    )  # fmt: skip


def test_reminders_to_one_phone_become_one_message_escalations_never_merge() -> None:
    claimed = [
        entry(3, "13800000011", window="住建", hall="郑州", count="1"),
        entry(1, "13800000011", window="住建", hall="郑州", count="1"),
        entry(2, "13800000012", window="住建", hall="郑州", count="1"),
        entry(4, "13800000011", "escalation", name="a", agency="x", month="2026-03", count="4"),
        entry(5, "13800000011", "escalation", name="b", agency="x", month="2026-03", count="5"),
    ]
    out = batches(claimed)
    assert sorted(b.ids for b in out) == [[1, 3], [2], [4], [5]]
    merged = next(b for b in out if b.ids == [1, 3])
    assert merged.params["count"] == "2" and merged.entries[0].out_id == "1"
