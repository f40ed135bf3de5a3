"""The final comparison of notebook 05: searched and scaled models against the baselines.

Every model is the deployed architecture (search resolution and classes); accuracy comes from
proxy trainings over several seeds (`accelnas.train.cache`), latency from the latency models per
accelerator (and, for the host CPU, from int8 TFLite measurement), deployability from the op graph
(first op an accelerator cannot map) and, for exported models, from the int8 TFLite file
(`accelnas.latency.compat`).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from accelnas.space.arch import ArchSpec, decode_arch

MODEL_KINDS = ("searched", "scaled", "baseline")


def report_models(searched: ArchSpec, scaled: pd.DataFrame | None, baselines: Sequence[str], *,
                  resolution: int, num_classes: int) -> list[tuple[str, str, ArchSpec]]:
    """``(name, kind, arch)`` of the searched model, its scaled variants (rows of
    ``scaled.parquet`` with ``name`` and ``arch``; None when notebook 04 did not run) and the
    baselines, without repeating an architecture (a variant equal to the searched model, e.g. -S at
    phi = 0, is listed once)."""
    from accelnas.space import zoo

    out: list[tuple[str, str, ArchSpec]] = []
    seen: set[str] = set()

    def add(name, kind, arch):
        key = arch.replace(name="x").encode()
        if key not in seen:
            seen.add(key)
            out.append((name, kind, arch.replace(name=name)))

    add("searched", "searched", searched)
    for r in (scaled.itertuples() if scaled is not None else ()):
        add(r.name, "scaled", decode_arch(r.arch))
    for b in baselines:
        add(b, "baseline", zoo.get(b, resolution=resolution, num_classes=num_classes))
    return out


def latency_frame(models: Iterable[tuple[str, str, ArchSpec]], accelerators: Mapping, method: str = "sim"
                  ) -> pd.DataFrame:
    """Per model: MACs, params, ``latency_ms_<acc>``, ``deployable_<acc>`` (every op mapped) and
    ``cpu_from_<acc>`` (the first op left to the CPU) per accelerator, with ``method``."""
    from accelnas.space.graph import from_arch
    from accelnas.latency import estimate

    rows = []
    for name, kind, arch in models:
        g = from_arch(arch)
        row = {"name": name, "kind": kind, "macs": g.macs, "params": g.deployed_params,
               "weight_bytes": g.weight_bytes}
        for acc_name, acc in accelerators.items():
            r = estimate(arch, acc, method)
            row[f"latency_ms_{acc_name}"] = float(r.latency_ms)
            part = getattr(r, "partition_index", None)
            row[f"deployable_{acc_name}"] = part is None
            row[f"cpu_from_{acc_name}"] = (r.partition_reason or g.ops[part].name) if part is not None else ""
        rows.append(row)
    return pd.DataFrame(rows)


def host_latency(models: Iterable[tuple[str, str, ArchSpec]], *, threads: int = 1, runs: int = 20,
                 log=print) -> pd.DataFrame:
    """Per model: the int8 TFLite latency on this machine's CPU (``latency_ms_host``, median of
    ``runs`` after warm-up) and the error when conversion or timing failed."""
    from accelnas.latency import estimate

    rows = []
    for name, _kind, arch in models:
        try:
            r = estimate(arch, method="measure", threads=threads, runs=runs)
            rows.append({"name": name, "latency_ms_host": float(r.latency_ms), "host_error": None})
        except Exception as e:  # noqa: BLE001 - one model failing must not lose the others
            rows.append({"name": name, "latency_ms_host": np.nan, "host_error": f"{type(e).__name__}: {e}"[:300]})
        if log is not None:
            r0 = rows[-1]
            log(f"{name}: host int8 " + (f"{r0['latency_ms_host']:.1f} ms" if r0["host_error"] is None
                                        else f"failed ({r0['host_error']})"))
    return pd.DataFrame(rows)


def dominance(table: pd.DataFrame, subjects: Sequence[str], references: Sequence[str],
              latency_col: str, acc: str = "accuracy") -> pd.DataFrame:
    """Does each subject dominate each reference on (accuracy, ``latency_col``), beyond the
    accuracy spread?

    ``table`` has one row per model with ``name``, ``<acc>_mean``, ``<acc>_std`` and the latency
    column. The spread is the larger of the two models' seed standard deviations; latency comes
    from a deterministic model (or a median of many runs) and has none. An accuracy difference
    counts only beyond the spread, a latency difference counts when it is not zero. Verdicts:

    * ``dominates``: more accurate beyond the spread **and** faster ("higher proxy accuracy at
      lower latency", `accelnas.report.pareto.dominates` with ``require_all``); ``dominated``: the reverse;
    * ``trade-off``: more accurate beyond the spread but slower, or less accurate but faster;
    * ``faster, accuracy within spread`` / ``slower, accuracy within spread``: the accuracies cannot
      be told apart by this run;
    * ``more accurate, same latency`` / ``less accurate, same latency``; ``within spread``: neither
      axis differs.
    """
    t = table.set_index("name")
    rows = []
    for s in subjects:
        for r in references:
            if s not in t.index or r not in t.index:
                continue
            a, b = t.loc[s], t.loc[r]
            spread = float(np.nanmax([a[f"{acc}_std"], b[f"{acc}_std"], 0.0]))
            d_acc = a[f"{acc}_mean"] - b[f"{acc}_mean"]
            d_lat = b[latency_col] - a[latency_col]          # > 0: the subject is faster
            acc_sign = int(d_acc > spread) - int(d_acc < -spread)
            lat_sign = int(d_lat > 0) - int(d_lat < 0)
            if acc_sign and acc_sign == lat_sign:
                verdict = "dominates" if acc_sign > 0 else "dominated"
            elif acc_sign and lat_sign:
                verdict = "trade-off"
            elif lat_sign:
                verdict = ("faster" if lat_sign > 0 else "slower") + ", accuracy within spread"
            elif acc_sign:
                verdict = ("more" if acc_sign > 0 else "less") + " accurate, same latency"
            else:
                verdict = "within spread"
            rows.append({"model": s, "reference": r, "accuracy": a[f"{acc}_mean"],
                         "reference_accuracy": b[f"{acc}_mean"], "spread": spread,
                         "latency_ms": a[latency_col], "reference_latency_ms": b[latency_col],
                         "latency_ratio": a[latency_col] / b[latency_col] if b[latency_col] else np.nan,
                         "verdict": verdict})
    return pd.DataFrame(rows)


def export_trained(trained: pd.DataFrame, run_dir: str | os.PathLike, out_dir: str | os.PathLike, data,
                   accelerators: Mapping | None = None, *, calib_images: int = 256,
                   test_images: int = 2000, log=print) -> pd.DataFrame:
    """Export the trained models of ``trained`` (rows of `accelnas.train.cache.train_models`
    with a ``weights`` file: the proxy network with its stage-2 weights) to full-integer int8
    TFLite under ``out_dir/<name>.tflite``, calibrated on ``calib_images`` real training images
    of ``data`` at the model's proxy resolution, with its Edge TPU compatibility report and its
    int8 top-1 accuracy on ``test_images`` test images (a seeded sample) next to the float one of
    the same images (the trained Keras model) — what quantization costs."""
    from accelnas.latency.compat import edgetpu_compat
    from accelnas.latency.measure import int8_accuracy
    from accelnas.latency.tflite import load_model, to_int8_tflite
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in trained.to_dict("records"):
        w = r.get("weights")
        if not isinstance(w, str) or r.get("status") != "completed":
            continue
        name, res = r["name"], int(r["proxy_resolution"])
        row = {"name": name, "kind": r.get("kind"), "seed": r.get("seed"), "resolution": res}
        try:
            model = load_model(Path(run_dir) / w)
            calib = next(iter(data.pipeline("train", batch_size=calib_images, resolution=res,
                                            training=False, cache=False)))[0]
            path = out / f"{name}.tflite"
            blob = to_int8_tflite(model, np.asarray(calib, np.float32), path)
            x, y = [], []  # a seeded sample: the test split may be ordered by class
            for xb, yb in data.pipeline("test", batch_size=256, resolution=res, training=False, seed=0,
                                        cache=False, images=min(test_images, data.size("test"))):
                x.append(np.asarray(xb, np.float32)); y.append(np.asarray(yb))
            x, y = np.concatenate(x), np.concatenate(y)
            float_acc = float((model.predict(x, verbose=0, batch_size=256).argmax(1) == y).mean())
            rep = edgetpu_compat(blob)
            row.update(tflite=str(path), tflite_bytes=len(blob), test_images=len(y),
                       float_accuracy=float_acc, int8_accuracy=int8_accuracy(blob, x, y),
                       fully_mapped=rep.fully_mapped,
                       partition_op=(rep.partition_op.name if rep.partition_op else ""))
            row["int8_drop"] = row["float_accuracy"] - row["int8_accuracy"]
            (out / f"{name}.compat.txt").write_text(str(rep) + "\n")
            for acc_name, acc in (accelerators or {}).items():
                row[f"fully_mapped_{acc_name}"] = edgetpu_compat(blob, supported_ops=acc.supported_ops).fully_mapped
        except Exception as e:  # noqa: BLE001 - reported per model, the others still export
            row.update(error=f"{type(e).__name__}: {e}"[:300])
        rows.append(row)
        if log is not None:
            log(f"{name}: " + (f"{row['tflite_bytes'] / 1e6:.2f} MB int8, accuracy float {row['float_accuracy']:.3f} "
                               f"int8 {row['int8_accuracy']:.3f} on {row['test_images']} test images"
                               if "error" not in row else f"export failed ({row['error']})"))
    return pd.DataFrame(rows)


__all__ = ["MODEL_KINDS", "report_models", "latency_frame", "host_latency", "dominance",
           "export_trained"]


def block_utilisation(models: Iterable[tuple[str, ArchSpec]], accelerators: Mapping) -> pd.DataFrame:
    """Per accelerator and block type (stem, conv, ds, ibn, fused, bottleneck, head), summed over
    ``models``: simulated time, MACs and the resulting MAC utilisation (MACs / (time x peak
    MACs/s)), from the simulator's per-op breakdown. Ops are attributed to the block type of their
    stage (op names ``stage<i>_...``)."""
    from accelnas.space.graph import from_arch
    from accelnas.latency import as_accelerator, estimate

    rows = []
    for name, arch in models:
        g = from_arch(arch)
        macs = {o.name: o.macs for o in g.ops}
        for acc_name, acc in accelerators.items():
            acc = as_accelerator(acc)
            peak = acc.clock_mhz * 1e6 * acc.tiles * acc.macs_per_cycle_per_tile
            for op in estimate(arch, acc, "sim").ops or []:
                n = op["name"]
                if n.startswith("stage"):
                    i = int(n[5:].split("_")[0])
                    block = arch.blocks[i - 1].type
                else:
                    block = "stem" if n.startswith("stem") else "head"
                rows.append({"accelerator": acc_name, "model": name, "block": block,
                             "time_ms": op["time_ms"], "macs": macs.get(n, 0), "peak_macs_per_s": peak})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    out = df.groupby(["accelerator", "block"]).agg(time_ms=("time_ms", "sum"), macs=("macs", "sum"),
                                                   peak=("peak_macs_per_s", "first")).reset_index()
    out["utilisation"] = out.macs / (out.time_ms / 1e3 * out.peak)
    out["gmacs_per_ms"] = out.macs / out.time_ms / 1e9
    return out.drop(columns="peak")


KEY_REFERENCES = ("mobilenet_v3_large", "resnet50")
"""The baselines the workbook's target names: the searched model should dominate them beyond the
seed spread on the target accelerator (Gupta & Akin 2020 compare with MobileNetV3 and ResNet50)."""


def target_verdict(dom: pd.DataFrame, target: str, subject: str = "searched",
                   references: Sequence[str] = KEY_REFERENCES) -> tuple[pd.DataFrame, bool]:
    """The `dominance` rows of ``subject`` against ``references`` on ``target``, and whether it
    dominates every one of them (False when one is missing)."""
    rows = dom[(dom.on == target) & (dom.model == subject) & dom.reference.isin(references)]
    met = len(rows) == len(set(references)) and bool((rows.verdict == "dominates").all())
    return rows.reset_index(drop=True), met


def estimator_agreement(trials: pd.DataFrame, params: Mapping, accelerators: Mapping, target: str,
                        top: int = 5) -> dict | None:
    """How much the search's latency estimator (``latency.method``) and the simulator disagree on
    the completed trials: median and max relative error on ``target``, and how many of the ``top``
    architectures by reward stay in the top when the latencies come from the simulator.

    Returns:
        {"n", "method", "median_abs_error", "max_abs_error", "top_overlap", "top"}, or None when
        no trial completed.
    """
    from accelnas.search.trials import best_archs, rescore

    done = trials[trials.status == "completed"] if len(trials) else trials
    col = f"latency_ms_{target}"
    if not len(done) or col not in done:
        return None
    sim = latency_frame([(f"t{i}", "trial", decode_arch(a)) for i, a in enumerate(done.arch)],
                        {target: accelerators[target]}, method="sim")[col].to_numpy()
    err = np.abs(done[col].to_numpy() / sim - 1)
    top_search = set(best_archs(done, top).arch)
    resc = rescore(done.assign(**{col: sim}), params)
    top_sim = set(resc.sort_values(f"reward_{target}", ascending=False).head(top).arch)
    return {"n": int(len(done)), "method": params["latency"]["method"],
            "median_abs_error": float(np.median(err)), "max_abs_error": float(np.max(err)),
            "top_overlap": len(top_search & top_sim), "top": int(min(top, len(done)))}


def estimator_errors(validation: pd.DataFrame | None, models: Mapping[str, Mapping]) -> pd.DataFrame:
    """Per accelerator, the estimator errors notebook 02 measured: on the published rows of
    ``latency_validation.csv`` (``validation``; median and max |error| of the simulator and the
    APM) and, from its ``latency_models/apm_<acc>.json`` records (``models``), the error of the
    APM fitted there against the simulator on held-out architectures. Empty when neither exists."""
    rows: dict[str, dict] = {}
    if validation is not None and len(validation):
        for hw, g in validation.groupby("hardware"):
            row = rows.setdefault(hw, {"accelerator": hw})
            row["published_rows"] = int(len(g))
            for m in ("sim", "apm"):
                e = g[f"{m}_error"].abs()
                row[f"{m}_median_abs_error"], row[f"{m}_max_abs_error"] = float(e.median()), float(e.max())
    for rec in models.values():
        ev = (rec.get("fit") or {}).get("eval_fitted") or {}
        row = rows.setdefault(rec["accelerator"], {"accelerator": rec["accelerator"]})
        row["apm_fitted_vs_sim_mape"] = ev.get("mape")
        row["apm_fitted_vs_sim_kendall_tau"] = ev.get("kendall_tau")
    return pd.DataFrame(list(rows.values()))
