"""Keras models from architectures: every model is built from its op graph (`accelnas.space.graph`).

Layer names equal op names (``stage3_block2_dwconv``), with ``_bn`` and ``_<activation>`` suffixes
for the BatchNorm and activation layers folded into an op, so a built model maps back onto its graph.
"""
from __future__ import annotations

import re

from accelnas.space.arch import ArchSpec
from accelnas.space.graph import OpGraph, from_arch

_ACTIVATIONS = {  # op activation -> Keras activation identifier
    "relu": "relu", "relu6": "relu6", "hswish": "hard_swish", "swish": "swish",
    "sigmoid": "sigmoid", "hsigmoid": "hard_sigmoid", "softmax": "softmax",
}


def model_name(name: str) -> str:
    """``name`` as a Keras model name: Keras refuses a root scope name outside
    ``[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*`` (e.g. ``cand0@1`` or one with a space), so other characters
    become ``_``."""
    out = re.sub(r"[^A-Za-z0-9_.\\/>-]", "_", name)
    return out if re.match(r"[A-Za-z0-9.]", out) else f"m{out}"


def build(arch: ArchSpec, resolution: int | None = None, num_classes: int | None = None, *,
          bn_momentum: float = 0.9, dropout: float = 0.0, sync_batchnorm: bool = False):
    """A Keras functional model of ``arch``.

    Args:
        arch: the architecture.
        resolution / num_classes: override the architecture's.
        bn_momentum: BatchNorm momentum. 0.9 (not Keras's 0.99 / keras.applications' 0.999) so that
            the moving statistics converge within the few hundred steps of a proxy training.
        dropout: dropout rate before the classifier (training only; not part of the op graph).
        sync_batchnorm: BatchNorm statistics over all replicas of a `tf.distribute` strategy
            (Keras ``synchronized=True``) rather than each replica's share of the batch.

    Returns:
        ``keras.Model`` taking float images (batch, res, res, 3) and returning class probabilities
        (the last activation computes in float32 under a mixed-precision policy).
    """
    return build_graph(from_arch(arch, resolution, num_classes), bn_momentum=bn_momentum,
                       dropout=dropout, sync_batchnorm=sync_batchnorm)


def build_graph(graph: OpGraph, *, bn_momentum: float = 0.9, dropout: float = 0.0,
                sync_batchnorm: bool = False):
    """A Keras functional model realising an op graph made by `accelnas.space.graph.from_arch`
    (`build` documents the keywords)."""
    import keras
    from keras import layers

    consumers: dict[str, list[str]] = {}
    kinds = {o.name: o.kind for o in graph.ops}
    for o in graph.ops:
        for i in o.inputs:
            consumers.setdefault(i, []).append(kinds[o.name])

    t: dict[str, object] = {}
    inputs = None
    for op in graph.ops:
        x = t[op.inputs[0]] if op.inputs else None
        cout = op.out_shape[2]
        if op.kind == "input":
            y = inputs = keras.Input(shape=op.out_shape, name=op.name)
        elif op.kind == "conv":
            y = layers.Conv2D(cout, op.kernel, op.stride, padding="same", use_bias=op.bias,
                              groups=op.groups, name=op.name)(x)
        elif op.kind == "dwconv":
            y = layers.DepthwiseConv2D(op.kernel, op.stride, padding="same", use_bias=op.bias,
                                       name=op.name)(x)
        elif op.kind == "fc":
            if op.name == "logits" and dropout:
                x = layers.Dropout(dropout, name="dropout")(x)
            y = layers.Dense(cout, use_bias=op.bias, name=op.name)(x)
        elif op.kind == "gap":
            keep = any(k != "fc" for k in consumers.get(op.name, []))
            y = layers.GlobalAveragePooling2D(keepdims=keep, name=op.name)(x)
        elif op.kind == "maxpool":
            y = layers.MaxPooling2D(op.kernel, op.stride, padding="same", name=op.name)(x)
        elif op.kind == "add":
            y = layers.Add(name=op.name)([t[i] for i in op.inputs])
        elif op.kind == "mul":
            y = layers.Multiply(name=op.name)([t[i] for i in op.inputs])
        else:
            raise ValueError(f"op {op.name!r}: kind {op.kind!r} cannot be built from an architecture "
                             "graph (only conv, dwconv, fc, gap, maxpool, add, mul)")
        if op.bn:
            y = layers.BatchNormalization(momentum=bn_momentum, epsilon=1e-3, name=f"{op.name}_bn",
                                          synchronized=sync_batchnorm)(y)
        if op.activation:
            last = op is graph.ops[-1]  # the classifier's softmax: float32 under mixed precision
            y = layers.Activation(_ACTIVATIONS[op.activation], name=f"{op.name}_{op.activation}",
                                  **({"dtype": "float32"} if last else {}))(y)
        t[op.name] = y
    return keras.Model(inputs, t[graph.ops[-1].name], name=model_name(graph.name))
