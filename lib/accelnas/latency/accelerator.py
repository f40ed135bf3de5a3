"""Accelerator descriptions: `Accelerator`, loaded from ``params/hardware/<name>.yaml``.

Pure module (no TensorFlow). Adding an accelerator is adding a YAML file; its keys are declared as
data in `HARDWARE_SCHEMA` and validated by `accelnas.params.validate` (missing keys, unknown keys,
zero or negative constants raise `ParamsError` naming the file, the key and the fix).

Units: bandwidths in GB/s (10^9 bytes per second, not Gbit/s), memories in bytes, clock in MHz.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path

import yaml

from accelnas.space.arch import ACTIVATIONS
from accelnas.schema import REQUIRED, Key, ParamsError, validate
from accelnas.space import blocks

HARDWARE_DIR = Path(__file__).resolve().parents[3] / "params" / "hardware"
"""Where accelerator names are looked up (the repository's ``params/hardware/``)."""

_POS = dict(type=float, gt=0)
_POS_INT = dict(type=int, min=1)

HARDWARE_SCHEMA: dict = {
    "name": Key(str, REQUIRED, "identifier; equals the file name without .yaml",
                pattern=r"[a-z0-9][a-z0-9_-]*", hint="lower-case letters, digits, _ -"),
    "description": Key(str, REQUIRED, "one line for tables and reports"),
    "clock_mhz": Key(doc="core clock, MHz", **_POS),
    "tiles": Key(doc="compute tiles (processing elements)", **_POS_INT),
    "macs_per_cycle_per_tile": Key(doc="int8 multiply-accumulates per cycle per tile", **_POS_INT),
    "param_cache_bytes": Key(doc="on-chip SRAM that caches parameters across inferences, bytes",
                             **_POS_INT),
    "activation_memory_bytes_per_tile": Key(doc="on-chip activation memory per tile, bytes", **_POS_INT),
    "offchip_bandwidth_gbps": Key(doc="parameter streaming bandwidth from off-chip memory, GB/s", **_POS),
    "input_bandwidth_gbps": Key(doc="input tensor transfer bandwidth, GB/s", **_POS),
    "output_bandwidth_gbps": Key(doc="output tensor transfer bandwidth, GB/s", **_POS),
    "invoke_overhead_ms": Key(doc="fixed cost per inference, ms", **_POS),
    "per_op_overhead_cycles": Key(doc="fixed cost per op (layer), cycles", **_POS),
    "lanes_in": Key(doc="input-channel (reduction) lanes of a tile's MAC array; output lanes = "
                        "macs_per_cycle_per_tile / lanes_in", **_POS_INT),
    "mac_efficiency": Key(doc="share of mapped MAC slots doing useful work (pipeline fill, "
                              "activation fetch), 0-1", type=float, gt=0, max=1),
    "param_bytes_per_cycle": Key(doc="parameter SRAM -> tiles broadcast bandwidth, bytes/cycle", **_POS),
    "act_bytes_per_cycle_per_tile": Key(doc="int8 values per cycle per tile that elementwise / pooling / "
                                            "concat ops read (the MAC array's depthwise path: the "
                                            "output lanes)", **_POS),
    "cpu_gmacs_per_s": Key(doc="host CPU int8 throughput for the part after a partition, GMAC/s", **_POS),
    "cpu_per_op_us": Key(doc="host CPU cost per op after a partition, microseconds", **_POS),
    "supported_ops": Key(list, REQUIRED, "TFLite builtin ops the accelerator runs (others fall back "
                                         "to the CPU from the first unsupported op on)",
                         item=Key(str, pattern=r"[A-Z][A-Z0-9_]*", hint="TFLite op name, e.g. CONV_2D"),
                         min_len=1, unique=True),
    "exclude": {
        "activations": Key(list, [], "activations removed from the search space",
                           item=Key(str, choices=ACTIVATIONS), unique=True),
        "block_types": Key(list, [], "block types removed from the search space",
                           item=Key(str, choices=blocks.searchable), unique=True),
        "kernels": Key(list, [], "kernel sizes removed from the search space", item=Key(int, min=1),
                       unique=True),
        "squeeze_excite": Key(bool, False, "remove squeeze-and-excitation (every se_ratio > 0)"),
        "reason": Key(str, "", "why, shown by notebook 01"),
    },
}


@dataclass(frozen=True)
class Exclusions:
    """Search-space choices an accelerator rules out (the ``exclude`` section)."""

    activations: tuple[str, ...] = ()
    block_types: tuple[str, ...] = ()
    kernels: tuple[int, ...] = ()
    squeeze_excite: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Accelerator:
    """An accelerator description (see `HARDWARE_SCHEMA` for each field's meaning and unit)."""

    name: str
    description: str
    clock_mhz: float
    tiles: int
    macs_per_cycle_per_tile: int
    param_cache_bytes: int
    activation_memory_bytes_per_tile: int
    offchip_bandwidth_gbps: float
    input_bandwidth_gbps: float
    output_bandwidth_gbps: float
    invoke_overhead_ms: float
    per_op_overhead_cycles: float
    lanes_in: int
    mac_efficiency: float
    param_bytes_per_cycle: float
    act_bytes_per_cycle_per_tile: float
    cpu_gmacs_per_s: float
    cpu_per_op_us: float
    supported_ops: tuple[str, ...]
    exclude: Exclusions = Exclusions()
    source: str = ""  # the YAML file it came from

    def __post_init__(self) -> None:
        object.__setattr__(self, "supported_ops", tuple(self.supported_ops))
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not v > 0:
                raise ValueError(f"accelerator {self.name!r}: {f.name} must be > 0, got {v!r}")

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    @property
    def macs_per_cycle(self) -> int:
        return self.tiles * self.macs_per_cycle_per_tile

    @property
    def peak_macs_per_s(self) -> float:
        return self.clock_hz * self.macs_per_cycle

    @property
    def peak_tops(self) -> float:
        """Peak int8 tera-operations per second (2 operations per MAC)."""
        return 2 * self.peak_macs_per_s / 1e12

    @property
    def activation_memory_bytes(self) -> int:
        return self.tiles * self.activation_memory_bytes_per_tile

    @property
    def offchip_bytes_per_s(self) -> float:
        return self.offchip_bandwidth_gbps * 1e9

    @property
    def input_bytes_per_s(self) -> float:
        return self.input_bandwidth_gbps * 1e9

    @property
    def output_bytes_per_s(self) -> float:
        return self.output_bandwidth_gbps * 1e9

    @property
    def per_op_overhead_ms(self) -> float:
        return self.per_op_overhead_cycles / self.clock_hz * 1e3

    def supports(self, tflite_op: str) -> bool:
        """Whether a TFLite builtin op (e.g. ``CONV_2D``) runs on the accelerator."""
        return tflite_op in self.supported_ops

    def replace(self, **changes) -> "Accelerator":
        return dataclasses.replace(self, **changes)


def available() -> list[str]:
    """Names of the accelerators shipped in ``params/hardware/``."""
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.yaml"))


def is_path(name_or_path: str | Path) -> bool:
    """Whether an accelerator reference is a YAML path (else a name under ``params/hardware/``)."""
    s = str(name_or_path)
    return isinstance(name_or_path, Path) or "/" in s or "\\" in s or s.endswith((".yaml", ".yml"))


def _resolve(name_or_path: str | Path, base_dir: Path | None) -> Path:
    if is_path(name_or_path):
        p = Path(name_or_path).expanduser()
        tried = [p] if p.is_absolute() else ([Path(base_dir) / p] if base_dir else []) + [Path.cwd() / p]
        for t in tried:
            if t.is_file():
                return t.resolve()
        raise ParamsError(str(name_or_path), "", "accelerator file not found; looked at "
                          + ", ".join(str(t) for t in tried))
    path = HARDWARE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        names = available()
        close = difflib.get_close_matches(str(name_or_path), names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ParamsError(str(name_or_path), "", f"unknown accelerator; {hint}available in "
                          f"{HARDWARE_DIR}: {', '.join(names)} (or give a path to a YAML file)")
    return path


def load_accelerator(name_or_path: str | Path, base_dir: str | Path | None = None) -> Accelerator:
    """Load and validate an accelerator description.

    Args:
        name_or_path: a name under ``params/hardware/`` (``coral``) or a path to a YAML file.
        base_dir: where a relative path is looked up first (then the current directory).

    Raises:
        ParamsError: file not found, invalid YAML, missing/unknown key, wrong type, value <= 0.
    """
    path = _resolve(name_or_path, Path(base_dir) if base_dir is not None else None)
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParamsError(source, "", f"not valid YAML: {e}") from None
    d = validate(data, HARDWARE_SCHEMA, source)
    if d["name"] != path.stem:
        raise ParamsError(source, "name", f"got {d['name']!r}; it must equal the file name without "
                                          f".yaml ({path.stem!r}): rename one of them")
    ex = d.pop("exclude")
    exclude = Exclusions(activations=tuple(ex["activations"]), block_types=tuple(ex["block_types"]),
                         kernels=tuple(ex["kernels"]), squeeze_excite=ex["squeeze_excite"],
                         reason=ex["reason"])
    return Accelerator(**d, exclude=exclude, source=source)


def load_accelerators(names_or_paths, base_dir: str | Path | None = None) -> tuple[Accelerator, ...]:
    """`load_accelerator` for each entry (e.g. ``params["accelerators"]``), in order."""
    return tuple(load_accelerator(n, base_dir) for n in names_or_paths)
