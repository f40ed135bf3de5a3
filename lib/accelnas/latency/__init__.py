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
from accelnas.space.graph import OpGraph, from_arch
from accelnas.latency.accelerator import Accelerator, load_accelerator
from accelnas.latency.sim import Machine, simulate

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


def as_accelerator(accelerator: Accelerator | str | Path) -> Accelerator:
    return accelerator if isinstance(accelerator, Accelerator) else load_accelerator(accelerator)


_MACHINES: dict = {}
_APMS: dict = {}


def machine(acc: Accelerator) -> Machine:
    key = acc
    if key not in _MACHINES:
        _MACHINES[key] = Machine.from_accelerator(acc)
    return _MACHINES[key]


def apm_for(acc: Accelerator):
    """The (process-wide, cached) calibrated APM of an accelerator.

    Its coefficients come from ``lib/accelnas/resources/apm_coef.json`` (fitted to the simulator by
    ``python -m accelnas.latency.calibrate --apm``) when they were fitted with the accelerator's
    current constants; otherwise they are fitted now, deterministically, on a fixed seeded set of
    architectures (`accelnas.latency.calibrate.fit_apm_coefficients`, about a second) and cached.
    ``apm_for(acc).calibration`` says which.
    """
    from accelnas.latency.apm import APM
    from accelnas.latency.calibrate import apm_coefficients

    if acc not in _APMS:
        coef, origin = apm_coefficients(acc)
        apm = APM(machine(acc), coef)
        apm.calibration = origin
        _APMS[acc] = apm
    return _APMS[acc]


def resolve(model, resolution: int | None = None):
    """(label, ArchSpec | OpGraph | keras.Model | Path) for any accepted model reference."""
    if isinstance(model, (ArchSpec, OpGraph)):
        if isinstance(model, ArchSpec) and resolution:
            model = model.replace(resolution=int(resolution))
        return model.name, model
    if isinstance(model, (str, Path)):
        text = str(model)
        if text.startswith("keras:"):
            import keras

            app = text.split(":", 1)[1]
            ctor = getattr(keras.applications, app, None)
            if ctor is None or not callable(ctor):
                raise ValueError(f"unknown keras application {app!r}; e.g. keras:ResNet50, keras:MobileNetV2, "
                                 "keras:DenseNet121 (any class in keras.applications)")
            kw = {"input_shape": (resolution, resolution, 3)} if resolution else {}
            return text, ctor(weights=None, classes=1000, **kw)
        path = Path(text)
        if path.suffix in (".keras", ".tflite"):
            if not path.exists():
                raise FileNotFoundError(f"model file {path} does not exist")
            if path.suffix == ".keras":
                from accelnas.latency.tflite import load_model

                return path.name, load_model(path)
            return path.name, path
        from accelnas.space import zoo

        if text not in zoo.names():
            raise ValueError(f"unknown model {text!r}: give a zoo name ({', '.join(zoo.names())}), "
                             "keras:<ApplicationName> (e.g. keras:ResNet50) or a .keras/.tflite path")
        return text, zoo.get(text, resolution=resolution)
    if hasattr(model, "count_params") and hasattr(model, "layers"):
        return model.name, model
    raise TypeError(f"cannot estimate the latency of a {type(model).__name__}; pass an ArchSpec, an "
                    "OpGraph, a Keras model, a zoo name, keras:<Application> or a .keras/.tflite path")


def to_graph(obj) -> OpGraph:
    if isinstance(obj, OpGraph):
        return obj
    if isinstance(obj, ArchSpec):
        return from_arch(obj)
    if isinstance(obj, Path):
        raise ValueError(f"{obj.name}: a .tflite file can only be measured (--method measure)")
    from accelnas.space.graph_keras import from_keras

    return from_keras(obj)


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
        breakdown = {} if f.unsupported else {
            "fixed": fixed * 1e3, "compute": c[0] * x[0] * 1e3, "per_op": c[1] * x[1] * 1e3,
            "streaming": c[2] * x[2] * 1e3, "const": c[3] * 1e3}
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
