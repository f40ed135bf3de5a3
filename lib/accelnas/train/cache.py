"""Proxy trainings of named models, cached on disk (stage 2: notebooks 03, 04 and 05).

`train_models` trains each (model, seed) pair under one budget (`accelnas.train.proxy_train.train_proxy`,
the stride rule of `accelnas.train.proxy`: finalists, scaled and baseline models alike; stage 2 uses
`stage2_budget`) and appends each result to ``run_dir/trained.parquet`` as soon as it finishes; the
trained models of the kinds in ``keep`` are saved under ``run_dir/weights/<key>.keras`` (int8 export
with their trained weights). A pair already there with the same
architecture, proxy settings, dataset and seed is not trained again, so an interrupted notebook
resumes where it stopped, and notebook 05 reuses the scaled variants notebook 04 trained. A
training that fails (diverges, cannot be built, runs out of memory) gets a row with its reason
and is tried again on the next run.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pandas as pd

from accelnas.space.arch import ArchSpec
from accelnas.io import write_parquet

CACHE_FILE = "trained.parquet"
WEIGHTS_DIR = "weights"
_PROXY_KEYS = ("subset", "val_images", "epochs", "resolution", "batch_size", "width_mult")
STAGE2_KEYS = ("subset", "epochs", "width_mult")


def stage2_budget(params: Mapping) -> dict:
    """The budget of every stage-2 training: the ``proxy`` section with ``stage2``'s training
    images, epochs and width (same resolution, batch size and validation images)."""
    return {**{k: params["proxy"][k] for k in _PROXY_KEYS if k in params["proxy"]},
            **{k: params["stage2"][k] for k in STAGE2_KEYS}}


def training_key(arch: ArchSpec, proxy: Mapping, dataset: str, seed: int) -> str:
    """Identity of one proxy training: architecture (not its name), proxy budget, dataset, seed."""
    blob = json.dumps({"arch": arch.replace(name="model").encode(),  # the name is not the model
                       "proxy": {k: proxy[k] for k in _PROXY_KEYS if k in proxy},
                       "dataset": dataset, "seed": int(seed)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def proxy_for(arch: ArchSpec, proxy: Mapping, base_resolution: int | None) -> dict:
    """The proxy budget of ``arch``: ``proxy`` with its resolution scaled like the model's.

    A model deployed at ``arch.resolution`` trains at ``proxy.resolution * arch.resolution /
    base_resolution`` pixels, rounded to a multiple of 4 (at least 8), so compound scaling's
    resolution knob reaches the proxy task too (224 -> 32, 240 -> 36, 300 -> 44 with a 32 px proxy
    of a 224 px search). ``base_resolution`` None: every model trains at ``proxy.resolution``.
    """
    out = {k: proxy[k] for k in _PROXY_KEYS if k in proxy}
    if base_resolution:
        out["resolution"] = max(8, int(round(proxy["resolution"] * arch.resolution / base_resolution / 4)) * 4)
    return out


def load_cache(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The trainings recorded under ``run_dir`` (empty frame when none)."""
    f = Path(run_dir) / CACHE_FILE
    return pd.read_parquet(f) if f.exists() else pd.DataFrame(columns=["key", "status"])


def train_models(models: Iterable[tuple[str, str, ArchSpec]], data, proxy: Mapping, seeds: Iterable[int],
                 *, run_dir: str | os.PathLike, dataset: str, test: bool = True, progress: bool = True,
                 log: Callable[[str], None] | None = print, train_fn=None,
                 base_resolution: int | None = None, keep: Iterable[str] = ()) -> pd.DataFrame:
    """Train every ``(name, kind, arch)`` of ``models`` with every seed, reusing cached results.

    Args:
        models: ``(name, kind, arch)``: a display name, a group (e.g. ``searched``, ``scaled``,
            ``baseline``) and the deployed architecture (ImageNet-style; the proxy rule adapts it).
        data: the loaded `accelnas.train.data.Dataset`, or a callable returning it (called only when
            something must be trained).
        proxy: the ``proxy`` params section.
        seeds: training seeds.
        run_dir: where ``trained.parquet`` lives.
        dataset: the params' ``dataset`` (part of the cache key).
        test: also evaluate the test split (final reports).
        progress: tqdm bar over the pairs to train.
        log: one line per finished training (None: quiet).
        train_fn: replaces `accelnas.train.proxy_train.train_proxy` (same keyword arguments).
        base_resolution: the search's deployment resolution; models deployed at another
            resolution train at a proportionally scaled proxy resolution (`proxy_for`).
        keep: kinds whose trained models are saved (``weights`` column: the ``.keras`` file
            relative to ``run_dir``); a cached training whose file is gone is trained again.

    Returns:
        One row per (model, seed): name, kind, seed, status, reason, accuracy (validation),
        test_accuracy, val_loss, train_accuracy, proxy_params, proxy_macs, wall_s, arch,
        proxy_arch, key.
    """
    models = list(models)
    seeds = [int(s) for s in seeds]
    names = [m[0] for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    cache = load_cache(run_dir)
    done = {k: r for k, r in zip(cache["key"], cache.to_dict("records")) if r.get("status") == "completed"}
    budgets = {m[0]: proxy_for(m[2], proxy, base_resolution) for m in models}
    keep = set(keep)

    def cached(m, s) -> bool:
        rec = done.get(training_key(m[2], budgets[m[0]], dataset, s))
        if rec is None:
            return False
        return m[1] not in keep or _has_weights(run_dir, rec)
    todo = [(m, s) for m in models for s in seeds if not cached(m, s)]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="proxy trainings", unit="model")
    if todo and callable(data) and not hasattr(data, "y_train"):
        data = data()
    if train_fn is None:
        from accelnas.train.proxy_train import train_proxy as train_fn
    for (name, kind, arch), seed in todo:
        pb = budgets[name]
        key = training_key(arch, pb, dataset, seed)
        row = {"key": key, "name": name, "kind": kind, "seed": seed, "arch": arch.encode(),
               "proxy_resolution": pb["resolution"]}
        t0 = time.perf_counter()
        extra = {}
        if kind in keep:
            row["weights"] = f"{WEIGHTS_DIR}/{key}.keras"
            extra["save_path"] = Path(run_dir) / row["weights"]
        try:
            r = train_fn(arch, data, epochs=pb["epochs"], batch_size=pb["batch_size"],
                         resolution=pb["resolution"], width_mult=pb["width_mult"], seed=seed,
                         test=test, **extra)
            row.update(status="completed", reason=None, accuracy=float(r.accuracy),
                       test_accuracy=None if r.test_accuracy is None else float(r.test_accuracy),
                       val_loss=float(r.val_loss), train_accuracy=float(r.train_accuracy),
                       proxy_params=int(r.params), proxy_macs=int(r.macs), proxy_arch=r.arch)
        except Exception as e:  # noqa: BLE001 - recorded, the other models still train
            from accelnas.train.proxy_train import training_failure

            row.update(status="failed", reason=training_failure(e))
        row["wall_s"] = time.perf_counter() - t0
        cache = pd.concat([cache[cache["key"] != key], pd.DataFrame([row])], ignore_index=True)
        write_parquet(Path(run_dir) / CACHE_FILE, cache)
        if row["status"] == "completed":
            done[key] = row
        if bar is not None:
            bar.update(1)
        if log is not None:
            log(f"{name} seed {seed}: " + (f"accuracy {row['accuracy']:.3f} ({row['wall_s']:.0f} s)"
                                           if row["status"] == "completed" else f"FAILED ({row['reason']})"))
    if bar is not None:
        bar.close()
    rows = []
    for name, kind, arch in models:
        for s in seeds:
            key = training_key(arch, budgets[name], dataset, s)
            rec = done.get(key)
            if rec is None:
                hit = cache[cache["key"] == key]
                rec = hit.iloc[-1].to_dict() if len(hit) else {"status": "missing"}
            rows.append({**rec, "name": name, "kind": kind, "seed": s, "key": key})
    return pd.DataFrame(rows)


def _has_weights(run_dir, rec: Mapping) -> bool:
    w = rec.get("weights")
    return isinstance(w, str) and (Path(run_dir) / w).is_file()


def summarize(trained: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Mean, spread (std and min/max) and count of ``value`` per model over its seeds."""
    ok = trained[trained.status == "completed"]
    g = ok.groupby(["name", "kind"], sort=False)[value]
    out = g.agg(["mean", "std", "min", "max", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out.rename(columns={c: f"{value}_{c}" for c in ("mean", "std", "min", "max", "count")})
