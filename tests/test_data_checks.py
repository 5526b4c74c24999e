"""The one-pass data checks of a fit: ``value_range`` (the kernel behind finiteness and
magnitude checks) against numpy, on every loop it has, and the checks built on it giving the
same errors as before (scikit-learn's messages for NaN and infinity)."""

import numpy as np
import pytest
from sklearn.utils.validation import validate_data

from emx import GaussianHMM, GaussianMixture
from emx._core import _gauss
from emx.gaussian import MAX_ABS, check_magnitude, value_range

LEVELS = (-1, 0, 1, 2)  # best, plain, SSE2, AVX2 (lowered to what the CPU has)


def kernel(x, level):
    out = np.empty(3)
    assert _gauss.value_range(x, out, level=level) == -1  # STATUS_OK
    return float(out[0]), float(out[1]), bool(out[2])


def expected(x):
    finite = x[~np.isnan(x)]
    lo = finite.min() if finite.size else np.inf
    hi = finite.max() if finite.size else -np.inf
    return lo, hi, bool(np.isnan(x).any())


@pytest.mark.parametrize("level", LEVELS)
def test_value_range_matches_numpy(level):
    rng = np.random.default_rng(level + 7)
    # lengths around every vector step (2, 8, 16 values) and their tails
    for n in list(range(0, 40)) + [63, 64, 65, 1000, 1001]:
        for trial in range(6):
            x = rng.normal(size=n) * 10.0 ** rng.integers(-5, 5)
            if n and trial >= 1:  # specials at random places, including the tail
                k = rng.integers(1, 4)
                idx = rng.integers(0, n, size=k)
                x[idx] = rng.choice([np.nan, np.inf, -np.inf, 1e300, -1e300], size=k)
            if n and trial == 5:
                x[-1] = np.nan  # in the tail only
            got = kernel(x, level)
            assert got == expected(x), (n, trial, x)


@pytest.mark.parametrize("level", LEVELS)
def test_value_range_all_nan_and_extremes(level):
    assert kernel(np.full(37, np.nan), level) == (np.inf, -np.inf, True)
    assert kernel(np.empty(0), level) == (np.inf, -np.inf, False)
    x = np.zeros(50)
    x[17] = np.nan
    x[3], x[44] = -np.inf, np.inf
    assert kernel(x, level) == (-np.inf, np.inf, True)
    # a NaN does not stop the scan: the extremes after it are still seen
    x = np.arange(40.0)
    x[0] = np.nan
    x[39] = 1e9
    assert kernel(x, level) == (1.0, 1e9, True)


def test_value_range_any_layout_leaves_input_alone():
    X = np.asfortranarray(np.random.default_rng(0).normal(size=(30, 7)))
    X[4, 2] = np.nan
    before = X.copy()
    for view in (X, X[:, ::2], X[::3], X.astype(np.float32)):
        assert value_range(view) == expected(np.asarray(view, dtype=float).ravel())
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (57, 2), (99, 3)])
def test_fit_errors_are_scikit_learns(bad, where):
    X = np.random.default_rng(1).normal(size=(100, 4))
    X[where] = bad
    with pytest.raises(ValueError) as sk:  # what scikit-learn's check says of X
        validate_data(GaussianHMM(2), X, dtype=np.float64, ensure_all_finite=True)
    with pytest.raises(ValueError) as ours:
        GaussianHMM(2, n_iter=2).fit(X)
    assert str(ours.value) == str(sk.value)
    if np.isnan(bad):  # GaussianMixture fits NaN rows (missing entries)
        GaussianMixture(2, max_iter=20, tol=1e-2, random_state=0).fit(X)
    else:
        with pytest.raises(ValueError, match="Input X contains infinity"):
            GaussianMixture(2, max_iter=2, random_state=0).fit(X)


def test_magnitude_checks():
    X = np.random.default_rng(2).normal(size=(60, 3))
    X[10, 1] = -2 * MAX_ABS
    for fit in (lambda: GaussianHMM(2, n_iter=2).fit(X),
                lambda: GaussianMixture(2, max_iter=2).fit(X)):
        with pytest.raises(ValueError, match="magnitude 2e\\+100"):
            fit()
    X[10, 1] = np.nan  # the largest observed magnitude counts, NaN is skipped
    X[20, 2] = 0.5 * MAX_ABS
    check_magnitude(X)
    with pytest.raises(ValueError, match="magnitude 2e\\+100"):
        check_magnitude(X * 4)
    with pytest.raises(ValueError, match="magnitude 3"):  # the bounds given are used
        check_magnitude(X, bounds=(-3 * MAX_ABS, 0.0))
