from __future__ import annotations

import numpy as np
import pytest

import certkit.core as ck


def naive_top_two(labels: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    counts, classes = [], []
    for row in labels:
        h = np.bincount(row, minlength=c)
        order = sorted(range(c), key=lambda k: (-h[k], k))
        counts.append([h[order[0]], h[order[1]]])
        classes.append(order[:2])
    return np.array(counts), np.array(classes)


@pytest.mark.parametrize(("b", "n", "c"), [(1, 1, 2), (7, 50, 3), (64, 1000, 10), (5, 3, 1000)])
def test_matches_naive_reference(b: int, n: int, c: int) -> None:
    rs = np.random.default_rng(b * n + c)
    # skewed labels so that ties and clear winners both occur
    labels = np.minimum(rs.geometric(0.4, size=(b, n)) - 1, c - 1)
    got_counts, got_classes = ck.top_two_counts(labels, c)
    ref_counts, ref_classes = naive_top_two(labels, c)
    np.testing.assert_array_equal(got_counts, ref_counts)
    np.testing.assert_array_equal(got_classes, ref_classes)
    h = np.stack([np.bincount(r, minlength=c) for r in labels])
    c2, k2 = ck.top_two_from_counts(h)
    np.testing.assert_array_equal(c2, ref_counts)
    np.testing.assert_array_equal(k2, ref_classes)


def test_ties_go_to_smaller_class_and_single_class_rows() -> None:
    counts, classes = ck.top_two_counts(np.array([[2, 1, 2, 1], [3, 3, 3, 3]]), 4)
    assert classes.tolist() == [[1, 2], [3, 0]]
    assert counts.tolist() == [[2, 2], [4, 0]]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="labels"):
        ck.top_two_counts(np.array([[0, 5]]), 3)
    with pytest.raises(ValueError, match="labels"):
        ck.top_two_counts(np.array([[0, -1]]), 3)
    with pytest.raises(TypeError, match="labels"):
        ck.top_two_counts(np.array([[0.0, 1.0]]), 3)
    with pytest.raises(ValueError, match="labels"):
        ck.top_two_counts(np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="num_classes"):
        ck.top_two_counts(np.array([[0, 1]]), 1)
    with pytest.raises(ValueError, match="counts"):
        ck.top_two_from_counts(np.array([[1, -2]]))
