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


def test_target_verdict_needs_every_key_reference():
    from accelnas.report.comparison import target_verdict

    dom = pd.DataFrame([
        {"model": "searched", "reference": "mobilenet_v3_large", "on": "coral", "verdict": "dominates"},
        {"model": "searched", "reference": "resnet50", "on": "coral", "verdict": "dominates"},
        {"model": "searched", "reference": "resnet50", "on": "pixel4", "verdict": "trade-off"},
        {"model": "searched-M", "reference": "resnet50", "on": "coral", "verdict": "dominated"},
    ])
    rows, met = target_verdict(dom, "coral")
    assert met and len(rows) == 2
    assert target_verdict(dom, "pixel4")[1] is False  # one reference missing there
    assert target_verdict(dom.iloc[[0, 3]], "coral")[1] is False


def test_estimator_errors_from_notebook_02_outputs():
    from accelnas.report.comparison import estimator_errors

    assert estimator_errors(None, {}).empty
    validation = pd.DataFrame({"hardware": ["coral", "coral", "pixel4"], "sim_error": [0.1, -0.3, 0.05],
                               "apm_error": [0.2, -0.1, 0.0]})
    models = {"apm_coral": {"accelerator": "coral", "fit": {"eval_fitted": {"mape": 0.04, "kendall_tau": 0.9}}}}
    e = estimator_errors(validation, models).set_index("accelerator")
    assert e.loc["coral", "sim_max_abs_error"] == pytest.approx(0.3)
    assert e.loc["coral", "apm_median_abs_error"] == pytest.approx(0.15)
    assert e.loc["coral", "apm_fitted_vs_sim_mape"] == 0.04 and pd.isna(e.loc["pixel4", "apm_fitted_vs_sim_mape"])


def test_estimator_agreement_against_the_simulator():
    from accelnas import params as P
    from accelnas.latency.accelerator import load_accelerator
    from accelnas.latency import estimate
    from accelnas.report.comparison import estimator_agreement
    from accelnas.space import zoo

    params = P.load("params/smoke.yaml")
    coral = load_accelerator("coral")
    archs = [zoo.get(n, resolution=96) for n in ("mobilenet_v2", "efficientnet_edgetpu_s", "mobilenet_edgetpu")]
    sim = [estimate(a, coral, "sim").latency_ms for a in archs]
    trials = pd.DataFrame({"status": ["completed"] * 3, "arch": [a.encode() for a in archs],
                           "accuracy": [0.3, 0.4, 0.35], "reward": [0.3, 0.4, 0.35],
                           "latency_ms_coral": [sim[0], sim[1] * 1.5, sim[2]]})
    agree = estimator_agreement(trials, params, {"coral": coral}, "coral", top=2)
    assert agree["n"] == 3 and agree["max_abs_error"] == pytest.approx(0.5)
    assert agree["median_abs_error"] == pytest.approx(0.0, abs=1e-9) and agree["top"] == 2
    assert estimator_agreement(trials.assign(status="failed"), params, {"coral": coral}, "coral") is None
