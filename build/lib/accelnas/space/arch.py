"""Architectures as data: `BlockSpec`, `ArchSpec`, the block-string grammar and scaling.

Pure module (no TensorFlow). A block string reads like timm's, e.g. ``ibn_r4_k5_s2_e8_c96``:

=========  =============================================  =========
token      meaning                                        default
=========  =============================================  =========
TYPE       a registered block type, always first               (required)
``r<int>`` repeats                                        1
``k<int>`` kernel size (odd)                              3
``s<int>`` stride of the first repeat (1 or 2)            1
``e<num>`` expand ratio (bottleneck: output / width)      1
``c<int>`` output channels                                (required)
``se<num>`` squeeze-excite ratio (0 = none)                0
``a<act>`` activation, overriding the architecture's      (arch)
``noskip`` no residual connection even where possible     skip
=========  =============================================  =========

Block semantics and the list of block types: `accelnas.space.blocks` (the registry).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from accelnas.space import blocks
from accelnas.space.rounding import make_divisible  # noqa: F401  (re-exported)

ACTIVATIONS = ("relu", "relu6", "hswish", "swish")
SE_STYLES = ("efficientnet", "mobilenetv3")



def _fmt_num(x: float) -> str:
    """Shortest exact text for a float: 8.0 -> '8', 0.25 -> '0.25'."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


@dataclass(frozen=True)
class BlockSpec:
    """One stage of identical blocks (see the module docstring for the semantics per type)."""

    type: str
    out_channels: int
    repeats: int = 1
    kernel: int = 3
    stride: int = 1
    expand_ratio: float = 1.0
    se_ratio: float = 0.0
    activation: str | None = None
    skip: bool = True

    def __post_init__(self) -> None:
        if self.type not in blocks.REGISTRY:
            raise ValueError(f"unknown block type {self.type!r}; allowed: {', '.join(blocks.names())}")
        for name in ("out_channels", "repeats", "kernel", "stride"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{self.type} block: {name} must be a positive integer, got {v!r}")
        if self.kernel % 2 == 0:
            raise ValueError(f"{self.type} block: kernel must be odd, got {self.kernel}")
        if self.stride not in (1, 2):
            raise ValueError(f"{self.type} block: stride must be 1 or 2, got {self.stride}")
        if not self.expand_ratio > 0:
            raise ValueError(f"{self.type} block: expand_ratio must be > 0, got {self.expand_ratio}")
        if not 0 <= self.se_ratio < 1:
            raise ValueError(f"{self.type} block: se_ratio must be in [0, 1), got {self.se_ratio}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        object.__setattr__(self, "expand_ratio", float(self.expand_ratio))
        object.__setattr__(self, "se_ratio", float(self.se_ratio))

    def encode(self) -> str:
        """The canonical block string; ``decode_block(b.encode()) == b``."""
        parts = [self.type, f"r{self.repeats}", f"k{self.kernel}", f"s{self.stride}",
                 f"e{_fmt_num(self.expand_ratio)}", f"c{self.out_channels}"]
        if self.se_ratio:
            parts.append(f"se{_fmt_num(self.se_ratio)}")
        if self.activation:
            parts.append(f"a{self.activation}")
        if not self.skip:
            parts.append("noskip")
        return "_".join(parts)

    def replace(self, **changes) -> "BlockSpec":
        return dataclasses.replace(self, **changes)


_NUM = r"(\d+(?:\.\d+)?(?:e-?\d+)?)"
_TOKENS = (  # (regex, field, converter); order matters only for readability: patterns are disjoint
    (re.compile(r"r(\d+)"), "repeats", int),
    (re.compile(r"k(\d+)"), "kernel", int),
    (re.compile(r"s(\d+)"), "stride", int),
    (re.compile(r"e" + _NUM), "expand_ratio", float),
    (re.compile(r"c(\d+)"), "out_channels", int),
    (re.compile(r"se" + _NUM), "se_ratio", float),
    (re.compile(r"a([a-z0-9]+)"), "activation", str),
    (re.compile(r"(noskip)"), "skip", lambda _: False),
)


def decode_block(text: str) -> BlockSpec:
    """Parse a block string strictly: an unknown, malformed or repeated token raises ValueError."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty block string {text!r}")
    type_, *tokens = text.strip().split("_")
    if type_ not in blocks.REGISTRY:
        raise ValueError(f"unknown block type {type_!r} in {text!r}; allowed: {', '.join(blocks.names())}")
    kwargs: dict = {}
    for tok in tokens:
        for pattern, name, conv in _TOKENS:
            m = pattern.fullmatch(tok)
            if m:
                break
        else:
            raise ValueError(
                f"unknown token {tok!r} in block string {text!r}; expected r<int> k<int> s<int> "
                f"e<num> c<int> se<num> a<{'|'.join(ACTIVATIONS)}> or noskip")
        if name in kwargs:
            raise ValueError(f"token {tok!r} repeats {name} in block string {text!r}")
        kwargs[name] = conv(m.group(1))
    if "out_channels" not in kwargs:
        raise ValueError(f"block string {text!r} lacks the output channels token c<int>")
    return BlockSpec(type=type_, **kwargs)


def encode_block(block: BlockSpec) -> str:
    return block.encode()


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: stem conv, stages, head.

    Attributes:
        name: label only.
        stem: a ``conv`` BlockSpec (usually k3 s2).
        blocks: the stages in order.
        head_channels: 1x1 conv + BN + act before global pooling (0: none).
        pre_logits: MobileNetV3-style 1x1 conv with bias + act after pooling (0: none).
        resolution: input height = width, pixels.
        num_classes: classifier outputs.
        activation: default activation of every block that names none, the stem and the head.
        stem_pool: ResNet-style 3x3 stride-2 max pooling after the stem.
        se_style: ``efficientnet`` (SE width = max(1, int(C_in * se_ratio)), swish inside, sigmoid
            gate) or ``mobilenetv3`` (width = make_divisible(expanded * se_ratio), ReLU inside,
            hard-sigmoid gate).
    """

    name: str
    stem: BlockSpec
    blocks: tuple[BlockSpec, ...]
    head_channels: int = 1280
    pre_logits: int = 0
    resolution: int = 224
    num_classes: int = 1000
    activation: str = "relu"
    stem_pool: bool = False
    se_style: str = "efficientnet"

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if self.stem.type != "conv":
            raise ValueError(f"stem must be a conv block, got {self.stem.encode()!r}")
        if not self.blocks:
            raise ValueError("an architecture needs at least one block")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        if self.se_style not in SE_STYLES:
            raise ValueError(f"unknown se_style {self.se_style!r}; allowed: {', '.join(SE_STYLES)}")
        for name in ("head_channels", "pre_logits"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        if not isinstance(self.resolution, int) or self.resolution < 8:
            raise ValueError(f"resolution must be an integer >= 8 pixels, got {self.resolution!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {self.num_classes!r}")

    @property
    def total_stride(self) -> int:
        s = self.stem.stride * (2 if self.stem_pool else 1)
        for b in self.blocks:
            s *= b.stride
        return s

    @property
    def depth(self) -> int:
        """Number of blocks after expanding repeats."""
        return sum(b.repeats for b in self.blocks)

    def replace(self, **changes) -> "ArchSpec":
        return dataclasses.replace(self, **changes)

    def encode(self) -> str:
        """One-line text form; ``decode_arch(a.encode()) == a``."""
        fields = [
            ("name", self.name), ("res", self.resolution), ("classes", self.num_classes),
            ("act", self.activation), ("se", self.se_style), ("stem", self.stem.encode()),
            ("pool", int(self.stem_pool)), ("blocks", " ".join(b.encode() for b in self.blocks)),
            ("head", self.head_channels), ("prelogits", self.pre_logits),
        ]
        return ";".join(f"{k}={v}" for k, v in fields)


_ARCH_KEYS = {"name", "res", "classes", "act", "se", "stem", "pool", "blocks", "head", "prelogits"}


def decode_arch(text: str) -> ArchSpec:
    """Parse ``ArchSpec.encode()`` output strictly (unknown keys raise ValueError naming them)."""
    kv: dict[str, str] = {}
    for part in text.strip().split(";"):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"malformed field {part!r} in architecture string (expected key=value)")
        if key not in _ARCH_KEYS:
            raise ValueError(f"unknown field {key!r} in architecture string; allowed: {sorted(_ARCH_KEYS)}")
        if key in kv:
            raise ValueError(f"field {key!r} repeated in architecture string")
        kv[key] = value
    missing = {"stem", "blocks"} - kv.keys()
    if missing:
        raise ValueError(f"architecture string lacks {sorted(missing)}")

    def _int(key: str, default: int) -> int:
        try:
            return int(kv.get(key, default))
        except ValueError:
            raise ValueError(f"field {key!r} must be an integer, got {kv[key]!r}") from None

    return ArchSpec(
        name=kv.get("name", "arch"),
        stem=decode_block(kv["stem"]),
        blocks=tuple(decode_block(b) for b in kv["blocks"].split()),
        head_channels=_int("head", 1280),
        pre_logits=_int("prelogits", 0),
        resolution=_int("res", 224),
        num_classes=_int("classes", 1000),
        activation=kv.get("act", "relu"),
        stem_pool=bool(_int("pool", 0)),
        se_style=kv.get("se", "efficientnet"),
    )


def encode_arch(arch: ArchSpec) -> str:
    return arch.encode()


def arch_from_strings(name: str, stem: str, blocks: list[str] | tuple[str, ...], **kwargs) -> ArchSpec:
    """Convenience constructor from block strings (used by the zoo and the search space)."""
    return ArchSpec(name=name, stem=decode_block(stem), blocks=tuple(decode_block(b) for b in blocks),
                    **kwargs)


def scale(arch: ArchSpec, width: float = 1.0, depth: float = 1.0, resolution: int | None = None,
          *, fix_stem_head: bool = False, scale_head: bool = True, divisor: int = 8,
          name: str | None = None) -> ArchSpec:
    """Width / depth / resolution scaling (EfficientNet compound-scaling rules).

    Channels become ``make_divisible(c * width, divisor)``; repeats become ``ceil(r * depth)``.

    Args:
        width: channel multiplier.
        depth: repeat multiplier (ceil per stage).
        resolution: new input size in pixels (None keeps it).
        fix_stem_head: EfficientNet-lite rule: stem and head channels and the repeats of the first
            and last stage stay fixed.
        scale_head: when False, only the head channels stay fixed (MobilenetEdgeTPU 0.75).
    """
    if width <= 0 or depth <= 0:
        raise ValueError(f"width and depth multipliers must be > 0, got {width}, {depth}")

    def ch(c: int) -> int:
        return make_divisible(c * width, divisor) if width != 1.0 else c

    n = len(arch.blocks)
    blocks = []
    for i, b in enumerate(arch.blocks):
        fixed = fix_stem_head and i in (0, n - 1)
        reps = b.repeats if fixed else int(math.ceil(b.repeats * depth))
        blocks.append(b.replace(out_channels=ch(b.out_channels), repeats=reps))
    stem = arch.stem if fix_stem_head else arch.stem.replace(out_channels=ch(arch.stem.out_channels))
    head = arch.head_channels
    if not fix_stem_head and scale_head and head:
        head = ch(head)
    return arch.replace(name=name or arch.name, stem=stem, blocks=tuple(blocks), head_channels=head,
                        resolution=resolution or arch.resolution)
