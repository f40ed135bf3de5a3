"""How far the stage-1 ranking can be trusted: stage-1 scores against stage-2 accuracy.

A search ranks candidates by a cheap stage-1 score (a supernet subnet's accuracy, or a short
stand-alone proxy training); stage 2 trains the finalists longer. Whether the stage-1 ranking means
anything is measured here on *correlation candidates*: architectures of the search space spread
over the target's latency range (`correlation_candidates`), each scored by stage 1 and trained at
stage 2 with several seeds. `kendall_ci` gives Kendall's tau between the two rankings with a
bootstrap interval over the candidates; `fidelity_summary` puts it next to the ranking latency alone
would give (faster = better), the stage-2 seed spread, and `reference_ceiling`: how far stage 2
itself, a mean over a few noisy seeds, can agree with any ranking (even the true one).

Used by notebook 03 (``stage2.fidelity_candidates``) and ``benchmarks/proxy_bench.py`` (which also
scores the zero-cost NASWOT proxy).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from accelnas.space import zoo
from accelnas.space.arch import ArchSpec


MIN_CANDIDATES = 6  # below this, a bootstrap interval of Kendall's tau says nothing


def correlation_candidates(space, screen, target: str, n: int, seed: int = 0,
                           skeleton: str | None = "efficientnet_edgetpu_s") -> list[ArchSpec]:
    """``n`` architectures of ``space`` that pass ``screen``, spread over the latency range on
    ``target`` (a seeded sample of ``20 n`` screened architectures sorted by latency, taken at
    evenly spaced quantiles), named ``cand0`` ...; plus the zoo ``skeleton``'s nearest member of
    the space (``<skeleton>_nearest``) when the space can express it."""
    rng = np.random.default_rng([seed, 5])
    pool = []
    for _ in range(60 * n):
        values = space.sample_values(rng)
        if screen(values) is None:
            pool.append(space.from_values(values))
        if len(pool) >= 20 * n:
            break
    if not pool:
        raise ValueError("no architecture of the space passes the search's screen; widen the space "
                         "or raise search.latency_cap")
    lat = np.array([screen.latencies(a)[target] for a in pool])
    order = np.argsort(lat, kind="stable")
    picks = [pool[order[int(round(q * (len(pool) - 1)))]] for q in np.linspace(0, 1, n)]
    out = [a.replace(name=f"cand{i}") for i, a in enumerate(picks)]
    found = space.nearest(zoo.get(skeleton)) if skeleton else None
    if found is not None:
        out.append(space.from_values(found[0], name=f"{skeleton}_nearest"))
    return out


def kendall_ci(a: Sequence[float], b: Sequence[float], *, seed: int = 0, n_boot: int = 2000) -> dict:
    """Kendall's tau between ``a`` and ``b`` with a 95 % percentile-bootstrap interval over the
    pairs (resamples with fewer than 3 distinct pairs, or a tie-only side, are skipped)."""
    from scipy.stats import kendalltau

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) != len(b) or len(a) < 3:
        raise ValueError(f"Kendall's tau needs two sequences of the same length >= 3, got {len(a)} and {len(b)}")
    tau = float(kendalltau(a, b).statistic)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        if len(set(idx)) < 3:
            continue
        t = kendalltau(a[idx], b[idx]).statistic
        if np.isfinite(t):
            boots.append(t)
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    return {"tau": tau, "ci_low": float(lo), "ci_high": float(hi), "n": int(len(a))}


def reference_ceiling(seed_values: Sequence[Sequence[float]]) -> dict | None:
    """How far a ranking can agree with a reference that is the mean of a few noisy seeds.

    Each candidate's stage-2 accuracy is taken as its true accuracy plus seed noise, Gaussian
    with one variance for all candidates (estimated by the mean within-candidate sample variance
    ``s_w^2``). The reference (the mean of ``k`` seeds) then has variance ``v_true + s_w^2 / k``
    over the candidates, and a perfect stage-1 score (the true accuracies) correlates with it at
    ``r = sqrt(v_true / (v_true + s_w^2 / k))``; for Gaussian pairs Kendall's tau is
    ``2 / pi * arcsin(r)`` (Greiner's relation). Returns ``ceiling`` (that tau),
    ``seed_vs_seed_model`` (the tau the same model predicts between two single seeds) and
    ``seed_vs_seed`` (measured: Kendall's tau between the first two seeds' accuracies, the check
    of the model), ``reliability`` (``r^2``), ``seed_sd`` and ``k``; None with fewer than 3
    candidates of >= 2 seeds."""
    from scipy.stats import kendalltau

    rows = [np.asarray(v, float) for v in seed_values
            if isinstance(v, (list, tuple, np.ndarray)) and len(v) > 1]
    if len(rows) < 3:
        return None
    k = len(rows) / sum(1.0 / len(v) for v in rows)  # harmonic mean of the seed counts
    s_w2 = float(np.mean([v.var(ddof=1) for v in rows]))
    v_ref = float(np.var([v.mean() for v in rows], ddof=1))
    v_true = max(v_ref - s_w2 / k, 0.0)
    rel = v_true / (v_true + s_w2 / k) if v_true > 0 else 0.0
    pair = kendalltau([v[0] for v in rows], [v[1] for v in rows]).statistic
    return {"ceiling": float(2 / np.pi * np.arcsin(np.sqrt(rel))),
            "seed_vs_seed_model": float(2 / np.pi * np.arcsin(v_true / (v_true + s_w2))) if v_true > 0 else 0.0,
            "seed_vs_seed": float(pair) if np.isfinite(pair) else float("nan"),
            "reliability": float(rel), "seed_sd": float(np.sqrt(s_w2)), "k": float(k)}


def fidelity_summary(frame: pd.DataFrame, scores: Sequence[str], reference: str = "stage2",
                     latency: str | None = "latency_ms", seed_values: str | None = "stage2_seeds") -> dict:
    """Kendall's tau (with interval) of each stage-1 ``scores`` column against ``reference`` over
    the rows of ``frame`` (rows missing either are left out), and of ``-latency`` (the ranking the
    latency alone gives); ``seed_spread``: the mean over candidates of the largest minus smallest
    stage-2 accuracy of its seeds (``seed_values``: a list per row), the reference's own noise;
    ``ceiling``: `reference_ceiling` of those seeds (None without them)."""
    out: dict = {"kendall": {}}
    for col in [*scores, *([latency] if latency else [])]:
        ok = frame[[col, reference]].dropna()
        if len(ok) < 3:
            continue
        sign = -1.0 if col == latency else 1.0
        out["kendall"]["latency only" if col == latency else col] = kendall_ci(sign * ok[col], ok[reference])
    if seed_values and seed_values in frame:
        spans = [max(v) - min(v) for v in frame[seed_values] if isinstance(v, (list, tuple, np.ndarray)) and len(v) > 1]
        out["seed_spread"] = float(np.mean(spans)) if spans else None
        out["ceiling"] = reference_ceiling(list(frame[seed_values]))
    return out


def measure(params: Mapping, space, screen, run_dir, *, n: int, seeds: Sequence[int],
            seed: int = 0, supernet_file=None, log=print) -> pd.DataFrame:
    """Score ``n`` correlation candidates (`correlation_candidates` on the params' target) with
    the search's stage-1 evaluator and train them at stage 2 with every seed; one row per
    candidate: name, arch, latency_ms, stage1, stage2 (mean over seeds), stage2_seeds, stage2_std.

    Stage 1 as in the search: ``supernet``: the subnet's accuracy on the supernet saved at
    ``supernet_file`` (trained with the params if it is not there); ``standalone``: a proxy
    training under the ``proxy`` budget with the first seed. Stand-alone trainings go through
    `accelnas.train.cache.train_models` (cached in ``run_dir``: a second run reuses them)."""
    from accelnas.train import cache as trainings
    from accelnas.train.load import load_proxy

    target = params["target_accelerator"]
    cands = correlation_candidates(space, screen, target, n, seed)
    res = params["search_space"]["resolution"]
    data1 = load_proxy(params, seed=seed)
    frame = pd.DataFrame({"name": [a.name for a in cands], "arch": [a.encode() for a in cands],
                          "latency_ms": [screen.latencies(a)[target] for a in cands]})
    if params["search"]["evaluator"] == "supernet":
        from accelnas.search.supernet import supernet_evaluator, trained_supernet

        score = supernet_evaluator(trained_supernet(space, params, data1, supernet_file, log=log), params)
        frame["stage1"] = [score(a, data1, 0)["accuracy"] for a in cands]
    else:
        t1 = trainings.train_models([(a.name, "correlation", a) for a in cands], data1, params["proxy"],
                                    list(seeds)[:1], run_dir=run_dir, dataset=params["dataset"],
                                    base_resolution=res, log=log)
        frame["stage1"] = frame.name.map(t1.set_index("name").accuracy)
    data2 = lambda: load_proxy(params, seed=seed, subset=params["stage2"]["subset"])  # noqa: E731
    t2 = trainings.train_models([(a.name, "correlation", a) for a in cands], data2,
                                trainings.stage2_budget(params), seeds, run_dir=run_dir,
                                dataset=params["dataset"], base_resolution=res, log=log)
    ok = t2[t2.status == "completed"]
    per = ok.groupby("name").accuracy
    frame["stage2"] = frame.name.map(per.mean())
    frame["stage2_std"] = frame.name.map(per.std())
    frame["stage2_seeds"] = frame.name.map(per.apply(list))
    return frame


def trust_line(summary: Mapping, score: str, target_tau: float = 0.6) -> str:
    """One sentence: how far the ``score`` ranking can be trusted, from `fidelity_summary`."""
    k = summary["kendall"].get(score)
    if k is None:
        return f"no {score} scores to compare with stage 2"
    lat = summary["kendall"].get("latency only")
    name = "stage 1" if score == "stage1" else f"stage-1 {score}"
    if k["n"] < MIN_CANDIDATES:
        line = (f"{name} vs stage 2: Kendall tau {k['tau']:+.2f} on {k['n']} candidates: too few to judge "
                f"(no interval below {MIN_CANDIDATES})")
    else:
        verdict = ("trustworthy as a ranking" if k["ci_low"] >= target_tau else
                   "better than chance but not reliable" if k["ci_low"] > 0 else
                   "not distinguishable from chance")
        line = (f"{name} vs stage 2: Kendall tau {k['tau']:+.2f} (95 % CI {k['ci_low']:+.2f} to "
                f"{k['ci_high']:+.2f}, {k['n']} candidates): {verdict}")
    if lat is not None:
        line += f"; latency alone ranks them at {lat['tau']:+.2f}"
    if summary.get("seed_spread") is not None:
        line += f"; stage-2 seeds differ by {summary['seed_spread']:.3f} on average"
    ceiling = summary.get("ceiling")
    if ceiling is not None:
        line += (f"; with that noise even the true ranking would reach only about {ceiling['ceiling']:+.2f} "
                 f"against this stage 2 (two single seeds agree at {ceiling['seed_vs_seed']:+.2f})")
    return line


__all__ = ["correlation_candidates", "kendall_ci", "fidelity_summary", "measure",
           "reference_ceiling", "trust_line"]
