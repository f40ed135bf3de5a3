"""Training throughput: the tf.data pipeline (`Dataset.pipeline`, with augmentation) vs
``model.fit`` on in-memory, pre-normalized NumPy arrays (no augmentation), same model.

The target (issue 4) is the pipeline within 10 % of in-memory training. Both paths train the same
compiled proxy model (`accelnas.train.compile_model`); each measurement is ``--epochs`` timed
epochs after one warm-up epoch (graph tracing), and the two paths alternate ``--repeats`` times so
that drift in machine load hits both; the best (least disturbed) repeat of each counts. The
pipeline alone (iterated without a model) is timed too, to show its own ceiling.

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
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per measurement")
    ap.add_argument("--repeats", type=int, default=2, help="alternating measurements per path")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    import numpy as np
    import keras
    import tensorflow as tf

    from accelnas import zoo
    from accelnas.builder import build
    from accelnas.data import load_arrays
    from accelnas.graph import from_arch
    from accelnas.proxy import proxy_arch
    from accelnas.train import compile_model

    d = load_arrays(args.dataset, subset=args.images, seed=0, image_size=args.resolution)
    n = len(d.y_train)
    arch = proxy_arch(zoo.get(args.model), resolution=args.resolution, width_mult=args.width,
                      num_classes=d.num_classes)
    keras.utils.set_random_seed(0)
    model = build(arch)
    steps = (args.epochs + 1) * -(-n // args.batch) * 2 * args.repeats
    compile_model(model, steps=steps)

    # in-memory: the same normalisation, done once in NumPy, no augmentation, no resizing
    x_mem = ((d.x_train.astype(np.float32) / 255.0 - np.float32(d.mean)) / np.float32(d.std))
    if x_mem.shape[1] != args.resolution:
        x_mem = tf.image.resize(x_mem, (args.resolution, args.resolution)).numpy()
    y_mem = np.asarray(d.y_train, np.int32)
    pipe = d.pipeline("train", batch_size=args.batch, resolution=args.resolution, seed=0,
                      augment=True)

    def fit_pipeline():
        t = _epoch_timer()
        model.fit(pipe, epochs=args.epochs + 1, verbose=0, shuffle=False, callbacks=[t])
        return n * args.epochs / sum(t.seconds[1:])

    def fit_memory():
        t = _epoch_timer()
        model.fit(x_mem, y_mem, batch_size=args.batch, epochs=args.epochs + 1, verbose=0,
                  shuffle=True, callbacks=[t])
        return n * args.epochs / sum(t.seconds[1:])

    def pipeline_alone():
        for _ in pipe:  # warm-up
            pass
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            for _ in pipe:
                pass
        return n * args.epochs / (time.perf_counter() - t0)

    rates = {"pipeline": [], "memory": []}
    for _ in range(args.repeats):
        rates["pipeline"].append(fit_pipeline())
        rates["memory"].append(fit_memory())
    alone = pipeline_alone()
    best_pipe, best_mem = max(rates["pipeline"]), max(rates["memory"])
    ratio = best_pipe / best_mem
    out = {
        "model": args.model, "proxy_macs_per_image": int(from_arch(arch).macs),
        "width_mult": args.width,
        "resolution": args.resolution, "batch_size": args.batch, "train_images": n,
        "timed_epochs": args.epochs, "repeats": args.repeats,
        "pipeline_images_per_s": round(best_pipe, 1), "memory_images_per_s": round(best_mem, 1),
        "pipeline_over_memory": round(ratio, 3),
        "pipeline_runs": [round(r, 1) for r in rates["pipeline"]],
        "memory_runs": [round(r, 1) for r in rates["memory"]],
        "pipeline_alone_images_per_s": round(alone, 1),
        "within_10_percent": bool(ratio >= 0.9),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.model} proxy ({out['proxy_macs_per_image'] / 1e6:.1f} M MACs/image, width "
              f"{args.width}, {args.resolution} px), batch {args.batch}, {n} images, "
              f"{args.epochs} timed epochs x {args.repeats} repeats (best counts)")
        print(f"  tf.data pipeline (augmented): {best_pipe:8.1f} images/s  "
              f"(runs {out['pipeline_runs']})")
        print(f"  in-memory arrays:             {best_mem:8.1f} images/s  "
              f"(runs {out['memory_runs']})")
        print(f"  ratio pipeline / memory:      {ratio:8.3f}  "
              f"({'within' if ratio >= 0.9 else 'NOT within'} 10 %)")
        print(f"  pipeline alone (no model):    {alone:8.1f} images/s")
        print(f"  median runs: pipeline {statistics.median(rates['pipeline']):.1f}, "
              f"memory {statistics.median(rates['memory']):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
