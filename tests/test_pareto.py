import numpy as np
import pandas as pd
import pytest

from accelnas.report.pareto import dominates, front_frame, hypervolume_2d, nondominated_sort, pareto_mask

# (accuracy, latency_ms): the defaults maximize accuracy and minimize latency.
POINTS = np.array([
    [0.90, 10.0],   # 0 front
    [0.80, 5.0],    # 1 front
    [0.70, 2.0],    # 2 front
    [0.85, 12.0],   # 3 dominated by 0
    [0.60, 6.0],    # 4 dominated by 1 and 5 (so front 2)
    [0.70, 2.5],    # 5 dominated by 2 (equal accuracy, slower)
    [0.50, 20.0],   # 6 dominated by 4 among others (front 3)
])


def test_pure_module():
    import accelnas.report.pareto as mod
    assert "tensorflow" not in open(mod.__file__).read()


def test_mask_default_directions():
    assert pareto_mask(POINTS).tolist() == [True, True, True, False, False, False, False]


def test_mask_directions_flip_the_front():
    # maximize both: the most accurate and the slowest points win
    assert pareto_mask(POINTS, (True, True)).tolist() == [True, False, False, True, False, False, True]
    # minimize both: the cheapest latency, the lowest accuracy, and 4 (nothing below 0.6 is faster)
    assert pareto_mask(POINTS, (False, False)).tolist() == [False, False, True, False, True, False, True]


def test_mask_duplicates_are_all_kept():
    pts = [[0.9, 10.0], [0.9, 10.0], [0.8, 11.0]]
    assert pareto_mask(pts).tolist() == [True, True, False]
    assert nondominated_sort(pts).tolist() == [0, 0, 1]


def test_mask_single_objective_and_many_objectives():
    assert pareto_mask([3.0, 1.0, 3.0], (True,)).tolist() == [True, False, True]
    pts = [[1, 1, 1], [0, 0, 2], [0, 0, 0]]
    assert pareto_mask(pts, (True, True, True)).tolist() == [True, True, False]


def test_mask_chunking_matches_bruteforce(monkeypatch):
    import accelnas.report.pareto as mod

    rng = np.random.default_rng(0)
    pts = rng.normal(size=(300, 2)).round(1)        # rounding makes ties
    full = pareto_mask(pts)
    monkeypatch.setattr(mod, "_CHUNK_ELEMENTS", 10)  # one row per chunk
    assert (pareto_mask(pts) == full).all()
    brute = [not any(dominates(q, p) for q in pts) for p in pts]
    assert full.tolist() == brute


def test_empty_inputs():
    assert pareto_mask([]).shape == (0,)
    assert pareto_mask(np.empty((0, 2))).dtype == bool
    assert nondominated_sort([]).shape == (0,)
    assert hypervolume_2d([], reference=(0.0, 100.0)) == 0.0


@pytest.mark.parametrize("fn", [pareto_mask, nondominated_sort])
def test_nan_rows_rejected_with_row_numbers(fn):
    with pytest.raises(ValueError, match=r"NaN in row\(s\) \[1\].*drop failed"):
        fn([[0.9, 10.0], [np.nan, 3.0]])


def test_shape_mismatch_names_expected_shape():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        pareto_mask([[1, 2, 3]])
    with pytest.raises(ValueError, match="at least one objective"):
        pareto_mask([[1, 2]], maximize=())


def test_inf_latency_is_dominated():
    assert pareto_mask([[0.9, np.inf], [0.9, 5.0]]).tolist() == [False, True]


def test_nondominated_sort_ranks():
    assert nondominated_sort(POINTS).tolist() == [0, 0, 0, 1, 2, 1, 3]


def test_nondominated_sort_chain_and_agreement_with_mask():
    chain = [[i, i] for i in range(6)]               # maximize both: each point dominates the previous
    assert nondominated_sort(chain, (True, True)).tolist() == [5, 4, 3, 2, 1, 0]
    rng = np.random.default_rng(1)
    pts = rng.integers(0, 6, size=(200, 3)).astype(float)
    maximize = (True, False, True)
    ranks = nondominated_sort(pts, maximize)
    assert ((ranks == 0) == pareto_mask(pts, maximize)).all()
    for r in range(1, ranks.max() + 1):              # front r is the mask of what is left
        left = ranks >= r
        assert ((ranks[left] == r) == pareto_mask(pts[left], maximize)).all()


def test_hypervolume_staircase():
    # accuracy up, latency down; reference (0.5 accuracy, 20 ms). By hand, latency bands:
    # 2..5 ms: accuracy up to 0.7 -> 0.2 * 3; 5..10: 0.3 * 5; 10..20: 0.4 * 10 -> 6.1
    front = [[0.9, 10.0], [0.8, 5.0], [0.7, 2.0]]
    assert hypervolume_2d(front, (0.5, 20.0)) == pytest.approx(6.1)
    # dominated points and points beyond the reference add nothing; order does not matter
    extra = front[::-1] + [[0.6, 6.0], [0.85, 12.0], [0.4, 1.0], [0.95, 25.0], [0.5, 1.0]]
    assert hypervolume_2d(extra, (0.5, 20.0)) == pytest.approx(6.1)


def test_hypervolume_directions():
    # minimize both: points (1, 3), (2, 1) against (4, 4): 3*1 + 2*2 = 7 minus overlap -> union = 7
    # boxes [1,4]x[3,4] (area 3) and [2,4]x[1,4] (area 6), overlap [2,4]x[3,4] (area 2): 3 + 6 - 2
    assert hypervolume_2d([[1, 3], [2, 1]], (4, 4), (False, False)) == pytest.approx(7.0)
    # maximize both, single point: a rectangle
    assert hypervolume_2d([[3, 2]], (1, 1), (True, True)) == pytest.approx(2.0)
    # nothing better than the reference
    assert hypervolume_2d([[0.4, 30.0]], (0.5, 20.0)) == 0.0


def test_hypervolume_grows_with_a_new_front_point():
    base = [[0.9, 10.0], [0.7, 2.0]]
    assert hypervolume_2d(base + [[0.8, 5.0]], (0.5, 20.0)) > hypervolume_2d(base, (0.5, 20.0))


def test_hypervolume_errors():
    with pytest.raises(ValueError, match="exactly 2 objectives"):
        hypervolume_2d([[1, 2, 3]], (0, 0, 0), (True, True, True))
    with pytest.raises(ValueError, match="reference must be two numbers"):
        hypervolume_2d([[1, 2]], (0,))
    with pytest.raises(ValueError, match="NaN"):
        hypervolume_2d([[np.nan, 2]], (0, 5))


def test_dominates_plain():
    assert dominates((0.9, 5.0), (0.8, 6.0))
    assert dominates((0.9, 5.0), (0.9, 6.0))           # equal on one, better on the other
    assert not dominates((0.9, 5.0), (0.9, 5.0))       # identical: neither dominates
    assert not dominates((0.95, 7.0), (0.9, 5.0))      # trade-off
    assert dominates((0.8, 6.0), (0.9, 5.0), maximize=(False, True))


def test_dominates_beyond_margin():
    spread = (0.02, 0.0)                               # accuracy spread across seeds; exact latency
    assert not dominates((0.91, 5.0), (0.90, 5.0), margin=spread)   # only within the spread
    assert dominates((0.91, 4.0), (0.90, 5.0), margin=spread)       # latency is better beyond 0 ms
    assert dominates((0.93, 5.0), (0.90, 5.0), margin=spread)
    assert dominates((0.93, 4.0), (0.90, 5.0), margin=(0.02, 1.0))  # accuracy beyond, latency not
    assert not dominates((0.93, 4.0), (0.90, 5.0), margin=(0.05, 1.0))  # neither beyond
    # require_all: better beyond the margin on every objective
    assert dominates((0.93, 4.0), (0.90, 5.0), margin=spread, require_all=True)
    assert not dominates((0.91, 4.0), (0.90, 5.0), margin=spread, require_all=True)
    assert not dominates((0.93, 5.0), (0.90, 5.0), margin=spread, require_all=True)


def test_dominates_errors():
    with pytest.raises(ValueError, match="margin values must be >= 0"):
        dominates((1, 1), (0, 2), margin=(-0.1, 0))
    with pytest.raises(ValueError, match="one value per objective"):
        dominates((1, 1), (0, 2), margin=(0.1,))
    with pytest.raises(ValueError, match="same number of objectives"):
        dominates((1, 1), (0, 2, 3))
    with pytest.raises(ValueError, match="NaN"):
        dominates((np.nan, 1), (0, 2))


def test_front_frame():
    df = pd.DataFrame({"model": list("abcdefgh"),
                       "accuracy": [*POINTS[:, 0], np.nan],
                       "latency_ms": [*POINTS[:, 1], 1.0]},
                      index=[10, 11, 12, 13, 14, 15, 16, 17])
    front = front_frame(df)
    assert front["model"].tolist() == ["c", "b", "a"]      # sorted by latency; NaN row h dropped
    assert front.index.tolist() == [12, 11, 10]
    assert front["latency_ms"].is_monotonic_increasing
    # other columns and directions
    df["params"] = [5, 4, 3, 2, 1, 9, 9, 9]
    assert front_frame(df, x="params", y="accuracy")["model"].tolist() == ["e", "d", "a"]
    assert front_frame(df, x="params", y="accuracy", maximize=(True, True))["model"].tolist() == ["a", "f"]


def test_front_frame_missing_column_lists_available():
    with pytest.raises(ValueError, match=r"\['accuracy'\].*available: \['latency_ms'\]"):
        front_frame(pd.DataFrame({"latency_ms": [1.0]}))
