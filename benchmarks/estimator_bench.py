"""The paper's second question: how the latency estimator changes a search's cost and outcome.

    python benchmarks/estimator_bench.py [--json] [--trials N] [--seeds K] [--controller C]
        [--params FILE] [--cache FILE] [--fast]

The real search (`accelnas.search.tuner.run_search`, keras-tuner, the params file's space,
accelerators, targets and reward) runs twice per seed with the same controller, seed and trial
budget: once with the APM in the loop (``latency.method: apm``) and once with the simulator
(``sim``). Only the latency estimator differs; the accuracy objective is the deterministic NASWOT
score of ``benchmarks/search_bench.py`` (real CIFAR-10 images, cached per architecture, so both
searches see the same score for the same architecture).

Printed per seed and as means: each search's wall time outside the objective (controller,
keras-tuner and the latency estimates: the objective is shared and cached, so its time says
nothing about the estimator), the best
reward and Pareto hypervolume (accuracy x target latency, search_bench's fixed reference), the overlap
of the two searches' top 10 by reward and of their Pareto fronts (architecture strings), and, on
the union of the architectures both searches scored, the Kendall tau between APM and simulator
latencies on the target. Per-estimate cost (APM cold and warm, simulator incl. the op graph) on
those architectures: `accelnas.latency.fidelity.estimator_speed`, in this process.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from accelnas import params as P  # noqa: E402
from accelnas.report.pareto import pareto_mask  # noqa: E402
from search_bench import (HV_REF_FACTOR, Cached, NaswotObjective, load_data,  # noqa: E402
                          run_metrics)

METHODS = ("apm", "sim")


def top_archs(df, n: int) -> set[str]:
    done = df[df.status == "completed"].sort_values("reward", ascending=False)
    return set(done.arch.head(n))


def front_archs(df, target: str) -> set[str]:
    done = df[df.status == "completed"]
    pts = done[["accuracy", f"latency_ms_{target}"]].to_numpy(dtype=float)
    if not len(pts):
        return set()
    return set(done.arch[pareto_mask(pts, maximize=(True, False))])


class Timed:
    """An objective that adds up the seconds spent in it (the rest of a search's wall time is the
    controller, keras-tuner and the latency estimates)."""

    def __init__(self, fn) -> None:
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kw):
        t = time.perf_counter()
        try:
            return self.fn(*args, **kw)
        finally:
            self.seconds += time.perf_counter() - t


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--trials", type=int, default=None, help="trials per search (default 40; fast 6)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..K-1 (default 3; fast 1)")
    ap.add_argument("--controller", default="evolution", choices=("evolution", "policy_gradient", "random"))
    ap.add_argument("--params", default=str(ROOT / "params" / "default.yaml"))
    ap.add_argument("--cache", default=None, metavar="FILE", help="keep NASWOT scores in this JSON file")
    ap.add_argument("--fast", action="store_true", help="smoke preset for tests")
    a = ap.parse_args(argv)
    trials = a.trials or (6 if a.fast else 40)
    seeds = list(range(a.seeds or (1 if a.fast else 3)))
    out = sys.stderr if a.json else sys.stdout

    def say(*line):
        print(*line, file=out, flush=True)

    from scipy.stats import kendalltau

    from accelnas.latency import estimate
    from accelnas.latency.accelerator import load_accelerators
    from accelnas.latency.fidelity import estimator_speed
    from accelnas.space.arch import decode_arch
    from accelnas.search.tuner import run_search

    over = {"search.trials": trials} | ({"search.population": 3, "search.sample_size": 2} if a.fast else {})
    base = P.override(P.load(a.params), over)
    target = base["target_accelerator"]
    t_target = float(base["search"]["target_latency_ms"][target])
    reference = (0.0, HV_REF_FACTOR * t_target)
    data = load_data("naswot", a.fast)
    fn = NaswotObjective(data)
    cached = Cached(fn)
    if a.cache:
        cached.load(Path(a.cache), fn.settings())
    objective = Timed(cached)
    say(f"estimator_bench: {a.controller}, {len(seeds)} seed(s) x {trials} trials, apm vs sim in the loop, "
        f"NASWOT objective, reward on {target} (T = {t_target:g} ms)")
    runs, pairs, archs = [], [], set()
    for seed in seeds:
        frames = {}
        for method in (METHODS if seed % 2 == 0 else METHODS[::-1]):  # alternate who runs first
            p = P.override(base, {"latency.method": method})
            t, spent = time.perf_counter(), objective.seconds
            with tempfile.TemporaryDirectory(prefix="estimator_bench_") as d, \
                    contextlib.redirect_stdout(io.StringIO()):
                df = run_search(p, d, controller=a.controller, seed=seed, trials=trials, data=data,
                                train_fn=objective, progress=False, log=None)
            m = run_metrics(df, target=target, reference=reference, checkpoints=[trials])
            wall = time.perf_counter() - t
            m.update(method=method, seed=seed, wall_s=round(wall, 2),
                     search_s=round(wall - (objective.seconds - spent), 2))
            m.pop("best_so_far")
            runs.append(m)
            frames[method] = df
            archs |= set(df.arch[df.status == "completed"])
            say(f"  seed {seed} {method}: best reward {m['best_reward']:.4f}  hv {m['hypervolume']:.3f}  "
                f"{m['wall_s']:.0f} s ({m['search_s']:.1f} s outside the objective)")
        ta, ts = top_archs(frames["apm"], 10), top_archs(frames["sim"], 10)
        fa, fs = front_archs(frames["apm"], target), front_archs(frames["sim"], target)
        pairs.append({"seed": seed, "top10_overlap": len(ta & ts), "top10": min(len(ta), len(ts)),
                      "front_overlap": len(fa & fs), "front_sizes": [len(fa), len(fs)],
                      "same_best": top_archs(frames["apm"], 1) == top_archs(frames["sim"], 1)})
    if a.cache:
        cached.save(Path(a.cache), fn.settings())
    acc = load_accelerators([target])[0]
    decoded = [decode_arch(s) for s in sorted(archs)]
    lat = {m: np.array([estimate(x, acc, m).latency_ms for x in decoded]) for m in METHODS}
    ok = np.isfinite(lat["apm"]) & np.isfinite(lat["sim"])
    speed = estimator_speed(decoded, acc)  # the same timing as notebook 02 and latency_bench
    cost = {"apm_cold_s": 1 / speed["apm_archs_per_s"], "apm_warm_s": 1 / speed["apm_archs_per_s_warm"],
            "sim_s": 1 / speed["sim_nets_per_s"]}
    report = {
        "benchmark": "estimator_bench", "controller": a.controller, "trials": trials, "seeds": seeds,
        "target": target, "runs": runs, "pairs": pairs,
        "archs_scored": len(decoded),
        "apm_vs_sim_kendall": float(kendalltau(lat["apm"][ok], lat["sim"][ok]).statistic),
        "apm_vs_sim_median_abs_error": float(np.median(np.abs(lat["apm"][ok] / lat["sim"][ok] - 1))),
        "per_estimate_s": cost,
    }
    say("\nmethod  seeds  search s outside the objective (mean)  best reward   hypervolume")
    for m in METHODS:
        rs = [r for r in runs if r["method"] == m]
        say(f"{m:<7} {len(rs):>5}  {np.mean([r['search_s'] for r in rs]):37.2f}  "
            f"{np.mean([r['best_reward'] for r in rs]):11.4f}  {np.mean([r['hypervolume'] for r in rs]):12.3f}")
    for pr in pairs:
        say(f"seed {pr['seed']}: top-10 overlap {pr['top10_overlap']}/{pr['top10']}, Pareto fronts share "
            f"{pr['front_overlap']} (sizes {pr['front_sizes'][0]} / {pr['front_sizes'][1]}), same best: {pr['same_best']}")
    say(f"APM vs simulator on the {len(decoded)} scored architectures ({target}): Kendall "
        f"{report['apm_vs_sim_kendall']:.3f}, median |error| {report['apm_vs_sim_median_abs_error']:.1%}")
    say("per estimate: " + ", ".join(f"{k[:-2]} {v * 1e6:.0f} us" for k, v in cost.items()))
    if a.json:
        print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
