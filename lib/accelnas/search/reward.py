"""The multi-objective reward of the search (MnasNet; Gupta & Akin 2020 use the same form).

``reward(m) = ACC(m) * (LAT(m) / T) ** w`` with ``w = alpha`` if ``LAT <= T`` else ``beta``
(docs/edgetpu.md section 5). Soft constraint: ``alpha = beta = -0.07`` (a model twice as fast as T earns
``2 ** 0.07``, about 5 % more reward at equal accuracy); hard constraint: ``alpha = 0, beta = -1``
(no bonus under T, reward falls in proportion to the overshoot above it).

Several accelerators: each has its own target ``T_a`` and its factor ``(LAT_a / T_a) ** w_a``;
``combine`` says how the factors meet:

- ``target``: only the target accelerator's factor (the paper's single-device search);
- ``product``: the product of all factors (each accelerator pulls on the reward);
- ``worst``: the smallest factor (the model must be good on every device).

Pure numpy; no TensorFlow.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SOFT = (-0.07, -0.07)
HARD = (0.0, -1.0)
COMBINES = ("target", "product", "worst")


def latency_factor(latency_ms, target_ms, alpha: float = SOFT[0], beta: float = SOFT[1]):
    """``(latency_ms / target_ms) ** w``, ``w = alpha`` at or under the target, else ``beta``.

    Array-friendly (numpy broadcasting); a scalar in gives a float out.

    Raises:
        ValueError: a non-positive target or latency, or an exponent above 0 (a reward that grows
            with latency).
    """
    lat = np.asarray(latency_ms, dtype=float)
    t = np.asarray(target_ms, dtype=float)
    if np.any(t <= 0) or np.any(~np.isfinite(t)):
        raise ValueError(f"target latency must be a positive number of ms, got {target_ms!r}")
    if np.any(lat <= 0) or np.any(np.isnan(lat)):
        raise ValueError(f"latency must be a positive number of ms, got {latency_ms!r}")
    if alpha > 0 or beta > 0:
        raise ValueError(f"alpha and beta must be <= 0 (MnasNet soft: -0.07, -0.07; hard: 0, -1), "
                         f"got alpha={alpha}, beta={beta}")
    ratio = lat / t
    out = np.where(ratio <= 1.0, ratio ** alpha, ratio ** beta)
    return float(out) if out.ndim == 0 else out


def mnas_reward(accuracy, latency_ms, target_ms, alpha: float = SOFT[0], beta: float = SOFT[1]):
    """MnasNet's reward ``accuracy * (latency_ms / target_ms) ** w`` (see the module docstring).

    Args:
        accuracy: top-1 accuracy in [0, 1] (scalar or array).
        latency_ms: latency on the accelerator, ms (scalar or array).
        target_ms: the target latency T, ms.
        alpha: exponent at or under T (soft: -0.07; hard: 0).
        beta: exponent above T (soft: -0.07; hard: -1).

    Returns:
        The reward (float for scalar inputs, else an array).
    """
    out = _accuracy(accuracy) * latency_factor(latency_ms, target_ms, alpha, beta)
    return float(out) if np.ndim(out) == 0 else out


def _accuracy(accuracy):
    acc = np.asarray(accuracy, dtype=float)
    if np.any(np.isnan(acc)) or np.any(acc < 0) or np.any(acc > 1):
        raise ValueError(f"accuracy must be in [0, 1], got {accuracy!r}")
    return acc


def multi_reward(accuracy: float, latencies_ms: Mapping[str, float], targets_ms: Mapping[str, float],
                 alpha: float = SOFT[0], beta: float = SOFT[1], combine: str = "target",
                 target: str | None = None) -> float:
    """The reward over several accelerators.

    Args:
        accuracy: top-1 accuracy in [0, 1].
        latencies_ms: latency per accelerator name, ms.
        targets_ms: target latency per accelerator name, ms (every accelerator used needs one).
        alpha, beta: as in `mnas_reward`.
        combine: ``target``, ``product`` or ``worst`` (module docstring).
        target: the accelerator of ``combine="target"``.

    Returns:
        The reward.
    """
    return float(_accuracy(accuracy)) * latency_part(latencies_ms, targets_ms, alpha, beta,
                                                     combine, target)


def used_accelerators(targets_ms: Mapping[str, float], combine: str, target: str | None) -> list[str]:
    """The accelerators whose latency enters the reward under ``combine``."""
    if combine not in COMBINES:
        raise ValueError(f"unknown reward combine {combine!r}; choose from {', '.join(COMBINES)}")
    if combine == "target":
        if target is None or target not in targets_ms:
            raise ValueError(f"combine='target' needs target= one of {sorted(targets_ms)}, "
                             f"got {target!r}")
        return [target]
    if not targets_ms:
        raise ValueError("no latency targets given")
    return sorted(targets_ms)


def latency_part(latencies_ms: Mapping[str, float], targets_ms: Mapping[str, float],
                         alpha: float = SOFT[0], beta: float = SOFT[1], combine: str = "target",
                         target: str | None = None) -> float:
    """The latency part of `multi_reward` (reward = accuracy x this factor)."""
    names = used_accelerators(targets_ms, combine, target)
    missing = [n for n in names if n not in latencies_ms]
    if missing:
        raise ValueError(f"no latency for accelerator(s) {missing}; got {sorted(latencies_ms)}")
    factors = [latency_factor(latencies_ms[n], targets_ms[n], alpha, beta) for n in names]
    return float(min(factors)) if combine == "worst" else float(np.prod(factors))
