"""Speed and fidelity of the latency models: APM and cycle-level simulator.

    python benchmarks/latency_bench.py [--json] [--archs N] [--seed S] [--params FILE]

Speed (one process pinned to one CPU core, `time.perf_counter`): the APM and the simulator on N
architectures freshly sampled from the search space of the params file at 224 px on coral. The
APM is timed on a fresh instance (empty block cache: ``apm_archs_per_s``, what a new search sees)
and again on the same architectures (``apm_archs_per_s_warm``); the simulator's time includes
building the op graph (`accelnas.space.graph.from_arch`). Wall clock, and for the APM also per second of
this process's CPU time (``apm_archs_per_cpu_s[_warm]``), which other load on a shared machine
disturbs less.

Fidelity of the APM against the simulator on those N architectures (Kendall tau with
`scipy.stats.kendalltau`, MAPE, share within +-10 %): calibrated as the search uses it
(`accelnas.latency.apm_for`: coefficients stored in lib/accelnas/resources/apm_coef.json) and with
coefficients fitted to the simulator on N other sampled architectures (``*_fitted``; disjoint
block strings).

Fidelity against the published latencies of the calibration table
(`accelnas.latency.fidelity.validation_frame`, every row; the keras: rows build Keras models,
~5 s): MAPE of sim and APM, per-row errors, and the roofline baseline ``a * MACs + b * max(0,
weight bytes - 8 MB) + c`` fitted to the coral rows (3 constants on 5 rows, in-sample and
leave-one-out MAPE) for comparison with the simulator. These are in-sample for the simulator's
constants: ``benchmarks/generalization_bench.py`` judges the models on held-out published rows.

``--json`` prints one JSON object. Runs in well under a minute.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

from accelnas.latency import accelerator as hardware  # noqa: E402
from accelnas import params as P
from accelnas.space.graph import from_arch  # noqa: E402
from accelnas.latency import apm_for, machine  # noqa: E402
from accelnas.latency import fidelity as R  # noqa: E402
from accelnas.latency.apm import APM  # noqa: E402
from accelnas.latency.sim import simulate  # noqa: E402
from accelnas.space.search_space import SearchSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ACCELERATOR = "coral"
RESOLUTION = 224


@contextlib.contextmanager
def one_core():
    """Pin this process to one CPU core while timing (where the OS allows it)."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    core = min(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def run(n_archs: int, seed: int, params_file: Path) -> dict:
    t_start = time.perf_counter()
    params = P.override(P.load(params_file), {"search_space.resolution": RESOLUTION})
    acc = hardware.load_accelerator(ACCELERATOR)
    space = SearchSpace.from_params(params["search_space"], [acc])
    rng = np.random.default_rng(seed)
    archs = R.sample_archs(space, n_archs, rng, prefix="eval")
    fit_archs = R.sample_archs(space, n_archs, rng, prefix="fit",
                               exclude=[a.replace(name="x").encode() for a in archs])
    m = machine(acc)

    # ---- speed -----------------------------------------------------------------------------
    with one_core() as core:
        speed = R.estimator_speed(archs, acc)

    # ---- APM vs simulator --------------------------------------------------------------------
    apm = apm_for(acc)
    apm_ms = np.array([apm.latency_ms(a) for a in archs])
    sim_ms = np.array([simulate(from_arch(a), m).latency_ms for a in archs])
    fit_sim_ms = [simulate(from_arch(a), m).latency_ms for a in fit_archs]
    fitted = APM(m).fit(fit_archs, fit_sim_ms)
    fit_ms = np.array([fitted.latency_ms(a) for a in archs])
    raw, fit = R.error_stats(apm_ms, sim_ms), R.error_stats(fit_ms, sim_ms)

    # ---- published latencies -----------------------------------------------------------------
    cal = R.calibration_frame(("coral", "pixel4"))
    coral = cal[cal.hardware == "coral"].reset_index(drop=True)
    base = R.roofline_baseline(coral)
    coral = coral.assign(roofline_ms=base["predicted_ms"])
    rows = []
    for r in cal.itertuples():
        row = {"model": r.model, "hardware": r.hardware, "resolution": int(r.resolution),
               "latency_ms": r.latency_ms, "sim_ms": round(r.sim_ms, 4), "sim_error": round(r.sim_error, 4),
               "apm_ms": round(r.apm_ms, 4), "apm_error": round(r.apm_error, 4)}
        hit = coral[coral.model == r.model]
        if r.hardware == "coral" and len(hit):
            row["roofline_ms"] = round(float(hit.roofline_ms.iloc[0]), 4)
            row["roofline_error"] = round(float(hit.roofline_ms.iloc[0] / r.latency_ms - 1), 4)
        rows.append(row)

    return {
        "accelerator": ACCELERATOR, "resolution": RESOLUTION, "n_archs": n_archs, "n_fit_archs": len(fit_archs),
        "seed": seed, "params_file": str(params_file), "pinned_core": core,
        "apm_archs_per_s": speed["apm_archs_per_s"], "apm_archs_per_s_warm": speed["apm_archs_per_s_warm"],
        "apm_archs_per_cpu_s": speed["apm_archs_per_cpu_s"], "apm_archs_per_cpu_s_warm": speed["apm_archs_per_cpu_s_warm"],
        "sim_nets_per_s": speed["sim_nets_per_s"],
        "sim_latency_ms_median": float(np.median(sim_ms)),
        "kendall_tau_apm_vs_sim": raw["kendall_tau"], "kendall_tau_apm_vs_sim_fitted": fit["kendall_tau"],
        "mape_apm_vs_sim": raw["mape"], "mape_apm_vs_sim_fitted": fit["mape"],
        "within10_apm_vs_sim": raw["within10"], "within10_apm_vs_sim_fitted": fit["within10"],
        "max_abs_error_apm_vs_sim": raw["max_abs_error"], "max_abs_error_apm_vs_sim_fitted": fit["max_abs_error"],
        "apm_coef": dict(zip(R.COEF_NAMES, apm.coef)), "apm_calibration": apm.calibration,
        "apm_coef_fitted": dict(zip(R.COEF_NAMES, fitted.coef)),
        "calibration_mape_sim": float(cal.sim_error.abs().mean()),
        "calibration_mape_apm": float(cal.apm_error.abs().mean()),
        "calibration_max_abs_error_sim": float(cal.sim_error.abs().max()),
        "calibration_mape_sim_coral": float(coral.sim_error.abs().mean()),
        "calibration_mape_apm_coral": float(coral.apm_error.abs().mean()),
        "roofline_mape_coral": base["mape"], "roofline_loo_mape_coral": base["loo_mape"],
        "roofline_baseline": {k: base[k] for k in ("a_ms_per_gmac", "b_ms_per_mb_streamed", "c_ms",
                                                   "onchip_bytes", "n")},
        "calibration_rows": rows,
        "python": platform.python_version(), "wall_s": time.perf_counter() - t_start,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--archs", type=int, default=1000, metavar="N", help="sampled architectures (default 1000)")
    ap.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed (default 0)")
    ap.add_argument("--params", type=Path, default=ROOT / "params" / "default.yaml",
                    help="params file whose search_space is sampled (default params/default.yaml)")
    args = ap.parse_args(argv)
    if args.archs < 10:
        ap.error("--archs must be >= 10")
    out = run(args.archs, args.seed, args.params)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"latency models on {out['accelerator']} at {out['resolution']} px, {out['n_archs']} sampled "
          f"architectures (seed {out['seed']}), one core")
    print(f"  APM        {out['apm_archs_per_s']:10,.0f} archs/s cold   {out['apm_archs_per_s_warm']:10,.0f} warm"
          f"   (per CPU second: {out['apm_archs_per_cpu_s']:,.0f} cold, {out['apm_archs_per_cpu_s_warm']:,.0f} warm)")
    print(f"  simulator  {out['sim_nets_per_s']:10,.0f} nets/s (incl. from_arch)")
    print("  APM vs simulator          calibrated     fitted on other archs")
    for k, label in (("kendall_tau", "Kendall tau"), ("mape", "MAPE"), ("within10", "within ±10 %")):
        print(f"    {label:<22} {out[f'{k}_apm_vs_sim']:12.3f}   {out[f'{k}_apm_vs_sim_fitted']:12.3f}")
    print(f"  published latencies: MAPE sim {out['calibration_mape_sim']:.3f}, APM {out['calibration_mape_apm']:.3f}"
          f" (coral rows: sim {out['calibration_mape_sim_coral']:.3f}, roofline baseline "
          f"{out['roofline_mape_coral']:.3f} in-sample, {out['roofline_loo_mape_coral']:.3f} leave-one-out)")
    for r in out["calibration_rows"]:
        extra = f"  roofline {r['roofline_ms']:8.2f} ({r['roofline_error']:+.1%})" if "roofline_ms" in r else ""
        print(f"    {r['model']:<24} {r['hardware']:<7} {r['latency_ms']:7.1f} ms  sim {r['sim_ms']:8.2f} "
              f"({r['sim_error']:+.1%})  apm {r['apm_ms']:8.2f} ({r['apm_error']:+.1%}){extra}")
    print(f"  ({out['wall_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
