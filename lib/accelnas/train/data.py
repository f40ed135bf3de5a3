"""Training data of the proxy task: dataset resolution (`load_arrays`) and a tf.data pipeline.

The params key ``dataset`` names the data (validated by `accelnas.params`):

- ``cifar10``: resolved in this order, the first that works wins:
  1. ``$ACCELNAS_DATA_DIR/cifar10.npz`` (the offline copy described in ``shared/data/README.md``:
     keys ``x_train`` ``y_train`` ``x_test`` ``y_test`` ``classes``, sorted by class), read with
     ``np.load(..., allow_pickle=False)`` and validated;
  2. Keras's cache (``$KERAS_HOME`` or ``~/.keras``, ``datasets/cifar-10-batches-py*``), read with
     ``keras.datasets.cifar10.load_data()`` only when such a folder exists;
  3. Keras's download (``keras.datasets.cifar10.load_data()``).
  When all fail, `FileNotFoundError` lists every path tried and says to set ``ACCELNAS_DATA_DIR``.
- ``synthetic``: small generated images (10 classes, each with its own colour and stripe pattern,
  plus noise): learnable in one short epoch, for offline smoke runs only.
- ``folder:PATH``: ``PATH/train/<class>/*`` plus ``PATH/test/<class>/*`` and/or
  ``PATH/val/<class>/*`` (any image size; png/jpg/gif/bmp), read with
  ``keras.utils.image_dataset_from_directory`` and resized to ``image_size``.
- ``tfds:NAME``: a TensorFlow Datasets dataset that is already on disk (``download=False``).

Splits: the validation split is always held out from the TRAINING data (stratified by class,
seeded), except for ``folder:`` datasets that have both ``val/`` and ``test/``, whose ``val/`` is
the validation split. The test split is returned separately and untouched (callers use it only for
final reports). Images are uint8 RGB ``(N, H, W, 3)``; labels are int32 ``(N,)`` (int32 rather than
uint8 so that datasets with more than 256 classes are represented correctly).

Nothing the user points at is executed or unpickled: ``.npz`` files are read with
``allow_pickle=False`` and images are decoded by TensorFlow's image decoders. (Keras's own CIFAR-10
cache is in Python's pickle format; it is read by Keras, from Keras's cache folder only.)

Only the numpy paths (``cifar10`` from the ``.npz``, ``synthetic``) avoid importing TensorFlow;
the others and `make_pipeline` import it lazily.
"""
from __future__ import annotations

import glob
import math
import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["Dataset", "load_arrays", "make_pipeline", "channel_stats", "DATA_DIR_ENV",
           "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "IMAGE_EXTENSIONS"]

DATA_DIR_ENV = "ACCELNAS_DATA_DIR"
"""Environment variable naming the folder that holds ``cifar10.npz``."""

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
"""Per-channel (RGB) mean of the CIFAR-10 training images, pixel values scaled to [0, 1]."""
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
"""Per-channel (RGB) standard deviation of the CIFAR-10 training images, in [0, 1] units."""

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
"""Image files ``folder:`` datasets read (those ``keras.utils.image_dataset_from_directory`` reads)."""

_NPZ_NAME = "cifar10.npz"
_NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")
_DOWNLOAD_SOCKET_TIMEOUT_S = 30.0  # per socket operation, so a blackholed network cannot hang a run
_SYNTHETIC_TRAIN = 2000  # training-pool images of the synthetic dataset (without a larger subset)
_SYNTHETIC_TEST = 500
_SYNTHETIC_DATA_SEED = 20200  # the synthetic images are fixed; ``seed`` only drives the split
_EVAL_CACHE_MAX_BYTES = 1 << 30


# --------------------------------------------------------------------------------------- Dataset

def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Images and labels of one dataset, split into train / validation / test.

    Attributes:
        x_train: training images, uint8 ``(N_train, H, W, 3)``, RGB, pixel values 0..255.
        y_train: training labels, int32 ``(N_train,)``, in ``[0, num_classes)``.
        x_val, y_val: validation split (held out from the training data), same layout.
        x_test, y_test: test split (for final reports only), same layout.
        classes: class names; label ``i`` is ``classes[i]``.
        source: where the data came from (a file or folder path, a URL, ``synthetic ...``).
        mean, std: per-channel (RGB) mean and standard deviation of the training images, pixel
            values scaled to [0, 1] (the canonical CIFAR-10 constants for ``cifar10``); what
            `make_pipeline` normalizes with.
        train_indices: int64 ``(N_train,)``: positions of the training images in the source's
            training pool (its ``train`` split in file order, e.g. the rows of ``x_train`` in the
            ``.npz``).
        val_indices: int64 ``(N_val,)``: positions of the validation images in the same pool
            (disjoint from ``train_indices``), or None when they came from their own folder.

    The arrays are read-only.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    val_indices: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "train_indices"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if self.val_indices is not None:
            object.__setattr__(self, "val_indices", _frozen(self.val_indices))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    @property
    def image_size(self) -> tuple[int, int]:
        """Height and width of the stored images, pixels."""
        return int(self.x_train.shape[1]), int(self.x_train.shape[2])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of the split ``train``, ``val`` or ``test``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; choose from train, val, test")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def size(self, split: str) -> int:
        """Images in the split ``train``, ``val`` or ``test``."""
        return len(self.split(split)[1])

    def pipeline(self, split: str, *, batch_size: int, resolution: int | None = None,
                 seed: int = 0, training: bool | None = None, augment: bool = True,
                 cache: bool = True, images: int | None = None, drop_remainder: bool = False,
                 epochs: int | None = None, first_epoch: int = 0):
        """`make_pipeline` over one split, normalized with this dataset's ``mean`` / ``std``.

        The interface every dataset of `accelnas.train` offers (`accelnas.train.stream` too).

        Args:
            split: ``train``, ``val`` or ``test``.
            batch_size / resolution / seed / augment / cache / drop_remainder / epochs /
                first_epoch: as in `make_pipeline` (``resolution`` None: the stored image size).
            training: shuffle and augment; default: ``split == "train"``.
            images: a seeded random sample of this many images of the split, in index order
                (None: all of them).
        """
        x, y = self.split(split)
        if images is not None and images < len(x):
            idx = np.sort(np.random.default_rng(seed).choice(len(x), size=int(images), replace=False))
            x, y = x[idx], y[idx]
        return make_pipeline(x, y, batch_size=batch_size,
                             resolution=resolution or self.image_size[0],
                             training=(split == "train") if training is None else training,
                             seed=seed, augment=augment, cache=cache, mean=self.mean, std=self.std,
                             drop_remainder=drop_remainder, epochs=epochs, first_epoch=first_epoch)

    def summary(self) -> dict:
        """Plain-data description (for manifests and notebook tables)."""
        return {"source": self.source, "num_classes": self.num_classes,
                "image_size": list(self.image_size), "train": len(self.y_train),
                "val": len(self.y_val), "test": len(self.y_test),
                "mean": list(self.mean), "std": list(self.std)}

    def __repr__(self) -> str:
        return (f"Dataset(source={self.source!r}, classes={self.num_classes}, "
                f"image_size={self.image_size}, train={len(self.y_train)}, val={len(self.y_val)}, "
                f"test={len(self.y_test)})")


# --------------------------------------------------------------------------------- statistics

def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, in [0, 1] units.

    Args:
        x: uint8 ``(N, H, W, C)``.
        chunk: images per step (bounds the float64 temporaries).

    Returns:
        ``(mean, std)``, each a tuple of ``C`` floats. An empty ``x`` gives means 0.5 and stds 0.25.
    """
    if len(x) == 0:
        return (0.5,) * x.shape[-1], (0.25,) * x.shape[-1]
    c = x.shape[-1]
    s, s2, n = np.zeros(c), np.zeros(c), 0
    for i in range(0, len(x), chunk):
        part = x[i:i + chunk].reshape(-1, c).astype(np.float64)
        s += part.sum(0)
        s2 += np.square(part).sum(0)
        n += part.shape[0]
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 0.0))
    std = np.where(std < 1e-3, 255.0, std)  # constant channel: do not blow it up
    return tuple(float(v) for v in mean / 255.0), tuple(float(v) for v in std / 255.0)


# ------------------------------------------------------------------------------------ splitting

def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded permutation of ``range(len(y))`` every prefix of which is (close to) stratified.

    Each class is shuffled; image ``r`` of a class of ``n`` images gets the key ``(r + u) / n``
    (``u`` uniform in [0, 1)), and all images are sorted by key. A prefix of length ``k`` then holds
    each class in proportion to its size, within one image.
    """
    keys = np.empty(len(y), dtype=np.float64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        keys[idx] = (np.arange(len(idx)) + rng.random(len(idx))) / len(idx)
    return np.argsort(keys, kind="stable")


def _split_sizes(pool: int, val_fraction: float, subset: int | None, has_val: bool,
                 val_images: int = 0) -> tuple[int, int]:
    """``(n_train, n_val)`` drawn from a training pool of ``pool`` images."""
    if has_val:  # validation comes from elsewhere
        return (pool if subset is None else min(subset, pool)), 0
    if subset is None:
        n_val = int(round(val_fraction * pool)) if not val_images else min(int(val_images), pool - 1)
        return pool - n_val, n_val
    n_val = int(val_images) if val_images else int(round(subset * val_fraction / (1.0 - val_fraction)))
    if subset + n_val > pool:
        n_val_full = int(round(val_fraction * pool))
        warnings.warn(f"subset={subset} training images (+{n_val} validation) exceed the "
                      f"{pool} available; using all {pool - n_val_full} training images",
                      stacklevel=5)
        return pool - n_val_full, n_val_full
    return subset, n_val


def _check_args(seed, val_fraction, subset, val_images=0) -> None:
    if not isinstance(val_images, (int, np.integer)) or isinstance(val_images, bool) or val_images < 0:
        raise ValueError(f"val_images must be a non-negative int (0: val_fraction), got {val_images!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not (isinstance(val_fraction, (int, float)) and 0.0 <= val_fraction < 1.0):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if subset is not None and (not isinstance(subset, (int, np.integer)) or isinstance(subset, bool)
                               or subset < 1):
        raise ValueError(f"subset must be a positive int or None, got {subset!r}")


def _assemble(x_pool, y_pool, x_test, y_test, classes, source, *, seed, val_fraction, subset,
              val_images=0, mean=None, std=None, x_val=None, y_val=None) -> Dataset:
    """Split a training pool into train / val (seeded, stratified) and build the `Dataset`."""
    y_pool = np.asarray(y_pool).astype(np.int32).reshape(-1)
    has_val = x_val is not None
    n_train, n_val = _split_sizes(len(y_pool), val_fraction, subset, has_val, val_images)
    order = _stratified_order(y_pool, np.random.default_rng(seed))
    val_idx, train_idx = order[:n_val], order[n_val:n_val + n_train]
    if not has_val:
        x_val, y_val = x_pool[val_idx], y_pool[val_idx]
    x_train = x_pool[train_idx]
    if mean is None or std is None:
        mean, std = channel_stats(x_train)
    return Dataset(x_train=x_train, y_train=y_pool[train_idx],
                   x_val=np.asarray(x_val, np.uint8),
                   y_val=np.asarray(y_val).astype(np.int32).reshape(-1),
                   x_test=np.asarray(x_test, np.uint8),
                   y_test=np.asarray(y_test).astype(np.int32).reshape(-1),
                   classes=tuple(classes), source=source, mean=mean, std=std,
                   train_indices=train_idx.astype(np.int64),
                   val_indices=None if has_val else val_idx.astype(np.int64))


# -------------------------------------------------------------------------------------- cifar10

def read_cifar10_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray, tuple[str, ...]]:
    """Read and validate a CIFAR-10 ``.npz`` (format: ``shared/data/README.md``).

    Args:
        path: the ``.npz`` file.

    Returns:
        ``(x_train, y_train, x_test, y_test, classes)``: uint8 ``(N, 32, 32, 3)`` images, int32
        ``(N,)`` labels, and the class names.

    Raises:
        ValueError: the file is not an ``.npz`` of that format (missing keys, pickled objects,
            wrong dtypes or shapes, labels out of range); the message names the file and the key.
    """
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # pickled data, not a zip, truncated file ...
        why = ("it is not an .npz archive (numpy would read it as pickled data, which accelnas never loads)"
               if "pickle" in str(e) else f"{type(e).__name__}: {e}")
        raise ValueError(f"{path}: damaged or not an .npz of CIFAR-10 arrays: {why}; replace it with a good "
                         "copy (see the README, Data)") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not a valid CIFAR-10 .npz: it holds a single array, not the "
                         f"named arrays {list(_NPZ_REQUIRED)}")
    with z:
        missing = [k for k in _NPZ_REQUIRED if k not in z.files]
        if missing:
            raise ValueError(f"{path}: not a valid CIFAR-10 .npz: missing key(s) {missing}; found "
                             f"{sorted(z.files)}; expected {list(_NPZ_REQUIRED)} (+ optional "
                             "'classes')")
        try:
            arrays = {k: z[k] for k in (*_NPZ_REQUIRED, "classes") if k in z.files}
        except Exception as e:  # object arrays (pickles) are refused here
            raise ValueError(f"{path}: not a valid CIFAR-10 .npz: {type(e).__name__}: {e}") from None

    def bad(key: str, what: str) -> ValueError:
        return ValueError(f"{path}: not a valid CIFAR-10 .npz: {key!r} {what}")

    classes = CIFAR10_CLASSES
    if "classes" in arrays:
        c = arrays["classes"]
        if c.ndim != 1 or c.dtype.kind not in "US":
            raise bad("classes", f"must be a 1-D string array, got dtype {c.dtype} shape {c.shape}")
        classes = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in c.tolist())
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            raise bad(f"x_{split}", f"must be uint8 (N, 32, 32, 3), got {x.dtype} {x.shape}")
        if y.dtype.kind not in "iu" or y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] != 1):
            raise bad(f"y_{split}", f"must be integer (N,) labels, got {y.dtype} {y.shape}")
        y = y.reshape(-1)
        if len(y) != len(x):
            raise bad(f"y_{split}", f"has {len(y)} labels for {len(x)} images")
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise bad(f"y_{split}", f"labels must lie in [0, {len(classes)}), got "
                                    f"[{y.min()}, {y.max()}]")
        arrays[f"y_{split}"] = y.astype(np.int32)
    if len(arrays["y_train"]) == 0:
        raise bad("x_train", "is empty")
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], classes


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path("~").expanduser() / ".keras")


def _keras_cache_dirs() -> list[Path]:
    d = _keras_home() / "datasets"
    # Keras 3 (archive + extraction folder), then the older Keras layout
    return [d / "cifar-10-batches-py-target_archive", d / "cifar-10-batches-py-target",
            d / "cifar-10-batches-py"]


def _keras_cifar10() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import keras

    old = socket.getdefaulttimeout()
    if old is None:
        socket.setdefaulttimeout(_DOWNLOAD_SOCKET_TIMEOUT_S)
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    finally:
        if old is None:
            socket.setdefaulttimeout(None)
    return x_train, y_train, x_test, y_test


#: The project's shared data folder beside a checkout (``<checkout>/../shared/data``), looked at when
#: ``ACCELNAS_DATA_DIR`` is not set.
SHARED_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def find_cifar10_npz() -> tuple[Path | None, list[str]]:
    """(the CIFAR-10 .npz to read, or None; what was tried): ``$ACCELNAS_DATA_DIR/cifar10.npz``
    when the variable is set, else the shared folder beside the checkout (`SHARED_DATA_DIR`)."""
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        npz = Path(data_dir).expanduser().resolve() / _NPZ_NAME
        return (npz, []) if npz.is_file() else (None, [f"{npz} (${DATA_DIR_ENV}/{_NPZ_NAME}): not found"])
    npz = SHARED_DATA_DIR / _NPZ_NAME
    if npz.is_file():
        return npz, []
    return None, [f"${DATA_DIR_ENV}/{_NPZ_NAME}: {DATA_DIR_ENV} is not set",
                  f"{npz} (the shared folder beside the checkout): not found"]


def _load_cifar10(*, seed, val_fraction, subset, val_images=0) -> Dataset:
    kw = dict(seed=seed, val_fraction=val_fraction, subset=subset, val_images=val_images,
              mean=CIFAR10_MEAN, std=CIFAR10_STD)
    npz, tried = find_cifar10_npz()
    if npz is not None:
        x_train, y_train, x_test, y_test, classes = read_cifar10_npz(npz)
        return _assemble(x_train, y_train, x_test, y_test, classes, str(npz), **kw)

    cache_dirs = _keras_cache_dirs()
    cached = [d for d in cache_dirs if d.exists()]
    if cached:
        try:
            arrays = _keras_cifar10()
            return _assemble(*arrays, CIFAR10_CLASSES, f"keras cache {cached[0]}", **kw)
        except Exception as e:  # fall through to the error below (a download was tried too)
            tried.append(f"keras cache {', '.join(map(str, cached))}: "
                         f"{type(e).__name__}: {_first_line(e)}")
    else:
        tried.append(f"keras cache {' | '.join(map(str, cache_dirs))}: not found")
        try:
            arrays = _keras_cifar10()
            return _assemble(*arrays, CIFAR10_CLASSES, f"keras download {CIFAR10_URL}", **kw)
        except Exception as e:
            tried.append(f"keras download {CIFAR10_URL}: {type(e).__name__}: {_first_line(e)}")
    raise cifar10_not_found(tried)


def cifar10_not_found(tried: list[str]) -> FileNotFoundError:
    """The error when CIFAR-10 is nowhere: every place ``tried`` and what to set."""
    return FileNotFoundError(
        "dataset 'cifar10' not found. Tried:\n  - " + "\n  - ".join(tried) +
        f"\nSet {DATA_DIR_ENV} to a folder holding {_NPZ_NAME} (e.g. "
        f"{DATA_DIR_ENV}=../shared/data; format: x_train/y_train/x_test/y_test/classes arrays), "
        "fetch it once into Keras's cache (python -c 'import keras; keras.datasets.cifar10.load_data()'), "
        "or use dataset: synthetic (--set dataset=synthetic) for an offline smoke run.")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else ""


# ------------------------------------------------------------------------------------ synthetic

def synthetic_images(n: int, *, num_classes: int = 10, image_size: int = 32, seed: int = 0,
                     noise: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """Generated images whose class shows in colour and stripe pattern, plus noise.

    Class ``k`` has its own mean colour and stripe orientation/frequency; each image gets a random
    stripe phase, contrast, brightness offset and Gaussian pixel noise (std ``noise`` grey levels),
    so the classes overlap a little but a small convnet separates them within one short epoch.

    Args:
        n: images; labels are balanced (``i % num_classes``, then shuffled).
        num_classes: classes (at most 64).
        image_size: height = width, pixels.
        seed: the generator's seed (same seed, same images).
        noise: standard deviation of the pixel noise, grey levels (0..255 scale).

    Returns:
        ``(x, y)``: uint8 ``(n, image_size, image_size, 3)`` and int32 ``(n,)``.
    """
    rng = np.random.default_rng(seed)
    crng = np.random.default_rng(7)  # class appearance: independent of ``seed``
    colours = crng.uniform(50, 205, size=(num_classes, 3))
    angles = np.pi * np.arange(num_classes) / num_classes
    freqs = 2 * np.pi * (1.5 + (np.arange(num_classes) % 3)) / image_size
    y = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
    yy, xx = np.mgrid[0:image_size, 0:image_size].astype(np.float32)
    x = np.empty((n, image_size, image_size, 3), np.uint8)
    for i in range(0, n, 512):
        lab = y[i:i + 512]
        m = len(lab)
        proj = (np.cos(angles[lab])[:, None, None] * xx + np.sin(angles[lab])[:, None, None] * yy)
        phase = rng.uniform(0, 2 * np.pi, size=(m, 1, 1))
        stripes = np.sin(freqs[lab][:, None, None] * proj + phase)
        contrast = rng.uniform(30, 60, size=(m, 1, 1, 1))
        img = (colours[lab][:, None, None, :] + rng.normal(0, 15, size=(m, 1, 1, 3))
               + contrast * stripes[..., None] + rng.normal(0, noise, size=(m, image_size, image_size, 3)))
        x[i:i + m] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return x, y


def _load_synthetic(*, seed, val_fraction, subset, val_images=0, image_size) -> Dataset:
    pool = _SYNTHETIC_TRAIN
    if subset is not None:
        pool = max(pool, math.ceil(subset / (1.0 - val_fraction)) + 10)
    x, y = synthetic_images(pool, image_size=image_size, seed=_SYNTHETIC_DATA_SEED)
    x_test, y_test = synthetic_images(_SYNTHETIC_TEST, image_size=image_size,
                                      seed=_SYNTHETIC_DATA_SEED + 1)
    classes = tuple(f"class{k}" for k in range(10))
    return _assemble(x, y, x_test, y_test, classes,
                     f"synthetic (generated: {pool} train-pool + {_SYNTHETIC_TEST} test images, "
                     f"{image_size}x{image_size})",
                     seed=seed, val_fraction=val_fraction, subset=subset, val_images=val_images)


# --------------------------------------------------------------------------------------- folder

def _undecodable_image(path: Path) -> Path | None:
    """The first image file under ``path/<class>/`` TensorFlow cannot decode, or None."""
    import tensorflow as tf

    for f in sorted(path.glob("*/*")):
        if f.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        try:
            tf.io.decode_image(tf.io.read_file(str(f)), channels=3, expand_animations=False)
        except Exception:
            return f
    return None


def _read_image_folder(path: Path, image_size: tuple[int, int], class_names=None):
    """All images under ``path/<class>/`` as uint8 ``(N, h, w, 3)``, int32 labels, class names."""
    import keras

    subdirs = sorted(d.name for d in path.iterdir() if d.is_dir())
    if not subdirs:
        raise ValueError(f"{path}: no class folders (expected {path}/<class>/<image files>)")
    empty = [d for d in subdirs if not any(f.suffix.lower() in IMAGE_EXTENSIONS for f in (path / d).iterdir())]
    if empty:
        raise ValueError(f"{path}: class folder(s) {empty} hold no image files ({', '.join(IMAGE_EXTENSIONS)}): "
                         "add images or remove the folder (every folder is a class)")
    try:
        ds = keras.utils.image_dataset_from_directory(
            str(path), labels="inferred", label_mode="int", class_names=subdirs,
            color_mode="rgb", batch_size=256, image_size=image_size, shuffle=False,
            interpolation="area", verbose=False)
    except TypeError:  # Keras without ``verbose``
        ds = keras.utils.image_dataset_from_directory(
            str(path), labels="inferred", label_mode="int", class_names=subdirs,
            color_mode="rgb", batch_size=256, image_size=image_size, shuffle=False,
            interpolation="area")
    except ValueError as e:
        raise ValueError(f"{path}: {e} (image files: {', '.join(IMAGE_EXTENSIONS)})") from None
    xs, ys = [], []
    try:
        for xb, yb in ds.as_numpy_iterator():
            xs.append(np.clip(np.rint(xb), 0, 255).astype(np.uint8))
            ys.append(yb.astype(np.int32))
    except Exception as e:  # a file that does not decode: name it instead of TensorFlow's traceback
        bad = _undecodable_image(path)
        what = f"{bad}: not a readable image" if bad else f"an image did not decode ({type(e).__name__})"
        raise ValueError(f"{path}: {what}; remove or replace it") from None
    if not xs:
        raise ValueError(f"{path}: no images found (image files: {', '.join(IMAGE_EXTENSIONS)})")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if class_names is not None:  # map this folder's labels onto the training classes
        unknown = sorted(set(subdirs) - set(class_names))
        if unknown:
            raise ValueError(f"{path}: class folder(s) {unknown} are not among the training "
                             f"classes {list(class_names)}")
        lut = np.array([list(class_names).index(c) for c in subdirs], np.int32)
        y = lut[y]
    return x, y, tuple(subdirs)


def check_folder(path: Path, where: str = "") -> None:
    """Raise FileNotFoundError unless ``path`` has the layout of a ``folder:`` dataset (``where``:
    added to the message, e.g. what a relative path is relative to)."""
    layout = (f"expected {path}/train/<class>/<images> and {path}/test/<class>/<images> "
              f"(or val/ instead of, or besides, test/){where}")
    problem = ("does not exist" if not path.is_dir() else
               "has no train/ folder" if not (path / "train").is_dir() else
               "has neither test/ nor val/" if not ((path / "test").is_dir() or (path / "val").is_dir())
               else "")
    if problem:
        raise FileNotFoundError(f"dataset folder {path} {problem} ({layout})")


def _load_folder(root: str, *, seed, val_fraction, subset, val_images=0, image_size) -> Dataset:
    path = Path(root).expanduser()
    check_folder(path)
    train_dir, val_dir, test_dir = path / "train", path / "val", path / "test"
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    x_pool, y_pool, classes = _read_image_folder(train_dir, size)
    x_val = y_val = None
    if test_dir.is_dir():
        x_test, y_test, _ = _read_image_folder(test_dir, size, classes)
        if val_dir.is_dir():
            x_val, y_val, _ = _read_image_folder(val_dir, size, classes)
    else:  # val/ alone is the held-out evaluation split (ImageNet's convention)
        x_test, y_test, _ = _read_image_folder(val_dir, size, classes)
    return _assemble(x_pool, y_pool, x_test, y_test, classes, str(path.resolve()),
                     seed=seed, val_fraction=val_fraction, subset=subset, val_images=val_images,
                     x_val=x_val, y_val=y_val)


def split_files(pattern: str) -> tuple[list[str], list[str]]:
    """The training and test files of a ``tfrecord:`` glob (module docstring)."""
    files = sorted(f for f in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(f))
    if not files:
        raise FileNotFoundError(f"dataset 'tfrecord:{pattern}': the glob matches no file; give a glob "
                                "of TFRecord files, e.g. tfrecord:/data/imagenet/*-of-*")
    train = [f for f in files if "train" in Path(f).name.lower()]
    test = [f for f in files if f not in train and any(k in Path(f).name.lower()
                                                       for k in ("validation", "val", "test"))]
    if not train or not test:
        raise ValueError(f"dataset 'tfrecord:{pattern}': {len(files)} files, {len(train)} named *train*, "
                         f"{len(test)} named *validation*/*val*/*test*; it needs both (training pool "
                         "and test split), e.g. train-00000-of-01024 and validation-00000-of-00128")
    return train, test


TFDS_ENV = "TFDS_DATA_DIR"


def tfds_folder(name: str) -> tuple[Path, list[str], list[str]]:
    """The prepared folder of ``tfds:NAME`` and its training and test TFRecord shards.

    TensorFlow Datasets prepares a dataset as ``$TFDS_DATA_DIR/NAME[/CONFIG]/VERSION/`` (default
    ``~/tensorflow_datasets``) holding ``dataset_info.json`` and shards
    ``NAME-SPLIT.tfrecord-00000-of-00016`` of ``tf.train.Example`` records (``image``: the
    encoded image, ``label``); they are read directly, without the tensorflow_datasets package.
    ``NAME`` may name a config and version (``imagenet2012/5.1.0``); else the highest version.

    Raises:
        FileNotFoundError: nothing prepared there (how to prepare it).
        ValueError: no ``train`` or no ``test``/``validation`` shards (e.g. ``array_record`` files).
    """
    root = Path(os.environ.get(TFDS_ENV) or Path.home() / "tensorflow_datasets").expanduser()
    base = root / name
    infos = sorted(base.rglob("dataset_info.json")) if base.is_dir() else []
    if not infos:
        raise FileNotFoundError(
            f"dataset 'tfds:{name}' is not prepared under {root} (no {base}/.../dataset_info.json; "
            f"accelnas never downloads it). Prepare it once where there is internet "
            f"(tfds.builder({name.split('/')[0]!r}).download_and_prepare()), copy the folder here and "
            f"point {TFDS_ENV} at its root")

    def version(p: Path):
        return tuple(int(v) if v.isdigit() else -1 for v in p.parent.name.split("."))

    folder = max(infos, key=version).parent
    short = name.split("/")[0]
    shards = sorted(str(f) for f in folder.glob(f"{short}-*.tfrecord-*"))
    train = [f for f in shards if f"-train.tfrecord" in Path(f).name]
    test = [f for f in shards if "-test.tfrecord" in Path(f).name] or \
        [f for f in shards if "-validation.tfrecord" in Path(f).name]
    if not train or not test:
        other = sorted({f.suffix for f in folder.iterdir() if f.is_file()} - {".json", ".txt"})
        raise ValueError(f"dataset 'tfds:{name}': {folder} has {len(train)} train and {len(test)} "
                         f"test/validation TFRecord shards (other files: {other or 'none'}); accelnas "
                         "streams TFDS's tfrecord format (prepare it with file_format='tfrecord')")
    return folder, train, test


def locate_dataset(spec: str, cwd: str | os.PathLike | None = None) -> str:
    """Where the ``dataset`` spec is, as `accelnas.train.load.load_data` resolves it, without
    loading it or importing TensorFlow (a run checks it before its first notebook).

    * ``cifar10``: the .npz (`find_cifar10_npz`), else Keras's cache folder (no download is tried);
    * ``folder:PATH``: its layout (`check_folder`); a relative ``PATH`` is relative to ``cwd``;
    * ``tfrecord:GLOB``: training and test files (`split_files`);
    * ``tfds:NAME``: its prepared folder and shards (`tfds_folder`);
    * ``synthetic``: always there.

    Raises:
        FileNotFoundError: not found; the message lists every place tried and what to set.
        ValueError: files there, but not the layout needed.
    """
    if spec == "cifar10":
        npz, tried = find_cifar10_npz()
        if npz is not None:
            return str(npz)
        cache_dirs = _keras_cache_dirs()
        for d in cache_dirs:
            if d.exists():
                return f"keras cache {d}"
        raise cifar10_not_found(tried + [f"keras cache {' | '.join(map(str, cache_dirs))}: not found"])
    if spec.startswith("folder:"):
        path = Path(cwd or ".") / Path(spec[len("folder:"):]).expanduser()
        check_folder(path, f"; a relative PATH is relative to {Path(cwd or '.').resolve()}, where the "
                           "notebooks run")
        return str(path.resolve())
    if spec.startswith("tfrecord:"):
        train, test = split_files(spec[len("tfrecord:"):])
        return f"{len(train)} train + {len(test)} test TFRecord files"
    if spec.startswith("tfds:"):
        folder, train, test = tfds_folder(spec[len("tfds:"):])
        return f"{folder} ({len(train)} train + {len(test)} test TFRecord shards)"
    return spec


# ----------------------------------------------------------------------------------------- tfds

def _load_tfds(name: str, *, seed, val_fraction, subset, val_images=0, image_size) -> Dataset:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError(
            f"dataset 'tfds:{name}' needs the tensorflow_datasets package, which is not "
            "installed (pip install tensorflow-datasets), and the data already prepared on disk "
            "(it is read with download=False). Offline alternatives: dataset: cifar10 with "
            f"{DATA_DIR_ENV}, folder:PATH, or synthetic.") from None
    import tensorflow as tf

    data_dir = os.environ.get("TFDS_DATA_DIR")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:
        raise ValueError(f"dataset 'tfds:{name}': unknown to tensorflow_datasets: "
                         f"{_first_line(e)}") from None
    where = getattr(builder, "data_dir", data_dir or "~/tensorflow_datasets")
    try:
        prepared = tf.io.gfile.exists(os.path.join(str(where), "dataset_info.json"))
    except Exception:
        prepared = False
    if not prepared:
        raise FileNotFoundError(
            f"dataset 'tfds:{name}' is not on disk at {where} (accelnas never downloads it). "
            f"Prepare it once where there is internet (tfds.builder({name!r}).download_and_prepare())"
            " and copy it here, pointing TFDS_DATA_DIR at its root.")
    splits = list(builder.info.splits.keys())
    test_split = "test" if "test" in splits else "validation" if "validation" in splits else None
    if "train" not in splits or test_split is None:
        raise ValueError(f"dataset 'tfds:{name}' needs a 'train' and a 'test' or 'validation' "
                         f"split; it has {splits}")
    label = builder.info.features["label"] if "label" in builder.info.features else None
    classes = tuple(getattr(label, "names", None) or ())
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)

    def read(split):
        ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)

        def prep(img, lab):
            if img.shape.rank == 3 and img.shape[-1] == 1:
                img = tf.image.grayscale_to_rgb(img)
            img = tf.image.resize(img, size, method="area")
            return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8), tf.cast(lab, tf.int32)

        xs, ys = [], []
        for xb, yb in ds.map(prep).batch(512).as_numpy_iterator():
            xs.append(xb)
            ys.append(yb)
        return np.concatenate(xs), np.concatenate(ys)

    x_pool, y_pool = read("train")
    x_test, y_test = read(test_split)
    if not classes:
        classes = tuple(str(k) for k in range(int(max(y_pool.max(), y_test.max())) + 1))
    return _assemble(x_pool, y_pool, x_test, y_test, classes, f"tfds:{name} ({where})",
                     seed=seed, val_fraction=val_fraction, subset=subset, val_images=val_images)


# ---------------------------------------------------------------------------------- load_arrays

def load_arrays(spec: str, *, seed: int = 0, val_fraction: float = 0.1, subset: int | None = None,
                image_size: int | Sequence[int] = 32, val_images: int = 0) -> Dataset:
    """Resolve a ``dataset`` spec and load it into memory, split into train / val / test.

    Args:
        spec: ``cifar10``, ``synthetic``, ``folder:PATH`` or ``tfds:NAME`` (the params key
            ``dataset``).
        seed: seeds the split and the subset (same spec + seed => same arrays).
        val_fraction: share of the training data held out for validation, in [0, 1). With
            ``subset``, the validation split has ``round(subset * val_fraction / (1 -
            val_fraction))`` images, so that it is ``val_fraction`` of train + val.
        subset: number of training images kept (class-balanced: each class in proportion to its
            share of the training pool, within one image); None keeps all. Larger than what is
            available: all are kept, with a warning.
        image_size: height = width (int) or ``(height, width)`` in pixels that ``folder:`` and
            ``tfds:`` images are resized to, and the size of ``synthetic`` images (int only).
            CIFAR-10 is always 32 px; `make_pipeline` resizes for training.
        val_images: validation images drawn from the training pool (disjoint from the training
            subset) instead of the ``val_fraction`` rule; 0: the rule. A validation split of a few
            hundred images resolves accuracy to +-2-3 points only (params key ``proxy.val_images``).
            Ignored where the data has its own validation split.

    Returns:
        The `Dataset`.

    Raises:
        FileNotFoundError: the data is not found (the message lists every place tried and what to
            set).
        ValueError: an unknown spec, bad arguments, or a malformed file / folder.
        ImportError: ``tfds:`` without tensorflow_datasets installed.
    """
    _check_args(seed, val_fraction, subset, val_images)
    seed = int(seed)
    if spec == "cifar10":
        return _load_cifar10(seed=seed, val_fraction=val_fraction, subset=subset, val_images=val_images)
    if spec == "synthetic":
        if not isinstance(image_size, int):
            raise ValueError(f"synthetic images are square: image_size must be an int, "
                             f"got {image_size!r}")
        return _load_synthetic(seed=seed, val_fraction=val_fraction, subset=subset,
                               image_size=image_size, val_images=val_images)
    if isinstance(spec, str) and spec.startswith("folder:") and len(spec) > len("folder:"):
        return _load_folder(spec[len("folder:"):], seed=seed, val_fraction=val_fraction,
                            subset=subset, image_size=image_size, val_images=val_images)
    if isinstance(spec, str) and spec.startswith("tfds:") and len(spec) > len("tfds:"):
        return _load_tfds(spec[len("tfds:"):], seed=seed, val_fraction=val_fraction,
                          subset=subset, image_size=image_size, val_images=val_images)
    raise ValueError(f"unknown dataset {spec!r}; choose cifar10, synthetic, folder:PATH or tfds:NAME")


# ------------------------------------------------------------------------------------- pipeline

def make_pipeline(x: np.ndarray, y: np.ndarray, *, batch_size: int, resolution: int,
                  training: bool, seed: int, augment: bool = True, cache: bool = True,
                  mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  drop_remainder: bool = False, epochs: int | None = None, first_epoch: int = 0):
    """A batched tf.data pipeline of normalized float images.

    Per batch: uint8 -> float32 in [0, 1]; resized to ``resolution`` x ``resolution`` when the
    images differ (bilinear, antialiased when shrinking); when ``training and augment``: random
    horizontal flip and random crop after padding by ``resolution // 8`` pixels (at least 1) with
    the mean colour, in TF ops on the batch; then ``(x - mean) / std`` per channel.

    Training pipelines are shuffled, the whole array, and hold the epochs ``first_epoch`` ..
    ``epochs - 1`` back to back (``epochs`` None: one epoch, ``first_epoch``); train with
    ``steps_per_epoch``. Epoch ``e``'s order and augmentations are pure functions of ``(seed, e)``
    (stateless random ops, no random state in the pipeline): the same under any
    `tf.distribute` strategy (Keras's distribution re-creates a dataset, which reseeds stateful
    random ops) and after a resume from epoch ``e`` (``first_epoch=e``). Evaluation pipelines keep the
    order and, with ``cache``, keep their preprocessed batches in memory after the first pass when
    they take at most 1 GiB (the source arrays are already in memory, so training needs no cache).
    Batches are prefetched (``AUTOTUNE``).

    Args:
        x: uint8 images ``(N, H, W, C)``.
        y: integer labels ``(N,)`` (returned as int32).
        batch_size: images per batch.
        resolution: output height = width, pixels.
        training: shuffle and (with ``augment``) augment.
        seed: seed of the shuffle and the augmentation.
        augment: flip + crop augmentation (training only).
        cache: cache evaluation batches (see above).
        mean, std: per-channel statistics in [0, 1] units (`Dataset.mean` / `Dataset.std`; the
            CIFAR-10 constants for CIFAR-10). None: computed from ``x`` (pass the training
            set's statistics when building validation/test pipelines).
        drop_remainder: drop the last, smaller batch.
        epochs / first_epoch: the epochs of a training pipeline (see above).

    Returns:
        ``tf.data.Dataset`` of ``(images, labels)``: float32 ``(B, resolution, resolution, C)``
        and int32 ``(B,)``.
    """
    import tensorflow as tf

    x = np.asarray(x)
    y = np.asarray(y).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4:
        raise TypeError(f"x must be uint8 images (N, H, W, C), got {x.dtype} {x.shape}")
    if len(y) != len(x):
        raise ValueError(f"{len(y)} labels for {len(x)} images")
    if batch_size < 1 or resolution < 1:
        raise ValueError(f"batch_size and resolution must be positive, got {batch_size}, {resolution}")
    channels = x.shape[-1]
    if mean is None or std is None:
        mean, std = channel_stats(x)
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {channels} channels")
    mean_t = tf.constant(np.asarray(mean, np.float32).reshape(1, 1, 1, channels))
    std_t = tf.constant(np.asarray(std, np.float32).reshape(1, 1, 1, channels))
    src_h, src_w = x.shape[1], x.shape[2]
    resize = (src_h, src_w) != (resolution, resolution)
    antialias = resolution < max(src_h, src_w)
    do_augment = training and augment
    pad = max(1, resolution // 8)

    def base(images):
        images = tf.cast(images, tf.float32) / 255.0
        if resize:
            images = tf.image.resize(images, (resolution, resolution), method="bilinear",
                                     antialias=antialias)
        return (images - mean_t) / std_t

    def augment_fn(images, rng_seed):
        flip_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(rng_seed, 2))
        b = tf.shape(images)[0]
        flip = tf.random.stateless_uniform([b], flip_seed) < 0.5
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])  # 0 = mean colour
        offs = tf.random.stateless_uniform([b, 2], crop_seed, minval=0, maxval=2 * pad + 1,
                                           dtype=tf.int32)
        rows = offs[:, :1] + tf.range(resolution)[None, :]
        cols = offs[:, 1:] + tf.range(resolution)[None, :]
        images = tf.gather(padded, rows, axis=1, batch_dims=1)
        return tf.gather(images, cols, axis=2, batch_dims=1)

    if training:
        return _training_epochs(x, y.astype(np.int32), batch_size=batch_size, seed=seed,
                                first=int(first_epoch),
                                last=int(first_epoch) + 1 if epochs is None else int(epochs),
                                drop_remainder=drop_remainder,
                                prep=(lambda xb, s: augment_fn(base(xb), s)) if do_augment
                                else (lambda xb, s: base(xb)))
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda xb, yb: (base(xb), yb), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache and len(x) * resolution * resolution * channels * 4 <= _EVAL_CACHE_MAX_BYTES:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE)


def epoch_seed(seed: int, epoch, batch):
    """The stateless seed (int64 ``[2]``) of one training batch's random ops."""
    import tensorflow as tf

    return tf.stack([tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64), tf.cast(batch, tf.int64)])


def epoch_order(n: int, seed: int, epoch):
    """A permutation of ``range(n)`` (int64 tensor), a pure function of ``(seed, epoch)``."""
    import tensorflow as tf

    if n <= 1:
        return tf.range(n, dtype=tf.int64)
    return tf.random.experimental.index_shuffle(tf.range(n, dtype=tf.int64), epoch_seed(seed, epoch, -1),
                                                n - 1)


def _training_epochs(x, y, *, batch_size, seed, first, last, drop_remainder, prep):
    """Epochs ``first .. last - 1`` of shuffled, prepared batches of in-memory arrays."""
    import tensorflow as tf

    x_t, y_t, n = tf.constant(x), tf.constant(y), len(x)

    def epoch(e):
        ids = tf.data.Dataset.from_tensor_slices(epoch_order(n, seed, e))
        ids = ids.batch(batch_size, drop_remainder=drop_remainder).enumerate()
        return ids.map(lambda b, ib: (prep(tf.gather(x_t, ib), epoch_seed(seed, e, b)), tf.gather(y_t, ib)),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return tf.data.Dataset.range(first, max(first + 1, last)).flat_map(epoch).prefetch(tf.data.AUTOTUNE)