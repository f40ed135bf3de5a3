"""EfficientNet compound scaling toward latency targets.

Pure module (no TensorFlow). Builds on `accelnas.space.arch.scale`, which owns the rounding of channels
(``make_divisible``) and of repeats (``ceil`` per stage).

Compound scaling (Tan & Le, EfficientNet, 2019) grows a base network with one knob ``phi``::

    depth_mult = alpha ** phi      width_mult = beta ** phi      resolution_mult = gamma ** phi

under the constraint ``alpha * beta**2 * gamma**2 ~= 2`` (FLOPs grow by about ``2 ** phi``) with
``alpha, beta, gamma >= 1``. EfficientNet's grid search found ``(1.2, 1.1, 1.15)``
(`EFFICIENTNET_COEFFS`).

Rounding. Depth and width are rounded by `accelnas.space.arch.scale` (ceil per stage; multiples of 8
channels). The resolution ``base_resolution * gamma ** phi`` is rounded to the nearest multiple of
``resolution_divisor`` pixels (default 8, friendly to the Edge TPU's tiling; 1: plain rounding),
never moving against ``phi`` (see `round_resolution`). ``phi = 0`` returns the base resolution
untouched.

Depth uses ``ceil`` per stage, so the smallest positive ``phi`` already adds one repeat to every
stage: latency jumps between ``phi = 0`` and ``phi = 0+``, and a target between the two is met by
the base itself (`phi_for_latency` returns 0).

The published EfficientNet-B1..B7 and EfficientNet-EdgeTPU-M/L multipliers were hand-rounded and
are *not* ``alpha ** phi`` etc. for any single ``phi`` (EdgeTPU-L's 300 px is not a multiple of
8); reproduce them with `variant` and `EDGETPU_VARIANTS` (``docs/edgetpu.md`` section 4).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from accelnas.space.arch import ArchSpec, scale
from accelnas.space.graph import from_arch

EFFICIENTNET_COEFFS = (1.2, 1.1, 1.15)  # (alpha, beta, gamma): EfficientNet's grid-search result

# (width_mult, depth_mult, resolution) of EfficientNet-EdgeTPU-S/M/L on the S base (docs/edgetpu.md section 4:
# M and L reuse EfficientNet-B1's and B3's multipliers).
EDGETPU_VARIANTS = {"S": (1.0, 1.0, 224), "M": (1.0, 1.1, 240), "L": (1.2, 1.4, 300)}


def _check_coeffs(alpha: float, beta: float, gamma: float) -> tuple[float, float, float]:
    coeffs = (float(alpha), float(beta), float(gamma))
    for label, v in zip(("alpha", "beta", "gamma"), coeffs):
        if not (math.isfinite(v) and v >= 1.0):
            raise ValueError(
                f"{label} must be a finite number >= 1 (compound scaling grows every dimension with "
                f"phi; use a negative phi to shrink), got {v!r}")
    return coeffs


def _three(coeffs: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(coeffs)
    if len(values) != 3:
        raise ValueError(f"coeffs must be (alpha, beta, gamma), got {coeffs!r}")
    return values  # type: ignore[return-value]


def multipliers(phi: float, alpha: float, beta: float, gamma: float) -> tuple[float, float, float]:
    """The unrounded ``(depth_mult, width_mult, resolution_mult)`` for one ``phi``.

    Raises:
        ValueError: when ``phi`` is not finite or a coefficient is below 1.
    """
    alpha, beta, gamma = _check_coeffs(alpha, beta, gamma)
    if not math.isfinite(phi):
        raise ValueError(f"phi must be a finite number, got {phi!r}")
    return alpha ** phi, beta ** phi, gamma ** phi


def round_resolution(base_resolution: int, resolution_mult: float, divisor: int = 8) -> int:
    """``base_resolution * resolution_mult`` rounded to the nearest multiple of ``divisor`` pixels.

    The result never lies on the other side of the base than the multiplier: for
    ``resolution_mult > 1`` it is at least the first multiple >= the base (35 px * 1.01 -> 40, not
    32), for ``< 1`` at most the last multiple <= the base. It is never below 8 pixels (the
    smallest multiple of ``divisor`` >= 8). ``resolution_mult == 1`` returns the base untouched.
    The rule is monotone in ``resolution_mult``.

    Args:
        base_resolution: input size of the base network, pixels.
        resolution_mult: ``gamma ** phi``.
        divisor: pixels; 1 means plain rounding to an integer.
    """
    if not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f"resolution_divisor must be a positive integer (pixels), got {divisor!r}")
    if resolution_mult == 1.0:
        return int(base_resolution)
    rounded = int(round(base_resolution * resolution_mult / divisor)) * divisor
    if resolution_mult > 1:   # not below the base: at least the first multiple >= base
        rounded = max(rounded, -(-base_resolution // divisor) * divisor)
    else:                     # not above the base: at most the last multiple <= base
        rounded = min(rounded, base_resolution // divisor * divisor)
    return max(rounded, -(-8 // divisor) * divisor)


def variant(arch: ArchSpec, width: float = 1.0, depth: float = 1.0, resolution: int | None = None,
            *, fix_stem_head: bool = False, scale_head: bool = True, name: str | None = None) -> ArchSpec:
    """One scaled variant from explicit multipliers (the published-coefficient path).

    ``variant(s_base, *EDGETPU_VARIANTS["L"])`` gives EfficientNet-EdgeTPU-L's block channels,
    repeats, stem (40) and head (1536) at 300 px.

    Args:
        arch: the base architecture.
        width: channel multiplier (``width_mult``).
        depth: repeat multiplier (``depth_mult``, ceil per stage).
        resolution: input size, pixels; None keeps the base's.
        fix_stem_head: EfficientNet-lite rule (see `accelnas.space.arch.scale`).
        scale_head: False keeps the head channels fixed.
        name: name of the result; None keeps the base's.

    Raises:
        ValueError: on a non-positive multiplier or a resolution below 8 pixels.
    """
    if resolution is not None and (not isinstance(resolution, (int, np.integer)) or resolution < 8):
        raise ValueError(f"resolution must be an integer >= 8 pixels (or None to keep the base's), "
                         f"got {resolution!r}")
    return scale(arch, width, depth, None if resolution is None else int(resolution),
                 fix_stem_head=fix_stem_head, scale_head=scale_head, name=name)


def compound(arch: ArchSpec, phi: float, alpha: float, beta: float, gamma: float,
             base_resolution: int | None = None, *, resolution_divisor: int = 8,
             fix_stem_head: bool = False, scale_head: bool = True, name: str | None = None) -> ArchSpec:
    """Compound-scale ``arch`` by ``phi``: depth ``alpha**phi``, width ``beta**phi``, resolution
    ``base_resolution * gamma**phi`` rounded as the module docstring says.

    ``compound(arch, 0, ...) == arch`` (when ``base_resolution`` is None or the arch's own).

    Args:
        arch: the base architecture.
        phi: the compound coefficient; 0 is the base, negative values shrink it.
        alpha: depth coefficient, >= 1.
        beta: width coefficient, >= 1.
        gamma: resolution coefficient, >= 1.
        base_resolution: pixels that ``phi = 0`` stands for; None: ``arch.resolution``.
        resolution_divisor: the result's resolution is a multiple of this many pixels (unless
            ``phi = 0``).
        fix_stem_head: EfficientNet-lite rule (see `accelnas.space.arch.scale`).
        scale_head: False keeps the head channels fixed.
        name: name of the result; None keeps the base's.

    Returns:
        The scaled `ArchSpec`.

    Raises:
        ValueError: on a non-finite ``phi``, a coefficient below 1 or a bad divisor.
    """
    depth_mult, width_mult, res_mult = multipliers(phi, alpha, beta, gamma)
    base_px = arch.resolution if base_resolution is None else int(base_resolution)
    if base_px < 8:
        raise ValueError(f"base_resolution must be >= 8 pixels, got {base_resolution!r}")
    resolution = round_resolution(base_px, res_mult, resolution_divisor)
    return scale(arch, width_mult, depth_mult, resolution, fix_stem_head=fix_stem_head,
                 scale_head=scale_head, name=name)


def coefficient_grid(alphas: Sequence[float], betas: Sequence[float], gammas: Sequence[float],
                     flops_budget: float = 2.0, tol: float = 0.1) -> list[tuple[float, float, float]]:
    """The ``(alpha, beta, gamma)`` combinations that satisfy EfficientNet's FLOPs constraint.

    A combination is kept when ``|alpha * beta**2 * gamma**2 - flops_budget| <= tol`` (an absolute
    tolerance on the FLOPs growth factor per unit ``phi``) and every coefficient is >= 1.
    EfficientNet's ``(1.2, 1.1, 1.15)`` gives 1.92, inside the default ``2.0 +- 0.1``.

    Args:
        alphas: candidate depth coefficients.
        betas: candidate width coefficients.
        gammas: candidate resolution coefficients.
        flops_budget: the target growth factor of FLOPs per unit ``phi`` (> 1).
        tol: absolute tolerance on that factor (>= 0).

    Returns:
        The kept triples in ``itertools.product(alphas, betas, gammas)`` order (possibly empty).

    Raises:
        ValueError: on a coefficient below 1, ``flops_budget <= 1`` or ``tol < 0``.
    """
    if not (math.isfinite(flops_budget) and flops_budget > 1):
        raise ValueError(
            f"flops_budget must be a finite number > 1 (EfficientNet uses 2.0), got {flops_budget!r}")
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    kept = []
    for a, b, g in itertools.product(alphas, betas, gammas):
        a, b, g = _check_coeffs(a, b, g)
        if abs(a * b * b * g * g - flops_budget) <= tol:
            kept.append((a, b, g))
    return kept


def phi_for_latency(arch: ArchSpec, coeffs: Sequence[float], target_ms: float,
                    latency_fn: Callable[[ArchSpec], float], *, phi_min: float = 0.0,
                    phi_max: float = 4.0, phi_tol: float = 1e-3, grid_steps: int = 32,
                    **compound_kwargs) -> float:
    """The largest ``phi`` whose compound-scaled model fits a latency target.

    Rounding (ceil of repeats, channel multiples, resolution multiples) makes latency a step
    function of ``phi`` that need not be monotone. The search therefore evaluates ``grid_steps + 1``
    evenly spaced ``phi`` in ``[phi_min, phi_max]``, takes the largest one with
    ``latency_fn(...) <= target_ms``, and bisects the grid interval after it down to ``phi_tol``.
    The result ``phi`` fits the target; ``phi + phi_tol`` does not (if the latency is monotone).
    A feasible dip narrower than one grid interval beyond that point can be missed. Each distinct
    scaled architecture is scored once.

    Args:
        arch: the base architecture.
        coeffs: ``(alpha, beta, gamma)``.
        target_ms: the latency target, ms (> 0).
        latency_fn: ``ArchSpec -> latency_ms``, e.g. ``apm_for(as_accelerator("coral")).latency_ms``.
            ``inf`` means "does not fit"; NaN is an error.
        phi_min: lower end of the search (negative values allow variants smaller than the base).
        phi_max: upper end of the search.
        phi_tol: bisection stops when the bracket is this narrow (units of ``phi``).
        grid_steps: number of grid intervals of the coarse scan (>= 1).
        **compound_kwargs: passed to `compound` (``base_resolution``, ``resolution_divisor``,
            ``fix_stem_head``, ``scale_head``).

    Returns:
        ``phi`` (float) in ``[phi_min, phi_max)``.

    Raises:
        ValueError: when even ``phi_min`` exceeds the target, when the target is not reached below
            ``phi_max`` (raise ``phi_max``), on NaN latency or on bad arguments.
    """
    alpha, beta, gamma = _check_coeffs(*_three(coeffs))
    if not (math.isfinite(target_ms) and target_ms > 0):
        raise ValueError(f"target_ms must be a finite latency > 0 ms, got {target_ms!r}")
    if not (math.isfinite(phi_min) and math.isfinite(phi_max) and phi_max > phi_min):
        raise ValueError(f"need finite phi_min < phi_max, got phi_min={phi_min!r}, phi_max={phi_max!r}")
    if not phi_tol > 0:
        raise ValueError(f"phi_tol must be > 0, got {phi_tol!r}")
    if not isinstance(grid_steps, int) or grid_steps < 1:
        raise ValueError(f"grid_steps must be a positive integer, got {grid_steps!r}")

    cache: dict[ArchSpec, float] = {}

    def latency(phi: float) -> float:
        a = compound(arch, phi, alpha, beta, gamma, **compound_kwargs)
        if a not in cache:
            ms = float(latency_fn(a))
            if math.isnan(ms):
                raise ValueError(f"latency_fn returned NaN for {arch.name} at phi={phi:.4g}: "
                                 "return inf for a model that cannot run, a number otherwise")
            cache[a] = ms
        return cache[a]

    grid = np.linspace(phi_min, phi_max, grid_steps + 1)
    lat = np.array([latency(float(p)) for p in grid])
    if lat[0] > target_ms:
        raise ValueError(
            f"target {target_ms:g} ms is out of reach for {arch.name}: already phi_min={phi_min:g} "
            f"takes {lat[0]:.4g} ms; raise the target or lower phi_min (negative phi shrinks the base)")
    last = int(np.flatnonzero(lat <= target_ms)[-1])
    if last == grid_steps:
        raise ValueError(
            f"target {target_ms:g} ms is not reached for {arch.name} below phi_max={phi_max:g} "
            f"({lat[-1]:.4g} ms there); raise phi_max")
    lo, hi = float(grid[last]), float(grid[last + 1])
    while hi - lo > phi_tol:
        mid = 0.5 * (lo + hi)
        if latency(mid) <= target_ms:
            lo = mid
        else:
            hi = mid
    return lo


def scale_to_targets(arch: ArchSpec, coeffs: Sequence[float], targets_ms: Sequence[float],
                     latency_fn: Callable[[ArchSpec], float], names: Sequence[str] = ("S", "M", "L"),
                     **search_kwargs) -> list[dict]:
    """Compound-scaled variants of ``arch`` at latency targets (e.g. -S/-M/-L).

    Each variant is ``compound(arch, phi, *coeffs)`` with ``phi = phi_for_latency(...)`` for its
    target, named ``f"{arch.name}_{name}"``.

    Args:
        arch: the base architecture.
        coeffs: ``(alpha, beta, gamma)``.
        targets_ms: one latency target per variant, ms.
        latency_fn: ``ArchSpec -> latency_ms`` of the target accelerator.
        names: one label per target.
        **search_kwargs: passed to `phi_for_latency` (``phi_min``, ``phi_max``, ``phi_tol``,
            ``grid_steps``) and on to `compound`.

    Returns:
        One dict per target, in order, with keys ``name, target_ms, phi, alpha, beta, gamma,
        depth_mult, width_mult, resolution, latency_ms, macs, params, arch`` (``arch`` is
        `ArchSpec.encode` text; ``depth_mult`` / ``width_mult`` are the unrounded multipliers).
        ``pandas.DataFrame(rows)`` makes the table.

    Raises:
        ValueError: when ``names`` and ``targets_ms`` differ in length or a target is unreachable
            (the message names it).
    """
    targets = list(targets_ms)
    names = list(names)
    if len(names) != len(targets):
        raise ValueError(f"need one name per target: got {len(names)} names {names} for "
                         f"{len(targets)} targets {targets}")
    alpha, beta, gamma = _check_coeffs(*_three(coeffs))
    compound_keys = {"base_resolution", "resolution_divisor", "fix_stem_head", "scale_head"}
    compound_kwargs = {k: v for k, v in search_kwargs.items() if k in compound_keys}
    rows = []
    for label, target in zip(names, targets):
        phi = phi_for_latency(arch, (alpha, beta, gamma), target, latency_fn, **search_kwargs)
        scaled = compound(arch, phi, alpha, beta, gamma, name=f"{arch.name}_{label}", **compound_kwargs)
        depth_mult, width_mult, _ = multipliers(phi, alpha, beta, gamma)
        graph = from_arch(scaled)
        rows.append({
            "name": label, "target_ms": float(target), "phi": phi, "alpha": alpha, "beta": beta,
            "gamma": gamma, "depth_mult": depth_mult, "width_mult": width_mult,
            "resolution": scaled.resolution, "latency_ms": float(latency_fn(scaled)),
            "macs": graph.macs, "params": graph.params, "arch": scaled.encode(),
        })
    return rows


def choose_coefficients(candidates: Sequence[Sequence[float]], accuracies: Sequence[float | None],
                        latencies_ms: Sequence[float], target_ms: float, *, alpha: float = -0.07,
                        beta: float = -0.07) -> tuple[tuple[float, float, float], list[float], str]:
    """Pick compound-scaling coefficients from candidates scored at one phi.

    Each candidate (alpha, beta, gamma) scaled to the probe phi has a proxy accuracy (None: its
    training failed) and a modelled latency; its score is MnasNet's reward at ``target_ms``
    (`accelnas.search.reward.mnas_reward` with exponents ``alpha`` / ``beta``).

    Returns:
        (the best-scoring coefficients, the score per candidate (NaN when not trained), a note).
        When no candidate trained, EfficientNet's `EFFICIENTNET_COEFFS` and a note saying so.
    """
    from accelnas.search.reward import mnas_reward

    if not (len(candidates) == len(accuracies) == len(latencies_ms)):
        raise ValueError("candidates, accuracies and latencies_ms must have one entry per candidate")
    scores = [float(mnas_reward(a, lat, target_ms, alpha, beta)) if a is not None and np.isfinite(a)
              else float("nan") for a, lat in zip(accuracies, latencies_ms)]
    if not any(np.isfinite(scores)):
        return EFFICIENTNET_COEFFS, scores, ("no coefficient candidate trained: using EfficientNet's "
                                             f"{EFFICIENTNET_COEFFS}")
    best = int(np.nanargmax(scores))
    chosen = tuple(float(c) for c in candidates[best])
    return chosen, scores, f"best score {scores[best]:.4f} of {len(candidates)} candidates"
