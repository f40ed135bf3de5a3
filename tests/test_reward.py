import math

import numpy as np
import pytest

from accelnas.search.reward import HARD, SOFT, latency_factor, mnas_reward, multi_reward, used_accelerators


def test_soft_constraint_matches_the_formula():
    # faster than T: a bonus of (L/T)^-0.07; slower: the same exponent
    assert mnas_reward(0.8, 2.5, 5.0, *SOFT) == pytest.approx(0.8 * 0.5 ** -0.07)
    assert mnas_reward(0.8, 10.0, 5.0, *SOFT) == pytest.approx(0.8 * 2.0 ** -0.07)
    assert mnas_reward(0.8, 5.0, 5.0, *SOFT) == pytest.approx(0.8)
    # twice as fast is worth about 5 % of accuracy
    assert mnas_reward(0.8, 2.5, 5.0) / mnas_reward(0.8, 5.0, 5.0) == pytest.approx(2 ** 0.07)


def test_hard_constraint_no_bonus_under_target_linear_penalty_over_it():
    assert mnas_reward(0.7, 1.0, 5.0, *HARD) == pytest.approx(0.7)
    assert mnas_reward(0.7, 4.99, 5.0, *HARD) == pytest.approx(0.7)
    assert mnas_reward(0.7, 10.0, 5.0, *HARD) == pytest.approx(0.35)


def test_vectorised_and_monotone():
    lat = np.array([1.0, 2.0, 5.0, 8.0, 20.0])
    r = mnas_reward(0.5, lat, 5.0)
    assert isinstance(r, np.ndarray) and r.shape == (5,)
    assert np.all(np.diff(r) < 0)  # slower is always worse at equal accuracy
    assert np.all(np.diff(mnas_reward(np.array([0.1, 0.2, 0.3]), 3.0, 5.0)) > 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(accuracy=1.2, latency_ms=1.0, target_ms=1.0), "accuracy"),
    (dict(accuracy=float("nan"), latency_ms=1.0, target_ms=1.0), "accuracy"),
    (dict(accuracy=0.5, latency_ms=0.0, target_ms=1.0), "latency"),
    (dict(accuracy=0.5, latency_ms=1.0, target_ms=-1.0), "target"),
    (dict(accuracy=0.5, latency_ms=1.0, target_ms=1.0, alpha=0.1), "alpha and beta"),
])
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mnas_reward(**kwargs)


def test_multi_accelerator_combines():
    lat = {"coral": 10.0, "pixel4": 1.8}
    tgt = {"coral": 5.0, "pixel4": 3.6}
    fc, fp = latency_factor(10.0, 5.0), latency_factor(1.8, 3.6)
    assert multi_reward(0.6, lat, tgt, combine="target", target="coral") == pytest.approx(0.6 * fc)
    assert multi_reward(0.6, lat, tgt, combine="target", target="pixel4") == pytest.approx(0.6 * fp)
    assert multi_reward(0.6, lat, tgt, combine="product") == pytest.approx(0.6 * fc * fp)
    assert multi_reward(0.6, lat, tgt, combine="worst") == pytest.approx(0.6 * min(fc, fp))
    assert used_accelerators(tgt, "worst", None) == ["coral", "pixel4"]


def test_multi_reward_errors_name_the_problem():
    with pytest.raises(ValueError, match="combine"):
        multi_reward(0.5, {"coral": 1.0}, {"coral": 1.0}, combine="mean")
    with pytest.raises(ValueError, match="target="):
        multi_reward(0.5, {"coral": 1.0}, {"coral": 1.0}, combine="target", target="tpu")
    with pytest.raises(ValueError, match="no latency for accelerator"):
        multi_reward(0.5, {"coral": 1.0}, {"coral": 1.0, "pixel4": 2.0}, combine="product")


def test_reward_is_pure_python_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, accelnas.search.reward; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert math.isfinite(mnas_reward(0.5, 1.0, 1.0))
