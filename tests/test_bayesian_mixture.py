"""BayesianGaussianMixture: agreement with scikit-learn, monotone lower bound, pruning,
threads, priors' checks, Dask."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SKBGM

from emx import BayesianGaussianMixture

COV_TYPES = ("full", "tied", "diag", "spherical")
PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return np.concatenate([
        rng.normal(0, 1, (150, 3)),
        rng.normal(5, 1.5, (100, 3)),
        rng.normal([0, 6, 0], 0.7, (80, 3)),
    ])


def _fit_both(X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SKBGM(**kw).fit(X), BayesianGaussianMixture(**kw).fit(X)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_agrees_with_sklearn(X, covariance_type, prior_type, init_params):
    kw = dict(n_components=6, covariance_type=covariance_type,
              weight_concentration_prior_type=prior_type, init_params=init_params,
              random_state=3, max_iter=60, tol=1e-8)
    sk, em = _fit_both(X, **kw)
    la, lb = np.ravel(sk.lower_bounds_), np.asarray(em.lower_bounds_)
    assert len(la) == len(lb) == em.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(lb, la, rtol=1e-6)
    assert em.converged_ == sk.converged_
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
                 "mean_precision_", "degrees_of_freedom_"):
        np.testing.assert_allclose(getattr(em, name), getattr(sk, name), rtol=1e-6,
                                   atol=1e-9, err_msg=name)
    np.testing.assert_allclose(np.ravel(em.weight_concentration_),
                               np.ravel(sk.weight_concentration_), rtol=1e-6)
    np.testing.assert_allclose(em.score_samples(X), sk.score_samples(X), rtol=1e-6)
    np.testing.assert_allclose(em.predict_proba(X), sk.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("covariance_type", ("full", "diag", "spherical"))
def test_agrees_with_sklearn_random_from_data(X, covariance_type):
    # Initial responsibilities on n_components rows only. ('tied' differs there: scikit-learn's
    # tied covariance at initialisation counts every row's second moment, weighted or not.)
    kw = dict(n_components=5, covariance_type=covariance_type, init_params="random_from_data",
              random_state=0, max_iter=100, tol=1e-8)
    sk, em = _fit_both(X, **kw)
    np.testing.assert_allclose(em.lower_bounds_, np.ravel(sk.lower_bounds_), rtol=1e-6)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
def test_lower_bound_never_decreases(X, covariance_type, prior_type):
    for seed in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an EMDecreaseWarning fails the test
            warnings.simplefilter("ignore", ConvergenceWarning)
            em = BayesianGaussianMixture(
                n_components=8, covariance_type=covariance_type, init_params="random",
                weight_concentration_prior_type=prior_type, random_state=seed, max_iter=150,
                tol=0).fit(X)
        lb = np.asarray(em.lower_bounds_)
        assert len(lb) > 10
        assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]))


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
def test_pruning_of_empty_components(prior_type):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(-4, 1, (300, 2)), rng.normal(4, 1, (300, 2))])
    em = BayesianGaussianMixture(
        n_components=8, weight_concentration_prior_type=prior_type,
        weight_concentration_prior=1e-3, random_state=0, max_iter=1000).fit(X)
    w = np.sort(em.weights_)[::-1]
    assert w[:2].sum() > 0.99
    assert np.all(w[2:] < 0.005)
    assert np.allclose(np.sort(em.means_[np.argsort(em.weights_)[-2:], 0]), [-4, 4], atol=0.3)


def test_threads_identical(X):
    Xb = np.tile(X, (30, 1)) + np.random.default_rng(0).normal(0, 0.1, (30 * len(X), 3))
    kw = dict(n_components=4, random_state=0, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = BayesianGaussianMixture(n_jobs=1, **kw).fit(Xb)
        b = BayesianGaussianMixture(n_jobs=2, **kw).fit(Xb)
    assert a.lower_bounds_ == b.lower_bounds_
    assert np.array_equal(a.means_, b.means_) and np.array_equal(a.covariances_, b.covariances_)


def test_n_init_keeps_best_and_max_iter_zero(X):
    kw = dict(n_components=4, init_params="random", random_state=0, max_iter=50)
    sk, em = _fit_both(X, n_init=3, **kw)
    np.testing.assert_allclose(em.lower_bound_, float(np.ravel([sk.lower_bound_])[0]),
                               rtol=1e-6)
    em0 = BayesianGaussianMixture(**{**kw, "max_iter": 0}).fit(X)
    assert em0.n_iter_ == 0 and em0.lower_bounds_ == []


def test_warm_start_continues(X):
    kw = dict(n_components=4, random_state=0, max_iter=1, warm_start=True, tol=0)
    em = BayesianGaussianMixture(**kw)
    bounds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(10):
            em.fit(X)
            bounds.append(em.lower_bound_)
    full = BayesianGaussianMixture(**{**kw, "max_iter": 10, "warm_start": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full.fit(X)
    np.testing.assert_allclose(bounds, full.lower_bounds_, rtol=1e-12)


def test_priors_given_and_resolved(X):
    D = X.shape[1]
    kw = dict(n_components=3, random_state=0, max_iter=30, mean_prior=np.ones(D),
              mean_precision_prior=0.5, degrees_of_freedom_prior=D + 2.0,
              weight_concentration_prior=0.1)
    for ct, cp in [("full", 2 * np.eye(D)), ("tied", 2 * np.eye(D)), ("diag", 2 * np.ones(D)),
                   ("spherical", 2.0)]:
        sk, em = _fit_both(X, covariance_type=ct, covariance_prior=cp, **kw)
        np.testing.assert_allclose(em.lower_bounds_, np.ravel(sk.lower_bounds_), rtol=1e-6)
        np.testing.assert_allclose(em.covariance_prior_, sk.covariance_prior_)
        assert em.degrees_of_freedom_prior_ == sk.degrees_of_freedom_prior_


@pytest.mark.parametrize("kw, match", [
    (dict(degrees_of_freedom_prior=1.0), "degrees_of_freedom_prior"),
    (dict(mean_prior=[0.0]), "mean_prior"),
    (dict(covariance_prior=-np.eye(3)), "covariance_prior"),
    (dict(covariance_type="diag", covariance_prior=[1.0, -1.0, 1.0]), "covariance_prior"),
    (dict(weight_concentration_prior_type="pitman"), "weight_concentration_prior_type"),
    (dict(weight_concentration_prior=0.0), "weight_concentration_prior"),
    (dict(mean_precision_prior=-1.0), "mean_precision_prior"),
    (dict(init_params="nope"), "init_params"),
    (dict(covariance_type="banded"), "covariance_type"),
])
def test_bad_hyperparameters(X, kw, match):
    with pytest.raises(ValueError, match=match):
        BayesianGaussianMixture(n_components=2, **kw).fit(X)


def test_input_not_mutated_and_nan_rejected(X):
    X0 = X.copy()
    BayesianGaussianMixture(n_components=2, random_state=0, max_iter=5).fit(X)
    assert np.array_equal(X, X0)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError):
        BayesianGaussianMixture(n_components=2).fit(Xn)


def test_dask_equals_serial(X):
    distributed = pytest.importorskip("dask.distributed")
    import emx.distributed

    kw = dict(n_components=4, random_state=0, max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        serial = BayesianGaussianMixture(**kw).fit(X)
        with distributed.LocalCluster(n_workers=2, processes=False,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            dist = emx.distributed.fit(BayesianGaussianMixture(**kw),
                                       [X[:100], X[100:250], X[250:]], client)
    np.testing.assert_allclose(dist.lower_bounds_, serial.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(dist.means_, serial.means_, rtol=1e-9, atol=1e-12)


def test_sklearn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(BayesianGaussianMixture(max_iter=20), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == []


def test_single_point_data_finite():
    # Constant data: the covariances are reg_covar alone. The update is then not the exact
    # variational maximiser and the bound can fall (scikit-learn's falls too, by up to ~17):
    # emx warns (EMDecreaseWarning) rather than hiding it; the fit stays finite.
    from emx import EMDecreaseWarning

    X = np.ones((50, 2))
    for ct in COV_TYPES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", EMDecreaseWarning)
            em = BayesianGaussianMixture(n_components=3, covariance_type=ct,
                                         random_state=0).fit(X)
        assert np.all(np.isfinite(em.lower_bounds_)) and np.all(np.isfinite(em.means_))
        assert em.weights_.max() > 0.98
