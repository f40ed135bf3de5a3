"""benchmarks/search_bench.py: the fixed NASWOT map, the comparison helpers, and a tiny real run.

The run needs CIFAR-10 (the `cifar_dir` fixture of tests/conftest.py: ``$ACCELNAS_DATA_DIR`` or
../shared/data beside the checkout; skipped when neither holds it).
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "search_bench.py"


def _bench():
    spec = importlib.util.spec_from_file_location("search_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_naswot_map_is_fixed_monotone_and_in_unit_interval():
    b = _bench()
    scores = np.linspace(b.S_MID - 10 * b.S_SCALE, b.S_MID + 10 * b.S_SCALE, 101)
    acc = np.array([b.naswot_to_accuracy(s) for s in scores])
    assert np.all(np.diff(acc) > 0)
    assert 0.0 <= acc.min() and acc.max() <= 1.0
    assert b.ACC_LO <= acc.min() and acc.max() <= b.ACC_HI
    assert b.naswot_to_accuracy(b.S_MID) == pytest.approx((b.ACC_LO + b.ACC_HI) / 2)


def test_versus_counts_wins_and_pairs():
    b = _bench()
    v = b.versus([0.5, 0.7, 0.6], [0.6, 0.6, 0.6])
    assert v["wins_same_seed"] == "1/3" and v["ties_same_seed"] == 1
    assert v["mean_diff"] == pytest.approx(0.0)
    assert v["p_better"] == pytest.approx((0 + 3 + 1.5) / 9)


@pytest.mark.slow
def test_benchmark_runs_with_a_tiny_budget(cifar_dir):
    d = cifar_dir
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", ACCELNAS_DATA_DIR=str(d))
    p = subprocess.run([sys.executable, str(SCRIPT), "--fast", "--json", "--trials", "4", "--seeds", "1",
                        "--controllers", "evolution", "random"],
                       capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    s = r["settings"]
    assert s["trials"] == 4 and s["seeds"] == [0] and s["controllers"] == ["evolution", "random"]
    assert s["target_accelerator"] == "coral" and s["latency_method"] == "apm"
    assert s["hv_reference"] == {"accuracy": 0.0, "latency_ms_coral": 2 * s["target_latency_ms"]["coral"]}
    for name in ("evolution", "random"):
        res = r["results"][name]
        run = res["runs"][0]
        assert run["completed"] == 4 and run["failed"] == 0
        assert 0.1 <= run["best_accuracy"] <= 1.0
        assert run["best_latency_ms"] <= s["latency_cap"] * s["target_latency_ms"]["coral"]
        assert res["hypervolume"]["mean"] > 0
        curve = [res["best_so_far"][str(k)]["mean"] for k in s["checkpoints"]]
        assert curve == sorted(curve) and curve[-1] == pytest.approx(res["best_reward"]["mean"])
    assert "vs_random" in r["results"]["evolution"]
    # evolution's first `population` (3) proposals are random's: scored once, then taken from the cache
    assert r["cache"]["cache_hits"] >= 3
    assert r["cache"]["unique_architectures"] + r["cache"]["cache_hits"] == 8


@pytest.mark.slow
def test_estimator_benchmark_runs_the_same_search_with_each_estimator(cifar_dir):
    d = cifar_dir
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", ACCELNAS_DATA_DIR=str(d))
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "estimator_bench.py"), "--fast", "--json"],
                       capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert sorted(x["method"] for x in r["runs"]) == ["apm", "sim"]
    assert all(x["completed"] == 6 and x["search_s"] <= x["wall_s"] for x in r["runs"])
    pair = r["pairs"][0]
    assert 0 <= pair["top10_overlap"] <= pair["top10"] <= 6
    # the APM is fitted to the simulator, not equal to it: close in rank, never identical
    assert r["archs_scored"] >= 6 and 0 < r["apm_vs_sim_median_abs_error"] < 0.5
    cost = r["per_estimate_s"]
    assert cost["apm_warm_s"] < cost["sim_s"]
