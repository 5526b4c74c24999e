"""FactorAnalysis and MixtureOfFactorAnalyzers: scikit-learn agreement, EM monotonicity,
missing values (against a row-by-row reference), rotations, recovery, bad input."""

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn import decomposition as skd
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from emx._em import ChunkRunner, EMDecreaseWarning
from emx.factor import FactorAnalysis, MixtureOfFactorAnalyzers, orthomax


@parametrize_with_checks(
    [
        FactorAnalysis(),
        FactorAnalysis(n_components=1, rotation="varimax"),
        MixtureOfFactorAnalyzers(n_components=2),
        MixtureOfFactorAnalyzers(n_components=2, n_factors=2, noise_type="per_component"),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(autouse=True)
def one_blas_thread():
    # scikit-learn's SVD-based fit is ~50x slower with BLAS threads fighting over 2 cores.
    with threadpool_limits(limits=1):
        yield


def fa_sample(seed=0, n=2000, D=10, k=3, offset=5.0):
    """Rows from a known factor-analysis model; returns (X, covariance, W, psi, mean)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(D, k))
    psi = rng.uniform(0.2, 1.0, D)
    mean = offset + rng.normal(size=D)
    X = mean + rng.normal(size=(n, k)) @ W.T + rng.normal(size=(n, D)) * np.sqrt(psi)
    return X, W @ W.T + np.diag(psi), W, psi, mean


def remove_entries(X, fraction, seed=1):
    rng = np.random.default_rng(seed)
    X = X.copy()
    X[rng.random(X.shape) < fraction] = np.nan
    return X


def tight(**kw):
    return dict(tol=1e-10, max_iter=20_000, **kw)


def match_rows(A, B):
    """B's rows reordered and sign-flipped to line up with A's."""
    perm = np.abs(A @ B.T).argmax(axis=1)
    assert sorted(perm) == list(range(len(A)))
    signs = np.sign(np.einsum("ij,ij->i", A, B[perm]))
    return signs[:, None] * B[perm]


def orthomax_criterion(L, gamma):
    L2 = L**2
    return float(np.sum(L2**2) - gamma / L.shape[0] * np.sum(L2.sum(axis=0) ** 2))


# ============================================================================ FactorAnalysis
def test_same_maximum_as_scikit_learn():
    X, *_ = fa_sample()
    ours = FactorAnalysis(3, **tight()).fit(X)
    ref = skd.FactorAnalysis(3, svd_method="lapack", **tight()).fit(X)
    assert ours.score(X) == pytest.approx(ref.score(X), rel=1e-10)
    cov, ref_cov = ours.get_covariance(), ref.get_covariance()
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-6, atol=1e-6 * np.abs(ref_cov).max())
    np.testing.assert_allclose(ours.noise_variance_, ref.noise_variance_, rtol=1e-5)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(ours.get_precision(), ref.get_precision(), rtol=1e-5, atol=1e-6)
    # loglike_ means the same thing: the total log-likelihood
    assert ours.loglike_[-1] == pytest.approx(ref.loglike_[-1], rel=1e-10)
    assert ours.loglike_[-1] == pytest.approx(ours.score(X) * len(X), rel=1e-9)
    # components_ in scikit-learn's orientation, up to the sign of each factor
    np.testing.assert_allclose(ours.components_, match_rows(ours.components_, ref.components_),
                               atol=1e-5)
    Z, Zref = ours.transform(X), ref.transform(X)
    np.testing.assert_allclose(np.abs(Z), np.abs(Zref), atol=1e-5)
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-6)


def test_default_settings_also_agree_with_scikit_learn():
    """scikit-learn's defaults (tol=1e-2 on the total log-likelihood, randomized SVD)."""
    X, *_ = fa_sample(seed=3, n=1000, D=8, k=2)
    ours = FactorAnalysis(2).fit(X)
    ref = skd.FactorAnalysis(2).fit(X)
    # Both stop when an iteration gains less than 0.01 in total log-likelihood, before the
    # maximum on this slowly converging sample (the covariances still differ by ~2%).
    assert ours.score(X) == pytest.approx(ref.score(X), rel=1e-5)


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_loglike_never_decreases_and_is_the_total_log_likelihood(missing):
    X, *_ = fa_sample(seed=4, n=600, D=8, k=2)
    X = remove_entries(X, missing)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an EMDecreaseWarning fails the test
        model = FactorAnalysis(2, tol=1e-9, max_iter=5000).fit(X)
    ll = np.array(model.loglike_)
    assert len(ll) == model.n_iter_ > 10
    assert np.all(np.diff(ll) >= -1e-10 * np.abs(ll[1:]))
    assert ll[-1] > ll[0] + 1.0
    # loglike_[i] is the log-likelihood of the parameters after i M-steps, and the fitted
    # parameters are those of the last entry (as scikit-learn's)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for m in (1, 5):
            before = FactorAnalysis(2, tol=0.0, max_iter=m).fit(X)
            after = FactorAnalysis(2, tol=0.0, max_iter=m + 1).fit(X)
            assert after.loglike_[: m] == pytest.approx(before.loglike_, rel=1e-12)
            assert before.loglike_[-1] == pytest.approx(before.score_samples(X).sum(),
                                                        rel=1e-12)


def test_score_samples_is_the_gaussian_density():
    X, *_ = fa_sample(seed=5, n=300, D=6, k=2)
    model = FactorAnalysis(2).fit(X)
    ref = multivariate_normal(model.mean_, model.get_covariance()).logpdf(X)
    np.testing.assert_allclose(model.score_samples(X), ref, rtol=1e-10)
    np.testing.assert_allclose(model.get_precision() @ model.get_covariance(), np.eye(6),
                               atol=1e-10)


@pytest.mark.parametrize("rotation", ["varimax", "quartimax"])
def test_rotation(rotation):
    X, *_ = fa_sample(seed=6)
    plain = FactorAnalysis(3, **tight()).fit(X)
    ours = FactorAnalysis(3, rotation=rotation, **tight()).fit(X)
    ref = skd.FactorAnalysis(3, svd_method="lapack", rotation=rotation, **tight()).fit(X)
    gamma = {"varimax": 1.0, "quartimax": 0.0}[rotation]
    # an orthogonal rotation of the same loadings: same model, at least as good a criterion
    np.testing.assert_allclose(ours.get_covariance(), plain.get_covariance(), rtol=1e-10)
    R = np.linalg.lstsq(plain.components_.T, ours.components_.T, rcond=None)[0]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-8)
    # a maximum of the criterion: no nearby rotation does better
    best = orthomax_criterion(ours.components_.T, gamma)
    rng = np.random.default_rng(0)
    for _ in range(20):
        A = rng.normal(size=(3, 3)) * 1e-3
        Q = np.linalg.qr(np.eye(3) + A - A.T)[0]
        Q *= np.sign(np.diag(Q))
        assert orthomax_criterion(ours.components_.T @ Q, gamma) <= best + 1e-12
    # scikit-learn stops its rotation at a looser tolerance: close, not equal
    np.testing.assert_allclose(ours.components_, match_rows(ours.components_, ref.components_),
                               atol=5e-3)
    assert ours.score(X) == pytest.approx(ref.score(X), rel=1e-10)


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_orthomax_finds_the_best_planar_rotation(gamma):
    """Two factors: the rotation is one angle, so a fine grid finds the maximum."""
    L = np.random.default_rng(7).normal(size=(9, 2))
    best = orthomax(L, gamma)
    angles = np.linspace(0, np.pi / 2, 20001)  # the criterion has period pi / 2
    grid = max(
        orthomax_criterion(L @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]), gamma)
        for a in angles
    )
    assert orthomax_criterion(best, gamma) >= grid - 1e-9
    np.testing.assert_allclose(best @ best.T, L @ L.T, atol=1e-12)


def test_shapes_and_defaults():
    X, *_ = fa_sample(seed=8, n=200, D=5, k=2)
    model = FactorAnalysis(2)
    Z = model.fit_transform(X)
    assert Z.shape == (200, 2)
    np.testing.assert_allclose(Z, model.transform(X), rtol=1e-12)
    assert model.components_.shape == (2, 5)
    assert model.noise_variance_.shape == model.mean_.shape == (5,)
    assert model.score_samples(X).shape == (200,)
    assert isinstance(model.score(X), float)
    assert model.get_covariance().shape == model.get_precision().shape == (5, 5)
    assert model.n_features_in_ == 5
    assert list(model.get_feature_names_out()) == ["factoranalysis0", "factoranalysis1"]
    assert FactorAnalysis().fit(X).components_.shape == (5, 5)
    zero = FactorAnalysis(0).fit(X)
    assert zero.components_.shape == (0, 5)
    np.testing.assert_allclose(zero.noise_variance_, X.var(axis=0), rtol=1e-8)


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_far_from_origin_matches_centred_fit(missing):
    """Moments are taken about the data mean: a 1e6 offset changes nothing but round-off."""
    X, *_ = fa_sample(seed=30, n=300, D=6, k=2, offset=0.0)
    X = remove_entries(X, missing)
    a = FactorAnalysis(2, tol=1e-8).fit(X)
    b = FactorAnalysis(2, tol=1e-8).fit(X + 1e6)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(b.loglike_, a.loglike_, rtol=1e-11)
    np.testing.assert_allclose(b.get_covariance(), a.get_covariance(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b.mean_ - 1e6, a.mean_, atol=1e-8)


def test_constant_column_ends_at_the_noise_floor():
    X, *_ = fa_sample(seed=31, n=300, D=6, k=2)
    X[:, 1] = 3.0
    model = FactorAnalysis(2).fit(X)
    assert 0 < model.noise_variance_[1] < 1e-10
    assert np.all(np.isfinite(model.score_samples(X)))
    mfa = MixtureOfFactorAnalyzers(2, reg_covar=0.0, random_state=0).fit(X)
    assert np.all(mfa.noise_variance_ > 0) and np.isfinite(mfa.score(X))


def test_noise_variance_init_is_used():
    X, *_ = fa_sample(seed=9, n=300, D=6, k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = FactorAnalysis(2, max_iter=1, noise_variance_init=np.ones(6)).fit(X)
        b = FactorAnalysis(2, max_iter=1, noise_variance_init=np.full(6, 3.0)).fit(X)
    assert a.loglike_[0] != b.loglike_[0]


# ---------------------------------------------------------------------------- missing values
def reference_estep(X, W, psi, mean):
    """Row by row: expected moments of the rows and the observed-data log-likelihood."""
    D = X.shape[1]
    cov = W @ W.T + np.diag(psi)
    n, s1, s2, ll = 0, np.zeros(D), np.zeros((D, D)), 0.0
    for x in X:
        o = ~np.isnan(x)
        m = ~o
        if not o.any():
            continue
        gain = cov[np.ix_(m, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
        e = x.copy()
        e[m] = mean[m] + gain @ (x[o] - mean[o])
        C = np.zeros((D, D))
        C[np.ix_(m, m)] = cov[np.ix_(m, m)] - gain @ cov[np.ix_(o, m)]
        n += 1
        s1 += e
        s2 += np.outer(e, e) + C
        ll += multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(x[o])
    return n, s1, s2, ll


def test_pattern_estep_equals_row_by_row_reference():
    X, _, W, psi, mean = fa_sample(seed=10, n=400, D=7, k=2)
    X = remove_entries(X, 0.3)
    X[5] = np.nan  # a row with nothing observed
    rng = np.random.default_rng(11)
    model = FactorAnalysis(2)
    data = model._prepare(X)
    # parameters away from the data's, so that the conditional fill matters
    model._W = W + 0.3 * rng.normal(size=W.shape)
    model.noise_variance_ = psi * rng.uniform(0.5, 2.0, size=psi.shape)
    model.mean_ = mean + 0.2 * rng.normal(size=mean.shape)
    with ChunkRunner(1) as runner:
        stats = model.em_summed(model.em_estep(data, runner))
    n, s1, s2, ll = reference_estep(X, model._W, model.noise_variance_, model.mean_)
    assert stats.count == n == 399
    np.testing.assert_allclose(stats.mean(), s1 / n, rtol=1e-10)
    second = stats.covariance() + np.outer(stats.mean(), stats.mean())
    np.testing.assert_allclose(second, s2 / n, rtol=1e-10, atol=1e-10 * np.abs(s2 / n).max())
    assert stats.loglik == pytest.approx(ll, rel=1e-10)


def test_missing_values_approach_the_truth():
    X, truth, *_ = fa_sample(seed=12)
    Xm = remove_entries(X, 0.2)
    assert 0.17 < np.isnan(Xm).mean() < 0.23
    full = FactorAnalysis(3, tol=1e-6).fit(X)
    miss = FactorAnalysis(3, tol=1e-6).fit(Xm)

    def rel(A, B):
        return np.linalg.norm(A - B) / np.linalg.norm(B)

    assert rel(full.get_covariance(), truth) < 0.08
    assert rel(miss.get_covariance(), truth) < 0.08
    assert rel(miss.get_covariance(), full.get_covariance()) < 0.05
    # Mean imputation followed by FA is visibly worse (it shrinks the covariances).
    imputed = np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm)
    naive = FactorAnalysis(3, tol=1e-6).fit(imputed)
    assert rel(naive.get_covariance(), truth) > 2 * rel(miss.get_covariance(), truth)
    assert np.all(np.diff(miss.loglike_) >= -1e-10 * np.abs(miss.loglike_[-1]))


def test_all_missing_rows_are_skipped():
    X, *_ = fa_sample(seed=13, n=300, D=6, k=2)
    X = remove_entries(X, 0.15)
    padded = np.insert(X, [0, 100, 300], np.nan, axis=0)
    a = FactorAnalysis(2, tol=1e-6).fit(X)
    b = FactorAnalysis(2, tol=1e-6).fit(padded)
    np.testing.assert_allclose(b.loglike_, a.loglike_, rtol=1e-12)
    np.testing.assert_allclose(b.get_covariance(), a.get_covariance(), rtol=1e-10)
    assert b.score_samples(padded)[0] == 0.0
    np.testing.assert_array_equal(b.transform(padded)[[0, 101, 302]], 0.0)


def test_all_missing_column_raises():
    X, *_ = fa_sample(seed=14, n=50, D=4, k=1)
    X[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"Column\(s\) \[2\].*no observed value"):
        FactorAnalysis(1).fit(X)


def test_transform_and_score_with_missing_entries():
    X, *_ = fa_sample(seed=15, n=300, D=6, k=2)
    model = FactorAnalysis(2).fit(X)
    Xm = remove_entries(X, 0.3, seed=16)
    Z, ll = model.transform(Xm), model.score_samples(Xm)
    assert Z.shape == (300, 2) and ll.shape == (300,)
    W, mean, cov = model.components_, model.mean_, model.get_covariance()
    for i in range(0, 300, 7):
        o = ~np.isnan(Xm[i])
        if not o.any():
            assert ll[i] == 0 and np.all(Z[i] == 0)
            continue
        # z and x_o are jointly Gaussian with Cov(z, x_o) = W_o^T
        expect = W[:, o] @ np.linalg.solve(cov[np.ix_(o, o)], Xm[i, o] - mean[o])
        np.testing.assert_allclose(Z[i], expect, rtol=1e-9, atol=1e-12)
        ref = multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(Xm[i, o])
        assert ll[i] == pytest.approx(ref, rel=1e-10)
    assert np.isfinite(model.score(Xm))


def test_bad_input_raises():
    X, *_ = fa_sample(seed=17, n=30, D=4, k=1)
    with pytest.raises(ValueError, match="infinity|Inf"):
        FactorAnalysis(1).fit(np.where(np.eye(30, 4) > 0, np.inf, X))
    with pytest.raises(ValueError, match="n_components"):
        FactorAnalysis(5).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        FactorAnalysis(-1).fit(X)
    with pytest.raises(ValueError, match="rotation"):
        FactorAnalysis(1, rotation="promax").fit(X)
    with pytest.raises(ValueError, match="noise_variance_init"):
        FactorAnalysis(1, noise_variance_init=np.ones(3)).fit(X)
    with pytest.raises(ValueError, match="noise_variance_init"):
        FactorAnalysis(1, noise_variance_init=-np.ones(4)).fit(X)
    with pytest.raises(ValueError, match="tol"):
        FactorAnalysis(1, tol=-1.0).fit(X)
    with pytest.raises(ValueError, match="2D"):
        FactorAnalysis(1).fit(X[:, 0])
    model = FactorAnalysis(1).fit(X)
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :3])


# ============================================================================ mixture
def mfa_sample(seed=20, n=(1500, 2500), D=6, q=2):
    """Two well-separated factor analyzers with their own noise; returns X and the truth."""
    rng = np.random.default_rng(seed)
    parts, covs, means = [], [], []
    for k, m in enumerate(n):
        W = rng.normal(size=(D, q)) * (1.0 + k)
        psi = rng.uniform(0.1, 0.5, D)
        mu = rng.normal(size=D) * 6.0
        parts.append(mu + rng.normal(size=(m, q)) @ W.T + rng.normal(size=(m, D)) * np.sqrt(psi))
        covs.append(W @ W.T + np.diag(psi))
        means.append(mu)
    X = np.concatenate(parts)
    return X, np.array(covs), np.array(means), np.array(n) / sum(n)


@pytest.mark.parametrize("noise_type", ["per_component", "shared"])
def test_mixture_recovers_components(noise_type):
    X, covs, means, weights = mfa_sample()
    model = MixtureOfFactorAnalyzers(
        2, n_factors=2, noise_type=noise_type, n_init=2, random_state=0, tol=1e-6, max_iter=500
    ).fit(X)
    assert model.converged_
    order = [int(np.argmin(np.linalg.norm(model.means_ - m, axis=1))) for m in means]
    assert sorted(order) == [0, 1]
    np.testing.assert_allclose(model.weights_[order], weights, atol=0.01)
    np.testing.assert_allclose(model.means_[order], means, atol=0.2)
    fitted = model.get_covariance()[order]
    for k in range(2):
        err = np.linalg.norm(fitted[k] - covs[k]) / np.linalg.norm(covs[k])
        # shared noise is a misspecified model here (the true noises differ): looser
        assert err < (0.1 if noise_type == "per_component" else 0.2)
    assert model.components_.shape == (2, 2, 6)
    expected = (6,) if noise_type == "shared" else (2, 6)
    assert model.noise_variance_.shape == expected
    np.testing.assert_array_equal(model.predict(X[:1500]), order[0])
    assert np.all(model.noise_variance_ >= model.reg_covar)


@pytest.mark.parametrize("noise_type", ["per_component", "shared"])
def test_mixture_lower_bound_never_decreases(noise_type):
    X, *_ = mfa_sample(seed=21, n=(300, 400), D=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        model = MixtureOfFactorAnalyzers(
            3, n_factors=1, noise_type=noise_type, random_state=1, tol=1e-7, max_iter=300
        )
        with pytest.warns(ConvergenceWarning):  # 3 components for 2 clusters: slow
            model.fit(X)
    lb = np.array(model.lower_bounds_)
    assert len(lb) == model.n_iter_ > 5
    assert np.all(np.diff(lb) >= -1e-12 * np.abs(lb[1:]))
    assert model.lower_bound_ == lb[-1]


@pytest.mark.parametrize("noise_type", ["per_component", "shared"])
def test_one_component_mixture_is_factor_analysis(noise_type):
    X, *_ = fa_sample(seed=22, n=500, D=6, k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mfa = MixtureOfFactorAnalyzers(1, n_factors=2, noise_type=noise_type, tol=0.0,
                                       max_iter=40, reg_covar=0.0).fit(X)
        # FactorAnalysis returns the parameters of its last E-step (scikit-learn's): one
        # more iteration gives those after the mixture's 40 M-steps.
        fa = FactorAnalysis(2, tol=0.0, max_iter=41).fit(X)
    # lower_bounds_ are per row, loglike_ totals
    np.testing.assert_allclose(np.array(mfa.lower_bounds_) * len(X), fa.loglike_[:40],
                               rtol=1e-12)
    np.testing.assert_allclose(mfa.get_covariance()[0], fa.get_covariance(), rtol=1e-10)
    np.testing.assert_allclose(mfa.score_samples(X), fa.score_samples(X), rtol=1e-10)


def test_mixture_density_sampling_and_criteria():
    X, *_ = mfa_sample(seed=23, n=(200, 300), D=4, q=1)
    model = MixtureOfFactorAnalyzers(2, n_factors=1, noise_type="per_component",
                                     random_state=0).fit(X)
    dens = sum(
        w * multivariate_normal(m, c).pdf(X)
        for w, m, c in zip(model.weights_, model.means_, model.get_covariance(), strict=True)
    )
    np.testing.assert_allclose(model.score_samples(X), np.log(dens), rtol=1e-10)
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    S, y = model.sample(50)
    assert S.shape == (50, 4) and y.shape == (50,)
    n_par = 1 + 2 * 4 + 2 * 4 + 2 * 4  # weights, means, loadings (q=1), noise
    assert model.bic(X) == pytest.approx(-2 * model.score(X) * 500 + n_par * np.log(500))
    assert model.aic(X) == pytest.approx(-2 * model.score(X) * 500 + 2 * n_par)


def test_mixture_threads_give_identical_results():
    X, *_ = mfa_sample(seed=24, n=(6000, 5000), D=5)
    fits = [
        MixtureOfFactorAnalyzers(2, n_factors=2, random_state=0, n_jobs=j, max_iter=20).fit(X)
        for j in (1, 2)
    ]
    assert fits[0].lower_bounds_ == fits[1].lower_bounds_
    np.testing.assert_array_equal(fits[0].get_covariance(), fits[1].get_covariance())


def test_mixture_bad_input_raises():
    X, *_ = mfa_sample(seed=25, n=(15, 15), D=4, q=1)
    with pytest.raises(ValueError, match="NaN.*FactorAnalysis"):
        MixtureOfFactorAnalyzers(2).fit(np.where(np.eye(30, 4) > 0, np.nan, X))
    with pytest.raises(ValueError, match="2D"):
        MixtureOfFactorAnalyzers(2).fit(X[:, 0])
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        MixtureOfFactorAnalyzers(5).fit(X[:4])
    with pytest.raises(ValueError, match="n_factors"):
        MixtureOfFactorAnalyzers(2, n_factors=5).fit(X)
    with pytest.raises(ValueError, match="noise_type"):
        MixtureOfFactorAnalyzers(2, noise_type="diag").fit(X)
    with pytest.raises(ValueError, match="reg_covar"):
        MixtureOfFactorAnalyzers(2, reg_covar=-1.0).fit(X)
    model = MixtureOfFactorAnalyzers(2).fit(X)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        model.score_samples(np.full((2, 4), np.nan))


# ------------------------------------------------------------------ extreme magnitudes
def two_clusters(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 4))
    X[100:] += 5
    return X


@pytest.mark.parametrize("v", [1e-300, 1e-200, 1e300, np.finfo(float).max])
def test_noise_variance_init_anywhere_gives_a_finite_fit(v):
    # Issue 16, finding 5: noise_variance_init=1e-300 returned NaN.
    X = two_clusters()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fa = FactorAnalysis(2, noise_variance_init=np.full(4, v)).fit(X)
    assert np.all(np.isfinite(fa.components_)) and np.all(fa.noise_variance_ > 0)
    assert fa.score(X) == pytest.approx(FactorAnalysis(2).fit(X).score(X), abs=0.05)


@pytest.mark.parametrize("model", [FactorAnalysis(2),
                                   MixtureOfFactorAnalyzers(2, n_factors=1, random_state=0)])
def test_extreme_scales(model):
    X = two_clusters()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", EMDecreaseWarning)
        fitted = model.fit(X * 1e-300)
        assert np.all(np.isfinite(fitted.score_samples(X * 1e-300)))
        for name in ("components_", "noise_variance_"):
            assert np.all(np.isfinite(getattr(fitted, name)))
    for bad in (X * 1e200, X * 1e300, np.where(np.arange(200)[:, None] == 0,
                                                 np.finfo(float).max, X)):
        with pytest.raises(ValueError, match=r"at most 1e\+100 in magnitude"):
            model.fit(bad)
    # Rows far from the model at predict time: no NaN, posteriors summing to 1.
    model.fit(X)
    far = np.array([[1e200] * 4, [1e154] * 4, [-1e300, 0.0, 0.0, 1e300], [1e60] * 4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ll = model.score_samples(far)
        assert not np.any(np.isnan(ll)) and np.all(ll < 0)
        assert np.isfinite(ll[-1])
        if isinstance(model, MixtureOfFactorAnalyzers):
            np.testing.assert_allclose(model.predict_proba(far).sum(axis=1), 1.0)
        else:
            assert np.all(np.isfinite(model.transform(far[[0, 1, 3]])))


def test_mixture_of_factor_analyzers_with_a_constant_column_is_monotone():
    # The initial noise variances sat below the M-step's floor (a constant column), so the
    # first M-step's flooring lowered the likelihood by 3.9 per row (found by a sweep of
    # default settings, issue 16 finding 7).
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 2)) * [1.0, 3.0] + rng.normal(size=(4, 2))[rng.integers(0, 4, 60)]
    X[:, 0] = 7.0
    X *= 2.2e4
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = MixtureOfFactorAnalyzers(4, n_factors=1, random_state=0).fit(X)
    assert np.all(np.diff(m.lower_bounds_) >= -1e-10 * np.abs(m.lower_bounds_[1:]))


# ------------------------------------------------------------------ noise at its floor
# Issue 16 (findings 5 and 7): with noise variances at their floor, M = I + W' Psi^-1 W
# reaches condition 1e14 and the normal-equation (Woodbury) E-step lost every digit: the
# monitored log-likelihood of the case below oscillated by up to 2.6e5 (431 warnings).
_NAN = np.nan
HEYWOOD_MISSING = np.array([
    [6.610054, -3.341585, 5.392823, _NAN], [_NAN, -0.487393, _NAN, 2.872026],
    [-1.193107, _NAN, -1.679285, _NAN], [-1.221519, 2.758422, -7.444587, _NAN],
    [_NAN, _NAN, 4.928, 1.879973], [_NAN, 3.173879, -2.906626, _NAN],
])


def exact_observed_loglik(X, mean, W, psi):
    """Observed-entry log-likelihood of the float parameters, evaluated exactly (rational
    Gaussian elimination on W_o W_o' + Psi_o; only the final logs are float)."""
    from fractions import Fraction
    from math import log, pi

    Wf = [[Fraction(float(v)) for v in row] for row in W]
    pf = [Fraction(float(v)) for v in psi]
    total = 0.0
    for x in X:
        o = [j for j in range(len(x)) if not np.isnan(x[j])]
        A = [[sum(Wf[a][t] * Wf[b][t] for t in range(W.shape[1])) + (pf[a] if a == b else 0)
              for b in o] + [Fraction(float(x[a])) - Fraction(float(mean[a]))] for a in o]
        r = [row[-1] for row in A]
        det = Fraction(1)
        for i in range(len(o)):  # symmetric positive definite: no pivoting needed
            det *= A[i][i]
            for j in range(i + 1, len(o)):
                f = A[j][i] / A[i][i]
                A[j] = [u - f * v for u, v in zip(A[j], A[i], strict=True)]
        sol = [Fraction(0)] * len(o)
        for i in reversed(range(len(o))):
            sol[i] = (A[i][-1] - sum(A[i][j] * sol[j] for j in range(i + 1, len(o)))) / A[i][i]
        quad = sum(u * v for u, v in zip(r, sol, strict=True))
        logdet = log(det.numerator) - log(det.denominator)
        total += -0.5 * (len(o) * log(2 * pi) + logdet + float(quad))
    return total


def test_missing_data_heywood_case_is_monotone_and_its_loglike_exact():
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        m = FactorAnalysis(4).fit(HEYWOOD_MISSING)
    ll = np.array(m.loglike_)
    assert np.all(np.isfinite(ll)) and np.all(np.diff(ll) >= 0)
    assert m.n_iter_ < m.max_iter
    assert np.all(np.isfinite(m.components_)) and np.all(m.noise_variance_ > 0)
    # The recorded values are the true log-likelihoods of the parameters: here, the final
    # ones (several noise variances at the 1e-12 relative floor).
    exact = exact_observed_loglik(HEYWOOD_MISSING, m.mean_, m.components_.T,
                                  m.noise_variance_)
    np.testing.assert_allclose(m.score_samples(HEYWOOD_MISSING).sum(), exact, rtol=1e-9)
    # EM maximises the observed-entry likelihood: better than scikit-learn's factor
    # analysis of the mean-imputed data, scored on the observed entries.
    filled = np.where(np.isnan(HEYWOOD_MISSING), np.nanmean(HEYWOOD_MISSING, axis=0),
                      HEYWOOD_MISSING)
    sk = skd.FactorAnalysis(4).fit(filled)
    assert ll[-1] > exact_observed_loglik(HEYWOOD_MISSING, sk.mean_, sk.components_.T,
                                          sk.noise_variance_)


def test_pattern_posterior_is_exact_with_noise_at_the_floor():
    from emx.factor import _group_rows, _PatternPosterior

    rng = np.random.default_rng(5)
    D, k = 5, 3
    W = rng.normal(size=(D, k)) * 3.0
    psi = np.array([1e-11, 2e-12, 1e-9, 0.5, 3e-12])
    mean = rng.normal(size=D)
    X = mean + rng.normal(size=(12, k)) @ W.T + rng.normal(size=(12, D)) * np.sqrt(psi)
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, 0][np.isnan(X[:, 0])] = 0.5
    observed, pid, complete = _group_rows(X)
    _, Z, ll = _PatternPosterior(W, psi, mean, observed).rows(X, pid, complete)
    np.testing.assert_allclose(ll.sum(), exact_observed_loglik(X, mean, W, psi), rtol=1e-9)
    assert np.all(np.isfinite(Z))


def test_a_step_that_lowers_the_loglikelihood_is_not_taken(monkeypatch):
    # Monotone by construction: whatever the M-step proposes, a step that lowers the
    # monitored log-likelihood is refused (the previous parameters stay, EM stops).
    import emx.factor as F

    X, *_ = fa_sample(n=300, D=6, k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        good = FactorAnalysis(2, max_iter=3).fit(X)
    real = F._fa_mstep
    calls = []

    def sabotaged(W, psi, S):
        calls.append(1)
        W_new, psi_new = real(W, psi, S)
        return (W_new, psi_new * 50.0) if len(calls) == 4 else (W_new, psi_new)

    monkeypatch.setattr(F, "_fa_mstep", sabotaged)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = FactorAnalysis(2, max_iter=50).fit(X)
    assert m.n_iter_ == 5 and m.loglike_[4] == m.loglike_[3]
    assert m.loglike_[:3] == good.loglike_
    # The refused step left the parameters of iteration 4 (= the next E-step's values).
    np.testing.assert_allclose(m.score(X) * len(X), m.loglike_[-1], rtol=1e-12)


def test_mixture_refuses_a_step_that_lowers_the_bound(monkeypatch):
    import emx.factor as F

    X = np.concatenate([fa_sample(seed=s, n=150, D=4, k=1, offset=8 * s)[0] for s in (0, 1)])
    real = F._fa_mstep
    calls = []

    def sabotaged(W, psi, S):
        calls.append(1)
        W_new, psi_new = real(W, psi, S)
        return (W_new * 30.0, psi_new) if len(calls) == 7 else (W_new, psi_new)

    monkeypatch.setattr(F, "_fa_mstep", sabotaged)
    # ... and the expected-log-likelihood check of the M-step misses it.
    monkeypatch.setattr(MixtureOfFactorAnalyzers, "_worse_than_before",
                        lambda self, gs, means, *a: np.zeros(len(means), dtype=bool))
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = MixtureOfFactorAnalyzers(2, n_factors=1, noise_type="per_component",
                                     random_state=0, max_iter=50).fit(X)
    lb = np.array(m.lower_bounds_)
    assert np.all(np.diff(lb) >= 0) and lb[-1] == lb[-2]
    np.testing.assert_allclose(m.score(X), lb[-1], rtol=1e-12)


def test_mixture_with_duplicated_rows_at_the_noise_floor_is_monotone():
    # Reliability example (issue 16 finding 7): 11 rounded rows, 90% duplicates, noise at
    # reg_covar; the normal-equation M-step made the bound fall by 1.5e-7 at iteration 28.
    from test_reliability import Case, make_X

    X = make_X(Case(393299, 11, 3, 1, 1.8423062614277121, -9.0, 0.0, rounded=True, dup=0.9))
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        m = MixtureOfFactorAnalyzers(3, n_factors=2, random_state=0).fit(X)
    assert np.all(np.diff(m.lower_bounds_) >= 0)


def test_mixture_log_densities_are_exact_when_ill_conditioned():
    # The same example ends with component covariances of condition 2.5e10: the bound from
    # a Cholesky factorisation of W W' + Psi was off by up to 4e-7 per row (the recorded
    # "fall" of 1.5e-7 was that error; the exact bound changed by 2e-15).
    from scipy.special import logsumexp
    from test_reliability import Case, make_X

    X = make_X(Case(393299, 11, 3, 1, 1.8423062614277121, -9.0, 0.0, rounded=True, dup=0.9))
    m = MixtureOfFactorAnalyzers(3, n_factors=2, random_state=0).fit(X)
    assert np.linalg.cond(m.get_covariance()).max() > 1e10
    psi = m._psi_per_component()
    comp = np.array([[exact_observed_loglik(x[None], m.means_[k], m.components_[k].T, psi[k])
                      for k in range(3)] for x in X])
    exact = logsumexp(comp + np.log(m.weights_), axis=1)
    np.testing.assert_allclose(m.score_samples(X), exact, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("missing", [0.0, 0.2])
@pytest.mark.parametrize("max_iter", [1, 3, 1000])
def test_last_loglike_is_the_score_of_the_fitted_parameters(missing, max_iter):
    """scikit-learn's test_factor_analysis: loglike_[-1] == score_samples(X).sum() at the
    returned parameters (emx returned the parameters of one more M-step: off by that
    step's gain, 1e-1 here after 3 iterations)."""
    X, *_ = fa_sample(seed=6, n=200, D=6, k=2)
    X = remove_entries(X, missing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fa = FactorAnalysis(2, tol=0.0 if max_iter < 1000 else 1e-2, max_iter=max_iter).fit(X)
    assert fa.loglike_[-1] == pytest.approx(fa.score_samples(X).sum(), rel=1e-12, abs=1e-9)
    assert len(fa.loglike_) == fa.n_iter_


def test_svd_options_are_accepted_and_unused():
    """svd_method and iterated_power as in scikit-learn (set_params and grid searches
    written for it run); they do not change the fit; bad values are named."""
    X, *_ = fa_sample(seed=7, n=150, D=5, k=2)
    a = FactorAnalysis(2, svd_method="lapack").fit(X)
    b = FactorAnalysis(2, svd_method="randomized", iterated_power=7).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert FactorAnalysis().get_params()["svd_method"] == "randomized"
    assert FactorAnalysis().get_params()["iterated_power"] == 3
    FactorAnalysis(2).set_params(svd_method="lapack", iterated_power=0).fit(X)
    with pytest.raises(ValueError, match="svd_method"):
        FactorAnalysis(2, svd_method="arpack").fit(X)
    with pytest.raises(ValueError, match="iterated_power"):
        FactorAnalysis(2, iterated_power=-1).fit(X)
