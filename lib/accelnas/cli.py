"""The ``accelnas`` command line: a thin layer over the library.

Subcommands (each one is a ``_cmd_<name>`` function registered in `SUBCOMMANDS`):

* ``accelnas run PARAMS [--only 01,02] [--set key=value ...] [--overwrite]``: execute the workbook
  notebooks (see `accelnas.runner.run`); a run folder made with other params, a missing dataset or
  a run folder in use by another run is refused before anything runs (exit 2).
* ``accelnas zoo [NAME ...] [--resolution N] [--json]``: the reference models with their
  parameters and MACs (analytic op graph, no TensorFlow).
* ``accelnas latency MODEL [MODEL|LIST.csv ...] --hardware H[,H] --method sim|apm|measure[,...]
  [--out FILE]`` and ``accelnas compat MODEL``: latency estimates (one row per model, hardware and
  method) and Edge TPU compatibility (`accelnas.latency`, `accelnas.latency.compat`).
* ``accelnas report RUN_DIR``: render the executed notebooks into one offline ``report.html``.
* ``accelnas search PARAMS [--controller C] [--set key=value ...]``: run or resume the search
  alone (`accelnas.search.tuner.run_search`; keras-tuner's distributed chief/worker mode via its
  ``KERASTUNER_*`` variables).

* ``accelnas train MODEL --params PARAMS [--epochs N] [--images N] [--resolution N] [--out DIR]
  [--json]``: train one network on the params' dataset with the stage-2 recipe under the params'
  ``train`` strategy and precision, checkpointing every epoch; run again after a kill, it resumes
  (`accelnas.train.fit.train_network`).

Coming: ``export`` (add a ``_add_<name>`` parser function and list it in
`SUBCOMMANDS`). Heavy modules (papermill, TensorFlow) are imported inside the command that needs
them, so ``accelnas --help`` stays fast. User errors print one line on stderr and exit with 2
(bad params, missing file, bad argument) or 1 (a notebook failed); ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from collections.abc import Callable, Sequence

from accelnas.runner import NotebookFailed

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ValueError):
    """A command-line argument the user can fix."""


def _version() -> str:
    from accelnas import __version__

    return __version__


# ---------------------------------------------------------------------------------------------
# run

def parse_set(items: Sequence[str] | None) -> dict:
    """``["search.trials=3", "seed=1"]`` -> ``{"search.trials": 3, "seed": 1}`` (values parsed
    as YAML scalars/lists: ``3`` -> int, ``true`` -> bool, ``[a, b]`` -> list, ``x`` -> str)."""
    import yaml

    out = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="execute notebooks 01..05 for a params file",
                       description="Execute notebooks/01_*.ipynb .. 05_*.ipynb in order with "
                                   "papermill into OUTPUTS/<run_name>/executed/ and write "
                                   "OUTPUTS/<run_name>/manifest.json. Stops at the first "
                                   "failing notebook (the earlier execution of a notebook stays "
                                   "until it succeeds again). Refuses a run folder made with "
                                   "other params (see --overwrite) or in use by another run.")
    p.add_argument("params", metavar="PARAMS", help="params YAML, e.g. params/smoke.yaml")
    p.add_argument("--only", metavar="NB[,NB...]",
                   help="run only these notebooks, by number or name (e.g. 01,02)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a params key (dotted path, YAML value); repeatable")
    p.add_argument("--notebooks", default="notebooks", metavar="DIR",
                   help="folder with the notebooks (default: notebooks)")
    p.add_argument("--outputs", default="outputs", metavar="DIR",
                   help="root of the run folders (default: outputs)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run folder's earlier results (executed notebooks, report, "
                        "every file the notebooks wrote) and start it again, even when they were "
                        "made with other params")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    from accelnas import runner

    run_dir = runner.run(args.params, notebooks_dir=args.notebooks, outputs_root=args.outputs,
                         overrides=parse_set(args.overrides), only=args.only,
                         overwrite=args.overwrite)
    print(f"done: {run_dir}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# search

def _add_search(sub) -> None:
    p = sub.add_parser("search", help="run or resume the architecture search of a params file",
                       description="Run (or resume) the search phase alone (what notebook 03 "
                                   "runs): trials land in OUTPUTS/<run_name>/search/<controller>/ "
                                   "(and <controller>@<accelerator>/ per other target with "
                                   "search.per_accelerator) and OUTPUTS/<run_name>/trials.parquet. Distributed: start the "
                                   "same command with KERASTUNER_TUNER_ID=chief and tuner0, tuner1, "
                                   "... and KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT set.")
    p.add_argument("params", metavar="PARAMS", help="params YAML, e.g. params/default.yaml")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a params key (dotted path, YAML value); repeatable")
    p.add_argument("--controller", choices=("evolution", "policy_gradient", "random"),
                   help="override search.controller")
    p.add_argument("--outputs", default="outputs", metavar="DIR",
                   help="root of the run folders (default: outputs)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete this controller's finished trials and start again")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-trial lines")
    p.set_defaults(func=_cmd_search)


def _cmd_search(args) -> int:
    from accelnas import params as params_mod
    from accelnas.search.tuner import run_searches

    p = params_mod.load(args.params)
    if args.overrides:
        p = params_mod.override(p, parse_set(args.overrides))
    run_dir = Path(args.outputs) / p["run_name"]
    from accelnas.train.strategy import configure

    configure(p["train"], log=lambda line: print(line, file=sys.stderr))
    frame = run_searches(p, run_dir, controller=args.controller, overwrite=args.overwrite,
                         progress=not args.quiet, log=None if args.quiet else print)
    done = int((frame.status == "completed").sum()) if len(frame) else 0
    print(f"done: {run_dir / 'trials.parquet'} ({len(frame)} trials, {done} completed)")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# train

def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one network (zoo name, architecture, searched) with checkpoints",
                       description="Train one network on the params' dataset with the stage-2 recipe "
                                   "(stage2 images, epochs and width; proxy resolution and batch) or the "
                                   "values given, under the params' train.strategy and train.precision. "
                                   "Checkpoints every epoch under OUT/checkpoint/; run the same command "
                                   "again after a kill and it resumes. Writes OUT/model.keras and "
                                   "OUT/result.json. Multi-worker: start it on every machine with "
                                   "--set train.strategy=multi_worker and TF_CONFIG.")
    p.add_argument("model", metavar="MODEL",
                   help="zoo name, architecture string, JSON file, or searched / searched-S|M|L of the run")
    p.add_argument("--params", required=True, metavar="PARAMS", help="params YAML, e.g. params/gpu.yaml")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a params key (dotted path, YAML value); repeatable")
    p.add_argument("--epochs", type=int, help="epochs (default: stage2.epochs)")
    p.add_argument("--images", type=int, help="training images (default: stage2.subset)")
    p.add_argument("--resolution", type=int, help="training pixels (default: proxy.resolution)")
    p.add_argument("--outputs", default="outputs", metavar="DIR",
                   help="root of the run folders (searched models are read from DIR/<run_name>/)")
    p.add_argument("--out", metavar="DIR", help="where the training goes (default: "
                                                "OUTPUTS/<run_name>/train/<MODEL>)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from accelnas import params as params_mod
    from accelnas.run import network

    p = params_mod.load(args.params)
    if args.overrides:
        p = params_mod.override(p, parse_set(args.overrides))
    run_dir = Path(args.outputs) / p["run_name"]
    arch = network(args.model, run_dir)
    out = Path(args.out) if args.out else run_dir / "train" / "".join(
        c if c.isalnum() or c in "-_." else "_" for c in arch.name)[:80]
    from accelnas.train.fit import budget_for, train_network
    from accelnas.train.strategy import configure

    budget_for(p, epochs=args.epochs, images=args.images, resolution=args.resolution)  # checked first
    configure(p["train"], log=lambda line: print(line, file=sys.stderr))
    log = None if args.json else print
    result = train_network(arch, p, out, epochs=args.epochs, images=args.images,
                           resolution=args.resolution, log=log, verbose=0 if args.json else 2)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(f"done: {out / 'result.json'}: test accuracy {result['test_accuracy']:.4f}, "
              f"{result['epochs_done']} epochs (resumed from {result['resumed_from']}), "
              f"{result['images_per_s']:.0f} images/s on {result['replicas']} replica(s)")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# zoo

def _add_zoo(sub) -> None:
    p = sub.add_parser("zoo", help="list the reference models with parameters and MACs",
                       description="Reference models (architectures as data) with their "
                                   "parameter counts and MACs from the analytic op graph.")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these models (default: all)")
    p.add_argument("--resolution", type=int, metavar="N",
                   help="input resolution (default: each model's own)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_zoo)


def zoo_table(names: Sequence[str] | None = None, resolution: int | None = None) -> list[dict]:
    """One row per zoo model: name, resolution, params, macs, weight_bytes, blocks."""
    from accelnas.space import graph, zoo

    rows = []
    for name in names or zoo.names():
        arch = zoo.get(name, resolution=resolution)
        g = graph.from_arch(arch)
        rows.append({"name": name, "resolution": arch.resolution, "params": g.params,
                     "macs": g.macs, "weight_bytes": g.weight_bytes})
    return rows


def _cmd_zoo(args) -> int:
    if args.resolution is not None and args.resolution <= 0:
        raise UsageError(f"--resolution must be a positive integer, got {args.resolution}")
    rows = zoo_table(args.names, args.resolution)
    if args.json:
        print(json.dumps({"models": rows}))
        return EXIT_OK
    width = max(len("model"), *(len(r["name"]) for r in rows))
    print(f"{'model':<{width}}  {'res':>4}  {'params (M)':>10}  {'MACs (M)':>9}  {'int8 (MB)':>9}")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['resolution']:>4}  {r['params'] / 1e6:>10.2f}  "
              f"{r['macs'] / 1e6:>9.1f}  {r['weight_bytes'] / 1e6:>9.2f}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# latency, compat

def _add_latency(sub) -> None:
    p = sub.add_parser("latency", help="estimate models' latency on accelerators",
                       description="MODEL: a zoo name, keras:<ApplicationName> (weights=None, 1000 "
                                   "classes), nb201:<NAS-Bench-201 cell string> (or the cell "
                                   "string alone), a .keras / .tflite file, or a .csv file with a "
                                   "'model' column (or 'arch': cell strings), an optional "
                                   "'resolution' column and any other columns, carried through. "
                                   "Several models, accelerators or methods give one row per "
                                   "(model, hardware, method): a table, --json or --out FILE. A "
                                   "model that fails gets an 'error' and the command exits 2 "
                                   "after writing every row.")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--hardware", action="append", metavar="NAME|PATH",
                   help="accelerator: coral, pixel4 or a YAML path (default coral); several "
                        "comma-separated or repeated")
    p.add_argument("--method", action="append", metavar="METHOD",
                   help="sim, apm or measure (default sim); several comma-separated or repeated. "
                        "measure times int8 TFLite on the host once per model, whatever --hardware")
    p.add_argument("--resolution", type=int, metavar="N",
                   help="input pixels (default: the model's; a CSV 'resolution' cell wins)")
    p.add_argument("--threads", type=int, default=1, help="host CPU threads for --method measure")
    p.add_argument("--ops", action="store_true",
                   help="also print the per-op breakdown (sim; one model only)")
    p.add_argument("--json", action="store_true",
                   help="print JSON: one object for one model, else a list of rows")
    p.add_argument("--out", metavar="FILE.csv|FILE.json", help="write the rows to this file")
    p.set_defaults(func=_cmd_latency)


#: Columns of `accelnas latency` rows, in order; a CSV's other columns follow, then ``error``.
LATENCY_COLUMNS = ("model", "hardware", "method", "resolution", "latency_ms", "macs", "params",
                   "partition_reason")


def _split_list(values: Sequence[str] | None, default: str) -> list[str]:
    """``["coral,pixel4", "coral"]`` -> ``["coral", "pixel4"]`` (repeated and comma-separated
    values, in order, without duplicates); ``[default]`` when none given."""
    items = [v.strip() for value in values or (default,) for v in value.split(",") if v.strip()]
    return list(dict.fromkeys(items)) or [default]


def _model_ref(text: str) -> str:
    """A model reference as `accelnas.latency.resolve` takes it: a bare NAS-Bench-201 cell string
    (``|nor_conv_3x3~0|+|...|``) gets its ``nb201:`` prefix; anything else is kept."""
    from accelnas.space.nb201 import PREFIX

    text = text.strip()
    return PREFIX + text if text.startswith("|") and "~" in text else text


#: Why the APM gives no latency: it scores models that run whole on the accelerator.
APM_NOT_DEPLOYABLE = ("not deployable whole on {hw} (an op it cannot run sends the rest to the CPU); "
                      "use --method sim to see where it partitions and what that costs")

#: Input resolutions the latency commands accept: the range a params file allows (``search_space.resolution``).
MIN_RESOLUTION, MAX_RESOLUTION = 8, 2048


def _positive_resolution(value, where: str) -> int | None:
    """``value`` (int, text or empty) as a positive resolution, or None when empty."""
    if value is None or str(value).strip() == "":
        return None
    try:
        res = int(str(value).strip())
    except ValueError:
        res = 0
    if not MIN_RESOLUTION <= res <= MAX_RESOLUTION:
        raise UsageError(f"{where}: resolution must be an integer from {MIN_RESOLUTION} to {MAX_RESOLUTION} "
                         f"pixels (as in a params file), got {value!r}")
    return res


def read_model_csv(path: str | Path) -> list[dict]:
    """The models of a CSV file: one dict per row with ``model`` (the reference; an ``arch`` column
    holds NAS-Bench-201 cell strings, prefixed ``nb201:``), ``resolution`` (int or None) and
    ``extra`` (the row's other cells, as text, unchanged)."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model list {path} does not exist: give a .csv file with a 'model' column "
                         "(or 'arch' with NAS-Bench-201 cell strings)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        key = "model" if "model" in columns else "arch" if "arch" in columns else None
        if key is None:
            raise UsageError(f"{path} has no 'model' or 'arch' column (columns: "
                             f"{', '.join(columns) or 'none'}); add one: 'model' for any model "
                             "reference, 'arch' for NAS-Bench-201 cell strings")
        out = []
        for line, row in enumerate(reader, start=2):
            ref = (row.get(key) or "").strip()
            if not ref:
                raise UsageError(f"{path} line {line}: empty '{key}' cell")
            if key == "arch" and not ref.startswith("nb201:"):
                ref = "nb201:" + ref
            out.append({"model": _model_ref(ref),
                        "resolution": _positive_resolution(row.get("resolution"), f"{path} line {line}"),
                        "extra": {k: v for k, v in row.items()
                                  if k not in (key, "resolution") and k is not None}})
    return out


def _latency_jobs(models: Sequence[str], resolution: int | None) -> list[dict]:
    """The MODEL arguments as `read_model_csv` rows: a .csv argument gives its rows, anything else
    one row at ``resolution``."""
    jobs = []
    for text in models:
        if Path(text).suffix.lower() == ".csv":
            jobs += [{**job, "resolution": job["resolution"] or resolution}
                     for job in read_model_csv(text)]
        else:
            jobs.append({"model": _model_ref(text), "resolution": resolution, "extra": {}})
    return jobs


def _one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _latency_row(report, model: str) -> dict:
    """A `LatencyReport` as a row of `LATENCY_COLUMNS`. An APM ``inf`` (the graph does not run
    whole on the accelerator) becomes an empty latency and a partition reason."""
    import math

    row = {k: getattr(report, k) for k in LATENCY_COLUMNS}
    row["model"] = model
    if report.method == "apm" and math.isinf(report.latency_ms):
        row["latency_ms"] = None
        row["partition_reason"] = APM_NOT_DEPLOYABLE.format(hw=report.hardware)
    return row


def _with_extra(row: dict, extra: dict, error: str) -> dict:
    """``row`` followed by a CSV row's other cells (a cell named like a result column is dropped:
    the result wins) and ``error``."""
    return {**row, **{k: v for k, v in extra.items() if k not in row and k != "error"},
            "error": error}


def latency_rows(jobs: Sequence[dict], accelerators: Sequence, methods: Sequence[str], *,
                 threads: int = 1, debug: bool = False) -> list[dict]:
    """One row per (job, accelerator, method) (``measure``: one per job, timed on the host CPU).
    Each model is resolved once; a model or estimate that fails gives rows with an ``error``
    message instead of stopping the others (``debug``: raises it). Every row has ``error``
    ("" when none)."""
    from accelnas.latency import estimate, resolve

    rows = []
    for job in jobs:
        failure = ""
        try:
            _, obj = resolve(job["model"], job["resolution"])
        except Exception as e:  # one bad model does not lose the others
            if debug:
                raise
            failure = _one_line(e)
        for i, acc in enumerate(accelerators):
            for method in methods:
                if method == "measure" and i > 0:
                    continue
                row = {**dict.fromkeys(LATENCY_COLUMNS), "model": job["model"],
                       "hardware": "host-cpu" if method == "measure" else acc.name,
                       "method": method, "resolution": job["resolution"], "partition_reason": ""}
                error = failure
                if not failure:
                    try:
                        row = _latency_row(estimate(obj, acc, method, threads=threads), job["model"])
                    except Exception as e:
                        if debug:
                            raise
                        error = _one_line(e)
                rows.append(_with_extra(row, job["extra"], error))
    return rows


def _cell(value) -> str:
    """A row value as table text: floats to 3 decimals, None as empty."""
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _print_table(rows: Sequence[dict]) -> None:
    """Rows as an aligned text table, numbers right-aligned (the ``error`` column only when a row
    has one)."""
    columns = [c for c in dict.fromkeys(k for r in rows for k in r)
               if c != "error" or any(r["error"] for r in rows)]
    numeric = [all(isinstance(r.get(c), (int, float, type(None))) for r in rows) for c in columns]
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    for line in [columns, *cells]:
        print("  ".join(v.rjust(w) if num else v.ljust(w)
                        for v, w, num in zip(line, widths, numeric)).rstrip())


def write_rows(path: str | Path, rows: Sequence[dict]) -> Path:
    """Write rows atomically as CSV (empty cells for None) or JSON (a list), by ``path``'s suffix."""
    import csv
    import io

    from accelnas.io import atomic_write_bytes, write_json

    path = Path(path)
    if path.suffix.lower() == ".json":
        return write_json(path, list(rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_bytes(path, buf.getvalue().encode())


def _print_report(r, with_ops: bool) -> None:
    """One `LatencyReport` in full (the single-model output)."""
    if r.method == "apm" and r.latency_ms == float("inf"):
        print(f"{r.model} on {r.hardware} (apm, {r.resolution} px): no latency: {APM_NOT_DEPLOYABLE.format(hw=r.hardware)}")
        return
    print(f"{r.model} on {r.hardware} ({r.method}, {r.resolution} px): {r.latency_ms:.2f} ms")
    if r.macs is not None:
        print(f"  MACs {r.macs / 1e6:.1f} M, params {r.params / 1e6:.2f} M")
    if r.param_bytes_streamed is not None:
        print(f"  parameters on chip {r.param_bytes_on_chip / 1e6:.2f} MB, streamed "
              f"{r.param_bytes_streamed / 1e6:.2f} MB per inference")
    if r.partition_index is not None:
        print(f"  CPU fallback from op {r.partition_index}: {r.partition_reason}")
    for k, v in r.breakdown_ms.items():
        print(f"  {k:<10} {v:8.3f} ms")
    if r.note:
        print(f"  note: {r.note}")
    if with_ops:
        for o in r.ops:
            print(f"  {o['name']:<36} {o['kind']:<7} {o['time_ms']:8.4f} ms  {o['bound']}")


def _cmd_latency(args) -> int:
    from accelnas.latency import METHODS, as_accelerator, estimate

    if args.resolution is not None:
        _positive_resolution(args.resolution, "--resolution")
    hardware = _split_list(args.hardware, "coral")
    methods = _split_list(args.method, "sim")
    for m in methods:
        if m not in METHODS:
            raise UsageError(f"unknown --method {m!r}; choose from {', '.join(METHODS)}")
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        raise UsageError(f"--out {args.out}: give a .csv or .json file")
    single = (len(args.models) == 1 and Path(args.models[0]).suffix.lower() != ".csv"
              and len(hardware) == len(methods) == 1 and not args.out)
    if single:
        r = estimate(_model_ref(args.models[0]), hardware[0], methods[0],
                     resolution=args.resolution, threads=args.threads)
        if args.json:
            d = r.to_dict(with_ops=args.ops)
            if d["latency_ms"] == float("inf"):  # JSON has no Infinity: say why there is no figure
                d.update(latency_ms=None, partition_reason=APM_NOT_DEPLOYABLE.format(hw=r.hardware))
            print(json.dumps(d))
        else:
            _print_report(r, args.ops)
        return EXIT_OK
    if args.ops:
        raise UsageError("--ops prints one model's breakdown: give one model, one --hardware, "
                         "one --method and no --out")
    jobs = _latency_jobs(args.models, args.resolution)
    if not jobs:
        raise UsageError(f"no models in {', '.join(args.models)}")
    accelerators = [as_accelerator(h) for h in hardware]
    rows = latency_rows(jobs, accelerators, methods, threads=args.threads, debug=args.debug)
    if args.out:
        print(f"wrote {len(rows)} rows to {write_rows(args.out, rows)}")
    elif args.json:
        print(json.dumps(rows))
    else:
        _print_table(rows)
    failed = sum(1 for r in rows if r["error"])
    if failed:
        raise UsageError(f"{failed} of {len(rows)} rows failed (see their 'error' column)")
    return EXIT_OK


def _add_compat(sub) -> None:
    p = sub.add_parser("compat", help="Edge TPU compatibility of a model (int8 TFLite op by op)",
                       description="Converts MODEL (zoo name, keras:<Application>, .keras or "
                                   ".tflite) to int8 TFLite and reports each op as mapped or not "
                                   "for the Edge TPU, the partition point and the CPU share.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--hardware", default="coral", metavar="NAME|PATH",
                   help="accelerator whose supported_ops apply (default coral)")
    p.add_argument("--resolution", type=int, metavar="N", help="input pixels (default: the model's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_compat)


def _cmd_compat(args) -> int:
    from accelnas.latency.compat import edgetpu_compat
    from accelnas.latency import as_accelerator, int8_tflite, resolve

    acc = as_accelerator(args.hardware)
    label, obj = resolve(args.model, args.resolution)
    tfl, _ = int8_tflite(obj)
    report = edgetpu_compat(tfl, supported_ops=acc.supported_ops)
    if args.json:
        print(json.dumps({"model": label, "hardware": acc.name, **report.summary()}, default=str))
    else:
        print(f"{label} on {acc.name}:")
        print(report)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# report

def _add_report(sub) -> None:
    p = sub.add_parser("report", help="render a run's executed notebooks into one offline HTML page",
                       description="Render RUN_DIR/executed/*.ipynb (code hidden, figures "
                                   "embedded, header from RUN_DIR/manifest.json) into "
                                   "RUN_DIR/report.html, one self-contained page that opens "
                                   "offline. `accelnas run` already does this when it ends.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, e.g. outputs/smoke")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="write here instead of RUN_DIR/report.html")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from accelnas.report.html import render_report

    print(render_report(args.run_dir, output=args.output))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# parser and entry point

#: Parser builders, one per subcommand, in help order. Later: export.
SUBCOMMANDS: tuple[Callable, ...] = (_add_run, _add_search, _add_train, _add_zoo, _add_latency, _add_compat,
                                     _add_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accelnas",
        description="Accelerator-aware neural architecture search workbench.",
        epilog="Run 'accelnas COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _error(message: str) -> None:
    """One ``accelnas: error:`` message on stderr, never cut (continuation lines indented)."""
    text = str(message).strip() or "unknown error"
    print("accelnas: error: " + text.replace("\n", "\n  "), file=sys.stderr)


#: TensorFlow's start-up lines on stderr that say nothing about the user's command (absl's
#: pre-initialisation notice, the oneDNN and CPU-feature notices).
TF_NOISE = ("WARNING: All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
            "cpu_feature_guard.cc", "To enable the following instructions:", "rebuild TensorFlow with")

EXIT_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away


class _QuietTensorFlowImport:
    """A meta-path hook: when a command first imports TensorFlow, its C++ start-up lines on stderr
    (`TF_NOISE`) are dropped and anything else it prints passes through. Commands that never import
    TensorFlow pay nothing."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        real = spec.loader.exec_module

        def exec_module(module):
            with _filtered_stderr(TF_NOISE):
                real(module)
        spec.loader.exec_module = exec_module
        return spec


class _filtered_stderr:
    """Capture file descriptor 2 (C++ writes too) in a temporary file; on exit, replay every line
    that does not contain one of ``noise``."""

    def __init__(self, noise) -> None:
        self.noise = tuple(noise)

    def __enter__(self):
        import os
        import tempfile

        sys.stderr.flush()
        self._tmp = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._tmp.fileno(), 2)
        return self

    def __exit__(self, *exc):
        import os

        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        for line in self._tmp.read().decode(errors="replace").splitlines():
            if line.strip() and not any(n in line for n in self.noise):
                print(line, file=sys.stderr)
        self._tmp.close()
        return False


def _quiet_tensorflow() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def _fail(args, code: int, message: str) -> int:
    """Report a failure: one error message (the traceback first with ``--debug``); the exit code is
    the same with and without ``--debug``."""
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exc()
    _error(message)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``accelnas`` console script; returns the exit code.

    User errors (bad params or argument, missing or damaged file, a missing optional package)
    exit 2 with one message naming the file or value and what to do; a failed notebook exits 1;
    Ctrl-C 130; output to a closed pipe ends quietly (141). ``--debug`` adds the traceback and keeps
    the exit code."""
    _quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NotebookFailed as e:
        return _fail(args, EXIT_FAILED, str(e))
    except BrokenPipeError:
        import os

        try:  # the reader is gone: nothing more can be written, and nothing is worth saying
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_PIPE
    except ImportError as e:  # an optional package (e.g. tensorflow_datasets for tfds: datasets)
        msg = str(e)
        if isinstance(e, ModuleNotFoundError) and msg.startswith("No module named"):
            msg += f": install it (pip install {e.name}) or choose an option that does not need it"
        return _fail(args, EXIT_USAGE, msg)
    except (ValueError, OSError) as e:  # ParamsError, UsageError, missing / unreadable / damaged files
        return _fail(args, EXIT_USAGE, str(e) if not isinstance(e, OSError) or not e.filename
                     else f"{e.filename}: {e.strerror or e}")
    except KeyboardInterrupt:
        return _fail(args, EXIT_INTERRUPTED, "interrupted")
    except Exception as e:  # not a user error: one line, the traceback with --debug
        hint = "" if args.debug else " (run again with --debug for the traceback)"
        return _fail(args, EXIT_FAILED, f"{type(e).__name__}: {e}{hint}")


if __name__ == "__main__":  # python -m accelnas.cli
    sys.exit(main())
