"""Params files: schema validation, defaults, cross-field checks, overrides (pure, fast)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from accelnas import params
from accelnas.space import zoo
from accelnas.params import ParamsError

ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILES = ["smoke.yaml", "default.yaml", "paper.yaml", "gpu.yaml"]


def write(tmp_path: Path, data: dict, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def smoke_with(tmp_path: Path, section: str | None, key: str, value) -> Path:
    """params/smoke.yaml with one key changed, written to tmp_path."""
    data = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    (data[section] if section else data)[key] = value
    return write(tmp_path, data)


@pytest.mark.parametrize("name", PARAMS_FILES)
def test_shipped_params_files_load(name):
    p = params.load(ROOT / "params" / name)
    assert set(p) == set(params.SCHEMA)
    assert p["target_accelerator"] in p["accelerators"]
    assert set(p["accelerators"]) <= set(p["search"]["target_latency_ms"])
    assert all(b in zoo.names() for b in p["report"]["baselines"])
    assert isinstance(p["proxy"]["width_mult"], float)


def test_params_files_are_listed():
    assert set(PARAMS_FILES) <= set(params.available())


def test_smoke_is_tiny_and_paper_is_imagenet():
    smoke = params.load(ROOT / "params" / "smoke.yaml")
    assert smoke["proxy"]["subset"] <= 1024 and smoke["proxy"]["epochs"] == 1
    assert smoke["proxy"]["resolution"] == 16 and smoke["search"]["trials"] == 3
    paper = params.load(ROOT / "params" / "paper.yaml")
    assert paper["dataset"].startswith("tfrecord:") and paper["proxy"]["resolution"] == 224
    assert paper["train"]["strategy"] == "auto" and params.load(ROOT / "params" / "gpu.yaml")["proxy"]["subset"] == 45000


@pytest.mark.parametrize("name", PARAMS_FILES)
def test_every_key_line_is_commented(name):
    for line in (ROOT / "params" / name).read_text().splitlines():
        if re.match(r"\s*[a-z_]+:", line):
            assert "#" in line, f"{name}: key without a comment: {line!r}"


def test_defaults_fill_an_empty_dict():
    p = params.load_dict({})
    assert p["proxy"]["epochs"] == params.SCHEMA["proxy"]["epochs"].default
    assert p["search_space"]["stages"][0] == {"stride": 1, "channels": 24, "repeats": 1}
    assert params.load_dict(None) == p


def test_missing_section_and_empty_section_get_defaults(tmp_path):
    p = params.load(write(tmp_path, {"run_name": "x", "proxy": None}))
    assert p["proxy"]["batch_size"] == 128 and p["latency"]["method"] == "apm"


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = smoke_with(tmp_path, "proxy", "epoch", 2)
    with pytest.raises(ParamsError) as e:
        params.load(path)
    msg = str(e.value)
    assert str(path) in msg and "proxy.epoch" in msg
    assert "did you mean 'epochs'" in msg and "batch_size" in msg
    assert e.value.key == "proxy.epoch" and isinstance(e.value, ValueError)


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, {"seeds": 3})
    with pytest.raises(ParamsError, match=r"seeds: unknown key; did you mean 'seed'"):
        params.load(path)


def test_wrong_type_names_value_and_expected_type(tmp_path):
    path = smoke_with(tmp_path, "proxy", "epochs", "three")
    with pytest.raises(ParamsError) as e:
        params.load(path)
    msg = str(e.value)
    assert str(path) in msg and "proxy.epochs" in msg and "'three'" in msg and "integer" in msg


def test_bool_is_not_an_int_and_yaml_float_hint(tmp_path):
    with pytest.raises(ParamsError, match="proxy.epochs"):
        params.load(smoke_with(tmp_path, "proxy", "epochs", True))
    with pytest.raises(ParamsError, match=r"search.alpha.*1.0e-3"):
        params.load(smoke_with(tmp_path, "search", "alpha", "-1e-3"))


@pytest.mark.parametrize("section,key,value,allowed", [
    ("proxy", "epochs", 0, ">= 1"),
    ("proxy", "width_mult", -0.5, "> 0"),
    ("search", "controller", "bayesian", "evolution, policy_gradient, random"),
    ("latency", "method", "measure", "apm, sim"),
    ("search", "beta", 0.5, "<= 0"),
    (None, "dataset", "imagenet", "cifar10, synthetic, folder:PATH, tfds:NAME or tfrecord:GLOB"),
    (None, "run_name", "my run/1", "a folder name"),
    (None, "accelerators", [], "at least 1"),
])
def test_impossible_values(tmp_path, section, key, value, allowed):
    path = smoke_with(tmp_path, section, key, value)
    with pytest.raises(ParamsError) as e:
        params.load(path)
    dotted = f"{section}.{key}" if section else key
    msg = str(e.value)
    assert str(path) in msg and f"{dotted}:" in msg and allowed in msg


def test_list_item_errors_name_the_index(tmp_path):
    data = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    data["search_space"]["stages"][2]["stride"] = 3
    with pytest.raises(ParamsError, match=r"search_space\.stages\[2\]\.stride: got 3; allowed: one of 1, 2"):
        params.load(write(tmp_path, data))
    data = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    data["search_space"]["kernels"] = [3, 3]
    with pytest.raises(ParamsError, match=r"search_space\.kernels: .*repeated"):
        params.load(write(tmp_path, data))


def test_target_not_in_accelerators(tmp_path):
    path = smoke_with(tmp_path, None, "target_accelerator", "pixel3")
    with pytest.raises(ParamsError) as e:
        params.load(path)
    msg = str(e.value)
    assert str(path) in msg and "target_accelerator" in msg and "'pixel3'" in msg
    assert "coral, pixel4" in msg and "did you mean 'pixel4'" in msg


def test_unknown_baseline_names_zoo_models(tmp_path):
    path = smoke_with(tmp_path, "report", "baselines", ["mobilenet_v2", "mobilenet_v4"])
    with pytest.raises(ParamsError) as e:
        params.load(path)
    msg = str(e.value)
    assert str(path) in msg and "report.baselines[1]" in msg and "'mobilenet_v4'" in msg
    assert "efficientnet_edgetpu_s" in msg


def test_unknown_accelerator(tmp_path):
    path = smoke_with(tmp_path, None, "accelerators", ["coral", "pixle4"])
    with pytest.raises(ParamsError) as e:
        params.load(path)
    msg = str(e.value)
    assert str(path) in msg and "accelerators[1]" in msg and "did you mean 'pixel4'" in msg


def test_every_accelerator_needs_a_latency_target(tmp_path):
    path = smoke_with(tmp_path, "search", "target_latency_ms", {"coral": 5.0})
    with pytest.raises(ParamsError, match=r"search\.target_latency_ms\.pixel4: missing"):
        params.load(path)
    path = smoke_with(tmp_path, "search", "target_latency_ms", {"coral": 5.0, "pixel4": 3, "corl": 1})
    with pytest.raises(ParamsError, match=r"target_latency_ms\.corl: unknown accelerator; did you mean 'coral'"):
        params.load(path)
    path = smoke_with(tmp_path, "search", "target_latency_ms", {"coral": 5.0, "pixel4": 0})
    with pytest.raises(ParamsError, match=r"target_latency_ms\.pixel4: got 0"):
        params.load(path)


def test_sample_size_at_most_population(tmp_path):
    data = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    data["search"].update(population=2, sample_size=5)
    with pytest.raises(ParamsError, match=r"search\.sample_size: got 5, larger than search\.population"):
        params.load(write(tmp_path, data))


def test_accelerator_given_as_path_relative_to_params_file(tmp_path):
    hw = yaml.safe_load((ROOT / "lib" / "accelnas" / "resources" / "hardware" / "coral.yaml").read_text())
    hw["name"] = "mytpu"
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "mytpu.yaml").write_text(yaml.safe_dump(hw))
    path = write(tmp_path, {"accelerators": ["hw/mytpu.yaml", "coral"], "target_accelerator": "mytpu",
                            "search": {"target_latency_ms": {"mytpu": 4.0, "coral": 5.0}}})
    p = params.load(path)
    assert p["accelerators"][0] == str((tmp_path / "hw" / "mytpu.yaml").resolve())
    assert p["accelerators"][1] == "coral"
    assert params.override(p, {"seed": 3})["accelerators"] == p["accelerators"]  # cwd-independent


def test_override_is_validated_and_copies():
    p = params.load(ROOT / "params" / "smoke.yaml")
    q = params.override(p, {"proxy.epochs": 2, "search.target_latency_ms.coral": 4.0})
    assert q["proxy"]["epochs"] == 2 and q["search"]["target_latency_ms"]["coral"] == 4.0
    assert p["proxy"]["epochs"] == 1 and p["search"]["target_latency_ms"]["coral"] == 5.0
    with pytest.raises(ParamsError, match=r"<override>: proxy\.epoch: unknown key; did you mean 'epochs'"):
        params.override(p, {"proxy.epoch": 1})
    with pytest.raises(ParamsError, match=r"proxy\.epochs: got -1"):
        params.override(p, {"proxy.epochs": -1})
    with pytest.raises(ParamsError, match="not a section"):
        params.override(p, {"seed.x": 1})


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ParamsError, match="cannot read"):
        params.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("proxy: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        params.load(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        params.load(bad)


def test_schema_rows_document_every_leaf():
    rows = params.schema_rows()
    keys = {r["key"] for r in rows}
    assert {"proxy.epochs", "search.target_latency_ms", "search_space.stages", "report.seeds"} <= keys
    assert all(r["doc"] for r in rows)
