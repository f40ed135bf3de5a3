"""The weight-sharing supernet: every subnet is exactly the candidate's proxy network."""
from __future__ import annotations

import numpy as np
import pytest

from accelnas import params
from accelnas.train.data import load_arrays, make_pipeline
from accelnas.train.proxy import proxy_arch
from accelnas.search.supernet import Supernet, stage_loss
from accelnas.space.search_space import SearchSpace

PROXY = dict(resolution=16, width_mult=0.5, num_classes=10, min_feature=2)


def small_space(**changes) -> SearchSpace:
    section = params.load_dict({"search_space": {
        "stages": [{"stride": 1, "channels": 16, "repeats": 1}, {"stride": 2, "channels": 24, "repeats": 2},
                   {"stride": 2, "channels": 32, "repeats": 2}],
        "stem_channels": 16, "head_channels": 64, "kernels": [3, 5], "expand_ratios": [3, 6],
        "width_mults": [0.75, 1.0, 1.5], "repeat_deltas": [-1, 0, 1], "se_ratios": [0.0],
        "activations": ["relu", "relu6", "hswish"], **changes}})["search_space"]
    return SearchSpace.from_params(section)


@pytest.fixture(scope="module")
def data():
    return load_arrays("synthetic", subset=256, val_images=64, image_size=16, seed=0)


@pytest.fixture(scope="module")
def trained(data):
    net = Supernet(small_space(), **PROXY, seed=0)
    rec = net.train(data, epochs=1, batch_size=64, rule="uniform", seed=0)
    assert rec["steps"] == 4 and np.isfinite(rec["final_loss"]) and rec["images_per_s"] > 0
    return net


def test_subnets_equal_their_standalone_networks(trained, data):
    """Inherited weights in the Keras model of proxy_arch(candidate) give the supernet's outputs."""
    from accelnas.space.builder import build

    net = trained
    rng = np.random.default_rng(3)
    x, y = data.split("val")
    xb = next(iter(make_pipeline(x, y, batch_size=32, resolution=16, training=False, seed=0,
                                 augment=False, cache=False, mean=data.mean, std=data.std)))[0]
    types = set()
    for i in range(6):
        arch = net.space.sample(rng, name=f"c{i}")
        types |= {b.type for b in arch.blocks}
        net.calibrate(arch, data, images=128, batch_size=64)
        model = build(proxy_arch(arch, **PROXY))
        weights = net.subnet_weights(arch)
        assert set(weights) == {layer.name for layer in model.layers if layer.weights}
        for name, ws in weights.items():
            model.get_layer(name).set_weights(ws)
        want = model(xb, training=False).numpy()
        got = net.predict(arch, xb)
        np.testing.assert_allclose(got, want, atol=2e-5, err_msg=arch.encode())
    assert types == {"ibn", "fused", "conv"}


def test_evaluate_scores_a_candidate(trained, data):
    arch = trained.space.sample(np.random.default_rng(0))
    r = trained.evaluate(arch, data)
    assert 0 <= r["accuracy"] <= 1 and r["eval_images"] == 64 and r["eval_s"] > 0
    assert trained.evaluate(arch, data)["accuracy"] == r["accuracy"]  # deterministic


def test_save_load_roundtrip_and_refusal(trained, data, tmp_path):
    arch = trained.space.sample(np.random.default_rng(1))
    path = trained.save(tmp_path / "supernet.npz", {"dataset": "synthetic"})
    other = Supernet(small_space(), **PROXY, seed=0)
    side = other.load(path)
    assert side["dataset"] == "synthetic" and other.history == trained.history
    assert other.evaluate(arch, data)["accuracy"] == trained.evaluate(arch, data)["accuracy"]
    with pytest.raises(ValueError, match="another space"):
        Supernet(small_space(kernels=[3]), **PROXY).load(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read"):
        other.load(path)


def test_uncovered_spaces_are_refused():
    with pytest.raises(ValueError, match="squeeze-excite"):
        Supernet(small_space(se_ratios=[0.0, 0.25]), **PROXY)
    with pytest.raises(ValueError, match="expand_ratios > 1"):
        Supernet(small_space(expand_ratios=[1, 4]), **PROXY)


def test_sandwich_rule_trains(data):
    net = Supernet(small_space(), **PROXY, seed=1)
    rec = net.train(data, epochs=1, batch_size=128, rule="sandwich", seed=0)
    assert rec["rule"] == "sandwich" and rec["steps"] == 2 and np.isfinite(rec["final_loss"])
    with pytest.raises(ValueError, match="unknown supernet rule"):
        net.train(data, epochs=1, rule="greedy")


def test_subnet_training_loss_and_gradients_equal_the_standalone_network(trained, data):
    """What a supernet training step sees for a path (training-mode BatchNorm) is the candidate's
    own network: same loss, same gradients of the shared stem and classifier."""
    import keras
    import tensorflow as tf

    from accelnas.space.builder import build

    net = trained
    x, y = data.split("train")
    xb, yb = next(iter(make_pipeline(x, y, batch_size=32, resolution=16, training=False, seed=0,
                                     augment=False, cache=False, mean=data.mean, std=data.std)))
    step = net._fn("accumulate")
    names = list(net.vars)
    rng = np.random.default_rng(5)
    for i in range(3):
        arch = net.space.sample(rng, name=f"g{i}")
        for g in net._acc:
            g.assign(tf.zeros_like(g))
        enc = net.encode(arch)
        loss = float(step(xb, yb, enc["stages"], enc["act"]))
        grads = {n: net._acc[names.index(n)].numpy() for n in ("logits/kernel", "stem_conv")}
        for g in net._acc:
            g.assign(tf.zeros_like(g))
        model = build(proxy_arch(arch, **PROXY))
        for name, ws in net.subnet_weights(arch).items():
            model.get_layer(name).set_weights(ws)
        with tf.GradientTape() as tape:
            want = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, model(xb, training=True)))
        kg = dict(zip([w.path for w in model.trainable_weights], tape.gradient(want, model.trainable_weights)))
        assert loss == pytest.approx(float(want), rel=1e-4)
        logits = [k for k in kg if k.endswith("kernel") and kg[k].shape == grads["logits/kernel"].shape]
        stem = [k for k in kg if k.endswith("kernel") and kg[k].shape == grads["stem_conv"].shape]
        np.testing.assert_allclose(grads["logits/kernel"], kg[logits[-1]].numpy(), rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(grads["stem_conv"], kg[stem[0]].numpy(), rtol=1e-3, atol=1e-5)


def test_stage_loss_ignores_per_channel_offsets_only():
    """The next stage's recalibrated BatchNorm removes a per-channel offset, so it costs nothing;
    a scale, a sign flip, noise or a missing channel does cost."""
    rng = np.random.default_rng(0)
    t = rng.normal(size=(8, 4, 4, 6)).astype("float32")
    offset = rng.normal(size=(6,)).astype("float32") * 5
    assert float(stage_loss(t + offset, t)) < 1e-6
    assert abs(float(stage_loss(np.zeros_like(t), t)) - 1.0) < 1e-4
    assert float(stage_loss(np.maximum(t, 0), t)) > 0.2
    assert abs(float(stage_loss(-t, t)) - 4.0) < 1e-3
    assert abs(float(stage_loss(2 * t, t)) - 1.0) < 1e-3
    noise = rng.normal(size=t.shape).astype("float32")
    assert abs(float(stage_loss(t + 0.5 * noise, t)) - 0.25) < 0.05
    cut = t.copy()
    cut[..., 3:] = 0
    assert 0.3 < float(stage_loss(cut, t)) < 0.7


def test_distillation_teaches_every_stage_the_teachers_features(data):
    """Rule distill: the teacher path reproduces the frozen teacher exactly (stage losses 0: inputs,
    widths and stage outputs line up), the students' stage losses fall, stem and head stay the
    teacher's, and the distilled subnets still equal their stand-alone networks' outputs."""
    import tensorflow as tf

    net = Supernet(small_space(), **PROXY, seed=2)
    teacher = net.space.sample(np.random.default_rng(9), name="teacher")
    others = [net.space.sample(np.random.default_rng(20 + i)) for i in range(4)]
    x, y = data.split("train")
    xb = next(iter(make_pipeline(x, y, batch_size=64, resolution=16, training=False, seed=0,
                                 augment=False, cache=False, mean=data.mean, std=data.std)))[0]

    def losses(arch):
        enc = net.encode(arch)
        return net._fn("distill")(xb, enc["stages"], enc["act"], tf.constant(False)).numpy()

    net.train(data, epochs=2, batch_size=64, seed=0, paths=lambda rng: [teacher])
    net._teacher = {k: tf.Variable(w.numpy(), trainable=False) for k, w in net.vars.items()}
    enc_t = net.encode(teacher)
    net._teacher_enc = {"stages": tf.constant(enc_t["stages"]), "act": tf.constant(enc_t["act"])}
    np.testing.assert_allclose(losses(teacher), 0.0, atol=1e-6)
    before = np.mean([losses(a).sum() for a in others])

    net = Supernet(small_space(), **PROXY, seed=2)
    rec = net.distill(data, teacher, teacher_epochs=2, epochs=6, batch_size=64, seed=0)
    assert rec["rule"] == "distill" and rec["steps"] == 24 and len(rec["stage_losses"]) == 3
    after = np.mean([losses(a).sum() for a in others])
    assert after < 0.95 * before, (before, after)
    for k in ("stem_conv", "stem_conv_bn/gamma", "head_conv", "logits/kernel", "logits/bias"):
        np.testing.assert_array_equal(net.vars[k].numpy(), net._teacher[k].numpy(), err_msg=k)
    assert any(not np.array_equal(net.vars[k].numpy(), net._teacher[k].numpy()) for k in net.vars
               if k.startswith(("ibn/", "fused/", "conv/")))


def test_teacher_is_the_skeletons_nearest_member_or_a_clear_error():
    from accelnas.search.supernet import teacher_arch
    from accelnas.search.tuner import setup

    space = setup(params.load("params/smoke.yaml")).space
    t = teacher_arch(space, "efficientnet_edgetpu_s")
    assert t.name == "efficientnet_edgetpu_s_nearest" and [b.type for b in t.blocks][:2] == ["fused", "fused"]
    with pytest.raises(ValueError, match="no near member in the search space"):
        teacher_arch(small_space(), "efficientnet_edgetpu_s")
