"""Cycle-level simulator of an Edge TPU-class accelerator (pure: numpy-free Python over the op graph).

The machine (all constants come from the accelerator YAML, see `accelnas.latency.accelerator`):

* a grid of ``tiles`` tiles, each a ``lanes_out x lanes_in`` MAC array (output channels x input
  channels per cycle) with ``activation_memory_bytes_per_tile`` of activation SRAM;
* a parameter SRAM of ``param_sram_bytes`` plus whatever activation memory the network leaves free
  (the compiler reports 5.0-8.0 MiB on Coral) caching parameters across the whole network, placed
  first-fit op by op in execution order (an op's weights are cached whole or not at all: the
  compiler streams a layer that does not fit entirely); the parameters that do not fit are streamed
  from off-chip memory (USB/PCIe host memory on Coral, DRAM on Pixel 4) at
  ``offchip_bandwidth_gbps`` on every inference through a staging buffer: the weights of the next
  streamed op load while the ops since the previous streamed op (and its own first tiles) compute,
  so streaming costs only what the compute cannot hide (`stream_extra_s`);
* fixed costs per invoke and per TFLite op (a standalone BatchNorm is a MUL and an ADD: two ops,
  two passes over its tensor), input and output transfers;
* everything from the first op the accelerator cannot run onwards executes on the host CPU.

Mapping of an op onto the tiles (the compiler's choice: the faster of two splits):

* spatial: the output's H x W split over a ``grid x grid`` arrangement of tiles, all output channels
  on every tile; channels over the ``lanes_out`` lanes, the reduction (C_in x k x k) over
  ``lanes_in``; ragged edges waste lanes (a 7 x 7 map on a 4 x 4 grid uses 49 of 64 slots);
* channel split: output channels split over the tiles, the whole map on every tile.

A depthwise conv reduces over one input channel only, so ``lanes_in - 1`` of every ``lanes_in`` MACs
idle: it runs at <= 1/lanes_in of peak, the cause of MobileNet's poor Edge TPU utilisation. Every
op also needs its weights broadcast from the parameter SRAM (``param_bytes_per_cycle``), and
elementwise / pooling / concatenation ops, which have no vector unit of their own in the public
record, stream their int8 inputs through the array's depthwise path at
``act_bytes_per_cycle_per_tile`` (= the output lanes) x ``elementwise_efficiency``: a standalone
BatchNorm or a concatenation costs as much per value as a 1x1 depthwise conv (DenseNet).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

from accelnas.space.graph import Op, OpGraph, tflite_ops

@dataclass(frozen=True)
class Machine:
    """The simulator's view of an accelerator (units in the names)."""

    name: str
    clock_hz: float
    tiles: int
    lanes_out: int
    lanes_in: int
    activation_memory_bytes_per_tile: int
    param_sram_bytes: int
    param_bytes_per_cycle: float
    act_bytes_per_cycle_per_tile: float
    offchip_bytes_per_s: float
    input_bytes_per_s: float
    output_bytes_per_s: float
    invoke_overhead_s: float
    per_op_overhead_cycles: float
    cpu_macs_per_s: float
    cpu_per_op_s: float
    mac_efficiency: float = 1.0
    elementwise_efficiency: float = 1.0
    supported_ops: frozenset = field(default_factory=frozenset)

    @cached_property
    def grid(self) -> int:
        return max(1, int(round(math.sqrt(self.tiles))))

    @property
    def peak_macs_per_s(self) -> float:
        return self.clock_hz * self.tiles * self.lanes_out * self.lanes_in

    @property
    def activation_memory_bytes(self) -> int:
        return self.tiles * self.activation_memory_bytes_per_tile

    @classmethod
    def from_accelerator(cls, acc) -> "Machine":
        return cls(
            name=acc.name, clock_hz=acc.clock_mhz * 1e6, tiles=acc.tiles,
            lanes_out=acc.macs_per_cycle_per_tile // acc.lanes_in, lanes_in=acc.lanes_in,
            activation_memory_bytes_per_tile=acc.activation_memory_bytes_per_tile,
            param_sram_bytes=acc.param_cache_bytes, param_bytes_per_cycle=acc.param_bytes_per_cycle,
            act_bytes_per_cycle_per_tile=acc.act_bytes_per_cycle_per_tile,
            offchip_bytes_per_s=acc.offchip_bandwidth_gbps * 1e9,
            input_bytes_per_s=acc.input_bandwidth_gbps * 1e9,
            output_bytes_per_s=acc.output_bandwidth_gbps * 1e9,
            invoke_overhead_s=acc.invoke_overhead_ms * 1e-3,
            per_op_overhead_cycles=acc.per_op_overhead_cycles,
            cpu_macs_per_s=acc.cpu_gmacs_per_s * 1e9, cpu_per_op_s=acc.cpu_per_op_us * 1e-6,
            mac_efficiency=acc.mac_efficiency, elementwise_efficiency=acc.elementwise_efficiency,
            supported_ops=frozenset(acc.supported_ops))


@dataclass(frozen=True)
class OpTime:
    """Simulated time of one op."""

    name: str
    kind: str
    time_s: float
    compute_s: float
    stream_s: float
    bound: str          # compute | memory | streaming | overhead | cpu-fallback
    streamed_bytes: int
    utilisation: float  # MACs / (peak MACs in the op's time), 0 for non-MAC ops


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def compute_cycles(op: Op, m: Machine) -> tuple[float, str]:
    """Cycles of one op on the tile array (without weight streaming) and what bounds them."""
    ho, wo, cout = op.out_shape
    hi, wi, cin = op.in_shape
    k2 = op.kernel * op.kernel
    g = m.grid
    if op.kind in ("conv", "dwconv", "fc"):
        if op.kind == "fc":
            ho = wo = 1
        elif op.macs:
            # kernel taps from the exact MAC count: a 1x7 / 7x1 conv (InceptionV3) has 7 taps, not
            # the 49 of its ``kernel`` field (the larger side)
            per_tap = ho * wo * cout * (1 if op.kind == "dwconv" else cin // op.groups)
            k2 = max(1, round(op.macs / per_tap))
        pos_spatial = _ceil(ho, g) * _ceil(wo, g)
        lo = m.lanes_out
        # per output position: output-channel groups x reduction passes x taps; a depthwise conv
        # reduces over one input channel per output, so lanes_in - 1 of its lanes idle
        red = k2 if op.kind == "dwconv" else _ceil(cin // op.groups, m.lanes_in) * k2
        spatial = pos_spatial * _ceil(cout, lo) * red
        channel = ho * wo * _ceil(_ceil(cout, m.tiles), lo) * red
        mac_cycles = min(spatial, channel) / m.mac_efficiency
        # weights are broadcast from the parameter SRAM to the tiles once per op
        load_cycles = op.weight_bytes / m.param_bytes_per_cycle
        if load_cycles > mac_cycles:
            return load_cycles, "memory"
        return mac_cycles, "compute"
    if op.kind in ("input", "reshape"):
        return 0.0, "overhead"
    # elementwise, pooling, concatenation, padding, mean: no vector unit, the int8 values go through
    # the MAC array's depthwise path (one value per output lane and cycle, at the elementwise efficiency),
    # once per TFLite op (a standalone BatchNorm is a MUL and an ADD); a concatenation reads every
    # input once (together its output's size), a pooling window every tap
    rate = m.tiles * m.act_bytes_per_cycle_per_tile * m.elementwise_efficiency
    return tflite_op_count(op) * elementwise_reads(op) / rate, "memory"


def elementwise_reads(op: Op) -> int:
    """int8 values an elementwise / pooling / concatenation op reads once: a concatenation its
    output's size, a pooling window every tap, others each input."""
    if op.kind == "concat":
        return op.out_bytes
    if op.kind in ("maxpool", "avgpool"):
        return op.out_bytes * op.kernel * op.kernel
    return op.in_bytes * max(1, len(op.inputs))


def tflite_op_count(op: Op) -> int:
    """TFLite ops an op of the graph becomes (each pays the per-op overhead; 0 for the input)."""
    if op.kind == "input":
        return 0
    return max(1, len(tflite_ops(op)))


def overhead_cycles(op: Op, m: Machine, bands: int = 1) -> float:
    """Fixed cycles of an op: the per-op overhead per TFLite op and per row band."""
    return bands * tflite_op_count(op) * m.per_op_overhead_cycles


def first_fit(weight_bytes, cache_bytes: float) -> list[int]:
    """Bytes streamed per op when weights are cached whole, first-fit in execution order."""
    free = cache_bytes
    out = []
    for w in weight_bytes:
        if w and w <= free:
            free -= w
            out.append(0)
        else:
            out.append(w)
    return out


def stream_extra_s(compute_s, overhead_s, streamed_bytes, bytes_per_s: float) -> list[float]:
    """Seconds each op waits for its streamed weights (0 for cached ops).

    The staging buffer holds one op's weights: the load of a streamed op starts when the previous
    streamed op has finished (at invoke for the first) and overlaps every op computed since then
    plus the op's own compute (it starts on the first tiles of weights); what is left is waited.
    """
    out = []
    window = 0.0
    for c, o, s in zip(compute_s, overhead_s, streamed_bytes):
        window += c
        if s:
            extra = max(0.0, s / bytes_per_s - window)
            out.append(extra)
            window = 0.0
        else:
            out.append(0.0)
            window += o
    return out


def live_bytes(graph: OpGraph) -> list[int]:
    """int8 activation bytes live while each op runs (its inputs, output and tensors kept for later)."""
    last_use: dict[str, int] = {}
    for i, o in enumerate(graph.ops):
        for name in o.inputs:
            last_use[name] = i
    size = {o.name: (0 if o.kind == "reshape" else o.out_bytes) for o in graph.ops}
    live: dict[str, int] = {}
    out = []
    for i, o in enumerate(graph.ops):
        live[o.name] = size[o.name]
        out.append(sum(live.values()))
        for name in o.inputs:
            if last_use.get(name) == i:
                live.pop(name, None)
        if o.name not in last_use:
            live.pop(o.name, None)
    return out


def supported(op: Op, m: Machine) -> tuple[bool, str]:
    missing = [t for t in tflite_ops(op) if t not in m.supported_ops]
    if missing:
        return False, f"{'/'.join(missing)} not supported by {m.name}"
    if op.kind == "fc" and op.out_shape[:2] != (1, 1):
        return False, "FULLY_CONNECTED with a non 1-D output"
    return True, ""


@dataclass
class SimResult:
    latency_ms: float
    ops: list[OpTime]
    param_bytes_on_chip: int
    param_bytes_streamed: int
    param_cache_bytes: int
    peak_activation_bytes: int
    spill_bytes: int
    partition_index: int | None   # first op on the CPU (None: all on the accelerator)
    partition_reason: str
    breakdown_ms: dict


def simulate(graph: OpGraph, m: Machine) -> SimResult:
    """Simulate one inference of ``graph`` on machine ``m``."""
    ops = graph.ops
    # 1. partition at the first unsupported op
    part, reason = None, ""
    for i, o in enumerate(ops):
        ok, why = supported(o, m)
        if not ok:
            part, reason = i, f"{o.name}: {why}"
            break
    on_tpu = ops if part is None else ops[:part]
    # 2. activation memory and the parameter cache it leaves
    live = live_bytes(OpGraph(graph.name, tuple(on_tpu))) if on_tpu else [0]
    peak = max(live)
    act_cap = m.activation_memory_bytes
    # An op whose live activations exceed the activation memory is run in row bands that fit (the
    # compiler tiles it): each extra band costs another per-op overhead; the excess is reported.
    spill = sum(max(0, b - act_cap) for b in live)
    bands = {o.name: _ceil(b, act_cap) for o, b in zip(on_tpu, live)}
    cache = m.param_sram_bytes + max(0, act_cap - peak)
    # 3. parameter placement (first-fit, whole ops) and streaming through the staging buffer
    cyc = [compute_cycles(o, m) for o in on_tpu]
    compute = [c / m.clock_hz for c, _ in cyc]
    overhead = [overhead_cycles(o, m, bands[o.name]) / m.clock_hz for o in on_tpu]
    streamed = first_fit([o.weight_bytes for o in on_tpu], cache)
    extra = stream_extra_s(compute, overhead, streamed, m.offchip_bytes_per_s)
    op_times: list[OpTime] = []
    for o, (_, bound), c, ov, s, x in zip(on_tpu, cyc, compute, overhead, streamed, extra):
        t = c + x + ov
        if x > 0:
            bound = "streaming"
        elif ov > c:
            bound = "overhead"
        util = o.macs / (m.peak_macs_per_s * t) if (o.macs and t) else 0.0
        op_times.append(OpTime(o.name, o.kind, t, c, s / m.offchip_bytes_per_s, bound, s, util))
    streamed_total = sum(streamed)
    on_chip = sum(o.weight_bytes for o in on_tpu) - streamed_total
    t_compute, t_overhead, t_stream_extra = sum(compute), sum(overhead), sum(extra)
    # 4. host CPU part: the partition tensor goes back over the link, the rest runs on the CPU
    cpu_s = 0.0
    if part is not None:
        back = ops[part].in_bytes / m.output_bytes_per_s
        for o in ops[part:]:
            t = o.macs / m.cpu_macs_per_s + (m.cpu_per_op_s if o.kind != "input" else 0.0)
            op_times.append(OpTime(o.name, o.kind, t, t, 0.0, "cpu-fallback", 0, 0.0))
            cpu_s += t
        cpu_s += back
    io_s = graph.input_shape[0] * graph.input_shape[1] * graph.input_shape[2] / m.input_bytes_per_s
    io_s += math.prod(graph.output_shape) / m.output_bytes_per_s if part is None else 0.0
    total = m.invoke_overhead_s + io_s + sum(t.time_s for t in op_times if t.bound != "cpu-fallback")
    total += cpu_s  # (banded execution of overflowing activations is in the per-op overhead)
    return SimResult(
        latency_ms=total * 1e3, ops=op_times, param_bytes_on_chip=on_chip,
        param_bytes_streamed=streamed_total, param_cache_bytes=cache, peak_activation_bytes=peak,
        spill_bytes=spill, partition_index=part, partition_reason=reason,
        breakdown_ms={"invoke": m.invoke_overhead_s * 1e3, "io": io_s * 1e3,
                      "compute": t_compute * 1e3, "per_op": t_overhead * 1e3,
                      "streaming": t_stream_extra * 1e3, "cpu": cpu_s * 1e3})


_MACHINES: dict = {}


def machine(acc) -> Machine:
    """The (process-wide, cached) `Machine` of an `accelnas.latency.accelerator.Accelerator`."""
    if acc not in _MACHINES:
        _MACHINES[acc] = Machine.from_accelerator(acc)
    return _MACHINES[acc]
