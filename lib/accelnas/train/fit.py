"""Train one network on its own, long, with checkpoints: what ``accelnas train`` runs.

The paper's last step (train the searched and scaled models at full budget) as a library call:
`train_network` trains one architecture on the params' dataset with the stage-2 recipe
(``stage2`` images, epochs and width; ``proxy`` resolution, batch size and validation images;
the stride rule of `accelnas.train.proxy`) or the budget given, under the process's strategy and
precision (`accelnas.train.strategy`). It checkpoints every epoch under ``OUT/checkpoint/``
(`accelnas.train.checkpoint`), so the same call after a kill resumes from the last finished
epoch, and writes ``OUT/model.keras`` (the trained network) and ``OUT/result.json`` (`RESULT`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Mapping

from accelnas.io import write_json
from accelnas.space.arch import ArchSpec

RESULT = "result.json"
MODEL = "model.keras"
CHECKPOINT = "checkpoint"


def budget_for(params: Mapping, *, epochs: int | None = None, images: int | None = None,
               resolution: int | None = None) -> dict:
    """The stage-2 budget of ``params`` with the given values instead (None: the params')."""
    from accelnas.train.cache import stage2_budget

    b = stage2_budget(params)
    for key, value in (("epochs", epochs), ("subset", images), ("resolution", resolution)):
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"--{'images' if key == 'subset' else key} must be a positive "
                                 f"integer, got {value!r}")
            b[key] = int(value)
    return b


def train_network(arch: ArchSpec, params: Mapping, out: str | os.PathLike, *,
                  epochs: int | None = None, images: int | None = None,
                  resolution: int | None = None, log: Callable[[str], None] | None = print,
                  verbose: int = 0) -> dict:
    """Train ``arch`` under ``params`` into the folder ``out``; returns the result (`RESULT`).

    Returns:
        ``{"model", "arch", "trained_arch", "dataset", "budget", "test_accuracy", "test_loss",
        "val_accuracy", "val_loss", "images_per_s", "devices", "replicas", "strategy",
        "precision", "epochs_done", "resumed_from", "wall_s", "weights", ...}``.

    Raises:
        ValueError: a bad budget, data that cannot be read, or a checkpoint of another training
            in ``out`` (`accelnas.train.checkpoint.CheckpointError`).
    """
    from accelnas.train.load import load_data
    from accelnas.train.proxy_train import train_proxy
    from accelnas.train.strategy import current

    t0 = time.perf_counter()
    out = Path(out)
    b = budget_for(params, epochs=epochs, images=images, resolution=resolution)
    setup = current()
    data = load_data(params, subset=b["subset"], resolution=b["resolution"])
    if log:
        log(f"training {arch.name} on {data.source}: {data.size('train')} training, "
            f"{data.size('val')} validation, {data.size('test')} test images at {b['resolution']} px, "
            f"{b['epochs']} epochs, batch {setup.global_batch(b['batch_size'])} on {setup.replicas} "
            f"replica(s) ({setup.name}, {setup.precision})")
    r = train_proxy(arch, data, epochs=b["epochs"], batch_size=b["batch_size"],
                    resolution=b["resolution"], width_mult=b["width_mult"], seed=params["seed"],
                    test=True, verbose=verbose, save_path=out / MODEL,
                    checkpoint_dir=out / CHECKPOINT, setup=setup)
    result = {"model": arch.name, "arch": arch.encode(), "trained_arch": r.arch,
              "dataset": params["dataset"], "source": data.source, "budget": b,
              "seed": params["seed"], "test_accuracy": r.test_accuracy, "test_loss": r.test_loss,
              "val_accuracy": r.accuracy, "val_loss": r.val_loss,
              "images_per_s": r.train_images_per_s, **r.setup, "epochs_done": r.epochs,
              "resumed_from": r.resumed_from, "wall_s": time.perf_counter() - t0,
              "params": r.params, "macs": r.macs, "history": [dict(h) for h in r.history],
              "weights": MODEL}
    if setup.is_chief:
        write_json(out / RESULT, result)
    return result
