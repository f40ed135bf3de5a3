"""Analytical performance model (APM): closed-form latency, cached per block, for the search.

Per op the APM uses the simulator's closed-form tile mapping (`sim.compute_cycles`) and per-op
overhead; what it drops is the simulator's schedule: parameters are not placed op by op (first-fit,
each streamed op as max(compute, stream)) but as one network-level term,
``max(0, weight_bytes - cache(peak activations)) / bandwidth``. An architecture's latency is

    invoke + io + c_compute * sum(compute) + c_overhead * sum(per-op overhead)
           + c_stream * streamed_bytes / bandwidth + c_const

with the block sums cached by (block, input shape): candidates of a search share most blocks, so
scoring one is a few dictionary lookups. The coefficients ``c`` are fitted by least squares to the
simulator (`APM.fit`); uncalibrated they are (1, 1, 1, 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arch import ArchSpec, BlockSpec
from ..graph import Op, OpGraph, _block, _Net, conv_op, fc_op, from_arch
from .sim import Machine, compute_cycles, live_bytes, supported

# feature vector of a group of ops: compute_s, overhead_s, weight_bytes, peak_live_bytes, unsupported
_F = 5


@dataclass
class APM:
    """The APM of one machine. ``coef`` = (c_compute, c_overhead, c_stream, c_const_s)."""

    machine: Machine
    coef: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 0.0)

    def __post_init__(self) -> None:
        self._cache: dict = {}

    # ---- per op groups -----------------------------------------------------------------------
    def _features(self, ops: list[Op]) -> np.ndarray:
        m = self.machine
        f = np.zeros(_F)
        for o in ops:
            if o.kind == "input":
                continue
            f[0] += compute_cycles(o, m)[0] / m.clock_hz
            f[1] += m.per_op_overhead_cycles / m.clock_hz
            f[2] += o.weight_bytes
            f[4] += 0 if supported(o, m)[0] else 1
        live = live_bytes(OpGraph("g", tuple(ops)))
        f[3] = max(live) if live else 0
        return f

    def _block(self, arch: ArchSpec, b: BlockSpec, shape, stride: int) -> tuple[np.ndarray, tuple]:
        act = b.activation or arch.activation
        key = (b.type, b.kernel, stride, b.expand_ratio, b.out_channels, b.se_ratio, act, b.skip,
               arch.se_style, shape)
        hit = self._cache.get(key)
        if hit is None:
            net = _Net()
            x = net.add(Op("x", "input", (), shape, shape))
            _block(net, arch, b, "b", x, stride)
            hit = (self._features(net.ops), net.ops[-1].out_shape)
            self._cache[key] = hit
        return hit

    def _ends(self, arch: ArchSpec, last_shape) -> np.ndarray:
        key = ("ends", arch.resolution, arch.stem, arch.stem_pool, arch.activation, arch.head_channels,
               arch.pre_logits, arch.num_classes, last_shape)
        hit = self._cache.get(key)
        if hit is None:
            r = arch.resolution
            stem = conv_op("stem", (), (r, r, 3), arch.stem.out_channels, arch.stem.kernel,
                           arch.stem.stride, activation=arch.stem.activation or arch.activation)
            ops = [stem]
            c = last_shape[2]
            if arch.head_channels:
                ops.append(conv_op("head", (), last_shape, arch.head_channels, 1, activation=arch.activation))
                c = arch.head_channels
            ops.append(Op("pool", "gap", (), (*last_shape[:2], c), (1, 1, c)))
            if arch.pre_logits:
                ops.append(fc_op("pre", (), c, arch.pre_logits, activation=arch.activation))
                c = arch.pre_logits
            ops.append(fc_op("logits", (), c, arch.num_classes, activation="softmax"))
            hit = self._features(ops)
            hit[3] = 0  # stem/head activations are counted by the blocks they feed
            self._cache[key] = hit
        return hit

    def arch_features(self, arch: ArchSpec) -> np.ndarray:
        """Summed features of an architecture (fast path: cached per block)."""
        if arch.stem_pool:  # rare (ResNet): take the generic path
            return self.graph_features(from_arch(arch))
        r = arch.resolution
        h = -(-r // arch.stem.stride)
        shape = (h, h, arch.stem.out_channels)
        total = np.zeros(_F)
        peak = float(r * r * 3 + shape[0] * shape[1] * shape[2])  # input image + stem output, live together
        for b in arch.blocks:
            for i in range(b.repeats):
                f, shape = self._block(arch, b, shape, b.stride if i == 0 else 1)
                total += f
                peak = max(peak, f[3])
        total += self._ends(arch, shape)
        total[3] = peak
        return total

    def graph_features(self, graph: OpGraph) -> np.ndarray:
        return self._features(list(graph.ops))

    # ---- latency -----------------------------------------------------------------------------
    def _terms(self, f: np.ndarray, in_shape, out_elems: int) -> np.ndarray:
        m = self.machine
        cache = m.param_sram_bytes + max(0.0, m.activation_memory_bytes - f[3])
        streamed = max(0.0, f[2] - cache)
        fixed = m.invoke_overhead_s + np.prod(in_shape) / m.input_bytes_per_s + out_elems / m.output_bytes_per_s
        return np.array([f[0], f[1], streamed / m.offchip_bytes_per_s, 1.0]), fixed, streamed

    def latency_ms(self, model: ArchSpec | OpGraph) -> float:
        """Latency of an architecture or op graph, ms. A graph with an op the accelerator cannot
        run gets ``inf`` here: the APM scores deployable candidates (use `sim` for partitions)."""
        if isinstance(model, ArchSpec):
            f = self.arch_features(model)
            in_shape, out = (model.resolution, model.resolution, 3), model.num_classes
        else:
            f = self.graph_features(model)
            in_shape, out = model.input_shape, int(np.prod(model.output_shape))
        if f[4]:
            return float("inf")
        x, fixed, _ = self._terms(f, in_shape, out)
        return float((fixed + x @ np.asarray(self.coef)) * 1e3)

    def streamed_bytes(self, model: ArchSpec | OpGraph) -> float:
        f = self.arch_features(model) if isinstance(model, ArchSpec) else self.graph_features(model)
        return self._terms(f, (1, 1, 1), 0)[2]

    def fit(self, models: list, target_ms: list[float]) -> "APM":
        """Least-squares fit of ``coef`` to target latencies (relative error), in place."""
        rows, fixed = [], []
        for mdl in models:
            if isinstance(mdl, ArchSpec):
                f, ins, out = self.arch_features(mdl), (mdl.resolution,) * 2 + (3,), mdl.num_classes
            else:
                f, ins, out = self.graph_features(mdl), mdl.input_shape, int(np.prod(mdl.output_shape))
            x, fx, _ = self._terms(f, ins, out)
            rows.append(x)
            fixed.append(fx)
        X = np.array(rows)
        y = np.asarray(target_ms) * 1e-3 - np.array(fixed)
        w = 1.0 / (np.asarray(target_ms) * 1e-3)  # relative error
        coef, *_ = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)
        self.coef = tuple(float(c) for c in coef)
        return self
