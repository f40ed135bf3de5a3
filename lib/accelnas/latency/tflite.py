"""Export Keras models to full-integer int8 TFLite, and load saved ``.keras`` models.

``to_int8_tflite(model, representative)`` runs post-training full-integer quantization: int8
input and output tensors, ``TFLITE_BUILTINS_INT8`` kernels, calibrated on the representative
samples, fixed batch size 1 (the Edge TPU compiler wants static shapes). The conversion goes
Keras ``ExportArchive`` -> SavedModel -> ``TFLiteConverter.from_saved_model`` (the path behind
``model.export(format="litert")``, which is quiet, unlike ``from_keras_model``); the converter's
C++ log lines are captured and only shown when the conversion fails.

Ops without an int8 kernel (measured with TF 2.21): the converter does NOT fail. It keeps such an
op in float, wrapped in DEQUANTIZE -> op -> QUANTIZE (e.g. ``Activation("elu")``). The model
still has int8 inputs/outputs and runs, but it is no longer fully int8, so an Edge TPU would stop
at the DEQUANTIZE. `to_int8_tflite` returns that model and warns with the op names
(`FloatOpsWarning`; `float_ops(tflite)` lists them), and ``accelnas.latency.compat.edgetpu_compat`` marks
the DEQUANTIZE as the partition point. We chose warning over failing because the model remains
useful (host-CPU latency, accuracy checks, and the compatibility report tells the user exactly
which layer breaks the int8 graph); pass ``strict=True`` to get an `Int8ConversionError` instead.
If the int8-only conversion raises (an op with no TFLite int8 lowering at all), the conversion is
retried with float builtins allowed (``TFLITE_BUILTINS_INT8 + TFLITE_BUILTINS``, same warning);
with ``strict=True``, or when the retry fails too, `Int8ConversionError` names the ops that the
converter reported.

This module imports TensorFlow lazily (inside the functions).
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from accelnas.latency.flatbuffer import float_compute_ops, read_tflite  # noqa: F401  (re-exported)

__all__ = ["to_int8_tflite", "load_model", "float_ops", "read_tflite", "Int8ConversionError",
           "FloatOpsWarning"]


class Int8ConversionError(RuntimeError):
    """Full-integer conversion failed or (with ``strict=True``) left ops in float.

    Attributes:
        ops: names of the offending ops (TFLite op names such as ``ELU``, or TF op names
            reported by the converter), possibly empty when the converter named none.
        log: the converter's captured log.
    """

    def __init__(self, message: str, ops: Iterable[str] = (), log: str = "") -> None:
        super().__init__(message)
        self.ops = list(ops)
        self.log = log


class FloatOpsWarning(UserWarning):
    """An int8 export contains ops that compute in float (no int8 kernel)."""


@contextlib.contextmanager
def quiet(capture: io.StringIO | None = None):
    """Silence TensorFlow/TFLite chatter: Python warnings, sys.stdout/err and the C++ fds 1 and 2.

    What was written is appended to ``capture`` (when given) so that it can be shown on failure.
    Not thread-safe (file descriptors are process-wide).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    py_out = io.StringIO()
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for fd in (1, 2):
                try:
                    dup = os.dup(fd)
                except OSError:  # no such fd (embedded interpreters): nothing to silence
                    continue
                saved.append((fd, dup))
                os.dup2(sink.fileno(), fd)
            with contextlib.redirect_stdout(py_out), contextlib.redirect_stderr(py_out):
                yield
        finally:
            for fd, dup in saved:
                os.dup2(dup, fd)
                os.close(dup)
            if capture is not None:
                sink.seek(0)
                capture.write(sink.read().decode(errors="replace") + py_out.getvalue())


def _samples(representative, n_inputs: int) -> Callable[[], Iterable[list[np.ndarray]]]:
    """A representative-dataset generator yielding one batch-1 sample (a list, one per input)."""
    if callable(representative):
        source = representative
    else:
        arrays = representative if isinstance(representative, (list, tuple)) else [representative]
        arrays = [np.asarray(a) for a in arrays]
        if len(arrays) != n_inputs:
            raise ValueError(f"representative data has {len(arrays)} arrays; the model has "
                             f"{n_inputs} inputs")
        if len({len(a) for a in arrays}) != 1 or len(arrays[0]) == 0:
            raise ValueError("representative arrays must be non-empty and have the same number "
                             "of samples")

        def source():
            yield arrays if n_inputs > 1 else arrays[0]

    def gen():
        count = 0
        for batch in source():
            parts = list(batch) if isinstance(batch, (list, tuple)) else [batch]
            if len(parts) != n_inputs:
                raise ValueError(f"representative batch has {len(parts)} arrays; the model has "
                                 f"{n_inputs} inputs")
            parts = [np.asarray(p, dtype=np.float32) for p in parts]
            for i in range(len(parts[0])):
                count += 1
                yield [p[i:i + 1] for p in parts]
        if count == 0:
            raise ValueError("the representative data yielded no samples")

    return gen


def float_ops(tflite: bytes | str | os.PathLike) -> list[str]:
    """TFLite op names (execution order) that compute in float in a quantized model.

    QUANTIZE/DEQUANTIZE themselves are not listed: they are the boundaries of the float islands.
    """
    return float_compute_ops(read_tflite(tflite))


def _converter_op_names(log: str) -> list[str]:
    """Op names that TFLite converter messages blame (``'tf.Foo' op is neither ...``)."""
    found = re.findall(r"'(?:tf|tfl)\.(\w+)'", log) + re.findall(r"\btf\.([A-Z]\w+)", log)
    return list(dict.fromkeys(found))


def _first_lines(exc: BaseException, n: int = 8) -> str:
    text = str(exc).strip() or repr(exc)
    lines = text.splitlines()
    return "\n".join(lines[:n]) + ("\n..." if len(lines) > n else "")


def _convert(saved_model_dir: str, gen, allow_float: bool, log: io.StringIO) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = gen
    converter.target_spec.supported_ops = (
        [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS] if allow_float
        else [tf.lite.OpsSet.TFLITE_BUILTINS_INT8])
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with quiet(log):
        return converter.convert()


def to_int8_tflite(model, representative, path: str | os.PathLike | None = None, *,
                   strict: bool = False) -> bytes:
    """Full-integer post-training quantization of a Keras model to TFLite.

    Args:
        model: a Keras model with defined inputs (functional, or Sequential starting with an
            ``Input``); spatial input shapes must be static.
        representative: calibration inputs: a float array ``(N, H, W, C)`` of preprocessed samples
            (for a model with several inputs, a list with one such array per input), or a callable
            returning an iterable of batches (each an array, or a list of arrays, one per input).
            A few hundred real images give good scales; a handful is enough for latency and
            compatibility work.
        path: when given, the flatbuffer is also written there atomically.
        strict: raise `Int8ConversionError` instead of returning a model with float ops.

    Returns:
        The TFLite flatbuffer: int8 input(s)/output(s), batch size 1.

    Raises:
        Int8ConversionError: the conversion failed (the message names the ops the converter
            blamed), or ``strict`` and some op has no int8 kernel.
    """
    with quiet():  # TF's start-up log lines
        import tensorflow as tf
        from keras import export as keras_export

    inputs = list(model.inputs) if getattr(model, "inputs", None) else []
    if not inputs:
        raise ValueError("the model has no known inputs; build or call it once before exporting")
    signature = [tf.TensorSpec((1, *tuple(t.shape)[1:]), tf.float32) for t in inputs]
    if any(d is None for s in signature for d in s.shape):
        raise ValueError(f"input shapes must be static (besides the batch): {signature}")
    gen = _samples(representative, len(inputs))
    call = functools.partial(model.__call__, training=False)
    if len(inputs) > 1:
        def call(*xs):  # noqa: F811 - a multi-input model takes one list argument
            return model(list(xs), training=False)

    log = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="accelnas_export_") as tmp:
        archive = keras_export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", call, input_signature=signature)
        with quiet(log):
            archive.write_out(tmp, verbose=False)
        name = getattr(model, "name", "model")
        try:
            data = _convert(tmp, gen, False, log)
            retried = None
        except Exception as exc:  # noqa: BLE001 - the converter raises several types
            blamed = _converter_op_names(f"{exc}\n{log.getvalue()}")
            if strict:
                raise Int8ConversionError(
                    f"full-int8 conversion of {name!r} failed"
                    + (f"; ops the converter could not lower to int8 TFLite builtins: "
                       f"{', '.join(blamed)}" if blamed else "")
                    + f"\n{_first_lines(exc)}", blamed, log.getvalue()) from exc
            try:
                data = _convert(tmp, gen, True, log)
            except Exception as exc2:  # noqa: BLE001
                blamed += [b for b in _converter_op_names(f"{exc2}\n{log.getvalue()}")
                           if b not in blamed]
                raise Int8ConversionError(
                    f"int8 conversion of {name!r} failed, also with float builtins allowed"
                    + (f"; ops with no TFLite builtin (they would need TF Select, which neither "
                       f"the Edge TPU nor this exporter uses): {', '.join(blamed)}" if blamed else "")
                    + f"\n{_first_lines(exc2)}", blamed, log.getvalue()) from exc2
            retried = exc

    floats = float_ops(data)
    if floats:
        msg = (f"model {name!r}: {len(floats)} op(s) have no int8 kernel and stay in float "
               f"(between DEQUANTIZE/QUANTIZE): {', '.join(dict.fromkeys(floats))}; the Edge TPU "
               "stops at the first of them (see accelnas.latency.compat.edgetpu_compat)")
        if strict:
            raise Int8ConversionError(msg, floats, log.getvalue())
        if retried is not None:
            msg += f". The int8-only conversion had failed: {_first_lines(retried, 3)}"
        warnings.warn(msg, FloatOpsWarning, stacklevel=2)
    if path is not None:
        from accelnas.io import atomic_write_bytes

        atomic_write_bytes(path, data)
    return data


def load_model(path: str | os.PathLike, *, compile: bool = False):
    """Load a Keras 3 ``.keras`` file (``keras.saving.load_model`` with ``safe_mode=True``).

    Args:
        path: the ``.keras`` archive.
        compile: restore the training configuration too (off by default: loading for
            export/latency needs no optimizer, and custom losses would need their objects).
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: expected a Keras 3 '.keras' file (saved with model.save("
                         "'name.keras')); legacy .h5 and SavedModel directories are not loaded")
    if not path.is_file():
        raise FileNotFoundError(f"Keras model not found: {path}")
    import zipfile

    import keras

    if not zipfile.is_zipfile(path):  # Keras would call this "File not found"
        raise ValueError(f"{path}: damaged or not a Keras 3 '.keras' archive (not a zip file); save the "
                         "model again with model.save('name.keras')")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot be loaded as a Keras 3 model ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0] if str(e).strip() else 'no detail'}); save the model "
                         "again with model.save('name.keras')") from None
