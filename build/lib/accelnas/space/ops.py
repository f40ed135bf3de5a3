"""Ops and op graphs: one intermediate representation of a network for latency modelling.

Pure module (no TensorFlow). An `OpGraph` is a topologically ordered tuple of `Op`. It is produced

* analytically from an `ArchSpec` by `from_arch` (the fast path for search; the Keras builder in
  `accelnas.space.builder` builds its models from this very graph), and
* from any Keras functional model by `accelnas.space.graph_keras.from_keras` (walks the layers).

Conventions (both producers follow them, so their totals agree):

* shapes are ``(H, W, C)`` without the batch; a vector is ``(1, 1, C)``;
* BatchNorm following a conv / depthwise / dense is folded into it (``bn=True``); its 4 * C
  parameters stay in ``params`` so that ``OpGraph.params == keras_model.count_params()``;
* ``macs`` counts multiply-accumulates of conv, depthwise and dense ops only (the usual
  "MAdds" of the papers); elementwise ops have 0 MACs;
* ``weight_bytes`` is the int8 deployed size: 1 byte per weight plus a 4-byte int32 bias per output
  channel for ops that carry a bias or a folded BN.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


OP_KINDS = (
    "input", "conv", "dwconv", "fc", "add", "mul", "concat", "maxpool", "avgpool", "gap", "act",
    "pad", "reshape", "scale",
)
OP_ACTIVATIONS = (None, "relu", "relu6", "hswish", "swish", "sigmoid", "hsigmoid", "softmax",
                  "tanh", "gelu", "elu", "selu", "softplus", "leaky_relu")
COMPUTE_KINDS = ("conv", "dwconv", "fc")

KIND_TO_TFLITE = {  # op kind -> TFLite builtin ops it becomes (activation ops added separately)
    "conv": ("CONV_2D",), "dwconv": ("DEPTHWISE_CONV_2D",), "fc": ("FULLY_CONNECTED",),
    "add": ("ADD",), "mul": ("MUL",), "concat": ("CONCATENATION",), "maxpool": ("MAX_POOL_2D",),
    "avgpool": ("AVERAGE_POOL_2D",), "gap": ("MEAN",), "pad": ("PAD",), "reshape": ("RESHAPE",),
    "scale": ("MUL", "ADD"), "act": (), "input": (),
}
ACT_TO_TFLITE = {  # activations TFLite fuses into the producing op need no op of their own
    None: (), "relu": (), "relu6": (), "hswish": ("HARD_SWISH",), "swish": ("LOGISTIC", "MUL"),
    # int8 conversion measured with TF 2.21 (tests/test_tflite.py): hard-sigmoid after a conv folds
    # "+3, ReLU6" into the conv and leaves a MUL; ELU stays float between DEQUANTIZE / QUANTIZE.
    "sigmoid": ("LOGISTIC",), "hsigmoid": ("MUL",), "softmax": ("SOFTMAX",),
    "tanh": ("TANH",), "gelu": ("GELU",), "elu": ("DEQUANTIZE", "ELU", "QUANTIZE"),
    "selu": ("GREATER", "MUL", "EXP", "SUB", "SELECT"), "softplus": ("EXP", "ADD", "LOG"),
    "leaky_relu": ("LEAKY_RELU",),
}


def tflite_ops(op: Op) -> tuple[str, ...]:
    """The TFLite builtin ops an op of the graph becomes after int8 conversion."""
    extra = ("RELU",) if op.kind == "act" and op.activation in ("relu",) else ()
    extra += ("RELU6",) if op.kind == "act" and op.activation == "relu6" else ()
    return KIND_TO_TFLITE[op.kind] + extra + ACT_TO_TFLITE[op.activation]

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class Op:
    """One operator after BN folding.

    Attributes:
        name: unique; equal to the Keras layer name for ops built by `accelnas.space.builder`.
        kind: one of OP_KINDS.
        inputs: names of the producing ops (the first is the main input).
        in_shape / out_shape: (H, W, C) of the first input / the output.
        kernel, stride, groups: conv geometry (groups == C for depthwise).
        params: Keras parameter count of the layers folded into this op.
        macs: multiply-accumulates per image.
        weight_bytes: int8 deployed weights + int32 biases, bytes.
        activation: fused activation (None: linear).
        bias, bn: the op has a bias / a folded BatchNorm.
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    in_shape: Shape
    out_shape: Shape
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    params: int = 0
    macs: int = 0
    weight_bytes: int = 0
    activation: str | None = None
    bias: bool = False
    bn: bool = False

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise ValueError(f"op {self.name!r}: unknown kind {self.kind!r}; allowed: {OP_KINDS}")
        if self.activation not in OP_ACTIVATIONS:
            raise ValueError(f"op {self.name!r}: unknown activation {self.activation!r}")

    @property
    def in_bytes(self) -> int:
        """int8 bytes of the first input activation."""
        return math.prod(self.in_shape)

    @property
    def out_bytes(self) -> int:
        """int8 bytes of the output activation."""
        return math.prod(self.out_shape)

    def replace(self, **changes) -> "Op":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class OpGraph:
    """A network as a topologically ordered tuple of ops."""

    name: str
    ops: tuple[Op, ...]

    @property
    def params(self) -> int:
        return sum(o.params for o in self.ops)

    @property
    def macs(self) -> int:
        return sum(o.macs for o in self.ops)

    @property
    def weight_bytes(self) -> int:
        return sum(o.weight_bytes for o in self.ops)

    @property
    def deployed_params(self) -> int:
        """Parameters after BN folding: weights plus one bias per output channel of ops with a bias
        or BN (what an int8 TFLite file stores; equal to slim's trainable count, whose BN has no
        scale)."""
        return sum(o.weight_bytes - (3 * o.out_shape[2] if (o.bias or o.bn) else 0) for o in self.ops)

    @property
    def input_shape(self) -> Shape:
        return self.ops[0].out_shape

    @property
    def output_shape(self) -> Shape:
        return self.ops[-1].out_shape

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self):
        return iter(self.ops)

    def op(self, name: str) -> Op:
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(f"no op named {name!r} in graph {self.name!r}")

    def records(self) -> list[dict]:
        """One dict per op (for ``pandas.DataFrame(graph.records())``)."""
        rows = []
        for o in self.ops:
            d = dataclasses.asdict(o)
            d["inputs"] = ",".join(o.inputs)
            for key in ("in_shape", "out_shape"):
                d[key] = "x".join(map(str, d[key]))
            rows.append(d)
        return rows

    def summary(self) -> dict:
        kinds: dict[str, int] = {}
        for o in self.ops:
            kinds[o.kind] = kinds.get(o.kind, 0) + 1
        return {"name": self.name, "ops": len(self.ops), "params": self.params, "macs": self.macs,
                "weight_bytes": self.weight_bytes, "kinds": kinds}


# ---------------------------------------------------------------------------------------------
# Op constructors with the counting rules (shared with graph_keras so the conventions are one).

def conv_out(size: int, kernel: int, stride: int, padding: str = "same") -> int:
    """Output size of a conv / pool along one axis."""
    if padding == "same":
        return -(-size // stride)
    if padding == "valid":
        return (size - kernel) // stride + 1
    raise ValueError(f"unknown padding {padding!r}")


def conv_op(name: str, inputs: tuple[str, ...], in_shape: Shape, out_channels: int, kernel: int,
            stride: int = 1, *, groups: int = 1, bias: bool = False, bn: bool = True,
            activation: str | None = None, padding: str = "same", out_hw: tuple[int, int] | None = None,
            kind: str | None = None, extra_params: int = 0) -> Op:
    """A conv (groups == 1), depthwise conv (groups == C_in == C_out) or grouped conv."""
    h, w, cin = in_shape
    ho, wo = out_hw or (conv_out(h, kernel, stride, padding), conv_out(w, kernel, stride, padding))
    if cin % groups or out_channels % groups:
        raise ValueError(f"op {name!r}: channels {cin}->{out_channels} not divisible by groups {groups}")
    weights = kernel * kernel * (cin // groups) * out_channels
    params = weights + (out_channels if bias else 0) + (4 * out_channels if bn else 0) + extra_params
    kind = kind or ("dwconv" if groups == cin and groups > 1 else "conv")
    return Op(name=name, kind=kind, inputs=inputs, in_shape=in_shape, out_shape=(ho, wo, out_channels),
              kernel=kernel, stride=stride, groups=groups, params=params,
              macs=ho * wo * weights, weight_bytes=weights + (4 * out_channels if (bias or bn) else 0),
              activation=activation, bias=bias, bn=bn)


def fc_op(name: str, inputs: tuple[str, ...], in_features: int, units: int, *, bias: bool = True,
          bn: bool = False, activation: str | None = None) -> Op:
    weights = in_features * units
    params = weights + (units if bias else 0) + (4 * units if bn else 0)
    return Op(name=name, kind="fc", inputs=inputs, in_shape=(1, 1, in_features), out_shape=(1, 1, units),
              params=params, macs=weights, weight_bytes=weights + (4 * units if (bias or bn) else 0),
              activation=activation, bias=bias, bn=bn)


def elementwise_op(name: str, kind: str, inputs: tuple[str, ...], shape: Shape,
                   activation: str | None = None, params: int = 0) -> Op:
    return Op(name=name, kind=kind, inputs=inputs, in_shape=shape, out_shape=shape, params=params,
              activation=activation)


class Net:
    """Accumulates ops in order (what a block type's emit function appends to)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(self, op: Op) -> Op:
        self.ops.append(op)
        return op
