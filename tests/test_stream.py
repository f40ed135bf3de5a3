"""Streamed datasets (`accelnas.train.stream`): generated JPEG folders and TFRecord files."""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from accelnas.train import stream  # noqa: E402

CLASSES = 3


def _jpeg(rng, label, size=24) -> bytes:
    img = rng.integers(0, 60, (size, size + 4, 3)).astype(np.uint8)
    img[..., label] += 150  # the class is the dominant colour
    return tf.io.encode_jpeg(img).numpy()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 20), ("test", 6)):
        for c in range(CLASSES):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(per_class):
                (d / f"{i:03d}.jpg").write_bytes(_jpeg(rng, c))
    return root


def _example(img: bytes, label: int) -> bytes:
    f = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": f(bytes_list=tf.train.BytesList(value=[img])),
        "image/class/label": f(int64_list=tf.train.Int64List(value=[label]))})).SerializeToString()


@pytest.fixture(scope="module")
def records(tmp_path_factory, monkeypatch_module=None):
    root = tmp_path_factory.mktemp("rec")
    rng = np.random.default_rng(1)
    k = 0
    for name, n in (("train-00000-of-00003", 20), ("train-00001-of-00003", 20),
                    ("train-00002-of-00003", 20), ("validation-00000-of-00001", 12)):
        with tf.io.TFRecordWriter(str(root / name)) as w:
            for _ in range(n):
                label = k % CLASSES
                w.write(_example(_jpeg(rng, label), label + 1))  # 1-based, as the model garden's
                k += 1
    return root


def _labels_seen(ds) -> list[int]:
    return [int(v) for _, yb in ds for v in yb.numpy()]


def _keys(data, split):
    return list(data._splits[split].keys)


@pytest.mark.parametrize("kind", ["folder", "tfrecord"])
def test_split_subset_deterministic_and_every_image_once(kind, folder, records, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELNAS_CACHE_DIR", str(tmp_path))
    if kind == "folder":
        open_ = lambda seed: stream.open_folder(folder, seed=seed, subset=30, val_images=9)  # noqa: E731
    else:
        open_ = lambda seed: stream.open_tfrecord(str(records / "*"), seed=seed, subset=30, val_images=9)  # noqa: E731
    a, b, c = open_(0), open_(0), open_(1)
    assert (a.size("train"), a.size("val")) == (30, 9)
    assert a.size("test") == (18 if kind == "folder" else 12)
    assert _keys(a, "train") == _keys(b, "train") and _keys(a, "val") == _keys(b, "val")
    assert _keys(a, "train") != _keys(c, "train")
    assert not set(_keys(a, "train")) & set(_keys(a, "val"))
    assert np.bincount(a.labels("train"), minlength=CLASSES).tolist() == [10, 10, 10]  # class-balanced
    # two epochs: each image once per epoch, in another order, and the same epochs again
    ds = a.pipeline("train", batch_size=7, resolution=16, seed=3, epochs=2)
    batches = list(ds)
    assert all(xb.shape[1:] == (16, 16, 3) and xb.dtype == tf.float32 for xb, _ in batches)
    seen = [int(v) for _, yb in batches for v in yb.numpy()]
    assert len(seen) == 60 and sorted(seen[:30]) == sorted(a.labels("train").tolist()) == sorted(seen[30:])
    again = [int(v) for _, yb in a.pipeline("train", batch_size=7, resolution=16, seed=3, epochs=2) for v in yb.numpy()]
    assert again == seen
    # a resume from epoch 1 sees epoch 1 as the uninterrupted run did
    resumed = _labels_seen(a.pipeline("train", batch_size=7, resolution=16, seed=3, epochs=2, first_epoch=1))
    assert resumed == seen[30:]
    # evaluation: index order, centre crop, every test image once
    assert sorted(_labels_seen(a.pipeline("test", batch_size=8, resolution=16))) == sorted(a.labels("test").tolist())


def test_tfrecord_labels_shifted_and_cached(records, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELNAS_CACHE_DIR", str(tmp_path))
    d = stream.open_tfrecord(str(records / "*"), seed=0, subset=None)
    assert d.num_classes == CLASSES and "shifted" in d.source
    assert len(list(tmp_path.glob("tfrecord-index-*.npz"))) == 1


def test_undecodable_file_is_named(folder, tmp_path):
    import shutil

    root = tmp_path / "bad"
    shutil.copytree(folder, root)
    (root / "train" / "class1" / "broken.jpg").write_bytes(b"this is not an image" * 10)
    d = stream.open_folder(root, seed=0, subset=None)
    with pytest.raises(tf.errors.InvalidArgumentError, match="broken.jpg"):
        list(d.pipeline("train", batch_size=64, resolution=16, seed=0))


def test_bad_tfrecord_inputs(records, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELNAS_CACHE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="matches no file"):
        stream.open_tfrecord(str(tmp_path / "nothing-*"), seed=0, subset=None)
    only_train = tmp_path / "only"
    only_train.mkdir()
    (only_train / "train-0").write_bytes((records / "train-00000-of-00003").read_bytes())
    with pytest.raises(ValueError, match="needs both"):
        stream.open_tfrecord(str(only_train / "*"), seed=0, subset=None)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for name in ("train-0", "test-0"):
        with tf.io.TFRecordWriter(str(wrong / name)) as w:
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))})).SerializeToString())
    with pytest.raises(ValueError, match=r"train-0: record 0 has no 'image/class/label' \(it has: label\)"):
        stream.open_tfrecord(str(wrong / "*"), seed=0, subset=None)


def test_tfds_prepared_folder_is_streamed_without_the_package(tmp_path, monkeypatch):
    """The on-disk layout TensorFlow Datasets writes: NAME/VERSION/dataset_info.json + shards."""
    from accelnas.train.data import locate_dataset

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ACCELNAS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="not prepared under"):
        stream.open_tfds("mini", seed=0, subset=None)
    rng = np.random.default_rng(2)
    for version, n in (("1.0.0", 4), ("1.2.0", 12)):  # the highest version is read
        d = tmp_path / "mini" / version
        d.mkdir(parents=True)
        (d / "dataset_info.json").write_text("{}")
        (d / "label.labels.txt").write_text("red\ngreen\nblue\n")
        for split, shards in (("train", 2), ("test", 1)):
            for k in range(shards):
                with tf.io.TFRecordWriter(str(d / f"mini-{split}.tfrecord-{k:05d}-of-{shards:05d}")) as w:
                    for i in range(n):
                        f = tf.train.Feature
                        w.write(tf.train.Example(features=tf.train.Features(feature={
                            "image": f(bytes_list=tf.train.BytesList(value=[_jpeg(rng, i % 3)])),
                            "label": f(int64_list=tf.train.Int64List(value=[i % 3]))})).SerializeToString())
    assert "1.2.0" in locate_dataset("tfds:mini")
    ds = stream.open_tfds("mini", seed=0, subset=18, val_images=6)
    assert ds.classes == ("red", "green", "blue") and "1.2.0" in ds.source
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (18, 6, 12)
    seen = _labels_seen(ds.pipeline("train", batch_size=5, resolution=16, seed=0))
    assert sorted(seen) == sorted(ds.labels("train").tolist())


def test_undecodable_record_is_named(records, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("ACCELNAS_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "rec"
    shutil.copytree(records, root)
    with tf.io.TFRecordWriter(str(root / "train-00002-of-00003")) as w:  # replaces a shard
        w.write(_example(b"\x00garbage, not an image", 1))
    d = stream.open_tfrecord(str(root / "*"), seed=0, subset=None, val_images=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"record 40 in .*train-00002-of-00003"):
        list(d.pipeline("train", batch_size=64, resolution=16, seed=0))
