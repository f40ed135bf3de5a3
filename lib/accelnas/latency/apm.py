"""Analytical performance model (APM): closed-form latency, cached per block, for the search.

The APM is the simulator's model in closed form, organised for speed. Per op it uses the same
tile mapping (`sim.compute_cycles`) and per-op overhead (`sim.overhead_cycles`, row bands included);
per network the same parameter placement (`sim.first_fit`: whole ops, first-fit in execution
order into the cache the peak activations leave) and the same staging-buffer rule for the streamed
weights (`sim.stream_extra_s`), in one pass over the cached blocks (`sim.streaming_wait`). What it adds is caching: the features of a block repeat are
computed once per (block, input shape) and summed, so scoring a candidate of a search is a few
dictionary lookups; only a candidate whose weights exceed the cache walks its ops' (weight,
compute) lists to place them. An architecture's latency is

    invoke + io + c_compute * sum(compute) + c_overhead * sum(per-op overhead)
           + c_stream * streaming wait + c_const

where the streaming wait is what the weight loads add beyond the compute that hides them. With
(1, 1, 1, 0) it equals the simulator on deployable graphs (up to the row bands of the fast path,
counted per block); the coefficients are fitted to the simulator by least squares on relative error
(`APM.fit`) and stored per accelerator in ``lib/accelnas/resources/apm_coef.json``
(`accelnas.latency.calibrate.fit_apm_coefficients`), which `accelnas.latency.apm_for` loads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelnas.space.arch import ArchSpec, BlockSpec
from accelnas.space.blocks import emit_block
from accelnas.space.graph import Net, Op, OpGraph, conv_op, fc_op, from_arch
from accelnas.space.graph import tflite_ops
from accelnas.latency.sim import Machine, _ceil, compute_cycles, live_bytes, streaming_wait

#: Identity coefficients: the APM equals the simulator's closed form.
IDENTITY = (1.0, 1.0, 1.0, 0.0)


@dataclass(frozen=True)
class Part:
    """Cached features of a group of ops (a block repeat, the stem, the head), execution order."""

    compute_s: float
    overhead_s: float
    weight_bytes: int
    peak_bytes: int          # peak live activation bytes while these ops run
    unsupported: int         # ops the accelerator cannot run
    weights: tuple           # per op: int8 weight bytes
    computes: tuple          # per op: compute seconds
    overheads: tuple         # per op: overhead seconds
    out_shape: tuple


@dataclass(frozen=True)
class Features:
    """Summed features of a network (see `APM.terms`)."""

    compute_s: float
    overhead_s: float
    weight_bytes: int
    peak_bytes: int
    unsupported: int
    parts: tuple             # the Parts, execution order (for the weight placement)


class APM:
    """The APM of one machine. ``coef`` = (c_compute, c_overhead, c_stream, c_const_s)."""

    def __init__(self, machine: Machine, coef: tuple[float, float, float, float] = IDENTITY) -> None:
        self.machine = machine
        self.coef = tuple(float(c) for c in coef)
        self.calibration = "identity" if self.coef == IDENTITY else "given"
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"APM({self.machine.name!r}, coef={self.coef})"

    # ---- per op groups -----------------------------------------------------------------------
    def _part(self, ops: list[Op], out_shape) -> Part:
        m = self.machine
        live = live_bytes(OpGraph("g", tuple(ops)))
        act_cap = m.activation_memory_bytes
        per_op_s = m.per_op_overhead_cycles / m.clock_hz
        w, c, o = [], [], []
        unsupported = 0
        for op, b in zip(ops, live):
            if op.kind == "input":
                continue
            tfl = tflite_ops(op)  # as sim.supported and sim.overhead_cycles
            w.append(op.weight_bytes)
            c.append(compute_cycles(op, m)[0] / m.clock_hz)
            o.append(_ceil(b, act_cap) * max(1, len(tfl)) * per_op_s)
            if any(t not in m.supported_ops for t in tfl) or (op.kind == "fc" and op.out_shape[:2] != (1, 1)):
                unsupported += 1
        return Part(sum(c), sum(o), sum(w), max(live) if live else 0, unsupported, tuple(w), tuple(c),
                    tuple(o), tuple(out_shape))

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
        parts = [stem]
        shape = stem.out_shape
        cs, os_, wb, peak, bad = stem.compute_s, stem.overhead_s, stem.weight_bytes, stem.peak_bytes, stem.unsupported
        for b in arch.blocks:
            for i in range(b.repeats):
                p = self._block(arch, b, shape, b.stride if i == 0 else 1)
                parts.append(p)
                shape = p.out_shape
                cs += p.compute_s
                os_ += p.overhead_s
                wb += p.weight_bytes
                bad += p.unsupported
                if p.peak_bytes > peak:
                    peak = p.peak_bytes
        head = self._head(arch, shape)
        parts.append(head)
        return Features(cs + head.compute_s, os_ + head.overhead_s, wb + head.weight_bytes,
                        max(peak, head.peak_bytes), bad + head.unsupported, tuple(parts))

    def graph_features(self, graph: OpGraph) -> Features:
        p = self._part(list(graph.ops), graph.output_shape)
        return Features(p.compute_s, p.overhead_s, p.weight_bytes, p.peak_bytes, p.unsupported, (p,))

    def features(self, model: ArchSpec | OpGraph) -> Features:
        return self.arch_features(model) if isinstance(model, ArchSpec) else self.graph_features(model)

    # ---- latency -----------------------------------------------------------------------------
    def cache_bytes(self, f: Features) -> float:
        """Parameter cache left by the peak activations (as in the simulator), bytes."""
        m = self.machine
        return m.param_sram_bytes + max(0, m.activation_memory_bytes - f.peak_bytes)

    def streaming(self, f: Features) -> tuple[float, int]:
        """(streaming wait in s, streamed bytes): first-fit placement and the staging-buffer rule
        (`sim.streaming_wait`, the simulator's `first_fit` + `stream_extra_s` in one pass)."""
        cache = self.cache_bytes(f)
        if f.weight_bytes <= cache:
            return 0.0, 0
        return streaming_wait(f.parts, cache, self.machine.offchip_bytes_per_s)

    def terms(self, model: ArchSpec | OpGraph) -> tuple[np.ndarray, float, Features]:
        """(x, fixed_s, features): latency_s = fixed_s + x @ coef, x = (compute, overhead, wait, 1)."""
        m = self.machine
        f = self.features(model)
        if isinstance(model, ArchSpec):
            in_elems, out_elems = model.resolution * model.resolution * 3, model.num_classes
        else:
            in_elems, out_elems = int(np.prod(model.input_shape)), int(np.prod(model.output_shape))
        fixed = m.invoke_overhead_s + in_elems / m.input_bytes_per_s + out_elems / m.output_bytes_per_s
        wait = self.streaming(f)[0] if not f.unsupported else 0.0
        return np.array([f.compute_s, f.overhead_s, wait, 1.0]), fixed, f

    def latency_ms(self, model: ArchSpec | OpGraph) -> float:
        """Latency of an architecture or op graph, ms. A graph with an op the accelerator cannot
        run gets ``inf`` here: the APM scores deployable candidates (use `sim` for partitions)."""
        m = self.machine
        if isinstance(model, ArchSpec):
            f = self.arch_features(model)
            in_elems, out_elems = model.resolution * model.resolution * 3, model.num_classes
        else:
            f = self.graph_features(model)
            in_elems, out_elems = int(np.prod(model.input_shape)), int(np.prod(model.output_shape))
        if f.unsupported:
            return float("inf")
        c0, c1, c2, c3 = self.coef
        wait = self.streaming(f)[0]
        fixed = m.invoke_overhead_s + in_elems / m.input_bytes_per_s + out_elems / m.output_bytes_per_s
        return (fixed + c0 * f.compute_s + c1 * f.overhead_s + c2 * wait + c3) * 1e3

    def streamed_bytes(self, model: ArchSpec | OpGraph) -> int:
        return self.streaming(self.features(model))[1]

    def bound(self, model: ArchSpec | OpGraph) -> str:
        """What dominates: streaming (weights beyond the cache), overhead (per-op) or compute."""
        x, _, f = self.terms(model)
        if f.unsupported:
            return "cpu-fallback"
        c0, c1, c2, _ = self.coef
        parts = {"compute": c0 * x[0], "overhead": c1 * x[1], "streaming": c2 * x[2]}
        return max(parts, key=parts.get)

    def fit(self, models: list, target_ms: list[float]) -> "APM":
        """Least-squares fit of ``coef`` to target latencies (relative error), in place."""
        rows, fixed = [], []
        for mdl in models:
            x, fx, _ = self.terms(mdl)
            rows.append(x)
            fixed.append(fx)
        X = np.array(rows)
        y = np.asarray(target_ms, dtype=float) * 1e-3 - np.array(fixed)
        w = 1.0 / (np.asarray(target_ms, dtype=float) * 1e-3)  # relative error
        coef, *_ = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)
        self.coef = tuple(float(c) for c in coef)
        self.calibration = f"fitted to {len(models)} targets"
        return self
