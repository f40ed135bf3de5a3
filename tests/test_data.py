"""Dataset resolution (`accelnas.train.data.load_arrays`) and the tf.data pipeline (`make_pipeline`).

The CIFAR-10 tests read ``cifar10.npz`` from the `cifar_dir` fixture (tests/conftest.py:
``$ACCELNAS_DATA_DIR`` or ../shared/data beside the checkout; skipped when neither holds it). The
npz is read once per module.
"""
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from accelnas.train import data
from accelnas.train.data import load_arrays, make_pipeline
from accelnas.train.load import load_proxy

@pytest.fixture(scope="module")
def cifar(cifar_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv(data.DATA_DIR_ENV, str(cifar_dir))
    try:
        yield load_arrays("cifar10", subset=2000, seed=0)
    finally:
        mp.undo()


# ------------------------------------------------------------------------------------ cifar10

def test_cifar10_shapes_classes_and_source(cifar, cifar_dir):
    d = cifar
    for x in (d.x_train, d.x_val, d.x_test):
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3)
    assert len(d.x_train) == len(d.y_train) == 2000
    assert len(d.x_val) == len(d.y_val) == 222          # 10 % of train + val
    assert len(d.x_test) == len(d.y_test) == 10000      # the test split is untouched
    assert d.num_classes == 10 and d.classes[0] == "airplane" and d.classes[-1] == "truck"
    assert d.source == str(cifar_dir / "cifar10.npz")
    assert d.mean == data.CIFAR10_MEAN and d.std == data.CIFAR10_STD
    assert not d.x_train.flags.writeable


def test_cifar10_val_held_out_and_class_mix(cifar):
    d = cifar
    assert len(np.intersect1d(d.train_indices, d.val_indices)) == 0
    assert len(np.unique(d.train_indices)) == len(d.train_indices)
    counts = np.bincount(d.y_train, minlength=10)
    assert counts.min() >= 199 and counts.max() <= 201, counts  # sorted file, balanced subset
    assert (np.bincount(d.y_val, minlength=10) >= 20).all()
    # the arrays are the npz rows the indices name
    with np.load(Path(d.source), allow_pickle=False) as z:
        x_all, y_all = z["x_train"], z["y_train"]
    np.testing.assert_array_equal(d.x_train[:50], x_all[d.train_indices[:50]])
    np.testing.assert_array_equal(d.y_val, y_all[d.val_indices])


def test_val_images_decouples_the_validation_split_from_the_subset(cifar_dir, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(cifar_dir))
    d = load_arrays("cifar10", subset=500, val_images=1500, seed=0)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (500, 1500, 10000)
    assert len(np.intersect1d(d.train_indices, d.val_indices)) == 0
    assert (np.bincount(d.y_val, minlength=10) >= 140).all()          # stratified
    rule = load_arrays("cifar10", subset=500, seed=0)                  # 0: 10 % of train + val
    assert len(rule.y_val) == 56
    params = {"dataset": "cifar10", "seed": 0,
              "proxy": {"subset": 500, "val_images": 1500, "resolution": 32}}
    np.testing.assert_array_equal(load_proxy(params).val_indices, d.val_indices)
    with pytest.raises(ValueError, match="val_images"):
        load_arrays("cifar10", subset=500, val_images=-1)


def test_cifar10_deterministic_with_seed(cifar, cifar_dir, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(cifar_dir))
    again = load_arrays("cifar10", subset=2000, seed=0)
    np.testing.assert_array_equal(again.train_indices, cifar.train_indices)
    np.testing.assert_array_equal(again.x_val, cifar.x_val)
    other = load_arrays("cifar10", subset=2000, seed=1)
    assert not np.array_equal(other.train_indices, cifar.train_indices)


def test_cifar10_missing_names_every_path_quickly(tmp_path, monkeypatch):
    import keras

    def offline():
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv(data.DATA_DIR_ENV, str(empty))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        load_arrays("cifar10")
    assert time.perf_counter() - t0 < 2.0
    msg = str(info.value)
    assert str(empty / "cifar10.npz") in msg
    assert str(tmp_path / ".keras" / "datasets" / "cifar-10-batches-py") in msg
    assert data.CIFAR10_URL in msg and "Name or service not known" in msg
    assert "set ACCELNAS_DATA_DIR" in msg.replace("Set", "set")


def test_cifar10_malformed_npz(tmp_path, monkeypatch):
    np.savez(tmp_path / "cifar10.npz", images=np.zeros((2, 32, 32, 3), np.uint8),
             labels=np.zeros(2, np.uint8))
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=r"cifar10\.npz.*missing key.*x_train"):
        load_arrays("cifar10")


def test_cifar10_npz_wrong_shape_and_pickles_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    good = dict(y_train=np.zeros(2, np.uint8), x_test=np.zeros((1, 32, 32, 3), np.uint8),
                y_test=np.zeros(1, np.uint8))
    np.savez(tmp_path / "cifar10.npz", x_train=np.zeros((2, 28, 28, 3), np.uint8), **good)
    with pytest.raises(ValueError, match=r"'x_train' must be uint8 \(N, 32, 32, 3\)"):
        load_arrays("cifar10")
    obj = np.empty(2, dtype=object)
    np.savez(tmp_path / "cifar10.npz", x_train=obj, **good)  # object array = pickle inside
    with pytest.raises(ValueError, match="not a valid CIFAR-10 .npz"):
        load_arrays("cifar10")


# ---------------------------------------------------------------------------------- synthetic

def test_synthetic_deterministic_balanced_learnable():
    a, b = load_arrays("synthetic", seed=3), load_arrays("synthetic", seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert a.x_train.dtype == np.uint8 and a.x_train.shape[1:] == (32, 32, 3)
    assert a.num_classes == 10
    for y in (a.y_train, a.y_val, a.y_test):
        counts = np.bincount(y, minlength=10)
        assert counts.max() - counts.min() <= 1, counts
    assert len(np.intersect1d(a.train_indices, a.val_indices)) == 0
    # learnable: a nearest-class-mean classifier on 8x8-pooled pixels beats chance by far
    pool = lambda x: x.reshape(len(x), 8, 4, 8, 4, 3).mean((2, 4)).reshape(len(x), -1)
    centres = np.stack([pool(a.x_train)[a.y_train == k].mean(0) for k in range(10)])
    pred = np.argmin(((pool(a.x_test)[:, None] - centres[None]) ** 2).sum(-1), 1)
    assert (pred == a.y_test).mean() > 0.5
    small = load_arrays("synthetic", subset=100, image_size=16)
    assert small.x_train.shape == (100, 16, 16, 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_arrays("mnist")
    with pytest.raises(ValueError, match="val_fraction"):
        load_arrays("synthetic", val_fraction=1.0)
    with pytest.raises(ValueError, match="subset"):
        load_arrays("synthetic", subset=0)


def test_tfds_without_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
    with pytest.raises(ImportError, match="tensorflow_datasets.*download=False"):
        load_arrays("tfds:cifar10")


# ------------------------------------------------------------------------------------- folder

def _write_png(path: Path, h: int, w: int, rgb) -> None:
    from PIL import Image

    Image.fromarray(np.full((h, w, 3), rgb, np.uint8)).save(path)


def test_folder_dataset(tmp_path):
    colours = {"cats": (200, 30, 30), "dogs": (30, 30, 200)}
    for split, n in (("train", 10), ("test", 3)):
        for name, rgb in colours.items():
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(n):
                _write_png(tmp_path / split / name / f"{i}.png", 20 + 7 * i, 30 + 3 * i, rgb)
    d = load_arrays(f"folder:{tmp_path}", image_size=24, val_fraction=0.2, seed=1)
    assert d.classes == ("cats", "dogs")
    assert d.x_train.shape == (16, 24, 24, 3) and d.x_val.shape == (4, 24, 24, 3)
    assert d.x_test.shape == (6, 24, 24, 3) and d.x_train.dtype == np.uint8
    assert np.bincount(d.y_val).tolist() == [2, 2]
    red = d.x_train[d.y_train == 0].reshape(-1, 3).mean(0)
    assert red[0] > 150 and red[2] < 80                     # labels follow the folders
    assert d.source == str(tmp_path.resolve())


def test_folder_missing_parts(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_arrays(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="neither test/ nor val/"):
        load_arrays(f"folder:{tmp_path}")


# ----------------------------------------------------------------------------------- pipeline

def test_pipeline_shapes_resize_and_normalization(cifar):
    d = cifar
    ds = make_pipeline(d.x_train, d.y_train, batch_size=250, resolution=16, training=True, seed=0,
                       mean=d.mean, std=d.std)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 8
    xb, yb = batches[0]
    assert xb.shape == (250, 16, 16, 3) and xb.dtype == np.float32 and yb.dtype == np.int32
    x_all = np.concatenate([b[0] for b in batches])
    assert abs(float(x_all.mean())) < 0.15
    assert 0.6 < float(x_all.std()) < 1.3
    # training batches are shuffled, seeded: same seed, same first batch
    again = next(make_pipeline(d.x_train, d.y_train, batch_size=250, resolution=16,
                               training=True, seed=0, mean=d.mean, std=d.std).as_numpy_iterator())
    np.testing.assert_array_equal(again[0], xb)
    assert not np.array_equal(yb, d.y_train[:250])


def test_pipeline_eval_is_ordered_and_unaugmented(cifar):
    d = cifar
    ds = d.pipeline("val", batch_size=100)                  # native 32 px, dataset statistics
    xs, ys = zip(*ds.as_numpy_iterator())
    assert [len(y) for y in ys] == [100, 100, 22]
    np.testing.assert_array_equal(np.concatenate(ys), d.y_val)
    expected = (d.x_val[:100] / 255.0 - np.array(d.mean)) / np.array(d.std)
    np.testing.assert_allclose(xs[0], expected, atol=1e-5)


def test_pipeline_stats_from_data_when_not_given():
    x = np.random.default_rng(0).integers(0, 256, size=(64, 8, 8, 3), dtype=np.uint8)
    y = np.arange(64) % 4
    xb, yb = next(make_pipeline(x, y, batch_size=64, resolution=8, training=False,
                                seed=0).as_numpy_iterator())
    assert abs(float(xb.mean())) < 1e-4 and abs(float(xb.std()) - 1.0) < 1e-3
    with pytest.raises(TypeError, match="uint8"):
        make_pipeline(x.astype(np.float32), y, batch_size=8, resolution=8, training=False, seed=0)
