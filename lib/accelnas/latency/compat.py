"""Edge TPU compatibility of an int8 TFLite model: which ops map, where the graph is cut.

`edgetpu_compat(tflite)` reads the flatbuffer (TFLite's own generated schema, so no interpreter and
no TensorFlow import are needed) and applies the Edge TPU compiler's documented rules
(docs/edgetpu.md section 2, coral.ai "TensorFlow models on the Edge TPU"):

* the op must be in the supported-op table. By default the **2019 table** (compiler v2.x, the one
  the paper's models were designed for), so MobileNetV3's HARD_SWISH is *not* mapped;
  ``modern_compiler=True`` adds the ops that later compilers map ([U] in docs/edgetpu.md section 2: HARD_SWISH,
  TRANSPOSE_CONV, TRANSPOSE, REDUCE_MAX, REDUCE_MIN, SUM);
* tensors are 8-bit (int8/uint8; int32 only for constant biases/shapes/axes), shapes static,
  at most 3 non-trivial (innermost) dimensions (so only batch 1), constant conv/FC parameters;
* MEAN over x/y only; FULLY_CONNECTED with a 1-D output; AVERAGE/MAX_POOL_2D without a fused
  activation; SOFTMAX 1-D with <= 16,000 elements; STRIDED_SLICE with strides 1; PAD on x/y only;
* partitioning: the compiler cuts the graph ONCE, at the first unsupported op; that op and every
  op after it (in execution order) runs on the CPU, supported or not. A float model input/output
  is the one exception: its QUANTIZE / DEQUANTIZE (float <-> int8) boundary ops run on the CPU
  without cutting the graph (docs/edgetpu.md section 2).

Assumption beyond the 2019 table: an int8 -> int8 QUANTIZE (a requantization the converter may
insert) is treated as mapped, as the compiler does in practice; a DEQUANTIZE to float inside the
graph (the converter's wrapper around an op that has no int8 kernel, e.g. ELU) is not.

If ``edgetpu_compiler`` is on PATH, `edgetpu_compat` also runs it and takes the mapped/CPU verdict
from its log (`accelnas.latency.edgetpu_compiler`, the only place that touches the real compiler).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from accelnas.latency.edgetpu_compiler import compiler_path, run_compiler
from accelnas.latency.flatbuffer import (TFLiteGraph, _enum_names, _ints, _nontrivial, _numel, float_compute_ops,  # noqa: F401
                                         load_schema, parse_model, read_tflite)

__all__ = ["edgetpu_compat", "CompatReport", "OpReport", "SUPPORTED_OPS_2019",
           "SUPPORTED_OPS_MODERN", "load_schema", "parse_model", "float_compute_ops"]

# The 2019 supported-op table, as TFLite builtin op names.
SUPPORTED_OPS_2019 = frozenset({
    "LOGISTIC", "RELU", "RELU6", "RELU_N1_TO_1", "TANH", "ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM",
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "CONCATENATION", "MEAN", "PAD", "RESHAPE", "SLICE", "SPLIT", "SQUEEZE", "STRIDED_SLICE",
    "SPACE_TO_DEPTH", "L2_NORMALIZATION", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "SOFTMAX",
})
# Added by later compilers ([U] in docs/edgetpu.md section 2); used with modern_compiler=True.
SUPPORTED_OPS_MODERN = SUPPORTED_OPS_2019 | {
    "HARD_SWISH", "TRANSPOSE_CONV", "TRANSPOSE", "REDUCE_MAX", "REDUCE_MIN", "SUM",
}
SOFTMAX_MAX_ELEMENTS = 16000
MAX_NONTRIVIAL_DIMS = 3


# --------------------------------------------------------------------------- report

@dataclass(frozen=True)
class OpReport:
    """One TFLite op, in execution order.

    ``supported``: the op satisfies the compiler rules by itself. ``mapped``: it runs on the Edge
    TPU (supported AND before the partition point). ``reason`` says why not, or why it maps.
    """

    index: int
    op: str
    mapped: bool
    supported: bool
    reason: str
    macs: int
    output: str
    output_shape: tuple[int, ...]
    output_dtype: str

    @property
    def on_cpu(self) -> bool:
        return not self.mapped


@dataclass
class CompatReport:
    """Edge TPU compatibility of one TFLite model.

    Attributes:
        ops: every op in execution order.
        partition_index: index of the first unsupported op (where the compiler cuts the graph),
            None when nothing cuts it.
        modern_compiler: whether the later compilers' extra ops counted as supported.
        source: ``"rules"`` (this module's rule check) or ``"edgetpu_compiler"`` (the verdict
            comes from the real compiler's log; ``ops`` still come from the rule check).
        compiler_counts / compiler_log: the compiler's ``{"edgetpu_ops", "cpu_ops"}`` and log.
    """

    ops: list[OpReport]
    partition_index: int | None
    modern_compiler: bool = False
    source: str = "rules"
    compiler_counts: dict | None = None
    compiler_log: str | None = None
    model_bytes: int = 0
    _fully_mapped: bool | None = field(default=None, repr=False)

    @property
    def partition_op(self) -> OpReport | None:
        return None if self.partition_index is None else self.ops[self.partition_index]

    @property
    def cpu_ops(self) -> list[OpReport]:
        """Ops that run on the CPU: the unsupported one, everything after it, I/O boundaries."""
        return [o for o in self.ops if not o.mapped]

    @property
    def edgetpu_ops(self) -> list[OpReport]:
        return [o for o in self.ops if o.mapped]

    @property
    def unsupported_ops(self) -> list[OpReport]:
        return [o for o in self.ops if not o.supported]

    @property
    def total_macs(self) -> int:
        return sum(o.macs for o in self.ops)

    @property
    def cpu_fraction_macs(self) -> float:
        """Share of the model's MACs (conv/depthwise/FC) computed on the CPU."""
        total = self.total_macs
        return sum(o.macs for o in self.cpu_ops) / total if total else self.cpu_fraction_ops

    @property
    def cpu_fraction_ops(self) -> float:
        return len(self.cpu_ops) / len(self.ops) if self.ops else 0.0

    @property
    def fully_mapped(self) -> bool:
        """No op cuts the graph (float-I/O QUANTIZE/DEQUANTIZE on the CPU are allowed)."""
        if self._fully_mapped is not None:
            return self._fully_mapped
        return self.partition_index is None

    def summary(self) -> dict:
        """The headline figures as a JSON-able dict."""
        p = self.partition_op
        return {
            "fully_mapped": self.fully_mapped,
            "n_ops": len(self.ops),
            "edgetpu_ops": len(self.edgetpu_ops),
            "cpu_ops": len(self.cpu_ops),
            "partition_index": self.partition_index,
            "partition_op": p.op if p else None,
            "partition_reason": p.reason if p else None,
            "unsupported_op_types": sorted({o.op for o in self.unsupported_ops}),
            "total_macs": self.total_macs,
            "cpu_fraction_macs": self.cpu_fraction_macs,
            "cpu_fraction_ops": self.cpu_fraction_ops,
            "modern_compiler": self.modern_compiler,
            "source": self.source,
            "compiler_counts": self.compiler_counts,
        }

    def to_dict(self) -> dict:
        return {**self.summary(), "ops": [dataclasses.asdict(o) for o in self.ops]}

    def to_frame(self):
        """One row per op (pandas DataFrame), with an ``on_cpu`` column."""
        import pandas as pd

        rows = [{**dataclasses.asdict(o), "on_cpu": o.on_cpu} for o in self.ops]
        cols = ["index", "op", "mapped", "supported", "on_cpu", "reason", "macs", "output",
                "output_shape", "output_dtype"]
        return pd.DataFrame(rows, columns=cols)

    def __str__(self) -> str:
        s = self.summary()
        head = ("fully mapped to the Edge TPU" if s["fully_mapped"] else
                f"partitioned at op {s['partition_index']} ({s['partition_op']}: "
                f"{s['partition_reason']})")
        return (f"CompatReport({s['n_ops']} ops, {head}; {s['cpu_ops']} ops on CPU, "
                f"{100 * s['cpu_fraction_macs']:.1f}% of MACs)")


# --------------------------------------------------------------------------- rules

def _macs(g: TFLiteGraph, name: str, ins: list[int], outs: list[int]) -> int:
    if not outs:
        return 0
    out = _numel(g.shape(outs[0]))
    try:
        if name == "CONV_2D":
            _, kh, kw, cin = g.shape(ins[1])
            return out * kh * kw * cin
        if name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = g.shape(ins[1])
            return out * kh * kw
        if name == "FULLY_CONNECTED":
            return out * g.shape(ins[1])[-1]
        if name == "TRANSPOSE_CONV":
            cout, kh, kw, _ = g.shape(ins[1])
            return _numel(g.shape(ins[2])) * kh * kw * cout
    except (IndexError, ValueError):
        return 0
    return 0


_EIGHT_BIT = ("int8", "uint8")
_CONST_OK = ("int8", "uint8", "int32", "int64")


def _check(g: TFLiteGraph, op, name: str, table: frozenset, modern: bool) -> list[str]:
    """Reasons why ``op`` cannot map to the Edge TPU (empty: it can)."""
    ins = [i for i in _ints(op.inputs) if i >= 0]
    outs = _ints(op.outputs)
    why: list[str] = []

    if name == "QUANTIZE":
        if ins and g.dtype(ins[0]) in _EIGHT_BIT and outs and g.dtype(outs[0]) in _EIGHT_BIT:
            pass  # int8 -> int8 requantization (assumed mapped, see module docstring)
        else:
            why.append(f"QUANTIZE from {g.dtype(ins[0]) if ins else '?'}: float data inside the "
                       "graph (an op before it had no int8 kernel)")
    elif name == "DEQUANTIZE":
        why.append("DEQUANTIZE to float: the converter kept the following op(s) in float (no int8 "
                   "kernel), the Edge TPU computes int8 only")
    elif name not in table:
        if name in SUPPORTED_OPS_MODERN and not modern:
            why.append(f"{name} is not in the Edge TPU's 2019 supported-op table (later compilers "
                       "map it: modern_compiler=True)")
        else:
            why.append(f"{name} is not supported by the Edge TPU compiler")

    for i in ins + outs:
        dt = g.dtype(i)
        if g.const(i):
            if dt not in _CONST_OK:
                why.append(f"{dt} constant {g.name(i)!r} (not quantized)")
        elif dt not in _EIGHT_BIT and name not in ("QUANTIZE", "DEQUANTIZE"):
            why.append(f"{dt} tensor {g.name(i)!r} (only 8-bit tensors map)")
    for i in ins + outs:
        if g.dynamic(i):
            why.append(f"dynamic shape on {g.name(i)!r} (shapes must be static)")
            break
    for i in ins + outs:
        if not g.const(i) and _nontrivial(g.shape(i)) > MAX_NONTRIVIAL_DIMS:
            why.append(f"tensor {g.name(i)!r} of shape {list(g.shape(i))} has more than "
                       f"{MAX_NONTRIVIAL_DIMS} non-trivial dimensions")
            break

    opts = op.builtinOptions
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
        if len(ins) > 1 and not g.const(ins[1]):  # the weights (TRANSPOSE_CONV: also input 1)
            why.append("weights are not constant")
    if name == "MEAN" and ins:
        rank = len(g.shape(ins[0]))
        axes = g.value(ins[1]) if len(ins) > 1 else None
        if axes is None:
            why.append("MEAN axes are not constant")
        else:
            axes = {int(a) % rank for a in axes.reshape(-1)} if rank else set()
            if rank != 4 or not axes or not axes <= {1, 2}:
                why.append(f"MEAN over axes {sorted(axes)} of a rank-{rank} tensor (only over "
                           "x/y, axes 1 and 2 of NHWC)")
    if name == "FULLY_CONNECTED" and outs and _nontrivial(g.shape(outs[0])) > 1:
        why.append(f"FULLY_CONNECTED output {list(g.shape(outs[0]))} is not 1-D")
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and opts is not None:
        act = getattr(opts, "fusedActivationFunction", 0)
        if act:
            act_name = _enum_names(g.schema.ActivationFunctionType).get(act, str(act))
            why.append(f"{name} with a fused {act_name} activation")
    if name == "SOFTMAX" and ins:
        shape = g.shape(ins[0])
        if _nontrivial(shape) > 1 or _numel(shape) > SOFTMAX_MAX_ELEMENTS:
            why.append(f"SOFTMAX input {list(shape)} (only 1-D with <= {SOFTMAX_MAX_ELEMENTS} "
                       "elements)")
    if name == "STRIDED_SLICE" and len(ins) > 3:
        strides = g.value(ins[3])
        if strides is None or any(int(s) != 1 for s in strides.reshape(-1)):
            why.append(f"STRIDED_SLICE strides "
                       f"{'not constant' if strides is None else strides.tolist()} (only 1)")
    if name == "PAD" and len(ins) > 1:
        pads = g.value(ins[1])
        rank = len(g.shape(ins[0]))
        if pads is None:
            why.append("PAD paddings are not constant")
        else:
            xy = {rank - 3, rank - 2}
            bad = [a for a in range(pads.shape[0]) if a not in xy and pads[a].any()]
            if bad:
                why.append(f"PAD on axes {bad} (only x/y)")
    return why


def _boundary(g: TFLiteGraph, name: str, op) -> bool:
    """A float model input's QUANTIZE or a float model output's DEQUANTIZE."""
    ins, outs = _ints(op.inputs), _ints(op.outputs)
    if name == "QUANTIZE":
        return bool(ins) and ins[0] in g.inputs and g.dtype(ins[0]) not in _EIGHT_BIT
    if name == "DEQUANTIZE":
        return bool(outs) and outs[0] in g.outputs and not g.const(ins[0])
    return False


def _analyse(data: bytes, modern: bool, table: frozenset) -> CompatReport:
    schema = load_schema()
    g = TFLiteGraph(parse_model(data, schema), schema)
    rows = []
    partition = None
    for index, op in enumerate(g.sub.operators or []):
        name = g.op_name(op)
        ins = [i for i in _ints(op.inputs) if i >= 0]
        outs = _ints(op.outputs)
        boundary = _boundary(g, name, op)
        why = [] if boundary else _check(g, op, name, table, modern)
        supported = not why and not boundary
        if boundary:
            reason = (f"{name} at the model's float {'input' if name == 'QUANTIZE' else 'output'}: "
                      "runs on the CPU without cutting the graph")
        elif why:
            reason = "; ".join(why)
            if partition is None:
                partition = index
            else:
                reason += f" (and after the partition at op {partition})"
        elif partition is not None:
            reason = (f"supported, but after the partition at op {partition} "
                      f"({rows[partition]['op']}): the compiler cuts the graph once")
        else:
            reason = "mapped"
        rows.append(dict(index=index, op=name, supported=supported,
                         mapped=supported and partition is None, reason=reason,
                         macs=_macs(g, name, ins, outs),
                         output=g.name(outs[0]) if outs else "",
                         output_shape=g.shape(outs[0]) if outs else (),
                         output_dtype=g.dtype(outs[0]) if outs else ""))
    return CompatReport(ops=[OpReport(**r) for r in rows], partition_index=partition,
                        modern_compiler=modern, model_bytes=len(data))


# --------------------------------------------------------------------------- entry point

def edgetpu_compat(tflite: bytes | str | os.PathLike, *, modern_compiler: bool = False,
                   supported_ops=None, use_compiler: bool | None = None) -> CompatReport:
    """The Edge TPU compatibility report of an int8 TFLite model.

    Args:
        tflite: the flatbuffer bytes or a ``.tflite`` path (e.g. from
            ``accelnas.latency.tflite.to_int8_tflite``).
        modern_compiler: count the ops that later compilers map (HARD_SWISH, TRANSPOSE_CONV, ...)
            as supported; default False = the 2019 table.
        supported_ops: an explicit op table instead (e.g. an ``Accelerator.supported_ops`` from
            ``accelnas/resources/hardware/*.yaml``); the structural rules above still apply.
        use_compiler: run ``edgetpu_compiler`` (None: when it is on PATH). Its counts then decide
            ``fully_mapped`` (``source="edgetpu_compiler"``); the per-op list comes from the rules.

    Returns:
        `CompatReport` (``.summary()``, ``.to_frame()``, ``.partition_index``, ``.cpu_ops``, ...).
    """
    data = read_tflite(tflite)
    if supported_ops is not None:
        table = frozenset(supported_ops)
    else:
        table = SUPPORTED_OPS_MODERN if modern_compiler else SUPPORTED_OPS_2019
    report = _analyse(data, modern_compiler, table)
    compiler = compiler_path()
    if use_compiler is None:
        use_compiler = compiler is not None
    if use_compiler:
        # --- edgetpu_compiler path (untested here: the compiler is not installed) ---
        if compiler is None:
            raise FileNotFoundError("edgetpu_compiler is not on PATH (install the Edge TPU "
                                    "compiler, Debian package edgetpu-compiler, x86-64 Linux only)")
        counts, log = run_compiler(compiler, data)
        report.source = "edgetpu_compiler"
        report.compiler_counts = counts
        report.compiler_log = log
        if counts.get("cpu_ops") is not None:
            report._fully_mapped = counts["cpu_ops"] == 0
    return report
