"""The proxy-task rule: one way to adapt an ImageNet-style architecture to a small proxy task.

Pure module (no TensorFlow). Every network trained on the proxy task, searched candidates and zoo
baselines alike, goes through `proxy_arch`, so accuracy comparisons between them are fair.

The rule (`proxy_arch(arch, resolution=R, width_mult=W, num_classes=K, min_feature=F)`):

1. **Width.** Every channel count is multiplied by ``W`` and rounded with the one
   `accelnas.space.arch.make_divisible` (divisor 8): stem, every stage, head conv, and MobileNetV3's
   ``pre_logits`` — the same multiplier everywhere, stem and head included (`accelnas.space.arch.scale`
   with ``fix_stem_head=False, scale_head=True``), so no model keeps a full-width stem or head
   that the others lose. Repeats, kernels, expansion ratios, SE ratios and activations stay.
2. **Resolution and classes** become ``R`` and ``K``.
3. **Strides.** Convolutions use "same" padding, so each stride-2 site maps ``s`` pixels to
   ``ceil(s / 2)``. The stride sites, in network order, are the stem conv, the stem max-pool
   (ResNet) and the first repeat of each stage (a stage is one `BlockSpec` of ``arch.blocks``;
   its stride sits on its first repeat only).
   While the final feature map (before the head) is smaller than ``F`` x ``F`` pixels, the LAST
   remaining stride-2 site becomes stride 1 (a stage's first block gets stride 1; the stem pool
   is removed), walking backwards through the stages, then the stem pool, then the stem conv.
   Late stages are cheap at small maps, early full-resolution layers are the expensive ones on a
   CPU, so the stem keeps its stride 2 as long as possible. An architecture whose final map is
   already ``>= F`` keeps every stride. No block is split or duplicated.

Example: EfficientNet-EdgeTPU-S at R = 32 px, F = 4 (`MIN_FEATURE`). Its ImageNet strides are::

    stem 2 | stages 1 2 2 2 1 2   -> total stride 32: 32 px / 32 = 1 x 1 final map
    stem 2 | stages 1 2 2 1 1 1   -> total stride 8:  32 px / 8  = 4 x 4 final map

(stage6 is set to stride 1 first, giving 2 x 2, still < 4, then stage4). Feature maps: 32 -stem->
16 -stage2-> 8 -stage3-> 4, and the 11 blocks of stages 4-6 run at 4 x 4. The same rule gives
MobileNetV2, EfficientNet-B0/lite and MobileNetV3-Large/Small two stride-1 stages from the end,
and ResNet50 (stem 2, pool 2, stages 1 2 2 2) stride 1 in stages 3 and 4 (final 4 x 4; the stem
and its pool keep stride 2). At 224 px every zoo model keeps its strides (7 x 7 final map).

`stride_changes` lists what the rule changed (for notebook tables); `stride_schedule` shows the
feature-map size after each stride site.
"""
from __future__ import annotations

from dataclasses import dataclass

from accelnas.space.arch import ArchSpec, make_divisible, scale

MIN_FEATURE = 4
"""Default smallest final feature map, pixels: 4 x 4 keeps a spatial extent for the last stages'
3x3/5x5 kernels at the CPU cost of a 32 px proxy (see `proxy_arch`)."""


@dataclass(frozen=True)
class StrideSite:
    """One place in a network where the resolution may drop.

    Attributes:
        site: ``stem_conv``, ``stem_pool`` or ``stage<i>`` (1-based index into ``arch.blocks``;
            the Keras layer-name prefix of that stage).
        stride: 1 or 2 (``stem_pool``: 2 when present, 1 when absent).
        in_size / out_size: feature-map side before / after this site, pixels.
    """

    site: str
    stride: int
    in_size: int
    out_size: int


@dataclass(frozen=True)
class StrideChange:
    """A stride site whose stride `proxy_arch` changed (``before`` 2, ``after`` 1)."""

    site: str
    before: int
    after: int
    block: str  # the stage's block string before the change ('' for the stem)


def _down(size: int, stride: int) -> int:
    return -(-size // stride)  # ceil: "same" padding


def _strides(arch: ArchSpec) -> list[tuple[str, int]]:
    sites = [("stem_conv", arch.stem.stride), ("stem_pool", 2 if arch.stem_pool else 1)]
    sites += [(f"stage{i}", b.stride) for i, b in enumerate(arch.blocks, start=1)]
    return sites


def stride_schedule(arch: ArchSpec, resolution: int | None = None) -> tuple[StrideSite, ...]:
    """The stride sites of ``arch`` at ``resolution`` (default: the architecture's), in order."""
    size = int(resolution or arch.resolution)
    out = []
    for site, s in _strides(arch):
        if site == "stem_pool" and not arch.stem_pool:
            continue
        new = _down(size, s)
        out.append(StrideSite(site, s, size, new))
        size = new
    return tuple(out)


def final_feature(arch: ArchSpec, resolution: int | None = None) -> int:
    """Side of the final feature map (input of the head), pixels."""
    size = int(resolution or arch.resolution)
    for _, s in _strides(arch):
        size = _down(size, s)
    return size


def proxy_arch(arch: ArchSpec, *, resolution: int, width_mult: float, num_classes: int,
               min_feature: int = MIN_FEATURE) -> ArchSpec:
    """Adapt ``arch`` to the proxy task by the rule in the module docstring.

    Args:
        arch: the architecture as designed (e.g. for 224 px ImageNet).
        resolution: proxy input height = width, pixels.
        width_mult: multiplier of every channel count (stem, stages, head, pre-logits).
        num_classes: proxy classifier outputs.
        min_feature: smallest allowed final feature map, pixels.

    Returns:
        The proxy `ArchSpec` (same name; compare with `stride_changes`).

    Raises:
        ValueError: ``resolution < min_feature``, or non-positive arguments.
    """
    if not isinstance(min_feature, int) or min_feature < 1:
        raise ValueError(f"min_feature must be a positive integer (pixels), got {min_feature!r}")
    if not isinstance(resolution, int) or resolution < min_feature:
        raise ValueError(f"proxy resolution {resolution!r} px is smaller than min_feature "
                         f"{min_feature} px: no stride schedule can keep a {min_feature} x "
                         f"{min_feature} final map; lower min_feature or raise the resolution")
    if not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult!r}")
    a = scale(arch, width_mult, 1.0, resolution)
    if width_mult != 1.0 and a.pre_logits:
        a = a.replace(pre_logits=make_divisible(a.pre_logits * width_mult))
    a = a.replace(num_classes=int(num_classes))

    stem, pool, blocks = a.stem, a.stem_pool, list(a.blocks)
    order = [f"stage{i}" for i in range(len(blocks), 0, -1)] + ["stem_pool", "stem_conv"]
    for site in order:
        current = a.replace(stem=stem, stem_pool=pool, blocks=tuple(blocks))
        if final_feature(current) >= min_feature:
            break
        if site == "stem_conv":
            if stem.stride == 2:
                stem = stem.replace(stride=1)
        elif site == "stem_pool":
            pool = False
        else:
            i = int(site[len("stage"):]) - 1
            if blocks[i].stride == 2:
                blocks[i] = blocks[i].replace(stride=1)
    return a.replace(stem=stem, stem_pool=pool, blocks=tuple(blocks))


def stride_changes(arch: ArchSpec, proxy: ArchSpec) -> tuple[StrideChange, ...]:
    """The stride sites where ``proxy`` (from `proxy_arch`) differs from ``arch``, in network order.

    Raises:
        ValueError: the two do not have the same stage structure (not an original/proxy pair).
    """
    if len(arch.blocks) != len(proxy.blocks):
        raise ValueError(f"{arch.name} has {len(arch.blocks)} stages, {proxy.name} "
                         f"{len(proxy.blocks)}: not an architecture and its proxy")
    blocks = {f"stage{i}": b.encode() for i, b in enumerate(arch.blocks, start=1)}
    return tuple(StrideChange(site, b, p, blocks.get(site, ""))
                 for (site, b), (_, p) in zip(_strides(arch), _strides(proxy)) if b != p)


def describe(arch: ArchSpec, proxy: ArchSpec) -> dict:
    """One table row: what the proxy rule did to ``arch`` (plain data for notebooks)."""
    changes = stride_changes(arch, proxy)
    return {
        "name": arch.name,
        "resolution": proxy.resolution,
        "final_feature_px": final_feature(proxy),
        "final_feature_px_unchanged": final_feature(arch, proxy.resolution),
        "total_stride": proxy.total_stride,
        "total_stride_original": arch.total_stride,
        "stride_changes": ", ".join(f"{c.site} {c.before}->{c.after}" for c in changes) or "none",
        "stem_channels": proxy.stem.out_channels,
        "head_channels": proxy.head_channels,
    }
