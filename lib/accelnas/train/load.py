"""The data a params file names, in memory or streamed: what every training of a run loads.

`load_data` dispatches on the ``dataset`` spec: ``cifar10`` and ``synthetic`` into memory
(`accelnas.train.data.load_arrays`), ``folder:``, ``tfrecord:`` and ``tfds:`` streamed from disk
(`accelnas.train.stream`). Both kinds offer the interface training uses (``size``, ``pipeline``).
"""
from __future__ import annotations

from accelnas.train.data import load_arrays
from accelnas.train.stream import open_folder, open_tfds, open_tfrecord

STREAMED = ("folder:", "tfrecord:", "tfds:")
"""Dataset spec prefixes `load_data` streams from disk (`accelnas.train.stream`)."""


def load_data(params: dict, seed: int | None = None, subset: int | None = None,
              resolution: int | None = None):
    """The training data of a params dict: ``dataset`` split with ``proxy.subset`` training
    (``subset``: that many instead, e.g. ``stage2.subset``) and ``proxy.val_images`` validation
    images; ``seed`` None: the params' seed.

    ``cifar10`` and ``synthetic`` are loaded into memory (`load_arrays`; synthetic images made at
    ``resolution``, default ``proxy.resolution``); ``folder:``, ``tfrecord:`` and ``tfds:`` are
    streamed (`accelnas.train.stream.StreamedDataset`: only file or record indices and labels in
    memory).
    """
    proxy = params["proxy"]
    spec, seed = params["dataset"], params["seed"] if seed is None else seed
    kw = dict(seed=seed, subset=subset or proxy["subset"], val_images=proxy.get("val_images", 0))
    if spec.startswith("folder:"):
        return open_folder(spec[len("folder:"):], **kw)
    if spec.startswith("tfds:"):
        return open_tfds(spec[len("tfds:"):], **kw)
    if spec.startswith("tfrecord:"):
        return open_tfrecord(spec[len("tfrecord:"):], **kw)
    return load_arrays(spec, image_size=resolution or proxy["resolution"], **kw)


def load_proxy(params: dict, seed: int | None = None, subset: int | None = None):
    """`load_data` at the proxy resolution (what the search, scaling and report notebooks train on)."""
    return load_data(params, seed=seed, subset=subset)
