"""The proxy budget, timed: stand-alone proxy trainings of zoo models and search-space samples,
and the weight-sharing supernet's training step.

    python benchmarks/train_bench.py [--params params/default.yaml] [--screened 4]
        [--supernet-epochs 1] [--json]

Prints this machine's dense float32 matmul rate (the ceiling), then one line per training
(accuracy, wall and CPU seconds, images/s, proxy MACs and params, achieved GFLOP/s = 6 x MACs x
images/s, and its share of the matmul rate) and how many trainings fit a search budget; then the
supernet (one epoch of the params' ``supernet`` training on the proxy data to trace its graph, then
``--supernet-epochs`` epochs timed):
images/s, and GFLOP/s counted two ways: *useful* (the MACs of the sampled subnets themselves) and
*executed* (what the masked supernet computes for them: the largest kernel, expansion and width
of each sampled block type and depth). ``--json`` prints one JSON object instead.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

import numpy as np  # noqa: E402

from accelnas import params as params_mod  # noqa: E402
from accelnas.latency.accelerator import load_accelerators  # noqa: E402
from accelnas.train.data import load_arrays  # noqa: E402
from accelnas.train.proxy import MIN_FEATURE  # noqa: E402
from accelnas.train.proxy_train import (DEFAULT_LEARNING_RATE, OPTIMIZERS, TrainingDiverged,  # noqa: E402
                                   train_proxy)
from accelnas.search.tuner import setup  # noqa: E402
from accelnas.space import zoo  # noqa: E402
from accelnas.space.search_space import SearchSpace  # noqa: E402


def matmul_gflops(n: int = 1024, repeats: int = 30) -> float:
    """This machine's dense float32 matmul rate in TensorFlow, GFLOP/s (the best of ``repeats``
    n x n products after a warm-up): the ceiling a training's achieved rate is compared with."""
    import tensorflow as tf

    a = tf.random.stateless_normal((n, n), seed=(1, 2))
    b = tf.random.stateless_normal((n, n), seed=(3, 4))
    mm = tf.function(lambda x, y: tf.linalg.matmul(x, y))
    mm(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        mm(a, b).numpy()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best / 1e9


def achieved_gflops(macs_per_image: float, images_per_s: float) -> float:
    """Training FLOP rate: forward 2 x MACs per image, backward about twice the forward."""
    return 6.0 * macs_per_image * images_per_s / 1e9


def supernet_rate(p, space, data, proxy, epochs: int, seed: int, limit: float, stream) -> dict:
    """Train the params' supernet for ``epochs`` epochs and return its images/s and GFLOP/s
    (useful: the sampled subnets' MACs; executed: with every sampled block at its largest kernel,
    expansion and width, what the masks compute), both from 64 paths of the same sampler."""
    from accelnas.train.proxy import proxy_arch
    from accelnas.search.supernet import supernet_for
    from accelnas.space.graph import from_arch

    net = supernet_for(space, proxy, len(data.classes), seed=seed)
    warm = net.train(data, epochs=1, batch_size=proxy["batch_size"], rule=p["supernet"]["rule"], seed=seed)
    rec = net.train(data, epochs=epochs, batch_size=proxy["batch_size"], rule=p["supernet"]["rule"], seed=seed)
    rng = np.random.default_rng([seed, 3])
    choices = space.choices()
    largest = {k: max(v) for k, v in choices.items() if k.endswith(("_kernel", "_expand_ratio", "_channels"))}
    useful, executed = [], []
    for _ in range(64):
        values = space.sample_values(rng)

        def macs(v):
            return from_arch(proxy_arch(space.from_values(v), resolution=proxy["resolution"],
                                        width_mult=proxy["width_mult"], num_classes=len(data.classes))).macs
        useful.append(macs(values))
        executed.append(macs({**values, **largest}))
    u, e = float(np.mean(useful)), float(np.mean(executed))
    out = {"epochs": epochs, "rule": rec["rule"], "first_epoch_s": warm["wall_s"], "wall_s": rec["wall_s"],
           "images_per_s": rec["images_per_s"],
           "useful_macs": u, "executed_macs": e,
           "useful_gflops": achieved_gflops(u, rec["images_per_s"]),
           "executed_gflops": achieved_gflops(e, rec["images_per_s"])}
    print(f"{'supernet (' + rec['rule'] + ')':24s} first epoch (graph tracing) {warm['wall_s']:.1f} s, then "
          f"{epochs} epoch(s) {rec['wall_s']:6.1f} s wall  "
          f"{rec['images_per_s']:5.0f} img/s  useful {u / 1e6:5.1f} M MACs -> {out['useful_gflops']:5.1f} GFLOP/s "
          f"({out['useful_gflops'] / limit:.0%} of matmul); executed {e / 1e6:5.1f} M MACs -> "
          f"{out['executed_gflops']:5.1f} GFLOP/s ({out['executed_gflops'] / limit:.0%})", flush=True, file=stream)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Time the proxy budget of a params file on zoo models and
    random search-space samples, and print a table (or one JSON object with ``--json``)."""

    ap = argparse.ArgumentParser(prog="python benchmarks/train_bench.py", description=main.__doc__)
    ap.add_argument("--params", default=str(params_mod.params_dir() / "default.yaml"))
    ap.add_argument("--models", default="efficientnet_edgetpu_s,mobilenet_v3_large,resnet50",
                    help="comma-separated zoo models ('' for none)")
    ap.add_argument("--samples", type=int, default=2, help="random search-space samples")
    ap.add_argument("--screened", type=int, default=0,
                    help="random samples that pass the search's screen (deployable, under the "
                         "latency cap): the candidates a search actually trains")
    ap.add_argument("--seed", type=int, default=None, help="default: the params' seed")
    for key, typ in (("subset", int), ("epochs", int), ("resolution", int), ("batch_size", int),
                     ("width_mult", float)):
        ap.add_argument(f"--{key.replace('_', '-')}", type=typ, default=None,
                        help=f"override proxy.{key}")
    ap.add_argument("--min-feature", type=int, default=MIN_FEATURE)
    ap.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    ap.add_argument("--learning-rate", type=float, default=None)
    ap.add_argument("--supernet-epochs", type=int, default=1,
                    help="epochs of the params' supernet training to time (0: skip)")
    ap.add_argument("--budget-s", type=float, default=35 * 60,
                    help="search budget the per-training time is compared with, seconds")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    p = params_mod.load(args.params)
    proxy = dict(p["proxy"])
    for key in ("subset", "epochs", "resolution", "batch_size", "width_mult"):
        if getattr(args, key) is not None:
            proxy[key] = getattr(args, key)
    seed = p["seed"] if args.seed is None else args.seed
    t = time.perf_counter()
    data = load_arrays(p["dataset"], subset=proxy["subset"], seed=seed,
                       image_size=proxy["resolution"], val_images=proxy["val_images"])
    load_s = time.perf_counter() - t
    space = SearchSpace.from_params(p["search_space"], load_accelerators(p["accelerators"]))
    rng = np.random.default_rng(seed)
    archs = [zoo.get(n) for n in args.models.split(",") if n]
    archs += [space.sample(rng, name=f"sample{i}") for i in range(args.samples)]
    if args.screened:
        screen = setup(p, seed=seed).screen
        srng = np.random.default_rng([seed, 1])
        kept = []
        for _ in range(200 * args.screened):  # bounded: no open-ended rejection loop
            values = screen.space.sample_values(srng)
            if screen(values) is None:
                kept.append(screen.space.from_values(values, name=f"screened{len(kept)}"))
                if len(kept) == args.screened:
                    break
        archs += kept
    rows = []
    stream = sys.stderr if args.json else sys.stdout  # progress lines; JSON alone on stdout
    limit = matmul_gflops()
    print(f"dense matmul (1024 x 1024, float32, TensorFlow): {limit:.1f} GFLOP/s on this machine",
          flush=True, file=stream)
    for a in archs:
        cpu0 = time.process_time()
        try:
            r = train_proxy(a, data, epochs=proxy["epochs"], batch_size=proxy["batch_size"],
                            resolution=proxy["resolution"], width_mult=proxy["width_mult"],
                            seed=seed, min_feature=args.min_feature, optimizer=args.optimizer,
                            learning_rate=args.learning_rate)
            row = {"name": a.name, "status": "completed", "accuracy": r.accuracy,
                   "train_accuracy": r.train_accuracy, "wall_s": r.wall_s, "fit_s": r.fit_s,
                   "cpu_s": time.process_time() - cpu0,
                   "train_images_per_s": r.train_images_per_s, "proxy_params": r.params,
                   "proxy_macs": r.macs, "arch": a.encode(),
                   "achieved_gflops": achieved_gflops(r.macs, r.train_images_per_s)}
        except TrainingDiverged as e:
            row = {"name": a.name, "status": "diverged", "reason": str(e), "arch": a.encode()}
        rows.append(row)
        if row["status"] == "completed":
            print(f"{row['name']:24s} acc {row['accuracy']:.3f} (train {row['train_accuracy']:.3f})"
                  f"  {row['wall_s']:6.1f} s wall  {row['cpu_s']:6.1f} s cpu  "
                  f"{row['train_images_per_s']:5.0f} img/s  {row['proxy_macs'] / 1e6:6.1f} M MACs"
                  f"  {row['proxy_params'] / 1e6:5.2f} M params  {row['achieved_gflops']:5.1f} GFLOP/s "
                  f"({row['achieved_gflops'] / limit:.0%} of matmul)", flush=True, file=stream)
        else:
            print(f"{row['name']:24s} {row['reason']}", flush=True, file=stream)
    sn = supernet_rate(p, space, data, proxy, args.supernet_epochs, seed, limit, stream) \
        if args.supernet_epochs else None
    done = [r for r in rows if r["status"] == "completed"]
    mean_wall = float(np.mean([r["wall_s"] for r in done])) if done else float("nan")
    out = {"params": args.params, "proxy": proxy, "seed": seed, "min_feature": args.min_feature,
           "optimizer": args.optimizer,
           "learning_rate": args.learning_rate or DEFAULT_LEARNING_RATE[args.optimizer],
           "dataset": data.source, "train_images": int(len(data.y_train)),
           "val_images": int(len(data.y_val)), "load_s": load_s, "rows": rows,
           "mean_wall_s": mean_wall,
           "trainings_in_budget": int(args.budget_s // mean_wall) if done else 0,
           "budget_s": args.budget_s, "cpu_count": os.cpu_count(), "matmul_gflops": limit,
           "supernet": sn,
           "load_average": list(os.getloadavg())}
    if args.json:
        print(json.dumps(out, default=float))
    else:
        print(f"proxy {proxy} min_feature {args.min_feature} {out['optimizer']} lr "
              f"{out['learning_rate']:g}; {out['train_images']} train / {out['val_images']} val "
              f"images; mean {mean_wall:.1f} s per training -> {out['trainings_in_budget']} in "
              f"{args.budget_s / 60:.0f} min (load average now {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
