"""The analytic op graph (pure)."""
import pytest

from accelnas.space import graph, zoo
from accelnas.space.arch import arch_from_strings


def _tiny(blocks, **kw):
    return arch_from_strings("t", "conv_k3_s2_c16", blocks, head_channels=0, resolution=32,
                             num_classes=10, **kw)


def test_counts_by_hand():
    g = graph.from_arch(_tiny(["ibn_r1_k3_s1_e4_c16"]))
    ops = {o.name: o for o in g}
    # stem: 3x3x3x16 weights + BN 4*16, output 16x16x16
    assert ops["stem_conv"].params == 3 * 3 * 3 * 16 + 64
    assert ops["stem_conv"].macs == 16 * 16 * 3 * 3 * 3 * 16
    assert ops["stem_conv"].out_shape == (16, 16, 16)
    assert ops["stage1_block1_expand_conv"].out_shape == (16, 16, 64)
    dw = ops["stage1_block1_dwconv"]
    assert dw.kind == "dwconv" and dw.groups == 64 and dw.macs == 16 * 16 * 9 * 64
    assert dw.weight_bytes == 9 * 64 + 4 * 64
    assert ops["stage1_block1_add"].inputs == ("stem_conv", "stage1_block1_project_conv")
    assert ops["logits"].params == 16 * 10 + 10 and ops["logits"].activation == "softmax"
    assert g.params == sum(o.params for o in g)


def test_residual_rules():
    names = {o.name for o in graph.from_arch(_tiny(["ibn_r2_k3_s2_e4_c24"]))}
    assert "stage1_block1_add" not in names and "stage1_block2_add" in names
    names = {o.name for o in graph.from_arch(_tiny(["ibn_r2_k3_s1_e4_c16_noskip"]))}
    assert not any(n.endswith("_add") for n in names)
    names = {o.name for o in graph.from_arch(_tiny(["bottleneck_r2_k3_s1_e4_c64"]))}
    assert "stage1_block1_shortcut" in names and "stage1_block2_shortcut" not in names


def test_fused_and_se():
    g = graph.from_arch(_tiny(["fused_r1_k3_s2_e4_c24_se0.25"]))
    fused = g.op("stage1_block1_fused_conv")
    assert fused.kind == "conv" and fused.kernel == 3 and fused.stride == 2 and fused.out_shape == (8, 8, 64)
    red = g.op("stage1_block1_se_reduce")
    assert red.out_shape == (1, 1, 4) and red.bias and not red.bn  # efficientnet: int(16 * 0.25)
    assert g.op("stage1_block1_se_mul").inputs == ("stage1_block1_fused_conv", "stage1_block1_se_expand")
    g3 = graph.from_arch(_tiny(["ibn_r1_k3_s1_e4.5_c16_se0.25"], se_style="mobilenetv3"))
    assert g3.op("stage1_block1_se_reduce").out_shape == (1, 1, 24)  # make_divisible(72 * 0.25)
    assert g3.op("stage1_block1_se_expand").activation == "hsigmoid"


def test_resolution_scales_macs_not_params():
    a = zoo.get("mobilenet_v2")
    g1, g2 = graph.from_arch(a, resolution=224), graph.from_arch(a, resolution=112)
    assert g1.params == g2.params
    assert 3.5 < g1.macs / g2.macs < 4.0  # ~4x, less the fixed classifier


def test_odd_resolution_shapes():
    g = graph.from_arch(zoo.get("mobilenet_v2"), resolution=33)
    assert g.op("stem_conv").out_shape[:2] == (17, 17)
    assert g.output_shape == (1, 1, 1000)


def test_records_and_summary():
    g = graph.from_arch(zoo.get("efficientnet_edgetpu_s"))
    rows = g.records()
    assert len(rows) == len(g) and rows[1]["name"] == "stem_conv" and rows[1]["out_shape"] == "112x112x32"
    s = g.summary()
    assert s["params"] == g.params and s["kinds"]["conv"] > 0
    with pytest.raises(KeyError):
        g.op("nope")


def test_op_validation():
    with pytest.raises(ValueError, match="kind"):
        graph.Op("x", "lstm", (), (1, 1, 1), (1, 1, 1))
