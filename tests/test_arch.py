import math

import numpy as np
import pytest

from accelnas.space.arch import (ArchSpec, BlockSpec, decode_arch, decode_block, make_divisible, scale)
from accelnas.space import zoo


@pytest.mark.parametrize("text", [
    "ibn_r4_k5_s2_e8_c96", "fused_r2_k3_s2_e8_c32", "conv_r1_k3_s2_e1_c32", "ds_r1_k3_s1_e1_c16",
    "bottleneck_r3_k3_s1_e4_c256", "ibn_r1_k3_s1_e3.667_c24_se0.25_ahswish_noskip",
])
def test_block_roundtrip_text(text):
    assert decode_block(text).encode() == text


def test_block_defaults_and_fields():
    b = decode_block("ibn_k5_c40")
    assert (b.type, b.repeats, b.kernel, b.stride, b.expand_ratio, b.out_channels) == ("ibn", 1, 5, 1, 1.0, 40)
    assert b.se_ratio == 0 and b.activation is None and b.skip


def test_block_roundtrip_random():
    rng = np.random.default_rng(0)
    for _ in range(300):
        b = BlockSpec(type=str(rng.choice(["conv", "ds", "ibn", "fused", "bottleneck"])),
                      out_channels=int(rng.integers(1, 2048)), repeats=int(rng.integers(1, 9)),
                      kernel=int(rng.choice([1, 3, 5, 7])), stride=int(rng.choice([1, 2])),
                      expand_ratio=float(rng.choice([1, 2.5, 3.6666666666666665, 6, 8])),
                      se_ratio=float(rng.choice([0, 0.25, 0.0416])),
                      activation=rng.choice([None, "relu", "relu6", "hswish", "swish"]),
                      skip=bool(rng.integers(0, 2)))
        assert decode_block(b.encode()) == b


@pytest.mark.parametrize("text,needle", [
    ("ibn_r4_k5_s2_x8_c96", "'x8'"),          # unknown token
    ("ibn_r4_k5_s2_e8", "c<int>"),             # missing channels
    ("mbconv_r1_c16", "'mbconv'"),             # unknown type
    ("ibn_r2_r3_c16", "'r3'"),                 # repeated token
    ("ibn_rx_c16", "'rx'"),                    # malformed number
    ("ibn_c16_agelu", "gelu"),                 # unknown activation
    ("ibn_k4_c16", "odd"),                     # even kernel
    ("ibn_s3_c16", "stride"),                  # bad stride
    ("", "empty"),
])
def test_block_strict_errors(text, needle):
    with pytest.raises(ValueError, match=None) as e:
        decode_block(text)
    assert needle in str(e.value)


@pytest.mark.parametrize("name", zoo.names())
def test_arch_roundtrip(name):
    a = zoo.get(name)
    assert decode_arch(a.encode()) == a


def test_arch_strict_errors():
    text = zoo.get("mobilenet_v2").encode()
    with pytest.raises(ValueError, match="'colour'"):
        decode_arch(text + ";colour=red")
    with pytest.raises(ValueError, match="'res'"):
        decode_arch(text.replace("res=224", "res=abc"))
    with pytest.raises(ValueError, match="stem"):
        decode_arch("res=224;blocks=ibn_c16")
    with pytest.raises(ValueError, match="'zz'"):
        decode_arch(text.replace("ibn_r2_k3_s2_e6_c24", "ibn_r2_k3_s2_e6_c24_zz"))


def test_archspec_validation():
    stem = decode_block("conv_k3_s2_c32")
    with pytest.raises(ValueError, match="stem"):
        ArchSpec("x", decode_block("ibn_c16"), (decode_block("ibn_c16"),))
    with pytest.raises(ValueError, match="at least one block"):
        ArchSpec("x", stem, ())
    with pytest.raises(ValueError, match="resolution"):
        ArchSpec("x", stem, (decode_block("ibn_c16"),), resolution=4)
    with pytest.raises(ValueError, match="se_style"):
        ArchSpec("x", stem, (decode_block("ibn_c16"),), se_style="other")


@pytest.mark.parametrize("value,expected", [(32, 32), (12, 16), (28.8, 32), (38.4, 40), (18, 24),
                                            (88.008, 88), (4, 8), (1536, 1536), (100, 104)])
def test_make_divisible(value, expected):
    assert make_divisible(value) == expected
    assert make_divisible(value) % 8 == 0 and make_divisible(value) >= 0.9 * value


def test_scale_rules():
    s = zoo.get("efficientnet_edgetpu_s")
    l = scale(s, 1.2, 1.4, 300)
    assert l.resolution == 300 and l.stem.out_channels == 40 and l.head_channels == 1536
    assert [b.repeats for b in l.blocks] == [math.ceil(b.repeats * 1.4) for b in s.blocks]
    assert [b.out_channels for b in l.blocks] == [make_divisible(b.out_channels * 1.2) for b in s.blocks]
    lite = scale(zoo.get("efficientnet_lite0"), 1.4, 1.8, 300, fix_stem_head=True)
    assert lite.stem.out_channels == 32 and lite.head_channels == 1280
    assert lite.blocks[0].repeats == 1 and lite.blocks[-1].repeats == 1 and lite.blocks[1].repeats == 4
    assert scale(s, 0.75, scale_head=False).head_channels == 1280
    with pytest.raises(ValueError):
        scale(s, 0, 1)
