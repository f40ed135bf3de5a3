"""The block-type registry: one emit function + one register line is a whole new block type."""
from __future__ import annotations

import numpy as np
import pytest

from accelnas import params
from accelnas.space import blocks, tables
from accelnas.space.arch import decode_arch, decode_block
from accelnas.space.graph import from_arch
from accelnas.space.ops import conv_op
from accelnas.space.search_space import SearchSpace


@pytest.fixture
def dilated():
    """A test-only block type: k x k conv then a 1x1 conv, registered for the test's duration."""
    def emit(net, arch, b, prefix, x, stride):
        y = net.add(conv_op(f"{prefix}_kxk", (x.name,), x.out_shape, b.out_channels, b.kernel, stride,
                            activation=b.activation or arch.activation))
        return net.add(conv_op(f"{prefix}_pw", (y.name,), y.out_shape, b.out_channels, 1))

    t = blocks.register("twoconv", emit, doc="k x k conv -> 1x1 conv", searchable=True,
                        uses=("kernel", "channels", "repeats", "activation"), color="tab:red")
    yield t
    del blocks.REGISTRY["twoconv"]


def test_builtin_types_registered():
    assert blocks.names() == ("conv", "ds", "ibn", "fused", "bottleneck")
    assert set(blocks.searchable()) == {"conv", "ibn", "fused"}
    for t in blocks.REGISTRY.values():
        assert t.doc and "block" in t.uses and callable(t.emit)


def test_register_rejects_bad_entries():
    with pytest.raises(ValueError, match="already registered"):
        blocks.register("ibn", blocks.REGISTRY["ibn"].emit, doc="x")
    with pytest.raises(ValueError, match="letters and digits"):
        blocks.register("my_block", blocks.REGISTRY["ibn"].emit, doc="x")
    with pytest.raises(ValueError, match="unknown decisions"):
        blocks.register("mine", blocks.REGISTRY["ibn"].emit, doc="x", uses=("width",))
    with pytest.raises(ValueError, match="unknown block type 'nope'"):
        blocks.get("nope")


def test_a_new_block_type_reaches_grammar_graph_space_params_and_tables(dilated):
    b = decode_block("twoconv_r2_k5_s2_c48")
    assert b.type == "twoconv" and b.encode() == "twoconv_r2_k5_s2_e1_c48"
    arch = decode_arch("name=t;res=64;classes=10;act=relu;stem=conv_r1_k3_s2_e1_c16;"
                       "blocks=twoconv_r2_k5_s2_e1_c48;head=0")
    g = from_arch(arch)
    assert [o.name for o in g.ops if o.name.startswith("stage1")] == [
        "stage1_block1_kxk", "stage1_block1_pw", "stage1_block2_kxk", "stage1_block2_pw"]
    assert g.op("stage1_block1_kxk").out_shape == (16, 16, 48)
    # the params schema and the search space accept it; unused decisions are normalised away
    section = params.load_dict({"search_space": {"block_types": ["twoconv", "ibn"]}})["search_space"]
    space = SearchSpace.from_params(section)
    rng = np.random.default_rng(0)
    values = {**space.sample_values(rng), "s1_block": "twoconv", "s1_expand_ratio": 8}
    a1 = space.from_values(values)
    a2 = space.from_values({**values, "s1_expand_ratio": 4})
    assert a1.blocks[0].type == "twoconv" and a1 == a2
    row = tables.arch_row(a1)
    assert row["n_twoconv"] == sum(b.repeats for b in a1.blocks if b.type == "twoconv") > 0
    assert "twoconv" in set(tables.vocabulary_frame().type)


def test_unregistered_type_is_rejected_everywhere():
    with pytest.raises(ValueError, match="unknown block type 'twoconv'"):
        decode_block("twoconv_r1_k3_s1_c8")
    with pytest.raises(params.ParamsError, match="block_types"):
        params.load_dict({"search_space": {"block_types": ["twoconv"]}})


def test_a_new_block_type_builds_in_keras(dilated):
    from accelnas.space.builder import build

    arch = decode_arch("name=t;res=32;classes=10;act=relu;stem=conv_r1_k3_s2_e1_c16;"
                       "blocks=twoconv_r2_k3_s2_e1_c24;head=0")
    model = build(arch)
    assert model.count_params() == from_arch(arch).params
    assert {"stage1_block1_kxk", "stage1_block2_pw"} <= {layer.name for layer in model.layers}
