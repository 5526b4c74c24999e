"""Variational Bayes HMMs: agreement with hmmlearn's vhmm, monotone lower bound, threads,
Dask, priors."""

import logging

import numpy as np
import pytest

from emx import VariationalCategoricalHMM, VariationalGaussianHMM
from emx.variational import kl_dirichlet

hv = pytest.importorskip("hmmlearn.vhmm")


@pytest.fixture(autouse=True)
def _quiet_hmmlearn():
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def symbols():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.choice(4, 300, p=[.7, .1, .1, .1]),
                        rng.choice(4, 200, p=[.1, .1, .1, .7]),
                        rng.choice(4, 300, p=[.25, .25, .25, .25])]).reshape(-1, 1)
    return X, [300, 200, 300]


def test_kl_dirichlet_against_monte_carlo():
    q, p = np.array([2.0, 3.0, 0.5]), np.array([1.0, 1.0, 1.0])
    from scipy.stats import dirichlet
    s = dirichlet(q).rvs(200_000, random_state=1)
    s = np.clip(s, 1e-300, None)
    mc = np.mean(dirichlet(q).logpdf(s.T) - dirichlet(p).logpdf(s.T))
    assert abs(kl_dirichlet(q, p) - mc) < 0.02
    assert kl_dirichlet(q, q) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("K", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_categorical_agrees_with_hmmlearn(symbols, K, seed):
    X, lengths = symbols
    kw = dict(n_components=K, random_state=seed, n_iter=60, tol=1e-9)
    ref = hv.VariationalCategoricalHMM(**kw).fit(X, lengths)
    ours = VariationalCategoricalHMM(**kw).fit(X, lengths)
    h_ref, h = np.asarray(ref.monitor_.history), np.asarray(ours.monitor_.history)
    assert len(h) == len(h_ref)
    np.testing.assert_allclose(h, h_ref, rtol=1e-6)
    for name in ("startprob_posterior_", "transmat_posterior_", "emissionprob_posterior_",
                 "startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-6,
                                   atol=1e-9, err_msg=name)
    np.testing.assert_allclose(ours.score(X, lengths), ref.score(X, lengths), rtol=1e-8)


def test_categorical_priors_agree(symbols):
    X, lengths = symbols
    kw = dict(n_components=3, random_state=2, n_iter=40, tol=1e-9, startprob_prior=2.0,
              transmat_prior=0.5, emissionprob_prior=3.0)
    ref = hv.VariationalCategoricalHMM(**kw).fit(X, lengths)
    ours = VariationalCategoricalHMM(**kw).fit(X, lengths)
    np.testing.assert_allclose(ours.monitor_.history, ref.monitor_.history, rtol=1e-6)
    np.testing.assert_allclose(ours.emissionprob_prior_, ref.emissionprob_prior_)


@pytest.mark.parametrize("seed", range(4))
def test_categorical_bound_never_decreases(symbols, seed):
    X, lengths = symbols
    ours = VariationalCategoricalHMM(n_components=4, random_state=seed, n_iter=80,
                                     tol=-np.inf)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # EMDecreaseWarning would fail
        ours.fit(X, lengths)
    h = np.asarray(ours.monitor_.history)
    assert len(h) == 80
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))


def test_bound_is_logz_minus_kl(symbols):
    """The recorded bound equals log Z of a brute-force forward pass on the subnormalised
    parameters minus the KL terms (checked on a short sequence set)."""
    X, _ = symbols
    X, lengths = X[:40], [15, 25]
    m = VariationalCategoricalHMM(n_components=3, random_state=0, n_iter=1).fit(X, lengths)
    # m holds the posterior after one update; recompute the bound of the next E-step.
    from scipy.special import digamma, logsumexp
    elog = lambda a: digamma(a) - digamma(a.sum(axis=-1, keepdims=True))  # noqa: E731
    ls, lt, le = (elog(m.startprob_posterior_), elog(m.transmat_posterior_),
                  elog(m.emissionprob_posterior_))
    total = 0.0
    for a, b in [(0, 15), (15, 40)]:
        s = X[a:b, 0]
        alpha = ls + le[:, s[0]]
        for t in range(1, len(s)):
            alpha = logsumexp(alpha[:, None] + lt, axis=0) + le[:, s[t]]
        total += logsumexp(alpha)
    kl = (kl_dirichlet(m.startprob_posterior_, m.startprob_prior_)
          + kl_dirichlet(m.transmat_posterior_, m.transmat_prior_)
          + kl_dirichlet(m.emissionprob_posterior_, m.emissionprob_prior_))
    m2 = VariationalCategoricalHMM(n_components=3, random_state=0, n_iter=2).fit(X, lengths)
    assert m2.monitor_.history[1] == pytest.approx(total - kl, rel=1e-12)


def test_threads_identical(symbols):
    X, lengths = symbols
    Xl = np.tile(X, (8, 1))
    ll = lengths * 8
    a = VariationalCategoricalHMM(n_components=3, random_state=0, n_iter=10, n_jobs=1)
    b = VariationalCategoricalHMM(n_components=3, random_state=0, n_iter=10, n_jobs=2)
    a.fit(Xl, ll)
    b.fit(Xl, ll)
    assert a.monitor_.history == b.monitor_.history
    assert np.array_equal(a.emissionprob_posterior_, b.emissionprob_posterior_)


def test_bad_priors(symbols):
    X, lengths = symbols
    for kw in (dict(startprob_prior=-1.0), dict(transmat_prior=np.ones((2, 3))),
               dict(emissionprob_prior=0.0)):
        name = next(iter(kw))
        with pytest.raises(ValueError, match=name):
            VariationalCategoricalHMM(n_components=2, **kw).fit(X, lengths)


def test_dask_equals_serial(symbols):
    distributed = pytest.importorskip("dask.distributed")
    import emx.distributed

    X, lengths = symbols
    serial = VariationalCategoricalHMM(n_components=3, random_state=0, n_iter=20).fit(
        X, lengths)
    with distributed.LocalCluster(n_workers=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dist = emx.distributed.fit(
            VariationalCategoricalHMM(n_components=3, random_state=0, n_iter=20),
            [(X[:300], [300]), (X[300:], [200, 300])], client)
    np.testing.assert_allclose(dist.monitor_.history, serial.monitor_.history, rtol=1e-10)


# ------------------------------------------------------------------ VariationalGaussianHMM
COV_TYPES = ("full", "diag", "spherical", "tied")


@pytest.fixture(scope="module")
def gauss():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (150, 2)), rng.normal([4, 0], 1, (100, 2)),
                        rng.normal([0, 5], 0.6, (150, 2))])
    return X, [200, 200]


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_agrees_with_hmmlearn(gauss, covariance_type, seed):
    X, lengths = gauss
    kw = dict(n_components=3, covariance_type=covariance_type, random_state=seed, n_iter=40,
              tol=1e-9)
    ref = hv.VariationalGaussianHMM(**kw).fit(X, lengths)
    ours = VariationalGaussianHMM(**kw).fit(X, lengths)
    # hmmlearn leaves the Gaussian constant -D/2 log(2 pi) per frame out of its bound.
    offset = X.size / 2 * np.log(2 * np.pi)
    h = np.asarray(ours.monitor_.history) + offset
    assert len(h) == len(ref.monitor_.history)
    np.testing.assert_allclose(h, ref.monitor_.history, rtol=1e-6)
    for name in ("means_posterior_", "beta_posterior_", "dof_posterior_", "scale_posterior_",
                 "startprob_posterior_", "transmat_posterior_", "means_prior_",
                 "scale_prior_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-6,
                                   atol=1e-9, err_msg=name)
    np.testing.assert_allclose(ours.score(X, lengths), ref.score(X, lengths), rtol=1e-8)
    assert np.array_equal(ours.predict(X, lengths), ref.predict(X, lengths))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gaussian_bound_never_decreases(gauss, covariance_type):
    import warnings
    X, lengths = gauss
    for seed in range(2):
        m = VariationalGaussianHMM(n_components=4, covariance_type=covariance_type,
                                   random_state=seed, n_iter=60, tol=-np.inf)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m.fit(X, lengths)
        h = np.asarray(m.monitor_.history)
        assert len(h) == 60
        assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))


def test_gaussian_priors_agree(gauss):
    X, lengths = gauss
    K, D = 2, 2
    kw = dict(n_components=K, covariance_type="full", random_state=0, n_iter=20, tol=1e-9,
              means_prior=np.zeros((K, D)), beta_prior=np.full(K, 2.0),
              dof_prior=np.full(K, 4.0), scale_prior=np.tile(0.5 * np.eye(D), (K, 1, 1)))
    ref = hv.VariationalGaussianHMM(**kw).fit(X, lengths)
    ours = VariationalGaussianHMM(**kw).fit(X, lengths)
    np.testing.assert_allclose(np.asarray(ours.monitor_.history) + X.size / 2 * np.log(
        2 * np.pi), ref.monitor_.history, rtol=1e-6)


def test_gaussian_threads_and_dask(gauss):
    X, lengths = gauss
    Xl, ll = np.tile(X, (6, 1)), lengths * 6
    kw = dict(n_components=3, random_state=0, n_iter=10)
    a = VariationalGaussianHMM(n_jobs=1, **kw).fit(Xl, ll)
    b = VariationalGaussianHMM(n_jobs=2, **kw).fit(Xl, ll)
    assert a.monitor_.history == b.monitor_.history
    distributed = pytest.importorskip("dask.distributed")
    import emx.distributed

    serial = VariationalGaussianHMM(**kw).fit(X, lengths)
    with distributed.LocalCluster(n_workers=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dist = emx.distributed.fit(VariationalGaussianHMM(**kw),
                                   [(X[:200], [200]), (X[200:], [200])], client)
    np.testing.assert_allclose(dist.monitor_.history, serial.monitor_.history, rtol=1e-10)


def test_gaussian_bad_priors(gauss):
    X, lengths = gauss
    for kw, match in ((dict(dof_prior=0.5), "dof_prior"), (dict(beta_prior=-1.0), "beta_prior"),
                      (dict(scale_prior=np.eye(3)), "scale_prior"),
                      (dict(covariance_type="banded"), "covariance_type")):
        with pytest.raises(ValueError, match=match):
            VariationalGaussianHMM(n_components=2, **kw).fit(X, lengths)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gaussian_fewer_distinct_rows_than_states(covariance_type):
    # k-means leaves a cluster empty: the start is floored (finite bound, no NaN), and the
    # bound still never falls.
    import warnings
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), 30, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's k-means ConvergenceWarning
        m = VariationalGaussianHMM(n_components=3, covariance_type=covariance_type,
                                   random_state=0, n_iter=10).fit(X)
    h = np.asarray(m.monitor_.history)
    assert np.all(np.isfinite(h))
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))
    assert np.all(np.isfinite(m.means_)) and np.all(np.isfinite(m.covars_))
