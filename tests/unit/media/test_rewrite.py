from __future__ import annotations

from media.feedback import NackDeduper, RateLimiter, RembAggregator
from media.history import PacketHistory
from media.rewrite import StreamRewriter


def test_first_source_starts_at_the_chosen_numbers() -> None:
    r = StreamRewriter(90000, first_seq=100, first_ts=1000)
    assert r.map(7, 5000, 30000, 0.0) == (100, 1000)
    assert r.map(7, 5001, 33000, 0.033) == (101, 4000)
    assert r.map(7, 5000, 30000, 0.05) == (100, 1000)  # reordered duplicate keeps its number


def test_sequence_wraps_across_65535() -> None:
    r = StreamRewriter(90000, first_seq=65534, first_ts=0)
    out = [r.map(1, s, s * 3000, s / 30)[0] for s in range(4)]  # type: ignore[index]
    assert out == [65534, 65535, 0, 1]


def test_new_source_continues_the_stream() -> None:
    r = StreamRewriter(90000, first_seq=10, first_ts=0)
    for i in range(5):
        r.map(1, 200 + i, 3000 * i, i / 30)
    seq, ts = r.map(2, 9, 777, 4 / 30 + 1.0)  # type: ignore[misc]
    assert seq == 15  # continues after 14
    assert ts == 12000 + 90000  # the last timestamp plus the wall time since it
    assert r.map(1, 205, 15000, 1.2) is None  # a late packet of the replaced source: dropped
    assert r.map(2, 8, 700, 1.2) is None  # older than the start of the new epoch: dropped
    assert r.source_seq(15) == 9 and r.source_seq(14) is None


def test_timestamps_and_receiver_reports_translate() -> None:
    r = StreamRewriter(48000, first_seq=0, first_ts=100)
    r.map(9, 1000, 5000, 0.0)
    r.map(9, 1001, 5960, 0.02)
    assert r.out_timestamp(9, 5960) == 1060
    assert r.out_timestamp(8, 5960) is None
    assert r.source_extended_seq(1) == 1001


def test_history_keeps_the_last_1024() -> None:
    h = PacketHistory()
    for seq in range(2000):
        h.put(seq & 0xFFFF, bytes([seq & 0xFF]))
    assert h.get(1999) == bytes([1999 & 0xFF])
    assert h.get(975) is None and h.get(976) is not None
    h.clear()
    assert h.get(1999) is None


def test_pli_rate_limit_half_a_second() -> None:
    limit = RateLimiter()
    assert limit.allow(10.0)
    assert not limit.allow(10.4)
    assert limit.allow(10.5)


def test_nack_dedup_asks_once_per_interval() -> None:
    d = NackDeduper()
    assert d.filter([1, 2], 0.0) == [1, 2]
    assert d.filter([2, 3], 0.05) == [3]
    assert d.filter([2], 0.2) == [2]


def test_remb_takes_the_lowest_fresh_receiver() -> None:
    agg = RembAggregator()
    assert agg.update("a", 1_000_000, 0.0) == 1_000_000
    assert agg.update("b", 300_000, 1.0) == 300_000
    assert agg.update("a", 900_000, 7.0) == 900_000  # b's report is stale
