"""comparison.dominance: verdicts beyond the accuracy spread (pure, fast)."""
from __future__ import annotations

import itertools

import pandas as pd
import pytest

from accelnas.report.comparison import dominance
from accelnas.report.pareto import dominates


def table(rows):
    return pd.DataFrame([{"name": n, "accuracy_mean": m, "accuracy_std": s, "lat": lat}
                         for n, m, s, lat in rows])


def verdict(a, b):
    return dominance(table([("a", *a), ("b", *b)]), ["a"], ["b"], "lat").verdict.iloc[0]


@pytest.mark.parametrize("a, b, expected", [
    ((0.40, 0.01, 5.0), (0.30, 0.01, 45.0), "dominates"),          # more accurate beyond spread, faster
    ((0.30, 0.01, 45.0), (0.40, 0.01, 5.0), "dominated"),
    ((0.40, 0.01, 9.0), (0.30, 0.01, 5.0), "trade-off"),
    ((0.332, 0.002, 7.7), (0.327, 0.011, 45.5), "faster, accuracy within spread"),  # the larger std counts
    ((0.327, 0.011, 45.5), (0.332, 0.002, 7.7), "slower, accuracy within spread"),
    ((0.40, 0.01, 5.0), (0.30, 0.01, 5.0), "more accurate, same latency"),
    ((0.30, 0.0, 5.0), (0.30, 0.0, 5.0), "within spread"),
])
def test_dominance_verdicts(a, b, expected):
    assert verdict(a, b) == expected


def test_dominates_verdict_is_pareto_dominance_beyond_the_spread_on_both_axes():
    grid = [(m, s, lat) for m, s, lat in itertools.product((0.30, 0.31, 0.35), (0.0, 0.02), (4.0, 5.0, 6.0))]
    for a, b in itertools.product(grid, grid):
        spread = max(a[1], b[1])
        expected = dominates((a[0], a[2]), (b[0], b[2]), margin=(spread, 0.0), require_all=True)
        assert (verdict(a, b) == "dominates") == expected, (a, b)


def test_dominance_skips_unknown_models_and_reports_the_ratio():
    t = table([("s", 0.4, 0.01, 5.0), ("r", 0.3, 0.01, 10.0)])
    d = dominance(t, ["s", "missing"], ["r"], "lat")
    assert list(d.model) == ["s"] and d.latency_ratio.iloc[0] == pytest.approx(0.5)
