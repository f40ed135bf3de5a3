"""The proxy-task rule (`accelnas.train.proxy`): width, resolution, classes and the stride schedule."""
import sys

import numpy as np
import pytest

from accelnas import params
from accelnas.space import zoo
from accelnas.space.arch import arch_from_strings, make_divisible
from accelnas.train.proxy import (MIN_FEATURE, describe, final_feature, proxy_arch, stride_changes, stride_schedule)
from accelnas.space.search_space import SearchSpace


def _space() -> SearchSpace:
    return SearchSpace.from_params(params.load(params.params_dir() / "default.yaml")["search_space"])


def _candidates():
    space = _space()
    rng = np.random.default_rng(0)
    return [zoo.get(n) for n in zoo.names()] + [space.sample(rng, name=f"sample{i}")
                                                 for i in range(20)]


def test_pure_module_imports_no_tensorflow():
    import subprocess

    code = ("import sys, accelnas.train.proxy; "
            "sys.exit(1 if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("resolution", [32, 16])
@pytest.mark.parametrize("min_feature", [4, 2])
def test_final_map_at_least_min_feature(resolution, min_feature):
    for a in _candidates():
        p = proxy_arch(a, resolution=resolution, width_mult=0.5, num_classes=10,
                       min_feature=min_feature)
        assert final_feature(p) >= min_feature, a.name
        # minimal: one more stride-2 site would go below min_feature
        assert final_feature(p) < 2 * min_feature or not stride_changes(a, p), a.name
        assert p.resolution == resolution and p.num_classes == 10
        assert len(p.blocks) == len(a.blocks)
        assert [b.repeats for b in p.blocks] == [b.repeats for b in a.blocks]


def test_unchanged_when_already_fine():
    for name in zoo.names():
        a = zoo.get(name, resolution=224)
        p = proxy_arch(a, resolution=224, width_mult=1.0, num_classes=a.num_classes)
        assert p == a, name
        assert stride_changes(a, p) == ()
    a = zoo.get("efficientnet_edgetpu_s")
    p = proxy_arch(a, resolution=128, width_mult=0.5, num_classes=10)  # 128 / 32 = 4
    assert not stride_changes(a, p) and final_feature(p) == 4


def test_widths_scaled_everywhere():
    a = zoo.get("mobilenet_v3_large")
    p = proxy_arch(a, resolution=32, width_mult=0.5, num_classes=10)
    assert p.stem.out_channels == make_divisible(a.stem.out_channels * 0.5)
    assert [b.out_channels for b in p.blocks] == [make_divisible(b.out_channels * 0.5)
                                                  for b in a.blocks]
    assert p.head_channels == make_divisible(a.head_channels * 0.5)
    assert p.pre_logits == make_divisible(a.pre_logits * 0.5)
    for bp, ba in zip(p.blocks, a.blocks):
        assert (bp.kernel, bp.expand_ratio, bp.se_ratio, bp.activation, bp.repeats) == \
               (ba.kernel, ba.expand_ratio, ba.se_ratio, ba.activation, ba.repeats)


def test_edgetpu_s_docstring_example():
    a = zoo.get("efficientnet_edgetpu_s")
    p = proxy_arch(a, resolution=32, width_mult=0.5, num_classes=10)
    assert [b.stride for b in a.blocks] == [1, 2, 2, 2, 1, 2]
    assert p.stem.stride == 2
    assert [b.stride for b in p.blocks] == [1, 2, 2, 1, 1, 1]
    assert final_feature(p) == 4
    assert [(c.site, c.before, c.after) for c in stride_changes(a, p)] == [
        ("stage4", 2, 1), ("stage6", 2, 1)]
    assert [s.out_size for s in stride_schedule(p)] == [16, 16, 8, 4, 4, 4, 4]


def test_strides_change_from_the_end():
    """The changed sites are exactly the last stride-2 sites, in reverse network order."""
    for a in _candidates():
        for res in (32, 16, 8):
            p = proxy_arch(a, resolution=res, width_mult=1.0, num_classes=10)
            sites = [s.site for s in stride_schedule(a.replace(resolution=res)) if s.stride == 2]
            changed = [c.site for c in stride_changes(a, p)]
            assert changed == sites[len(sites) - len(changed):], (a.name, res)


def test_resnet_pool_before_stem():
    a = zoo.get("resnet50")
    p32 = proxy_arch(a, resolution=32, width_mult=0.5, num_classes=10)
    assert p32.stem_pool and p32.stem.stride == 2
    assert [b.stride for b in p32.blocks] == [1, 2, 1, 1]
    p8 = proxy_arch(a, resolution=8, width_mult=0.5, num_classes=10)  # needs total stride 2
    assert not p8.stem_pool and p8.stem.stride == 2 and final_feature(p8) == 4
    assert [c.site for c in stride_changes(a, p8)] == ["stem_pool", "stage2", "stage3", "stage4"]
    p1 = proxy_arch(a, resolution=8, width_mult=0.5, num_classes=10, min_feature=8)
    assert p1.stem.stride == 1 and p1.total_stride == 1 and final_feature(p1) == 8


def test_odd_resolution_uses_same_padding():
    a = arch_from_strings("t", "conv_k3_s2_c16", ["ibn_r1_k3_s2_e4_c24", "ibn_r1_k3_s2_e4_c32"])
    assert final_feature(a, 28) == 4  # 28 -> 14 -> 7 -> 4
    p = proxy_arch(a, resolution=28, width_mult=1.0, num_classes=10)
    assert p.blocks == a.blocks


def test_errors():
    a = zoo.get("mobilenet_v2")
    with pytest.raises(ValueError, match="min_feature"):
        proxy_arch(a, resolution=3, width_mult=1.0, num_classes=10, min_feature=4)
    with pytest.raises(ValueError, match="width_mult"):
        proxy_arch(a, resolution=32, width_mult=0, num_classes=10)
    with pytest.raises(ValueError, match="min_feature"):
        proxy_arch(a, resolution=32, width_mult=1.0, num_classes=10, min_feature=0)
    with pytest.raises(ValueError, match="stages"):
        stride_changes(a, zoo.get("resnet50"))


def test_describe_row():
    a = zoo.get("resnet50")
    row = describe(a, proxy_arch(a, resolution=32, width_mult=0.5, num_classes=10))
    assert row["final_feature_px"] == 4 and row["final_feature_px_unchanged"] == 1
    assert row["stride_changes"] == "stage3 2->1, stage4 2->1"
    assert row["total_stride"] == 8 and row["total_stride_original"] == 32
    assert MIN_FEATURE == 4
