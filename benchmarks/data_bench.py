"""Training throughput: the tf.data pipeline (`Dataset.pipeline`, with augmentation) vs
``model.fit`` on in-memory, pre-normalized NumPy arrays (no augmentation), same model.

The target (issue 4) is the pipeline within 10 % of in-memory training. Both paths train the same
compiled proxy model (`accelnas.train.proxy_train.compile_model`). After one warm-up run of each (graph
tracing), the two paths alternate ``--repeats`` timed runs of ``--epochs`` epoch(s), and the
figure is the median ratio of adjacent (pipeline, memory) pairs, so that the load other processes
put on a shared 2-core machine (which moves throughput by 30 % or more from minute to minute) hits
both paths alike. Process CPU time per image is reported too: it is what the pipeline costs,
whatever the load. The pipeline alone (iterated without a model) shows its own ceiling.

    python benchmarks/data_bench.py [--json] [--images 4000] [--model efficientnet_edgetpu_s]

Needs CIFAR-10 (``$ACCELNAS_DATA_DIR/cifar10.npz`` or Keras's cache); ``--dataset synthetic`` runs
offline.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t)

    return EpochTimer()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--images", type=int, default=4000, help="training images")
    ap.add_argument("--model", default="efficientnet_edgetpu_s", help="zoo model (proxy of it)")
    ap.add_argument("--width", type=float, default=0.5, help="proxy width multiplier")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    ap.add_argument("--repeats", type=int, default=5, help="alternating timed runs per path")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    import numpy as np
    import keras
    import tensorflow as tf

    from accelnas.space import zoo
    from accelnas.space.builder import build
    from accelnas.train.data import load_arrays
    from accelnas.space.graph import from_arch
    from accelnas.train.proxy import proxy_arch
    from accelnas.train.proxy_train import compile_model

    d = load_arrays(args.dataset, subset=args.images, seed=0, image_size=args.resolution)
    n = len(d.y_train)
    arch = proxy_arch(zoo.get(args.model), resolution=args.resolution, width_mult=args.width,
                      num_classes=d.num_classes)
    keras.utils.set_random_seed(0)
    model = build(arch)
    steps = args.epochs * -(-n // args.batch) * 2 * (args.repeats + 1)
    compile_model(model, steps=steps)

    # in-memory: the same normalisation, done once in NumPy, no augmentation, no resizing
    x_mem = ((d.x_train.astype(np.float32) / 255.0 - np.float32(d.mean)) / np.float32(d.std))
    if x_mem.shape[1] != args.resolution:
        x_mem = tf.image.resize(x_mem, (args.resolution, args.resolution)).numpy()
    y_mem = np.asarray(d.y_train, np.int32)
    pipe = d.pipeline("train", batch_size=args.batch, resolution=args.resolution, seed=0,
                      augment=True)

    def timed_fit(*fit_args, **fit_kwargs):
        """One ``model.fit`` call: (images/s over its timed epochs, process CPU ms per image)."""
        t = _epoch_timer()
        cpu0 = time.process_time()
        model.fit(*fit_args, epochs=args.epochs, verbose=0, callbacks=[t], **fit_kwargs)
        cpu_ms = 1e3 * (time.process_time() - cpu0) / (n * args.epochs)
        return n * args.epochs / sum(t.seconds), cpu_ms

    paths = {
        "pipeline": lambda: timed_fit(pipe, shuffle=False),
        "memory": lambda: timed_fit(x_mem, y_mem, batch_size=args.batch, shuffle=True),
    }
    for run in paths.values():  # warm-up: trace the train function for both input paths
        run()
    rates = {k: [] for k in paths}
    cpu = {k: [] for k in paths}
    for _ in range(args.repeats):  # alternate, so that changes in machine load hit both
        for k, run in paths.items():
            r, c = run()
            rates[k].append(r)
            cpu[k].append(c)

    def pipeline_alone():
        for _ in pipe:  # warm-up
            pass
        t0 = time.perf_counter()
        for _ in pipe:
            pass
        return n / (time.perf_counter() - t0)

    alone = pipeline_alone()
    pair_ratios = [p / m for p, m in zip(rates["pipeline"], rates["memory"])]
    ratio = statistics.median(pair_ratios)
    best_ratio = max(rates["pipeline"]) / max(rates["memory"])
    cpu_ratio = statistics.median(cpu["memory"]) / statistics.median(cpu["pipeline"])
    out = {
        "model": args.model, "proxy_macs_per_image": int(from_arch(arch).macs),
        "width_mult": args.width, "resolution": args.resolution, "batch_size": args.batch,
        "train_images": n, "epochs_per_run": args.epochs, "repeats": args.repeats,
        "pipeline_images_per_s": round(statistics.median(rates["pipeline"]), 1),
        "memory_images_per_s": round(statistics.median(rates["memory"]), 1),
        "pipeline_over_memory": round(ratio, 3),
        "pipeline_over_memory_best": round(best_ratio, 3),
        "pipeline_over_memory_cpu": round(cpu_ratio, 3),
        "pipeline_runs": [round(r, 1) for r in rates["pipeline"]],
        "memory_runs": [round(r, 1) for r in rates["memory"]],
        "pair_ratios": [round(r, 3) for r in pair_ratios],
        "pipeline_cpu_ms_per_image": round(statistics.median(cpu["pipeline"]), 3),
        "memory_cpu_ms_per_image": round(statistics.median(cpu["memory"]), 3),
        "pipeline_alone_images_per_s": round(alone, 1),
        "within_10_percent": bool(ratio >= 0.9),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "tensorflow": tf.__version__,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.model} proxy ({out['proxy_macs_per_image'] / 1e6:.1f} M MACs/image, width "
              f"{args.width}, {args.resolution} px), batch {args.batch}, {n} images, "
              f"{args.repeats} alternating runs of {args.epochs} epoch(s) per path")
        print(f"  tf.data pipeline (augmented): {out['pipeline_images_per_s']:8.1f} images/s "
              f"median, {out['pipeline_cpu_ms_per_image']:.2f} CPU ms/image "
              f"(runs {out['pipeline_runs']})")
        print(f"  in-memory arrays:             {out['memory_images_per_s']:8.1f} images/s "
              f"median, {out['memory_cpu_ms_per_image']:.2f} CPU ms/image "
              f"(runs {out['memory_runs']})")
        print(f"  pipeline / memory:            {ratio:8.3f}  median of adjacent pairs "
              f"{out['pair_ratios']} ({'within' if ratio >= 0.9 else 'NOT within'} 10 %); "
              f"best/best {best_ratio:.3f}; CPU time {cpu_ratio:.3f}")
        print(f"  pipeline alone (no model):    {alone:8.1f} images/s")
        print(f"  load average {out['load_average']} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
