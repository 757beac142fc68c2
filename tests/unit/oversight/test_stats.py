"""R12: time to answer percentiles, nearest rank over whole seconds."""

from __future__ import annotations

from collections import Counter

from oversight.stats import nearest_rank, nearest_ranks


def test_nearest_rank_matches_percentile_disc() -> None:
    assert nearest_rank({10: 1, 20: 1, 30: 1}, 50) == 20
    assert nearest_rank({10: 1, 20: 1, 30: 1}, 90) == 30
    assert nearest_rank({10: 1, 30: 1}, 50) == 10
    assert nearest_rank({10: 1, 30: 1}, 90) == 30
    assert nearest_rank({7: 1}, 90) == 7
    assert nearest_rank({}, 50) is None


def test_histograms_add_up_where_percentiles_do_not() -> None:
    staff_a = Counter({5: 9, 60: 1})
    staff_b = Counter({40: 10})
    assert (nearest_rank(staff_a, 50), nearest_rank(staff_b, 50)) == (5, 40)
    assert nearest_rank(staff_a + staff_b, 50) == 40
    assert nearest_rank(staff_a + staff_b, 90) == 40
    assert nearest_rank(staff_a + staff_b, 100) == 60


def test_nearest_ranks_in_one_pass_equal_nearest_rank_each() -> None:
    histograms: list[dict[int, int]] = [
        {}, {7: 1}, {10: 1, 30: 1}, {10: 1, 20: 1, 30: 1}, {5: 9, 60: 1}, {0: 3, 2: 1, 9: 6},
        {i: (i * 7919) % 13 for i in range(200)},
    ]  # fmt: skip
    for histogram in histograms:
        expected = [nearest_rank(histogram, p) for p in (1, 50, 90, 100)]
        assert nearest_ranks(histogram, (1, 50, 90, 100)) == expected, histogram
