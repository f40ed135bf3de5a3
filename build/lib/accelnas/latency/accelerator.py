"""Accelerator descriptions: `Accelerator`, loaded from ``accelnas/resources/hardware/<name>.yaml``
(package data: a wheel install finds them) or from any YAML path.

Pure module (no TensorFlow). Adding an accelerator is adding a YAML file; its keys are declared as
data in `HARDWARE_SCHEMA` and validated by `accelnas.params.validate` (missing keys, unknown keys,
zero or negative constants raise `ParamsError` naming the file, the key and the fix).

Units: bandwidths in GB/s (10^9 bytes per second, not Gbit/s), memories in bytes, clock in MHz.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Mapping
from pathlib import Path

import yaml

from accelnas.space.arch import ACTIVATIONS
from accelnas.schema import REQUIRED, Key, ParamsError, validate
from accelnas.space import blocks

HARDWARE_DIR = Path(__file__).resolve().parents[1] / "resources" / "hardware"
"""Where accelerator names are looked up (the package's ``resources/hardware/``)."""

_POS = dict(type=float, gt=0)
_POS_INT = dict(type=int, min=1)

HOST_KEYS = ("invoke_overhead_ms", "input_bandwidth_gbps", "output_bandwidth_gbps", "offchip_bandwidth_gbps")
"""The constants of the path between host and chip (the rest describes the chip)."""

_BOUNDS = Key(list, REQUIRED, "[low, high]", item=Key(float, REQUIRED, "bound", min=0), min_len=2)

HOST_SECTION = {
    "description": Key(str, "", "one line: board, link, host"),
    "source": Key(str, "", "where the figures come from"),
    "invoke_overhead_ms": Key(doc="fixed cost per inference on this host path, ms", **_POS),
    "input_bandwidth_gbps": Key(doc="input tensor transfer bandwidth, GB/s", **_POS),
    "output_bandwidth_gbps": Key(doc="output tensor transfer bandwidth, GB/s", **_POS),
    "offchip_bandwidth_gbps": Key(doc="parameter streaming bandwidth, GB/s", **_POS),
    "fit": Key(dict, {}, "host constant -> [low, high]: fitted to this host path's measurements",
               item=_BOUNDS),
}

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
    "elementwise_efficiency": Key(doc="share of that value rate elementwise / pooling / concat ops "
                                      "achieve, 0-1", type=float, gt=0, max=1),
    "cpu_gmacs_per_s": Key(doc="host CPU int8 throughput for the part after a partition, GMAC/s", **_POS),
    "cpu_per_op_us": Key(doc="host CPU cost per op after a partition, microseconds", **_POS),
    "supported_ops": Key(list, REQUIRED, "TFLite builtin ops the accelerator runs (others fall back "
                                         "to the CPU from the first unsupported op on)",
                         item=Key(str, pattern=r"[A-Z][A-Z0-9_]*", hint="TFLite op name, e.g. CONV_2D"),
                         min_len=1, unique=True),
    "family": Key(str, "", "chip family: accelerators of one family share the fitted chip constants "
                           "(calibration.chip)", pattern=r"[a-z0-9_-]*"),
    "hosts": Key(dict, {}, "other host paths to the same chip (a measurement names one as "
                           "<accelerator>@<host>): the host keys that differ from the top level",
                 item=HOST_SECTION),
    "calibration": {
        "chip": Key(dict, {}, "constant -> [low, high]: fitted once per family (shared)", item=_BOUNDS),
        "accelerator": Key(dict, {}, "constant -> [low, high]: fitted for this accelerator", item=_BOUNDS),
        "host": Key(dict, {}, "host constant -> [low, high]: fitted to the measurements of the top-level "
                              "host path (each of hosts has its own fit)", item=_BOUNDS),
        "link_floor_gbps": Key(float, 0.0, "the fastest the host link can stream parameters, GB/s: a "
                                           "measurement below weight bytes beyond the on-chip SRAM / "
                                           "this rate contradicts the hardware (0: no floor)", min=0),
    },
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
    elementwise_efficiency: float = 1.0
    exclude: Exclusions = Exclusions()
    family: str = ""
    hosts: Mapping = field(default_factory=dict)       # host name -> host section (HOST_SECTION)
    calibration: Mapping = field(default_factory=dict)  # the calibration section
    host: str = ""    # the host path these constants describe ("": the file's top level)
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

    def __hash__(self) -> int:  # the mappings are not hashable; the constants identify it
        return hash(tuple(v for f in dataclasses.fields(self)
                          if not isinstance(v := getattr(self, f.name), Mapping)))

    def on_host(self, host: str) -> "Accelerator":
        """The same chip behind another host path of ``hosts`` (its name becomes ``<name>@<host>``).

        Raises:
            ValueError: ``host`` is not one of ``hosts``.
        """
        if host not in self.hosts:
            known = ", ".join(self.hosts) or "none"
            raise ValueError(f"accelerator {self.name!r} has no host path {host!r} (hosts in "
                             f"{self.source or 'its YAML'}: {known})")
        h = self.hosts[host]
        return dataclasses.replace(self, name=f"{self.name}@{host}", host=host,
                                   **{k: h[k] for k in HOST_KEYS})


def available() -> list[str]:
    """Names of the accelerators shipped in ``resources/hardware/``."""
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.yaml"))


def is_path(name_or_path: str | Path) -> bool:
    """Whether an accelerator reference is a YAML path (else a name under ``resources/hardware/``)."""
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
        name_or_path: a name under ``resources/hardware/`` (``coral``) or a path to a YAML file.
        base_dir: where a relative path is looked up first (then the current directory).

    Raises:
        ParamsError: file not found, invalid YAML, missing/unknown key, wrong type, value <= 0.
    """
    if not is_path(name_or_path) and "@" in str(name_or_path):
        name, host = str(name_or_path).split("@", 1)
        acc = load_accelerator(name, base_dir)
        try:
            return acc.on_host(host)
        except ValueError as e:
            raise ParamsError(acc.source, "hosts", str(e)) from None
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
    numeric = [k for k, v in HARDWARE_SCHEMA.items() if isinstance(v, Key) and v.type in (int, float)]
    groups = [(f"calibration.{g}", g, b) for g, b in d["calibration"].items() if isinstance(b, dict)]
    groups += [(f"hosts.{h}.fit", "host", v["fit"]) for h, v in d["hosts"].items()]
    for where, group, bounds in groups:
        allowed = HOST_KEYS if group == "host" else [k for k in numeric if k not in HOST_KEYS or group == "accelerator"]
        for k, b in bounds.items():
            if k not in allowed:
                raise ParamsError(source, f"{where}.{k}", "not a constant this group can fit; "
                                  f"allowed: {', '.join(allowed)}")
            if len(b) != 2 or b[0] > b[1]:
                raise ParamsError(source, f"{where}.{k}", f"got {b}: give [low, high] with low <= high")
    ex = d.pop("exclude")
    exclude = Exclusions(activations=tuple(ex["activations"]), block_types=tuple(ex["block_types"]),
                         kernels=tuple(ex["kernels"]), squeeze_excite=ex["squeeze_excite"],
                         reason=ex["reason"])
    return Accelerator(**d, exclude=exclude, source=source)


def link_floor_ms(acc: Accelerator, weight_bytes) -> "float":
    """The least time the host link needs per inference to stream the parameters that cannot be on
    chip at all (``weight_bytes`` beyond the parameter cache and the whole activation memory) at
    ``calibration.link_floor_gbps``; 0 where the YAML gives no floor."""
    gbps = acc.calibration.get("link_floor_gbps", 0.0) if acc.calibration else 0.0
    if not gbps:
        return 0.0
    beyond = max(0, weight_bytes - acc.param_cache_bytes - acc.activation_memory_bytes)
    return beyond / (gbps * 1e9) * 1e3


def load_accelerators(names_or_paths, base_dir: str | Path | None = None) -> tuple[Accelerator, ...]:
    """`load_accelerator` for each entry (e.g. ``params["accelerators"]``), in order."""
    return tuple(load_accelerator(n, base_dir) for n in names_or_paths)
