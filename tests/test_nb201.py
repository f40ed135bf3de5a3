"""NAS-Bench-201 networks as op graphs (the LatBench family)."""
import pytest

from accelnas.latency import estimate
from accelnas.space.nb201 import live_edges, nb201_graph, parse

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
IDENTITY = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"


def test_parse_reads_the_three_nodes():
    e = parse(ALL_CONV3)
    assert [len(n) for n in e] == [1, 2, 3]
    assert e[2] == [("nor_conv_3x3", 0), ("nor_conv_3x3", 1), ("nor_conv_3x3", 2)]


@pytest.mark.parametrize("bad", ["", "|nor_conv_3x3~0|+|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "none~0+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_parse_rejects_what_is_not_a_cell(bad):
    with pytest.raises(ValueError, match="NAS-Bench-201|node|edge"):
        parse(bad)


def test_dead_edges_are_dropped():
    # node 1 is reached but never reaches the output; node 2 has no live input
    arch = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    assert live_edges(arch) == [(0, 3, "skip_connect")]
    ops = {o.kind for o in nb201_graph(arch).ops}
    assert "avgpool" not in {o.kind for o in nb201_graph(arch).ops if o.name.startswith("stage")}
    assert ops == {"input", "conv", "avgpool", "add", "gap", "fc"}  # the reductions' pools and adds remain


def test_all_conv3_network_counts_macs_and_weights():
    g = nb201_graph(ALL_CONV3)
    macs = 32 * 32 * 27 * 16                          # stem
    weights = 27 * 16
    for c, hw in ((16, 32), (32, 16), (64, 8)):
        macs += 5 * 6 * hw * hw * 9 * c * c           # 5 cells x 6 conv3x3 edges
        weights += 5 * 6 * 9 * c * c
        if c > 16:                                     # the reduction into this stage
            cin = c // 2
            macs += hw * hw * (9 * cin * c + 9 * c * c + cin * c)
            weights += 9 * cin * c + 9 * c * c + cin * c
    macs += 64 * 100
    weights += 64 * 100 + 4 * 100                      # classifier with an int32 bias
    assert g.macs == macs
    assert g.weight_bytes == weights
    assert g.input_shape == (32, 32, 3) and g.output_shape == (1, 1, 100)
    adds = [o for o in g.ops if o.kind == "add" and o.name.startswith("stage")]
    assert len(adds) == 15 * (1 + 2)                   # node 2: one ADD, node 3: two


def test_identity_cells_leave_the_skeleton_and_are_fastest():
    idg = nb201_graph(IDENTITY)
    assert not [o for o in idg.ops if o.name.startswith("stage")]
    fast = estimate("nb201:" + IDENTITY, "coral", "sim").latency_ms
    slow = estimate("nb201:" + ALL_CONV3, "coral", "sim").latency_ms
    assert 0 < fast < slow


def test_a_cell_without_a_path_is_refused():
    with pytest.raises(ValueError, match="no path"):
        nb201_graph("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_estimate_takes_nb201_references_at_another_resolution():
    r = estimate("nb201:" + ALL_CONV3, "coral", "sim", resolution=64)
    assert r.resolution == 64 and r.model == "nb201:" + ALL_CONV3
    assert r.macs == nb201_graph(ALL_CONV3, resolution=64).macs
