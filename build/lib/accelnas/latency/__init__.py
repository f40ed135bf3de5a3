"""Latency estimators behind one interface: ``estimate(model, accelerator, method)``.

Methods: ``sim`` (cycle-level simulator, `accelnas.latency.sim`), ``apm`` (analytical performance
model, `accelnas.latency.apm`), ``measure`` (int8 TFLite timed on the host CPU, or on an Edge TPU
when libedgetpu and a device are present; `accelnas.latency.measure`).

A model is an `ArchSpec`, an `OpGraph`, a Keras model, a zoo name (``efficientnet_edgetpu_s``),
``keras:<ApplicationName>`` (keras.applications, weights=None, 1000 classes) or a ``.keras`` /
``.tflite`` path (``.tflite``: ``measure`` only).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from accelnas.space.arch import ArchSpec
from accelnas.space.graph import OpGraph
from accelnas.latency.accelerator import Accelerator, load_accelerator
from accelnas.latency.calibrate import apm_for
from accelnas.latency.models import resolve, to_graph
from accelnas.latency.sim import Machine, machine, simulate  # noqa: F401  (re-exported)

METHODS = ("sim", "apm", "measure")


@dataclass
class LatencyReport:
    """What an estimator says about one model on one accelerator."""

    model: str
    hardware: str
    method: str
    resolution: int | None
    latency_ms: float
    macs: int | None = None
    params: int | None = None
    param_bytes_on_chip: int | None = None
    param_bytes_streamed: int | None = None
    partition_index: int | None = None
    partition_reason: str = ""
    breakdown_ms: dict = field(default_factory=dict)
    ops: list = field(default_factory=list)   # per-op dicts: name, kind, time_ms, bound, ...
    note: str = ""

    def to_dict(self, with_ops: bool = False) -> dict:
        d = dataclasses.asdict(self)
        if not with_ops:
            d.pop("ops")
        return d

    def ops_frame(self):
        import pandas as pd

        return pd.DataFrame(self.ops)


__all__ = ["estimate", "LatencyReport", "METHODS", "as_accelerator", "apm_for", "machine",
           "resolve", "to_graph", "int8_tflite"]


def as_accelerator(accelerator: Accelerator | str | Path) -> Accelerator:
    return accelerator if isinstance(accelerator, Accelerator) else load_accelerator(accelerator)


def estimate(model, accelerator: Accelerator | str | Path = "coral", method: str = "sim", *,
             resolution: int | None = None, threads: int = 1, runs: int = 30) -> LatencyReport:
    """Estimate one inference's latency of ``model`` on ``accelerator`` with ``method``.

    Returns:
        a `LatencyReport` with the total, the per-op breakdown (sim: time and bound per op:
        compute / memory / streaming / overhead / cpu-fallback) and on-chip vs streamed parameters.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    label, obj = resolve(model, resolution)
    if method == "measure":
        return _measure(label, obj, threads=threads, runs=runs)
    acc = as_accelerator(accelerator)
    g = to_graph(obj)
    res = g.input_shape[0]
    common = dict(model=label, hardware=acc.name, resolution=res, macs=g.macs, params=g.params)
    if method == "apm":
        apm = apm_for(acc)
        model = obj if isinstance(obj, ArchSpec) else g
        x, fixed, f = apm.terms(model)
        streamed = int(apm.streamed_bytes(model))
        c = apm.coef
        names = ("dense", "depthwise", "elementwise", "per_op", "streaming", "const")
        breakdown = {} if f.unsupported else {"fixed": fixed * 1e3} | {
            n: ci * xi * 1e3 for n, ci, xi in zip(names, c, x)}
        return LatencyReport(method="apm", latency_ms=apm.latency_ms(model), param_bytes_on_chip=g.weight_bytes - streamed,
                             param_bytes_streamed=streamed, breakdown_ms=breakdown,
                             note=f"APM coefficients {apm.calibration}", **common)
    r = simulate(g, machine(acc))
    ops = [{"name": t.name, "kind": t.kind, "time_ms": t.time_s * 1e3, "compute_ms": t.compute_s * 1e3,
            "stream_ms": t.stream_s * 1e3, "bound": t.bound, "streamed_bytes": t.streamed_bytes,
            "utilisation": t.utilisation} for t in r.ops]
    return LatencyReport(method="sim", latency_ms=r.latency_ms, param_bytes_on_chip=r.param_bytes_on_chip,
                         param_bytes_streamed=r.param_bytes_streamed, partition_index=r.partition_index,
                         partition_reason=r.partition_reason, breakdown_ms=r.breakdown_ms, ops=ops, **common)


def int8_tflite(obj) -> tuple[bytes, OpGraph | None]:
    """int8 TFLite bytes of a resolved model (`resolve`), and its op graph (None for a .tflite file).

    Models are quantized with 8 seeded random images in [0, 1) as representative data: enough for
    timing and op mapping, not for accuracy (`accelnas.latency.tflite.to_int8_tflite` takes real data).
    """
    if isinstance(obj, Path):
        return obj.read_bytes(), None
    import numpy as np

    from accelnas.latency.tflite import to_int8_tflite

    keras_model = obj
    if isinstance(obj, (ArchSpec, OpGraph)):
        from accelnas.space.builder import build, build_graph

        keras_model = build(obj) if isinstance(obj, ArchSpec) else build_graph(obj)
    shape = tuple(int(d) for d in keras_model.input_shape[1:])
    rep = np.random.default_rng(0).random((8, *shape), dtype=np.float32)
    return to_int8_tflite(keras_model, rep), to_graph(keras_model)


def _measure(label: str, obj, *, threads: int, runs: int) -> LatencyReport:
    from accelnas.latency.measure import edgetpu_available, measure_tflite

    tfl, g = int8_tflite(obj)
    res = g.input_shape[0] if g else None
    m = measure_tflite(tfl, threads=threads, runs=runs)
    ok, why = edgetpu_available()
    note = "" if ok else f"timed on the host CPU; Edge TPU not available: {why}"
    return LatencyReport(model=label, hardware=m["device"], method="measure", resolution=res,
                         latency_ms=m["latency_ms"], macs=g.macs if g else None,
                         params=g.params if g else None,
                         breakdown_ms={k: v for k, v in m.items() if k.endswith("_ms") and k != "latency_ms"},
                         note=note)
