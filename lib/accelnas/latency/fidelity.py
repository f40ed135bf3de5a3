"""Tables and plots about the latency models, for notebook 02 and ``benchmarks/latency_bench.py``.

Pure: numpy, pandas, scipy and matplotlib (imported by the plot functions only); no TensorFlow
(`calibration_frame` builds the keras: rows of the calibration table, which does import it).

* fidelity: `error_stats` (MAPE, share within +-10 %, Kendall tau, Spearman rho), `rank_comparison`;
* calibration: `calibration_frame` (published vs sim/APM per row, with MACs and weight bytes; also
  for the held-out rows), `with_fitted_apm` (the same rows predicted by fitted APMs),
  `roofline_baseline` / `roofline_predict` (the 3-constant MACs + streamed-bytes fit the simulator
  is compared to) and `link_bound_ms` (the host-link streaming floor of a latency, from each
  accelerator YAML's ``calibration.link_floor_gbps``);
* APM vs simulator: `sample_archs`, `apm_vs_sim` (the calibrated APM, and APM coefficients fitted
  on one half of the architectures, evaluated on the other), `apm_model_dict` (what
  ``latency_models/apm_<acc>.json`` holds);
* speed: `throughput` (items per second, one process), `estimator_speed` (APM cold / warm, sim);
* one model: `roofline_frame` (per op: arithmetic intensity vs achieved MAC/s) and `roofs`.

Errors are relative: ``error = predicted / target - 1``.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from accelnas.space.arch import ArchSpec
from accelnas.space.graph import OpGraph, from_arch
from accelnas.latency.accelerator import Accelerator
from accelnas.latency import apm_for, as_accelerator, estimate, machine
from accelnas.latency.calibrate import calibration_rows, row_graph
from accelnas.latency.apm import APM, COEF_NAMES  # noqa: F401  (COEF_NAMES re-exported)
from accelnas.latency.sim import simulate


#: On-chip memory the roofline baseline assumes ("~8 MB" of SRAM on the Edge TPU), bytes.
ROOFLINE_ONCHIP_BYTES = 8_000_000


#: Bound -> colour of the per-op plots.
BOUND_COLORS = {"compute": "tab:blue", "memory": "tab:orange", "streaming": "tab:red",
                "overhead": "tab:gray", "cpu-fallback": "tab:purple"}

#: Op category -> colour / marker of the roofline plot.
CATEGORY_STYLE = {"depthwise": ("tab:red", "v"), "kxk conv (fused/regular)": ("tab:blue", "o"),
                  "1x1 conv": ("tab:green", "s"), "fc": ("tab:gray", "D")}


# ---------------------------------------------------------------------------------------------
# fidelity

def error_stats(predicted, target) -> dict:
    """Fidelity of predictions against targets (pairs where either is not finite are dropped).

    Returns:
        ``n``, ``mape`` (mean |error|), ``median_abs_error``, ``max_abs_error``, ``rmspe``,
        ``within10`` (share of |error| <= 0.10), ``kendall_tau`` and ``spearman_rho`` (None for
        fewer than 3 pairs); errors as fractions (0.05 = 5 %).
    """
    from scipy.stats import kendalltau, spearmanr

    p = np.asarray(predicted, dtype=float)
    t = np.asarray(target, dtype=float)
    ok = np.isfinite(p) & np.isfinite(t)
    p, t = p[ok], t[ok]
    if not len(t):
        raise ValueError("error_stats: no finite (predicted, target) pairs")
    err = p / t - 1
    a = np.abs(err)
    rank = len(t) >= 3
    return {"n": int(len(t)), "mape": float(a.mean()), "median_abs_error": float(np.median(a)),
            "max_abs_error": float(a.max()), "rmspe": float(np.sqrt(np.mean(err ** 2))),
            "within10": float(np.mean(a <= 0.10)),
            "kendall_tau": float(kendalltau(p, t).statistic) if rank else None,
            "spearman_rho": float(spearmanr(p, t).statistic) if rank else None}


def rank_comparison(a, b, top: int = 10) -> dict:
    """How two latency columns over the same architectures rank them.

    Returns:
        ``kendall_tau``, ``spearman_rho`` and ``top_overlap``: how many of the ``top`` fastest
        under ``a`` are also among the ``top`` fastest under ``b`` (``top`` = same set).
    """
    from scipy.stats import kendalltau, spearmanr

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"rank_comparison: {a.shape} vs {b.shape} latencies")
    top = min(top, len(a))
    fast_a = set(np.argsort(a, kind="stable")[:top].tolist())
    fast_b = set(np.argsort(b, kind="stable")[:top].tolist())
    return {"n": int(len(a)), "kendall_tau": float(kendalltau(a, b).statistic),
            "spearman_rho": float(spearmanr(a, b).statistic), "top": top,
            "top_overlap": len(fast_a & fast_b)}


def throughput(fn: Callable, items: Sequence, repeat: int = 1, clock: Callable = time.perf_counter) -> float:
    """Items per second of ``fn`` applied to every item in turn (best of ``repeat`` passes; wall
    clock with `time.perf_counter` by default, `time.process_time` for this process's CPU time,
    which other load on the machine disturbs less)."""
    best = math.inf
    for _ in range(max(1, repeat)):
        t0 = clock()
        for x in items:
            fn(x)
        best = min(best, clock() - t0)
    return len(items) / best if best > 0 else math.inf


def estimator_speed(archs: Sequence[ArchSpec], acc: Accelerator | str) -> dict:
    """Architectures per second of the APM and the simulator on ``acc``, in this process.

    Returns:
        ``apm_archs_per_s`` (a fresh APM with the calibrated coefficients: empty block cache, what
        a new search sees), ``apm_archs_per_s_warm`` (the same architectures again),
        ``sim_nets_per_s`` (simulator including `accelnas.space.graph.from_arch`), all wall clock; the
        same APM figures per second of CPU time (``apm_archs_per_cpu_s``, ``..._warm``); ``n``.
    """
    acc = as_accelerator(acc)
    m = machine(acc)
    apm = APM(m, apm_for(acc).coef)
    cold = throughput(apm.latency_ms, archs)
    warm = throughput(apm.latency_ms, archs)
    fresh = APM(m, apm.coef)
    cold_cpu = throughput(fresh.latency_ms, archs, clock=time.process_time)
    warm_cpu = throughput(fresh.latency_ms, archs, clock=time.process_time)
    sim = throughput(lambda a: simulate(from_arch(a), m), archs)
    return {"n": len(archs), "apm_archs_per_s": cold, "apm_archs_per_s_warm": warm, "sim_nets_per_s": sim,
            "apm_archs_per_cpu_s": cold_cpu, "apm_archs_per_cpu_s_warm": warm_cpu}


# ---------------------------------------------------------------------------------------------
# calibration table

def validation_frame(accelerators=("coral", "pixel4"), rows=None):
    """Published vs predicted (sim and APM) for every row of the given accelerators (default: the
    calibration table)."""
    import pandas as pd

    out = []
    accs = {h: as_accelerator(h) for h in accelerators}
    for r in rows or calibration_rows():
        if r["hardware"] not in accs:
            continue
        g = row_graph(r["builder"], r["resolution"])
        row = {k: r[k] for k in ("model", "builder", "resolution", "hardware", "latency_ms", "source")}
        for method in ("sim", "apm"):
            est = estimate(g, accs[r["hardware"]], method)
            row[f"{method}_ms"] = est.latency_ms
            row[f"{method}_error"] = est.latency_ms / r["latency_ms"] - 1
        out.append(row)
    return pd.DataFrame(out)


def calibration_frame(accelerators: Iterable[str] = ("coral", "pixel4"), rows=None) -> pd.DataFrame:
    """`calibrate.validation_frame` plus each row's MACs, parameters and int8 weight bytes.

    Columns: model, builder, resolution, hardware, latency_ms (published), source, sim_ms,
    sim_error, apm_ms, apm_error, macs, params, weight_bytes.
    """
    from accelnas.latency.calibrate import calibration_rows, row_graph

    rows = rows or calibration_rows()
    df = validation_frame(tuple(accelerators), rows)
    graphs = [row_graph(b, r) for b, r in zip(df.builder, df.resolution)]
    return df.assign(macs=[g.macs for g in graphs], params=[g.params for g in graphs],
                     weight_bytes=[g.weight_bytes for g in graphs])


def with_fitted_apm(frame: pd.DataFrame, apms: dict[str, APM]) -> pd.DataFrame:
    """``frame`` (`calibration_frame` rows) plus ``apm_fit_ms`` / ``apm_fit_error``: each row
    predicted by the fitted APM of its accelerator (NaN where ``apms`` has none)."""
    from accelnas.latency.calibrate import row_graph

    pred = [apms[hw].latency_ms(row_graph(b, r)) if hw in apms else math.nan
            for hw, b, r in zip(frame.hardware, frame.builder, frame.resolution)]
    out = frame.assign(apm_fit_ms=pred)
    return out.assign(apm_fit_error=out.apm_fit_ms / out.latency_ms - 1)


def _roofline_design(macs, weight_bytes, onchip_bytes: float) -> np.ndarray:
    macs = np.asarray(macs, dtype=float)
    excess = np.maximum(0.0, np.asarray(weight_bytes, dtype=float) - onchip_bytes)
    return np.column_stack([macs / 1e9, excess / 1e6, np.ones_like(macs)])


def _nnls_relative(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    return nnls(X / y[:, None], np.ones_like(y))[0]


def roofline_baseline(frame: pd.DataFrame, onchip_bytes: float = ROOFLINE_ONCHIP_BYTES) -> dict:
    """The 3-constant roofline baseline: ``latency_ms = a * GMACs + b * max(0, weight MB - on-chip
    MB) + c``, fitted by non-negative least squares on relative error to the rows of ``frame``
    (columns latency_ms, macs, weight_bytes).

    Returns:
        ``a_ms_per_gmac``, ``b_ms_per_mb_streamed``, ``c_ms``, ``predicted_ms`` (list, in-sample),
        ``mape`` (in-sample), ``loo_mape`` (each row predicted by a fit to the others; None for
        fewer than 4 rows), ``n``, ``onchip_bytes``.
    """
    y = frame["latency_ms"].to_numpy(dtype=float)
    X = _roofline_design(frame["macs"], frame["weight_bytes"], onchip_bytes)
    coef = _nnls_relative(X, y)
    pred = X @ coef
    loo = None
    if len(y) >= 4:
        errs = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            errs.append(abs(X[i] @ _nnls_relative(X[keep], y[keep]) / y[i] - 1))
        loo = float(np.mean(errs))
    return {"a_ms_per_gmac": float(coef[0]), "b_ms_per_mb_streamed": float(coef[1]), "c_ms": float(coef[2]),
            "predicted_ms": [float(v) for v in pred], "mape": float(np.mean(np.abs(pred / y - 1))),
            "loo_mape": loo, "n": int(len(y)), "onchip_bytes": onchip_bytes}


def roofline_predict(macs, weight_bytes, baseline: dict) -> np.ndarray:
    """Latencies (ms) the fitted roofline ``baseline`` (`roofline_baseline`) gives other models."""
    coef = np.array([baseline["a_ms_per_gmac"], baseline["b_ms_per_mb_streamed"], baseline["c_ms"]])
    return _roofline_design(macs, weight_bytes, baseline["onchip_bytes"]) @ coef


def link_bound_ms(weight_bytes, hardware) -> np.ndarray:
    """The least time each row's host link needs per inference to stream the parameters that cannot
    be on chip at all (`accelnas.latency.accelerator.link_floor_ms`: bytes beyond all on-chip SRAM at
    the YAML's ``calibration.link_floor_gbps``; 0 where it gives none), ms. A published latency
    below it cannot be reproduced by a model of that hardware."""
    from accelnas.latency.accelerator import link_floor_ms

    accs: dict = {}
    out = []
    for w, h in zip(np.atleast_1d(weight_bytes), np.atleast_1d(hardware)):
        if h not in accs:
            accs[h] = as_accelerator(h)
        out.append(link_floor_ms(accs[h], float(w)))
    return np.asarray(out, dtype=float)


# ---------------------------------------------------------------------------------------------
# APM vs simulator over sampled architectures

def sample_archs(space, n: int, rng: np.random.Generator, prefix: str = "sample",
                 exclude: Iterable[str] = ()) -> list[ArchSpec]:
    """``n`` architectures sampled from ``space`` with ``rng``, none of whose block strings is in
    ``exclude`` nor repeated (for a fit set disjoint from an evaluation set). At most ``20 * n``
    draws: a space too small for ``n`` distinct architectures raises ValueError."""
    seen = set(exclude)
    out: list[ArchSpec] = []
    for _ in range(20 * n):
        if len(out) == n:
            break
        a = space.sample(rng, name=f"{prefix}{len(out)}")
        key = a.replace(name="x").encode()
        if key not in seen:
            seen.add(key)
            out.append(a)
    if len(out) < n:
        raise ValueError(f"found only {len(out)} distinct architectures in {20 * n} draws; ask for fewer")
    return out


def apm_vs_sim(archs: Sequence[ArchSpec], accelerators: Iterable[Accelerator | str],
               fit_fraction: float = 0.5) -> tuple[pd.DataFrame, dict[str, APM]]:
    """Simulator vs APM on ``archs`` per accelerator.

    ``apm_ms`` is the calibrated APM the search uses (`accelnas.latency.apm_for`: coefficients
    stored in ``resources/apm_coef.json``); a second APM is fitted to the simulator on the first
    ``fit_fraction`` of ``archs`` (split ``fit``) and predicts all (``apm_fit_ms``): judge it on
    split ``eval`` only.

    Returns:
        (one row per architecture and accelerator: arch, hardware, split, macs, params,
        weight_bytes, sim_ms, sim_streamed_bytes, sim_partition_index, apm_ms, apm_fit_ms;
        {accelerator name: fitted APM}).
    """
    if not 0 < fit_fraction < 1:
        raise ValueError(f"fit_fraction must be in (0, 1), got {fit_fraction}")
    n_fit = int(round(len(archs) * fit_fraction))
    if n_fit < 4 or len(archs) - n_fit < 3:
        raise ValueError(f"need >= 4 architectures to fit and >= 3 to evaluate; got {len(archs)}")
    graphs = [from_arch(a) for a in archs]
    split = ["fit"] * n_fit + ["eval"] * (len(archs) - n_fit)
    frames, fitted = [], {}
    for acc in accelerators:
        acc = as_accelerator(acc)
        m = machine(acc)
        sims = [simulate(g, m) for g in graphs]
        sim_ms = np.array([s.latency_ms for s in sims])
        apm = apm_for(acc)
        apm_ms = np.array([apm.latency_ms(a) for a in archs])
        fit = APM(m)
        ok = np.isfinite(apm_ms[:n_fit])
        fit.fit([a for a, k in zip(archs[:n_fit], ok) if k], sim_ms[:n_fit][ok])
        fitted[acc.name] = fit
        frames.append(pd.DataFrame({
            "arch": [a.encode() for a in archs], "hardware": acc.name, "split": split,
            "macs": [g.macs for g in graphs], "params": [g.params for g in graphs],
            "weight_bytes": [g.weight_bytes for g in graphs], "sim_ms": sim_ms,
            "sim_streamed_bytes": [s.param_bytes_streamed for s in sims],
            "sim_partition_index": [-1 if s.partition_index is None else s.partition_index for s in sims],
            "apm_ms": apm_ms, "apm_fit_ms": [fit.latency_ms(a) for a in archs]}))
    return pd.concat(frames, ignore_index=True), fitted


def apm_model_dict(apm: APM, acc: Accelerator, fit: dict | None = None) -> dict:
    """What ``latency_models/apm_<acc>.json`` holds: the fitted APM coefficients, the formula they
    enter, the fit statistics and the accelerator constants they were fitted with."""
    constants = dataclasses.asdict(acc)
    return {"accelerator": acc.name, "source": acc.source,
            "coef": dict(zip(COEF_NAMES, (float(c) for c in apm.coef))),
            "formula": "latency_s = invoke + io + c_dense * dense_s + c_depthwise * depthwise_s + "
                       "c_elementwise * elementwise_s + c_ops * ops_s + c_stream * stream_s + c_const_s "
                       "(roofline terms per op summed, see accelnas.latency.apm)",
            "fit": fit or {}, "accelerator_constants": constants}


# ---------------------------------------------------------------------------------------------
# one model: per-op roofline

def op_category(kind: str, kernel: int) -> str:
    """Roofline category of a MAC op: depthwise, kxk conv (fused/regular), 1x1 conv or fc."""
    if kind == "dwconv":
        return "depthwise"
    if kind == "fc":
        return "fc"
    return "1x1 conv" if kernel == 1 else "kxk conv (fused/regular)"


def roofs(acc: Accelerator | str) -> dict:
    """The ceilings of the roofline plot (MAC/s and bytes/s) of an accelerator."""
    acc = as_accelerator(acc)
    m = machine(acc)
    return {"peak_macs_per_s": m.peak_macs_per_s,
            "dense_macs_per_s": m.peak_macs_per_s * m.mac_efficiency,
            "depthwise_macs_per_s": m.peak_macs_per_s * m.mac_efficiency / m.lanes_in,
            "param_broadcast_bytes_per_s": m.param_bytes_per_cycle * m.clock_hz,
            "offchip_bytes_per_s": m.offchip_bytes_per_s}


def roofline_frame(model: ArchSpec | OpGraph, acc: Accelerator | str) -> pd.DataFrame:
    """Per MAC op of ``model`` simulated on ``acc``: category, MACs, weight and activation bytes,
    arithmetic intensity (MACs per weight + input + output activation byte), simulated time,
    achieved MAC/s, utilisation of peak and bound."""
    from accelnas.latency import estimate

    g = model if isinstance(model, OpGraph) else from_arch(model)
    rep = estimate(g, as_accelerator(acc), "sim")
    t = {o["name"]: o for o in rep.ops}
    rows = []
    for o in g.ops:
        if not o.macs:
            continue
        act = o.in_bytes + o.out_bytes
        s = t[o.name]
        rows.append({"name": o.name, "kind": o.kind, "category": op_category(o.kind, o.kernel),
                     "kernel": o.kernel, "macs": o.macs, "weight_bytes": o.weight_bytes,
                     "activation_bytes": act, "intensity_macs_per_byte": o.macs / (o.weight_bytes + act),
                     "time_ms": s["time_ms"], "achieved_macs_per_s": o.macs / (s["time_ms"] * 1e-3),
                     "utilisation": s["utilisation"], "bound": s["bound"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# plots (matplotlib; each draws on the given axes and returns it)

def plot_pred_vs_target(ax, target, predicted, label: str = "", band: float = 0.10, **kw):
    """Log-log scatter of predicted vs target latency, with y = x and a +-``band`` corridor
    (``band=0``: the points only, e.g. for a second series on the same axes)."""
    t = np.asarray(target, dtype=float)
    p = np.asarray(predicted, dtype=float)
    ax.scatter(t, p, label=label, **({"s": 10, "alpha": 0.6} | kw))
    ok = np.isfinite(t) & np.isfinite(p)
    if band and ok.any():
        lo, hi = min(t[ok].min(), p[ok].min()) * 0.9, max(t[ok].max(), p[ok].max()) * 1.1
        xs = np.geomspace(lo, hi, 50)
        ax.plot(xs, xs, "k-", lw=0.8)
        ax.fill_between(xs, xs * (1 - band), xs * (1 + band), color="k", alpha=0.08, lw=0,
                        label=f"±{band:.0%}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    return ax


def plot_op_breakdown(ax, ops: pd.DataFrame, title: str = ""):
    """Bar per op (simulated time, ms) coloured by what bounds it (`BOUND_COLORS`)."""
    ops = ops[ops["kind"] != "input"].reset_index(drop=True)
    ax.bar(np.arange(len(ops)), ops["time_ms"], width=0.9,
           color=[BOUND_COLORS.get(b, "k") for b in ops["bound"]])
    for b, c in BOUND_COLORS.items():
        if (ops["bound"] == b).any():
            ax.bar([0], [0], color=c, label=f"{b} ({ops.loc[ops['bound'] == b, 'time_ms'].sum():.2f} ms)")
    ax.set_xlabel("op (execution order)")
    ax.set_ylabel("time (ms)")
    ax.set_xlim(-1, len(ops))
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_roofline(ax, frame: pd.DataFrame, acc: Accelerator | str, title: str = ""):
    """Achieved MAC/s vs arithmetic intensity per op (`roofline_frame`) under the roofs of ``acc``:
    peak, dense-conv ceiling (peak x mac_efficiency), depthwise ceiling (/ lanes_in) and the
    off-chip streaming line (weight bytes only)."""
    r = roofs(acc)
    for cat, (color, marker) in CATEGORY_STYLE.items():
        sub = frame[frame["category"] == cat]
        if len(sub):
            ax.scatter(sub["intensity_macs_per_byte"], sub["achieved_macs_per_s"], c=color, marker=marker,
                       s=18, alpha=0.75, label=cat)
    x = np.geomspace(max(frame["intensity_macs_per_byte"].min() / 2, 1e-2),
                     frame["intensity_macs_per_byte"].max() * 2, 50)
    ax.axhline(r["peak_macs_per_s"], color="k", lw=1, label="peak")
    ax.axhline(r["dense_macs_per_s"], color="tab:blue", ls="--", lw=1, label="dense conv ceiling")
    ax.axhline(r["depthwise_macs_per_s"], color="tab:red", ls="--", lw=1, label="depthwise ceiling")
    ax.plot(x, np.minimum(x * r["offchip_bytes_per_s"], r["peak_macs_per_s"]), color="tab:purple", ls=":",
            lw=1, label="off-chip streaming")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs / (weight + activation) byte)")
    ax.set_ylabel("achieved MAC/s")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return ax


def latency_model_records(validation: pd.DataFrame, avs: pd.DataFrame, fidelity: pd.DataFrame,
                          fitted: Mapping[str, APM], accelerators: Iterable[Accelerator],
                          seed: int) -> dict[str, dict]:
    """``{accelerator name: what latency_models/apm_<name>.json holds}`` (`apm_model_dict`) for
    the APMs `apm_vs_sim` fitted, with their fit statistics: the number of architectures fitted,
    the held-out statistics of the calibrated and the fitted APM against the simulator (columns
    ``(name, "calibrated")`` / ``(name, "fitted")`` of ``fidelity``, rows of `error_stats`) and the
    fitted APM's mean absolute error on the published rows of ``validation`` (`with_fitted_apm`)."""
    out = {}
    for acc in accelerators:
        rows = validation[validation.hardware == acc.name]
        fit_info = {"target": "simulator", "seed": int(seed),
                    "n_fit": int((avs[avs.hardware == acc.name].split == "fit").sum()),
                    "eval_calibrated": fidelity[(acc.name, "calibrated")].to_dict(),
                    "eval_fitted": fidelity[(acc.name, "fitted")].to_dict(),
                    "published_mape_fitted": (float(rows.apm_fit_error.abs().mean())
                                              if len(rows) else None)}
        out[acc.name] = apm_model_dict(fitted[acc.name], acc, fit_info)
    return out
