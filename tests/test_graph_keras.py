"""`from_keras`: op graphs of Keras functional models (keras.applications, the builder's models,
hand-made corner cases) match ``count_params()`` exactly and the published MACs."""
import functools
import subprocess
import sys

import pytest

from accelnas.space import zoo
from accelnas.space.graph import COMPUTE_KINDS, OP_ACTIVATIONS, OP_KINDS, from_arch
from accelnas.space.graph_keras import from_keras

keras = pytest.importorskip("keras")
layers = keras.layers

# keras.applications at their default resolution (224, 299 for the Inceptions), 1000 classes.
# MACs: the published multiply-adds (MobileNet papers, EfficientNet paper, the usual 3.86 G of the
# Caffe-style ResNet50 that keras builds, 15.5 G / 19.6 G for VGG16/19, 5.7 G for InceptionV3).
# None: no figure we are sure of (the V2 ResNets put the stride elsewhere than most tables).
_SLOW = pytest.mark.slow
APPS = [
    pytest.param("MobileNet", 569e6, id="MobileNet"),
    pytest.param("MobileNetV2", 300e6, id="MobileNetV2"),
    pytest.param("MobileNetV3Small", 56e6, id="MobileNetV3Small"),
    pytest.param("MobileNetV3Large", 219e6, id="MobileNetV3Large"),
    pytest.param("ResNet50", 3.86e9, id="ResNet50"),
    pytest.param("ResNet50V2", None, id="ResNet50V2"),
    pytest.param("ResNet152V2", None, id="ResNet152V2", marks=_SLOW),
    pytest.param("InceptionV3", 5.72e9, id="InceptionV3"),
    pytest.param("InceptionResNetV2", 13.2e9, id="InceptionResNetV2", marks=_SLOW),
    pytest.param("DenseNet121", 2.87e9, id="DenseNet121", marks=_SLOW),
    pytest.param("VGG16", 15.5e9, id="VGG16", marks=_SLOW),
    pytest.param("VGG19", 19.6e9, id="VGG19", marks=_SLOW),
    pytest.param("EfficientNetB0", 390e6, id="EfficientNetB0"),
]


@functools.lru_cache(maxsize=None)
def _app(name: str):
    """(count_params, graph) of a keras.applications model, built once per test session."""
    # MobileNetV3's default input is None x None: give it the 224 x 224 of the published figures.
    kw = {"input_shape": (224, 224, 3)} if name.startswith("MobileNetV3") else {}
    model = getattr(keras.applications, name)(weights=None, **kw)
    out = model.count_params(), from_keras(model)
    del model
    keras.backend.clear_session()
    return out


def _check_well_formed(g):
    assert g.ops[0].kind == "input"
    seen = set()
    for o in g.ops:
        assert o.kind in OP_KINDS and o.activation in OP_ACTIVATIONS
        assert o.name not in seen, f"duplicate op name {o.name}"
        assert all(i in seen for i in o.inputs), f"{o.name}: input not defined before it"
        assert (o.kind == "input") == (not o.inputs)
        assert min(o.params, o.macs, o.weight_bytes) >= 0, o
        assert min(o.in_shape + o.out_shape + (o.kernel, o.stride, o.groups)) >= 1, o
        assert o.macs == 0 or o.kind in COMPUTE_KINDS, o
        seen.add(o.name)


@pytest.mark.parametrize("name,macs", APPS)
def test_keras_applications(name, macs):
    count, g = _app(name)
    assert g.params == count
    _check_well_formed(g)
    if macs is not None:
        assert g.macs == pytest.approx(macs, rel=0.03)


def test_folding_in_applications():
    _, g = _app("ResNet50")  # conv (with bias) + BN + relu: one op; the block's relu fused into add
    c = g.op("conv1_conv")
    assert (c.kind, c.kernel, c.stride, c.bias, c.bn) == ("conv", 7, 2, True, True)
    assert c.activation == "relu"
    assert c.params == 7 * 7 * 3 * 64 + 64 + 4 * 64
    assert g.op("conv2_block1_add").activation == "relu"
    assert g.op("conv2_block1_add").inputs == ("conv2_block1_0_conv", "conv2_block1_3_conv")
    _, g = _app("InceptionV3")  # 1x7 convs; BN(scale=False): 3 params per channel
    c = g.op("conv2d_47")
    assert c.in_shape == (17, 17, 160) and c.out_shape == (17, 17, 160)
    assert c.params == 7 * 160 * 160 + 3 * 160 and c.macs == 17 * 17 * 7 * 160 * 160
    _, g = _app("MobileNetV3Small")  # hard-sigmoid as keras.ops arithmetic: x + 3, relu6, * 1/6
    kinds = [o.kind for o in g.ops]
    i = kinds.index("mul")
    assert kinds[i - 3:i] == ["scale", "act", "scale"]
    assert g.ops[i - 2].activation == "relu6"


def test_import_is_cheap():
    code = ("import sys, accelnas.space.graph_keras; "
            "print('keras' in sys.modules or 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the builder's models map back onto the analytic graph -------------------------------------

_ZOO_CASES = [(n, 64, 10) for n in zoo.names()] + [
    pytest.param("resnet50", 224, 1000, marks=_SLOW),
    pytest.param("efficientnet_edgetpu_s", 224, 1000, marks=_SLOW),
]
_FIELDS = ("name", "kind", "in_shape", "out_shape", "kernel", "stride", "groups", "params", "macs",
           "weight_bytes", "activation", "bias", "bn")


@pytest.mark.parametrize("name,resolution,num_classes", _ZOO_CASES)
def test_agrees_with_analytic_graph(name, resolution, num_classes):
    from accelnas.space.builder import build

    arch = zoo.get(name, resolution, num_classes)
    model = build(arch)
    ours, ref = from_keras(model), from_arch(arch)
    assert ours.params == ref.params == model.count_params()
    assert ours.macs == pytest.approx(ref.macs, rel=0.01)

    def compute(g):
        return [tuple(getattr(o, f) for f in _FIELDS) for o in g if o.kind in COMPUTE_KINDS]
    assert compute(ours) == compute(ref)
    keras.backend.clear_session()


# --- layer rules on small models ---------------------------------------------------------------

def _graph(inputs, outputs):
    model = keras.Model(inputs, outputs)
    g = from_keras(model)
    assert g.params == model.count_params()
    _check_well_formed(g)
    return g


def test_bn_and_activation_folding_rules():
    x = keras.Input((8, 8, 4), name="in")
    a = layers.Conv2D(8, 3, padding="same", use_bias=False, name="a")(x)
    a = layers.BatchNormalization(name="a_bn")(a)
    a = layers.ReLU(6.0, name="a_relu")(a)  # conv + BN + relu6: one op
    b = layers.Conv2D(8, 1, name="b")(a)  # two consumers: the activation stays separate
    b_act = layers.Activation("swish", name="b_swish")(b)
    c = layers.Concatenate(name="cat")([b, b_act])
    c = layers.BatchNormalization(name="cat_bn")(c)  # after a concat: standalone scale
    c = layers.Activation("relu", name="cat_relu")(c)  # after a scale: standalone act
    d = layers.Conv2D(16, 1, activation="relu", name="d")(c)
    d = layers.BatchNormalization(name="d_bn")(d)  # after a fused activation: not folded
    d = layers.Dropout(0.5, name="drop")(d)  # skipped
    g = _graph(x, d)
    assert [o.name for o in g] == [
        "in", "a", "b", "b_swish", "cat", "cat_bn", "cat_relu", "d", "d_bn"]
    a = g.op("a")
    assert (a.bn, a.activation, a.params) == (True, "relu6", 3 * 3 * 4 * 8 + 4 * 8)
    assert a.weight_bytes == 3 * 3 * 4 * 8 + 4 * 8
    assert g.op("b").activation is None
    assert (g.op("b_swish").kind, g.op("b_swish").activation) == ("act", "swish")
    assert (g.op("cat_bn").kind, g.op("cat_bn").params) == ("scale", 4 * 16)
    assert g.op("d").activation == "relu" and not g.op("d").bn and g.op("d_bn").kind == "scale"
    assert g.op("cat").inputs == ("b", "b_swish")


def test_output_is_not_folded_away():
    x = keras.Input((4, 4, 3), name="in")
    c = layers.Conv2D(4, 1, name="c")(x)
    r = layers.ReLU(name="r")(c)
    g = _graph(x, [c, r])  # the pre-activation conv output is a model output
    assert g.op("c").activation is None and g.op("r").kind == "act"


def test_conv_variants():
    x = keras.Input((16, 16, 8), name="in")
    s = layers.SeparableConv2D(16, 3, strides=2, padding="same", depth_multiplier=2, name="sep")(x)
    s = layers.BatchNormalization(name="sep_bn")(s)
    dw = layers.DepthwiseConv2D(5, depth_multiplier=3, padding="same", name="dw")(s)
    gc = layers.Conv2D(48, 1, groups=4, use_bias=False, name="gc")(s)
    y = layers.Add(name="add")([gc, dw])
    y = layers.Activation("relu", name="add_relu")(y)
    v = layers.Conv2D(8, (1, 7), padding="valid", name="k1x7")(y)
    p = layers.AveragePooling2D(3, strides=2, padding="same", name="pool")(y)
    h = layers.Dense(10, name="dense_hw")(p)  # Dense over (H, W, C): a 1x1 conv
    g = _graph(x, [v, h])
    sd, sp = g.op("sep_depthwise"), g.op("sep")
    assert (sd.kind, sd.out_shape, sd.params) == ("dwconv", (8, 8, 16), 3 * 3 * 16)
    assert sd.macs == 8 * 8 * 3 * 3 * 16
    assert (sp.kind, sp.inputs, sp.params, sp.bn) == ("conv", ("sep_depthwise",), 16 * 16 + 16 + 64,
                                                      True)
    d = g.op("dw")
    assert (d.kind, d.groups, d.out_shape, d.params) == ("dwconv", 16, (8, 8, 48), 5 * 5 * 48 + 48)
    assert d.macs == 8 * 8 * 5 * 5 * 48
    c = g.op("gc")
    assert (c.kind, c.groups, c.params, c.macs) == ("conv", 4, 16 // 4 * 48, 8 * 8 * 16 // 4 * 48)
    assert g.op("add").activation == "relu"
    k = g.op("k1x7")
    assert (k.out_shape, k.kernel, k.params) == ((8, 2, 8), 7, 7 * 48 * 8 + 8)
    assert k.macs == 8 * 2 * 7 * 48 * 8
    p = g.op("pool")
    assert (p.kind, p.kernel, p.stride, p.out_shape) == ("avgpool", 3, 2, (4, 4, 48))
    assert (g.op("dense_hw").kind, g.op("dense_hw").macs) == ("conv", 4 * 4 * 48 * 10)


def test_keras_ops_shared_layers_and_heads():
    x = keras.Input((8, 8, 4), name="in")
    shared = layers.Conv2D(4, 1, name="shared")
    a, b = shared(x), shared(layers.ZeroPadding2D(1, name="pad")(x))
    b = layers.MaxPooling2D(3, strides=1, name="mp")(b)
    y = a * keras.ops.relu(b)  # keras.ops on KerasTensors: tensor * tensor -> mul
    y = (y + 3.0) * (1.0 / 6.0)  # tensor op constant -> scale
    y = keras.ops.mean(y, axis=(1, 2))
    y = layers.Rescaling(0.5, name="rescale")(y)
    y = layers.Dense(6, name="fc")(y)
    y = layers.BatchNormalization(name="fc_bn")(y)
    y = layers.Softmax(name="probs")(y)
    g = _graph(x, y)
    kinds = {o.name: o.kind for o in g}
    assert kinds["pad"] == "pad" and kinds["mp"] == "maxpool" and kinds["rescale"] == "scale"
    assert g.op("shared").params + g.op("shared_1").params == 4 * 4 + 4  # counted once
    assert (g.op("shared").macs, g.op("shared_1").macs) == (8 * 8 * 16, 10 * 10 * 16)
    assert [o.kind for o in g][-7:] == ["conv", "mul", "scale", "scale", "gap", "scale", "fc"]
    fc = g.op("fc")
    assert (fc.in_shape, fc.out_shape, fc.bn) == ((1, 1, 4), (1, 1, 6), True)
    assert fc.activation == "softmax"


def test_nested_and_sequential_models():
    inner = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3, name="c"),
                              layers.BatchNormalization(name="bn"),
                              layers.Activation("relu", name="r")], name="inner")
    g = from_keras(inner)
    assert [o.kind for o in g] == ["input", "conv"] and g.params == inner.count_params()
    x = keras.Input((8, 8, 3), name="in")
    y = layers.GlobalAveragePooling2D(name="gap")(inner(x))
    g = _graph(x, layers.Dense(2, name="fc")(y))
    assert [o.name for o in g] == ["in", "inner/c", "gap", "fc"]
    assert g.op("inner/c").bn and g.op("inner/c").activation == "relu"


@pytest.mark.parametrize("make,cls,layer", [
    (lambda x: layers.LSTM(4, name="rnn")(layers.Reshape((16, 12), name="seq")(x)), "LSTM", "rnn"),
    (lambda x: layers.UpSampling2D(name="up")(x), "UpSampling2D", "up"),
    (lambda x: layers.Lambda(lambda t: t * 2, name="lam")(x), "Lambda", "lam"),
    (lambda x: layers.Activation("mish", name="mish_act")(x), "Activation", "mish"),
])
def test_unsupported_layers_raise(make, cls, layer):
    x = keras.Input((8, 8, 3))
    with pytest.raises(ValueError, match=cls) as err:
        from_keras(keras.Model(x, make(x)))
    assert layer in str(err.value)


def test_unsupported_inputs_raise():
    x = keras.Input((8, 8, 8, 3))
    with pytest.raises(ValueError, match=r"'conv3d' \(Conv3D\)"):
        from_keras(keras.Model(x, layers.Conv3D(4, 3, name="conv3d")(x)))
    x = keras.Input((None, None, 3))
    with pytest.raises(ValueError, match="fixed input shape"):
        from_keras(keras.Model(x, layers.Conv2D(4, 3)(x)))

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed"):
        from_keras(Sub())
    with pytest.raises(TypeError, match="keras.Model"):
        from_keras(layers.Dense(3))


def test_shared_separable_conv_counted_once():
    x = keras.Input((8, 8, 4), name="in")
    sep = layers.SeparableConv2D(8, 3, padding="same", name="sep")
    y = layers.Concatenate(name="cat")([sep(x), sep(layers.ReLU(name="relu")(x))])
    g = _graph(x, y)
    assert {o.name for o in g if o.kind in COMPUTE_KINDS} == {
        "sep_depthwise", "sep", "sep_1_depthwise", "sep_1"}
