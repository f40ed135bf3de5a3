"""ArchSpec -> OpGraph, analytically (no TensorFlow).

The op primitives (`Op`, `OpGraph`, the counting rules of `conv_op` & co.) live in
`accelnas.space.ops`; what each block type emits lives in the block-type registry
(`accelnas.space.blocks`). This module walks an architecture: stem, every repeat of every stage
through the registry, head. `accelnas.space.graph_keras.from_keras` is the other producer of op graphs
(any Keras functional model); both follow the conventions of `accelnas.space.ops`.
"""
from __future__ import annotations

from accelnas.space.arch import ArchSpec
from accelnas.space.blocks import emit_block
from accelnas.space.ops import (ACT_TO_TFLITE, COMPUTE_KINDS, KIND_TO_TFLITE, OP_ACTIVATIONS,  # noqa: F401
                                OP_KINDS, Net, Op, OpGraph, Shape, conv_op, conv_out, elementwise_op,
                                fc_op, tflite_ops)


def from_arch(arch: ArchSpec, resolution: int | None = None, num_classes: int | None = None) -> OpGraph:
    """The op graph of an architecture, analytically (no TensorFlow).

    Op names are the Keras layer names `accelnas.space.builder.build` gives: ``stem_conv``,
    ``stage3_block2_dwconv``, ``head_conv``, ``logits``...
    """
    res = resolution or arch.resolution
    ncls = num_classes or arch.num_classes
    net = Net()
    x = net.add(Op("input", "input", (), (res, res, 3), (res, res, 3)))
    x = net.add(conv_op("stem_conv", (x.name,), x.out_shape, arch.stem.out_channels, arch.stem.kernel,
                        arch.stem.stride, activation=arch.stem.activation or arch.activation))
    if arch.stem_pool:
        h, w, c = x.out_shape
        x = net.add(Op("stem_pool", "maxpool", (x.name,), x.out_shape,
                       (conv_out(h, 3, 2), conv_out(w, 3, 2), c), kernel=3, stride=2))
    for si, b in enumerate(arch.blocks, start=1):
        for r in range(b.repeats):
            x = emit_block(net, arch, b, f"stage{si}_block{r + 1}", x, b.stride if r == 0 else 1)
    act = arch.activation
    if arch.head_channels:
        x = net.add(conv_op("head_conv", (x.name,), x.out_shape, arch.head_channels, 1, activation=act))
    c = x.out_shape[2]
    x = net.add(Op("pool", "gap", (x.name,), x.out_shape, (1, 1, c)))
    if arch.pre_logits:
        x = net.add(fc_op("pre_logits", (x.name,), c, arch.pre_logits, activation=act))
    x = net.add(fc_op("logits", (x.name,), x.out_shape[2], ncls, activation="softmax"))
    return OpGraph(name=arch.name, ops=tuple(net.ops))
