"""Pinned figures of the zoo at their own resolution and 1000 classes, analytically."""
import pytest

from accelnas.space import graph, zoo

# name -> (params, MACs, which parameter count the source reports, tolerance). Sources: the issue /
# FACTS.md section 4 / keras.applications count_params(). "keras": all Keras weights incl. BN
# statistics; "deployed": weights + one bias per channel after BN folding (slim's trainable count,
# its BN has no scale).
PINNED = {
    "efficientnet_edgetpu_s": (5.44e6, 1.79e9, "keras", 0.02),
    "efficientnet_edgetpu_m": (6.90e6, 3.01e9, "keras", 0.02),
    "efficientnet_edgetpu_l": (10.59e6, 7.94e9, "keras", 0.02),
    "mobilenet_edgetpu": (4.0e6, 990e6, "deployed", 0.02),
    "mobilenet_v2": (3.5e6, 300e6, "keras", 0.02),
    "mobilenet_v3_large": (5.5e6, 217e6, "keras", 0.02),
    "mobilenet_v3_small": (2.55e6, 56e6, "keras", 0.02),
    "resnet50": (25.6e6, 3.86e9, "keras", 0.02),
    "efficientnet_b0": (5.3e6, 386e6, "keras", 0.02),
    # FACTS.md 5 gives "2.9 M / 624 M"; MACs match to 0.1 %, the params figure looks truncated.
    "mobilenet_edgetpu_075": (2.9e6, 624e6, "deployed", 0.03),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_published_counts(name):
    params, macs, count, tol = PINNED[name]
    g = graph.from_arch(zoo.get(name))
    got = g.params if count == "keras" else g.deployed_params
    assert abs(got / params - 1) < tol, (name, got)
    assert abs(g.macs / macs - 1) < tol, (name, g.macs)


def test_zoo_complete_and_named():
    expected = {"mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "resnet50", "efficientnet_b0",
                "efficientnet_edgetpu_s", "efficientnet_edgetpu_m", "efficientnet_edgetpu_l",
                "mobilenet_edgetpu", "mobilenet_edgetpu_075",
                *(f"efficientnet_lite{i}" for i in range(5))}
    assert expected <= set(zoo.names())
    for n in zoo.names():
        assert zoo.get(n).name == n


def test_edgetpu_models_are_edgetpu_friendly():
    for n in ("efficientnet_edgetpu_s", "efficientnet_edgetpu_m", "efficientnet_edgetpu_l",
              "mobilenet_edgetpu", *(f"efficientnet_lite{i}" for i in range(5))):
        a = zoo.get(n)
        assert all(b.se_ratio == 0 for b in a.blocks)
        assert {b.activation or a.activation for b in a.blocks} <= {"relu", "relu6"}


def test_resolutions():
    assert [zoo.get(f"efficientnet_lite{i}").resolution for i in range(5)] == [224, 240, 260, 280, 300]
    assert zoo.get("efficientnet_edgetpu_l").resolution == 300


def test_get_overrides_and_unknown():
    a = zoo.get("mobilenet_v2", resolution=32, num_classes=10)
    assert (a.resolution, a.num_classes) == (32, 10)
    with pytest.raises(ValueError, match="mobilenet_v9.*available"):
        zoo.get("mobilenet_v9")
