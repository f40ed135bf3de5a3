"""Accelerator descriptions: loading, validation, derived figures (pure, fast)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from accelnas.latency import accelerator as hardware
from accelnas.latency.accelerator import HARDWARE_DIR, Accelerator, load_accelerator
from accelnas.params import ParamsError

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "lib" / "accelnas" / "resources" / "hardware"


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
    assert hardware.available()
    for name in hardware.available():
        acc = load_accelerator(name)
        assert acc.name == name and acc.source == str(HW / f"{name}.yaml")
        assert acc.supports("CONV_2D") and acc.supports("DEPTHWISE_CONV_2D")
        for host in acc.hosts:
            assert load_accelerator(f"{name}@{host}").host == host
    # which ops a compiler maps is per device: Coral's 2019 table lacks HARD_SWISH, Pixel 4 runs MobileNetV3
    assert not load_accelerator("coral").supports("HARD_SWISH")
    assert load_accelerator("pixel4").supports("HARD_SWISH")
    for name in ("coral", "pixel4"):
        acc = load_accelerator(name)
        assert acc.exclude.activations == ("swish",) and acc.exclude.squeeze_excite
        assert acc.exclude.reason


def test_coral_figures():
    coral = load_accelerator("coral")
    assert coral.peak_tops == pytest.approx(4.096)  # docs/edgetpu.md section 1: 4 TOPS int8
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


def test_a_host_path_changes_only_the_host_constants():
    from accelnas.latency.accelerator import HOST_KEYS

    coral = load_accelerator("coral")
    lb = load_accelerator("coral@latbench")
    assert lb.name == "coral@latbench" and lb.host == "latbench" and lb.family == coral.family == "edgetpu"
    for f in dataclasses.fields(coral):
        if f.name not in (*HOST_KEYS, "name", "host"):
            assert getattr(lb, f.name) == getattr(coral, f.name), f.name
    assert lb.invoke_overhead_ms != coral.invoke_overhead_ms
    assert hash(lb) != hash(coral) and lb != coral
    with pytest.raises(ParamsError, match="no host path 'devboard'.*latbench"):
        load_accelerator("coral@devboard")


def test_calibration_bounds_are_data_and_checked(tmp_path):
    from accelnas.latency.calibrate import fit_space

    space = fit_space([load_accelerator(n) for n in ("coral", "pixel4", "coral@latbench")])
    groups = {g for g, _ in space.names}
    assert groups == {"chip:edgetpu", "host:coral@", "host:pixel4@", "host:coral@latbench"}
    assert all(lo <= hi for lo, hi in space.bounds)
    src = (HARDWARE_DIR / "coral.yaml").read_text()
    bad = tmp_path / "coral.yaml"
    bad.write_text(src.replace("mac_efficiency: [0.2, 1.0]", "mac_efficiency: [0.9, 0.2]"))
    with pytest.raises(ParamsError, match=r"calibration.chip.mac_efficiency.*low <= high"):
        load_accelerator(bad)
    bad.write_text(src.replace("mac_efficiency: [0.2, 1.0]", "clock_speed: [1, 2]"))
    with pytest.raises(ParamsError, match=r"calibration.chip.clock_speed.*not a constant"):
        load_accelerator(bad)


def test_link_floor_comes_from_the_yaml():
    from accelnas.latency.accelerator import link_floor_ms

    coral, pixel4 = load_accelerator("coral"), load_accelerator("pixel4")
    on_chip = coral.param_cache_bytes + coral.activation_memory_bytes
    assert link_floor_ms(coral, on_chip) == 0.0
    assert link_floor_ms(coral, on_chip + 50_000_000) == pytest.approx(100.0)   # 50 MB at 0.5 GB/s
    assert link_floor_ms(pixel4, on_chip + 50_000_000) == 0.0                    # no floor given
