"""accelnas: an accelerator-aware neural architecture search workbench.

The pure API is exposed lazily (nothing is imported until used, and never TensorFlow)::

    import accelnas
    arch = accelnas.decode_arch(...)          # from accelnas.arch
    accelnas.zoo.get("mobilenet_edgetpu")    # accelnas.zoo
    accelnas.graph.from_arch(arch)           # accelnas.graph

Everything else is imported from its module (``from accelnas import runner``,
``from accelnas.builder import build``; the latter imports TensorFlow).
"""
from __future__ import annotations

import importlib
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("accelnas")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_ARCH_NAMES = ("BlockSpec", "ArchSpec", "make_divisible", "decode_block", "encode_block",
               "decode_arch", "encode_arch", "scale")
_SUBMODULES = ("arch", "zoo", "graph")

__all__ = [*_ARCH_NAMES, *_SUBMODULES, "__version__"]


def __getattr__(name: str):
    if name in _ARCH_NAMES:
        value = getattr(importlib.import_module(".arch", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
