"""The block-type registry: what each block type is, in one place.

A block type is one function that appends the ops of one repeat of the block to a `Net` (the op
graph; the Keras builder builds its layers from that very graph) plus one `register` line with its
one-line structure, whether the search space may choose it, which per-stage decisions change it and
its plot colour. The grammar (`accelnas.space.arch`), the op graph, the Keras builder, the search
space, the params choices, the tables and the composition plots all derive from `REGISTRY`.

Block semantics (each repeat; only the first carries the stride):

* ``conv``: k x k conv -> BN -> act.
* ``ds``: k x k depthwise -> BN -> act -> [SE] -> 1x1 project -> BN (linear) [+ residual].
* ``ibn``: [1x1 expand to e*C_in -> BN -> act, when e != 1] -> k x k depthwise -> BN -> act ->
  [SE] -> 1x1 project -> BN [+ residual].
* ``fused``: k x k conv C_in -> e*C_in -> BN -> act -> [SE] -> 1x1 project -> BN [+ residual]
  (the EfficientNet-EdgeTPU fused inverted bottleneck). With e == 1 (EfficientNetV2 rule): one
  k x k conv C_in -> c -> BN -> act [-> SE] [+ residual].
* ``bottleneck`` (ResNet v1): width = c / e; 1x1 conv (stride) -> k x k conv -> 1x1 conv to c,
  BN after each, shortcut (1x1 projection with stride when the shape changes), add, act.

A residual add is used when stride == 1, C_in == c and ``skip`` is set.

Adding a block type: write ``def _mine(net, arch, b, prefix, x, stride) -> Op`` with the op
constructors of `accelnas.space.ops`, then ``register("mine", _mine, doc=..., searchable=...,
uses=...)``. Nothing else changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from accelnas.space.ops import Net, Op, conv_op, elementwise_op
from accelnas.space.rounding import make_divisible

ArchSpec = BlockSpec = Any  # accelnas.space.arch's classes (arch imports this module, not the reverse)

DECISIONS = ("block", "kernel", "expand_ratio", "channels", "repeats", "se_ratio", "activation")
"""Per-stage decisions of the search space, in the order they are drawn and registered."""

Emit = Callable[[Net, ArchSpec, BlockSpec, str, Op, int], Op]


@dataclass(frozen=True)
class BlockType:
    """One registered block type.

    Attributes:
        name: the grammar's first token (``ibn`` in ``ibn_r4_k5_s2_e8_c96``).
        emit: appends the ops of one repeat to a `Net`; ``(net, arch, block, prefix, x, stride)``
            -> the output op. Op names start with ``prefix`` (the Keras layer names).
        doc: one line of structure, for tables and notebooks.
        searchable: the search space may choose it (``search_space.block_types``).
        uses: the per-stage decisions (`DECISIONS`) that change the network; the others are
            normalised away when the search space builds an architecture.
        color: matplotlib colour of its bars and points.
    """

    name: str
    emit: Emit
    doc: str
    searchable: bool = False
    uses: frozenset = frozenset(DECISIONS)
    color: str = "tab:gray"


REGISTRY: dict[str, BlockType] = {}


def register(name: str, emit: Emit, *, doc: str, searchable: bool = False,
             uses=DECISIONS, color: str = "tab:gray") -> BlockType:
    """Add a block type (a name that is taken raises ValueError)."""
    if name in REGISTRY:
        raise ValueError(f"block type {name!r} is already registered")
    if not name.isidentifier() or "_" in name:
        raise ValueError(f"block type name {name!r}: letters and digits only (it is a grammar token)")
    bad = set(uses) - set(DECISIONS)
    if bad:
        raise ValueError(f"block type {name!r}: unknown decisions {sorted(bad)}; allowed: {DECISIONS}")
    REGISTRY[name] = BlockType(name, emit, doc, searchable, frozenset(uses) | {"block"}, color)
    return REGISTRY[name]


def get(name: str) -> BlockType:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown block type {name!r}; allowed: {', '.join(REGISTRY)}") from None


def names() -> tuple[str, ...]:
    """Every registered block type, in registration order."""
    return tuple(REGISTRY)


def searchable() -> tuple[str, ...]:
    """The block types the search space may choose between."""
    return tuple(n for n, t in REGISTRY.items() if t.searchable)


def emit_block(net: Net, arch: ArchSpec, b: BlockSpec, prefix: str, x: Op, stride: int) -> Op:
    """Append the ops of one repeat of block ``b`` (through the registry); returns the output op."""
    return get(b.type).emit(net, arch, b, prefix, x, stride)


# ---------------------------------------------------------------------------------------------
# shared parts

def _act(arch: ArchSpec, b: BlockSpec) -> str:
    return b.activation or arch.activation


def _se_channels(arch: ArchSpec, block_in: int, expanded: int, ratio: float) -> int:
    if arch.se_style == "mobilenetv3":
        return make_divisible(expanded * ratio, 8)
    return max(1, int(block_in * ratio))


def _se(net: Net, arch: ArchSpec, prefix: str, x: Op, block_in: int, ratio: float, act: str) -> Op:
    """Squeeze-excite on ``x``: pool, reduce, expand (gate), multiply."""
    c = x.out_shape[2]
    se_c = _se_channels(arch, block_in, c, ratio)
    inner, gate = ("relu", "hsigmoid") if arch.se_style == "mobilenetv3" else (act, "sigmoid")
    pool = net.add(Op(f"{prefix}_se_pool", "gap", (x.name,), x.out_shape, (1, 1, c)))
    red = net.add(conv_op(f"{prefix}_se_reduce", (pool.name,), (1, 1, c), se_c, 1, bias=True, bn=False,
                          activation=inner))
    exp = net.add(conv_op(f"{prefix}_se_expand", (red.name,), (1, 1, se_c), c, 1, bias=True, bn=False,
                          activation=gate))
    return net.add(Op(f"{prefix}_se_mul", "mul", (x.name, exp.name), x.out_shape, x.out_shape))


def _project(net: Net, arch: ArchSpec, b: BlockSpec, prefix: str, inp: Op, x: Op, stride: int) -> Op:
    """[SE] -> 1x1 linear projection to c [+ residual]: the tail of ds, ibn and fused."""
    if b.se_ratio:
        x = _se(net, arch, prefix, x, inp.out_shape[2], b.se_ratio, _act(arch, b))
    x = net.add(conv_op(f"{prefix}_project_conv", (x.name,), x.out_shape, b.out_channels, 1))
    return _residual(net, b, prefix, inp, x, stride)


def _residual(net: Net, b: BlockSpec, prefix: str, inp: Op, x: Op, stride: int) -> Op:
    if b.skip and stride == 1 and inp.out_shape[2] == b.out_channels:
        x = net.add(elementwise_op(f"{prefix}_add", "add", (inp.name, x.name), x.out_shape))
    return x


# ---------------------------------------------------------------------------------------------
# the block types

def _conv(net: Net, arch: ArchSpec, b: BlockSpec, prefix: str, x: Op, stride: int) -> Op:
    return net.add(conv_op(f"{prefix}_conv", (x.name,), x.out_shape, b.out_channels, b.kernel, stride,
                           activation=_act(arch, b)))


def _depthwise(net: Net, arch: ArchSpec, b: BlockSpec, prefix: str, x: Op, stride: int) -> Op:
    c = x.out_shape[2]
    return net.add(conv_op(f"{prefix}_dwconv", (x.name,), x.out_shape, c, b.kernel, stride, groups=c,
                           activation=_act(arch, b)))


def _ds(net: Net, arch: ArchSpec, b: BlockSpec, prefix: str, x: Op, stride: int) -> Op:
    return _project(net, arch, b, prefix, x, _depthwise(net, arch, b, prefix, x, stride), stride)


def _ibn(net: Net, arch: ArchSpec, b: BlockSpec, prefix: str, x: Op, stride: int) -> Op:
    inp = x
    if b.expand_ratio != 1:
        mid = make_divisible(x.out_shape[2] * b.expand_ratio, 8)
        x = net.add(conv_op(f"{prefix}_expand_conv", (x.name,), x.out_shape, mid, 1,
                            activation=_act(arch, b)))
    return _project(net, arch, b, prefix, inp, _depthwise(net, arch, b, prefix, x, stride), stride)


def _fused(net: Net, arch: ArchSpec, b: BlockSpec, prefix: str, x: Op, stride: int) -> Op:
    inp, act = x, _act(arch, b)
    if b.expand_ratio == 1:  # EfficientNetV2 rule: one k x k conv to c
        x = net.add(conv_op(f"{prefix}_fused_conv", (x.name,), x.out_shape, b.out_channels, b.kernel,
                            stride, activation=act))
        if b.se_ratio:
            x = _se(net, arch, prefix, x, inp.out_shape[2], b.se_ratio, act)
        return _residual(net, b, prefix, inp, x, stride)
    mid = make_divisible(x.out_shape[2] * b.expand_ratio, 8)
    x = net.add(conv_op(f"{prefix}_fused_conv", (x.name,), x.out_shape, mid, b.kernel, stride,
                        activation=act))
    return _project(net, arch, b, prefix, inp, x, stride)


def _bottleneck(net: Net, arch: ArchSpec, b: BlockSpec, prefix: str, x: Op, stride: int) -> Op:
    act = _act(arch, b)
    width = make_divisible(b.out_channels / b.expand_ratio, 8)
    y = net.add(conv_op(f"{prefix}_conv1", (x.name,), x.out_shape, width, 1, stride, activation=act))
    y = net.add(conv_op(f"{prefix}_conv2", (y.name,), y.out_shape, width, b.kernel, 1, activation=act))
    y = net.add(conv_op(f"{prefix}_conv3", (y.name,), y.out_shape, b.out_channels, 1, 1))
    short = x
    if stride != 1 or x.out_shape[2] != b.out_channels or not b.skip:
        short = net.add(conv_op(f"{prefix}_shortcut", (x.name,), x.out_shape, b.out_channels, 1, stride))
    return net.add(elementwise_op(f"{prefix}_add", "add", (short.name, y.name), y.out_shape,
                                  activation=act))


_NO_EXPAND_NO_SE = tuple(d for d in DECISIONS if d not in ("expand_ratio", "se_ratio"))

register("conv", _conv, doc="k x k conv -> BN -> act", searchable=True, uses=_NO_EXPAND_NO_SE,
         color="tab:green")
register("ds", _ds, doc="k x k depthwise -> BN -> act -> [SE] -> 1x1 project -> BN [+ residual]",
         uses=tuple(d for d in DECISIONS if d != "expand_ratio"), color="tab:purple")
register("ibn", _ibn, doc="[1x1 expand to e*C_in] -> k x k depthwise -> [SE] -> 1x1 project "
                          "[+ residual] (MobileNetV2)", searchable=True, color="tab:blue")
register("fused", _fused, doc="k x k conv to e*C_in -> [SE] -> 1x1 project [+ residual] "
                              "(EfficientNet-EdgeTPU); e = 1: one k x k conv",
         searchable=True, color="tab:orange")
register("bottleneck", _bottleneck, doc="1x1 conv (stride) -> k x k conv -> 1x1 conv to c, shortcut, "
                                        "add, act (ResNet v1)", color="tab:brown")
