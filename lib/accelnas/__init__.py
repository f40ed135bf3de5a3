"""accelnas: an accelerator-aware neural architecture search workbench.

The pure API is exposed lazily (nothing is imported until used, and never TensorFlow)::

    import accelnas
    arch = accelnas.decode_arch(...)          # from accelnas.space.arch
    accelnas.space.zoo.get("mobilenet_edgetpu")    # accelnas.space.zoo
    accelnas.space.graph.from_arch(arch)           # accelnas.space.graph

The library has one subpackage per stage of the workbook; imports point one way, each stage
using only the ones before it (tests/test_layout.py checks it)::

    space/     architectures, block types, zoo, op graph, Keras builder, search space   (notebook 01)
    latency/   accelerators, simulator, APM, calibration, measurement, deployability      (02)
    train/     data (in memory or streamed), tf.distribute strategy, training, its cache  (03-05)
    search/    supernet, oracles, reward, keras-tuner search, trials                      (03)
    scaling/   compound scaling toward latency targets                                    (04)
    report/    Pareto fronts, comparison with the baselines, report.html                  (05)

and the workbook shell over them: `params` (the run schema), `run` (the files of a run and who
reads and writes them), `runner` (papermill), `cli`. `io` and `schema` are leaves every stage may use.
Everything else is imported from its module (``from accelnas.space.builder import build``, which
imports TensorFlow).
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
        value = getattr(importlib.import_module(".space.arch", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".space.{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
