from types import SimpleNamespace

import pandas as pd
import pytest

from accelnas.space import zoo
from accelnas.train.cache import CACHE_FILE, load_cache, summarize, train_models

PROXY = {"subset": 256, "epochs": 1, "resolution": 16, "batch_size": 64, "width_mult": 0.25}
MODELS = [("v3s", "baseline", zoo.get("mobilenet_v3_small")),
          ("edgetpu_s", "baseline", zoo.get("efficientnet_edgetpu_s"))]


def fake_train(calls):
    def train(arch, data, *, seed, **kw):
        calls.append((arch.name, seed))
        if arch.name == "boom":
            raise MemoryError("no memory left")
        acc = 0.3 + 0.01 * seed + (0.1 if "edgetpu" in arch.name else 0)
        return SimpleNamespace(accuracy=acc, test_accuracy=acc - 0.01, val_loss=1.0,
                               train_accuracy=acc, params=1000, macs=10_000, arch=arch.encode())
    return train


def test_trainings_are_cached_and_reused(tmp_path):
    calls = []
    df = train_models(MODELS, None, PROXY, [0, 1], run_dir=tmp_path, dataset="synthetic",
                      progress=False, log=None, train_fn=fake_train(calls))
    assert len(calls) == 4 and (df.status == "completed").all()
    assert (tmp_path / CACHE_FILE).exists()
    again = train_models(MODELS, None, PROXY, [0, 1, 2], run_dir=tmp_path, dataset="synthetic",
                         progress=False, log=None, train_fn=fake_train(calls))
    assert len(calls) == 6  # only seed 2 of each model is new
    assert list(again.seed) == [0, 1, 2, 0, 1, 2]
    other = dict(PROXY, epochs=2)  # another budget is another training
    train_models(MODELS[:1], None, other, [0], run_dir=tmp_path, dataset="synthetic",
                 progress=False, log=None, train_fn=fake_train(calls))
    assert len(calls) == 7
    s = summarize(again)
    row = s[s.name == "edgetpu_s"].iloc[0]
    assert row.accuracy_mean == pytest.approx(0.41) and row.accuracy_count == 3
    assert row.accuracy_min == pytest.approx(0.40) and row.accuracy_max == pytest.approx(0.42)


def test_a_failed_training_is_recorded_and_retried_next_time(tmp_path):
    calls = []
    boom = zoo.get("mobilenet_v2").replace(name="boom")
    df = train_models([MODELS[0], ("boom", "searched", boom)], None, PROXY, [0], run_dir=tmp_path,
                      dataset="synthetic", progress=False, log=None, train_fn=fake_train(calls))
    assert list(df.status) == ["completed", "failed"]
    assert df.reason.iloc[1].startswith("out of memory")
    train_models([("boom", "searched", boom)], None, PROXY, [0], run_dir=tmp_path, dataset="synthetic",
                 progress=False, log=None, train_fn=fake_train(calls))
    assert calls.count(("boom", 0)) == 2
    assert len(load_cache(tmp_path)) == 2  # one row per key: the retry replaced the failure


def test_duplicate_names_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        train_models([MODELS[0], MODELS[0]], None, PROXY, [0], run_dir=tmp_path, dataset="synthetic",
                     progress=False, log=None, train_fn=fake_train([]))


@pytest.mark.slow
def test_real_training_on_synthetic_data(tmp_path):
    from accelnas.train.data import load_arrays

    data = load_arrays("synthetic", subset=256, image_size=16)
    df = train_models(MODELS[:1], lambda: data, PROXY, [0], run_dir=tmp_path, dataset="synthetic",
                      progress=False, log=None)
    assert df.status.iloc[0] == "completed", df.reason.iloc[0]
    assert 0 <= df.accuracy.iloc[0] <= 1 and 0 <= df.test_accuracy.iloc[0] <= 1
    assert isinstance(pd.read_parquet(tmp_path / CACHE_FILE), pd.DataFrame)


def test_proxy_resolution_follows_the_deployment_resolution():
    from accelnas.train.cache import proxy_for

    base = zoo.get("efficientnet_edgetpu_s")
    assert proxy_for(base, dict(PROXY, resolution=32), 224)["resolution"] == 32
    assert proxy_for(base.replace(resolution=240), dict(PROXY, resolution=32), 224)["resolution"] == 36
    assert proxy_for(base.replace(resolution=300), dict(PROXY, resolution=32), 224)["resolution"] == 44
    assert proxy_for(base.replace(resolution=300), dict(PROXY, resolution=32), None)["resolution"] == 32


def test_the_same_architecture_under_another_name_is_not_trained_again(tmp_path):
    calls = []
    a = zoo.get("mobilenet_v3_small")
    train_models([("a", "scaled", a)], None, PROXY, [0], run_dir=tmp_path, dataset="synthetic",
                 progress=False, log=None, train_fn=fake_train(calls))
    df = train_models([("b", "searched", a.replace(name="other"))], None, PROXY, [0], run_dir=tmp_path,
                      dataset="synthetic", progress=False, log=None, train_fn=fake_train(calls))
    assert len(calls) == 1 and df.name.iloc[0] == "b" and df.status.iloc[0] == "completed"


def test_kept_models_are_saved_and_a_lost_file_is_trained_again(tmp_path):
    """keep: the trained models of those kinds are saved (weights/<key>.keras); a cached training
    whose file is gone is trained again, a kind not kept is not."""
    calls = []
    inner = fake_train(calls)

    def saving(arch, data, *, seed, save_path=None, **kw):
        if save_path is not None:
            save_path.parent.mkdir(parents=True, exist_ok=True)
            save_path.write_bytes(b"model")
        return inner(arch, data, seed=seed, **kw)
    models = [("found", "searched", zoo.get("mobilenet_edgetpu")), MODELS[0]]
    kw = dict(run_dir=tmp_path, dataset="synthetic", progress=False, log=None, train_fn=saving,
              keep=("searched",))
    df = train_models(models, None, PROXY, [0], **kw)
    w = df.set_index("name").weights
    assert w["found"].startswith("weights/") and (tmp_path / w["found"]).is_file()
    assert not isinstance(w["v3s"], str)
    train_models(models, None, PROXY, [0], **kw)
    assert len(calls) == 2  # both cached
    (tmp_path / w["found"]).unlink()
    train_models(models, None, PROXY, [0], **kw)
    assert len(calls) == 3 and calls[-1][0] == "mobilenet_edgetpu"
    # the same architecture under another name and kind reuses the training and its file
    again = train_models([("searched", "searched", zoo.get("mobilenet_edgetpu"))], None, PROXY, [0], **kw)
    assert len(calls) == 3 and again.weights.iloc[0] == w["found"]


def test_stage2_budget_takes_stage2_images_epochs_and_width():
    from accelnas import params as params_mod
    from accelnas.train.cache import stage2_budget

    p = params_mod.load_dict({"proxy": {"subset": 3000, "epochs": 3, "width_mult": 0.5, "val_images": 700},
                              "stage2": {"subset": 9000, "epochs": 7, "width_mult": 0.75}})
    b = stage2_budget(p)
    assert (b["subset"], b["epochs"], b["width_mult"]) == (9000, 7, 0.75)
    assert (b["val_images"], b["resolution"], b["batch_size"]) == (700, p["proxy"]["resolution"], p["proxy"]["batch_size"])
