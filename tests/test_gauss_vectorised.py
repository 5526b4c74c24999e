"""The vectorised diagonal Gaussian kernels (src/_gauss_simd.h) against the scalar loops.

``log_density_diag`` and ``accumulate_moments`` (kind 0 with a shift per component) run in
vectors across components, on every instruction set the CPU has; they must give the scalar
loops' results bit for bit. The references below are frozen transcriptions of those loops:
the same operations in the same order for every output element (a sum over d in increasing
d; sums over frames in increasing t), vectorised only across independent elements.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emx
from emx._core import _gauss

BEST_LEVEL = _gauss._simd_level()
LEVELS = list(range(BEST_LEVEL + 1))  # 0 baseline, 1 AVX2, 2 AVX-512: those this CPU has

# K = 5, 10, 12: components left over after full vectors (8-, 2-, 4-lane tiles).
K_VALUES = (1, 2, 3, 5, 7, 10, 12, 16, 33)
D_VALUES = (1, 2, 13, 40)
N_VALUES = (0, 1, 5, 300)


# ----------------------------------------------------------------------------- references
def ref_log_density_diag(X, means, precisions, log_norm):
    """out[t, k] = log_norm[k] - 0.5 * s, s = 0.0; s += ((x - mu) * (x - mu)) * prec, d = 0..D-1."""
    n, D = X.shape
    s = np.zeros((n, means.shape[0]))
    with np.errstate(over="ignore", invalid="ignore"):
        for d in range(D):
            diff = X[:, d, None] - means[None, :, d]
            s = s + diff * diff * precisions[None, :, d]
        return log_norm[None, :] - 0.5 * s


def ref_moments_shifted(X, weights, shift, post, sum1, sum2):
    """The scalar kind-0 loop with a shift per component, frames in increasing t:
    post[k] += w; dx = x[t, d] - shift[k, d]; wd = dx * w; sum1 += wd; sum2 += wd * dx."""
    post, sum1, sum2 = post.copy(), sum1.copy(), sum2.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(X.shape[0]):
            post = post + weights[t]
            dx = X[t][None, :] - shift
            wd = dx * weights[t][:, None]
            sum1 = sum1 + wd
            sum2 = sum2 + wd * dx
    return post, sum1, sum2


def assert_bits_equal(got, want):
    """Identical doubles: same bit patterns (so -0.0 differs from 0.0), NaN where NaN."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    bad = (got.view(np.int64) != want.view(np.int64)) & ~nan
    assert not bad.any(), (
        f"{bad.sum()} of {bad.size} entries differ, e.g. at {np.argwhere(bad)[0]}: "
        f"{got[bad][0]!r} != {want[bad][0]!r}")


@pytest.fixture
def simd_levels():
    """Yield a function that runs a callable at every instruction set this CPU has."""
    def at_every_level(fn):
        results = []
        previous = _gauss._set_simd_level(0)
        try:
            for level in LEVELS:
                _gauss._set_simd_level(level)
                assert _gauss._simd_level() == level
                results.append(fn())
        finally:
            _gauss._set_simd_level(previous)
        return results
    yield at_every_level
    assert _gauss._simd_level() == BEST_LEVEL


def far_data(rng, n, K, D):
    """Data far from the origin with small and large spreads (differences, not expansions)."""
    X = 1e6 + rng.normal(0.0, 3.0, (n, D)) * rng.choice([1e-3, 1.0, 1e3], size=(1, D))
    means = 1e6 + rng.normal(0.0, 3.0, (K, D))
    precisions = rng.uniform(0.05, 20.0, (K, D)) ** 3
    log_norm = rng.normal(0.0, 10.0, K)
    return X, means, precisions, log_norm


# ------------------------------------------------------------------------- log densities
@pytest.mark.parametrize("K", K_VALUES)
@pytest.mark.parametrize("D", D_VALUES)
@pytest.mark.parametrize("n", N_VALUES)
def test_log_density_diag_bit_identical(simd_levels, K, D, n):
    rng = np.random.default_rng([K, D, n])
    X, means, precisions, log_norm = far_data(rng, n, K, D)
    want = ref_log_density_diag(X, means, precisions, log_norm)
    inputs = [a.copy() for a in (X, means, precisions, log_norm)]

    def run():
        out = np.full((n, K), np.nan)
        assert _gauss.log_density_diag(X, means, precisions, log_norm, out) == _gauss.STATUS_OK
        return out

    for got in simd_levels(run):
        assert_bits_equal(got, want)
    for a, b in zip(inputs, (X, means, precisions, log_norm), strict=True):
        np.testing.assert_array_equal(a, b)  # nothing the caller passed is mutated


def test_log_density_diag_special_values(simd_levels):
    """inf / huge / tiny / zero entries: overflowing squares, -inf and NaN results, signed
    zeros, all where the scalar loop put them."""
    rng = np.random.default_rng(5)
    n, K, D = 37, 11, 6
    X, means, precisions, log_norm = far_data(rng, n, K, D)
    X[0, 2] = 1e200          # square overflows: out = -inf
    X[1, :] = -1e160         # huge but finite terms
    X[2, 1] = np.inf         # inf - mu = inf
    X[3, 3] = 5e-324         # subnormal
    means[4, 0] = -np.inf    # a component at -inf: inf terms for every finite row
    precisions[5, :] = 0.0   # zero precision: 0 * (finite)**2 = 0, 0 * inf = NaN
    precisions[6, 2] = 1e300
    log_norm[7] = -np.inf    # a component of weight zero
    log_norm[8] = 1e308
    X[4:, 4] = means[9, 4]   # exact zeros: diff = 0.0
    precisions[9, 4] = -1.0  # (negative: 0 * 0 * -1 = -0.0, s = 0.0 + -0.0 = 0.0)
    want = ref_log_density_diag(X, means, precisions, log_norm)
    assert np.isnan(want).any() and np.isneginf(want).any()

    def run():
        out = np.empty((n, K))
        _gauss.log_density_diag(X, means, precisions, log_norm, out)
        return out

    for got in simd_levels(run):
        assert_bits_equal(got, want)


def test_log_density_diag_no_features():
    """D = 0: every row gets log_norm (0.5 * 0.0 subtracted)."""
    log_norm = np.array([-1.5, 2.0, -np.inf])
    out = np.empty((4, 3))
    _gauss.log_density_diag(np.empty((4, 0)), np.empty((3, 0)), np.empty((3, 0)), log_norm,
                            out)
    assert_bits_equal(out, np.tile(log_norm, (4, 1)))


def test_log_density_diag_shape_errors_unchanged():
    X, means, prec, ln = np.zeros((5, 3)), np.zeros((4, 3)), np.ones((4, 3)), np.zeros(4)
    with pytest.raises(ValueError, match="log_density_diag: out has shape"):
        _gauss.log_density_diag(X, means, prec, ln, np.empty((5, 3)))
    with pytest.raises(ValueError, match="log_density_diag: precisions has shape"):
        _gauss.log_density_diag(X, means, np.ones((4, 2)), ln, np.empty((5, 4)))


# ------------------------------------------------------------------------------- moments
def run_moments(X, weights, shift, post, sum1, sum2):
    post, sum1, sum2 = post.copy(), sum1.copy(), sum2.copy()
    assert _gauss.accumulate_moments(X, weights, shift, 0, post, sum1, sum2) == _gauss.STATUS_OK
    return post, sum1, sum2


@pytest.mark.parametrize("K", K_VALUES)
@pytest.mark.parametrize("D", D_VALUES)
@pytest.mark.parametrize("n", N_VALUES)
def test_moments_shift_per_component_bit_identical(simd_levels, K, D, n):
    rng = np.random.default_rng([K, D, n, 1])
    X, means, _, _ = far_data(rng, n, K, D)
    weights = rng.dirichlet(np.ones(K), size=n) if n else np.zeros((0, K))
    weights[rng.random(weights.shape) < 0.2] = 0.0
    shift = means + rng.normal(0.0, 0.1, (K, D))
    # The outputs are added to: start from non-zero sums.
    post0, s10, s20 = rng.normal(size=K), rng.normal(size=(K, D)), rng.uniform(size=(K, D))
    inputs = [a.copy() for a in (X, weights, shift)]
    want = ref_moments_shifted(X, weights, shift, post0, s10, s20)
    for got in simd_levels(lambda: run_moments(X, weights, shift, post0, s10, s20)):
        if K == 1:
            # shift (1, D) with K = 1 is the shared-shift case: BLAS sums (dgemm), whose
            # summation order is the BLAS library's, not this loop's.
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-9 * max(1.0, n))
        else:
            for g, w in zip(got, want, strict=True):
                assert_bits_equal(g, w)
    for a, b in zip(inputs, (X, weights, shift), strict=True):
        np.testing.assert_array_equal(a, b)


def test_moments_special_values(simd_levels):
    """Overflowing squares, zero weights on infinite data (0 * inf = NaN), -0.0 terms."""
    rng = np.random.default_rng(11)
    n, K, D = 300, 9, 5
    X, means, _, _ = far_data(rng, n, K, D)
    weights = rng.dirichlet(np.ones(K), size=n)
    X[3, 0] = 1e200       # (x - s)**2 * w overflows to inf
    X[4, 1] = -1e155      # finite square, huge sums
    X[7, 2] = np.inf      # inf * w = inf; times the zero weight below: NaN
    weights[7, 3] = 0.0
    X[8:, 4] = means[5, 4]  # dx = 0.0 exactly
    weights[9, 5] = -0.0
    shift = means.copy()
    post0, s10, s20 = np.zeros(K), np.zeros((K, D)), np.zeros((K, D))
    want = ref_moments_shifted(X, weights, shift, post0, s10, s20)
    assert np.isnan(want[1]).any() and np.isinf(want[2]).any()
    for got in simd_levels(lambda: run_moments(X, weights, shift, post0, s10, s20)):
        for g, w in zip(got, want, strict=True):
            assert_bits_equal(g, w)


def test_moments_blocks_and_other_kinds_unchanged():
    """More than one block of frames (BLOCK = 128) with a shift per component, and the
    paths this change left alone (shared shift, 'full', 'tied') still give the moments."""
    rng = np.random.default_rng(3)
    n, K, D = 1000, 5, 4
    X = rng.normal(size=(n, D))
    weights = rng.dirichlet(np.ones(K), size=n)
    shift = rng.normal(size=(K, D))
    got = run_moments(X, weights, shift, np.zeros(K), np.zeros((K, D)), np.zeros((K, D)))
    want = ref_moments_shifted(X, weights, shift, np.zeros(K), np.zeros((K, D)),
                               np.zeros((K, D)))
    for g, w in zip(got, want, strict=True):
        assert_bits_equal(g, w)
    d = X[:, None, :] - shift[None]                      # (n, K, D)
    for kind, shape, expect in (
        (1, (K * D, D), np.einsum("nk,nki,nkj->kij", weights, d, d).reshape(K * D, D)),
        (2, (D, D), np.einsum("nk,nki,nkj->ij", weights, d, d)),
    ):
        post, sum1, sum2 = np.zeros(K), np.zeros((K, D)), np.zeros(shape)
        _gauss.accumulate_moments(X, weights, shift, kind, post, sum1, sum2)
        np.testing.assert_allclose(sum2, expect, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(sum1, np.einsum("nk,nkd->kd", weights, d), rtol=1e-10,
                                   atol=1e-12)
        assert_bits_equal(post, want[0])


@settings(max_examples=40, deadline=None)
@given(
    K=st.integers(2, 20), D=st.integers(1, 9), n=st.integers(0, 40),
    scale=st.sampled_from([1e-150, 1e-3, 1.0, 1e5, 1e150]),
    seed=st.integers(0, 2**32 - 1),
)
def test_both_kernels_bit_identical_property(K, D, n, scale, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, scale, (n, D))
    means = rng.normal(0.0, scale, (K, D))
    precisions = rng.uniform(0.0, 2.0, (K, D)) / scale ** 2 * (scale > 1e-100)
    log_norm = rng.normal(size=K)
    weights = rng.uniform(0.0, 1.0, (n, K))
    out = np.empty((n, K))
    _gauss.log_density_diag(X, means, precisions, log_norm, out)
    assert_bits_equal(out, ref_log_density_diag(X, means, precisions, log_norm))
    zero = np.zeros(K), np.zeros((K, D)), np.zeros((K, D))
    got = run_moments(X, weights, means, *zero)
    for g, w in zip(got, ref_moments_shifted(X, weights, means, *zero), strict=True):
        assert_bits_equal(g, w)


# ------------------------------------------------------------------------------------ fits
def with_reference_kernels(fit):
    """Run ``fit()`` with the two kernels replaced by the frozen references; return its
    result and how often each reference ran (a test that never reached them proves
    nothing)."""
    calls = {"log_density_diag": 0, "accumulate_moments": 0}
    compiled_moments = _gauss.accumulate_moments

    def log_density_diag(X, means, precisions, log_norm, out):
        calls["log_density_diag"] += 1
        out[...] = ref_log_density_diag(np.asarray(X), np.asarray(means),
                                        np.asarray(precisions), np.asarray(log_norm))
        return _gauss.STATUS_OK

    def accumulate_moments(X, weights, shift, kind, post, sum1, sum2):
        if kind != 0 or shift.shape[0] == 1:  # paths this change left alone
            return compiled_moments(X, weights, shift, kind, post, sum1, sum2)
        calls["accumulate_moments"] += 1
        post[...], sum1[...], sum2[...] = ref_moments_shifted(
            np.asarray(X), np.asarray(weights), np.asarray(shift), post, sum1, sum2)
        return _gauss.STATUS_OK

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_gauss, "log_density_diag", log_density_diag)
        mp.setattr(_gauss, "accumulate_moments", accumulate_moments)
        result = fit()
    assert calls["log_density_diag"] > 0 and calls["accumulate_moments"] > 0, calls
    return result


def hmm_data():
    rng = np.random.default_rng(2)
    means = rng.normal(0.0, 2.0, (4, 5)) + 100.0
    states = np.repeat(rng.integers(0, 4, 60), 10)
    X = means[states] + rng.normal(size=(600, 5)) * rng.uniform(0.2, 3.0, 5)
    return np.ascontiguousarray(X), [150, 200, 250]


def fit_hmm(covariance_type):
    X, lengths = hmm_data()
    model = emx.GaussianHMM(5, covariance_type=covariance_type, n_iter=6, tol=1e-300,
                            random_state=0)
    model.fit(X, lengths)
    return model, np.asarray(model.monitor_.history)


def fit_gmm(covariance_type):
    X, _ = hmm_data()
    model = emx.GaussianMixture(6, covariance_type=covariance_type, max_iter=6, tol=0.0,
                                random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # did not converge in 6 iterations
        model.fit(X)
    return model, np.asarray(model.lower_bounds_)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_hmm_fit_unchanged(covariance_type):
    ref_model, ref_hist = with_reference_kernels(lambda: fit_hmm(covariance_type))
    model, hist = fit_hmm(covariance_type)
    assert len(hist) == 6
    assert_bits_equal(hist, ref_hist)
    assert_bits_equal(model.means_, ref_model.means_)
    assert_bits_equal(model.covars_, ref_model.covars_)
    assert_bits_equal(model.transmat_, ref_model.transmat_)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_gmm_fit_unchanged(covariance_type):
    ref_model, ref_bounds = with_reference_kernels(lambda: fit_gmm(covariance_type))
    model, bounds = fit_gmm(covariance_type)
    assert len(bounds) == 6
    assert_bits_equal(bounds, ref_bounds)
    assert_bits_equal(model.means_, ref_model.means_)
    assert_bits_equal(model.covariances_, ref_model.covariances_)
    assert_bits_equal(model.weights_, ref_model.weights_)
