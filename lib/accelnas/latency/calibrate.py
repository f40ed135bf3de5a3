"""Calibration of the latency models against published Edge TPU latencies.

The table (`lib/accelnas/resources/calibration.csv`, copied with its sources from the project's fact
sheet) lists real measurements: model, builder (``zoo:<name>`` or ``keras:<Application>``),
resolution, hardware, latency_ms, source.

* `validation_frame` predicts every row with the simulator and the APM (the numbers notebook 02
  and ``benchmarks/latency_bench.py`` report).
* `fit_constants` re-fits the simulator's unpublished micro-architecture constants ([U] in the
  hardware YAMLs: lanes, MAC efficiency, on-chip bandwidths, per-op overhead, link bandwidth, and
  the Pixel 4 invoke overhead) within physical bounds, minimising squared log error over all rows.
  The constants are shared by every model: nothing is fitted per model.
  ``python -m accelnas.latency.calibrate`` prints the fit; the YAMLs hold its result.
"""
from __future__ import annotations

import csv
import dataclasses
import math
from functools import lru_cache
from pathlib import Path

from ..graph import OpGraph
from ..hardware import load_accelerator

CALIBRATION_CSV = Path(__file__).resolve().parents[1] / "resources" / "calibration.csv"

# (field, low, high) of the constants fitted on coral (shared with pixel4: same architecture)
SHARED_BOUNDS = (("mac_efficiency", 0.2, 1.0), ("per_op_overhead_cycles", 200, 1800),
                 ("act_bytes_per_cycle_per_tile", 4, 64), ("param_bytes_per_cycle", 8, 256))
CORAL_BOUNDS = (("offchip_bandwidth_gbps", 0.36, 0.5),)
PIXEL4_BOUNDS = (("invoke_overhead_ms", 0.05, 3.0),)
LANES = (8, 16, 32, 64)


def calibration_rows(path: str | Path = CALIBRATION_CSV) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["resolution"] = int(r["resolution"])
        r["latency_ms"] = float(r["latency_ms"])
    return rows


@lru_cache(maxsize=None)
def row_graph(builder: str, resolution: int) -> OpGraph:
    """The op graph of a calibration row's model (keras: rows build a Keras model once)."""
    from . import resolve, to_graph

    ref = builder[4:] if builder.startswith("zoo:") else builder
    return to_graph(resolve(ref, resolution)[1])


def validation_frame(accelerators=("coral", "pixel4"), rows=None):
    """Published vs predicted (sim and APM) for every calibration row of the given accelerators."""
    import pandas as pd

    from . import estimate

    out = []
    for r in rows or calibration_rows():
        if r["hardware"] not in accelerators:
            continue
        g = row_graph(r["builder"], r["resolution"])
        row = {k: r[k] for k in ("model", "builder", "resolution", "hardware", "latency_ms", "source")}
        for method in ("sim", "apm"):
            est = estimate(g, r["hardware"], method)
            row[f"{method}_ms"] = est.latency_ms
            row[f"{method}_error"] = est.latency_ms / r["latency_ms"] - 1
        out.append(row)
    return pd.DataFrame(out)


def fit_constants(rows=None) -> dict:
    """Fit the [U] constants (see the module docstring); returns {accelerator: {field: value}}."""
    import numpy as np
    from scipy.optimize import minimize

    from .sim import Machine, simulate

    rows = rows or calibration_rows()
    accs = {n: load_accelerator(n) for n in sorted({r["hardware"] for r in rows})}
    graphs = [row_graph(r["builder"], r["resolution"]) for r in rows]
    names = [b[0] for b in SHARED_BOUNDS + CORAL_BOUNDS + PIXEL4_BOUNDS]
    bounds = [b[1:] for b in SHARED_BOUNDS + CORAL_BOUNDS + PIXEL4_BOUNDS]

    def constants(x, lanes):
        d = dict(zip(names, x))
        shared = {k: d[k] for k, *_ in SHARED_BOUNDS} | {"lanes_in": lanes}
        return {"coral": shared | {k: d[k] for k, *_ in CORAL_BOUNDS},
                "pixel4": shared | {k: d[k] for k, *_ in PIXEL4_BOUNDS}}

    def loss(x, lanes):
        c = constants(x, lanes)
        errs = []
        for r, g in zip(rows, graphs):
            acc = dataclasses.replace(accs[r["hardware"]], **c.get(r["hardware"], {}))
            errs.append(math.log(simulate(g, Machine.from_accelerator(acc)).latency_ms / r["latency_ms"]))
        return float(np.mean(np.square(errs)))

    best = None
    for lanes in LANES:
        x0 = [(lo + hi) / 2 for lo, hi in bounds]
        res = minimize(loss, x0, args=(lanes,), method="Powell", bounds=bounds)
        if best is None or res.fun < best[0]:
            best = (res.fun, lanes, res.x)
    fun, lanes, x = best
    out = constants(x, lanes)
    out["rms_log_error"] = math.sqrt(fun)
    return out


if __name__ == "__main__":  # python -m accelnas.latency.calibrate
    import json

    print(json.dumps(fit_constants(), indent=1))
    print(validation_frame().round(3).to_string())
