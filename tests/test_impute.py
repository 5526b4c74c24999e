"""Missing-data EM: GaussianMixture with NaN and EMImputer."""

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.utils.estimator_checks import parametrize_with_checks

from emx import EMDecreaseWarning, EMImputer, GaussianMixture
from emx import gaussian as G
from emx._missing import pattern_runs, split_runs

TYPES = G.COVARIANCE_TYPES


def gaussian_data(N, D=6, frac=0.2, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(D, D)) / np.sqrt(D)
    cov = A @ A.T + 0.2 * np.eye(D)
    mean = rng.normal(size=D) * 3
    X = rng.multivariate_normal(mean, cov, size=N)
    mask = rng.random(X.shape) < frac
    Xn = X.copy()
    Xn[mask] = np.nan
    return X, Xn, mask, mean, cov


@parametrize_with_checks(
    [EMImputer(), EMImputer(n_components=2, random_state=0), EMImputer(covariance_type="diag")]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def fitted_mixture(covariance_type, K=2, D=4, seed=1):
    rng = np.random.default_rng(seed)
    model = GaussianMixture(K, covariance_type=covariance_type)
    model.weights_ = rng.dirichlet(np.ones(K) * 3)
    model.means_ = rng.normal(size=(K, D)) * 2
    A = rng.normal(size=(K, D, D)) * 0.5
    full = A @ np.swapaxes(A, 1, 2) + np.eye(D)
    model.covariances_ = {
        "full": full,
        "tied": full[0],
        "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1),
    }[covariance_type]
    model.n_features_in_ = D
    return model


@pytest.mark.parametrize("covariance_type", TYPES)
def test_pattern_grouped_estep_equals_row_by_row(covariance_type):
    model = fitted_mixture(covariance_type)
    K, D = model.means_.shape
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, D)) * 2
    X[rng.random(X.shape) < 0.3] = np.nan
    X = X[~np.isnan(X).all(axis=1)]
    order, starts = pattern_runs(X)
    Xs = np.ascontiguousarray(X[order])
    shift = np.nanmean(X, axis=0)
    dens, log_w = model._density(), model._log_weights()
    resp, log_norm = model._missing_responsibilities(dens, log_w, Xs, starts)
    gs = model._missing_moments(dens, Xs, starts, resp, shift)
    # Split into small pieces (patterns cut across pieces): same statistics.
    pieces = split_runs(np.arange(len(Xs), dtype=np.intp), starts, 7)
    total = None
    for rows, local in pieces:
        r, _ = model._missing_responsibilities(dens, log_w, Xs[rows], local)
        part = model._missing_moments(dens, Xs[rows], local, r, shift)
        total = part if total is None else total + part
    # Row-by-row reference with scipy and the textbook conditional formulas.
    covs = G.full_covars(model.covariances_, covariance_type, K, D)
    ref_ll = np.empty(len(Xs))
    ref_resp = np.empty((len(Xs), K))
    ref_sum1, ref_sum2 = np.zeros((K, D)), np.zeros((K, D, D))
    for t, x in enumerate(Xs):
        o = ~np.isnan(x)
        m = ~o
        comps = []
        for k in range(K):
            S, mu = covs[k], model.means_[k]
            lp = multivariate_normal(mu[o], S[np.ix_(o, o)]).logpdf(x[o])
            B = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])
            xhat = x.copy()
            xhat[m] = mu[m] + B @ (x[o] - mu[o])
            C = np.zeros((D, D))
            C[np.ix_(m, m)] = S[np.ix_(m, m)] - B @ S[np.ix_(o, m)]
            comps.append((np.log(model.weights_[k]) + lp, xhat, C))
        a = np.array([c[0] for c in comps])
        ref_ll[t] = np.logaddexp.reduce(a)
        ref_resp[t] = np.exp(a - ref_ll[t])
        for k, (_, xhat, C) in enumerate(comps):
            d = xhat - shift
            ref_sum1[k] += ref_resp[t, k] * d
            ref_sum2[k] += ref_resp[t, k] * (np.outer(d, d) + C)
    np.testing.assert_allclose(log_norm, ref_ll, rtol=1e-10)
    np.testing.assert_allclose(resp, ref_resp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gs.sum1, ref_sum1, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(total.sum1, ref_sum1, rtol=1e-10, atol=1e-10)
    if covariance_type in ("diag", "spherical"):
        ref2 = np.diagonal(ref_sum2, axis1=1, axis2=2)
    elif covariance_type == "tied":
        ref2 = ref_sum2.sum(axis=0)
    else:
        ref2 = ref_sum2
    np.testing.assert_allclose(gs.sum2, ref2, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(total.sum2, ref2, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_mixture_with_missing_entries_never_decreases(covariance_type):
    _, Xn, *_ = gaussian_data(1500, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", EMDecreaseWarning)
        model = GaussianMixture(3, covariance_type=covariance_type, random_state=0, tol=1e-12,
                                max_iter=60).fit(Xn)
    lb = np.array(model.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-12 * np.abs(lb[1:]))
    assert np.all(np.isfinite(model.score_samples(Xn)))
    for name in ("weights_", "means_", "covariances_"):
        assert np.all(np.isfinite(getattr(model, name)))


def test_imputer_loglike_never_decreases_and_fills_only_missing():
    X, Xn, mask, *_ = gaussian_data(2000, seed=4)
    imp = EMImputer(tol=1e-10, max_iter=200).fit(Xn)
    ll = np.array(imp.loglike_)
    assert len(ll) > 5 and np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))
    out = imp.transform(Xn)
    np.testing.assert_array_equal(out[~mask], X[~mask])
    assert not np.isnan(out).any()
    # loglike_ is the observed-data log-likelihood: check the last one directly.
    final = imp.mixture_.score_samples(Xn).sum()
    assert final >= ll[-1] - 1e-6


def test_estimates_approach_the_truth_as_n_grows():
    errors = []
    for N in (300, 3000, 30000):
        _, Xn, _, mean, cov = gaussian_data(N, seed=5)
        imp = EMImputer(tol=1e-8, max_iter=300).fit(Xn)
        errors.append((np.abs(imp.mean_ - mean).max(), np.abs(imp.covariance_ - cov).max()))
    errors = np.array(errors)
    assert np.all(np.diff(errors[:, 0]) < 0) and np.all(np.diff(errors[:, 1]) < 0)
    assert errors[-1, 0] < 0.05 and errors[-1, 1] < 0.05


def test_imputation_beats_mean_and_matches_iterative_imputer():
    X, Xn, mask, *_ = gaussian_data(4000, D=10, seed=6)

    def rmse(out):
        return np.sqrt(np.mean((out - X)[mask] ** 2))

    ours = rmse(EMImputer().fit_transform(Xn))
    mean = rmse(SimpleImputer().fit_transform(Xn))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        iterative = rmse(IterativeImputer(random_state=0, max_iter=20).fit_transform(Xn))
    assert ours < mean
    assert ours <= iterative * 1.001


def test_mixture_imputer_uses_the_clusters():
    rng = np.random.default_rng(7)
    a = rng.multivariate_normal([0, 0, 0], np.eye(3) * 0.1 + 0.9, size=1500)
    b = rng.multivariate_normal([6, -6, 6], np.eye(3) * 0.1 + 0.9, size=1500)
    X = np.vstack([a, b])
    Xn = X.copy()
    mask = rng.random(X.shape) < 0.25
    Xn[mask] = np.nan

    def rmse(out):
        return np.sqrt(np.mean((out - X)[mask] ** 2))

    one = rmse(EMImputer(n_components=1).fit_transform(Xn))
    two = EMImputer(n_components=2, random_state=0).fit(Xn)
    assert rmse(two.transform(Xn)) < one
    assert two.means_.shape == (2, 3) and two.weights_.shape == (2,)


def test_empty_rows_columns_and_complete_data():
    X, Xn, *_ = gaussian_data(500, seed=8)
    Xe = Xn.copy()
    Xe[:5] = np.nan  # rows with nothing observed: left out of the fit
    a = EMImputer(tol=1e-10).fit(Xe)
    b = EMImputer(tol=1e-10).fit(Xn[5:])
    np.testing.assert_allclose(a.mean_, b.mean_, rtol=1e-10)
    np.testing.assert_allclose(a.transform(Xe)[:5], np.tile(a.mean_, (5, 1)), rtol=1e-12)
    bad = Xn.copy()
    bad[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"Column\(s\) \[2\]"):
        EMImputer().fit(bad)
    with pytest.raises(ValueError, match="infinity"):
        EMImputer().fit(np.where(np.isnan(Xn), np.inf, Xn))
    full = EMImputer(reg_covar=0.0).fit(X)
    np.testing.assert_allclose(full.mean_, X.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(full.covariance_, np.cov(X.T, ddof=0), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(full.transform(X), X)


def test_placeholder_missing_values():
    X, Xn, mask, *_ = gaussian_data(800, seed=9)
    placeholder = np.where(np.isnan(Xn), -999.0, Xn)
    a = EMImputer(missing_values=-999.0).fit_transform(placeholder)
    b = EMImputer().fit_transform(Xn)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert np.all(placeholder[mask] == -999.0)  # the input is not modified


def test_sample_weights_with_missing_entries_are_repetitions():
    _, Xn, *_ = gaussian_data(200, seed=10)
    sw = np.random.default_rng(0).integers(0, 3, size=len(Xn))
    kw = dict(covariance_type="full", random_state=0, tol=1e-10, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = GaussianMixture(2, **kw).fit(Xn, sample_weight=sw)
        b = GaussianMixture(2, **kw).fit(np.repeat(Xn, sw, axis=0))
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-8)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------ issue 16, finding 3
@pytest.mark.parametrize("covariance_type", TYPES)
def test_mixture_imputer_returns_observed_entries_bit_for_bit(covariance_type):
    # Rows were rebuilt as sum_k resp_k * fill_k: 2.0 came back as 1.9999999999999998.
    rng = np.random.default_rng(3)
    X = rng.integers(0, 7, size=(80, 4)).astype(float)
    X[40:] += 10
    X[rng.random(X.shape) < 0.2] = np.nan
    X = X[~np.isnan(X).all(axis=1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        out = EMImputer(n_components=3, covariance_type=covariance_type,
                        random_state=0).fit_transform(X)
    observed = ~np.isnan(X)
    assert np.array_equal(out[observed], X[observed])
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_collapsing_component_on_an_incomplete_row_stays_finite(covariance_type, init_params):
    # 'diag', one missing entry, 30 rows of scale 1e5, 3 components gave NaN parameters: the
    # expected scatter went negative beyond reg_covar.
    for seed in range(6):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(30, 2)) * 1e5
        X[seed, 1] = np.nan
        X[seed, 0] *= 4
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("error", EMDecreaseWarning)
            gm = GaussianMixture(3, covariance_type=covariance_type, init_params=init_params,
                                 random_state=seed).fit(X)
        assert np.all(np.isfinite(gm.means_)) and np.all(np.isfinite(gm.covariances_))
        assert np.all(gm.covariances_ >= gm.reg_covar)


def test_scatter_is_never_negative():
    # Moments whose cancellation leaves a (round-off) negative sum of squares.
    gs = G.GaussianStats(np.array([1.0]), np.array([[1e5]]), np.array([[1e10 * (1 - 1e-15)]]),
                         np.zeros(1))
    assert G._scatter(gs, np.array([[1e5]]), "diag")[0, 0] == 0.0


@pytest.mark.parametrize("covariance_type", TYPES)
def test_row_whose_responsibilities_underflow_keeps_its_observed_values(covariance_type):
    # Such a row came back all zeros, observed entries included.
    X = gaussian_data(300, D=4)[1]
    imp = EMImputer(n_components=2, covariance_type=covariance_type, random_state=0).fit(X)
    far = np.array([[1e200, np.nan, -1e200, 3.0], [2.0, np.nan, 1e300, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = imp.transform(far)
    observed = ~np.isnan(far)
    assert np.array_equal(out[observed], far[observed])
    assert not np.any(np.isnan(out))


def test_mixture_imputer_is_monotone_with_default_regularisation():
    # Issue 16, finding 7: reg_covar moved the M-step off the maximiser of EM's objective and
    # the log-likelihood fell (here by 0.003 per row on breast_cancer with 20% missing).
    from sklearn.datasets import load_breast_cancer

    X = load_breast_cancer().data
    rng = np.random.default_rng(0)
    X[rng.random(X.shape) < 0.2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        imp = EMImputer(n_components=2, covariance_type="tied", random_state=0).fit(X)
    assert np.all(np.diff(imp.loglike_) >= -1e-8 * np.abs(imp.loglike_[1:]))


def test_decrease_warning_points_at_the_callers_line(monkeypatch):
    X = gaussian_data(200, D=3)[1]
    original = GaussianMixture.em_mstep
    calls = []

    def worse_mstep(self, stats):  # an M-step that lowers the objective on its 2nd call
        original(self, stats)
        calls.append(1)
        if len(calls) == 2:
            self.means_ = self.means_ + 5.0

    monkeypatch.setattr(GaussianMixture, "em_mstep", worse_mstep)
    with pytest.warns(EMDecreaseWarning) as record:
        EMImputer(n_components=2, max_iter=5, tol=0, random_state=0).fit(X)
    decreases = [r for r in record if r.category is EMDecreaseWarning]
    assert decreases and all(r.filename == __file__ for r in decreases)


def test_convergence_warning_points_at_the_users_line():
    X = gaussian_data(100, D=3)[1]
    with pytest.warns(ConvergenceWarning) as record:
        EMImputer(n_components=2, max_iter=1, random_state=0).fit(X)
    assert all(r.filename == __file__ for r in record if r.category is ConvergenceWarning)


def test_imputer_tied_monotone_at_the_eigenvalue_floor():
    # EMImputer(2, 'tied') fell by 5.9e-8 at iteration 31 (EMDecreaseWarning): round-off of
    # a log-likelihood whose tied covariance sits at the eigenvalue floor (condition number
    # 1e10); such a fall is now refused (EM stops at the attainable precision).
    nan = np.nan
    X = np.array([
        [-2485.702405358285, -932.1384020093569, 1864.2768040187138, 5592.8304120561415],
        [-1864.2768040187138, -310.7128006697856, 5903.543212725926, 3107.128006697856],
        [-5592.8304120561415, 3107.128006697856, nan, 6214.256013395712],
        [3107.128006697856, 1242.8512026791425, -4349.979209376998, nan],
        [-3107.128006697856, 3107.128006697856, 932.1384020093569, nan],
        [-1864.2768040187138, -310.7128006697856, 5903.543212725926, 3107.128006697856],
        [-1864.2768040187138, 310.7128006697856, -1242.8512026791425, 1553.564003348928],
        [3107.128006697856, nan, -4349.979209376998, 8078.532817414426],
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        imp = EMImputer(2, covariance_type="tied", random_state=0).fit(X)
    assert np.all(np.diff(imp.mixture_.lower_bounds_) >= 0)
    assert np.all(np.diff(imp.loglike_) >= 0)
    out = imp.transform(X)
    assert np.all(np.isfinite(out)) and np.array_equal(out[~np.isnan(X)], X[~np.isnan(X)])


def test_missing_patterns_is_the_one_grouping():
    """missing_patterns groups rows exactly as pattern_runs does (one routine), and every
    row lands in the pattern of its own NaN mask."""
    from emx._missing import missing_patterns

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    X[rng.uniform(size=X.shape) < 0.3] = np.nan
    pats = missing_patterns(X)
    order, starts = pattern_runs(X)
    assert [list(p.rows) for p in pats] == [
        list(order[a:b]) for a, b in zip(starts[:-1], starts[1:], strict=True)
    ]
    seen = np.concatenate([p.rows for p in pats])
    assert sorted(seen) == list(range(len(X)))
    for p in pats:
        np.testing.assert_array_equal(~np.isnan(X[p.rows]), np.broadcast_to(p.observed,
                                                                          (len(p.rows), 4)))
    assert len({tuple(p.observed) for p in pats}) == len(pats)
    assert missing_patterns(np.zeros((0, 3))) == []
