"""Datasets that do not fit in memory, decoded inside tf.data: ``folder:PATH``, ``tfrecord:GLOB``, ``tfds:NAME``.

A `StreamedDataset` keeps, per split, only the index of its images (file paths, or record numbers
in a fixed order of the files) and their labels; the pixels are read and decoded inside the
tf.data pipeline (parallel map, prefetch), a batch at a time, so memory stays flat whatever the
dataset's size. It offers the interface `accelnas.train.proxy_train` trains on (``size``,
``pipeline``, ``num_classes``, ``source``), like the in-memory `accelnas.train.data.Dataset`.

- ``folder:PATH``: ``PATH/train/<class>/*`` with ``PATH/test/<class>/*`` and/or ``PATH/val/<class>/*``
  (as for the in-memory loader: ``val/`` alone is the test split, ImageNet's convention; with both,
  ``val/`` is the validation split); JPEG, PNG, GIF, BMP.
- ``tfrecord:GLOB``: TFRecord files of ``tf.train.Example`` records with ``image/encoded`` (the
  encoded image) and ``image/class/label`` (int64), the layout of TensorFlow's model garden and
  TFDS ImageNet records. Files whose name contains ``train`` are the training pool; those whose
  name contains ``validation``, ``val`` or ``test`` are the test split. Labels that start at 1
  (the model garden's ImageNet, 0 being "background") are shifted to start at 0.
- ``tfds:NAME``: a TensorFlow Datasets dataset prepared on disk, its TFRecord shards read directly
  (`tfds_folder`; no tensorflow_datasets package needed).

Splits and subsets are chosen from the labels alone, never the pixels, with the in-memory loader's
rules (`accelnas.train.data`): a seeded, class-stratified order of the training pool whose first
``n_val`` images are the validation split and the next ``subset`` the training subset (each class
in proportion within one image). TFRecord labels come from one pass that parses only the label
feature; the index is cached (``$ACCELNAS_CACHE_DIR`` or ``~/.cache/accelnas``, keyed by the files'
names, sizes and modification times).

Augmentation, the paper's (Inception-style, as in EfficientNet's and MnasNet's ImageNet
training): training images get a random-resized crop (8-100 % of the area, aspect ratio 3/4-4/3)
resized to the budget's resolution and a random horizontal flip; evaluation images a centre crop of
``resolution / (resolution + 32)`` of the shorter side, resized. Pixels are normalised with ImageNet's
channel statistics (`IMAGENET_MEAN`, `IMAGENET_STD`; computing a dataset's own would read every pixel).
Every random choice is a pure function of (seed, epoch, position), so training order and
augmentation are the same under any `tf.distribute` strategy and after a resume.

An undecodable file or record (not an image) stops the pipeline with an error that names it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from accelnas.train.data import (IMAGE_EXTENSIONS, _split_sizes, _stratified_order, check_folder,
                                 epoch_order, epoch_seed, split_files, tfds_folder)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel (RGB) mean of ImageNet's training images, in [0, 1] (torchvision / Keras)."""
IMAGENET_STD = (0.229, 0.224, 0.225)
LABEL_KEY = "image/class/label"
IMAGE_KEY = "image/encoded"
CACHE_ENV = "ACCELNAS_CACHE_DIR"
CROP_PADDING = 32  # evaluation centre crop: resolution / (resolution + 32) of the shorter side
PREFETCH_BATCHES = 2  # batches decoded ahead of training (a fixed, small buffer)
AUTOTUNE_RAM_BYTES = 1 << 29
"""tf.data's autotuner may grow its buffers up to this (its default, half the machine's memory, let
a 224 px pipeline that outruns training buffer 8.5 GiB: benchmarks/stream_bench.py)."""
SHUFFLE_CHUNK = 1024  # records shuffled together (besides the per-epoch file order) in TFRecord streams
_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG", "gif": b"GIF8", "bmp": b"BM"}


@dataclass(frozen=True)
class _Split:
    keys: np.ndarray     # folder: file paths; records: global record numbers (int64)
    labels: np.ndarray   # int32


class StreamedDataset:
    """A dataset read from disk batch by batch (module docstring).

    Attributes:
        source: where the data is (folder, glob, tfds name).
        classes: class names; label ``i`` is ``classes[i]``.
        mean, std: the channel statistics images are normalised with (ImageNet's).
    """

    def __init__(self, source: str, classes: Sequence[str], splits: dict, reader) -> None:
        self.source = source
        self.classes = tuple(str(c) for c in classes)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self._splits = splits
        self._reader = reader

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def size(self, split: str) -> int:
        """Images in the split ``train``, ``val`` or ``test``."""
        return len(self._get(split).labels)

    def labels(self, split: str) -> np.ndarray:
        """The split's labels (int32), in index order."""
        return self._get(split).labels

    def _get(self, split: str) -> _Split:
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; choose from train, val, test")
        return self._splits[split]

    def pipeline(self, split: str, *, batch_size: int, resolution: int | None = None, seed: int = 0,
                 training: bool | None = None, augment: bool = True, cache: bool = True,
                 images: int | None = None, drop_remainder: bool = False, epochs: int | None = None,
                 first_epoch: int = 0):
        """Batches ``(float32 images (B, resolution, resolution, 3), int32 labels (B,))``.

        Args: as `accelnas.train.data.Dataset.pipeline` (``resolution`` is required: streamed
        images have no common size; ``cache`` is ignored: streamed splits are never cached).
        """
        import tensorflow as tf

        if not resolution:
            raise ValueError(f"{self.source}: a streamed dataset needs the training resolution")
        sp = self._get(split)
        keys, labels = sp.keys, sp.labels
        if images is not None and images < len(labels):
            idx = np.sort(np.random.default_rng(seed).choice(len(labels), size=int(images), replace=False))
            keys, labels = keys[idx], labels[idx]
        training = (split == "train") if training is None else training
        prep = _preprocess(int(resolution), training and augment)
        if training:
            first = int(first_epoch)
            last = max(first + 1, first + 1 if epochs is None else int(epochs))
            ds = tf.data.Dataset.range(first, last).flat_map(
                lambda e: self._reader.epoch(keys, labels, seed, e).enumerate().map(
                    lambda i, rec: (rec[0], rec[1], rec[2], epoch_seed(seed, e, i))))
        else:
            ds = self._reader.ordered(keys, labels).map(lambda b, y, n: (b, y, n, tf.zeros([2], tf.int64)))
        ds = ds.map(lambda b, y, n, s: (prep(b, n, s), y), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(PREFETCH_BATCHES)
        options = tf.data.Options()
        options.autotune.ram_budget = AUTOTUNE_RAM_BYTES
        return ds.with_options(options)

    def summary(self) -> dict:
        return {"source": self.source, "num_classes": self.num_classes, "image_size": None,
                "train": self.size("train"), "val": self.size("val"), "test": self.size("test"),
                "mean": list(self.mean), "std": list(self.std), "streamed": True}

    def __repr__(self) -> str:
        return (f"StreamedDataset(source={self.source!r}, classes={self.num_classes}, "
                f"train={self.size('train')}, val={self.size('val')}, test={self.size('test')})")


# ------------------------------------------------------------------------------ preprocessing

def _preprocess(resolution: int, train: bool):
    """``(encoded bytes, name, seed) -> float32 (resolution, resolution, 3)`` (module docstring)."""
    import tensorflow as tf

    mean = tf.constant(IMAGENET_MEAN, tf.float32)
    std = tf.constant(IMAGENET_STD, tf.float32)

    def fn(encoded, name, seed):
        head = tf.strings.substr(encoded, 0, 4)
        ok = tf.reduce_any([tf.strings.substr(head, 0, len(m)) == m for m in _MAGIC.values()])
        with tf.control_dependencies([tf.debugging.Assert(ok, ["undecodable image (not a JPEG, PNG, GIF "
                                                               "or BMP):", name], summarize=1)]):
            img = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        shape = tf.shape(img)
        if train:
            crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
            begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
                shape, tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=crop_seed, min_object_covered=0.1,
                aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
                use_image_if_no_bounding_boxes=True)
            img = tf.slice(img, begin, size)
            img = tf.image.resize(img, (resolution, resolution), method="bilinear", antialias=True)
            img = tf.cond(tf.random.stateless_uniform([], flip_seed) < 0.5,
                          lambda: tf.reverse(img, axis=[1]), lambda: img)
        else:
            h, w = shape[0], shape[1]
            side = tf.cast(tf.cast(tf.minimum(h, w), tf.float32) * resolution / (resolution + CROP_PADDING),
                           tf.int32)
            side = tf.maximum(side, 1)
            img = tf.slice(img, [(h - side) // 2, (w - side) // 2, 0], [side, side, 3])
            img = tf.image.resize(img, (resolution, resolution), method="bilinear", antialias=True)
        img = tf.ensure_shape(img, (resolution, resolution, 3))
        return (img / 255.0 - mean) / std

    return fn


# ---------------------------------------------------------------------------------- readers

class _FolderReader:
    """Records are files: ``keys`` are their paths."""

    def ordered(self, keys, labels):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((keys.astype(str), labels.astype(np.int32)))
        return ds.map(lambda p, y: (tf.io.read_file(p), y, p), num_parallel_calls=tf.data.AUTOTUNE,
                      deterministic=True)

    def epoch(self, keys, labels, seed, e):
        import tensorflow as tf

        order = epoch_order(len(keys), seed, e)
        paths = tf.gather(tf.constant(keys.astype(str)), order)
        ys = tf.gather(tf.constant(labels.astype(np.int32)), order)
        return tf.data.Dataset.from_tensor_slices((paths, ys)).map(
            lambda p, y: (tf.io.read_file(p), y, p), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)


class _RecordReader:
    """Records in a fixed order over files: ``keys`` are global record numbers."""

    def __init__(self, files: Sequence[str], counts: Sequence[int], parse, shift: int = 0):
        self.files = list(files)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.parse = parse  # serialized record -> (encoded image, int64 label)
        self.shift = shift

    def _stream(self, file_ids, keep):
        """Records of the files ``file_ids`` (in that order), with their global numbers, keeping
        those whose number is in ``keep`` (a bool mask over all records)."""
        import tensorflow as tf

        files = tf.constant([self.files[i] for i in file_ids])
        offs = tf.constant(self.offsets[list(file_ids)])
        keep_t = tf.constant(keep)

        def one(f, off):
            return tf.data.TFRecordDataset(f).enumerate().map(lambda i, r: (i + off, r))

        ds = tf.data.Dataset.from_tensor_slices((files, offs)).interleave(
            one, cycle_length=min(8, max(1, len(file_ids))), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)
        ds = ds.filter(lambda n, r: tf.gather(keep_t, n))
        return ds.map(lambda n, r: (*self._decode(r), tf.strings.format("record {}", n)),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _decode(self, record):
        import tensorflow as tf

        img, label = self.parse(record)
        return img, tf.cast(label, tf.int32) - self.shift

    def _mask_and_files(self, keys):
        keep = np.zeros(int(self.offsets[-1]), bool)
        keep[keys.astype(np.int64)] = True
        file_of = np.searchsorted(self.offsets, keys.astype(np.int64), side="right") - 1
        return keep, sorted(set(file_of.tolist()))

    def ordered(self, keys, labels):
        keep, files = self._mask_and_files(keys)
        return self._stream(files, keep)

    def epoch(self, keys, labels, seed, e):
        import tensorflow as tf

        keep, files = self._mask_and_files(keys)
        files_t = tf.constant(np.asarray(files, np.int64))
        order = tf.gather(files_t, epoch_order(len(files), seed, e))
        offsets, paths, keep_t = tf.constant(self.offsets), tf.constant(self.files), tf.constant(keep)

        def one(fid):
            off = tf.gather(offsets, fid)
            return tf.data.TFRecordDataset(tf.gather(paths, fid)).enumerate().map(
                lambda i, r: (i + off, r, tf.gather(paths, fid)))

        ds = tf.data.Dataset.from_tensor_slices(order).interleave(
            one, cycle_length=min(8, max(1, len(files))), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)
        ds = ds.filter(lambda n, r, p: tf.gather(keep_t, n))
        # shuffle within chunks of records, statelessly: (seed, epoch, chunk) fixes each chunk's order
        ds = ds.batch(SHUFFLE_CHUNK).enumerate().map(
            lambda c, rec: _chunk_shuffle(rec, epoch_seed(seed, e, c + 1_000_000)))
        ds = ds.unbatch()
        return ds.map(lambda n, r, p: (*self._decode(r), tf.strings.format("record {} in {}", (n, p))),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _chunk_shuffle(rec, seed):
    import tensorflow as tf

    n = tf.shape(rec[0])[0]
    perm = tf.random.experimental.stateless_shuffle(tf.range(n), seed)
    return tuple(tf.gather(t, perm) for t in rec)


# ---------------------------------------------------------------------------------- folder:

def _list_images(root: Path, classes: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, tuple]:
    found = sorted(d.name for d in root.iterdir() if d.is_dir())
    classes = tuple(classes or found)
    extra = sorted(set(found) - set(classes))
    if extra:
        raise ValueError(f"{root}: class folders {extra} are not in the training classes")
    paths, labels = [], []
    for k, c in enumerate(classes):
        d = root / c
        if not d.is_dir():
            continue
        files = sorted(str(f) for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        paths += files
        labels += [k] * len(files)
    if not paths:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) in its class folders")
    return np.asarray(paths), np.asarray(labels, np.int32), classes


def open_folder(root: str | os.PathLike, *, seed: int, subset: int | None, val_fraction: float = 0.1,
                val_images: int = 0) -> StreamedDataset:
    """``folder:PATH`` as a `StreamedDataset` (module docstring); lists files, reads no pixels."""
    path = Path(root).expanduser()
    check_folder(path)
    pool_paths, pool_labels, classes = _list_images(path / "train")
    val = test = None
    if (path / "test").is_dir():
        test = _list_images(path / "test", classes)
        if (path / "val").is_dir():
            val = _list_images(path / "val", classes)
    else:
        test = _list_images(path / "val", classes)
    splits = _assemble(pool_paths, pool_labels, seed=seed, subset=subset, val_fraction=val_fraction,
                       val_images=val_images, own_val=None if val is None else val[:2])
    splits["test"] = _Split(test[0], test[1])
    return StreamedDataset(str(path.resolve()), classes, splits, _FolderReader())


def _assemble(keys, labels, *, seed, subset, val_fraction, val_images, own_val=None) -> dict:
    n_train, n_val = _split_sizes(len(labels), val_fraction, subset, own_val is not None, val_images)
    order = _stratified_order(labels, np.random.default_rng(seed))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:n_val + n_train])
    splits = {"train": _Split(keys[train_idx], labels[train_idx])}
    splits["val"] = _Split(*own_val) if own_val is not None else _Split(keys[val_idx], labels[val_idx])
    return splits


# -------------------------------------------------------------------------------- tfrecord:

def _cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "accelnas")


def _record_labels(files: Sequence[str], keys: tuple[str, str] = (IMAGE_KEY, LABEL_KEY),
                   what: str = "tfrecord:") -> tuple[list[int], np.ndarray]:
    """Per file its record count, and every record's label (int64), parsing only the label
    (``keys``: the image and label features)."""
    image_key, label_key = keys
    import tensorflow as tf

    stamp = json.dumps([(f, os.path.getsize(f), os.path.getmtime(f)) for f in files])
    cache = _cache_dir() / f"tfrecord-index-{hashlib.sha256(stamp.encode()).hexdigest()[:20]}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                return [int(c) for c in z["counts"]], z["labels"]
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt
            pass
    spec = {label_key: tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
    counts, labels = [], []
    for f in files:
        part = []
        try:
            for batch in tf.data.TFRecordDataset(f).batch(8192):
                lab = tf.io.parse_example(batch, spec)[label_key].numpy()
                bad = np.flatnonzero(lab < 0)
                if len(bad):
                    rec = tf.train.Example.FromString(batch[int(bad[0])].numpy())
                    raise ValueError(f"{f}: record {sum(len(p) for p in part) + int(bad[0])} has no "
                                     f"{label_key!r} (it has: {', '.join(sorted(rec.features.feature)) or 'no features'}); "
                                     f"{what} datasets need {image_key!r} and {label_key!r} in every record")
                part.append(lab)
        except tf.errors.OpError as e:
            raise ValueError(f"{f}: not a readable TFRecord file ({e.message.splitlines()[0][:200]}); "
                             "remove it from the glob or rewrite it") from None
        counts.append(int(sum(len(p) for p in part)))
        labels.append(np.concatenate(part) if part else np.zeros(0, np.int64))
    labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".partial.npz")
        np.savez(tmp, counts=np.asarray(counts, np.int64), labels=labels)
        os.replace(tmp, cache)
    except OSError:
        pass  # an unwritable cache only costs the next run this pass again
    return counts, labels


def _parser(image_key: str = IMAGE_KEY, label_key: str = LABEL_KEY):
    """``serialized tf.train.Example -> (encoded image, int64 label)``."""
    import tensorflow as tf

    spec = {image_key: tf.io.FixedLenFeature([], tf.string, default_value=""),
            label_key: tf.io.FixedLenFeature([], tf.int64, default_value=-1)}

    def parse(record):
        f = tf.io.parse_single_example(record, spec)
        return f[image_key], f[label_key]

    return parse


def open_tfrecord(pattern: str, *, seed: int, subset: int | None, val_fraction: float = 0.1,
                  val_images: int = 0) -> StreamedDataset:
    """``tfrecord:GLOB`` as a `StreamedDataset` (module docstring); parses labels only."""
    train_files, test_files = split_files(pattern)
    counts, labels = _record_labels(train_files + test_files)
    n_train_recs = sum(counts[:len(train_files)])
    if len(labels) == 0:
        raise ValueError(f"dataset 'tfrecord:{pattern}': the files hold no records")
    shift = 1 if labels.min() >= 1 else 0
    labels = (labels - shift).astype(np.int32)
    num_classes = int(labels.max()) + 1
    reader = _RecordReader(train_files + test_files, counts, _parser(), shift)
    all_keys = np.arange(len(labels), dtype=np.int64)
    splits = _assemble(all_keys[:n_train_recs], labels[:n_train_recs], seed=seed, subset=subset,
                       val_fraction=val_fraction, val_images=val_images)
    splits["test"] = _Split(all_keys[n_train_recs:], labels[n_train_recs:])
    source = f"tfrecord:{pattern} ({len(train_files)} train + {len(test_files)} test files" + \
             (", labels shifted from 1-based)" if shift else ")")
    return StreamedDataset(source, [str(k) for k in range(num_classes)], splits, reader)


# ------------------------------------------------------------------------------------ tfds:

def open_tfds(name: str, *, seed: int, subset: int | None, val_fraction: float = 0.1,
              val_images: int = 0) -> StreamedDataset:
    """``tfds:NAME`` prepared on disk as a `StreamedDataset` (`tfds_folder`); parses labels only."""
    folder, train_files, test_files = tfds_folder(name)
    counts, labels = _record_labels(train_files + test_files, ("image", "label"), "tfds:")
    labels = labels.astype(np.int32)
    n_train = sum(counts[:len(train_files)])
    names_file = folder / "label.labels.txt"
    classes = (tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
               if names_file.is_file() else tuple(str(k) for k in range(int(labels.max()) + 1)))
    keys = np.arange(len(labels), dtype=np.int64)
    splits = _assemble(keys[:n_train], labels[:n_train], seed=seed, subset=subset,
                       val_fraction=val_fraction, val_images=val_images)
    splits["test"] = _Split(keys[n_train:], labels[n_train:])
    reader = _RecordReader(train_files + test_files, counts, _parser("image", "label"))
    return StreamedDataset(f"tfds:{name} ({folder})", classes, splits, reader)
