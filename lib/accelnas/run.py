"""The run contract: every file of a run folder, the notebook that writes it and those that read it.

A run folder ``outputs/<run_name>/`` is written only through this contract. `ARTIFACTS` names each
file once (its path, its writer, its readers, one line of what it holds); a notebook opens its run
with one call, ``run = open_run(params_file, run_dir, notebook="03", seed=seed,
overrides=overrides)``, which validates the params, makes the folder and gives

* ``run.params``: the validated params as plain dicts (what the library functions take), and
  ``run.p``: the same as typed, frozen sections (``run.p.proxy.epochs``);
* ``run.read(name)`` / ``run.write(name, obj)`` / ``run.path(name)``: only for artifacts the
  notebook declares (reads and writes of an undeclared artifact raise, so the table below stays
  true); a missing input says which notebook writes it;
* ``run.inputs()`` / ``run.outputs()`` / ``run.describe()``: what the notebook reads and writes;
* ``run.accelerators``, ``run.space()`` (notebook 01's ``space.json`` when it is there),
  ``run.seed``, ``run.target``.

Files are written atomically (`accelnas.io`). Readers by suffix: ``.json`` -> dict,
``.parquet`` -> DataFrame, ``.csv`` -> DataFrame; folders are returned as paths.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from accelnas import params as P
from accelnas.io import atomic_write_bytes, write_json, write_parquet
from accelnas.latency.accelerator import Accelerator, load_accelerators
from accelnas.report.html import EXECUTED_DIR, MANIFEST_NAME, REPORT_NAME
from accelnas.train.cache import CACHE_FILE, WEIGHTS_DIR
from accelnas.search.trials import BEST_ARCHS_FILE, SEARCH_DIR
from accelnas.space.search_space import SearchSpace

NOTEBOOKS = {"01": "01_search_space", "02": "02_latency_model", "03": "03_nas_search",
             "04": "04_compound_scaling", "05": "05_pareto_report"}
"""The workbook's notebooks by number (the runner executes them in this order)."""

RUNNER = "runner"


@dataclass(frozen=True)
class Artifact:
    """One file (or folder) of a run.

    Attributes:
        name: the key notebooks use (``run.read("trials")``).
        path: relative to the run folder; a trailing ``/`` marks a folder.
        writers: notebook numbers (or ``"runner"``) that write it.
        readers: notebook numbers that read it (``optional`` ones read it when it is there).
        doc: what it holds.
        optional: readers go on without it (e.g. no scaled variants when notebook 04 did not run).
    """

    name: str
    path: str
    writers: tuple[str, ...]
    readers: tuple[str, ...]
    doc: str
    optional: bool = False

    @property
    def is_dir(self) -> bool:
        return self.path.endswith("/")


ARTIFACTS: dict[str, Artifact] = {a.name: a for a in (
    Artifact("space", "space.json", ("01",), ("02", "03"),
             "the search space after the accelerators' exclusions (SearchSpace.to_json)"),
    Artifact("samples", "samples.parquet", ("01",), (),
             "one row per sampled architecture: block string, MACs, params, composition"),
    Artifact("latency_validation", "latency_validation.csv", ("02",), ("05",),
             "every calibration row: published, simulated, APM and fitted-APM latency, errors"),
    Artifact("latency_models", "latency_models/", ("02",), ("05",),
             "apm_<accelerator>.json: APM coefficients fitted to the simulator, fit statistics"),
    Artifact("apm_vs_sim", "apm_vs_sim.parquet", ("02",), (),
             "one row per sampled architecture and accelerator: simulator vs APM"),
    Artifact("search", SEARCH_DIR + "/", ("03",), (),
             "keras-tuner projects, one per controller: trial_*/trial.json + result.json; "
             "supernet.npz (+ .json) when search.evaluator is supernet"),
    Artifact("trials", "trials.parquet", ("03",), ("05",),
             "one row per trial: arch, accuracy, latency per accelerator, reward, status, reason"),
    Artifact("best_archs", BEST_ARCHS_FILE, ("03",), ("04", "05"),
             "the best architectures of stage 1 overall and per accelerator, and the finalists "
             "ranked by stage 2 (stage2: the searched model first), as block strings"),
    Artifact("finalists", "finalists.parquet", ("03",), ("05",),
             "the stage-1 finalists: stage-1 accuracy and reward, stage-2 accuracy over seeds, "
             "stage-2 reward"),
    Artifact("scaling_grid", "scaling_grid.parquet", ("04",), (),
             "the compound-scaling coefficient candidates scored at phi_probe"),
    Artifact("scaled", "scaled.parquet", ("04",), ("05",),
             "the -S/-M/-L variants: phi, multipliers, latency, accuracy over seeds", optional=True),
    Artifact("proxy_fidelity", "proxy_fidelity.parquet", ("03",), ("05",),
             "correlation candidates (stage2.fidelity_candidates): stage-1 score, stage-2 accuracy "
             "per seed; how far the stage-1 ranking holds", optional=True),
    Artifact("trained", CACHE_FILE, ("03", "04", "05"), ("03", "04", "05"),
             "every stand-alone training (stage 2, coefficient grid), keyed by (architecture, "
             "budget, data, seed)", optional=True),
    Artifact("weights", WEIGHTS_DIR + "/", ("03", "04", "05"), ("05",),
             "<key>.keras: the trained stage-2 models of the finalists, searched and scaled "
             "models (int8 export with their weights)", optional=True),
    Artifact("comparison", "comparison.parquet", ("05",), (),
             "one row per model: latency per accelerator and host, deployability, accuracy"),
    Artifact("dominance", "dominance.csv", ("05",), (),
             "each found model against each baseline per target: the verdict beyond the spread"),
    Artifact("models", "models/", ("05",), (),
             "int8 TFLite exports of the searched and scaled models with their stage-2 weights, "
             "Edge TPU compatibility reports"),
    Artifact("executed", EXECUTED_DIR + "/", (RUNNER,), (), "the notebooks as run, with outputs"),
    Artifact("manifest", MANIFEST_NAME, (RUNNER,), (),
             "params, git revision, versions, per-notebook status and wall time"),
    Artifact("report", REPORT_NAME, (RUNNER,), (), "one offline page of the executed notebooks"),
)}


def read_file(path: Path) -> Any:
    """dict (.json) or DataFrame (.parquet / .csv)."""
    if path.suffix == ".json":
        return json.loads(path.read_text())
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"{path}: no reader for {path.suffix} files")


def inputs_of(notebook: str) -> list[Artifact]:
    return [a for a in ARTIFACTS.values() if notebook in a.readers]


def outputs_of(notebook: str) -> list[Artifact]:
    return [a for a in ARTIFACTS.values() if notebook in a.writers]


def _number(notebook: str) -> str:
    key = str(notebook)[:2]
    if key not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; the workbook has {', '.join(NOTEBOOKS.values())}")
    return key


class Run:
    """One run folder seen from one notebook (see the module docstring)."""

    def __init__(self, run_dir: str | os.PathLike, params: Mapping, *, notebook: str,
                 seed: int | None = None) -> None:
        self.dir = Path(run_dir)
        self.notebook = _number(notebook)
        self.params = dict(params)
        self.p = P.frozen(self.params)
        self.seed = int(self.params["seed"] if seed is None else seed)
        self.dir.mkdir(parents=True, exist_ok=True)

    # ---- the contract ------------------------------------------------------------------------

    def _artifact(self, name: str, mode: str) -> Artifact:
        if name not in ARTIFACTS:
            raise KeyError(f"no artifact {name!r} in the run contract; known: {', '.join(ARTIFACTS)}")
        a = ARTIFACTS[name]
        allowed = a.readers + a.writers if mode == "read" else a.writers
        if self.notebook not in allowed:
            raise PermissionError(
                f"notebook {NOTEBOOKS[self.notebook]} does not declare {'writing' if mode == 'write' else 'reading'} {a.path} "
                f"(accelnas.run.ARTIFACTS: written by {', '.join(a.writers)}, read by "
                f"{', '.join(a.readers) or 'none'}); add it to the contract first")
        return a

    def path(self, name: str, mode: str = "read") -> Path:
        """Where artifact ``name`` lives (``mode`` "write" for a writer's path)."""
        return self.dir / self._artifact(name, mode).path.rstrip("/")

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def read(self, name: str) -> Any:
        """An input: dict (.json), DataFrame (.parquet / .csv) or, for a folder, its path.

        Raises:
            FileNotFoundError: it is missing; the message names the notebook that writes it.
        """
        a = self._artifact(name, "read")
        path = self.dir / a.path.rstrip("/")
        if not path.exists():
            writers = ", ".join(NOTEBOOKS.get(w, w) for w in a.writers)
            raise FileNotFoundError(f"{path} not found: it is written by {writers}; run that first "
                                    f"(accelnas run PARAMS --only {a.writers[0]})")
        return path if a.is_dir else read_file(path)

    def read_optional(self, name: str, default: Any = None) -> Any:
        """An input that may be missing (``default`` then)."""
        return self.read(name) if self.exists(name) else default

    def read_folder(self, name: str, pattern: str = "*.json") -> dict[str, Any]:
        """The files of a folder artifact matching ``pattern``, by stem, read like `read`."""
        return {f.stem: read_file(f) for f in sorted(self.read(name).glob(pattern))}

    def write(self, name: str, obj: Any, file: str | None = None) -> Path:
        """Write an output atomically: dict/list -> .json, DataFrame -> .parquet / .csv, bytes.
        For a folder artifact, ``file`` names the file inside it (``run.write("latency_models",
        record, file="apm_coral.json")``)."""
        path = self.path(name, "write")
        if ARTIFACTS[name].is_dir:
            if not file or Path(file).name != file:
                raise ValueError(f"{name} is a folder: name one file inside it with file=...")
            path = path / file
        if isinstance(obj, (bytes, bytearray)):
            return atomic_write_bytes(path, bytes(obj))
        if path.suffix == ".json":
            return write_json(path, obj)
        if path.suffix == ".parquet":
            return write_parquet(path, obj)
        if path.suffix == ".csv":
            return atomic_write_bytes(path, obj.to_csv(index=False).encode())
        raise ValueError(f"{path}: cannot write a {type(obj).__name__} there (.json, .parquet, .csv)")

    def inputs(self) -> list[Artifact]:
        return inputs_of(self.notebook)

    def outputs(self) -> list[Artifact]:
        return outputs_of(self.notebook)

    def describe(self):
        """This notebook's inputs and outputs as a table (file, role, present, what it holds)."""
        import pandas as pd

        rows = [{"file": a.path, "role": "reads" + (" (optional)" if a.optional else ""),
                 "from": ", ".join(a.writers), "present": (self.dir / a.path.rstrip("/")).exists(),
                 "holds": a.doc} for a in self.inputs() if self.notebook not in a.writers]
        rows += [{"file": a.path, "role": "writes", "from": self.notebook,
                  "present": (self.dir / a.path.rstrip("/")).exists(), "holds": a.doc}
                 for a in self.outputs()]
        return pd.DataFrame(rows)

    # ---- what every notebook derives from params -------------------------------------------

    @cached_property
    def accelerators(self) -> list[Accelerator]:
        return load_accelerators(self.params["accelerators"])

    @property
    def target(self) -> str:
        return self.params["target_accelerator"]

    def space(self) -> SearchSpace:
        """The search space: notebook 01's ``space.json`` when it is there (and this notebook reads
        it), else built from params and the accelerators' exclusions."""
        a = ARTIFACTS["space"]
        if self.notebook in a.readers and (self.dir / a.path).exists():
            return SearchSpace.from_json((self.dir / a.path).read_text())
        return SearchSpace.from_params(self.params["search_space"], self.accelerators)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, notebook={NOTEBOOKS[self.notebook]!r}, seed={self.seed})"


def open_run(params_file: str | os.PathLike, run_dir: str | os.PathLike, *, notebook: str,
             seed: int | None = None, overrides: Mapping[str, Any] | None = None) -> Run:
    """Validate the params file (plus dotted ``overrides``) and open ``run_dir`` for ``notebook``.

    Also sets pandas' ``display.max_colwidth`` to None in the calling process (the notebook's
    kernel), so tables in the notebook and in ``report.html`` show every cell in full.

    Raises:
        accelnas.params.ParamsError: invalid params or override.
    """
    params = P.load(params_file)
    if overrides:
        params = P.override(params, overrides)
    import pandas as pd

    # Tables show whole cells (pandas cuts text at 50 characters by default): report.html keeps the
    # notebooks' HTML tables as they were rendered in the kernel, so the cut would stick there.
    pd.set_option("display.max_colwidth", None)
    if notebook in ("03", "04", "05"):  # they train: devices, strategy and precision first
        from accelnas.train.strategy import configure

        configure(params["train"])
    return Run(run_dir, params, notebook=notebook, seed=seed)


def network(text: str, run_dir: str | os.PathLike):
    """The architecture ``accelnas train MODEL`` names: a zoo name, an architecture string, a JSON
    object or file (``{"arch": "<architecture string>"}``), or ``searched`` / ``searched-<LABEL>``
    (``-S``, ``-M``, ``-L``, ...) of the finished run in ``run_dir`` (its ``best_archs.json`` /
    ``scaled.parquet``).

    Raises:
        FileNotFoundError: ``searched`` of a run whose notebooks 03 (04) have not written it.
        ValueError: none of the above.
    """
    from accelnas.search.trials import base_arch
    from accelnas.space import zoo
    from accelnas.space.arch import decode_arch

    text = str(text).strip()
    run_dir = Path(run_dir)
    if text in zoo.names():
        return zoo.get(text)
    if text == "searched" or text.startswith("searched-"):
        best_file = run_dir / BEST_ARCHS_FILE
        if text == "searched":
            if not best_file.is_file():
                raise FileNotFoundError(f"no {best_file}: run the search first (accelnas run PARAMS "
                                        "--only 01,02,03), or name a zoo model or an architecture")
            return base_arch(json.loads(best_file.read_text()))
        label = text[len("searched-"):]
        scaled = run_dir / "scaled.parquet"
        if not scaled.is_file():
            raise FileNotFoundError(f"no {scaled}: run compound scaling first (accelnas run PARAMS "
                                    "--only 04) to train searched-S/-M/-L")
        import pandas as pd

        rows = pd.read_parquet(scaled)
        hit = rows[rows["name"].astype(str).isin([label, text])]
        if hit.empty:
            raise ValueError(f"{scaled} has no variant {label!r}; it has: "
                             f"{', '.join('searched-' + str(n) for n in rows['name'])}")
        return decode_arch(hit.iloc[0]["arch"]).replace(name=text.replace("-", "_"))
    if text.endswith(".json") or text.startswith("{"):
        try:
            obj = json.loads(Path(text).read_text() if text.endswith(".json") else text)
            return decode_arch(obj["arch"] if isinstance(obj, dict) else obj)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"MODEL {text[:80]!r}: not a JSON object with an 'arch' architecture "
                             f"string ({type(e).__name__}: {e})") from None
    try:
        return decode_arch(text)
    except ValueError as e:
        raise ValueError(f"MODEL {text[:80]!r} is not a zoo name ({', '.join(zoo.names())}), "
                         f"searched / searched-S|M|L, a JSON file or an architecture string: {e}") from None
