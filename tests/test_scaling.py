import math

import numpy as np
import pandas as pd
import pytest

from accelnas.space import zoo
from accelnas.space.arch import arch_from_strings, decode_arch
from accelnas.space.graph import from_arch
from accelnas.scaling.compound import (EDGETPU_VARIANTS, EFFICIENTNET_COEFFS, coefficient_grid, compound, multipliers, phi_for_latency, round_resolution, scale_to_targets, variant)

# EfficientNet-EdgeTPU-S as docs/edgetpu.md section 4 tabulates it (no TF builder quirks).
EDGETPU_S_BASE = arch_from_strings(
    "edgetpu_s_base", "conv_k3_s2_c32",
    ["fused_r1_k3_s1_e4_c24_noskip", "fused_r2_k3_s2_e8_c32", "fused_r4_k3_s2_e8_c48",
     "ibn_r5_k5_s2_e8_c96", "ibn_r4_k5_s1_e8_c144", "ibn_r2_k5_s2_e8_c192"],
    head_channels=1280, activation="relu")


def macs_ms(arch):
    """A deterministic, monotone stand-in for a latency model: 1 ms per 100 M MACs."""
    return from_arch(arch).macs / 1e8


def widths(arch):
    return [arch.stem.out_channels, *(b.out_channels for b in arch.blocks), arch.head_channels]


def test_pure_module():
    import accelnas.scaling.compound as mod
    assert "tensorflow" not in open(mod.__file__).read()


@pytest.mark.parametrize("name", ["efficientnet_edgetpu_s", "mobilenet_v2", "resnet50", "mobilenet_edgetpu"])
def test_phi_zero_is_the_base(name):
    arch = zoo.ZOO[name]
    assert compound(arch, 0.0, *EFFICIENTNET_COEFFS) == arch
    assert compound(arch, 0, 1.3, 1.2, 1.1, resolution_divisor=32) == arch


def test_phi_zero_keeps_an_odd_base_resolution():
    arch = EDGETPU_S_BASE.replace(resolution=225)
    assert compound(arch, 0, *EFFICIENTNET_COEFFS).resolution == 225


def test_efficientnet_phi_one_on_b0():
    b0 = zoo.ZOO["efficientnet_b0"]
    b = compound(b0, 1.0, *EFFICIENTNET_COEFFS)
    assert multipliers(1.0, *EFFICIENTNET_COEFFS) == pytest.approx((1.2, 1.1, 1.15))
    assert [x.repeats for x in b.blocks] == [math.ceil(x.repeats * 1.2) for x in b0.blocks]
    assert b.resolution == 256                    # 224 * 1.15 = 257.6 -> nearest multiple of 8
    assert b.stem.out_channels == 32 and b.head_channels == 1408   # make_divisible(35.2), (1408)
    assert all(c % 8 == 0 for c in widths(b))


def test_dimensions_grow_with_phi_and_shrink_below_zero():
    prev = None
    for phi in np.linspace(0, 3, 25):
        a = compound(EDGETPU_S_BASE, float(phi), *EFFICIENTNET_COEFFS)
        dims = (a.depth, sum(widths(a)), a.resolution)
        if prev is not None:
            assert all(x >= y for x, y in zip(dims, prev)), (phi, dims, prev)
        prev = dims
    base = (EDGETPU_S_BASE.depth, sum(widths(EDGETPU_S_BASE)), EDGETPU_S_BASE.resolution)
    assert all(x > y for x, y in zip(prev, base))
    small = compound(EDGETPU_S_BASE, -1.0, *EFFICIENTNET_COEFFS)
    assert small.resolution == 192 and sum(widths(small)) < base[1]
    assert [b.repeats for b in small.blocks] == [1, 2, 4, 5, 4, 2]   # ceil keeps them at r * 0.83


def test_resolution_rounding_rules():
    assert round_resolution(224, 1.15, 8) == 256
    assert round_resolution(224, 1.15, 1) == 258
    assert round_resolution(224, 1.15 ** 2, 4) == 296          # 296.24
    assert round_resolution(224, 1.0, 8) == 224
    # never moves against phi: 35 px grows to 40, not back to 32; shrinks to 32, not 40
    assert round_resolution(35, 1.01, 8) == 40 and round_resolution(35, 0.99, 8) == 32
    assert round_resolution(16, 0.1, 8) == 8                   # never below 8 px
    assert round_resolution(64, 0.1, 12) == 12
    mults = np.linspace(0.5, 2.0, 301)
    for base in (35, 224, 225):
        for div in (1, 4, 8, 32):
            res = [round_resolution(base, float(m), div) for m in mults]
            assert all(b >= a for a, b in zip(res, res[1:])), (base, div)
            assert all(r % div == 0 for r, m in zip(res, mults) if m != 1.0)
    with pytest.raises(ValueError, match="resolution_divisor must be a positive integer"):
        round_resolution(224, 1.1, 0)


def test_resolution_is_a_multiple_of_the_divisor():
    for phi in (0.3, 1.0, 2.5):
        assert compound(EDGETPU_S_BASE, phi, *EFFICIENTNET_COEFFS).resolution % 8 == 0
        assert compound(EDGETPU_S_BASE, phi, *EFFICIENTNET_COEFFS, resolution_divisor=32).resolution % 32 == 0


def test_base_resolution_overrides_the_arch():
    a = compound(EDGETPU_S_BASE, 1.0, 1.0, 1.0, 1.15, base_resolution=32)
    assert a.resolution == 40                                  # 36.8 -> 40
    assert compound(EDGETPU_S_BASE, 0, *EFFICIENTNET_COEFFS, base_resolution=32).resolution == 32


@pytest.mark.parametrize("kwargs,needle", [
    (dict(phi=1, alpha=0.9, beta=1.1, gamma=1.1), "alpha must be a finite number >= 1"),
    (dict(phi=1, alpha=1.2, beta=float("nan"), gamma=1.1), "beta must be"),
    (dict(phi=float("inf"), alpha=1.2, beta=1.1, gamma=1.1), "phi must be a finite number"),
    (dict(phi=1, alpha=1.2, beta=1.1, gamma=1.1, base_resolution=4), "base_resolution must be >= 8"),
])
def test_compound_errors(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        compound(EDGETPU_S_BASE, **kwargs)


@pytest.mark.parametrize("label", ["S", "M", "L"])
def test_variant_reproduces_published_edgetpu_scaling(label):
    """docs/edgetpu.md section 4: S (1.0, 1.0, 224), M (1.0, 1.1, 240), L (1.2, 1.4, 300); L: stem 40, head 1536."""
    width, depth, resolution = EDGETPU_VARIANTS[label]
    v = variant(EDGETPU_S_BASE, width, depth, resolution)
    ref = zoo.ZOO[f"efficientnet_edgetpu_{label.lower()}"]
    assert v.resolution == ref.resolution == resolution
    assert (v.stem.out_channels, v.head_channels) == (ref.stem.out_channels, ref.head_channels)
    assert v.depth == ref.depth
    assert [b.repeats for b in v.blocks] == [math.ceil(b.repeats * depth) for b in EDGETPU_S_BASE.blocks]
    # the zoo splits stage 1 (TF's expand-from-declared-input quirk); channels per stage agree
    assert sorted({b.out_channels for b in v.blocks}) == sorted({b.out_channels for b in ref.blocks})
    if label == "L":
        assert (v.stem.out_channels, v.head_channels) == (40, 1536)
    assert variant(EDGETPU_S_BASE, 1.0, 1.0) == EDGETPU_S_BASE


def test_variant_errors():
    with pytest.raises(ValueError, match="resolution must be an integer >= 8"):
        variant(EDGETPU_S_BASE, 1.0, 1.0, 4)
    with pytest.raises(ValueError, match="multipliers must be > 0"):
        variant(EDGETPU_S_BASE, 0.0, 1.0)


def test_coefficient_grid_constraint():
    alphas, betas, gammas = [1.0, 1.1, 1.2, 1.3, 1.4], [1.0, 1.05, 1.1, 1.15, 1.2], [1.0, 1.1, 1.15, 1.2]
    grid = coefficient_grid(alphas, betas, gammas)
    assert grid and EFFICIENTNET_COEFFS in grid               # 1.2 * 1.1**2 * 1.15**2 = 1.92
    for a, b, g in grid:
        assert abs(a * b ** 2 * g ** 2 - 2.0) <= 0.1
    everything = [(a, b, g) for a in alphas for b in betas for g in gammas]
    assert grid == [c for c in everything if c in grid]       # product order
    rejected = set(everything) - set(grid)
    assert all(abs(a * b ** 2 * g ** 2 - 2.0) > 0.1 for a, b, g in rejected)
    assert coefficient_grid([2.0], [1.0], [1.0], tol=0.0) == [(2.0, 1.0, 1.0)]
    assert coefficient_grid([1.0], [1.0], [1.0]) == []
    assert coefficient_grid([1.2], [1.1], [1.15], flops_budget=3.0, tol=0.5) == []


@pytest.mark.parametrize("kwargs,needle", [
    (dict(alphas=[0.5], betas=[1.0], gammas=[1.0]), "alpha must be a finite number >= 1"),
    (dict(alphas=[1.0], betas=[1.0], gammas=[1.0], flops_budget=1.0), "flops_budget must be"),
    (dict(alphas=[1.0], betas=[1.0], gammas=[1.0], tol=-1), "tol must be"),
])
def test_coefficient_grid_errors(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        coefficient_grid(**kwargs)


@pytest.mark.parametrize("factor", [1.5, 2.0, 4.0])
def test_phi_for_latency_brackets_the_target(factor):
    target = factor * macs_ms(EDGETPU_S_BASE)
    tol = 1e-3
    phi = phi_for_latency(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, target, macs_ms, phi_tol=tol)
    assert macs_ms(compound(EDGETPU_S_BASE, phi, *EFFICIENTNET_COEFFS)) <= target
    assert macs_ms(compound(EDGETPU_S_BASE, phi + tol, *EFFICIENTNET_COEFFS)) > target
    assert macs_ms(compound(EDGETPU_S_BASE, phi, *EFFICIENTNET_COEFFS)) > 0.85 * target


def test_phi_for_latency_scores_each_architecture_once():
    seen = []

    def fn(arch):
        seen.append(arch)
        return macs_ms(arch)

    phi_for_latency(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, 2 * macs_ms(EDGETPU_S_BASE), fn)
    assert len(seen) == len(set(seen))


def test_phi_for_latency_skips_a_non_monotone_bump():
    # only the resolution scales; a latency bump at 240..248 px must not stop the search there
    def fn(arch):
        return arch.resolution + (1000.0 if 240 <= arch.resolution <= 248 else 0.0)

    phi = phi_for_latency(EDGETPU_S_BASE, (1.0, 1.0, 1.15), 300.0, fn, grid_steps=64)
    assert compound(EDGETPU_S_BASE, phi, 1.0, 1.0, 1.15).resolution == 296


def test_phi_for_latency_negative_phi_for_a_faster_variant():
    target = 0.6 * macs_ms(EDGETPU_S_BASE)
    phi = phi_for_latency(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, target, macs_ms, phi_min=-3.0)
    assert phi < 0
    assert macs_ms(compound(EDGETPU_S_BASE, phi, *EFFICIENTNET_COEFFS)) <= target


def test_phi_for_latency_errors_name_the_target():
    base_ms = macs_ms(EDGETPU_S_BASE)
    with pytest.raises(ValueError, match=r"target 1 ms is out of reach.*phi_min=0"):
        phi_for_latency(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, 1.0, macs_ms)
    with pytest.raises(ValueError, match=r"target 1e\+06 ms is not reached .* raise phi_max"):
        phi_for_latency(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, 1e6, macs_ms, phi_max=1.0)
    with pytest.raises(ValueError, match="NaN"):
        phi_for_latency(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, 2 * base_ms, lambda a: float("nan"))
    with pytest.raises(ValueError, match=r"coeffs must be \(alpha, beta, gamma\)"):
        phi_for_latency(EDGETPU_S_BASE, (1.2, 1.1), 2 * base_ms, macs_ms)
    with pytest.raises(ValueError, match="target_ms must be a finite latency > 0"):
        phi_for_latency(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, -1.0, macs_ms)
    with pytest.raises(ValueError, match="phi_min < phi_max"):
        phi_for_latency(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, 2 * base_ms, macs_ms, phi_min=1, phi_max=1)


def test_infinite_latency_counts_as_too_slow():
    def fn(arch):   # "cannot run" above 260 px
        return math.inf if arch.resolution > 260 else float(arch.resolution)

    phi = phi_for_latency(EDGETPU_S_BASE, (1.0, 1.0, 1.15), 1e9, fn, phi_max=2.0)
    assert compound(EDGETPU_S_BASE, phi, 1.0, 1.0, 1.15).resolution == 256


def test_scale_to_targets_rows():
    base_ms = macs_ms(EDGETPU_S_BASE)
    targets = [1.0 * base_ms, 2.0 * base_ms, 4.0 * base_ms]
    rows = scale_to_targets(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, targets, macs_ms)
    df = pd.DataFrame(rows)
    assert list(df.columns) == ["name", "target_ms", "phi", "alpha", "beta", "gamma", "depth_mult",
                                "width_mult", "resolution", "latency_ms", "macs", "params", "arch"]
    assert df["name"].tolist() == ["S", "M", "L"]
    assert rows[0]["phi"] == 0.0 and rows[0]["latency_ms"] == pytest.approx(base_ms)
    assert df["phi"].is_monotonic_increasing and df["resolution"].is_monotonic_increasing
    assert (df["latency_ms"] <= df["target_ms"]).all()
    for row in rows:
        arch = decode_arch(row["arch"])
        assert arch.name == f"edgetpu_s_base_{row['name']}"
        assert arch == compound(EDGETPU_S_BASE, row["phi"], *EFFICIENTNET_COEFFS, name=arch.name)
        assert row["macs"] == from_arch(arch).macs
        assert row["depth_mult"] == pytest.approx(1.2 ** row["phi"])
        assert row["width_mult"] == pytest.approx(1.1 ** row["phi"])


def test_scale_to_targets_errors():
    with pytest.raises(ValueError, match=r"one name per target: got 3 names"):
        scale_to_targets(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, [1.0, 2.0], macs_ms)
    with pytest.raises(ValueError, match="target 0.5 ms is out of reach"):
        scale_to_targets(EDGETPU_S_BASE, EFFICIENTNET_COEFFS, [0.5], macs_ms, names=["XS"])


def test_scale_to_targets_with_the_coral_apm():
    """The real latency model: targets reached from below, not pinned to its current numbers."""
    from accelnas.latency import apm_for, as_accelerator

    latency_ms = apm_for(as_accelerator("coral")).latency_ms
    base = zoo.ZOO["efficientnet_edgetpu_s"]
    base_ms = latency_ms(base)
    rows = scale_to_targets(base, EFFICIENTNET_COEFFS, [2 * base_ms, 4 * base_ms], latency_ms,
                            names=["M", "L"])
    assert rows[0]["phi"] < rows[1]["phi"]
    assert rows[0]["latency_ms"] < rows[1]["latency_ms"]
    for row in rows:
        assert 0.8 * row["target_ms"] <= row["latency_ms"] <= row["target_ms"]


def test_choose_coefficients_scores_with_the_reward_and_falls_back():
    from accelnas.scaling.compound import choose_coefficients
    from accelnas.search.reward import mnas_reward

    cands = [(1.2, 1.1, 1.15), (1.6, 1.05, 1.05), (1.15, 1.3, 1.0)]
    # the second is most accurate but far over the target: the hard exponent makes it lose
    chosen, scores, note = choose_coefficients(cands, [0.50, 0.60, float("nan")], [10.0, 40.0, 9.0],
                                               10.0, alpha=0.0, beta=-1.0)
    assert chosen == cands[0] and np.isnan(scores[2])
    assert scores[1] == pytest.approx(mnas_reward(0.60, 40.0, 10.0, 0.0, -1.0))
    assert scores[1] < scores[0]
    assert "best score" in note
    chosen, scores, note = choose_coefficients(cands, [None, float("nan"), None], [1, 2, 3], 1.0)
    assert chosen == EFFICIENTNET_COEFFS and all(np.isnan(scores)) and "EfficientNet" in note
    with pytest.raises(ValueError, match="one entry per candidate"):
        choose_coefficients(cands, [0.5], [1.0], 1.0)
