"""GaussianMixture: scikit-learn conventions and agreement, sample weights, bad input."""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn import mixture as skm
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from emx import EMDecreaseWarning, GaussianMixture
from emx import gaussian as G

TYPES = G.COVARIANCE_TYPES


@parametrize_with_checks(
    [
        GaussianMixture(),
        GaussianMixture(n_components=2, covariance_type="diag", n_jobs=2),
        GaussianMixture(n_components=2, covariance_type="tied", init_params="random"),
        GaussianMixture(n_components=3, covariance_type="spherical", init_params="k-means++"),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def blobs(seed=0, n=(200, 300, 250), D=3, centre=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    parts = []
    for k, m in enumerate(n):
        A = rng.normal(size=(D, D)) * 0.4 + np.eye(D) * (0.5 + 0.3 * k)
        parts.append(centre + scale * (rng.normal(size=(m, D)) @ A + 4.0 * rng.normal(size=D)))
    return np.concatenate(parts)


def initial(X, K, covariance_type, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(K) * 3)
    means = X[rng.choice(len(X), K, replace=False)]
    cov = np.cov(X.T)
    precisions = G.covars_from_precisions(
        G.covars_from_template(cov, covariance_type, K), covariance_type
    )  # the inverse of the covariances
    return dict(weights_init=weights, means_init=means, precisions_init=precisions)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_same_lower_bounds_as_scikit_learn(covariance_type):
    X = blobs()
    init = initial(X, 3, covariance_type)
    kw = dict(covariance_type=covariance_type, tol=1e-300, max_iter=8, **init)  # 8 full steps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(3, **kw).fit(X)
        ref = skm.GaussianMixture(3, **kw).fit(X)
    assert len(ours.lower_bounds_) == len(ref.lower_bounds_) == ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=1e-8)
    assert np.all(np.diff(ours.lower_bounds_) >= -1e-12)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-8)
    assert ours.bic(X) == pytest.approx(ref.bic(X), rel=1e-10)
    assert ours.aic(X) == pytest.approx(ref.aic(X), rel=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_far_from_origin_matches_centred_fit(covariance_type):
    """Data 1e4 from the origin with a 1e-2 spread: the same fit as the centred data."""
    Xc = blobs(seed=1)
    shifted = 1e4 + 1e-2 * Xc
    init = initial(Xc, 3, covariance_type)
    a = GaussianMixture(3, covariance_type=covariance_type, tol=1e-12, max_iter=10,
                        reg_covar=0, **init)
    init_s = dict(init)
    init_s["means_init"] = 1e4 + 1e-2 * init["means_init"]
    init_s["precisions_init"] = init["precisions_init"] * 1e4
    b = GaussianMixture(3, covariance_type=covariance_type, tol=1e-12, max_iter=10,
                        reg_covar=0, **init_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(Xc)
        b.fit(shifted)
    # log-likelihoods differ by the Jacobian D * log(1e-2) per sample
    np.testing.assert_allclose(
        np.array(b.lower_bounds_) + 3 * np.log(1e-2), a.lower_bounds_, rtol=1e-9
    )
    np.testing.assert_allclose((b.means_ - 1e4) / 1e-2, a.means_, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_sample_weights_are_repetitions(covariance_type, init_params):
    rng = np.random.default_rng(3)
    X = blobs(seed=2, n=(40, 50, 30))
    sw = rng.integers(0, 4, size=len(X))
    kw = dict(covariance_type=covariance_type, init_params=init_params, random_state=0,
              max_iter=30, tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = GaussianMixture(3, **kw).fit(X, sample_weight=sw)
        repeated = GaussianMixture(3, **kw).fit(np.repeat(X, sw, axis=0))
        order = rng.permutation(len(X))
        shuffled = GaussianMixture(3, **kw).fit(X[order], sample_weight=sw[order])
    for other in (repeated, shuffled):
        # Same initial parameters up to round-off (k-means++ and random_from_data start each
        # component on one row, with variance reg_covar: round-off then shows at ~1e-9).
        np.testing.assert_allclose(other.lower_bounds_, weighted.lower_bounds_, rtol=1e-7)
        for name in ("weights_", "means_", "covariances_"):
            np.testing.assert_allclose(
                getattr(other, name), getattr(weighted, name), rtol=1e-7, atol=1e-9
            )


def test_threads_give_identical_results():
    X = blobs(seed=4, n=(5000, 4000, 6000))
    fits = [
        GaussianMixture(3, covariance_type="full", random_state=0, n_jobs=n, tol=1e-8).fit(X)
        for n in (1, 2)
    ]
    assert fits[0].lower_bounds_ == fits[1].lower_bounds_
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_recovers_known_mixture(covariance_type):
    truth = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    truth.weights_ = np.array([0.2, 0.3, 0.5])
    truth.means_ = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    truth.covariances_ = {
        "spherical": np.array([1.0, 0.5, 2.0]),
        "diag": np.array([[1.0, 0.5], [0.5, 2.0], [1.5, 1.0]]),
        "full": np.array([[[1.0, 0.3], [0.3, 1.0]], np.eye(2), [[2.0, -0.5], [-0.5, 1.0]]]),
        "tied": np.array([[1.0, 0.3], [0.3, 1.5]]),
    }[covariance_type]
    truth.n_features_in_ = 2
    X, _ = truth.sample(30_000)
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=1, n_init=2).fit(X)
    order = [int(np.argmin(np.linalg.norm(model.means_ - m, axis=1))) for m in truth.means_]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(model.weights_[order], truth.weights_, atol=0.02)
    np.testing.assert_allclose(model.means_[order], truth.means_, atol=0.06)
    fitted = model.covariances_ if covariance_type == "tied" else model.covariances_[order]
    np.testing.assert_allclose(fitted, truth.covariances_, rtol=0.08, atol=0.04)


def test_score_samples_is_the_mixture_density():
    X = blobs(seed=5)
    model = GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    dens = sum(
        w * multivariate_normal(m, c).pdf(X)
        for w, m, c in zip(model.weights_, model.means_, model.covariances_, strict=True)
    )
    np.testing.assert_allclose(model.score_samples(X), np.log(dens), rtol=1e-10)
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    assert model.score(X) == pytest.approx(np.log(dens).mean(), rel=1e-10)
    np.testing.assert_array_equal(model.fit_predict(X), model.predict(X))


def test_warm_start_continues():
    X = blobs(seed=6)
    model = GaussianMixture(3, max_iter=2, warm_start=True, random_state=0, tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
        first = model.lower_bound_
        model.fit(X)
    assert model.lower_bounds_[0] >= first - 1e-12


def test_bad_input_raises():
    X = blobs(seed=7, n=(10, 10, 10))
    with pytest.raises(ValueError, match="no observed value"):
        GaussianMixture(2).fit(np.where(np.arange(3) == 1, np.nan, X))
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixture(2).fit(np.where(np.eye(30, 3) > 0, np.inf, X))
    with pytest.raises(ValueError, match="2D"):
        GaussianMixture(2).fit(X[:, 0])
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(5).fit(X[:4])
    with pytest.raises(ValueError, match="sample_weight"):
        GaussianMixture(2).fit(X, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        GaussianMixture(2).fit(X, sample_weight=-np.ones(30))
    with pytest.raises(ValueError, match="weights_init"):
        GaussianMixture(2, weights_init=[0.7, 0.7]).fit(X)
    with pytest.raises(ValueError, match="means_init"):
        GaussianMixture(2, means_init=np.zeros((3, 3))).fit(X)
    with pytest.raises(ValueError, match="positive"):
        GaussianMixture(2, covariance_type="diag", precisions_init=-np.ones((2, 3))).fit(X)
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture(2, covariance_type="banana").fit(X)
    with pytest.raises(ValueError, match="init_params"):
        GaussianMixture(2, init_params="magic").fit(X)
    model = GaussianMixture(2).fit(X)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :2])


ILL_DEFINED = "ill-defined empirical covariance"


@pytest.mark.parametrize("covariance_type", TYPES)
def test_degenerate_data_gives_finite_parameters(covariance_type):
    # Two distinct points, repeated, for four components; one constant feature. With
    # reg_covar=0 the initial covariances are singular: scikit-learn's error (emx returned
    # covariances of 1e-318 and scores of -4e286); with reg_covar > 0 a finite fit.
    X = np.repeat(np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 3.0]]), 10, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=ILL_DEFINED):
            GaussianMixture(4, covariance_type=covariance_type, random_state=0,
                            reg_covar=0.0).fit(X)
        model = GaussianMixture(4, covariance_type=covariance_type, random_state=0,
                                reg_covar=1e-6).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(model, name))), name
    assert np.all(np.isfinite(model.score_samples(X)))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_reg_covar_zero_on_collapsed_clusters_raises_scikit_learns_error(covariance_type):
    """scikit-learn's test_regularisation: two clusters of identical points, as many
    components as rows."""
    X = np.vstack([np.ones((5, 5)), np.zeros((5, 5))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=ILL_DEFINED) as err:
            GaussianMixture(10, reg_covar=0, covariance_type=covariance_type,
                            random_state=0).fit(X)
        assert "increase reg_covar" in str(err.value)
        GaussianMixture(10, reg_covar=1e-6, covariance_type=covariance_type,
                        random_state=0).fit(X)
    # Well-defined data with reg_covar=0 fit as before (and precisions_init skips the check).
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(200, 3))
    GaussianMixture(2, reg_covar=0, covariance_type=covariance_type, random_state=0).fit(Y)


def _warm_data(seed=0):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(size=(150, 2)) * [1.0, 0.3] + [0.0, 0.0],
                      rng.normal(size=(150, 2)) * [0.5, 1.5] + [6.0, 2.0],
                      rng.normal(size=(100, 2)) * 0.7 + [2.0, 8.0]])


@pytest.mark.parametrize("max_iter", [1, 2, 50])
def test_warm_start_convergence_carries_across_fits(max_iter):
    """scikit-learn's test_convergence_detected_with_warm_start: repeated warm fits of
    max_iter iterations converge (emx measured each fit's gain from its own first
    iteration only, so one-iteration fits never converged)."""
    X = _warm_data()
    gm = GaussianMixture(3, warm_start=True, max_iter=max_iter, random_state=0, tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(200):
            gm.fit(X)
            if gm.converged_:
                break
    assert gm.converged_
    assert gm.n_iter_ <= max_iter
    assert len(gm.lower_bounds_) == gm.n_iter_  # this fit's iterations only


@pytest.mark.parametrize("covariance_type", TYPES)
def test_warm_one_iteration_fits_never_score_lower(covariance_type):
    """scikit-learn's test_monotonic_likelihood: one-iteration warm fits in a row, reg_covar=0,
    tol=1e-7: the training score never falls (not even by round-off) and EM converges."""
    X = _warm_data(1)
    gm = GaussianMixture(3, covariance_type=covariance_type, reg_covar=0, warm_start=True,
                         max_iter=1, random_state=0, tol=1e-7)
    current = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(600):
            previous, current = current, gm.fit(X).score(X)
            assert current >= previous
            if gm.converged_:
                break
    assert gm.converged_


def test_bad_initial_parameters_are_named():
    X = _warm_data()
    K, D = 3, 2
    for ct, bad_shape, not_pd, why in [
        ("full", np.ones((K + 1, D, D)), np.tile(-np.eye(D), (K, 1, 1)),
         "symmetric, positive-definite"),
        ("tied", np.ones((D + 1, D + 1)), -np.eye(D), "symmetric, positive-definite"),
        ("diag", np.ones((K + 1, D)), -np.ones((K, D)), "positive"),
        ("spherical", np.ones(K + 1), -np.ones(K), "positive"),
    ]:
        gm = GaussianMixture(K, covariance_type=ct, precisions_init=bad_shape)
        with pytest.raises(ValueError, match=rf"precisions_init.*'{ct} precision' should have "
                                             "the shape of"):
            gm.fit(X)
        with pytest.raises(ValueError, match=rf"precisions_init: '{ct} precision' should be "
                                             rf"{why}"):
            gm.set_params(precisions_init=not_pd).fit(X)
    with pytest.raises(ValueError, match=r"weights_init.*'weights' should have the shape"):
        GaussianMixture(K, weights_init=np.ones((K, 1)) / K).fit(X)
    with pytest.raises(ValueError, match=r"weights_init.*should be normalized"):
        GaussianMixture(K, weights_init=np.full(K, 0.2)).fit(X)
    with pytest.raises(ValueError, match=r"weights_init.*range \[0, 1\]"):
        GaussianMixture(K, weights_init=[1.5, -0.25, -0.25]).fit(X)
    with pytest.raises(ValueError, match=r"means_init.*'means' should have the shape"):
        GaussianMixture(K, means_init=np.zeros((K + 1, D))).fit(X)
    model = GaussianMixture(K, random_state=0).fit(X)
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        model.sample(0)


def test_bound_never_decreases_on_random_problems():
    for seed in range(6):
        rng = np.random.default_rng(seed)
        X = rng.standard_t(df=3, size=(400, 3))
        for covariance_type in TYPES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("error", EMDecreaseWarning)
                model = GaussianMixture(
                    4, covariance_type=covariance_type, random_state=seed, tol=1e-14,
                    max_iter=40, init_params="random",
                ).fit(X)
            lb = np.array(model.lower_bounds_)
            assert np.all(np.diff(lb) >= -1e-12 * np.abs(lb[1:]))


def test_input_not_mutated():
    X = blobs(seed=8)
    sw = np.linspace(0.5, 2.0, len(X))
    X0, sw0 = X.copy(), sw.copy()
    init = initial(X, 3, "full")
    init0 = {k: v.copy() for k, v in init.items()}
    GaussianMixture(3, **init).fit(X, sample_weight=sw)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(sw, sw0)
    for k in init:
        np.testing.assert_array_equal(init[k], init0[k])


def test_sample_shapes_and_moments():
    X = blobs(seed=9)
    model = GaussianMixture(3, random_state=0).fit(X)
    S, y = model.sample(20_000)
    assert S.shape == (20_000, 3) and y.shape == (20_000,)
    np.testing.assert_allclose(np.bincount(y) / 20_000, model.weights_, atol=0.02)
    np.testing.assert_allclose(S[y == 0].mean(axis=0), model.means_[0], atol=0.1)


# ------------------------------------------------------------------ far components (issue 16)
def far_cluster_data():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(0, 0.01, (1000, 1)), 1e8 + rng.normal(0, 1, (10, 1))])


def far_cluster_init(covariance_type):
    prec = {
        "full": np.array([[[1e4]], [[1.0]]]), "tied": np.array([[1.0]]),
        "diag": np.array([[1e4], [1.0]]), "spherical": np.array([1e4, 1.0]),
    }[covariance_type]
    return dict(weights_init=np.array([0.5, 0.5]), means_init=np.array([[1e-3], [1e8 + 0.5]]),
                precisions_init=prec)


def reference_em(X, weights, means, covs, covariance_type, reg, n_iter):
    """Textbook EM in numpy: log-space responsibilities, scatter from direct differences."""
    K, D = means.shape
    for _ in range(n_iter):
        full = G.full_covars(covs, covariance_type, K, D)
        logp = np.stack([multivariate_normal(means[k], full[k]).logpdf(X).reshape(-1)
                         for k in range(K)], axis=1) + np.log(weights)
        r = np.exp(logp - logp.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0) + 10 * np.finfo(float).eps
        weights = nk / nk.sum()
        means = (r.T @ X) / nk[:, None]
        scat = np.stack([(r[:, k, None] * (X - means[k])).T @ (X - means[k]) for k in range(K)])
        if covariance_type == "full":
            covs = scat / nk[:, None, None] + reg * np.eye(D)
        elif covariance_type == "tied":
            covs = scat.sum(axis=0) / nk.sum() + reg * np.eye(D)
        else:
            covs = np.diagonal(scat, axis1=1, axis2=2) / nk[:, None] + reg
            if covariance_type == "spherical":
                covs = covs.mean(axis=1)
    return weights, means, covs


@pytest.mark.parametrize("covariance_type", TYPES)
def test_far_component_keeps_its_variance(covariance_type):
    # Issue 16, finding 2: moments about one global shift lost the small cluster's variance
    # (5.0e-4 instead of 9.6e-5) to cancellation.
    X = far_cluster_data()
    init = far_cluster_init(covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(2, covariance_type=covariance_type, max_iter=5, tol=0,
                             **init).fit(X)
    assert np.all(np.diff(gm.lower_bounds_) >= -1e-12)
    covs0 = G.covars_from_precisions(init["precisions_init"], covariance_type)
    _, means, covs = reference_em(X, init["weights_init"], init["means_init"], covs0,
                                  covariance_type, gm.reg_covar, 5)
    np.testing.assert_allclose(gm.means_, means, rtol=1e-12)
    np.testing.assert_allclose(gm.covariances_, covs, rtol=1e-10)
    if covariance_type != "tied":
        # scikit-learn (direct differences for 'full') agrees on the small cluster.
        sk = skm.GaussianMixture(2, covariance_type=covariance_type, max_iter=5, tol=0,
                                 **init)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk.fit(X)
        small = gm.covariances_[0].ravel()[0]
        assert small == pytest.approx(sk.covariances_[0].ravel()[0], rel=1e-10)
        assert small == pytest.approx(9.6e-5, rel=0.02)


def test_gaussian_stats_about_different_shifts_do_not_add():
    X = np.random.default_rng(0).normal(size=(20, 2))
    W = np.ones((20, 2))
    a = G.GaussianStats.from_weights(X, W, np.zeros((2, 2)), "diag")
    b = G.GaussianStats.from_weights(X, W, np.ones((2, 2)), "diag")
    with pytest.raises(ValueError, match="different shifts"):
        a + b
    # The same shift given as (D,) and as (K, D) gives the same moments.
    c = G.GaussianStats.from_weights(X, W, np.full(2, 0.5), "full")
    d = G.GaussianStats.from_weights(X, W, np.full((2, 2), 0.5), "full")
    np.testing.assert_allclose(c.sum2, d.sum2, rtol=1e-13)


# ------------------------------------------------------------------ extreme magnitudes
def exact_nearest(x, model):
    """Index of the component with the highest log-density at ``x``, compared exactly
    (rational arithmetic for the quadratic forms: no overflow at any float magnitude)."""
    from fractions import Fraction

    K, D = model.means_.shape
    full = G.full_covars(model.covariances_, model.covariance_type, K, D)
    best, arg = None, None
    for k in range(K):
        P = np.linalg.inv(full[k])
        d = [Fraction(float(a)) - Fraction(float(m))
             for a, m in zip(x, model.means_[k], strict=True)]
        q = sum(d[i] * Fraction(float(P[i, j])) * d[j] for i in range(D) for j in range(D))
        lw = np.log(model.weights_[k]) - 0.5 * np.linalg.slogdet(full[k])[1]
        val = -q / 2 + Fraction(float(lw))
        if best is None or val > best:
            best, arg = val, k
    return arg


FAR_ROWS = np.array([[1e200, 1e200], [1e200, -1e200], [0.0, 1e200], [1e154, 1e154],
                     [-1e300, 1e300], [-1.7e308, 3.0]])


@pytest.mark.parametrize("covariance_type", TYPES)
def test_rows_far_from_every_component_get_posteriors_summing_to_one(covariance_type):
    # Issue 16, finding 5: a predict-time row at 1e200 gave NaN log-likelihoods and a
    # predict_proba row summing to 0.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2)) * np.array([1.0, 2.0])
    X[100:] += 5
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = gm.predict_proba(FAR_ROWS)
        ll = gm.score_samples(FAR_ROWS)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    assert not np.any(np.isnan(ll)) and np.all(ll < 0)
    assert [exact_nearest(x, gm) for x in FAR_ROWS] == list(gm.predict(FAR_ROWS))
    # With a missing entry the observed marginal decides.
    Xm = FAR_ROWS.copy()
    Xm[:, 1] = np.nan
    P = gm.predict_proba(Xm)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    assert not np.any(np.isnan(gm.score_samples(Xm)))


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1e90])
def test_fit_at_extreme_scales_is_finite(covariance_type, scale):
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(120, 2)) + np.repeat([[0, 0], [6, 6]], 60, axis=0)) * scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", EMDecreaseWarning)
        gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    for a in (gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_):
        assert np.all(np.isfinite(a))
    assert np.all(np.isfinite(gm.score_samples(X)))
    np.testing.assert_allclose(gm.predict_proba(X).sum(axis=1), 1.0)
    if scale == 1e90:  # variances representable: the clusters are found
        assert len(set(gm.predict(X[:60]))) == 1 and len(set(gm.predict(X[60:]))) == 1


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("scale", [1e200, 1e300, "max"])
def test_fit_beyond_the_representable_range_is_refused(covariance_type, scale):
    X = np.random.default_rng(1).normal(size=(50, 2))
    if scale == "max":
        X[0, 0] = np.finfo(float).max * 0.99
    else:
        X *= scale
    with pytest.raises(ValueError, match=r"at most 1e\+100 in magnitude"):
        GaussianMixture(2, covariance_type=covariance_type).fit(X)


def test_random_from_data_with_too_few_weighted_rows_is_a_clear_error():
    X = np.arange(10.0).reshape(5, 2)
    w = np.array([1.0, 2.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="n_components=3 distinct rows of non-zero weight"):
        GaussianMixture(3, init_params="random_from_data").fit(X, sample_weight=w)



def _scale_1e10_data():
    """Rows of scale 1e10 whose covariance has an exact zero entry (a balanced design):
    numpy's multivariate_normal, checking positive semi-definiteness with an absolute
    tolerance of 1e-8 after an SVD that leaves ~1e4 in that entry, warned on the fit."""
    rng = np.random.default_rng(0)
    g = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]] * 50, dtype=float)
    return np.column_stack([g[:, 0], g[:, 0] + g[:, 1] + 0.1 * rng.normal(size=200),
                            g[:, 1]]) * 1e10


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("K", [1, 2])
def test_sample_at_scale_1e10_is_silent_and_follows_the_covariances(covariance_type, K):
    gm = GaussianMixture(K, covariance_type=covariance_type, random_state=0).fit(
        _scale_1e10_data())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        S, y = gm.sample(100_000)
    assert S.shape == (100_000, 3) and np.all(np.isfinite(S))
    covs = G.full_covars(gm.covariances_, covariance_type, K, 3)
    for k in range(K):
        Sk = S[y == k]
        sd = np.sqrt(np.diag(covs[k]))
        assert np.all(np.abs(Sk.mean(axis=0) - gm.means_[k]) < 0.03 * sd)
        # Entries compared in units of the standard deviations (correlation scale).
        err = (np.cov(Sk.T) - covs[k]) / np.outer(sd, sd)
        assert np.abs(err).max() < 0.03, err


def test_sample_is_mean_plus_cholesky_factor_times_standard_normals():
    gm = GaussianMixture(1, covariance_type="full", random_state=5).fit(blobs(n=(300,)))
    S, y = gm.sample(7)
    rs = np.random.RandomState(5)
    rs.multinomial(7, gm.weights_)
    z = rs.standard_normal(size=(7, 3))
    expected = gm.means_[0] + z @ np.linalg.cholesky(gm.covariances_[0]).T
    np.testing.assert_allclose(S, expected, rtol=1e-12)
    np.testing.assert_array_equal(y, np.zeros(7, dtype=int))


# ------------------------------------------------------------------ monotone at the eigenvalue
# floor (issue 16, finding 7). Found by tests/test_reliability.py.
nan = np.nan
# Four rows in 4 dimensions with missing entries: the covariance is singular, floored at
# 1e-10 of its largest eigenvalue (condition number 1e10).
X_SINGULAR_MISSING = np.array([
    [1242.379643254119, 1257.2259531193145, 1046.4716246815187, nan],
    [510.38125596236836, 857.5313269547548, nan, 1507.7943395647096],
    [1005.4131878284122, 758.9786214690295, 3115.8517044664068, 1853.6564116747709],
    [1005.4131878284122, 758.9786214690295, nan, 1853.6564116747709],
])
# Three distinct rows in 3 dimensions, clusters 1e5 spreads apart: one 'tied' covariance of
# rank 2, floored (condition number 1e10).
X_FAR_RANK_2 = np.array([
    [-111617.10964803192, -29913.772480887576, 284893.2940168891],
    [112872.44187404422, -281085.38847145607, -886.8843767875898],
    [41403.646310810094, 40306.224279656846, 269828.4395222859],
    [41403.646310810094, 40306.224279656846, 269828.4395222859],
])


@pytest.mark.parametrize("X, covariance_type", [
    (X_SINGULAR_MISSING, "full"), (X_SINGULAR_MISSING, "tied"), (X_FAR_RANK_2, "tied"),
    (X_FAR_RANK_2, "full"),
])
def test_lower_bound_never_falls_at_the_eigenvalue_floor(X, covariance_type):
    # Fell by 1.39e-7 (missing, 'full', iteration 30) and 1.62e-7 (far, 'tied', iteration
    # 2) with EMDecreaseWarning: round-off of a log-likelihood with condition number 1e10.
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(1, covariance_type=covariance_type, random_state=0).fit(X)
    assert np.all(np.diff(gm.lower_bounds_) >= 0), np.diff(gm.lower_bounds_)
    assert gm.converged_
    # The refused step's M-step is skipped too: the fitted parameters are the accepted
    # ones, whose log-likelihood is the last bound recorded.
    np.testing.assert_allclose(gm.score(X), gm.lower_bound_, rtol=1e-13)


def _exact_mean_loglik(X, mean, cov):
    """Mean log-density of the rows of X (observed entries) under N(mean, cov), the quadratic
    form and determinant in exact rational arithmetic on the float64 parameters."""
    total = 0.0
    for x in X:
        o = np.flatnonzero(~np.isnan(x))
        A = [[Fraction(float(v)) for v in row] for row in cov[np.ix_(o, o)]]
        b = [Fraction(float(x[i])) - Fraction(float(mean[i])) for i in o]
        M = [row[:] + [bi] for row, bi in zip(A, b, strict=True)]
        det = Fraction(1)
        n = len(o)
        for i in range(n):  # Gaussian elimination (A is positive definite: no pivoting)
            det *= M[i][i]
            for r in range(i + 1, n):
                f = M[r][i] / M[i][i]
                M[r] = [a - f * c for a, c in zip(M[r], M[i], strict=True)]
        y = [Fraction(0)] * n
        for i in reversed(range(n)):
            y[i] = (M[i][n] - sum(M[i][j] * y[j] for j in range(i + 1, n))) / M[i][i]
        quad = sum(bi * yi for bi, yi in zip(b, y, strict=True))
        total += -0.5 * (float(quad) + math.log(det) + n * math.log(2 * math.pi))
    return total / len(X)


@pytest.mark.parametrize("X, covariance_type", [(X_SINGULAR_MISSING, "full"),
                                                (X_FAR_RANK_2, "tied")])
def test_loglik_roundoff_bounds_the_float_log_likelihood(X, covariance_type):
    # The falls above are round-off, not a wrong step: the float64 log-likelihood differs
    # from its exact value (rational arithmetic on the same float parameters) by up to
    # 1.6e-7 per sample here (X_FAR_RANK_2; 4e-8 for X_SINGULAR_MISSING), beyond the
    # monitor's 1e-8 + 1e-10 |value| and within G.loglik_roundoff (7e-6 and 9e-6).
    gm = GaussianMixture(1, covariance_type=covariance_type, random_state=0, max_iter=3,
                         tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    cov = G.full_covars(gm.covariances_, covariance_type, 1, X.shape[1])[0]
    exact = _exact_mean_loglik(X, gm.means_[0], cov)
    bound = G.loglik_roundoff(gm.covariances_, covariance_type)
    eig = np.linalg.eigvalsh(cov)
    assert eig[-1] / eig[0] > 1e9  # at the eigenvalue floor
    assert 1e-6 < bound < 1e-4
    assert abs(gm.score(X) - exact) <= bound


def test_loglik_roundoff():
    assert G.loglik_roundoff(np.array([[1e-10, 1.0]]), "diag") == 0.0
    assert G.loglik_roundoff(np.array([1.0, 2.0]), "spherical") == 0.0
    eps = np.finfo(float).eps
    cov = np.diag([1.0, 1e-6, 1e-10])
    np.testing.assert_allclose(G.loglik_roundoff(cov, "tied"), 3 * eps * 1e10, rtol=1e-6)
    np.testing.assert_allclose(G.loglik_roundoff(np.stack([np.eye(3), cov]), "full"),
                               3 * eps * 1e10, rtol=1e-6)


def test_a_genuine_fall_is_still_recorded_and_warned(monkeypatch):
    # The refusal of falls within round-off must not hide a wrong M-step: covariances made
    # 3 times too large at the third M-step lower the log-likelihood far beyond round-off.
    original = GaussianMixture.em_mstep
    calls = []

    def wrong_mstep(self, stats):
        original(self, stats)
        calls.append(1)
        if len(calls) == 3:
            self.covariances_ = self.covariances_ * 3.0

    monkeypatch.setattr(GaussianMixture, "em_mstep", wrong_mstep)
    gm = GaussianMixture(3, random_state=0, max_iter=6, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(EMDecreaseWarning, match="decreased"):
            gm.fit(blobs())
    assert np.diff(gm.lower_bounds_)[2] < -0.1


def test_one_rows_container_and_one_mixture_base():
    """GaussianMixture and MixtureOfFactorAnalyzers share the mixture base (inference, fit
    tail) and the one _Rows container."""
    from emx import MixtureOfFactorAnalyzers, factor, mixture

    assert issubclass(GaussianMixture, mixture.BaseMixture)
    assert issubclass(MixtureOfFactorAnalyzers, mixture.BaseMixture)
    assert factor._Rows is mixture._Rows
    for name in ("score_samples", "score", "predict", "predict_proba", "sample", "bic", "aic",
                 "em_summed"):
        assert name not in vars(GaussianMixture) and name not in vars(MixtureOfFactorAnalyzers)
