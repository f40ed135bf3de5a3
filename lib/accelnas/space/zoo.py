"""Reference architectures as data (block strings), with their published figures.

`get(name)` returns an `ArchSpec` (pure); `build(name, ...)` returns a Keras model (imports TF).
The structures follow keras.applications (MobileNetV2/V3, ResNet50, EfficientNet-B0), Google's
EdgeTPU model READMEs and docs/edgetpu.md section 4 (EfficientNet-EdgeTPU, MobilenetEdgeTPU, -lite).
"""
from __future__ import annotations

from accelnas.space.arch import ArchSpec, arch_from_strings, make_divisible, scale

_RESNET50 = arch_from_strings(
    "resnet50", "conv_k7_s2_c64",
    ["bottleneck_r3_k3_s1_e4_c256", "bottleneck_r4_k3_s2_e4_c512",
     "bottleneck_r6_k3_s2_e4_c1024", "bottleneck_r3_k3_s2_e4_c2048"],
    head_channels=0, stem_pool=True, activation="relu")

_MOBILENET_V2 = arch_from_strings(
    "mobilenet_v2", "conv_k3_s2_c32",
    ["ds_r1_k3_s1_e1_c16", "ibn_r2_k3_s2_e6_c24", "ibn_r3_k3_s2_e6_c32", "ibn_r4_k3_s2_e6_c64",
     "ibn_r3_k3_s1_e6_c96", "ibn_r3_k3_s2_e6_c160", "ibn_r1_k3_s1_e6_c320"],
    head_channels=1280, activation="relu6")

_MOBILENET_V3_LARGE = arch_from_strings(
    "mobilenet_v3_large", "conv_k3_s2_c16",
    ["ibn_r1_k3_s1_e1_c16_arelu", "ibn_r1_k3_s2_e4_c24_arelu", "ibn_r1_k3_s1_e3_c24_arelu",
     "ibn_r1_k5_s2_e3_c40_se0.25_arelu", "ibn_r2_k5_s1_e3_c40_se0.25_arelu",
     "ibn_r1_k3_s2_e6_c80", "ibn_r1_k3_s1_e2.5_c80", "ibn_r2_k3_s1_e2.3_c80",
     "ibn_r2_k3_s1_e6_c112_se0.25", "ibn_r1_k5_s2_e6_c160_se0.25", "ibn_r2_k5_s1_e6_c160_se0.25"],
    head_channels=960, pre_logits=1280, activation="hswish", se_style="mobilenetv3")

_MOBILENET_V3_SMALL = arch_from_strings(
    "mobilenet_v3_small", "conv_k3_s2_c16",
    ["ibn_r1_k3_s2_e1_c16_se0.25_arelu", "ibn_r1_k3_s2_e4.5_c24_arelu",
     "ibn_r1_k3_s1_e3.667_c24_arelu", "ibn_r1_k5_s2_e4_c40_se0.25", "ibn_r2_k5_s1_e6_c40_se0.25",
     "ibn_r2_k5_s1_e3_c48_se0.25", "ibn_r1_k5_s2_e6_c96_se0.25", "ibn_r2_k5_s1_e6_c96_se0.25"],
    head_channels=576, pre_logits=1024, activation="hswish", se_style="mobilenetv3")

_EFFICIENTNET_B0 = arch_from_strings(
    "efficientnet_b0", "conv_k3_s2_c32",
    ["ibn_r1_k3_s1_e1_c16_se0.25", "ibn_r2_k3_s2_e6_c24_se0.25", "ibn_r2_k5_s2_e6_c40_se0.25",
     "ibn_r3_k3_s2_e6_c80_se0.25", "ibn_r3_k5_s1_e6_c112_se0.25", "ibn_r4_k5_s2_e6_c192_se0.25",
     "ibn_r1_k3_s1_e6_c320_se0.25"],
    head_channels=1280, activation="swish", se_style="efficientnet")

_EFFICIENTNET_LITE0 = arch_from_strings(
    "efficientnet_lite0", "conv_k3_s2_c32",
    ["ibn_r1_k3_s1_e1_c16", "ibn_r2_k3_s2_e6_c24", "ibn_r2_k5_s2_e6_c40", "ibn_r3_k3_s2_e6_c80",
     "ibn_r3_k5_s1_e6_c112", "ibn_r4_k5_s2_e6_c192", "ibn_r1_k3_s1_e6_c320"],
    head_channels=1280, activation="relu6")

_EFFICIENTNET_EDGETPU_S = arch_from_strings(
    "efficientnet_edgetpu_s", "conv_k3_s2_c32",
    ["fused_r1_k3_s1_e4_c24_noskip", "fused_r2_k3_s2_e8_c32", "fused_r4_k3_s2_e8_c48",
     "ibn_r5_k5_s2_e8_c96", "ibn_r4_k5_s1_e8_c144", "ibn_r2_k5_s2_e8_c192"],
    head_channels=1280, activation="relu")

_MOBILENET_EDGETPU = arch_from_strings(
    "mobilenet_edgetpu", "conv_k3_s2_c32",
    # slim's first block (expansion 1) is only a 1x1 projection 32 -> 16; here a 1x1 fused conv.
    ["fused_r1_k1_s1_e1_c16_noskip", "fused_r1_k3_s2_e8_c32", "fused_r3_k3_s1_e4_c32",
     "fused_r1_k3_s2_e8_c48", "fused_r3_k3_s1_e4_c48", "ibn_r1_k3_s2_e8_c96", "ibn_r3_k3_s1_e4_c96",
     "ibn_r1_k3_s1_e8_c96_noskip", "ibn_r3_k3_s1_e4_c96", "ibn_r1_k5_s2_e8_c160",
     "ibn_r3_k5_s1_e4_c160", "ibn_r1_k3_s1_e8_c192"],
    head_channels=1280, activation="relu")



def _edgetpu(width: float, depth: float, resolution: int, name: str) -> ArchSpec:
    """EfficientNet-EdgeTPU at (width, depth, resolution).

    TF's builder expands the first repeat of stage 1 from its *declared* input, round(24 * width)
    channels, not from the stem's real output (32 * width): 4 x 24 = 96 channels at S, not 128.
    That repeat therefore gets the expand ratio that gives the same layer on the real input.
    """
    a = scale(_EFFICIENTNET_EDGETPU_S, width, depth, resolution, name=name)
    first = a.blocks[0]
    declared_in = make_divisible(24 * width)
    head = first.replace(repeats=1, expand_ratio=first.expand_ratio * declared_in / a.stem.out_channels)
    rest = (first.replace(repeats=first.repeats - 1),) if first.repeats > 1 else ()
    return a.replace(blocks=(head, *rest, *a.blocks[1:]))


# EfficientNet-lite (width, depth, resolution): lite README / efficientnet_lite_builder.
_LITE = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280),
         4: (1.4, 1.8, 300)}

ZOO: dict[str, ArchSpec] = {
    "mobilenet_v2": _MOBILENET_V2,
    "mobilenet_v3_small": _MOBILENET_V3_SMALL,
    "mobilenet_v3_large": _MOBILENET_V3_LARGE,
    "resnet50": _RESNET50,
    "efficientnet_b0": _EFFICIENTNET_B0,
    # docs/edgetpu.md section 4: M and L reuse EfficientNet-B1 / B3 coefficients on the S base.
    "efficientnet_edgetpu_s": _edgetpu(1.0, 1.0, 224, "efficientnet_edgetpu_s"),
    "efficientnet_edgetpu_m": _edgetpu(1.0, 1.1, 240, "efficientnet_edgetpu_m"),
    "efficientnet_edgetpu_l": _edgetpu(1.2, 1.4, 300, "efficientnet_edgetpu_l"),
    "mobilenet_edgetpu": _MOBILENET_EDGETPU,
    "mobilenet_edgetpu_075": scale(_MOBILENET_EDGETPU, 0.75, scale_head=False,
                                   name="mobilenet_edgetpu_075"),
    **{f"efficientnet_lite{i}": scale(_EFFICIENTNET_LITE0, w, d, r, fix_stem_head=True,
                                      name=f"efficientnet_lite{i}")
       for i, (w, d, r) in _LITE.items()},
}

# Published figures at the model's own resolution and 1000 classes. params/macs in units (not M);
# top1 = ImageNet top-1 (%), float unless noted. Sources: docs/edgetpu.md section 4
# (EdgeTPU READMEs, slim mobilenet README), keras.applications documentation table, and the
# MobileNetV3 / EfficientNet papers for MACs.
PUBLISHED: dict[str, dict] = {
    "mobilenet_v2": dict(params=3.5e6, macs=300e6, top1=71.8, source="slim mobilenet README / docs/edgetpu.md section 4"),
    "mobilenet_v3_small": dict(params=2.5e6, macs=56e6, top1=67.4, source="MobileNetV3 paper, Table 3"),
    "mobilenet_v3_large": dict(params=5.4e6, macs=217e6, top1=75.2, source="MobileNetV3 paper, Table 3"),
    "resnet50": dict(params=25.6e6, macs=3.86e9, top1=76.0, source="keras.applications / docs/edgetpu.md section 4"),
    "efficientnet_b0": dict(params=5.3e6, macs=390e6, top1=77.1, source="EfficientNet paper, Table 2"),
    "efficientnet_edgetpu_s": dict(params=5.44e6, macs=1.79e9, top1=77.23, source="docs/edgetpu.md section 4"),
    "efficientnet_edgetpu_m": dict(params=6.90e6, macs=3.01e9, top1=78.69, source="docs/edgetpu.md section 4"),
    "efficientnet_edgetpu_l": dict(params=10.59e6, macs=7.94e9, top1=80.62, source="docs/edgetpu.md section 4"),
    "mobilenet_edgetpu": dict(params=4.0e6, macs=990e6, top1=75.6, source="docs/edgetpu.md section 4 (int8 top-1)"),
    "mobilenet_edgetpu_075": dict(params=2.9e6, macs=624e6, top1=None, source="docs/edgetpu.md section 4"),
    # tensorflow/tpu models/official/efficientnet/lite README (params rounded to 0.1 M; its MAdds
    # come out 3-6 % above the conv/FC multiply-accumulates counted here, for all five models)
    "efficientnet_lite0": dict(params=4.7e6, macs=407e6, top1=75.1, source="EfficientNet-lite README"),
    "efficientnet_lite1": dict(params=5.4e6, macs=631e6, top1=76.7, source="EfficientNet-lite README"),
    "efficientnet_lite2": dict(params=6.1e6, macs=899e6, top1=77.6, source="EfficientNet-lite README"),
    "efficientnet_lite3": dict(params=8.2e6, macs=1.44e9, top1=79.8, source="EfficientNet-lite README"),
    "efficientnet_lite4": dict(params=13.0e6, macs=2.64e9, top1=81.5, source="EfficientNet-lite README"),
}


def names() -> list[str]:
    return list(ZOO)


def get(name: str, resolution: int | None = None, num_classes: int | None = None) -> ArchSpec:
    """The ArchSpec of a zoo model, optionally at another resolution / number of classes."""
    try:
        arch = ZOO[name]
    except KeyError:
        raise ValueError(f"unknown zoo model {name!r}; available: {', '.join(ZOO)}") from None
    changes = {}
    if resolution is not None:
        changes["resolution"] = int(resolution)
    if num_classes is not None:
        changes["num_classes"] = int(num_classes)
    return arch.replace(**changes) if changes else arch


def build(name: str, resolution: int | None = None, num_classes: int | None = None, **kwargs):
    """A Keras model of zoo model ``name`` (see `accelnas.space.builder.build` for kwargs)."""
    from accelnas.space.builder import build as _build

    return _build(get(name, resolution, num_classes), **kwargs)
