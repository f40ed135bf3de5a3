"""Accelerator descriptions: loading, validation, derived figures (pure, fast)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from accelnas.latency import accelerator as hardware
from accelnas.latency.accelerator import Accelerator, load_accelerator
from accelnas.params import ParamsError

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "params" / "hardware"


def variant(tmp_path: Path, name: str = "coral", **changes) -> Path:
    """A copy of a shipped accelerator file with keys changed (None: removed)."""
    data = yaml.safe_load((HW / f"{name}.yaml").read_text())
    for k, v in changes.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    path = tmp_path / f"{data.get('name', name)}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_accelerators_load():
    assert {"coral", "pixel4"} <= set(hardware.available())
    for name in ("coral", "pixel4"):
        acc = load_accelerator(name)
        assert acc.name == name and acc.source == str(HW / f"{name}.yaml")
        assert acc.supports("CONV_2D") and acc.supports("DEPTHWISE_CONV_2D")
        assert not acc.supports("HARD_SWISH")
        assert acc.exclude.activations == ("swish",) and acc.exclude.squeeze_excite
        assert acc.exclude.reason


def test_coral_figures():
    coral = load_accelerator("coral")
    assert coral.peak_tops == pytest.approx(4.096)  # FACTS.md: 4 TOPS int8
    assert coral.macs_per_cycle == 4096
    assert coral.activation_memory_bytes == 3 * 2**20
    # link bandwidth and per-op overhead stay within the published ranges after calibration
    assert 0.36e9 <= coral.offchip_bytes_per_s <= 0.5e9
    assert coral.per_op_overhead_ms <= 1800 / 500e6 * 1e3 + 1e-12
    assert coral.macs_per_cycle_per_tile % coral.lanes_in == 0 and 0 < coral.mac_efficiency <= 1


def test_pixel4_differs_in_clock_and_bandwidth():
    coral, pixel = load_accelerator("coral"), load_accelerator("pixel4")
    assert pixel.clock_mhz == 789.6 and pixel.tiles == 16
    assert pixel.offchip_bandwidth_gbps > 10 * coral.offchip_bandwidth_gbps
    # MACs per tile are not published for Pixel 4 ([U]): the fit to the published Pixel 4 latencies
    # (calibration.csv) chose half Coral's, so its peak is below Coral's despite the faster clock
    assert pixel.macs_per_cycle_per_tile in (coral.macs_per_cycle_per_tile, coral.macs_per_cycle_per_tile // 2)
    assert pixel.peak_macs_per_s == pytest.approx(pixel.clock_hz * pixel.tiles * pixel.macs_per_cycle_per_tile)
    assert pixel.macs_per_cycle_per_tile % pixel.lanes_in == 0
    # a phone's invoke cost (NNAPI / driver), not a fudge that makes small models slower than on Coral
    assert 0.05 <= pixel.invoke_overhead_ms <= 1.5


def test_supported_ops_are_the_facts_list():
    ops = set(load_accelerator("coral").supported_ops)
    assert {"LOGISTIC", "RELU", "RELU6", "ADD", "MUL", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
            "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION", "MEAN", "PAD", "RESHAPE", "SOFTMAX",
            "RESIZE_BILINEAR", "L2_NORMALIZATION", "SPACE_TO_DEPTH"} <= ops
    assert len(ops) == 28


@pytest.mark.parametrize("name", ["coral", "pixel4"])
def test_every_constant_names_its_source_tag(name):
    keys = [k for k, spec in hardware.HARDWARE_SCHEMA.items()
            if not isinstance(spec, dict) and spec.type in (int, float)]
    lines = (HW / f"{name}.yaml").read_text().splitlines()
    for key in keys:
        line = next(ln for ln in lines if ln.startswith(f"{key}:"))
        assert re.search(r"#.*\[[CSDU](/[CSDU])?\]", line), f"{name}.yaml {key}: no [C]/[S]/[D]/[U] tag"


def test_load_by_path(tmp_path):
    path = variant(tmp_path)
    acc = load_accelerator(path)
    assert acc == load_accelerator("coral").replace(source=str(path.resolve()))
    assert load_accelerator(str(path)).name == "coral"


def test_missing_constant(tmp_path):
    path = variant(tmp_path, clock_mhz=None)
    with pytest.raises(ParamsError) as e:
        load_accelerator(path)
    msg = str(e.value)
    assert str(path) in msg and "clock_mhz: missing" in msg and "MHz" in msg


@pytest.mark.parametrize("key,value", [("offchip_bandwidth_gbps", -0.4), ("tiles", 0),
                                       ("invoke_overhead_ms", 0), ("param_cache_bytes", -1)])
def test_negative_or_zero_constant(tmp_path, key, value):
    path = variant(tmp_path, **{key: value})
    with pytest.raises(ParamsError) as e:
        load_accelerator(path)
    msg = str(e.value)
    assert str(path) in msg and f"{key}: got {value}" in msg and ("> 0" in msg or ">= 1" in msg)


def test_unknown_key_and_wrong_type(tmp_path):
    with pytest.raises(ParamsError, match=r"clock_mz: unknown key; did you mean 'clock_mhz'"):
        load_accelerator(variant(tmp_path, clock_mz=500))
    with pytest.raises(ParamsError, match=r"tiles: got '16' \(str\), expected integer"):
        load_accelerator(variant(tmp_path, tiles="16"))
    with pytest.raises(ParamsError, match=r"exclude\.activations\[0\]: got 'gelu'"):
        load_accelerator(variant(tmp_path, exclude={"activations": ["gelu"]}))
    with pytest.raises(ParamsError, match=r"supported_ops\[0\]: got 'conv2d'"):
        load_accelerator(variant(tmp_path, supported_ops=["conv2d"]))


def test_name_must_match_file(tmp_path):
    data = yaml.safe_load((HW / "coral.yaml").read_text())
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=r"name: got 'coral'; it must equal the file name"):
        load_accelerator(path)


def test_unknown_name_and_missing_path(tmp_path):
    with pytest.raises(ParamsError, match=r"unknown accelerator; did you mean 'coral'\?.*pixel4"):
        load_accelerator("corall")
    with pytest.raises(ParamsError, match="accelerator file not found"):
        load_accelerator(tmp_path / "none.yaml")


def test_direct_construction_checks_constants():
    coral = load_accelerator("coral")
    with pytest.raises(ValueError, match="clock_mhz must be > 0"):
        coral.replace(clock_mhz=-1.0)
    assert isinstance(coral, Accelerator) and coral.replace(tiles=8).macs_per_cycle == 2048
