"""How the latency models generalize to published Edge TPU latencies they were not fitted to.

    python benchmarks/generalization_bench.py [--json]

Rows: ``lib/accelnas/resources/calibration.csv`` (the simulator's shared constants are fitted to
these: in-sample) and ``lib/accelnas/resources/heldout.csv`` (further published measurements no
constant is fitted to: held-out), each with its source. Every row is predicted by

* ``sim``: the cycle-level simulator (`accelnas.latency.estimate(..., "sim")`);
* ``apm``: the calibrated analytical model the search uses (`estimate(..., "apm")`);
* ``roofline``: the three-constant baseline ``a * GMACs + b * max(0, weight MB - 8 MB) + c`` fitted
  (non-negative least squares on relative error) to the coral rows of calibration.csv; it has
  nothing to say about pixel4.

Per accelerator, method and split: median and max absolute relative error, MAPE and Spearman rank
correlation (`scipy.stats.spearmanr`; the held-out pixel4 rows are few, so the ranking is also given
over all published rows of an accelerator). Errors are ``predicted / published - 1``.

Physical consistency: a row whose published latency is below the time its host link needs to move
the parameters that cannot be on chip at all (weight bytes beyond all on-chip SRAM, at the YAML's
``calibration.link_floor_gbps``: Coral's USB 3.0 payload rate, 0.5 GB/s) cannot be reproduced by
any model of this hardware; such rows are kept, flagged (``below_link_bound``), and the held-out summary is also given
without them (``heldout_consistent``).

Cross-validated, per data set (``--folds K``, default 5; 0 skips it): the published calibration rows
and LatBench's 1,528 measured NAS-Bench-201 networks (`accelnas.latency.calibrate.latbench_rows`, on
the Edge TPU behind LatBench's own host path, ``coral@latbench``), each row predicted with the
constants fitted (`accelnas.latency.calibrate.fit_constants`: chip constants once for the family, host
constants per host path) without its fold, by the simulator and by an APM fitted to that simulator;
next to them the ranking by MACs alone and the 3-constant roofline fitted per device on the other
folds (leave-one-out in a set of fewer than 20 rows; none for a device with fewer than 4 other rows:
pixel4's published rows). Printed:
median and max absolute error, Spearman and Kendall per data set and method. Fitting a fold takes
~40 s (``--max-rows`` rows of a large set per fit, seeded).

Builds the keras: models once (TensorFlow import and builds: ~30 s); ``--json`` prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from accelnas.latency import estimate  # noqa: E402
from accelnas.latency import fidelity as R  # noqa: E402
from accelnas.latency.calibrate import (CALIBRATION_CSV, HELDOUT_CSV, calibration_rows,  # noqa: E402
                                        cross_validate, heldout_rows, measurement_sets, row_graph)

METHODS = ("sim", "apm", "roofline")


def predictions() -> pd.DataFrame:
    """One row per published measurement: published and predicted latencies, errors, flags."""
    rows = [dict(r, split="calibration") for r in calibration_rows()]
    rows += [dict(r, split="heldout") for r in heldout_rows()]
    out = []
    for r in rows:
        g = row_graph(r["builder"], r["resolution"])
        rec = {k: r[k] for k in ("model", "builder", "resolution", "hardware", "split", "latency_ms", "source")}
        rec.update(macs=g.macs, weight_bytes=g.weight_bytes)
        for method in ("sim", "apm"):
            rec[f"{method}_ms"] = estimate(g, r["hardware"], method).latency_ms
        bound = float(R.link_bound_ms([g.weight_bytes], [r["hardware"]])[0])
        rec["link_bound_ms"] = bound if bound > 0 else float("nan")
        rec["below_link_bound"] = bool(r["latency_ms"] < bound)
        out.append(rec)
    df = pd.DataFrame(out)
    coral_cal = df[(df.hardware == "coral") & (df.split == "calibration")]
    base = R.roofline_baseline(coral_cal)
    df["roofline_ms"] = np.where(df.hardware == "coral", R.roofline_predict(df.macs, df.weight_bytes, base), np.nan)
    for m in METHODS:
        df[f"{m}_error"] = df[f"{m}_ms"] / df.latency_ms - 1
    df.attrs["roofline"] = {k: base[k] for k in ("a_ms_per_gmac", "b_ms_per_mb_streamed", "c_ms", "onchip_bytes", "n")}
    return df


def stats(frame: pd.DataFrame, method: str) -> dict | None:
    from scipy.stats import spearmanr

    ok = frame[np.isfinite(frame[f"{method}_ms"])]
    if not len(ok):
        return None
    err = ok[f"{method}_error"].abs()
    rho = None
    if len(ok) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = float(spearmanr(ok[f"{method}_ms"], ok.latency_ms).statistic)
    worst = ok.loc[err.idxmax()]
    return {"n": int(len(ok)), "median_abs_error": float(err.median()), "max_abs_error": float(err.max()),
            "mape": float(err.mean()), "spearman": rho, "worst": f"{worst.model} ({worst[f'{method}_error']:+.1%})"}


def summary(df: pd.DataFrame) -> dict:
    splits = {"calibration": df.split == "calibration", "heldout": df.split == "heldout",
              "heldout_consistent": (df.split == "heldout") & ~df.below_link_bound,
              "all": df.split.notna()}
    out = {}
    for hw in sorted(df.hardware.unique()):
        for split, mask in splits.items():
            for m in METHODS:
                s = stats(df[mask & (df.hardware == hw)], m)
                if s:
                    out[f"{hw}/{split}/{m}"] = s
    return out


#: Below this many rows the roofline (three constants per device) is judged leave-one-out.
SMALL_SET = 20


def rank_stats(pred, target) -> dict:
    from scipy.stats import kendalltau, spearmanr

    pred, target = np.asarray(pred, float), np.asarray(target, float)
    ok = np.isfinite(pred)  # rows a method has no prediction for (the roofline: too few rows of a device)
    pred, target = pred[ok], target[ok]
    if len(target) < 3:
        return {"n": int(len(target)), "median_abs_error": float("nan"), "max_abs_error": float("nan"),
                "spearman": float("nan"), "kendall": float("nan")}
    err = np.abs(pred / target - 1)
    return {"n": int(len(target)), "median_abs_error": float(np.median(err)), "max_abs_error": float(err.max()),
            "spearman": float(spearmanr(pred, target).statistic),
            "kendall": float(kendalltau(pred, target).statistic)}


def cross_validated(k: int, max_rows: int, seed: int = 0) -> dict:
    """{set: {method: rank_stats}} with k-fold cross-validated sim / APM / roofline predictions and the
    MACs-only ranking (its errors are not latencies: only its rank statistics are given)."""
    sets = measurement_sets()
    cv = cross_validate(sets, k=k, seed=seed, max_rows=max_rows)
    out = {}
    for name, rows in sets.items():
        y = np.array([r["latency_ms"] for r in rows])
        graphs = [row_graph(r["builder"], r["resolution"]) for r in rows]
        frame = pd.DataFrame({"macs": [g.macs for g in graphs], "weight_bytes": [g.weight_bytes for g in graphs],
                              "latency_ms": y, "hardware": [r["hardware"] for r in rows]})
        roof = np.full(len(rows), np.nan)
        idx = np.random.default_rng([seed, len(rows)]).permutation(len(rows))
        kk = min(k, len(rows)) if len(rows) >= SMALL_SET else len(rows)  # a small set: leave one out
        for f in range(kk):
            held = np.sort(idx[f::kk])
            train = frame.drop(index=held)
            for hw in np.unique(frame.hardware.values[held]):  # one roofline per device, from its other rows
                fit_rows = train[train.hardware == hw]
                if len(fit_rows) < 4:  # three constants need more rows than that
                    continue
                base = R.roofline_baseline(fit_rows)
                mine = held[frame.hardware.values[held] == hw]
                roof[mine] = R.roofline_predict(frame.macs.values[mine], frame.weight_bytes.values[mine], base)
        res = {m: rank_stats(cv[name][m], y) for m in ("sim", "apm")}
        res["roofline"] = rank_stats(roof, y)
        macs = rank_stats(frame.macs.values.astype(float), y)
        res["macs_only"] = {"n": macs["n"], "spearman": macs["spearman"], "kendall": macs["kendall"]}
        out[name] = res
    return out


def run(folds: int = 5, max_rows: int = 300) -> dict:
    t0 = time.perf_counter()
    df = predictions()
    rows = []
    for r in df.itertuples():
        rows.append({"model": r.model, "builder": r.builder, "resolution": int(r.resolution),
                     "hardware": r.hardware, "split": r.split, "latency_ms": r.latency_ms, "source": r.source,
                     "macs": int(r.macs), "weight_bytes": int(r.weight_bytes),
                     **{f"{m}_ms": (None if not np.isfinite(getattr(r, f"{m}_ms")) else round(float(getattr(r, f"{m}_ms")), 4))
                        for m in METHODS},
                     **{f"{m}_error": (None if not np.isfinite(getattr(r, f"{m}_error")) else round(float(getattr(r, f"{m}_error")), 4))
                        for m in METHODS},
                     "link_bound_ms": None if not np.isfinite(r.link_bound_ms) else round(float(r.link_bound_ms), 2),
                     "below_link_bound": bool(r.below_link_bound)})
    cv = cross_validated(folds, max_rows) if folds else {}
    return {"calibration_csv": str(CALIBRATION_CSV), "heldout_csv": str(HELDOUT_CSV),
            "roofline_baseline": df.attrs["roofline"], "summary": summary(df), "rows": rows,
            "cross_validated": cv, "folds": folds, "wall_s": time.perf_counter() - t0}


def _pct(x) -> str:
    return "     -" if x is None else f"{x:+6.1%}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--folds", type=int, default=5, help="k of the cross-validation per data set (0: skip)")
    ap.add_argument("--max-rows", type=int, default=300, help="rows of a large data set per fit (seeded sample)")
    args = ap.parse_args(argv)
    out = run(args.folds, args.max_rows)
    if args.json:
        print(json.dumps(out))
        return 0
    print("published Edge TPU latencies vs the latency models (error = predicted / published - 1)")
    print(f"{'model':<24}{'hw':<7}{'res':>4} {'split':<12}{'published':>10}{'sim':>9}{'err':>8}{'apm':>9}"
          f"{'err':>8}{'roofline':>10}{'err':>8}")
    for r in out["rows"]:
        flag = "  (below the USB link bound)" if r["below_link_bound"] else ""
        roof = "         -" if r["roofline_ms"] is None else f"{r['roofline_ms']:10.2f}"
        print(f"{r['model']:<24}{r['hardware']:<7}{r['resolution']:>4} {r['split']:<12}{r['latency_ms']:10.1f}"
              f"{r['sim_ms']:9.2f}{_pct(r['sim_error']):>8}{r['apm_ms']:9.2f}{_pct(r['apm_error']):>8}"
              f"{roof}{_pct(r['roofline_error']):>8}{flag}")
    print(f"\n{'accelerator/split/method':<36}{'n':>3}{'median|err|':>12}{'max|err|':>10}{'MAPE':>8}{'Spearman':>10}  worst")
    for k, s in out["summary"].items():
        rho = "       -" if s["spearman"] is None else f"{s['spearman']:8.3f}"
        print(f"{k:<36}{s['n']:>3}{s['median_abs_error']:12.1%}{s['max_abs_error']:10.1%}{s['mape']:8.1%}  {rho}  {s['worst']}")
    b = out["roofline_baseline"]
    print(f"\nroofline baseline (coral calibration rows, n={b['n']}): {b['a_ms_per_gmac']:.3f} ms/GMAC, "
          f"{b['b_ms_per_mb_streamed']:.3f} ms per MB beyond {b['onchip_bytes'] / 1e6:.0f} MB, {b['c_ms']:.3f} ms")
    if out["cross_validated"]:
        print(f"\n{out['folds']}-fold cross-validated, per data set (constants fitted without the fold)")
        print(f"{'set':<11}{'method':<10}{'n':>5}{'median|err|':>12}{'max|err|':>10}{'Spearman':>10}{'Kendall':>9}")
        for name, res in out["cross_validated"].items():
            for m, st in res.items():
                med = f"{st['median_abs_error']:12.1%}{st['max_abs_error']:10.1%}" if "median_abs_error" in st else f"{'-':>12}{'-':>10}"
                print(f"{name:<11}{m:<10}{st['n']:>5}{med}{st['spearman']:10.3f}{st['kendall']:9.3f}")
    print(f"({out['wall_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
