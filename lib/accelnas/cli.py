"""The ``accelnas`` command line: a thin layer over the library.

Subcommands (each one is a ``_cmd_<name>`` function registered in `SUBCOMMANDS`):

* ``accelnas run PARAMS [--only 01,02] [--set key=value ...]``: execute the workbook notebooks
  (see `accelnas.runner.run`).
* ``accelnas zoo [NAME ...] [--resolution N] [--json]``: the reference models with their
  parameters and MACs (analytic op graph, no TensorFlow).
* ``accelnas latency MODEL --hardware H --method sim|apm|measure`` and ``accelnas compat MODEL``:
  latency estimates and Edge TPU compatibility (`accelnas.latency`, `accelnas.latency.compat`).
* ``accelnas report RUN_DIR``: render the executed notebooks into one offline ``report.html``.
* ``accelnas search PARAMS [--controller C] [--set key=value ...]``: run or resume the search
  alone (`accelnas.search.tuner.run_search`; keras-tuner's distributed chief/worker mode via its
  ``KERASTUNER_*`` variables).

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
                                   "failing notebook.")
    p.add_argument("params", metavar="PARAMS", help="params YAML, e.g. params/smoke.yaml")
    p.add_argument("--only", metavar="NB[,NB...]",
                   help="run only these notebooks, by number or name (e.g. 01,02)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a params key (dotted path, YAML value); repeatable")
    p.add_argument("--notebooks", default="notebooks", metavar="DIR",
                   help="folder with the notebooks (default: notebooks)")
    p.add_argument("--outputs", default="outputs", metavar="DIR",
                   help="root of the run folders (default: outputs)")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    from accelnas import runner

    run_dir = runner.run(args.params, notebooks_dir=args.notebooks, outputs_root=args.outputs,
                         overrides=parse_set(args.overrides), only=args.only)
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
    frame = run_searches(p, run_dir, controller=args.controller, overwrite=args.overwrite,
                         progress=not args.quiet, log=None if args.quiet else print)
    done = int((frame.status == "completed").sum()) if len(frame) else 0
    print(f"done: {run_dir / 'trials.parquet'} ({len(frame)} trials, {done} completed)")
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
    p = sub.add_parser("latency", help="estimate a model's latency on an accelerator",
                       description="MODEL: a zoo name, keras:<ApplicationName> (weights=None, 1000 "
                                   "classes) or a .keras / .tflite file.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--hardware", default="coral", metavar="NAME|PATH",
                   help="accelerator: coral, pixel4 or a YAML path (default coral)")
    p.add_argument("--method", default="sim", choices=("sim", "apm", "measure"))
    p.add_argument("--resolution", type=int, metavar="N", help="input pixels (default: the model's)")
    p.add_argument("--threads", type=int, default=1, help="host CPU threads for --method measure")
    p.add_argument("--ops", action="store_true", help="also print the per-op breakdown (sim)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_latency)


def _cmd_latency(args) -> int:
    from accelnas.latency import estimate

    if args.resolution is not None and args.resolution <= 0:
        raise UsageError(f"--resolution must be a positive integer, got {args.resolution}")
    r = estimate(args.model, args.hardware, args.method, resolution=args.resolution,
                 threads=args.threads)
    if args.json:
        print(json.dumps(r.to_dict(with_ops=args.ops)))
        return EXIT_OK
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
    if args.ops:
        for o in r.ops:
            print(f"  {o['name']:<36} {o['kind']:<7} {o['time_ms']:8.4f} ms  {o['bound']}")
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
SUBCOMMANDS: tuple[Callable, ...] = (_add_run, _add_search, _add_zoo, _add_latency, _add_compat,
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
    print(f"accelnas: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``accelnas`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NotebookFailed as e:
        if args.debug:
            raise
        _error(str(e))
        return EXIT_FAILED
    except (ValueError, FileNotFoundError) as e:  # includes accelnas.params.ParamsError
        if args.debug:
            raise
        _error(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # python -m accelnas.cli
    sys.exit(main())
