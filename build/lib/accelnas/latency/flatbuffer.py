"""Reading TFLite flatbuffers without TensorFlow's interpreter (only the ``flatbuffers`` package).

`read_tflite` takes bytes or a path; `parse_model` gives the schema's object API; `TFLiteGraph`
wraps subgraph 0 with accessors (op names, tensor shapes, dtypes, constants); `float_compute_ops`
lists the ops a quantized model still computes in float. Used by the int8 export
(`accelnas.latency.tflite`) and the Edge TPU rule engine (`accelnas.latency.compat`).
"""
from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path


def read_tflite(model: bytes | bytearray | str | os.PathLike) -> bytes:
    """The bytes of a TFLite flatbuffer given as bytes or as a path."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"TFLite model not found: {path}")
    data = path.read_bytes()
    if data[4:8] != b"TFL3":
        raise ValueError(f"{path} is not a TFLite flatbuffer (missing the 'TFL3' identifier)")
    return data


@lru_cache(maxsize=1)
def load_schema():
    """TFLite's generated flatbuffer schema module (needs only the ``flatbuffers`` package).

    Loaded from TensorFlow's installation by file path, so ``import tensorflow`` (~6 s) is not
    paid just to read a model; falls back to the regular import.
    """
    spec = importlib.util.find_spec("tensorflow")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "lite" / "python" / "schema_py_generated.py"
        if path.is_file():
            mod_spec = importlib.util.spec_from_file_location("accelnas._tflite_schema", path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
            return module
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def parse_model(data: bytes, schema=None):
    """The flatbuffer as the schema's object API (``ModelT``)."""
    schema = schema or load_schema()
    if data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (missing the 'TFL3' identifier)")
    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


class TFLiteGraph:
    """Accessors over subgraph 0 of a parsed model."""

    def __init__(self, model_t, schema) -> None:
        self.m = model_t
        self.schema = schema
        self.sub = model_t.subgraphs[0]
        self.op_names = _enum_names(schema.BuiltinOperator)
        self.type_names = _enum_names(schema.TensorType)
        self.inputs = set(_ints(self.sub.inputs))
        self.outputs = set(_ints(self.sub.outputs))

    def op_name(self, op) -> str:
        code = self.m.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = self.op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.customCode
            return (custom.decode() if isinstance(custom, bytes) else str(custom or "CUSTOM"))
        return name

    def tensor(self, i: int):
        return self.sub.tensors[i]

    def shape(self, i: int) -> tuple[int, ...]:
        s = self.tensor(i).shape
        return tuple(int(d) for d in s) if s is not None else ()

    def dynamic(self, i: int) -> bool:
        sig = self.tensor(i).shapeSignature
        return sig is not None and any(int(d) < 0 for d in sig)

    def dtype(self, i: int) -> str:
        return self.type_names.get(self.tensor(i).type, str(self.tensor(i).type)).lower()

    def const(self, i: int) -> bool:
        t = self.tensor(i)
        buf = self.m.buffers[t.buffer] if 0 <= t.buffer < len(self.m.buffers) else None
        return buf is not None and ((buf.data is not None and len(buf.data) > 0)
                                    or bool(getattr(buf, "offset", 0)))

    def value(self, i: int):
        """A constant tensor's value (numpy), or None."""
        import numpy as np

        if not self.const(i):
            return None
        t = self.tensor(i)
        buf = self.m.buffers[t.buffer]
        if buf.data is None or len(buf.data) == 0:
            return None
        dtype = {"int32": np.int32, "int64": np.int64, "int8": np.int8, "uint8": np.uint8,
                 "float32": np.float32}.get(self.dtype(i))
        if dtype is None:
            return None
        return np.frombuffer(bytes(bytearray(buf.data)), dtype=dtype).reshape(self.shape(i))

    def name(self, i: int) -> str:
        n = self.tensor(i).name
        return n.decode(errors="replace") if isinstance(n, bytes) else str(n or "")


def _ints(v) -> list[int]:
    return [int(x) for x in v] if v is not None else []


def _nontrivial(shape: tuple[int, ...]) -> int:
    """Dims left after dropping the leading 1s (the compiler's "innermost dimensions")."""
    dims = list(shape)
    while dims and dims[0] == 1:
        dims.pop(0)
    return len(dims)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 1)
    return n


def float_compute_ops(data: bytes) -> list[str]:
    """Names of the ops (execution order) with a float input or output, QUANTIZE/DEQUANTIZE
    excepted: the ops that the converter kept in float in a quantized model."""
    schema = load_schema()
    g = TFLiteGraph(parse_model(data, schema), schema)
    found = []
    for op in g.sub.operators or []:
        name = g.op_name(op)
        if name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        tensors = [i for i in _ints(op.inputs) if i >= 0 and not g.const(i)] + _ints(op.outputs)
        if any(g.dtype(i) in ("float32", "float16") for i in tensors):
            found.append(name)
    return found
