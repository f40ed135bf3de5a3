"""Calibration of the latency models against published Edge TPU latencies, and of the APM.

Two tables of real measurements live in ``lib/accelnas/resources/`` (columns model, builder
(``zoo:<name>`` or ``keras:<Application>``), resolution, hardware, latency_ms, source):

* ``calibration.csv``: the rows the simulator's unpublished constants are fitted to;
* ``heldout.csv``: further published measurements that no constant is fitted to, for judging how
  the models generalize (``benchmarks/generalization_bench.py``).

* `accelnas.latency.fidelity.validation_frame` predicts rows with the simulator and the APM.
* `fit_constants` re-fits the simulator's unpublished micro-architecture constants ([U] in the
  hardware YAMLs) within physical bounds, minimising squared log error over the calibration rows:
  shared by both accelerators (same Edge TPU architecture): MAC efficiency, per-op overhead,
  parameter broadcast bandwidth, reduction lanes; Coral: the USB link bandwidth; Pixel 4: the invoke overhead
  and the MACs per cycle per tile (not published). Nothing is fitted per model.
  ``python -m accelnas.latency.calibrate`` prints the fit; the YAMLs hold its result.
* `fit_apm_coefficients` fits the APM's four coefficients to the simulator on a fixed, seeded set
  of architectures (samples of the default search space and scaled zoo models) and
  ``python -m accelnas.latency.calibrate --apm`` writes them to ``resources/apm_coef.json``, keyed
  by accelerator with a fingerprint of the constants they were fitted with; `apm_coefficients`
  reads them back (or fits on first use, deterministically, when the file has none that match).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path

from accelnas.space.graph import OpGraph
from accelnas.latency.accelerator import load_accelerator
from accelnas.latency.models import resolve, to_graph
from accelnas.latency.sim import machine

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
CALIBRATION_CSV = RESOURCES / "calibration.csv"
HELDOUT_CSV = RESOURCES / "heldout.csv"
APM_COEF_JSON = RESOURCES / "apm_coef.json"

# (field, low, high) of the constants fitted on both accelerators (same architecture)
# (act_bytes_per_cycle_per_tile is not fitted but follows the lanes: the elementwise path is the MAC
# array's depthwise path, one value per output lane = macs_per_cycle_per_tile / lanes_in per cycle)
SHARED_BOUNDS = (("mac_efficiency", 0.2, 1.0), ("per_op_overhead_cycles", 200, 1800),
                 ("param_bytes_per_cycle", 8, 256))
CORAL_BOUNDS = (("offchip_bandwidth_gbps", 0.36, 0.5),)
PIXEL4_BOUNDS = (("invoke_overhead_ms", 0.05, 3.0),)
LANES = (32, 64)                 # reduction lanes: depthwise runs at ~1/lanes of peak (FACTS: 1-5 %)
PIXEL4_MACS_PER_TILE = (256, 128)  # Coral-like, or half


def calibration_rows(path: str | Path = CALIBRATION_CSV) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["resolution"] = int(r["resolution"])
        r["latency_ms"] = float(r["latency_ms"])
    return rows


def heldout_rows(path: str | Path = HELDOUT_CSV) -> list[dict]:
    """The held-out published measurements (no constant is fitted to them)."""
    return calibration_rows(path)


@lru_cache(maxsize=None)
def row_graph(builder: str, resolution: int) -> OpGraph:
    """The op graph of a table row's model (keras: rows build a Keras model once)."""
    ref = builder[4:] if builder.startswith("zoo:") else builder
    return to_graph(resolve(ref, resolution)[1])


def fit_constants(rows=None) -> dict:
    """Fit the [U] constants (see the module docstring); returns {accelerator: {field: value}}."""
    import numpy as np
    from scipy.optimize import minimize

    from accelnas.latency.sim import Machine, simulate

    rows = rows or calibration_rows()
    accs = {n: load_accelerator(n) for n in sorted({r["hardware"] for r in rows})}
    graphs = [row_graph(r["builder"], r["resolution"]) for r in rows]
    names = [b[0] for b in SHARED_BOUNDS + CORAL_BOUNDS + PIXEL4_BOUNDS]
    bounds = [b[1:] for b in SHARED_BOUNDS + CORAL_BOUNDS + PIXEL4_BOUNDS]

    def constants(x, lanes, p4_macs):
        d = dict(zip(names, x))
        shared = {k: d[k] for k, *_ in SHARED_BOUNDS} | {"lanes_in": lanes}
        # the elementwise path: one value per output lane (macs per tile / lanes_in) and cycle
        return {"coral": shared | {k: d[k] for k, *_ in CORAL_BOUNDS}
                | {"act_bytes_per_cycle_per_tile": accs["coral"].macs_per_cycle_per_tile // lanes},
                "pixel4": shared | {k: d[k] for k, *_ in PIXEL4_BOUNDS} | {"macs_per_cycle_per_tile": p4_macs,
                                                                            "act_bytes_per_cycle_per_tile": p4_macs // lanes}}

    def loss(x, lanes, p4_macs):
        c = constants(x, lanes, p4_macs)
        errs = []
        for r, g in zip(rows, graphs):
            acc = dataclasses.replace(accs[r["hardware"]], **c.get(r["hardware"], {}))
            errs.append(math.log(simulate(g, Machine.from_accelerator(acc)).latency_ms / r["latency_ms"]))
        return float(np.mean(np.square(errs)))

    best = None
    for lanes in LANES:
        for p4_macs in PIXEL4_MACS_PER_TILE:
            if p4_macs % lanes:
                continue
            x0 = [(lo + hi) / 2 for lo, hi in bounds]
            res = minimize(loss, x0, args=(lanes, p4_macs), method="Powell", bounds=bounds)
            if best is None or res.fun < best[0]:
                best = (res.fun, lanes, p4_macs, res.x)
    fun, lanes, p4_macs, x = best
    out = constants(x, lanes, p4_macs)
    out["rms_log_error"] = math.sqrt(fun)
    return out


# ---------------------------------------------------------------------------------------------
# APM coefficients (fitted to the simulator)

APM_FIT_SEED = 0
APM_FIT_SAMPLES = 300
APM_FIT_RESOLUTIONS = (160, 192, 224, 256, 288)


def machine_fingerprint(m) -> str:
    """A short hash of a `sim.Machine`'s constants (what stored APM coefficients were fitted with)."""
    d = dataclasses.asdict(m)
    d["supported_ops"] = sorted(d["supported_ops"])
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def apm_fit_archs(acc) -> list:
    """The fixed architecture set the APM coefficients are fitted on: ``APM_FIT_SAMPLES``
    architectures sampled (seed ``APM_FIT_SEED``) from the default search space with
    ``acc``'s exclusions, and every zoo model without a stem pool at ``APM_FIT_RESOLUTIONS``."""
    import numpy as np

    from accelnas.space import zoo
    from accelnas.space.search_space import SearchSpace, default_section

    space = SearchSpace.from_params(default_section(), [acc])
    rng = np.random.default_rng(APM_FIT_SEED)
    archs = [space.sample(rng, name=f"fit{i}") for i in range(APM_FIT_SAMPLES)]
    for name in zoo.names():
        a = zoo.get(name)
        if not a.stem_pool:
            archs += [a.replace(resolution=r) for r in APM_FIT_RESOLUTIONS]
    return archs


def fit_apm_coefficients(acc) -> dict:
    """Fit the APM coefficients of ``acc`` to the simulator on `apm_fit_archs` (deployable ones).

    Returns:
        {"coef": {name: value}, "fingerprint", "n_fit", "seed", "mape_fit", "max_abs_error_fit",
        "kendall_tau_fit"}: fit statistics of the fitted APM against the simulator on the set.
    """
    import numpy as np
    from scipy.stats import kendalltau

    from accelnas.space.graph import from_arch
    from accelnas.latency.apm import APM
    from accelnas.latency.sim import simulate

    m = machine(acc)
    apm = APM(m)
    archs = [a for a in apm_fit_archs(acc) if np.isfinite(apm.latency_ms(a))]
    sim_ms = np.array([simulate(from_arch(a), m).latency_ms for a in archs])
    apm.fit(archs, sim_ms)
    pred = np.array([apm.latency_ms(a) for a in archs])
    err = np.abs(pred / sim_ms - 1)
    return {"coef": dict(zip(("c_compute", "c_overhead", "c_stream", "c_const_s"), apm.coef)),
            "fingerprint": machine_fingerprint(m), "n_fit": len(archs), "seed": APM_FIT_SEED,
            "mape_fit": float(err.mean()), "max_abs_error_fit": float(err.max()),
            "kendall_tau_fit": float(kendalltau(pred, sim_ms).statistic)}


def stored_apm_coefficients(path: str | Path = APM_COEF_JSON) -> dict:
    """{accelerator name: fit record} from ``resources/apm_coef.json`` ({} when absent)."""
    path = Path(path)
    return json.loads(path.read_text())["accelerators"] if path.is_file() else {}


def apm_coefficients(acc) -> tuple[tuple[float, float, float, float], str]:
    """(coefficients, where from) for the APM of ``acc``: the stored fit when its fingerprint
    matches the accelerator's constants, else a fit now (deterministic, `fit_apm_coefficients`)."""

    rec = stored_apm_coefficients().get(acc.name)
    if rec and rec.get("fingerprint") == machine_fingerprint(machine(acc)):
        return tuple(float(v) for v in rec["coef"].values()), f"stored ({APM_COEF_JSON.name})"
    rec = fit_apm_coefficients(acc)
    return tuple(float(v) for v in rec["coef"].values()), "fitted on first use"


def write_apm_coefficients(names=("coral", "pixel4"), path: str | Path = APM_COEF_JSON) -> dict:
    """Fit the APM coefficients of the named accelerators and write them to ``path``."""
    from accelnas.io import atomic_write_bytes

    out = {"doc": "APM coefficients fitted to the simulator by accelnas.latency.calibrate."
                  "fit_apm_coefficients (python -m accelnas.latency.calibrate --apm); keyed by "
                  "accelerator, with a fingerprint of the constants they were fitted with",
           "accelerators": {n: fit_apm_coefficients(load_accelerator(n)) for n in names}}
    atomic_write_bytes(Path(path), (json.dumps(out, indent=1) + "\n").encode())
    return out


_APMS: dict = {}


def apm_for(acc):
    """The (process-wide, cached) calibrated APM of an accelerator.

    Its coefficients come from ``lib/accelnas/resources/apm_coef.json`` (fitted to the simulator by
    ``python -m accelnas.latency.calibrate --apm``) when they were fitted with the accelerator's
    current constants; otherwise they are fitted now, deterministically, on a fixed seeded set of
    architectures (`accelnas.latency.calibrate.fit_apm_coefficients`, about a second) and cached.
    ``apm_for(acc).calibration`` says which.
    """
    from accelnas.latency.apm import APM

    if acc not in _APMS:
        coef, origin = apm_coefficients(acc)
        apm = APM(machine(acc), coef)
        apm.calibration = origin
        _APMS[acc] = apm
    return _APMS[acc]


if __name__ == "__main__":  # python -m accelnas.latency.calibrate [--apm]
    import sys

    if "--apm" in sys.argv[1:]:
        print(json.dumps(write_apm_coefficients(), indent=1))
        print("wrote", APM_COEF_JSON)
    else:
        print(json.dumps(fit_constants(), indent=1))
        print("errors per row: python benchmarks/generalization_bench.py")
