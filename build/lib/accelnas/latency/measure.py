"""Measured latency of TFLite models: the host CPU, or an Edge TPU through its delegate.

`measure_tflite(model)` times ``Interpreter.invoke()`` on random inputs of the model's own dtypes
(int8 for our exports) and reports the median and the 10th/90th percentiles. Host-CPU latency is
its own target, not a proxy for the Edge TPU (TOOLCHAIN.md: without VNNI, int8 is not faster than
float here, and MobileNetV3's HARD_SWISH is not delegated to XNNPACK). Time with ``threads=1``:
1-thread medians repeat within ~4 % on a shared machine; 2-thread medians swing 2-5x.

The Edge TPU path needs the Edge TPU runtime (``libedgetpu.so.1``), a connected device and a model
compiled by ``edgetpu_compiler`` (which adds an ``edgetpu-custom-op``). `edgetpu_available()`
says whether the runtime and a device are there, and why not; ``device="edgetpu"`` raises
`EdgeTPUUnavailable` with that reason, ``device="auto"`` falls back to the host CPU and records it.

Interpreter: ``tflite_runtime`` (the Coral setup) if installed, else ``ai_edge_litert``, else
``tf.lite.Interpreter`` (deprecated in TF 2.20+ but present in 2.21; its warning is silenced).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import time
from pathlib import Path

import numpy as np

from accelnas.latency.tflite import quiet, read_tflite

__all__ = ["measure_tflite", "edgetpu_available", "EdgeTPUUnavailable", "EDGETPU_LIB"]

EDGETPU_LIB = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib",
               "Windows": "edgetpu.dll"}.get(platform.system(), "libedgetpu.so.1")


class EdgeTPUUnavailable(RuntimeError):
    """The Edge TPU path was requested but cannot run here (the message says why)."""


def _interpreter_api():
    """(name, Interpreter class, load_delegate function) of the first TFLite runtime found."""
    try:
        from tflite_runtime.interpreter import Interpreter, load_delegate

        return "tflite_runtime", Interpreter, load_delegate
    except ImportError:
        pass
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        return "ai_edge_litert", Interpreter, load_delegate
    except ImportError:
        pass
    with quiet():
        import tensorflow as tf
    return "tf.lite", tf.lite.Interpreter, tf.lite.experimental.load_delegate


def _load_edgetpu_delegate():
    """The Edge TPU delegate, or raise EdgeTPUUnavailable saying why not."""
    try:  # cheap check first: no TensorFlow import when the runtime library is absent
        ctypes.CDLL(EDGETPU_LIB)
    except OSError as exc:
        hint = ctypes.util.find_library("edgetpu")
        raise EdgeTPUUnavailable(
            f"the Edge TPU runtime library {EDGETPU_LIB} cannot be loaded ({exc}); install the "
            "Edge TPU runtime (Debian package libedgetpu1-std from packages.cloud.google.com/apt, "
            "see coral.ai/docs/accelerator/get-started)"
            + (f"; found {hint}, which is not the expected version" if hint else "")) from None
    name, _, load_delegate = _interpreter_api()
    try:
        with quiet():
            return load_delegate(EDGETPU_LIB)
    except (ValueError, RuntimeError, OSError) as exc:
        raise EdgeTPUUnavailable(
            f"{EDGETPU_LIB} loads but the Edge TPU delegate could not be created through {name} "
            f"({exc}); is a Coral device connected (lsusb: 'Global Unichip' or '18d1:9302') and "
            "accessible to this user?") from None


def edgetpu_available() -> tuple[bool, str]:
    """Whether an Edge TPU can run models here: ``(True, "...")`` or ``(False, reason)``."""
    try:
        _load_edgetpu_delegate()
    except EdgeTPUUnavailable as exc:
        return False, str(exc)
    return True, f"Edge TPU delegate loaded from {EDGETPU_LIB}"


def _random_inputs(details: list[dict], rng: np.random.Generator) -> list[np.ndarray]:
    arrays = []
    for d in details:
        shape = [max(int(s), 1) for s in d["shape"]]
        dtype = np.dtype(d["dtype"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype))
        elif dtype == np.bool_:
            arrays.append(rng.random(shape) < 0.5)
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def measure_tflite(tflite: bytes | str | os.PathLike, threads: int = 1, warmup: int = 5,
                   runs: int = 30, *, device: str = "host-cpu", seed: int = 0) -> dict:
    """Time ``Interpreter.invoke()`` of a TFLite model.

    Args:
        tflite: flatbuffer bytes or a ``.tflite`` path.
        threads: interpreter threads (1 for repeatable figures).
        warmup: untimed invocations first.
        runs: timed invocations.
        device: ``"host-cpu"``; ``"edgetpu"`` (raises `EdgeTPUUnavailable` with the reason when
            the Edge TPU cannot be used); ``"auto"`` (the Edge TPU when available, else the host
            CPU, with the reason in ``edgetpu_unavailable``).
        seed: of the random inputs.

    Returns:
        ``{"latency_ms": median, "p10_ms", "p90_ms", "min_ms", "mean_ms", "runs", "threads",
        "device": "host-cpu" | "edgetpu", "interpreter"}`` (+ ``edgetpu_unavailable`` for
        ``device="auto"`` on a machine without one).
    """
    if device not in ("host-cpu", "edgetpu", "auto"):
        raise ValueError(f"device must be 'host-cpu', 'edgetpu' or 'auto', not {device!r}")
    if runs < 1 or warmup < 0 or threads < 1:
        raise ValueError(f"need runs >= 1, warmup >= 0, threads >= 1 (got runs={runs}, "
                         f"warmup={warmup}, threads={threads})")
    data = read_tflite(tflite)
    extra: dict = {}
    delegates = []
    if device in ("edgetpu", "auto"):
        try:
            delegates = [_load_edgetpu_delegate()]
        except EdgeTPUUnavailable as exc:
            if device == "edgetpu":
                raise EdgeTPUUnavailable(f"Edge TPU latency is not available here: {exc}") from None
            extra["edgetpu_unavailable"] = str(exc)
        if delegates and b"edgetpu-custom-op" not in data:
            msg = ("the model is not compiled for the Edge TPU (no edgetpu-custom-op): run "
                   "edgetpu_compiler on it first, or every op would run on the CPU")
            if device == "edgetpu":
                raise ValueError(msg)
            delegates, extra["edgetpu_unavailable"] = [], msg
    used = "edgetpu" if delegates else "host-cpu"

    name, Interpreter, _ = _interpreter_api()
    with quiet():
        interp = Interpreter(model_content=data, num_threads=threads,
                             experimental_delegates=delegates or None)
        interp.allocate_tensors()
    rng = np.random.default_rng(seed)
    details = interp.get_input_details()
    for d, x in zip(details, _random_inputs(details, rng)):
        interp.set_tensor(d["index"], x)

    invoke = interp.invoke
    for _ in range(warmup):
        invoke()
    times = np.empty(runs)
    clock = time.perf_counter
    for i in range(runs):
        t0 = clock()
        invoke()
        times[i] = clock() - t0
    ms = times * 1e3
    return {
        "latency_ms": float(np.median(ms)),
        "p10_ms": float(np.percentile(ms, 10)),
        "p90_ms": float(np.percentile(ms, 90)),
        "min_ms": float(ms.min()),
        "mean_ms": float(ms.mean()),
        "runs": int(runs),
        "threads": int(threads),
        "device": used,
        "interpreter": name,
        **extra,
    }


def int8_accuracy(tflite: bytes | str | os.PathLike, images: np.ndarray, labels: np.ndarray, *,
                  threads: int = 1) -> float:
    """Top-1 accuracy of a full-integer TFLite classifier (`accelnas.latency.tflite.to_int8_tflite`)
    on float ``images`` (preprocessed as in training, ``(N, H, W, C)``) with integer ``labels``:
    each image quantized with the model's input scale and zero point, one invocation per image
    (the exported batch size is 1), on the host CPU."""
    data = tflite if isinstance(tflite, (bytes, bytearray)) else Path(tflite).read_bytes()
    _, Interpreter, _ = _interpreter_api()
    with quiet():
        interp = Interpreter(model_content=bytes(data), num_threads=threads)
        interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    if tuple(inp["shape"][1:]) != tuple(images.shape[1:]):
        raise ValueError(f"the model takes inputs of shape {tuple(inp['shape'][1:])}, the images are "
                         f"{tuple(images.shape[1:])}")
    scale, zero = inp["quantization"]
    info = np.iinfo(inp["dtype"]) if np.issubdtype(inp["dtype"], np.integer) else None
    correct = 0
    for x, y in zip(images, labels):
        if info is not None:
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        interp.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interp.invoke()
        correct += int(np.argmax(interp.get_tensor(out["index"])[0]) == int(y))
    return correct / max(1, len(labels))
