"""Streamed data at ImageNet resolution: memory, start-up and whether decoding keeps up with training.

Generates a ``folder:`` dataset of 224 px JPEGs (default 10,000 training and 20,000 test images;
the test split alone is 3 GB as uint8 arrays), then:

1. indexes it (`accelnas.train.stream.open_folder`) at two sizes (a tenth of it, and all of it):
   the start-up a training pays before its first step, which must not grow much with the size;
2. runs ``accelnas train`` on ``--images`` of its training images at ``--resolution`` px for one
   epoch, evaluated on the WHOLE test split, sampling the process's resident memory (RSS) every
   0.2 s, on a tenth of the folder and on all of it: the peak must not grow with the test split;
3. times the training pipeline alone (read, decode, random-resized crop, flip, batch) against the
   training's images/s: the pipeline keeps up when it is faster.

    python benchmarks/stream_bench.py [--train 10000] [--test 20000] [--images 512] [--json]

Figures are printed side by side from this one run (this machine is noisy).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_folder(root: Path, n_train: int, n_test: int, size: int, classes: int = 10) -> float:
    """Write ``n_train`` + ``n_test`` JPEGs (smooth random images, class = dominant colour);
    returns seconds."""
    import numpy as np
    import tensorflow as tf

    t = time.perf_counter()
    rng = np.random.default_rng(0)
    base = [tf.image.resize(rng.random((8, 8, 3), np.float32)[None], (size, size))[0].numpy() for _ in range(16)]
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            c = i % classes
            d = root / split / f"c{c}"
            d.mkdir(parents=True, exist_ok=True)
            img = base[i % 16] * 160 + rng.integers(0, 40, (size, size, 3))
            img[..., c % 3] += 50
            (d / f"{i:06d}.jpg").write_bytes(tf.io.encode_jpeg(np.clip(img, 0, 255).astype(np.uint8),
                                                               quality=85).numpy())
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--test", type=int, default=20000)
    ap.add_argument("--size", type=int, default=224, help="stored image side, pixels")
    ap.add_argument("--images", type=int, default=512, help="training images of the run")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--model", default="efficientnet_edgetpu_s")
    ap.add_argument("--width", type=float, default=0.25, help="stage2.width_mult of the training")
    ap.add_argument("--folder", help="reuse / keep the generated folder here")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    import psutil

    from accelnas.train.stream import open_folder

    tmp = tempfile.TemporaryDirectory()
    root = Path(a.folder) if a.folder else Path(tmp.name) / "imgs"
    gen_s = 0.0
    if not (root / "train").is_dir():
        gen_s = make_folder(root, a.train, a.test, a.size)
    files = sum(1 for _ in root.rglob("*.jpg"))
    disk = sum(f.stat().st_size for f in root.rglob("*.jpg"))
    materialized = a.test * a.size * a.size * 3
    print(f"folder: {files} JPEGs, {disk / 2**20:.0f} MiB on disk (generated in {gen_s:.0f} s); "
          f"test split materialized as uint8: {materialized / 2**30:.2f} GiB")

    # 1. start-up: indexing a tenth of the folder vs all of it
    small = Path(tmp.name) / "small"
    for split, n in (("train", a.train // 10), ("test", a.test // 10)):
        for f in sorted((root / split).rglob("*.jpg"))[::10][:n]:  # every class
            dest = small / split / f.parent.name / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f, dest)
    index_s = {}
    for name, path in (("tenth", small), ("all", root)):
        t = time.perf_counter()
        d = open_folder(path, seed=0, subset=a.images, val_images=256)
        index_s[name] = time.perf_counter() - t
    print(f"index (start-up before the first step): {index_s['tenth']:.2f} s for a tenth, "
          f"{index_s['all']:.2f} s for all ({index_s['all'] / max(index_s['tenth'], 1e-9):.1f}x for 10x the files)")

    # 3. the pipeline alone at the training resolution
    import tensorflow as tf  # noqa: F401

    ds = d.pipeline("train", batch_size=64, resolution=a.resolution, seed=0, epochs=3)
    t, n = time.perf_counter(), 0
    for xb, _ in ds:
        n += int(xb.shape[0])
    pipe_ips = n / (time.perf_counter() - t)

    # 2. accelnas train: peak RSS while it trains and evaluates the whole test split, on a tenth of
    #    the folder and on all of it (the same training: only the test split's size differs)
    runs = {}
    for name, path in (("tenth", small), ("all", root)):
        out = Path(tmp.name) / f"run-{name}"
        cmd = [sys.executable, "-m", "accelnas.cli", "train", a.model, "--params",
               str(ROOT / "params" / "smoke.yaml"), "--set", f"dataset=folder:{path}",
               "--set", "proxy.val_images=256", "--set", "train.strategy=one_device",
               "--set", f"stage2.width_mult={a.width}", "--images", str(a.images),
               "--resolution", str(a.resolution), "--epochs", "1", "--out", str(out), "--json"]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        ps, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, ps.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            print(stderr[-3000:])
            return 1
        r = json.loads(stdout.strip().splitlines()[-1])
        runs[name] = {"peak_rss_bytes": peak, "wall_s": time.perf_counter() - t,
                      "test_images": a.test if name == "all" else a.test // 10,
                      "test_accuracy": r["test_accuracy"], "train_images_per_s": r["images_per_s"]}
    for name, run in runs.items():
        print(f"accelnas train {a.model} (width {a.width}) on {a.images} images at {a.resolution} px, "
              f"1 epoch, test on {run['test_images']}: peak RSS {run['peak_rss_bytes'] / 2**30:.2f} GiB, "
              f"wall {run['wall_s']:.0f} s, test accuracy {run['test_accuracy']:.3f}")
    grow = runs["all"]["peak_rss_bytes"] / runs["tenth"]["peak_rss_bytes"]
    print(f"peak RSS with 10x the test images: {grow:.2f}x (materialized, the test split alone would "
          f"be {materialized / 2**30:.2f} GiB)")
    train_ips = runs["all"]["train_images_per_s"]
    print(f"images/s: pipeline alone {pipe_ips:.0f} vs training {train_ips:.0f} "
          f"({pipe_ips / train_ips:.1f}x: {'keeps up' if pipe_ips > train_ips else 'DOES NOT keep up'})")
    if a.json:
        print(json.dumps({"files": files, "disk_bytes": disk, "materialized_test_bytes": materialized,
                          "index_s": index_s, "runs": runs, "pipeline_images_per_s": pipe_ips}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
