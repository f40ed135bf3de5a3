"""The search space: a MnasNet-style factorized hierarchical space over a stage skeleton.

Pure module (no TensorFlow; keras_tuner is imported only by `SearchSpace.to_hyperparameters` when it
has to create a ``HyperParameters``). The network is a stem conv, a skeleton of stages (stride, base
output channels, base repeats; by default the EfficientNet-EdgeTPU-S skeleton) and a head. Each
stage independently chooses

====================  ================================================  ==================
decision              values                                            params key
====================  ================================================  ==================
``s<i>_block``        block type (ibn / fused / conv)                   ``block_types``
``s<i>_kernel``       kernel size                                       ``kernels``
``s<i>_expand_ratio`` expansion ratio (ibn, fused)                      ``expand_ratios``
``s<i>_channels``     make_divisible(base channels x multiplier)        ``width_mults``
``s<i>_repeats``      max(1, base repeats + delta)                      ``repeat_deltas``
``s<i>_se_ratio``     squeeze-excite ratio (ibn, fused; 0 = none)       ``se_ratios``
``s<i>_activation``   block activation                                  ``activations``
====================  ================================================  ==================

Channel and repeat choices are the distinct resulting values (24 x 0.75 and 24 x 1.0 both round
to 24, so stage 1 chooses between 24 and 32 channels).

A flat dict ``{"s1_block": "fused", "s1_kernel": 3, ...}`` (`sample_values`) is the representation
keras-tuner sees; `from_values` turns it into an `ArchSpec`. Decisions a block type does not use
(a ``conv`` block has no expansion and no SE) are normalised away, so two value dicts that give the
same network give the same `ArchSpec` and `size` counts distinct networks.

Accelerators rule out choices (`accelnas.latency.accelerator.Exclusions`: the Edge TPU excludes swish and
squeeze-excite); they are removed from the choices and recorded in `SearchSpace.excluded`.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np

from accelnas.space import blocks as registry
from accelnas.space.arch import ArchSpec, BlockSpec, make_divisible
from accelnas.space.blocks import DECISIONS
from accelnas.space.graph import ACT_TO_TFLITE

_FORMAT = "accelnas.space.search_space/1"
_FLOATS = ("width_mults", "se_ratios")


@dataclass(frozen=True)
class Stage:
    """One stage of the skeleton: stride of its first block, base output channels, base repeats."""

    stride: int
    channels: int
    repeats: int


EDGETPU_S_STAGES = (Stage(1, 24, 1), Stage(2, 32, 2), Stage(2, 48, 4), Stage(2, 96, 5), Stage(1, 144, 4),
                    Stage(2, 192, 2))
"""The EfficientNet-EdgeTPU-S skeleton (stride, base output channels, base repeats per stage;
Gupta & Akin 2020 / tensorflow/models official/projects/edgetpu/vision): the default stages."""


def default_section() -> dict:
    """The default space as a ``search_space`` params section (the EdgeTPU-S skeleton and the
    `SearchSpace` field defaults: what params/default.yaml spells out)."""
    out = {f.name: (list(f.default) if isinstance(f.default, tuple) else f.default)
           for f in dataclasses.fields(SearchSpace) if f.name not in ("stages", "excluded")}
    return {**out, "stages": [dataclasses.asdict(s) for s in EDGETPU_S_STAGES]}


class Exclusion(NamedTuple):
    """A choice removed for an accelerator: e.g. ``("activations", "swish", "coral", "...")``."""

    choice: str
    value: Any
    accelerator: str
    reason: str


def _uniform(values: Iterable) -> tuple:
    """Numbers as ints when all are integral, else floats; strings unchanged."""
    values = tuple(values)
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        if all(float(v).is_integer() for v in values):
            return tuple(int(v) for v in values)
        return tuple(float(v) for v in values)
    return values


@dataclass(frozen=True)
class SearchSpace:
    """A factorized hierarchical search space (see the module docstring).

    Build it with `SearchSpace.from_params` (applies accelerator exclusions) or `from_json`.
    The choice tuples hold what remains after exclusions.

    Attributes:
        stages: the skeleton.
        block_types, kernels, expand_ratios, width_mults, repeat_deltas, se_ratios, activations:
            the choice lists applied to every stage.
        stem_channels, head_channels, activation, se_style: fixed parts of every candidate.
        resolution: input size (pixels) of the sampled architectures (the deployment resolution at
            which latency is modelled; proxy training uses its own resolution).
        num_classes: classifier outputs.
        excluded: what the accelerators removed, as `Exclusion` records.
    """

    stages: tuple[Stage, ...]
    block_types: tuple[str, ...] = ("ibn", "fused", "conv")
    kernels: tuple[int, ...] = (3, 5)
    expand_ratios: tuple[float, ...] = (4, 6, 8)
    width_mults: tuple[float, ...] = (0.75, 1.0, 1.25)
    repeat_deltas: tuple[int, ...] = (-1, 0, 1)
    se_ratios: tuple[float, ...] = (0.0, 0.25)
    activations: tuple[str, ...] = ("relu", "relu6", "hswish", "swish")
    stem_channels: int = 32
    head_channels: int = 1280
    activation: str = "relu"
    se_style: str = "mobilenetv3"
    resolution: int = 224
    num_classes: int = 1000
    excluded: tuple[Exclusion, ...] = field(default=())

    def __post_init__(self) -> None:
        set_ = lambda name, v: object.__setattr__(self, name, v)  # noqa: E731
        set_("stages", tuple(s if isinstance(s, Stage) else Stage(**s) for s in self.stages))
        for name in ("block_types", "kernels", "expand_ratios", "width_mults", "repeat_deltas",
                     "se_ratios", "activations"):
            values = getattr(self, name)  # ratios and multipliers stay floats (0.0, not 0)
            values = tuple(map(float, values)) if name in _FLOATS else _uniform(values)
            if not values:
                raise ValueError(f"search space: no {name} left to choose from")
            if len(set(values)) != len(values):
                raise ValueError(f"search space: {name} has repeated values {list(values)}")
            set_(name, values)
        bad = [b for b in self.block_types if b not in registry.searchable()]
        if bad:
            raise ValueError(f"search space: unknown block types {bad}; allowed: "
                             f"{', '.join(registry.searchable())}")
        if not self.stages:
            raise ValueError("search space: needs at least one stage")
        set_("excluded", tuple(Exclusion(*e) for e in self.excluded))
        # fail early on a space that cannot build (e.g. an activation ArchSpec rejects)
        self.from_values({k: v[0] for k, v in self.choices().items()})

    # ---- construction ------------------------------------------------------------------------

    @classmethod
    def from_params(cls, section: Mapping, accelerators: Iterable = ()) -> "SearchSpace":
        """The space of a validated ``params["search_space"]`` section, minus what ``accelerators``
        (`accelnas.latency.accelerator.Accelerator`) exclude.

        Raises:
            ValueError: an exclusion leaves a decision without choices, or excludes the fixed
                stem/head activation.
        """
        s = dict(section)
        choices = {k: list(_uniform(s.pop(k))) for k in
                   ("block_types", "kernels", "expand_ratios", "width_mults", "repeat_deltas",
                    "se_ratios", "activations")}
        given = {k: tuple(v) for k, v in choices.items()}
        excluded: list[Exclusion] = []
        for acc in accelerators:
            ex = acc.exclude
            rules = {"activations": ex.activations, "block_types": ex.block_types, "kernels": ex.kernels,
                     "se_ratios": [r for r in given["se_ratios"] if r] if ex.squeeze_excite else ()}
            reasons = {}
            # and every activation whose TFLite ops the accelerator's compiler does not map
            for act in given["activations"]:
                unmapped = [op for op in ACT_TO_TFLITE[act] if not acc.supports(op)]
                if unmapped and act not in rules["activations"]:
                    rules["activations"] = (*rules["activations"], act)
                    reasons[("activations", act)] = (
                        f"{'/'.join(unmapped)} is not among the ops {acc.name} maps (supported_ops): "
                        "the first unmapped op sends the rest of the network to the CPU")
            for choice, values in rules.items():
                for v in values:
                    if v in given[choice]:  # one record per accelerator, even if already removed
                        excluded.append(Exclusion(choice, v, acc.name, reasons.get((choice, v), ex.reason)))
                    if v in choices[choice]:
                        choices[choice].remove(v)
                if not choices[choice]:
                    raise ValueError(f"search_space.{choice}: every value is excluded by accelerator "
                                     f"{acc.name!r} ({ex.reason}); add an allowed value")
            if s.get("activation") in ex.activations:
                raise ValueError(f"search_space.activation: {s['activation']!r} (stem and head) is "
                                 f"excluded by accelerator {acc.name!r} ({ex.reason}); choose another")
        return cls(stages=tuple(Stage(**st) for st in s.pop("stages")), excluded=tuple(excluded),
                   **{k: tuple(v) for k, v in choices.items()}, **s)

    # ---- the decisions -----------------------------------------------------------------------

    def stage_choices(self, i: int) -> dict[str, tuple]:
        """Choices of stage ``i`` (1-based), keyed by decision name."""
        st = self.stages[i - 1]
        return {
            "block": self.block_types,
            "kernel": self.kernels,
            "expand_ratio": self.expand_ratios,
            "channels": tuple(sorted({make_divisible(st.channels * m) for m in self.width_mults})),
            "repeats": tuple(sorted({max(1, st.repeats + d) for d in self.repeat_deltas})),
            "se_ratio": self.se_ratios,
            "activation": self.activations,
        }

    def choices(self) -> dict[str, tuple]:
        """Every decision and its values, keyed ``s<i>_<decision>`` (the keras-tuner names)."""
        return {f"s{i}_{d}": v for i in range(1, len(self.stages) + 1)
                for d, v in self.stage_choices(i).items()}

    @property
    def num_encodings(self) -> int:
        """Product of the choice counts: the number of distinct value dicts."""
        return math.prod(len(v) for v in self.choices().values())

    @property
    def size(self) -> int:
        """Number of distinct architectures (value dicts that differ only in decisions a block
        type ignores count once). Equals `num_encodings` when every block type uses every decision.
        With an expand ratio of 1, ``fused`` and ``conv`` can coincide; those are counted twice."""
        total = 1
        for i in range(1, len(self.stages) + 1):
            c = self.stage_choices(i)
            per_type = sum(math.prod(len(c[d]) for d in registry.get(b).uses if d != "block")
                           for b in self.block_types)
            total *= per_type
        return total

    def nearest(self, arch: ArchSpec) -> tuple[dict[str, Any], list[str]] | None:
        """The values of the member of this space nearest to ``arch`` (numbers snapped to the
        nearest choice) and what was snapped; None when its stage count, a block type or an
        activation is not in the space (e.g. the zoo skeleton the space is built on)."""
        values, snapped = {}, []
        choices = self.choices()
        if len(arch.blocks) != len(self.stages):
            return None
        for i, b in enumerate(arch.blocks, start=1):
            for key, v in (("block", b.type), ("kernel", b.kernel), ("expand_ratio", b.expand_ratio),
                           ("channels", b.out_channels), ("repeats", b.repeats), ("se_ratio", b.se_ratio),
                           ("activation", b.activation or arch.activation)):
                opts = choices[f"s{i}_{key}"]
                if v in opts:
                    values[f"s{i}_{key}"] = v
                elif isinstance(v, str):
                    return None
                else:
                    near = min(opts, key=lambda o: abs(o - v))
                    values[f"s{i}_{key}"] = near
                    snapped.append(f"s{i}_{key} {v:g} -> {near:g}")
        return values, snapped

    def zoo_values(self, name: str) -> dict[str, Any]:
        """The values of the member of this space nearest to the zoo model ``name`` (`nearest`).

        Raises:
            ValueError: an unknown zoo model, or one the space cannot express (other stage count,
                block type or activation)."""
        from accelnas.space import zoo

        found = self.nearest(zoo.get(name))
        if found is None:
            raise ValueError(f"{name} has no near member in the search space (its stage count, a block "
                             "type or an activation is not in the space); name the zoo model the "
                             "space's stages are built on")
        return found[0]

    def zoo_member(self, name: str) -> ArchSpec:
        """`zoo_values` as an architecture named ``<name>_nearest``."""
        return self.from_values(self.zoo_values(name), name=f"{name}_nearest")

    def sample_values(self, rng: np.random.Generator) -> dict[str, Any]:
        """One uniformly drawn value per decision (a fixed number of draws: no rejection loop)."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                            f"got {type(rng).__name__}")
        return {k: v[int(rng.integers(len(v)))] for k, v in self.choices().items()}

    def sample(self, rng: np.random.Generator, name: str = "candidate") -> ArchSpec:
        """A random architecture (same generator state => same architecture)."""
        return self.from_values(self.sample_values(rng), name=name)

    def from_values(self, values: Mapping[str, Any], name: str = "candidate") -> ArchSpec:
        """The `ArchSpec` of a flat value dict (e.g. ``hp.values`` of a keras-tuner trial).

        Keys that do not look like decisions (``s<i>_...``) are ignored, so a trial may carry other
        hyperparameters.

        Raises:
            ValueError: a missing decision, an unknown ``s<i>_...`` key, or a value outside the
                choices (the message names the key and the allowed values).
        """
        choices = self.choices()
        unknown = [k for k in values if k not in choices and _looks_like_decision(k)]
        if unknown:
            raise ValueError(f"unknown search-space keys {unknown}; the space has stages "
                             f"s1..s{len(self.stages)} with decisions {', '.join(DECISIONS)}")
        missing = [k for k in choices if k not in values]
        if missing:
            raise ValueError(f"missing search-space decisions {missing}")
        blocks = []
        for i, st in enumerate(self.stages, start=1):
            v = {}
            for d in DECISIONS:
                key = f"s{i}_{d}"
                allowed, given = choices[key], values[key]
                match = [a for a in allowed if a == given and not isinstance(given, bool)
                         and isinstance(given, str) == isinstance(a, str)]  # 4.0 matches 4, "4" not
                if not match:
                    raise ValueError(f"{key}: {given!r} is not a choice of this space; "
                                     f"allowed: {list(allowed)}")
                v[d] = match[0]
            uses = registry.get(v["block"]).uses
            blocks.append(BlockSpec(
                type=v["block"], out_channels=v["channels"], repeats=v["repeats"], kernel=v["kernel"],
                stride=st.stride,
                expand_ratio=v["expand_ratio"] if "expand_ratio" in uses else 1.0,
                se_ratio=v["se_ratio"] if "se_ratio" in uses else 0.0,
                activation=None if v["activation"] == self.activation else v["activation"]))
        return ArchSpec(name=name, stem=BlockSpec("conv", self.stem_channels, kernel=3, stride=2),
                        blocks=tuple(blocks), head_channels=self.head_channels,
                        resolution=self.resolution, num_classes=self.num_classes,
                        activation=self.activation, se_style=self.se_style)

    def to_hyperparameters(self, hp=None):
        """Register an ``hp.Choice`` per decision on a ``keras_tuner.HyperParameters`` (a new one
        when ``hp`` is None); returns ``hp``. ``from_values(hp.values)`` gives the architecture."""
        if hp is None:
            import keras_tuner  # the only TF-importing dependency of this module, on demand

            hp = keras_tuner.HyperParameters()
        for key, values in self.choices().items():
            hp.Choice(key, list(values))
        return hp

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain data (plus the derived ``choices`` and ``size`` for readers of space.json)."""
        return {
            "format": _FORMAT,
            "stages": [{"stride": s.stride, "channels": s.channels, "repeats": s.repeats}
                       for s in self.stages],
            **{k: list(getattr(self, k)) for k in ("block_types", "kernels", "expand_ratios",
                                                    "width_mults", "repeat_deltas", "se_ratios",
                                                    "activations")},
            **{k: getattr(self, k) for k in ("stem_channels", "head_channels", "activation",
                                              "se_style", "resolution", "num_classes")},
            "excluded": [e._asdict() for e in self.excluded],
            "choices": {k: list(v) for k, v in self.choices().items()},
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "SearchSpace":
        d = dict(d)
        fmt = d.pop("format", None)
        if fmt != _FORMAT:
            raise ValueError(f"not a search space ({_FORMAT}): format is {fmt!r}")
        d.pop("choices", None)
        d.pop("size", None)
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown search-space fields {unknown}; allowed: {sorted(known)}")
        d["stages"] = tuple(Stage(**s) for s in d["stages"])
        d["excluded"] = tuple(Exclusion(**e) for e in d.get("excluded", ()))
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_json(self, indent: int | None = 1) -> str:
        """JSON text for ``space.json``; ``SearchSpace.from_json(s.to_json()) == s``."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "SearchSpace":
        return cls.from_dict(json.loads(text))


def _looks_like_decision(key: str) -> bool:
    head, _, rest = str(key).partition("_")
    return len(head) > 1 and head[0] == "s" and head[1:].isdigit() and bool(rest)
