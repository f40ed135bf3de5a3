"""GPU check: devices, matmul rate, and proxy training speed under each precision and strategy.

A prepared, bounded check (at most ~8 minutes on one GPU; runs on a CPU too, smaller) to run
whenever a GPU machine is available::

    python benchmarks/gpu_check.py [--steps 60] [--batch 256] [--json]

It lists the devices; measures the device's dense matmul rate (float32, and float16 / bfloat16
where the device has them: the best of several 4096^2 products, FLOP/s = 2 n^3 / s); then trains an
EfficientNet-EdgeTPU-S-like candidate (the search space's start point at the proxy's width 0.5,
CIFAR-10 32 px, or synthetic images without CIFAR-10) for a fixed number of steps under each
precision (float32, mixed_float16 on GPUs, mixed_bfloat16) and each strategy available (one
device; mirrored when there are several GPUs), and prints for each: images/s (after the first
step), achieved FLOP/s (3 x forward MACs x 2 per image: forward and backward) as a fraction of
the measured matmul rate of that precision, the peak device memory (GPUs) and the time to the
first step (graph tracing, XLA compilation). Figures come from this run only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def matmul_rate(tf, device: str, dtype, n: int = 4096, reps: int = 10) -> float:
    """Dense matmul FLOP/s on ``device`` (best of ``reps`` timed products of n x n)."""
    with tf.device(device):
        a = tf.random.normal((n, n), dtype=tf.float32)
        a = tf.cast(a, dtype)
        b = tf.identity(a)
        f = tf.function(lambda x, y: tf.linalg.matmul(x, y))
        f(a, b).numpy()  # trace and warm up
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            f(a, b).numpy()
            best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="timed training steps per configuration")
    ap.add_argument("--batch", type=int, default=256, help="global batch size")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    a = ap.parse_args()

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for g in gpus:
        tf.config.experimental.set_memory_growth(g, True)
    logical = [d.name for d in tf.config.list_logical_devices()]
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    print(f"devices: {', '.join(logical)}" + (f"  ({'; '.join(names)})" if names else ""))
    device = "/GPU:0" if gpus else "/CPU:0"
    on_gpu = bool(gpus)
    n = 4096 if on_gpu else 1024
    rates = {"float32": matmul_rate(tf, device, tf.float32, n)}
    if on_gpu:
        rates["mixed_float16"] = matmul_rate(tf, device, tf.float16, n)
    try:
        rates["mixed_bfloat16"] = matmul_rate(tf, device, tf.bfloat16, n, reps=3 if not on_gpu else 10)
    except Exception as e:  # noqa: BLE001 - a device without bfloat16 matmul
        print(f"bfloat16 matmul not available: {type(e).__name__}")
    for k, v in rates.items():
        print(f"matmul {k.replace('mixed_', ''):9s} {n}^2: {v / 1e12:8.2f} TFLOP/s")

    from accelnas.space import zoo
    from accelnas.space.graph import from_arch
    from accelnas.train.data import load_arrays
    from accelnas.train.proxy import proxy_arch
    from accelnas.train.proxy_train import train_proxy
    from accelnas.train.strategy import configure

    try:
        data = load_arrays("cifar10", subset=a.batch * a.steps, seed=0, val_images=512)
    except FileNotFoundError:
        data = load_arrays("synthetic", subset=a.batch * a.steps, seed=0, image_size=32, val_images=512)
    arch = zoo.get("efficientnet_edgetpu_s")
    p = proxy_arch(arch, resolution=32, width_mult=0.5, num_classes=data.num_classes)
    flops_per_image = 3 * 2 * from_arch(p).macs  # forward + backward ~ 3 x forward
    strategies = ["one_device"] + (["mirrored"] if len(gpus) > 1 else [])
    rows = []
    import keras

    class Clock(keras.callbacks.Callback):
        """Times the first step (from the start of fit) and the steps after it."""

        def on_train_begin(self, logs=None):
            self.start, self.ends = time.perf_counter(), []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    for strategy in strategies:
        for precision in rates:
            setup = configure({"strategy": strategy, "precision": precision}, log=print)
            if on_gpu:
                tf.config.experimental.reset_memory_stats("GPU:0")
            clock = Clock()
            r = train_proxy(arch, data, epochs=1, batch_size=a.batch, resolution=32, width_mult=0.5,
                            seed=0, recalibrate_bn=False, setup=setup, callbacks=[clock])
            first_s = clock.ends[0] - clock.start
            ips = (len(clock.ends) - 1) * a.batch / (clock.ends[-1] - clock.ends[0])
            peak = (tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 30) if on_gpu else None
            row = {"strategy": setup.name, "precision": precision, "replicas": setup.replicas,
                   "jit_compile": setup.jit_compile, "steps": r.steps, "images_per_s": ips,
                   "first_step_s": first_s, "achieved_tflops": ips * flops_per_image / 1e12,
                   "fraction_of_matmul": ips * flops_per_image / rates[precision],
                   "peak_memory_gib": peak, "val_accuracy": r.accuracy}
            rows.append(row)
            print(f"{setup.name:10s} {precision:15s} xla={str(setup.jit_compile):5s} "
                  f"{ips:9.0f} img/s  {row['achieved_tflops']:7.3f} TFLOP/s "
                  f"({100 * row['fraction_of_matmul']:5.1f} % of its matmul rate)  first step "
                  f"{first_s:6.1f} s  peak {'-' if peak is None else f'{peak:.2f} GiB'}")
    if a.json:
        print(json.dumps({"devices": logical, "gpu_names": names, "matmul_flops": rates,
                          "flops_per_image": flops_per_image, "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
