"""int8 TFLite export, host-CPU measurement, Edge TPU availability and the compatibility report.

The rule tests run on hand-built flatbuffers (no TensorFlow); the conversion tests (slow) convert
each model once per module, at 64 px / 10 classes with 4 random calibration images.
"""
import numpy as np
import pytest

from accelnas.latency.compat import edgetpu_compat, load_schema

RES = 64


# --------------------------------------------------------------------------- hand-built graphs

def _model(ops, inputs_float=False):
    """A tiny TFLite flatbuffer. ``ops``: (name, in_shapes, out_shape, options, consts) tuples
    chained through their first input; the other inputs are constants (``consts`` maps input
    position -> value; default zeros, int32 for a bias at position 2, else int8)."""
    import flatbuffers

    s = load_schema()
    model, sub = s.ModelT(), s.SubGraphT()
    model.version, model.buffers, model.operatorCodes = 3, [s.BufferT()], []
    sub.tensors, sub.operators = [], []
    types = {np.dtype(np.int8): s.TensorType.INT8, np.dtype(np.int32): s.TensorType.INT32}

    def tensor(shape, dtype, data=None):
        t = s.TensorT()
        t.shape, t.type, t.name, t.buffer = list(shape), dtype, f"t{len(sub.tensors)}".encode(), 0
        if dtype != s.TensorType.FLOAT32:  # per-tensor scale 1: the int8 kernels run it
            t.quantization = s.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [1.0], [0]
        if data is not None:
            b = s.BufferT()
            b.data = list(np.ascontiguousarray(data).tobytes())
            model.buffers.append(b)
            t.buffer = len(model.buffers) - 1
        sub.tensors.append(t)
        return len(sub.tensors) - 1

    I8, F32 = s.TensorType.INT8, s.TensorType.FLOAT32
    prev = tensor(ops[0][1][0], F32 if inputs_float else I8)
    sub.inputs = [prev]
    for k, (name, in_shapes, out_shape, options, consts) in enumerate(ops):
        code = s.OperatorCodeT()
        code.builtinCode = getattr(s.BuiltinOperator, name)
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
        model.operatorCodes.append(code)
        ins = [prev]
        for pos in range(1, len(in_shapes)):
            c = consts.get(pos, np.zeros(in_shapes[pos], np.int32 if pos == 2 else np.int8))
            ins.append(tensor(in_shapes[pos], types[c.dtype], c))
        prev = tensor(out_shape, F32 if name == "DEQUANTIZE" else I8)
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = k, ins, [prev]
        if options is not None:
            op.builtinOptionsType, op.builtinOptions = options
        sub.operators.append(op)
    sub.outputs = [prev]
    model.subgraphs = [sub]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _pool(fused):
    s = load_schema()
    o = s.Pool2DOptionsT()
    o.strideW = o.strideH = o.filterWidth = o.filterHeight = 2
    o.fusedActivationFunction = fused
    return (s.BuiltinOptions.Pool2DOptions, o)


def _conv_options():
    s = load_schema()
    o = s.Conv2DOptionsT()
    o.padding, o.strideW, o.strideH = s.Padding.SAME, 1, 1
    o.dilationWFactor = o.dilationHFactor = 1
    return (s.BuiltinOptions.Conv2DOptions, o)


CONV = ("CONV_2D", [(1, 8, 8, 3), (4, 3, 3, 3), (4,)], (1, 8, 8, 4), _conv_options(), {})


def test_rules_partition_at_first_unsupported_op():
    relu = load_schema().ActivationFunctionType.RELU
    data = _model([
        CONV,
        ("MAX_POOL_2D", [(1, 8, 8, 4)], (1, 4, 4, 4), _pool(0), {}),
        ("MAX_POOL_2D", [(1, 4, 4, 4)], (1, 2, 2, 4), _pool(relu), {}),  # fused activation
        ("CONV_2D", [(1, 2, 2, 4), (4, 1, 1, 4), (4,)], (1, 2, 2, 4), _conv_options(), {}),
    ])
    r = edgetpu_compat(data, use_compiler=False)
    assert [o.op for o in r.ops] == ["CONV_2D", "MAX_POOL_2D", "MAX_POOL_2D", "CONV_2D"]
    assert r.partition_index == 2 and not r.fully_mapped
    assert "fused RELU" in r.ops[2].reason
    assert [o.mapped for o in r.ops] == [True, True, False, False]
    assert r.ops[3].supported and "after the partition" in r.ops[3].reason
    assert r.ops[0].macs == 8 * 8 * 4 * 27 and r.ops[3].macs == 2 * 2 * 4 * 4
    assert r.cpu_fraction_macs == pytest.approx(64 / (64 + 6912))
    assert r.cpu_fraction_ops == 0.5 and len(r.cpu_ops) == 2
    frame = r.to_frame()
    assert list(frame["on_cpu"]) == [False, False, True, True]


@pytest.mark.parametrize("op,ok", [
    (("MEAN", [(1, 4, 4, 8), (2,)], (1, 1, 1, 8), None, {1: np.array([1, 2], np.int32)}), True),
    (("MEAN", [(1, 4, 4, 8), (1,)], (1, 4, 4, 1), None, {1: np.array([3], np.int32)}), False),
    (("SOFTMAX", [(1, 1000)], (1, 1000), None, {}), True),
    (("SOFTMAX", [(1, 20000)], (1, 20000), None, {}), False),
    (("SOFTMAX", [(1, 4, 10)], (1, 4, 10), None, {}), False),
    (("PAD", [(1, 4, 4, 8), (4, 2)], (1, 6, 6, 8), None,
      {1: np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)}), True),
    (("PAD", [(1, 4, 4, 8), (4, 2)], (1, 4, 4, 10), None,
      {1: np.array([[0, 0], [0, 0], [0, 0], [1, 1]], np.int32)}), False),
    (("STRIDED_SLICE", [(1, 4, 4, 8), (4,), (4,), (4,)], (1, 2, 4, 8), None,
      {1: np.zeros(4, np.int32), 2: np.array([1, 2, 4, 8], np.int32), 3: np.ones(4, np.int32)}), True),
    (("STRIDED_SLICE", [(1, 4, 4, 8), (4,), (4,), (4,)], (1, 2, 4, 8), None,
      {1: np.zeros(4, np.int32), 2: np.array([1, 4, 4, 8], np.int32),
       3: np.array([1, 2, 1, 1], np.int32)}), False),
    (("FULLY_CONNECTED", [(1, 16), (10, 16), (10,)], (1, 10), None, {}), True),
    (("FULLY_CONNECTED", [(4, 16), (10, 16), (10,)], (4, 10), None, {}), False),
    (("RESHAPE", [(1, 4, 4, 8), (5,)], (2, 2, 2, 4, 8), None, {1: np.array([2, 2, 2, 4, 8], np.int32)}),
     False),  # > 3 non-trivial dims
    (("HARD_SWISH", [(1, 4, 4, 8)], (1, 4, 4, 8), None, {}), False),
    (("ELU", [(1, 4, 4, 8)], (1, 4, 4, 8), None, {}), False),
])
def test_rules_per_op(op, ok):
    r = edgetpu_compat(_model([op]), use_compiler=False)
    assert r.ops[0].supported is ok, r.ops[0].reason
    assert r.fully_mapped is ok
    assert r.partition_index == (None if ok else 0)


def test_modern_compiler_maps_hard_swish():
    data = _model([CONV, ("HARD_SWISH", [(1, 8, 8, 4)], (1, 8, 8, 4), None, {})])
    old = edgetpu_compat(data, use_compiler=False)
    assert old.partition_index == 1 and "2019" in old.ops[1].reason
    assert edgetpu_compat(data, modern_compiler=True, use_compiler=False).fully_mapped
    from accelnas.latency.compat import SUPPORTED_OPS_2019
    table = [*SUPPORTED_OPS_2019, "HARD_SWISH"]  # e.g. an Accelerator's supported_ops
    assert edgetpu_compat(data, supported_ops=table, use_compiler=False).fully_mapped


def test_float_io_quantize_ops_do_not_partition():
    data = _model([("QUANTIZE", [(1, 8, 8, 3)], (1, 8, 8, 3), None, {}), CONV,
                   ("DEQUANTIZE", [(1, 8, 8, 4)], (1, 8, 8, 4), None, {})], inputs_float=True)
    r = edgetpu_compat(data, use_compiler=False)
    assert r.partition_index is None and r.fully_mapped
    assert [o.mapped for o in r.ops] == [False, True, False]
    assert r.cpu_fraction_macs == 0.0


def test_compat_rejects_non_tflite(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="TFL3"):
        edgetpu_compat(bad, use_compiler=False)


# --------------------------------------------------------------------------- Edge TPU runtime

def test_edgetpu_unavailable_is_explained():
    from accelnas.latency.measure import EdgeTPUUnavailable, edgetpu_available, measure_tflite

    ok, reason = edgetpu_available()
    if ok:
        pytest.skip(f"an Edge TPU is present: {reason}")
    assert "libedgetpu" in reason
    with pytest.raises(EdgeTPUUnavailable, match="not available"):
        measure_tflite(_model([CONV]), device="edgetpu")


def test_measure_tiny_model():
    from accelnas.latency.measure import measure_tflite

    m = measure_tflite(_model([CONV]), warmup=1, runs=7, device="auto")
    assert m["latency_ms"] > 0 and m["runs"] == 7 and m["threads"] == 1
    assert m["p10_ms"] <= m["latency_ms"] <= m["p90_ms"]
    assert m["device"] == "host-cpu"
    with pytest.raises(ValueError, match="device"):
        measure_tflite(_model([CONV]), device="gpu")


# --------------------------------------------------------------------------- conversions

def _rep(n=4, res=RES):
    return np.random.default_rng(0).random((n, res, res, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def zoo_int8():
    import keras

    from accelnas.space import zoo
    from accelnas.latency.tflite import to_int8_tflite

    out = {}
    for name in ("mobilenet_v3_small", "efficientnet_edgetpu_s"):
        out[name] = to_int8_tflite(zoo.build(name, resolution=RES, num_classes=10), _rep())
        keras.backend.clear_session()
    return out


def _tiny(keras, act_layer):
    from keras import layers

    i = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(i)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = act_layer(layers.Conv2D(8, 1)(x))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(i, layers.Dense(4, activation="softmax")(x))


@pytest.mark.slow
def test_int8_export_io_and_measure(zoo_int8, tmp_path):
    from accelnas.latency.measure import measure_tflite
    from accelnas.latency.tflite import float_ops, read_tflite

    data = zoo_int8["efficientnet_edgetpu_s"]
    s = load_schema()
    sub = s.ModelT.InitFromPackedBuf(bytearray(data), 0).subgraphs[0]
    for t in list(sub.inputs) + list(sub.outputs):
        assert sub.tensors[t].type == s.TensorType.INT8
        assert list(sub.tensors[t].shapeSignature if sub.tensors[t].shapeSignature is not None
                    else sub.tensors[t].shape)[0] == 1
    assert float_ops(data) == []
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert read_tflite(path) == data
    m = measure_tflite(path, warmup=2, runs=5)
    assert m["latency_ms"] > 0 and m["runs"] == 5 and m["device"] == "host-cpu"


@pytest.mark.slow
def test_compat_mobilenetv3_vs_efficientnet_edgetpu(zoo_int8):
    v3 = edgetpu_compat(zoo_int8["mobilenet_v3_small"], use_compiler=False)
    ops = [o.op for o in v3.ops]
    assert "HARD_SWISH" in ops and not v3.fully_mapped
    assert v3.partition_index == ops.index("HARD_SWISH")
    assert v3.partition_op.op == "HARD_SWISH" and "2019" in v3.partition_op.reason
    assert all(o.mapped for o in v3.ops[:v3.partition_index])
    assert not any(o.mapped for o in v3.ops[v3.partition_index:])
    assert v3.summary()["unsupported_op_types"] == ["HARD_SWISH"]  # SE's hard-sigmoid: CONV+MUL
    assert v3.cpu_fraction_macs > 0.5
    assert edgetpu_compat(zoo_int8["mobilenet_v3_small"], modern_compiler=True,
                          use_compiler=False).fully_mapped

    ent = edgetpu_compat(zoo_int8["efficientnet_edgetpu_s"], use_compiler=False)
    assert ent.fully_mapped and ent.partition_index is None and ent.cpu_ops == []
    assert {o.op for o in ent.ops} <= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN",
                                       "FULLY_CONNECTED", "SOFTMAX"}
    from accelnas.space import graph, zoo
    assert ent.total_macs == graph.from_arch(zoo.get("efficientnet_edgetpu_s", RES, 10)).macs


@pytest.mark.slow
def test_op_outside_table_partitions_there(tmp_path):
    import keras

    from accelnas.latency.tflite import FloatOpsWarning, Int8ConversionError, to_int8_tflite

    rep = _rep(4, 16)
    leaky = to_int8_tflite(_tiny(keras, keras.layers.LeakyReLU()), rep, tmp_path / "a.tflite")
    assert (tmp_path / "a.tflite").read_bytes() == leaky
    r = edgetpu_compat(leaky, use_compiler=False)
    ops = [o.op for o in r.ops]
    k = ops.index("LEAKY_RELU")
    assert 0 < k < len(ops) - 1 and r.partition_index == k
    assert [o.mapped for o in r.ops] == [i < k for i in range(len(ops))]

    # ELU has no int8 kernel: the converter wraps it in DEQUANTIZE/QUANTIZE (a warning by
    # default, an error with strict=True); the Edge TPU stops at the DEQUANTIZE.
    elu = _tiny(keras, keras.layers.Activation("elu"))
    with pytest.warns(FloatOpsWarning, match="ELU"):
        data = to_int8_tflite(elu, lambda: iter([rep[:2], rep[2:]]))
    r = edgetpu_compat(data, use_compiler=False)
    assert r.partition_op.op == "DEQUANTIZE" and r.ops[r.partition_index + 1].op == "ELU"
    with pytest.raises(Int8ConversionError, match="ELU") as info:
        to_int8_tflite(elu, rep, strict=True)
    assert info.value.ops == ["ELU"]

    # An op with no TFLite builtin at all: a clear error naming it.
    cumprod = _tiny(keras, keras.layers.Lambda(lambda t: keras.ops.cumprod(t, axis=1)))
    with pytest.raises(Int8ConversionError, match="Cumprod") as info:
        to_int8_tflite(cumprod, rep)
    assert info.value.ops == ["Cumprod"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # keras's save
def test_load_model_roundtrip(tmp_path):
    import keras

    from accelnas.latency.tflite import load_model

    m = _tiny(keras, keras.layers.ReLU())
    m.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")
    x = _rep(2, 16)
    np.testing.assert_allclose(back.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-5)
    with pytest.raises(ValueError, match=".keras"):
        load_model(tmp_path / "m.h5")


def test_int8_accuracy_agrees_with_the_float_model():
    """int8_accuracy quantizes real-valued inputs with the model's scale and scores the int8
    model: labels taken from the float model's predictions score high, shifted labels near zero."""
    import keras

    from accelnas.latency.measure import int8_accuracy
    from accelnas.latency.tflite import to_int8_tflite

    keras.utils.set_random_seed(0)
    model = _tiny(keras, keras.layers.ReLU())
    x = np.random.default_rng(1).normal(size=(64, 16, 16, 3)).astype(np.float32)
    pred = model.predict(x, verbose=0).argmax(1)
    blob = to_int8_tflite(model, x[:32])
    assert int8_accuracy(blob, x, pred) >= 0.8
    assert int8_accuracy(blob, x, (pred + 1) % 4) <= 0.2
    with pytest.raises(ValueError, match="shape"):
        int8_accuracy(blob, x[:, :8, :8], pred)
