"""Measuring the stage-1 ranking against stage 2 (accelnas.search.proxy_fidelity)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accelnas import params as params_mod
from accelnas.search import proxy_fidelity as F
from accelnas.search.tuner import setup

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke():
    return params_mod.load(ROOT / "params" / "smoke.yaml")


def test_kendall_ci_brackets_tau_and_separates_agreement_from_reversal():
    a = np.arange(12.0)
    same = F.kendall_ci(a, a + 0.1)
    assert same["tau"] == pytest.approx(1.0) and same["ci_low"] == pytest.approx(1.0) and same["n"] == 12
    rev = F.kendall_ci(a, -a)
    assert rev["tau"] == pytest.approx(-1.0) and rev["ci_high"] == pytest.approx(-1.0)
    noisy = F.kendall_ci(a, a + np.random.default_rng(0).normal(0, 4, 12))
    assert noisy["ci_low"] <= noisy["tau"] <= noisy["ci_high"] and noisy["ci_high"] - noisy["ci_low"] > 0.2
    with pytest.raises(ValueError, match=">= 3"):
        F.kendall_ci([1, 2], [1, 2])


def test_summary_and_trust_line():
    frame = pd.DataFrame({"stage1": [0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, None],
                          "stage2": [0.3, 0.35, 0.4, 0.5, 0.55, 0.57, 0.58, 0.6],
                          "latency_ms": [1, 2, 3, 4, 5, 6, 7, 8],
                          "stage2_seeds": [[0.29, 0.31], [0.35, 0.35], [0.39, 0.41], [0.5, 0.5], [0.54, 0.56],
                                           [0.57, 0.57], [0.58, 0.58], [0.6, 0.6]]})
    s = F.fidelity_summary(frame, ["stage1"])
    assert s["kendall"]["stage1"]["n"] == 7 and s["kendall"]["stage1"]["tau"] == pytest.approx(1.0)
    assert s["kendall"]["latency only"]["tau"] == pytest.approx(-1.0)  # slower is more accurate here
    assert s["seed_spread"] == pytest.approx(np.mean([0.02, 0, 0.02, 0, 0.02, 0, 0, 0]))
    line = F.trust_line(s, "stage1")
    assert "trustworthy" in line and "+1.00" in line and "latency alone" in line
    flipped = F.fidelity_summary(frame.assign(stage1=-frame.stage1), ["stage1"])
    assert "not distinguishable from chance" in F.trust_line(flipped, "stage1")
    assert F.trust_line({"kendall": {}}, "stage1").startswith("no stage1")
    few = F.fidelity_summary(frame.iloc[:4], ["stage1"])
    assert "too few to judge" in F.trust_line(few, "stage1")


def test_correlation_candidates_span_the_latency_range(smoke):
    su = setup(smoke)
    cands = F.correlation_candidates(su.space, su.screen, "coral", 6, seed=0)
    assert [a.name for a in cands[:6]] == [f"cand{i}" for i in range(6)]
    assert cands[-1].name == "efficientnet_edgetpu_s_nearest" and len(cands) == 7
    lat = [su.screen.latencies(a)["coral"] for a in cands[:6]]
    assert lat == sorted(lat) and lat[-1] > 1.5 * lat[0]
    again = F.correlation_candidates(su.space, su.screen, "coral", 6, seed=0)
    assert [a.encode() for a in again] == [a.encode() for a in cands]


def test_another_candidate_seed_draws_a_held_out_set(smoke):
    # benchmarks/proxy_bench.py --candidate-seed: a second set to check a choice made on the first
    su = setup(smoke)
    strip = lambda cands: {a.replace(name="x").encode() for a in cands}  # noqa: E731
    first = F.correlation_candidates(su.space, su.screen, "coral", 6, seed=0)
    second = F.correlation_candidates(su.space, su.screen, "coral", 6, seed=1)
    assert strip(first[:-1]).isdisjoint(strip(second[:-1]))
    assert first[-1].encode() == second[-1].encode()  # the skeleton is in both


@pytest.mark.slow
def test_measure_scores_stage1_and_stage2_and_reuses_trainings(smoke, tmp_path):
    p = params_mod.override(smoke, {"search.evaluator": "standalone", "stage2.subset": 256})
    su = setup(p)
    frame = F.measure(p, su.space, su.screen, tmp_path, n=3, seeds=[0, 1], log=None)
    assert len(frame) == 4 and frame.stage1.between(0, 1).all() and frame.stage2.between(0, 1).all()
    assert frame.stage2_seeds.map(len).eq(2).all()
    trained = pd.read_parquet(tmp_path / "trained.parquet")
    assert len(trained) == 4 + 8  # stage 1 (one seed) + stage 2 (two seeds) per candidate
    again = F.measure(p, su.space, su.screen, tmp_path, n=3, seeds=[0, 1], log=None)
    assert len(pd.read_parquet(tmp_path / "trained.parquet")) == 12
    pd.testing.assert_series_equal(again.stage2, frame.stage2)


def test_reference_ceiling_matches_simulated_seed_noise():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    true = rng.normal(0.35, 0.02, 600)
    seeds = true[:, None] + rng.normal(0, 0.015, (600, 3))
    c = F.reference_ceiling(list(seeds))
    # the ceiling is what the true ranking reaches against the 3-seed mean
    assert c["ceiling"] == pytest.approx(kendalltau(true, seeds.mean(1)).statistic, abs=0.04)
    assert c["seed_vs_seed_model"] == pytest.approx(c["seed_vs_seed"], abs=0.05)
    assert c["k"] == pytest.approx(3) and c["seed_sd"] == pytest.approx(0.015, rel=0.1)
    assert 0.5 < c["ceiling"] < 0.9 and c["seed_vs_seed"] < c["ceiling"]
    exact = F.reference_ceiling([[a, a] for a in true[:20]])
    assert exact["ceiling"] == pytest.approx(1.0) and exact["reliability"] == pytest.approx(1.0)
    pure_noise = F.reference_ceiling(list(0.35 + rng.normal(0, 0.015, (600, 2))))
    assert pure_noise["ceiling"] < 0.15
    assert F.reference_ceiling([[0.3, 0.31], [0.4], [0.2, 0.25]]) is None  # < 3 rows with 2 seeds


def test_trust_line_states_the_reference_ceiling():
    frame = pd.DataFrame({"stage1": np.arange(8.0), "stage2": np.arange(8.0) / 100,
                          "stage2_seeds": [[v / 100 - 0.01, v / 100 + 0.01] for v in range(8)]})
    s = F.fidelity_summary(frame, ["stage1"], latency=None)
    assert 0 < s["ceiling"]["ceiling"] < 1
    assert f"{s['ceiling']['ceiling']:+.2f}" in F.trust_line(s, "stage1")
