"""GMMHMM: agreement with hmmlearn, exact EM, robustness, memory, repeatability, splitting."""

import logging
import os
import tracemalloc
import warnings

import numpy as np
import pytest

from emx import GMMHMM, EMDecreaseWarning, GaussianHMM
from emx import gaussian as G

hmm = pytest.importorskip("hmmlearn.hmm")
logging.getLogger("hmmlearn").setLevel(logging.ERROR)

TYPES = G.COVARIANCE_TYPES


def data(seed=0, D=3):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(200, D)) * (1 + 0.2 * i) + 2 * i for i in range(6)])
    return X, [300] * 4


def initial(X, K, M, covariance_type, seed=1):
    rng = np.random.default_rng(seed)
    D = X.shape[1]
    cv = np.cov(X.T)
    covars = {
        "diag": np.tile(np.diag(cv), (K, M, 1)),
        "full": np.tile(cv, (K, M, 1, 1)),
        "spherical": np.full((K, M), cv.diagonal().mean()),
        "tied": np.tile(cv, (K, 1, 1)),
    }[covariance_type]
    return (
        rng.dirichlet(np.ones(K)),
        rng.dirichlet(np.ones(K), size=K),
        rng.dirichlet(np.ones(M), size=K),
        X[rng.choice(len(X), K * M, replace=False)].reshape(K, M, D),
        covars,
    )


def set_params(model, params):
    (model.startprob_, model.transmat_, model.weights_, model.means_,
     model.covars_) = (p.copy() for p in params)
    return model


# With means fixed ('stwc') or covariances fixed ('stwm'), hmmlearn's update equals exact EM
# (it takes covariances about the previous means; emx about the new ones).
@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("params", ["stwc", "stwm"])
def test_same_history_as_hmmlearn(covariance_type, params):
    X, lengths = data()
    # seed 5: no component collapses onto a single frame (where hmmlearn's variance
    # reaches 0 and emx's stays at its floor)
    init = initial(X, 3, 2, covariance_type, seed=5)
    kw = dict(covariance_type=covariance_type, n_iter=8, params=params, init_params="",
              min_covar=1e-12)
    ref = set_params(hmm.GMMHMM(3, 2, tol=-np.inf, **kw), init).fit(X, lengths)
    ours = set_params(GMMHMM(3, 2, tol=1e-300, var_floor=0, weight_floor=0, **kw), init)
    ours.fit(X, lengths)
    np.testing.assert_allclose(ours.monitor_.history, list(ref.monitor_.history), rtol=1e-8)
    for name in ("weights_", "means_", "covars_", "transmat_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-6,
                                   atol=1e-9)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_same_history_as_hmmlearn_with_priors(covariance_type):
    X, lengths = data(seed=2)
    K, M, D = 3, 2, X.shape[1]
    init = initial(X, K, M, covariance_type, seed=3)
    cp, cw = {
        "diag": (0.5, 0.3),
        "spherical": (0.5, 0.3),
        "full": (0.2 * np.eye(D), 3.0),
        "tied": (0.2 * np.eye(D), 3.0),
    }[covariance_type]
    kw = dict(covariance_type=covariance_type, n_iter=6, params="stwc", init_params="",
              weights_prior=2.0, means_prior=0.5, means_weight=1.5, covars_prior=cp,
              covars_weight=cw, min_covar=1e-12)
    ref = set_params(hmm.GMMHMM(K, M, tol=-np.inf, **kw), init).fit(X, lengths)
    ours = set_params(GMMHMM(K, M, tol=1e-300, var_floor=0, weight_floor=0, **kw), init)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        ours.fit(X, lengths)
    np.testing.assert_allclose(ours.monitor_.history, list(ref.monitor_.history), rtol=1e-8)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("seed", range(3))
def test_objective_never_decreases(covariance_type, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_t(df=4, size=(600, 2))
    model = GMMHMM(3, 3, covariance_type=covariance_type, n_iter=25, tol=1e-300,
                   random_state=seed, var_floor=1e-6, weight_floor=0, min_covar=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", EMDecreaseWarning)
        model.fit(X, [200, 200, 200])
    obj = np.array(model.monitor_.objective)
    assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[1:]))


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_degenerate_speech_like_data_stays_finite(covariance_type):
    """Silence (constant frames) and near-constant stretches: hmmlearn degenerates."""
    rng = np.random.default_rng(0)
    X = np.concatenate([
        rng.normal(size=(300, 4)), np.zeros((300, 4)), 5 + 0.01 * rng.normal(size=(300, 4))
    ])
    lengths = [300, 300, 300]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = hmm.GMMHMM(3, 4, covariance_type=covariance_type, random_state=0, n_iter=20)
        try:
            ref.fit(X, lengths)
            peer_failed = ref.covars_.min() == 0 or not np.isfinite(ref.score(X, lengths))
        except ValueError:
            peer_failed = True
        model = GMMHMM(3, 4, covariance_type=covariance_type, random_state=0, n_iter=20)
        model.fit(X, lengths)
    assert peer_failed  # the reason for this test: hmmlearn collapses here
    for name in ("startprob_", "transmat_", "weights_", "means_", "covars_"):
        assert np.all(np.isfinite(getattr(model, name))), name
    assert np.all(model.weights_ >= model.weight_floor * (1 - 1e-12))
    np.testing.assert_allclose(model.weights_.sum(axis=1), 1.0, rtol=1e-12)
    flat = model._flat()
    evals = np.linalg.eigvalsh(G.full_covars(flat[1], flat[2], 12, 4))
    assert evals.min() >= model.min_covar * (1 - 1e-9)
    assert np.isfinite(model.score(X, lengths))


def test_one_density_evaluation_per_chunk(monkeypatch):
    X, lengths = data()
    model = GMMHMM(3, 2, n_iter=3, tol=1e-300, random_state=0).fit(X, lengths)
    calls = []
    original = G.GaussianDensity.__call__

    def counting(self, Xc, out=None):
        calls.append(len(Xc))
        return original(self, Xc, out)

    monkeypatch.setattr(G.GaussianDensity, "__call__", counting)
    model.set_params(init_params="", n_iter=2).fit(X, lengths)
    assert sum(calls) == 2 * len(X)  # every frame evaluated once per E-step


def test_memory_is_linear_in_frames_for_full_covariances():
    """hmmlearn builds (T, states, mix, D, D) arrays: 2.6 GB for this size."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10_000, 39))
    model = GMMHMM(5, 4, covariance_type="full", n_iter=1, random_state=0, init_params="")
    params = initial(X, 5, 4, "full")
    set_params(model, params)
    tracemalloc.start()
    model.fit(X, [1000] * 10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6  # bytes; frames x states x mix doubles is 1.6 MB per 10,000 frames


def test_fits_are_repeatable_without_the_global_rng():
    """A state with fewer frames than mixtures (the 2 far points) draws from random_state."""
    X = np.concatenate([np.random.default_rng(1).normal(size=(200, 2)), np.full((2, 2), 50.0)])
    state = np.random.get_state()  # noqa: NPY002 (the global generator must stay untouched)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [GMMHMM(4, 3, random_state=0, n_iter=5).fit(X, [100, 102]) for _ in range(2)]
    after = np.random.get_state()  # noqa: NPY002
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
               for a, b in zip(state, after, strict=True))
    for name in ("weights_", "means_", "covars_"):
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))


def test_no_kmeans_when_nothing_is_initialised(monkeypatch):
    import emx.emissions as H

    X, lengths = data()
    params = initial(X, 3, 2, "diag")

    def forbidden(*args, **kwargs):
        raise AssertionError("k-means ran although init_params is empty")

    monkeypatch.setattr(H, "KMeans", forbidden)
    set_params(GMMHMM(3, 2, init_params="", n_iter=2), params).fit(X, lengths)


def test_threads_give_identical_results():
    X, lengths = data(seed=5)
    X = np.tile(X, (4, 1))
    lengths = lengths * 4
    fits = [GMMHMM(3, 2, covariance_type="full", n_iter=4, tol=1e-300, random_state=0,
                   n_jobs=n).fit(X, lengths) for n in (1, 2)]
    assert fits[0].monitor_.history == fits[1].monitor_.history
    np.testing.assert_array_equal(fits[0].covars_, fits[1].covars_)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_split_mixtures_grows_and_improves(covariance_type):
    X, lengths = data(seed=6)
    model = GMMHMM(2, 1, covariance_type=covariance_type, n_iter=30, random_state=0)
    model.fit(X, lengths)
    before = model.score(X, lengths)
    w0, m0 = model.weights_.copy(), model.means_.copy()
    model.split_mixtures(2)
    assert model.n_mix == 2 and model.weights_.shape == (2, 2)
    np.testing.assert_allclose(model.weights_, np.hstack([w0, w0]) / 2)
    np.testing.assert_allclose(model.means_.mean(axis=1), m0[:, 0])
    assert model.covars_.shape[:2] == ((2, 2) if covariance_type != "tied" else (2, 3))
    model.set_params(init_params="").fit(X, lengths)
    model.split_mixtures(4).fit(X, lengths)
    assert model.weights_.shape == (2, 4)
    assert model.score(X, lengths) > before
    with pytest.raises(ValueError, match="at least"):
        model.split_mixtures(3)


def test_one_mixture_equals_gaussian_hmm():
    X, lengths = data(seed=7)
    sp, tm, w, means, covars = initial(X, 3, 1, "full")
    kw = dict(covariance_type="full", n_iter=6, tol=1e-300, init_params="", min_covar=1e-12)
    a = GaussianHMM(3, covars_prior=0.0, **kw)
    a.startprob_, a.transmat_, a.means_, a.covars_ = sp, tm, means[:, 0], covars[:, 0]
    b = set_params(GMMHMM(3, 1, var_floor=0, weight_floor=0, **kw), (sp, tm, w, means, covars))
    a.fit(X, lengths)
    b.fit(X, lengths)
    np.testing.assert_allclose(b.monitor_.history, a.monitor_.history, rtol=1e-10)
    np.testing.assert_allclose(b.covars_[:, 0], a.covars_, rtol=1e-8)


def test_bad_parameters_raise():
    X, lengths = data()
    model = set_params(GMMHMM(3, 2, init_params="", n_iter=1), initial(X, 3, 2, "diag"))
    model.weights_ = np.full((3, 2), 0.4)
    with pytest.raises(ValueError, match="weights_ rows must sum to 1"):
        model.fit(X, lengths)
    model = set_params(GMMHMM(3, 2, init_params="", n_iter=1), initial(X, 3, 2, "diag"))
    model.means_ = np.zeros((3, 3, 3))
    with pytest.raises(ValueError, match="means_"):
        model.fit(X, lengths)
    model = set_params(GMMHMM(3, 2, init_params="", n_iter=1), initial(X, 3, 2, "diag"))
    model.covars_ = -np.ones((3, 2, 3))
    with pytest.raises(ValueError, match="positive"):
        model.fit(X, lengths)
    with pytest.raises(ValueError, match="n_mix"):
        GMMHMM(3, 0).fit(X, lengths)
    with pytest.raises(ValueError, match="NaN"):
        GMMHMM(2, 2).fit(np.full((10, 2), np.nan))


def test_sample_and_decode():
    X, lengths = data(seed=8)
    model = GMMHMM(3, 2, n_iter=10, random_state=0).fit(X, lengths)
    S, states = model.sample(500, random_state=1)
    assert S.shape == (500, 3) and states.shape == (500,)
    logprob, path = model.decode(S)
    assert np.isfinite(logprob) and path.shape == (500,)
    assert np.mean(path == states) > 0.5  # the model recognises its own states mostly


def test_weight_floor_keeps_rows_normalised():
    from emx.emissions import _floor_weights

    w = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    out = _floor_weights(w, 0.01)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert out[0, 2] == 0.01 and np.all(out >= 0.01)
    np.testing.assert_array_equal(out[1], w[1])


def test_floored_full_covariances_are_exactly_symmetric():
    # Raising small eigenvalues rebuilds the matrix from its eigenvectors; the rebuilt
    # matrix must be symmetric to the last bit, or split_mixtures' check refuses it
    # (seen with Recognizer(covariance_type='full', n_states='auto', n_mix=2) on FSDD).
    from emx import gaussian as G

    rng = np.random.default_rng(0)
    A = rng.normal(size=(200, 13, 5))
    covars = A @ np.swapaxes(A, 1, 2)  # rank 5 of 13: every matrix needs the floor
    floored = G._floor_eigenvalues(covars, 1e-3)
    np.testing.assert_array_equal(floored, np.swapaxes(floored, 1, 2))
    assert np.linalg.eigvalsh(floored).min() >= 1e-3 * (1 - 1e-9)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_zero_weight_means_prior_contributes_exactly_nothing(covariance_type):
    # means_weight=0 with a far means_prior computed 0 * inf = NaN (issue 16, finding 3).
    X, lengths = data()
    kw = dict(covariance_type=covariance_type, random_state=0, n_iter=4, tol=0)
    a = GMMHMM(2, 2, means_prior=1e300, means_weight=0.0, **kw).fit(X, lengths)
    b = GMMHMM(2, 2, means_prior=0.0, means_weight=0.0, **kw).fit(X, lengths)
    assert np.all(np.isfinite(a.monitor_.objective))
    np.testing.assert_array_equal(a.monitor_.objective, b.monitor_.objective)
    np.testing.assert_array_equal(a.covars_, b.covars_)


GMMHMM_PROBE = """
import numpy as np
from emx import GMMHMM
rng = np.random.default_rng(0)
X = rng.normal(size=(300, 2)) * {scale}
try:
    GMMHMM(3, 2, covariance_type={ct!r}, random_state=0, n_iter=3).fit(X)
    print("fitted")
except ValueError as e:
    print("ValueError:", e)
"""


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("scale", ["1e154", "1e200", "1e300"])
def test_huge_data_is_refused_without_a_hang(covariance_type, scale):
    # Issue 16, finding 4: the data covariance overflowed, a k-means cluster was empty and
    # the fallback draw ran an SVD on a non-finite matrix that never returned.
    import subprocess
    import sys

    code = GMMHMM_PROBE.format(scale=scale, ct=covariance_type)
    # run from tests/ so the child imports the installed emx, not the source folder
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert out.returncode == 0, out.stderr
    assert "ValueError:" in out.stdout and "at most 1e+100 in magnitude" in out.stdout


@pytest.mark.parametrize("covariance_type", TYPES)
def test_tiny_data_gives_finite_parameters(covariance_type):
    X, lengths = data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        m = GMMHMM(2, 2, covariance_type=covariance_type, random_state=0, n_iter=3).fit(
            X * 1e-300, lengths)
    for a in (m.startprob_, m.transmat_, m.weights_, m.means_, m.covars_):
        assert np.all(np.isfinite(a))
    assert np.isfinite(m.score(X * 1e-300, lengths))


def test_non_finite_means_and_bad_priors_are_named():
    # The message was "means_ must be finite with shape (2, 1, 2), got shape (2, 1, 2)".
    X = np.random.default_rng(0).normal(size=(50, 2))
    g = GMMHMM(2, 1, init_params="", covariance_type="diag")
    g.startprob_ = np.array([0.5, 0.5])
    g.transmat_ = np.asfortranarray(np.full((2, 2), 0.5))
    g.weights_ = np.ones((2, 1))
    g.means_ = np.array([[[0.0, np.nan]], [[1.0, 1.0]]])
    g.covars_ = np.ones((2, 1, 2))
    with pytest.raises(ValueError, match=r"means_ must be finite \(it holds NaN or infinity\)"):
        g.fit(X)
    g.means_ = np.asfortranarray(np.array([[[0.0, 0.0]], [[1.0, 1.0]]]))
    g.covars_ = np.ones((2, 1, 4))[..., ::2]  # strided
    g.fit(X)  # any layout accepted
    assert np.all(np.isfinite(g.means_))
    with pytest.raises(ValueError, match=r"weights_prior .* shape \(2, 2\), got shape \(3,\)"):
        GMMHMM(2, 2, weights_prior=np.ones(3)).fit(X)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_frame_far_from_every_state(covariance_type):
    X, lengths = data()
    m = GMMHMM(2, 2, covariance_type=covariance_type, random_state=0, n_iter=3).fit(X, lengths)
    Z = np.vstack([X[:10], [[1e200, -1e200, 0.0]], X[10:20]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lp, post = m.score_samples(Z)
        logprob, path = m.decode(Z)
    assert lp == -np.inf and logprob == -np.inf
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    assert sorted(post[10]) == [0.0, 1.0]


def test_variance_floor_cannot_lower_the_objective():
    # Two clusters 1e5 apart in four frames: the floored tied covariances lowered the
    # objective by 29.6 at the second iteration (issue 16, finding 7).
    X = np.array([[-51028.264486484564, 63616.9948084789], [-51026.84643348243, 63614.66821208407],
                  [59855.92549334651, 10025.81487130371], [59850.81665438533, 10026.149627588413]])
    for ct in TYPES:
        with warnings.catch_warnings():
            warnings.simplefilter("error", EMDecreaseWarning)
            m = GMMHMM(2, covariance_type=ct, random_state=0).fit(X, [1, 2, 1])
        obj = np.array(m.monitor_.objective)
        assert np.all(np.diff(obj) >= -1e-8 - 1e-10 * np.abs(obj[1:]))


def test_subnormal_probabilities_do_not_break_posteriors():
    # EM drove transition probabilities to subnormals (1.6e-310), whose reciprocals
    # overflowed in the scaled kernels: NaN posteriors, a log-likelihood 192 below score().
    X = np.array([[109.00001496], [206.00002827], [104.00001427], [106.00001455]])
    m = GMMHMM(2, n_mix=2, covariance_type="diag", random_state=0).fit(X, [3, 1])
    for p in (m.startprob_, m.transmat_):
        assert np.all((p == 0) | (p >= 1e-300))
    Xn = np.array([[1053.0], [939.0], [939.0], [940.0]])
    ll, post = m.score_samples(Xn, [3, 1])
    assert np.all(np.isfinite(post))
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    np.testing.assert_allclose(ll, m.score(Xn, [3, 1]), rtol=1e-9)


def test_initial_covariance_of_far_clusters_is_positive_definite():
    # Clusters 1e8 apart: min_covar fell below the round-off of the data covariance
    # ("'full' covars_ must be positive definite" on valid data).
    X = np.array([[-437289250.93609804, 1085925566.6719697, 1505575947.073887],
                  [-437289250.93609804, 1085925566.6719697, 1505575947.073887],
                  [-437289248.3674854, 1085925594.095902, 1505575940.0248337],
                  [-8611983.482344499, 639865319.8329155, -186352411.74006695]])
    for ct in TYPES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # k-means on 2 distinct rows
            m = GMMHMM(1, covariance_type=ct, random_state=0).fit(X, [1, 1, 2])
        assert np.all(np.isfinite(m.covars_)) and np.isfinite(m.score(X, [1, 1, 2]))


# ------------------------------------------------------------------ hmmlearn's API (issue 12)


def test_bad_covariance_type_is_a_value_error_everywhere():
    X, lengths = data()
    model = set_params(GMMHMM(3, n_mix=2, covariance_type="diag"), initial(X, 3, 2, "diag"))
    model.score(X)
    model.covariance_type = "banana"
    for call in (lambda: model.score(X), lambda: model.predict(X), lambda: model.sample(2),
                 lambda: model.predict_proba(X), lambda: model.fit(X),
                 lambda: model.aic(X)):
        with pytest.raises(ValueError, match="covariance_type"):
            call()


@pytest.mark.parametrize("covariance_type", TYPES)
def test_aic_and_bic_count_the_parameters_in_params(covariance_type):
    X, lengths = data(D=2)
    K, M, D = 3, 2, 2
    model = set_params(GMMHMM(K, n_mix=M, covariance_type=covariance_type),
                       initial(X, K, M, covariance_type))
    ll, n = model.score(X, lengths), len(X)
    cov = {"spherical": K * M, "diag": K * M * D, "full": K * M * D * (D + 1) // 2,
           "tied": K * D * (D + 1) // 2}[covariance_type]
    full = (K - 1) + K * (K - 1) + K * (M - 1) + K * M * D + cov
    for params, p in {"stmcw": full, "w": K * (M - 1), "": 0}.items():
        model.params = params
        assert model.aic(X, lengths) == pytest.approx(-2 * ll + 2 * p, rel=1e-12)
        assert model.bic(X, lengths) == pytest.approx(-2 * ll + p * np.log(n), rel=1e-12)
    # hmmlearn counts each state's weights as n_mix - 1 in all (not per state)
    ref = hmm.GMMHMM(K, n_mix=M, covariance_type=covariance_type)
    set_params(ref, initial(X, K, M, covariance_type))
    ref.n_features = D
    model.params = "stmcw"
    assert model.aic(X, lengths) - ref.aic(X, lengths) == pytest.approx(
        2 * (K - 1) * (M - 1), abs=1e-6)


def test_n_features_after_fit():
    X, lengths = data(D=3)
    model = GMMHMM(2, n_mix=2, n_iter=2, random_state=0).fit(X, lengths)
    assert model.n_features == 3
    assert not hasattr(GMMHMM(2), "n_features")
