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
import os
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

#: Where the LatBench rows are looked for when ``ACCELNAS_LATBENCH_CSV`` is not set: beside the
#: checkout (the project's shared folder), never copied into the repository.
LATBENCH_DEFAULT = Path(__file__).resolve().parents[3].parent / "shared" / "edgetpu" / "latbench_calibration.csv"
LATBENCH_HOST = "coral@latbench"


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


def latbench_path() -> Path | None:
    """The LatBench CSV (``ACCELNAS_LATBENCH_CSV``, else the shared folder beside the checkout), or
    None when neither exists."""
    env = os.environ.get("ACCELNAS_LATBENCH_CSV")
    p = Path(env) if env else LATBENCH_DEFAULT
    return p if p.is_file() else None


def latbench_rows(path: str | Path | None = None) -> list[dict]:
    """LatBench's measured NAS-Bench-201 networks as measurement rows (hardware ``coral@latbench``:
    the Edge TPU behind LatBench's own host path; builder ``nb201:<cell>``).

    Raises:
        FileNotFoundError: no LatBench CSV (says where it was looked for and how to point at it).
    """
    path = Path(path) if path else latbench_path()
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"LatBench rows not found (looked at {path or LATBENCH_DEFAULT}); set "
                                "ACCELNAS_LATBENCH_CSV to a CSV with columns arch, resolution, latency_ms")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"arch", "resolution", "latency_ms"} - set(rows[0] if rows else ())
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return [{"model": f"nb201_{r.get('nb201_index', i)}", "builder": "nb201:" + r["arch"],
             "resolution": int(r["resolution"]), "hardware": LATBENCH_HOST,
             "latency_ms": float(r["latency_ms"]), "source": "LatBench (Dudziak et al. 2020)"}
            for i, r in enumerate(rows)]


def measurement_sets(latbench: bool = True) -> dict[str, list[dict]]:
    """The measurement sets the latency models are fitted to: ``published`` (calibration.csv) and,
    when its CSV is found, ``latbench``."""
    sets = {"published": calibration_rows()}
    if latbench and latbench_path() is not None:
        sets["latbench"] = latbench_rows()
    return sets


@lru_cache(maxsize=None)
def row_graph(builder: str, resolution: int) -> OpGraph:
    """The op graph of a table row's model (keras: rows build a Keras model once)."""
    ref = builder[4:] if builder.startswith("zoo:") else builder
    return to_graph(resolve(ref, resolution)[1])


@dataclasses.dataclass(frozen=True)
class FitSpace:
    """What `fit_constants` fits: one value per (group, field) with its bounds. Groups: ``chip:<family>``
    (shared by the family's accelerators), ``acc:<name>`` (one accelerator), ``host:<name>@<host>``
    (one host path; the top-level host is ``<name>@``)."""

    names: tuple        # ((group, field), ...)
    bounds: tuple       # ((low, high), ...)

    def constants(self, x, acc) -> dict:
        """{field: value} of ``x`` that apply to accelerator ``acc`` (on its host path)."""
        base = acc.name.split("@")[0]
        mine = {f"chip:{acc.family or base}", f"acc:{base}", f"host:{base}@{acc.host}"}
        return {f: v for (g, f), v in zip(self.names, x) if g in mine}


def fit_space(accs) -> FitSpace:
    """The bounds the accelerator YAMLs give (``calibration`` and ``hosts.<h>.fit``) for ``accs``.

    Raises:
        ValueError: two accelerators of one family give different chip bounds.
    """
    out: dict = {}
    for acc in accs:
        base = acc.name.split("@")[0]
        cal = acc.calibration or {}
        groups = {f"chip:{acc.family or base}": cal.get("chip", {}), f"acc:{base}": cal.get("accelerator", {}),
                  f"host:{base}@{acc.host}": (acc.hosts[acc.host].get("fit", {}) if acc.host else cal.get("host", {}))}
        for g, bounds in groups.items():
            for f, b in bounds.items():
                key, b = (g, f), tuple(float(v) for v in b)
                if out.get(key, b) != b:
                    raise ValueError(f"{acc.source}: calibration bounds of {f} differ within family "
                                     f"{acc.family!r} ({out[key]} vs {b}); make them equal")
                out[key] = b
    names = tuple(sorted(out))
    return FitSpace(names, tuple(out[k] for k in names))


@lru_cache(maxsize=None)
def _accelerator(name: str):
    """`load_accelerator`, once per name and process (a fit evaluates the rows many times)."""
    return load_accelerator(name)


def predict_rows(rows, constants_for=None) -> list[float]:
    """Simulated latency (ms) of each row on its ``hardware`` (accelerator[@host]); ``constants_for``
    maps an Accelerator to {field: value} overrides (a fit in progress)."""
    from accelnas.latency.sim import Machine, simulate

    machines = {}
    out = []
    for r in rows:
        h = r["hardware"]
        if h not in machines:
            acc = _accelerator(h)
            over = constants_for(acc) if constants_for else {}
            machines[h] = Machine.from_accelerator(dataclasses.replace(acc, **over))
        out.append(simulate(row_graph(r["builder"], r["resolution"]), machines[h]).latency_ms)
    return out


def fit_constants(sets: dict[str, list[dict]] | None = None, *, max_rows: int = 300, seed: int = 0) -> dict:
    """Fit the constants the accelerator YAMLs mark for calibration to measured rows.

    ``sets`` maps a data set name to its rows (default `measurement_sets`). The loss is the mean
    over data sets of each set's mean squared log error, so the 8 published rows weigh as much as
    LatBench's 1,528; a set larger than ``max_rows`` is fitted on a seeded sample of that many rows.
    Chip constants are fitted once per family, host constants per host path (`fit_space`).

    Returns:
        {"constants": {"<group>": {field: value}}, "rms_log_error": {set: value}, "rows": {set: n}}.
    """
    import numpy as np
    from scipy.optimize import least_squares

    sets = sets or measurement_sets()
    rng = np.random.default_rng(seed)
    fit_sets = {}
    for name, rows in sets.items():
        if len(rows) > max_rows:
            rows = [rows[i] for i in sorted(rng.choice(len(rows), max_rows, replace=False))]
        fit_sets[name] = rows
    space = fit_space([_accelerator(h) for h in sorted({r["hardware"] for rows in fit_sets.values() for r in rows})])
    lo = np.array([b[0] for b in space.bounds])
    hi = np.array([b[1] for b in space.bounds])
    targets = {n: np.log([r["latency_ms"] for r in rows]) for n, rows in fit_sets.items()}

    def unit_to_x(u):
        return lo + np.clip(u, 0, 1) * (hi - lo)

    def residuals(u):
        x = unit_to_x(u)
        res = []
        for n, rows in fit_sets.items():
            pred = np.log(predict_rows(rows, lambda acc: space.constants(x, acc)))
            res.append((pred - targets[n]) / math.sqrt(len(rows) * len(fit_sets)))
        return np.concatenate(res)

    best = None
    for start in (0.25, 0.5, 0.75):
        r = least_squares(residuals, np.full(len(lo), start), bounds=(0, 1), diff_step=1e-3, x_scale=1.0)
        if best is None or r.cost < best.cost:
            best = r
    x = unit_to_x(best.x)
    groups: dict = {}
    for (g, f), v in zip(space.names, x):
        groups.setdefault(g, {})[f] = float(v)
    rms = {}
    for n, rows in fit_sets.items():
        pred = np.log(predict_rows(rows, lambda acc: space.constants(x, acc)))
        rms[n] = float(np.sqrt(np.mean(np.square(pred - targets[n]))))
    return {"constants": groups, "rms_log_error": rms, "rows": {n: len(r) for n, r in fit_sets.items()},
            "space": space, "x": [float(v) for v in x]}


def cross_validate(sets: dict[str, list[dict]] | None = None, *, k: int = 5, seed: int = 0,
                   max_rows: int = 300, apm: bool = True) -> dict[str, dict[str, list[float]]]:
    """k-fold cross-validated predictions: every row of every set predicted with constants fitted
    (`fit_constants`) without its fold, by the simulator and (``apm``) by an APM whose coefficients
    are fitted to that simulator (`fit_apm_coefficients`). The folds of each set are seeded; a set
    of fewer than ``k`` rows is left out one row at a time.

    Returns:
        {set: {"sim": predicted ms per row, "apm": ...}}, rows in the sets' order.
    """
    import numpy as np

    from accelnas.latency.apm import APM
    from accelnas.latency.sim import Machine

    sets = sets or measurement_sets()
    folds = {}
    for n, rows in sets.items():
        idx = np.random.default_rng([seed, len(rows)]).permutation(len(rows))
        kk = min(k, len(rows))
        folds[n] = [set(idx[f::kk].tolist()) for f in range(kk)]
    methods = ("sim", "apm") if apm else ("sim",)
    out = {n: {m: [float("nan")] * len(rows) for m in methods} for n, rows in sets.items()}
    for f in range(max(len(v) for v in folds.values())):
        train = {n: [r for i, r in enumerate(rows) if f >= len(folds[n]) or i not in folds[n][f]]
                 for n, rows in sets.items()}
        fit = fit_constants(train, max_rows=max_rows, seed=seed)
        constants = lambda acc: fit["space"].constants(fit["x"], acc)  # noqa: E731
        apms: dict = {}
        for n, rows in sets.items():
            if f >= len(folds[n]):
                continue
            held = sorted(folds[n][f])
            for i, ms in zip(held, predict_rows([rows[i] for i in held], constants)):
                out[n]["sim"][i] = ms
            for i in held if apm else ():
                h = rows[i]["hardware"]
                if h not in apms:
                    acc = dataclasses.replace(_accelerator(h), **constants(_accelerator(h)))
                    apms[h] = APM(Machine.from_accelerator(acc), tuple(fit_apm_coefficients(acc)["coef"].values()))
                out[n]["apm"][i] = apms[h].latency_ms(row_graph(rows[i]["builder"], rows[i]["resolution"]))
    return out


# ---------------------------------------------------------------------------------------------
# APM coefficients (fitted to the simulator)

APM_FIT_SEED = 0
APM_FIT_SAMPLES = 900
APM_FIT_NB201 = 200
APM_FIT_RESOLUTIONS = (160, 192, 224, 256, 288)


def machine_fingerprint(m) -> str:
    """A short hash of a `sim.Machine`'s constants (what stored APM coefficients were fitted with)."""
    d = dataclasses.asdict(m)
    d["supported_ops"] = sorted(d["supported_ops"])
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def apm_fit_archs(acc) -> list:
    """The fixed model set the APM coefficients are fitted on: ``APM_FIT_SAMPLES`` architectures
    sampled (seed ``APM_FIT_SEED``) from the default search space with ``acc``'s exclusions, every
    zoo model without a stem pool at ``APM_FIT_RESOLUTIONS``, and ``APM_FIT_NB201`` random
    NAS-Bench-201 networks (op graphs)."""
    import numpy as np

    from accelnas.space import nb201, zoo
    from accelnas.space.search_space import SearchSpace, default_section

    space = SearchSpace.from_params(default_section(), [acc.replace(name=acc.name.split("@")[0])])
    rng = np.random.default_rng(APM_FIT_SEED)
    archs: list = [space.sample(rng, name=f"fit{i}") for i in range(APM_FIT_SAMPLES)]
    for name in zoo.names():
        a = zoo.get(name)
        if not a.stem_pool:
            archs += [a.replace(resolution=r) for r in APM_FIT_RESOLUTIONS]
    cells = 0
    while cells < APM_FIT_NB201:
        ops = rng.choice(nb201.OPS, 6)
        cell = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)
        if nb201.is_valid(cell):
            archs.append(nb201.nb201_graph(cell))
            cells += 1
    return archs


def fit_apm_coefficients(acc) -> dict:
    """Fit the APM coefficients of ``acc`` to the simulator on `apm_fit_archs` (deployable ones;
    a few seconds per accelerator).

    Returns:
        {"coef": {name: value}, "fingerprint", "n_fit", "seed", "mape_fit", "max_abs_error_fit",
        "kendall_tau_fit"}: fit statistics of the fitted APM against the simulator on the set.
    """
    import numpy as np
    from scipy.stats import kendalltau

    from accelnas.latency.apm import APM, COEF_NAMES
    from accelnas.latency.models import to_graph
    from accelnas.latency.sim import simulate

    m = machine(acc)
    apm = APM(m)
    archs = [a for a in apm_fit_archs(acc) if np.isfinite(apm.latency_ms(a))]
    sim_ms = np.array([simulate(to_graph(a), m).latency_ms for a in archs])
    apm.fit(archs, sim_ms)
    pred = np.array([apm.latency_ms(a) for a in archs])
    err = np.abs(pred / sim_ms - 1)
    return {"coef": dict(zip(COEF_NAMES, apm.coef)),
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

    from accelnas.latency.apm import COEF_NAMES

    rec = stored_apm_coefficients().get(acc.name)
    if rec and rec.get("fingerprint") == machine_fingerprint(machine(acc)) and list(rec["coef"]) == list(COEF_NAMES):
        return tuple(float(v) for v in rec["coef"].values()), f"stored ({APM_COEF_JSON.name})"
    rec = fit_apm_coefficients(acc)
    return tuple(float(v) for v in rec["coef"].values()), "fitted on first use"


def accelerator_names() -> list[str]:
    """Every shipped accelerator and each of its host paths (``<name>@<host>``)."""
    from accelnas.latency.accelerator import available

    out = []
    for name in available():
        out += [name] + [f"{name}@{h}" for h in load_accelerator(name).hosts]
    return out


def write_apm_coefficients(names=None, path: str | Path = APM_COEF_JSON) -> dict:
    """Fit the APM coefficients of the named accelerators (default: `accelerator_names`, every
    shipped YAML and host path) and write them to ``path``."""
    names = names or accelerator_names()
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
        fit = fit_constants()
        print(json.dumps({k: fit[k] for k in ("constants", "rms_log_error", "rows")}, indent=1))
        print("cross-validated errors per data set: python benchmarks/generalization_bench.py")
