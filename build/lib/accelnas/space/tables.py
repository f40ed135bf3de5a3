"""Tables of architectures for notebooks and reports (pandas; no TensorFlow)."""
from __future__ import annotations

from collections import Counter

import pandas as pd

from accelnas.space import blocks
from accelnas.space.arch import ArchSpec
from accelnas.space.graph import from_arch


def arch_row(arch: ArchSpec) -> dict:
    """One row describing an architecture: string, size, cost, block composition."""
    g = from_arch(arch)
    types = Counter()
    for b in arch.blocks:
        types[b.type] += b.repeats
    return {
        "arch": arch.encode(), "resolution": arch.resolution, "depth": arch.depth,
        "params": g.params, "deployed_params": g.deployed_params, "macs": g.macs,
        "weight_bytes": g.weight_bytes,
        "peak_activation_bytes": max(o.out_bytes for o in g.ops),
        **{f"n_{t}": types.get(t, 0) for t in blocks.names()},
    }


def archs_frame(archs) -> pd.DataFrame:
    return pd.DataFrame([arch_row(a) for a in archs])


def stages_frame(arch: ArchSpec) -> pd.DataFrame:
    """One row per stage with its block fields and its share of MACs and params."""
    g = from_arch(arch)
    rows = []
    for i, b in enumerate(arch.blocks, start=1):
        ops = [o for o in g.ops if o.name.startswith(f"stage{i}_")]
        rows.append({"stage": i, "block": b.encode(), "type": b.type, "repeats": b.repeats,
                     "kernel": b.kernel, "stride": b.stride, "expand_ratio": b.expand_ratio,
                     "out_channels": b.out_channels, "se_ratio": b.se_ratio,
                     "activation": b.activation or arch.activation,
                     "out_hw": ops[-1].out_shape[0] if ops else None,
                     "macs": sum(o.macs for o in ops), "params": sum(o.params for o in ops)})
    return pd.DataFrame(rows)


def vocabulary_frame() -> pd.DataFrame:
    return pd.DataFrame([{"type": t.name, "structure": t.doc, "searchable": t.searchable}
                         for t in blocks.REGISTRY.values()])
