"""Streaming EM (issue 14, section 3): partial_fit (stepwise EM)."""

import warnings

import numpy as np
import pytest

from emx import GMMHMM, CategoricalHMM, GaussianHMM, GaussianMixture
from emx import gaussian as G
from emx._stepwise import _recenter, check_schedule, step_size


def _blobs(n=600, D=3, K=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6, size=(K, D))
    z = rng.integers(K, size=n)
    return centers[z] + rng.normal(size=(n, D))


@pytest.mark.parametrize("ct", ["diag", "full", "spherical", "tied"])
def test_recenter_is_exact(ct):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3)) + 5
    W = rng.random((50, 4))
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) + 5
    moved = _recenter(G.GaussianStats.from_weights(X, W, a, ct), b, ct)
    direct = G.GaussianStats.from_weights(X, W, b, ct)
    np.testing.assert_allclose(moved.sum1, direct.sum1, atol=1e-10)
    np.testing.assert_allclose(moved.sum2, direct.sum2, atol=1e-9)
    assert moved.shift is b


@pytest.mark.parametrize("ct", ["diag", "full", "spherical", "tied"])
def test_mixture_kappa0_is_batch_em(ct):
    X = _blobs()
    kw = dict(n_components=3, covariance_type=ct, random_state=0, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = [GaussianMixture(max_iter=i, **kw).fit(X) for i in (1, 2, 3)]
    m = GaussianMixture(**kw)
    for ref in batch:
        m.partial_fit(X, kappa=0)
        np.testing.assert_allclose(m.weights_, ref.weights_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(m.covariances_, ref.covariances_, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("make", [
    lambda: GaussianHMM(3, covariance_type="full", n_iter=1, random_state=0),
    lambda: GaussianHMM(3, covariance_type="tied", n_iter=1, random_state=0),
    lambda: GMMHMM(2, n_mix=2, n_iter=1, random_state=0),
])
def test_hmm_first_step_is_batch_em(make):
    X = _blobs(n=500)
    lengths = [200, 300]
    ref = make().fit(X, lengths)
    m = make().partial_fit(X, lengths, kappa=0)
    for name in ref._fitted_attrs:
        np.testing.assert_allclose(getattr(m, name), getattr(ref, name), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def test_hmm_kappa0_repeated_is_batch_em_without_priors():
    X = _blobs(n=500)
    lengths = [200, 300]
    kw = dict(n_components=3, covars_prior=0.0, random_state=0, tol=-np.inf)
    m = GaussianHMM(**kw)
    for i in (1, 2, 3):
        ref = GaussianHMM(n_iter=i, **kw).fit(X, lengths)
        m.partial_fit(X, lengths, kappa=0)
        for name in ref._fitted_attrs:
            np.testing.assert_allclose(getattr(m, name), getattr(ref, name), rtol=1e-9,
                                       atol=1e-12, err_msg=name)


def test_categorical_first_step_is_batch_em():
    rng = np.random.default_rng(0)
    X = rng.integers(4, size=(300, 1))
    ref = CategoricalHMM(2, n_iter=1, random_state=0).fit(X, [100, 200])
    m = CategoricalHMM(2, random_state=0).partial_fit(X, [100, 200], kappa=0)
    np.testing.assert_allclose(m.emissionprob_, ref.emissionprob_, rtol=1e-12)
    np.testing.assert_allclose(m.transmat_, ref.transmat_, rtol=1e-12)


def test_stepwise_reaches_batch_optimum():
    X = _blobs(n=20000, seed=3)
    batch = GaussianMixture(3, random_state=0).fit(X)
    target = batch.score(X)
    m = GaussianMixture(3, random_state=0)
    chunks = np.array_split(np.random.default_rng(0).permutation(X), 40)
    for _ in range(2):
        for c in chunks:
            m.partial_fit(c)
    assert abs(m.score(X) - target) < 1e-3 * abs(target)
    # the HMM from the batch fit's initialisation (k-means on all the data)
    h = GaussianHMM(3, random_state=0, n_iter=0).fit(X)
    for _ in range(2):
        for c in chunks:
            # kappa=0.5 forgets the statistics of the broad initial covariances faster
            h.partial_fit(c, [len(c)], kappa=0.5)
    hb = GaussianHMM(3, random_state=0, n_iter=50).fit(X)
    assert abs(h.score(X) - hb.score(X)) < 2e-3 * abs(hb.score(X))


def test_schedule_checks():
    assert step_size(0, 0.7, 2.0) == 1.0
    assert step_size(3, 0.7, 2.0) == pytest.approx(5 ** -0.7)
    for bad in (dict(kappa=-0.1, t0=2), dict(kappa=1.5, t0=2), dict(kappa=0.7, t0=np.nan),
                dict(kappa=True, t0=2)):
        with pytest.raises(ValueError):
            check_schedule(**bad)
    with pytest.raises(ValueError, match="kappa"):
        GaussianMixture(2).partial_fit(_blobs(), kappa=2)
