"""Percentiles of time to answer from a histogram of whole seconds.

The database returns how many calls were answered after each whole number of seconds (a
GROUP BY, a few hundred rows at most per window, whatever the number of calls), and these
histograms add up from staff to windows, halls, agencies and the province, which percentiles
themselves do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def nearest_rank(histogram: Mapping[int, int], percent: int) -> int | None:
    """The smallest value with at least ``percent``% of the observations at or below it
    (PostgreSQL's ``percentile_disc``); None without observations."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen * 100 >= percent * total:
            return value
    return max(histogram)  # pragma: no cover - the loop always returns for percent <= 100


def nearest_ranks(histogram: Mapping[int, int], percents: Sequence[int]) -> list[int | None]:
    """``nearest_rank`` for several ascending percentages in one pass over the sorted values
    (the report asks p50 and p90 of some 11,000 rows)."""
    total = sum(histogram.values())
    if total <= 0:
        return [None] * len(percents)
    out: list[int | None] = []
    seen = 0
    pending = iter(percents)
    percent = next(pending, None)
    for value in sorted(histogram):
        seen += histogram[value]
        while percent is not None and seen * 100 >= percent * total:
            out.append(value)
            percent = next(pending, None)
        if percent is None:
            break
    while len(out) < len(percents):  # pragma: no cover - only for percentages over 100
        out.append(max(histogram))
    return out
