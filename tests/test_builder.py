"""Keras models built from architectures match their op graphs; keras.applications counts match."""
import pytest

from accelnas.space import graph, zoo


@pytest.fixture(scope="module")
def keras():
    import keras
    return keras


@pytest.mark.parametrize("name", zoo.names())
def test_built_params_equal_graph(keras, name):
    m = zoo.build(name, resolution=64, num_classes=10)
    g = graph.from_arch(zoo.get(name, 64, 10))
    assert m.count_params() == g.params
    assert m.output_shape == (None, 10)
    layer_names = {l.name for l in m.layers}
    assert {o.name for o in g} <= layer_names
    keras.backend.clear_session()


# keras.applications reference structures: ours (BN without bias) vs theirs, at 224/1000.
@pytest.mark.slow
@pytest.mark.parametrize("name,app,tol", [
    ("mobilenet_v2", "MobileNetV2", 0.0), ("mobilenet_v3_small", "MobileNetV3Small", 0.0),
    ("mobilenet_v3_large", "MobileNetV3Large", 0.0), ("efficientnet_b0", "EfficientNetB0", 0.0),
    ("resnet50", "ResNet50", 0.002),  # keras's ResNet50 convs also carry biases (+26.6 k)
])
def test_keras_applications_params(keras, name, app, tol):
    kw = {"include_preprocessing": False} if "V3" in app else {}
    ref = getattr(keras.applications, app)(weights=None, **kw)
    ref_params = ref.count_params() - (7 if app.startswith("EfficientNet") else 0)  # Normalization layer
    ours = graph.from_arch(zoo.get(name)).params
    assert abs(ours / ref_params - 1) <= tol, (ours, ref_params)
    keras.backend.clear_session()


def test_forward_pass_and_bn_momentum(keras):
    import numpy as np
    m = zoo.build("efficientnet_edgetpu_s", resolution=32, num_classes=10, dropout=0.2)
    y = m.predict(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32), verbose=0)
    assert y.shape == (2, 10) and np.allclose(y.sum(axis=1), 1, atol=1e-4)
    assert m.get_layer("stem_conv_bn").momentum == 0.9
    assert m.get_layer("dropout").rate == 0.2


def test_any_architecture_name_builds(keras):
    # Keras refuses root scope names such as "cand0@1" (proxy_bench named held-out candidates so)
    import numpy as np

    from accelnas.space.builder import build, model_name

    arch = zoo.get("efficientnet_edgetpu_s").replace(name="cand0@1 (held out)")
    m = build(arch, resolution=32, num_classes=10)
    assert m.name == "cand0_1__held_out_"
    assert m.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0).shape == (2, 10)
    assert model_name("_x") == "m_x" and model_name("") == "m" and model_name("ok.name-1") == "ok.name-1"
    keras.backend.clear_session()
