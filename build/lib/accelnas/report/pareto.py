"""Pareto analysis of accuracy-vs-latency results: dominance, fronts, hypervolume.

Pure module (numpy and pandas only, no TensorFlow).

Conventions shared by every function:

* ``points`` is array-like of shape ``(n, k)``: one row per model, one column per objective.
  The default column order is ``(accuracy, latency_ms)``, with ``maximize=(True, False)``:
  accuracy is maximized, latency minimized. ``maximize`` gives the direction of each column.
* **Dominance.** ``a`` dominates ``b`` when ``a`` is at least as good as ``b`` on every objective
  and strictly better on at least one. Identical points therefore do not dominate each other:
  duplicates on the front are *all* kept (and share a front rank).
* **NaN is rejected** with a ValueError naming the rows: a NaN objective (a failed or diverged
  trial) has no place in a dominance relation, so drop those rows first. `front_frame` does that
  for you and says so in its docstring. Infinite values are allowed (an undeployable model with
  ``latency_ms = inf`` is simply dominated).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_MAXIMIZE = (True, False)  # (accuracy, latency_ms)

# Rows compared at once in `pareto_mask`: bounds the temporary (chunk, n, k) array to a few MB.
_CHUNK_ELEMENTS = 4_000_000


def _as_points(points, maximize: Sequence[bool], what: str = "points") -> tuple[np.ndarray, np.ndarray]:
    """Validate ``points`` and return ``(points_as_float_2d, signs)`` with signs +1 / -1."""
    maximize = tuple(bool(m) for m in maximize)
    if not maximize:
        raise ValueError("maximize must name the direction of at least one objective, e.g. (True, False)")
    k = len(maximize)
    arr = np.asarray(points, dtype=float)
    if arr.size == 0:
        return np.empty((0, k)), np.where(maximize, 1.0, -1.0)
    if arr.ndim == 1 and k == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != k:
        raise ValueError(
            f"{what} must have shape (n, {k}) to match maximize={maximize}, got shape {arr.shape}")
    bad = np.flatnonzero(np.isnan(arr).any(axis=1))
    if bad.size:
        raise ValueError(
            f"{what} has NaN in row(s) {bad[:10].tolist()}{' ...' if bad.size > 10 else ''}; "
            "drop failed or unscored rows before a Pareto analysis (front_frame does this for a DataFrame)")
    return arr, np.where(maximize, 1.0, -1.0)


def dominates(a, b, maximize: Sequence[bool] = DEFAULT_MAXIMIZE, margin: Sequence[float] | None = None,
              *, require_all: bool = False) -> bool:
    """Whether ``a`` dominates ``b``, optionally beyond a noise margin.

    With ``margin = m`` (one non-negative value per objective, in that objective's units, e.g. the
    seed-to-seed spread of accuracy and 0 ms for a deterministic latency model), ``a`` dominates
    ``b`` when

    * ``a`` is at least as good as ``b`` on every objective, and
    * on at least one objective ``a`` is better than ``b`` by **more than** ``m`` on it
      (``|a_i - b_i| > m_i`` in the good direction).

    With ``require_all=True`` the second condition must hold on *every* objective ("higher
    accuracy at lower latency, each beyond its spread"). ``margin=None`` (all zeros) is ordinary
    Pareto dominance.

    Args:
        a: objective values of the first model, shape ``(k,)``.
        b: objective values of the second model, shape ``(k,)``.
        maximize: per objective, True when larger is better. Default ``(accuracy, latency_ms)``.
        margin: per objective, the difference that counts as "better", >= 0. None: zeros.
        require_all: demand a better-beyond-margin difference on every objective.

    Returns:
        True when ``a`` dominates ``b`` under that rule.

    Raises:
        ValueError: on mismatched lengths, a negative or NaN margin, or NaN objective values.
    """
    a_arr, b_arr = np.ravel(np.asarray(a, dtype=float)), np.ravel(np.asarray(b, dtype=float))
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"a and b need the same number of objectives, got {a_arr.size} and {b_arr.size}")
    pts, sign = _as_points(np.vstack([a_arr, b_arr]), maximize, "a and b")
    k = sign.size
    m = np.zeros(k) if margin is None else np.asarray(margin, dtype=float).ravel()
    if m.shape != (k,):
        raise ValueError(f"margin needs one value per objective ({k}), got {margin!r}")
    if np.isnan(m).any() or (m < 0).any():
        raise ValueError(f"margin values must be >= 0 (in each objective's units), got {margin!r}")
    diff = (pts[0] - pts[1]) * sign          # > 0: a is better on that objective
    if not (diff >= 0).all():
        return False
    beyond = diff > m
    return bool(beyond.all() if require_all else beyond.any())


def pareto_mask(points, maximize: Sequence[bool] = DEFAULT_MAXIMIZE) -> np.ndarray:
    """Boolean mask of the non-dominated points (the first Pareto front).

    Duplicated points on the front are all True (they do not dominate each other).

    Args:
        points: array-like, shape ``(n, k)``; default columns ``(accuracy, latency_ms)``.
        maximize: per column, True when larger is better.

    Returns:
        Bool array of shape ``(n,)``; empty for empty input.

    Raises:
        ValueError: on a shape that does not match ``maximize`` or a NaN value.
    """
    pts, sign = _as_points(points, maximize)
    s = pts * sign                                   # larger is better on every column now
    n, k = s.shape
    mask = np.ones(n, dtype=bool)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * k))
    for lo in range(0, n, chunk):
        row = s[lo:lo + chunk, None, :]              # (c, 1, k): candidates
        ge = (s[None, :, :] >= row).all(axis=2)      # (c, n): other point at least as good
        gt = (s[None, :, :] > row).any(axis=2)       # (c, n): ... and strictly better somewhere
        mask[lo:lo + chunk] = ~(ge & gt).any(axis=1)
    return mask


def nondominated_sort(points, maximize: Sequence[bool] = DEFAULT_MAXIMIZE) -> np.ndarray:
    """Front rank of each point: 0 for the non-dominated front, 1 for the front left after removing
    it, and so on (NSGA-II's non-dominated sorting).

    Builds an ``(n, n)`` boolean domination matrix: memory grows as n**2 bytes (10 000 points:
    about 100 MB per temporary).

    Args:
        points: array-like, shape ``(n, k)``; default columns ``(accuracy, latency_ms)``.
        maximize: per column, True when larger is better.

    Returns:
        Int array of shape ``(n,)``; duplicates share a rank.

    Raises:
        ValueError: on a shape that does not match ``maximize`` or a NaN value.
    """
    pts, sign = _as_points(points, maximize)
    s = pts * sign
    n = s.shape[0]
    ranks = np.full(n, -1, dtype=int)
    if n == 0:
        return ranks
    ge = np.ones((n, n), dtype=bool)
    gt = np.zeros((n, n), dtype=bool)
    for col in s.T:                                  # one (n, n) temporary per objective
        ge &= col[:, None] >= col[None, :]
        gt |= col[:, None] > col[None, :]
    dom = ge & gt                                    # dom[i, j]: i dominates j
    n_dominators = dom.sum(axis=0)
    front = np.flatnonzero(n_dominators == 0)
    rank = 0
    while front.size:
        ranks[front] = rank
        n_dominators = n_dominators - dom[front].sum(axis=0)
        n_dominators[ranks >= 0] = -1                # already ranked: never selected again
        front = np.flatnonzero(n_dominators == 0)
        rank += 1
    return ranks


def hypervolume_2d(points, reference, maximize: Sequence[bool] = DEFAULT_MAXIMIZE) -> float:
    """Area dominated by a set of 2-objective points and bounded by a reference point.

    The area is that of the union of the rectangles spanned by each point and ``reference``. Only
    points strictly better than the reference on both objectives contribute; the others add
    nothing (a point equal to the reference on one axis would span zero area anyway). The units
    are the product of the objectives' units (e.g. accuracy x ms).

    Args:
        points: array-like, shape ``(n, 2)``; default columns ``(accuracy, latency_ms)``.
        reference: the worst acceptable point, shape ``(2,)``, e.g. ``(0.0, latency_cap_ms)``.
        maximize: per column, True when larger is better.

    Returns:
        The hypervolume (0.0 for an empty set or no point better than the reference).

    Raises:
        ValueError: on a shape other than ``(n, 2)``, a NaN value, or a NaN reference.
    """
    if len(tuple(maximize)) != 2:
        raise ValueError(f"hypervolume_2d needs exactly 2 objectives, got maximize={tuple(maximize)}")
    pts, sign = _as_points(points, maximize)
    ref = np.asarray(reference, dtype=float).ravel()
    if ref.shape != (2,) or np.isnan(ref).any():
        raise ValueError(f"reference must be two numbers (one per objective), got {reference!r}")
    s, r = pts * sign, ref * sign
    s = s[(s > r).all(axis=1)]
    if s.shape[0] == 0:
        return 0.0
    s = s[np.lexsort((-s[:, 1], -s[:, 0]))]          # first objective descending
    area, y_covered = 0.0, r[1]
    for x, y in s:
        if y > y_covered:                            # adds the strip (r0..x) x (y_covered..y)
            area += (x - r[0]) * (y - y_covered)
            y_covered = y
    return float(area)


def front_frame(df, x: str = "latency_ms", y: str = "accuracy",
                maximize: Sequence[bool] = (False, True)):
    """The Pareto-front rows of a DataFrame, sorted by ``x`` ascending.

    Rows with NaN in ``x`` or ``y`` (failed or unscored trials) are dropped before the analysis.
    Duplicated front rows are all kept. The original index is preserved.

    Args:
        df: a pandas DataFrame, e.g. the trials table.
        x: column plotted on the horizontal axis (default ``latency_ms``).
        y: column plotted on the vertical axis (default ``accuracy``).
        maximize: directions of ``(x, y)``; default latency minimized, accuracy maximized.

    Returns:
        A new DataFrame with the front rows, sorted by ``x`` then ``y``.

    Raises:
        ValueError: when ``x`` or ``y`` is not a column of ``df``.
    """
    missing = [c for c in (x, y) if c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the DataFrame; available: {list(df.columns)}")
    clean = df.dropna(subset=[x, y])
    mask = pareto_mask(clean[[x, y]].to_numpy(dtype=float), maximize)
    return clean[mask].sort_values([x, y], kind="stable").copy()
