"""Analytical performance model (APM): a fast closed-form latency, fitted to the simulator.

The APM is a separate, cheaper model than the simulator (`accelnas.latency.sim`). Per op it counts
what a roofline sees, without the simulator's tile mapping (ragged edges over the 4 x 4 tiles and
the MAC lanes), row bands, first-fit placement or the staging buffer's overlap in time:

* ``dense_s``: MACs of convolutions and dense layers at the accelerator's peak MAC rate;
* ``depthwise_s``: MACs of depthwise convolutions at peak / ``lanes_in`` (one reduction lane used);
* ``elementwise_s``: values read by elementwise / pooling / concatenation ops at the output lanes'
  rate (the MAC array's depthwise path), once per TFLite op;
* ``ops_s``: TFLite ops x the per-op overhead;
* ``stream_s``: weight bytes beyond the parameter cache the network's peak activations leave, at
  the off-chip bandwidth (no overlap with compute).

An architecture's latency is ``invoke + io + coef @ (dense_s, depthwise_s, elementwise_s, ops_s,
stream_s, 1 s)``. The six coefficients are fitted to the simulator by non-negative least squares
on relative error over a fixed seeded set of >= 1,000 architectures (search-space samples, the zoo
at several resolutions, NAS-Bench-201 cells; `accelnas.latency.calibrate.fit_apm_coefficients`)
and stored per accelerator in ``lib/accelnas/resources/apm_coef.json``, which
`accelnas.latency.apm_for` loads. Features are cached per (block, input shape), so scoring a
candidate of a search is a few dictionary lookups and one dot product. The APM's error against the
simulator and against measured rows is reported by ``benchmarks/generalization_bench.py`` and
notebook 02; it is never zero by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelnas.space.arch import ArchSpec, BlockSpec
from accelnas.space.blocks import emit_block
from accelnas.space.graph import Net, Op, OpGraph, conv_op, fc_op, from_arch
from accelnas.space.graph import tflite_ops
from accelnas.latency.sim import Machine, elementwise_reads, live_bytes

#: Names of the APM's features / coefficients, in order (the last is a constant, seconds).
COEF_NAMES = ("c_dense", "c_depthwise", "c_elementwise", "c_ops", "c_stream", "c_const_s")
#: Unfitted coefficients: each roofline term at face value, no constant.
UNIT = (1.0, 1.0, 1.0, 1.0, 1.0, 0.0)


@dataclass(frozen=True)
class Part:
    """Cached features of a group of ops (a block repeat, the stem, the head), execution order."""

    terms: tuple             # (dense_s, depthwise_s, elementwise_s, ops_s): summed over the ops
    weight_bytes: int
    peak_bytes: int          # peak live activation bytes while these ops run
    unsupported: int         # ops the accelerator cannot run
    out_shape: tuple


@dataclass(frozen=True)
class Features:
    """Summed features of a network (see `APM.terms`)."""

    terms: tuple             # (dense_s, depthwise_s, elementwise_s, ops_s)
    weight_bytes: int
    peak_bytes: int
    unsupported: int


class APM:
    """The APM of one machine; ``coef`` in the order of `COEF_NAMES`."""

    def __init__(self, machine: Machine, coef: tuple = UNIT) -> None:
        self.machine = machine
        if len(coef) != len(COEF_NAMES):
            raise ValueError(f"the APM takes {len(COEF_NAMES)} coefficients ({', '.join(COEF_NAMES)}), got {len(coef)}")
        self.coef = tuple(float(c) for c in coef)
        self._c = np.array(self.coef)
        self.calibration = "unfitted" if self.coef == UNIT else "given"
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"APM({self.machine.name!r}, coef={self.coef})"

    # ---- per op groups -----------------------------------------------------------------------
    def _part(self, ops: list[Op], out_shape) -> Part:
        m = self.machine
        live = live_bytes(OpGraph("g", tuple(ops)))
        dense = dw = elem = n_ops = 0.0
        weights = unsupported = 0
        for op in ops:
            if op.kind == "input":
                continue
            tfl = tflite_ops(op)
            n_ops += max(1, len(tfl))
            weights += op.weight_bytes
            if op.kind in ("conv", "fc"):
                dense += op.macs
            elif op.kind == "dwconv":
                dw += op.macs
            elif op.kind != "reshape":
                elem += max(1, len(tfl)) * elementwise_reads(op)
            if any(t not in m.supported_ops for t in tfl) or (op.kind == "fc" and op.out_shape[:2] != (1, 1)):
                unsupported += 1
        terms = (dense / m.peak_macs_per_s, dw * m.lanes_in / m.peak_macs_per_s,
                 elem / (m.tiles * m.act_bytes_per_cycle_per_tile * m.clock_hz),
                 n_ops * m.per_op_overhead_cycles / m.clock_hz)
        return Part(terms, weights, max(live) if live else 0, unsupported, tuple(out_shape))

    def _block(self, arch: ArchSpec, b: BlockSpec, shape, stride: int) -> Part:
        act = b.activation or arch.activation
        key = (b.type, b.kernel, stride, b.expand_ratio, b.out_channels, b.se_ratio, act, b.skip,
               arch.se_style, shape)
        hit = self._cache.get(key)
        if hit is None:
            net = Net()
            x = net.add(Op("x", "input", (), shape, shape))
            emit_block(net, arch, b, "b", x, stride)
            hit = self._part(net.ops, net.ops[-1].out_shape)
            self._cache[key] = hit
        return hit

    def _stem(self, arch: ArchSpec) -> Part:
        key = ("stem", arch.resolution, arch.stem, arch.stem_pool, arch.activation)
        hit = self._cache.get(key)
        if hit is None:
            r = arch.resolution
            x = Op("input", "input", (), (r, r, 3), (r, r, 3))
            stem = conv_op("stem", ("input",), (r, r, 3), arch.stem.out_channels, arch.stem.kernel,
                           arch.stem.stride, activation=arch.stem.activation or arch.activation)
            hit = self._part([x, stem], stem.out_shape)
            self._cache[key] = hit
        return hit

    def _head(self, arch: ArchSpec, last_shape) -> Part:
        key = ("head", arch.activation, arch.head_channels, arch.pre_logits, arch.num_classes, last_shape)
        hit = self._cache.get(key)
        if hit is None:
            ops = [Op("x", "input", (), last_shape, last_shape)]
            c, prev = last_shape[2], "x"
            if arch.head_channels:
                ops.append(conv_op("head", (prev,), last_shape, arch.head_channels, 1, activation=arch.activation))
                c, prev = arch.head_channels, "head"
            ops.append(Op("pool", "gap", (prev,), (*last_shape[:2], c), (1, 1, c)))
            prev = "pool"
            if arch.pre_logits:
                ops.append(fc_op("pre", (prev,), c, arch.pre_logits, activation=arch.activation))
                c, prev = arch.pre_logits, "pre"
            ops.append(fc_op("logits", (prev,), c, arch.num_classes, activation="softmax"))
            hit = self._part(ops, (1, 1, arch.num_classes))
            self._cache[key] = hit
        return hit

    # ---- features ----------------------------------------------------------------------------
    def arch_features(self, arch: ArchSpec) -> Features:
        """Summed features of an architecture (fast path: cached per block)."""
        if arch.stem_pool:  # rare (ResNet): take the generic path
            return self.graph_features(from_arch(arch))
        stem = self._stem(arch)
        d, w, e, o = stem.terms
        wb, peak, bad = stem.weight_bytes, stem.peak_bytes, stem.unsupported
        shape = stem.out_shape
        for b in arch.blocks:
            for i in range(b.repeats):
                p = self._block(arch, b, shape, b.stride if i == 0 else 1)
                shape = p.out_shape
                t = p.terms
                d, w, e, o = d + t[0], w + t[1], e + t[2], o + t[3]
                wb += p.weight_bytes
                bad += p.unsupported
                if p.peak_bytes > peak:
                    peak = p.peak_bytes
        head = self._head(arch, shape)
        t = head.terms
        return Features((d + t[0], w + t[1], e + t[2], o + t[3]), wb + head.weight_bytes,
                        max(peak, head.peak_bytes), bad + head.unsupported)

    def graph_features(self, graph: OpGraph) -> Features:
        p = self._part(list(graph.ops), graph.output_shape)
        return Features(p.terms, p.weight_bytes, p.peak_bytes, p.unsupported)

    def features(self, model: ArchSpec | OpGraph) -> Features:
        return self.arch_features(model) if isinstance(model, ArchSpec) else self.graph_features(model)

    # ---- latency -----------------------------------------------------------------------------
    def cache_bytes(self, f: Features) -> float:
        """Parameter cache left by the peak activations, bytes."""
        m = self.machine
        return m.param_sram_bytes + max(0, m.activation_memory_bytes - f.peak_bytes)

    def streamed_bytes(self, model: ArchSpec | OpGraph) -> int:
        """Weight bytes beyond the parameter cache (streamed on every inference)."""
        f = self.features(model)
        return int(max(0.0, f.weight_bytes - self.cache_bytes(f)))

    def terms(self, model: ArchSpec | OpGraph) -> tuple[np.ndarray, float, Features]:
        """(x, fixed_s, features): latency_s = fixed_s + x @ coef, x in the order of `COEF_NAMES`."""
        m = self.machine
        f = self.features(model)
        if isinstance(model, ArchSpec):
            in_elems, out_elems = model.resolution * model.resolution * 3, model.num_classes
        else:
            in_elems, out_elems = int(np.prod(model.input_shape)), int(np.prod(model.output_shape))
        fixed = m.invoke_overhead_s + in_elems / m.input_bytes_per_s + out_elems / m.output_bytes_per_s
        stream = max(0.0, f.weight_bytes - self.cache_bytes(f)) / m.offchip_bytes_per_s
        return np.array([*f.terms, stream, 1.0]), fixed, f

    def latency_ms(self, model: ArchSpec | OpGraph) -> float:
        """Latency of an architecture or op graph, ms. A graph with an op the accelerator cannot
        run gets ``inf`` here: the APM scores deployable candidates (use `sim` for partitions)."""
        x, fixed, f = self.terms(model)
        if f.unsupported:
            return float("inf")
        return (fixed + float(x @ self._c)) * 1e3

    def bound(self, model: ArchSpec | OpGraph) -> str:
        """What dominates: compute (dense + depthwise + elementwise), overhead (per-op) or streaming."""
        x, _, f = self.terms(model)
        if f.unsupported:
            return "cpu-fallback"
        c = x * self._c
        parts = {"compute": c[0] + c[1] + c[2], "overhead": c[3], "streaming": c[4]}
        return max(parts, key=parts.get)

    def fit(self, models: list, target_ms: list[float]) -> "APM":
        """Non-negative least-squares fit of ``coef`` to target latencies (relative error), in place."""
        from scipy.optimize import nnls

        rows, fixed = [], []
        for mdl in models:
            x, fx, _ = self.terms(mdl)
            rows.append(x)
            fixed.append(fx)
        X = np.array(rows)
        t = np.asarray(target_ms, dtype=float) * 1e-3
        y = t - np.array(fixed)
        w = 1.0 / t  # relative error
        scale = np.maximum(np.abs(X).max(axis=0), 1e-12)  # conditioning: columns to unit scale
        coef, _ = nnls((X * w[:, None]) / scale, y * w)
        self.coef = tuple(float(c) for c in coef / scale)
        self._c = np.array(self.coef)
        self.calibration = f"fitted to {len(models)} targets"
        return self
