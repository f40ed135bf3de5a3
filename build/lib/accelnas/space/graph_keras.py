"""Op graphs from Keras functional models: `from_keras(model)`.

Walks any Keras 3 functional (or built Sequential) model in topological order and emits the ops of
`accelnas.space.graph` with the same conventions as the analytic path (`graph.from_arch`):

* shapes ``(H, W, C)`` without the batch; a vector is ``(1, 1, C)``, a sequence ``(1, T, C)``;
* a BatchNormalization directly after a conv / depthwise / dense whose only consumer it is is folded
  into that op (``bn=True``); any other BatchNormalization is a standalone ``scale`` op (DenseNet's,
  ResNetV2's pre-activation BN);
* an activation directly after a conv / depthwise / dense / add whose only consumer it is, and which
  has no activation yet, is fused into it (``activation=...``); otherwise it is an ``act`` op;
* ``params`` of an op is the sum of the sizes of the weights (trainable and not) of the Keras layers
  folded into it, each variable counted once, so ``from_keras(m).params == m.count_params()``;
* MACs and int8 weight bytes come from the shared constructors of `accelnas.space.graph` (`conv_op`,
  `fc_op`, `elementwise_op`), so the counting rules live in one place.

Layer -> op kinds:

* Conv2D -> conv (groups kept; groups == C is a dwconv); DepthwiseConv2D -> dwconv (output
  C * depth_multiplier); SeparableConv2D -> ``<name>_depthwise`` dwconv then ``<name>`` 1x1 conv;
* Dense -> fc on a vector, a 1x1 conv on a (H, W, C) or (T, C) tensor;
* Max/AveragePooling2D -> maxpool / avgpool; GlobalAverage/GlobalMaxPooling2D -> gap;
* Add / Subtract / Maximum / Minimum / Average, two-tensor arithmetic on KerasTensors and
  InceptionResNetV2's ``CustomScaleLayer`` -> add; Multiply -> mul; Concatenate -> concat;
* ZeroPadding2D -> pad; Reshape / Flatten / Permute -> reshape;
* Rescaling / Normalization, and arithmetic of a tensor with a constant (MobileNetV3's
  ``x + 3.0``, ``x * (1 / 6)``) -> scale;
* activation layers and keras.ops activations -> fused or act;
* Dropout / Identity / noise layers -> skipped (they hold no weights).

Anything else raises ValueError naming the layer and its class.

Op names are the layer names (a shared layer's later calls: ``<name>_<call index>``; ops inside a
nested functional / Sequential model, which is walked recursively: ``<submodel name>/<name>``). The
order is a depth-first post-order from the outputs that takes a node's last input first, so that
``Add()([shortcut, residual])`` lists the residual branch first, like `graph.from_arch`: for models
built by `accelnas.space.builder` the two paths give the same ops in the same order.

Non-square kernels (InceptionV3's 1x7 / 7x1): MACs, params and weight bytes are exact; the op's
``kernel`` field (one int) is the larger side.

This module imports Keras only inside `from_keras`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from accelnas.space.graph import COMPUTE_KINDS, Op, OpGraph, Shape, conv_op, elementwise_op, fc_op

_KERAS_ACTIVATIONS = {  # Keras activation function name -> op activation (None: identity)
    "linear": None, "relu": "relu", "relu6": "relu6", "silu": "swish", "swish": "swish",
    "hard_silu": "hswish", "hard_swish": "hswish", "sigmoid": "sigmoid", "hard_sigmoid": "hsigmoid",
    "softmax": "softmax", "tanh": "tanh", "gelu": "gelu", "elu": "elu", "selu": "selu",
    "softplus": "softplus", "leaky_relu": "leaky_relu",
}
_OPS_ACTIVATIONS = {  # keras.ops operation class name -> op activation
    "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "HardSigmoid": "hsigmoid",
    "Silu": "swish", "HardSilu": "hswish", "Softmax": "softmax", "Tanh": "tanh", "Gelu": "gelu",
    "Elu": "elu", "Selu": "selu", "Softplus": "softplus", "LeakyRelu": "leaky_relu",
}
_OPS_BINARY = {  # keras.ops elementwise operation class name -> op kind with two tensor operands
    "Add": "add", "Subtract": "add", "Maximum": "add", "Minimum": "add", "Multiply": "mul",
    "Divide": "mul", "TrueDivide": "mul",
}
_OPS_UNARY_SCALE = ("Negative",)
_OPS_RESHAPE = ("Reshape", "ExpandDims", "Squeeze", "Transpose")
_OPS_REDUCE = ("Mean", "Max")
_OPS_IDENTITY = ("Cast", "StopGradient")
_FUSE_ACT_INTO = COMPUTE_KINDS + ("add",)

_ADVICE = ("from_keras supports the layers listed in accelnas.space.graph_keras's docstring; replace "
           "this layer by supported ones, or add a rule for it in "
           "accelnas.space.graph_keras._Walker._emit")


@dataclass
class _Raw:
    """An op before BN / activation folding."""

    op: Op
    remake: Callable[..., Op] | None = None  # compute ops: remake(bn=, activation=) -> Op
    # (its params are recomputed by the helper; `_fold` sets the Keras count)
    fold: str | None = None  # "bn" or "act": may fold into its producer


def from_keras(model, name: str | None = None) -> OpGraph:
    """The op graph of a Keras functional model.

    Args:
        model: a Keras 3 functional model (or a Sequential built with a known input shape) with a
            fixed input shape (no ``None`` besides the batch).
        name: graph name (default: ``model.name``).

    Returns:
        An `OpGraph`, input ops first, with ``graph.params == model.count_params()``.

    Raises:
        ValueError: a layer or operation the op graph has no rule for (named with its class), an
            unknown activation, channels-first data, or an undefined input dimension.
        TypeError: ``model`` is not a Keras functional / Sequential model.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"from_keras expects a keras.Model, got {type(model).__name__}")
    walker = _Walker(keras)
    fn = _functional(keras, model)
    values, deferred = {}, None
    for t in fn.inputs:
        layer = t._keras_history.operation
        op_name = walker.unique(layer.name if layer is not None else "input")
        try:
            shape = _hwc(t.shape, f"input {op_name!r}")
        except ValueError as e:  # report the first layer that cannot take it, if there is one
            deferred, shape = e, (1, 1, 1)
        walker.raw.append(_Raw(Op(op_name, "input", (), shape, shape)))
        values[id(t)] = (op_name, shape)
    outputs = walker.walk(fn, values, prefix="")
    if deferred is not None:
        raise deferred
    return OpGraph(name=name or model.name, ops=_fold(walker.raw, [o[0] for o in outputs]))


def _functional(keras, model):
    """The functional graph of a model (Sequential models hold one once built)."""
    if isinstance(model, keras.Sequential):
        fn = getattr(model, "_functional", None)
        if fn is None:
            raise ValueError(f"Sequential model {model.name!r} has no graph yet: give it an input "
                             "shape (keras.Input(shape=...) as its first layer) before from_keras")
        return fn
    if not hasattr(model, "_nodes_by_depth") or not hasattr(model, "inputs"):
        raise ValueError(f"model {model.name!r} ({type(model).__name__}) is a subclassed model, "
                         "whose graph cannot be walked; build it as a functional model")
    return model


def _hwc(shape, where: str) -> Shape:
    """(batch, ...) Keras shape -> (H, W, C)."""
    dims = tuple(shape[1:])
    if any(d is None for d in dims):
        raise ValueError(f"{where}: undefined dimension in shape {tuple(shape)}; build the model "
                         "with a fixed input shape, e.g. input_shape=(224, 224, 3)")
    if len(dims) == 0:
        return (1, 1, 1)
    if len(dims) == 1:
        return (1, 1, int(dims[0]))
    if len(dims) == 2:
        return (1, int(dims[0]), int(dims[1]))
    if len(dims) == 3:
        return tuple(int(d) for d in dims)
    raise ValueError(f"{where}: shape {tuple(shape)} has {len(dims)} dimensions besides the batch; "
                     "the op graph holds vectors (C,), sequences (T, C) and images (H, W, C) only "
                     "(no 3-D convolutions or video models)")


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv(name: str, inputs: tuple[str, ...], in_shape: Shape, out_shape: Shape, kernel, stride,
          *, groups: int = 1, bias: bool, bn: bool = False, activation: str | None = None,
          kind: str | None = None) -> Op:
    """`conv_op` with the output size taken from Keras and non-square kernels supported (as the
    equivalent 1x1 conv over the kh * kw * C im2col channels: same weights, MACs and bytes)."""
    kh, kw = kernel
    sh, _ = stride
    h, w, cin = in_shape
    common = dict(groups=groups, bias=bias, bn=bn, activation=activation, out_hw=out_shape[:2])
    if kh == kw:
        return conv_op(name, inputs, in_shape, out_shape[2], kh, sh, kind=kind, **common)
    kind = kind or ("dwconv" if groups == cin and groups > 1 else "conv")
    op = conv_op(name, inputs, (h, w, cin * kh * kw), out_shape[2], 1, sh, kind=kind, **common)
    return op.replace(in_shape=in_shape, kernel=max(kh, kw))


class _Walker:
    """Emits `_Raw` ops for the nodes of a functional graph (recursing into sub-models)."""

    def __init__(self, keras) -> None:
        self.keras = keras
        self.raw: list[_Raw] = []
        self.names: set[str] = set()
        self.seen_vars: set[int] = set()

    def unique(self, name: str) -> str:
        out, i = name, 1
        while out in self.names:
            out, i = f"{name}_{i}", i + 1
        self.names.add(out)
        return out

    def params(self, layer) -> int:
        """Size of the layer's variables not yet counted (shared layers / tied weights once)."""
        return sum(self._variable_params(v) for v in getattr(layer, "weights", []))

    def _variable_params(self, v) -> int:
        if id(v) in self.seen_vars:
            return 0
        self.seen_vars.add(id(v))
        return math.prod(int(d) for d in v.shape)

    def walk(self, fn, values: dict, prefix: str) -> list[tuple[str, Shape]]:
        """Emit the ops of functional ``fn`` whose input tensors map to ``values`` (id(tensor) ->
        (op name, shape)); returns the values of its outputs."""
        for node in _topological_nodes(fn, values):
            ins = []
            for t in node.input_tensors:
                if id(t) not in values:
                    raise ValueError(f"{node.operation.name!r}: an input tensor is not produced "
                                     "inside the model (constant KerasTensor?); from_keras cannot "
                                     "place it")
                ins.append(values[id(t)])
            outs = self._node(node, ins, prefix)
            if len(outs) != len(node.outputs):
                raise ValueError(f"{node.operation.name!r}: {len(node.outputs)} outputs, expected "
                                 f"{len(outs)}")
            for t, v in zip(node.outputs, outs):
                values[id(t)] = v
        return [values[id(t)] for t in fn.outputs]

    def _node(self, node, ins: list[tuple[str, Shape]], prefix: str) -> list[tuple[str, Shape]]:
        keras = self.keras
        op = node.operation
        if isinstance(op, keras.Model):
            fn = _functional(keras, op)
            inner = {id(t): v for t, v in zip(fn.inputs, ins)}
            if len(fn.inputs) != len(ins):
                raise ValueError(f"sub-model {op.name!r}: called with {len(ins)} tensors, it has "
                                 f"{len(fn.inputs)} inputs")
            return self.walk(fn, inner, prefix=f"{prefix}{op.name}/")
        if len(node.outputs) != 1:
            raise ValueError(f"layer {op.name!r} ({type(op).__name__}) has {len(node.outputs)} "
                             f"outputs; {_ADVICE}")
        out_shape = _hwc(node.outputs[0].shape, f"layer {op.name!r} ({type(op).__name__})")
        call = op._inbound_nodes.index(node)  # a shared layer's later calls: <name>_<call>
        name = self.unique(prefix + op.name + (f"_{call}" if call else ""))
        rank = len(node.input_tensors[0].shape) if node.input_tensors else 4
        raws = self._emit(op, name, ins, out_shape, rank)
        if raws is None:  # identity: the output is the input
            if self.params(op):
                raise ValueError(f"layer {op.name!r} ({type(op).__name__}) has weights but is "
                                 f"treated as an identity; {_ADVICE}")
            self.names.discard(name)
            return [ins[0]]
        self.raw.extend(raws)
        return [(raws[-1].op.name, raws[-1].op.out_shape)]

    def _act_name(self, fn, where: str) -> str | None:
        key = getattr(fn, "__name__", None) or str(fn)
        if key not in _KERAS_ACTIVATIONS:
            raise ValueError(f"{where}: activation {key!r} has no op activation; known: "
                             f"{sorted(k for k in _KERAS_ACTIVATIONS)} (add it to "
                             "accelnas.space.graph.OP_ACTIVATIONS and graph_keras._KERAS_ACTIVATIONS)")
        return _KERAS_ACTIVATIONS[key]

    def _emit(self, layer, name: str, ins: list[tuple[str, Shape]], out: Shape,
              rank: int) -> list[_Raw] | None:
        """The raw ops of one call of ``layer`` on inputs ``ins`` (the first of Keras rank
        ``rank``, batch included) with output shape ``out`` (None: an identity)."""
        L = self.keras.layers
        cls = type(layer).__name__
        where = f"layer {layer.name!r} ({cls})"
        inputs = tuple(n for n, _ in ins)
        in_shape = ins[0][1] if ins else out
        if getattr(layer, "data_format", "channels_last") == "channels_first":
            raise ValueError(f"{where}: channels_first data is not supported; build the model with "
                             "data_format='channels_last'")

        if isinstance(layer, L.InputLayer):
            return None
        if isinstance(layer, L.Conv2D):
            act = self._act_name(layer.activation, where)
            kw = dict(groups=layer.groups, bias=layer.use_bias, kind=None)
            args = (name, inputs, in_shape, out, _pair(layer.kernel_size), _pair(layer.strides))
            return [self._compute(layer, lambda bn=False, activation=act: _conv(
                *args, bn=bn, activation=activation, **kw))]
        if isinstance(layer, L.DepthwiseConv2D):
            act = self._act_name(layer.activation, where)
            args = (name, inputs, in_shape, out, _pair(layer.kernel_size), _pair(layer.strides))
            return [self._compute(layer, lambda bn=False, activation=act: _conv(
                *args, groups=in_shape[2], bias=layer.use_bias, bn=bn, activation=activation,
                kind="dwconv"))]
        if isinstance(layer, L.SeparableConv2D):
            act = self._act_name(layer.activation, where)
            mid = (out[0], out[1], in_shape[2] * layer.depth_multiplier)
            dw_name = self.unique(f"{name}_depthwise")
            dw = _conv(dw_name, inputs, in_shape, mid, _pair(layer.kernel_size),
                       _pair(layer.strides), groups=in_shape[2], bias=False, kind="dwconv")
            dw = dw.replace(params=self._variable_params(layer.depthwise_kernel))
            pw = self._compute(layer, lambda bn=False, activation=act: _conv(
                name, (dw_name,), mid, out, (1, 1), (1, 1), bias=layer.use_bias, bn=bn,
                activation=activation))
            return [_Raw(dw), pw]
        if isinstance(layer, L.Dense):
            act = self._act_name(layer.activation, where)
            if rank == 2:  # (batch, features): a vector
                return [self._compute(layer, lambda bn=False, activation=act: fc_op(
                    name, inputs, in_shape[2], out[2], bias=layer.use_bias, bn=bn,
                    activation=activation))]
            return [self._compute(layer, lambda bn=False, activation=act: _conv(
                name, inputs, in_shape, out, (1, 1), (1, 1), bias=layer.use_bias, bn=bn,
                activation=activation))]
        if isinstance(layer, L.BatchNormalization):
            axes = (layer.axis,) if isinstance(layer.axis, int) else tuple(layer.axis)
            if [a % rank for a in axes] != [rank - 1]:
                raise ValueError(f"{where}: BatchNormalization over axis {layer.axis} (not the "
                                 "channel axis) is not supported")
            return [_Raw(elementwise_op(name, "scale", inputs, out, params=self.params(layer)),
                         fold="bn")]
        if isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
            kind = "maxpool" if isinstance(layer, L.MaxPooling2D) else "avgpool"
            return [_Raw(Op(name, kind, inputs, in_shape, out, kernel=max(_pair(layer.pool_size)),
                            stride=_pair(layer.strides)[0]))]
        if isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
            return [_Raw(Op(name, "gap", inputs, in_shape, (1, 1, out[2])))]
        if isinstance(layer, (L.Add, L.Subtract, L.Maximum, L.Minimum, L.Average)) or (
                cls == "CustomScaleLayer" and len(ins) == 2):  # InceptionResNetV2: x + r * scale
            return [self._elementwise(layer, name, "add", inputs, in_shape, out)]
        if isinstance(layer, L.Multiply):
            return [self._elementwise(layer, name, "mul", inputs, in_shape, out)]
        if isinstance(layer, L.Concatenate):
            return [_Raw(Op(name, "concat", inputs, in_shape, out, params=self.params(layer)))]
        if isinstance(layer, L.ZeroPadding2D):
            return [_Raw(Op(name, "pad", inputs, in_shape, out))]
        if isinstance(layer, (L.Reshape, L.Flatten, L.Permute)):
            return [_Raw(Op(name, "reshape", inputs, in_shape, out))]
        if isinstance(layer, (L.Rescaling, L.Normalization)):
            return [_Raw(elementwise_op(name, "scale", inputs, out, params=self.params(layer)))]
        act = self._layer_activation(layer, where)
        if act is not False:
            if act is None:
                return None
            return [_Raw(elementwise_op(name, "act", inputs, out, activation=act,
                                        params=self.params(layer)), fold="act")]
        if isinstance(layer, (L.Dropout, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout,
                              L.AlphaDropout, L.ActivityRegularization, L.Identity)):
            return None
        if not isinstance(layer, L.Layer) and type(layer).__module__.startswith("keras.src.ops."):
            return self._keras_op(layer, name, ins, out, where)
        if isinstance(layer, L.Lambda):
            raise ValueError(f"{where}: Lambda layers are opaque to from_keras; express the "
                             "computation with Keras layers or keras.ops")
        raise ValueError(f"{where} is not supported; {_ADVICE}")

    def _layer_activation(self, layer, where: str):
        """Op activation of an activation layer; None: identity; False: not an activation layer."""
        L = self.keras.layers
        if isinstance(layer, L.Activation):
            return self._act_name(layer.activation, where)
        if isinstance(layer, L.ReLU):  # any clipped ReLU costs as a relu6
            if layer.negative_slope:
                return "leaky_relu"
            return "relu" if layer.max_value is None else "relu6"
        if isinstance(layer, (L.LeakyReLU, L.PReLU)):
            return "leaky_relu"
        if isinstance(layer, L.Softmax):
            return "softmax"
        if isinstance(layer, L.ELU):
            return "elu"
        return False

    def _compute(self, layer, make: Callable[..., Op]) -> _Raw:
        return _Raw(make().replace(params=self.params(layer)), remake=make)

    def _elementwise(self, layer, name, kind, inputs, in_shape, out) -> _Raw:
        op = elementwise_op(name, kind, inputs, out, params=self.params(layer))
        return _Raw(op.replace(in_shape=in_shape))

    def _keras_op(self, op, name: str, ins, out: Shape, where: str) -> list[_Raw] | None:
        """A keras.ops operation recorded on KerasTensors (``x + 3.0``, ``ops.relu(x)``...)."""
        cls = type(op).__name__
        inputs = tuple(n for n, _ in ins)
        in_shape = ins[0][1]
        if cls in _OPS_ACTIVATIONS:
            return [_Raw(elementwise_op(name, "act", inputs, out, activation=_OPS_ACTIVATIONS[cls]),
                         fold="act")]
        if cls in _OPS_BINARY:
            kind = _OPS_BINARY[cls] if len(ins) >= 2 else "scale"  # tensor op constant: affine
            return [_Raw(elementwise_op(name, kind, inputs, out).replace(in_shape=in_shape))]
        if cls in _OPS_UNARY_SCALE:
            return [_Raw(elementwise_op(name, "scale", inputs, out))]
        if cls in _OPS_RESHAPE:
            return [_Raw(Op(name, "reshape", inputs, in_shape, out))]
        if cls == "Concatenate":
            return [_Raw(Op(name, "concat", inputs, in_shape, out))]
        if cls in _OPS_REDUCE:
            axis = getattr(op, "axis", None)
            axes = {a % 4 for a in ((axis,) if isinstance(axis, int) else tuple(axis or ()))}
            if axes == {1, 2}:
                return [_Raw(Op(name, "gap", inputs, in_shape, (1, 1, out[2])))]
            raise ValueError(f"{where}: a reduction over axes {axis} is not supported (only over "
                             "H and W, axis=(1, 2))")
        if cls in _OPS_IDENTITY:
            return None
        raise ValueError(f"{where}: the keras.ops operation {cls} is not supported; {_ADVICE}")


def _topological_nodes(fn, values: dict) -> list:
    """The nodes between ``values`` (known tensors) and ``fn.outputs``, producers first.

    An iterative depth-first post-order from the outputs that visits a node's inputs last first, so
    that ``Add()([shortcut, residual])`` lists the residual branch before the shortcut conv, as the
    analytic graph (and `accelnas.space.builder`) do."""
    order, done = [], set()

    def node_of(t):
        h = t._keras_history
        return h.operation._inbound_nodes[h.node_index]

    stack = [(node_of(t), False) for t in reversed(fn.outputs) if id(t) not in values]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for t in node.input_tensors:  # pushed first, popped last
            if id(t) not in values:
                parent = node_of(t)
                if id(parent) not in done:
                    stack.append((parent, False))
    return order


def _fold(raw: list[_Raw], outputs: list[str]) -> tuple[Op, ...]:
    """Fold BN / activation ops into their producer, in order (so conv -> BN -> act becomes one op).

    A BN (``fold="bn"``) folds into a conv / dwconv / fc without BN; an activation (``fold="act"``)
    into a conv / dwconv / fc / add; in both cases only when the producer has no activation yet and
    no consumer besides this op (a model output counts as a consumer). Later ops refer to the
    surviving producer by name."""
    consumers: dict[str, int] = {}
    for r in raw:
        for i in r.op.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    for o in outputs:
        consumers[o] = consumers.get(o, 0) + 1
    alias: dict[str, str] = {}
    final: dict[str, _Raw] = {}
    for r in raw:
        op = r.op.replace(inputs=tuple(alias.get(i, i) for i in r.op.inputs))
        p = final.get(op.inputs[0]) if r.fold and len(op.inputs) == 1 else None
        if p is not None and consumers.get(p.op.name) == 1 and p.op.activation is None:
            new = None
            if r.fold == "bn" and p.op.kind in COMPUTE_KINDS and not p.op.bn and p.remake:
                new = p.remake(bn=True, activation=None)
            elif r.fold == "act" and p.op.kind in _FUSE_ACT_INTO:
                new = (p.remake(bn=p.op.bn, activation=op.activation) if p.remake
                       else p.op.replace(activation=op.activation))
            if new is not None:  # params: the Keras weights of every folded layer
                final[p.op.name] = _Raw(new.replace(params=p.op.params + op.params,
                                                    inputs=p.op.inputs), p.remake)
                alias[op.name] = p.op.name
                consumers[p.op.name] = consumers.get(op.name, 0)
                continue
        final[op.name] = _Raw(op, r.remake)
    return tuple(r.op for r in final.values())
