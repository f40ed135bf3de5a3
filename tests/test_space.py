"""The search space: sampling, exclusions, value dicts, size, keras-tuner and JSON (pure, fast)."""
from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accelnas.space import graph
from accelnas import params
from accelnas.space.arch import decode_arch, make_divisible
from accelnas.latency.accelerator import load_accelerator
from accelnas.space.search_space import DECISIONS, Exclusion, SearchSpace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_params() -> dict:
    return params.load(ROOT / "params" / "default.yaml")


@pytest.fixture(scope="module")
def coral_space(run_params) -> SearchSpace:
    return SearchSpace.from_params(run_params["search_space"], [load_accelerator("coral")])


@pytest.fixture(scope="module")
def open_space(run_params) -> SearchSpace:
    return SearchSpace.from_params(run_params["search_space"])


def tiny_space(**changes) -> SearchSpace:
    section = params.load_dict({"search_space": {
        "stages": [{"stride": 1, "channels": 16, "repeats": 1}, {"stride": 2, "channels": 24, "repeats": 2}],
        "kernels": [3, 5], "expand_ratios": [3, 6], "width_mults": [0.5, 1.0], "repeat_deltas": [0, 1],
        "se_ratios": [0.0, 0.25], "activations": ["relu", "hswish"], **changes}})["search_space"]
    return SearchSpace.from_params(section)


def test_pure_modules_do_not_import_tensorflow():
    code = ("import sys, numpy as np; from accelnas import params; from accelnas.latency import accelerator as hardware; "
            "from accelnas.space import search_space as space; "
            "p = params.load('params/smoke.yaml'); "
            "s = space.SearchSpace.from_params(p['search_space'], hardware.load_accelerators(p['accelerators'])); "
            "s.sample(np.random.default_rng(0)); "
            "assert 'tensorflow' not in sys.modules and 'keras_tuner' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_sampling_is_seeded(coral_space):
    def strings(seed):
        rng = np.random.default_rng(seed)
        return [coral_space.sample(rng).encode() for _ in range(20)]

    assert strings(0) == strings(0)
    assert strings(0) != strings(1)
    assert len(set(strings(0))) == 20


def test_sample_requires_a_generator(coral_space):
    with pytest.raises(TypeError, match="default_rng"):
        coral_space.sample(0)


def test_coral_exclusions_hold_in_every_sample(coral_space):
    rng = np.random.default_rng(7)
    for _ in range(300):
        arch = coral_space.sample(rng)
        for b in arch.blocks:
            assert (b.activation or arch.activation) != "swish"
            assert b.se_ratio == 0
    assert "swish" not in coral_space.activations and coral_space.se_ratios == (0.0,)
    assert {(e.choice, e.value, e.accelerator) for e in coral_space.excluded} == {
        ("activations", "swish", "coral"), ("se_ratios", 0.25, "coral"),
        ("activations", "hswish", "coral")}  # HARD_SWISH is not in the 2019 op table
    hswish = next(e for e in coral_space.excluded if e.value == "hswish")
    assert "HARD_SWISH" in hswish.reason and "supported_ops" in hswish.reason
    assert all(isinstance(e, Exclusion) and e.reason for e in coral_space.excluded)


def test_without_accelerators_nothing_is_excluded(open_space):
    assert open_space.excluded == ()
    rng = np.random.default_rng(0)
    archs = [open_space.sample(rng) for _ in range(50)]
    assert any(b.activation == "swish" for a in archs for b in a.blocks)
    assert any(b.se_ratio for a in archs for b in a.blocks)


def test_each_accelerator_records_its_exclusions(run_params):
    space = SearchSpace.from_params(run_params["search_space"],
                                    [load_accelerator("coral"), load_accelerator("pixel4")])
    assert sorted({e.accelerator for e in space.excluded}) == ["coral", "pixel4"]
    assert len(space.excluded) == 5
    # hard-swish is unmapped on Coral's 2019 op table only (pixel4.yaml lists HARD_SWISH)
    assert {(e.accelerator, e.value) for e in space.excluded if e.choice == "activations"} == {
        ("coral", "swish"), ("coral", "hswish"), ("pixel4", "swish")}


def test_exclusion_that_empties_a_choice_fails(run_params):
    section = dict(run_params["search_space"], activations=["swish"])
    with pytest.raises(ValueError, match=r"search_space\.activations: every value is excluded by accelerator 'coral'"):
        SearchSpace.from_params(section, [load_accelerator("coral")])
    section = dict(run_params["search_space"], activation="swish")
    with pytest.raises(ValueError, match=r"search_space\.activation: 'swish'"):
        SearchSpace.from_params(section, [load_accelerator("coral")])


def test_values_round_trip(coral_space):
    rng = np.random.default_rng(3)
    for _ in range(50):
        values = coral_space.sample_values(rng)
        assert set(values) == set(coral_space.choices())
        arch = coral_space.from_values(values)
        assert decode_arch(arch.encode()) == arch
        assert coral_space.from_values(dict(values)) == arch
    a, b = np.random.default_rng(11), np.random.default_rng(11)
    assert coral_space.sample(a) == coral_space.from_values(coral_space.sample_values(b))


def test_sampled_archs_follow_the_skeleton(coral_space, run_params):
    rng = np.random.default_rng(5)
    stages = run_params["search_space"]["stages"]
    for _ in range(30):
        arch = coral_space.sample(rng)
        assert arch.resolution == 224 and arch.num_classes == 1000
        assert len(arch.blocks) == len(stages)
        for b, st in zip(arch.blocks, stages):
            assert b.stride == st["stride"] and b.out_channels % 8 == 0
            assert max(1, st["repeats"] - 1) <= b.repeats <= st["repeats"] + 1
            assert b.out_channels in {make_divisible(st["channels"] * m) for m in (0.75, 1.0, 1.25)}
            if b.type == "conv":
                assert b.expand_ratio == 1 and b.se_ratio == 0
        g = graph.from_arch(arch)
        assert g.macs > 0


def test_resolution_and_classes_come_from_params(run_params):
    p = params.override(run_params, {"search_space.resolution": 192, "search_space.num_classes": 10})
    arch = SearchSpace.from_params(p["search_space"]).sample(np.random.default_rng(0))
    assert (arch.resolution, arch.num_classes) == (192, 10)


def test_from_values_rejects_bad_values(coral_space):
    values = coral_space.sample_values(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"s2_activation: 'swish' is not a choice.*allowed: \['relu', 'relu6'\]"):
        coral_space.from_values({**values, "s2_activation": "swish"})
    with pytest.raises(ValueError, match=r"s1_kernel: '3' is not a choice"):
        coral_space.from_values({**values, "s1_kernel": "3"})
    with pytest.raises(ValueError, match=r"s4_se_ratio: 0.25 is not a choice.*allowed: \[0.0\]"):
        coral_space.from_values({**values, "s4_se_ratio": 0.25})
    with pytest.raises(ValueError, match=r"missing search-space decisions \['s3_block'\]"):
        coral_space.from_values({k: v for k, v in values.items() if k != "s3_block"})
    with pytest.raises(ValueError, match=r"unknown search-space keys \['s9_block'\]"):
        coral_space.from_values({**values, "s9_block": "ibn"})
    # other hyperparameters of a trial are ignored; 6.0 is the choice 6
    arch = coral_space.from_values({**values, "learning_rate": 0.1, "s1_expand_ratio": 6.0,
                                    "s1_block": "ibn"})
    assert arch.blocks[0].expand_ratio == 6


def test_size_is_the_product_of_choice_counts():
    space = tiny_space(block_types=["ibn", "fused"])
    choices = space.choices()
    assert set(choices) == {f"s{i}_{d}" for i in (1, 2) for d in DECISIONS}
    assert space.size == math.prod(len(v) for v in choices.values()) == space.num_encodings
    assert space.stage_choices(1)["channels"] == (8, 16) and space.stage_choices(2)["repeats"] == (2, 3)


def test_size_counts_distinct_architectures():
    space = tiny_space(kernels=[3], activations=["relu"])  # conv ignores expand_ratio and se_ratio
    choices = space.choices()
    keys = list(choices)
    distinct = {space.from_values(dict(zip(keys, combo))).encode()
                for combo in itertools.product(*choices.values())}
    assert space.size == len(distinct) < space.num_encodings


def test_default_space_size(coral_space, open_space):
    assert isinstance(coral_space.size, int) and coral_space.size > 10**12
    assert open_space.size > coral_space.size
    # per stage: ibn and fused use kernel (2) x expand (3) x se (1) x activation (2); conv only
    # kernel x activation; all three times channels x repeats
    expected = math.prod(len(c["channels"]) * len(c["repeats"]) * (2 * (2 * 3 * 1 * 2) + 2 * 2)
                         for c in (coral_space.stage_choices(i) for i in range(1, 7)))
    assert coral_space.size == expected
    assert coral_space.stage_choices(1)["channels"] == (24, 32)
    assert coral_space.stage_choices(1)["repeats"] == (1, 2)


def test_to_hyperparameters_registers_every_decision(coral_space):
    keras_tuner = pytest.importorskip("keras_tuner")
    hp = coral_space.to_hyperparameters(keras_tuner.HyperParameters())
    assert isinstance(hp, keras_tuner.HyperParameters)
    choices = coral_space.choices()
    assert set(hp.values) == set(choices)
    for h in hp.space:
        assert list(h.values) == list(choices[h.name])
    arch = coral_space.from_values(hp.values)
    assert arch == coral_space.from_values({k: v[0] for k, v in choices.items()})
    assert len(coral_space.to_hyperparameters().space) == len(choices)


def test_json_round_trip(coral_space, tmp_path):
    path = tmp_path / "space.json"
    path.write_text(coral_space.to_json())
    back = SearchSpace.from_json(path.read_text())
    assert back == coral_space and back.excluded == coral_space.excluded
    assert back.choices() == coral_space.choices() and back.size == coral_space.size
    rng_a, rng_b = np.random.default_rng(2), np.random.default_rng(2)
    assert back.sample(rng_a) == coral_space.sample(rng_b)
    with pytest.raises(ValueError, match="unknown search-space fields"):
        SearchSpace.from_dict({**coral_space.to_dict(), "kernel": [3]})
    with pytest.raises(ValueError, match="not a search space"):
        SearchSpace.from_dict({"stages": []})
