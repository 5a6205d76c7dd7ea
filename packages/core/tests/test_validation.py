from __future__ import annotations

import numpy as np
import pytest

from certkit.core import validation as v


def test_array_helpers_keep_shape_and_contiguity() -> None:
    assert v.as_int_array(3, "k").shape == ()
    assert v.as_float_array(0.5, "p").shape == ()
    a = np.arange(12).reshape(3, 4)[:, ::2]
    out = v.as_int_array(a, "k")
    assert out.flags.c_contiguous and out.shape == (3, 2) and out.dtype == np.int64
    assert v.as_int_array(np.array([2.0, 3.0]), "k").tolist() == [2, 3]


@pytest.mark.parametrize(
    ("fn", "args", "exc", "match"),
    [
        (v.check_alpha, (0.0,), ValueError, "alpha"),
        (v.check_alpha, (1.0,), ValueError, "alpha"),
        (v.check_alpha, (float("nan"),), ValueError, "alpha"),
        (v.check_alpha, ("0.1",), TypeError, "alpha"),
        (v.check_sigma, (0.0,), ValueError, "sigma"),
        (v.check_sigma, (-1.0,), ValueError, "sigma"),
        (v.check_int, (1.5, "n"), TypeError, "n"),
        (v.check_int, (True, "n"), TypeError, "n"),
        (v.check_seed, (-1,), ValueError, "seed"),
        (v.as_int_array, (np.array([1.5]), "k"), ValueError, "k"),
        (v.as_int_array, (np.array([True]), "k"), TypeError, "k"),
        (v.as_float_array, (np.array([np.nan]), "p"), ValueError, "p"),
        (v.as_float_array, (np.array([np.inf]), "p"), ValueError, "p"),
        (v.as_float_array, (np.array(["a"]), "p"), TypeError, "p"),
    ],
)
def test_checks_name_the_argument(fn, args, exc, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=match):
        fn(*args)
    assert v.check_alpha(0.05) == 0.05
    assert v.check_sigma(np.float32(0.25)) == pytest.approx(0.25)
