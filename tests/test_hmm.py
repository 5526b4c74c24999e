"""GaussianHMM: agreement with hmmlearn, EM properties, hmmlearn's faults, bad input."""

import logging
import warnings

import numpy as np
import pytest
from _reference import brute_force, path_logprob
from sklearn.base import clone

from emx import ConvergenceMonitor, EMDecreaseWarning, GaussianHMM
from emx import gaussian as G

hmm = pytest.importorskip("hmmlearn.hmm")
logging.getLogger("hmmlearn").setLevel(logging.ERROR)

TYPES = G.COVARIANCE_TYPES


def true_model(covariance_type="diag", K=3, D=2, seed=0):
    rng = np.random.default_rng(seed)
    m = GaussianHMM(K, covariance_type=covariance_type, random_state=seed)
    m.n_features_in_ = D
    m.startprob_ = rng.dirichlet(np.ones(K) * 5)
    tm = rng.dirichlet(np.ones(K), size=K) + 4 * np.eye(K)
    m.transmat_ = tm / tm.sum(axis=1, keepdims=True)
    m.means_ = 4.0 * rng.normal(size=(K, D))
    if covariance_type == "spherical":
        m.covars_ = rng.uniform(0.5, 1.5, size=K)
    elif covariance_type == "diag":
        m.covars_ = rng.uniform(0.5, 1.5, size=(K, D))
    else:
        A = rng.normal(size=(K, D, D)) * 0.5
        full = A @ np.swapaxes(A, 1, 2) + np.eye(D)
        m.covars_ = full[0] if covariance_type == "tied" else full
    return m


def sampled(model, lengths, seed=1):
    X = np.concatenate([model.sample(n, random_state=seed + i)[0] for i, n in enumerate(lengths)])
    return X, list(lengths)


def init_params(covariance_type, X, K, seed=0):
    rng = np.random.default_rng(seed)
    D = X.shape[1]
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    means = X[rng.choice(len(X), K, replace=False)]
    cov = np.cov(X.T) + 0.1 * np.eye(D)
    covars = G.covars_from_template(cov, covariance_type, K)
    return startprob, transmat, means, covars


def set_params(model, params):
    model.startprob_, model.transmat_, model.means_, model.covars_ = (p.copy() for p in params)
    return model


# ------------------------------------------------------------------ agreement with hmmlearn


PRIORS = {
    "default": {},
    "map": dict(
        startprob_prior=2.0, transmat_prior=1.5, means_prior=0.5, means_weight=2.0,
        covars_prior=0.3, covars_weight=4.0,
    ),
}


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_same_history_as_hmmlearn(covariance_type, prior):
    gen = true_model(covariance_type, K=3, D=3, seed=2)
    X, lengths = sampled(gen, [150, 100, 250])
    params = init_params(covariance_type, X, 3)
    kw = dict(covariance_type=covariance_type, n_iter=12, init_params="", **PRIORS[prior])
    ours = set_params(GaussianHMM(3, tol=1e-300, **kw), params).fit(X, lengths)
    ref = set_params(hmm.GaussianHMM(3, tol=-np.inf, **kw), params).fit(X, lengths)
    h_ours, h_ref = np.array(ours.monitor_.history), np.array(ref.monitor_.history)
    assert len(h_ours) == len(h_ref) == 12
    np.testing.assert_allclose(h_ours, h_ref, rtol=1e-8)
    np.testing.assert_allclose(ours.transmat_, ref.transmat_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-6, atol=1e-9)
    ref_covars = ref._covars_[:, 0] if covariance_type == "spherical" else ref._covars_
    np.testing.assert_allclose(ours.covars_, ref_covars, rtol=1e-6, atol=1e-9)
    # Their score agrees too.
    np.testing.assert_allclose(ours.score(X, lengths), ref.score(X, lengths), rtol=1e-10)


def test_same_random_state_gives_hmmlearns_initialisation():
    gen = true_model("diag", K=3, D=2, seed=4)
    X, lengths = sampled(gen, [300, 300])
    ours = GaussianHMM(3, random_state=0, n_iter=5, tol=1e-300).fit(X, lengths)
    ref = hmm.GaussianHMM(3, random_state=0, n_iter=5, tol=-np.inf).fit(X, lengths)
    np.testing.assert_allclose(ours.monitor_.history, list(ref.monitor_.history), rtol=1e-8)


# ------------------------------------------------------------------ EM properties


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("seed", range(4))
def test_objective_never_decreases(covariance_type, seed):
    rng = np.random.default_rng(100 + seed)
    K = int(rng.integers(2, 6))
    gen = true_model(covariance_type, K=K, D=int(rng.integers(1, 4)), seed=seed)
    X, lengths = sampled(gen, rng.integers(5, 80, size=8), seed=seed)
    model = GaussianHMM(
        K + 1, covariance_type=covariance_type, n_iter=25, tol=1e-300, random_state=seed,
        covars_prior=0.0, min_covar=1e-6,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        model.fit(X, lengths)
    h = np.array(model.monitor_.history)
    assert len(h) >= 2
    # Maximum likelihood (no prior): the log-likelihood itself never falls beyond round-off.
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        assert np.all(np.isfinite(getattr(model, name)))


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_map_objective_never_decreases(covariance_type):
    gen = true_model(covariance_type, K=3, D=2, seed=5)
    X, lengths = sampled(gen, [40, 60, 30])
    model = GaussianHMM(
        4, covariance_type=covariance_type, n_iter=30, tol=1e-300, random_state=1,
        **PRIORS["map"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        model.fit(X, lengths)
    obj = np.array(model.monitor_.objective)
    assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[1:]))
    assert not np.allclose(obj, model.monitor_.history)  # the prior term is really there


@pytest.mark.parametrize("covariance_type", TYPES)
def test_recovers_known_parameters(covariance_type):
    gen = true_model(covariance_type, K=3, D=2, seed=11)
    X, lengths = sampled(gen, [2000] * 5, seed=3)
    model = GaussianHMM(
        3, covariance_type=covariance_type, n_iter=100, tol=1e-6, random_state=0, n_init=3
    ).fit(X, lengths)
    order = [int(np.argmin(np.linalg.norm(model.means_ - mu, axis=1))) for mu in gen.means_]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(model.means_[order], gen.means_, atol=0.1)
    np.testing.assert_allclose(model.transmat_[np.ix_(order, order)], gen.transmat_, atol=0.03)
    fitted = model.covars_ if covariance_type == "tied" else model.covars_[order]
    np.testing.assert_allclose(fitted, gen.covars_, rtol=0.1, atol=0.05)


def test_threads_give_identical_results():
    gen = true_model("full", K=4, D=3, seed=8)
    X, lengths = sampled(gen, [700] * 12)  # 12 sequences, several chunks
    fits = [
        GaussianHMM(4, covariance_type="full", n_iter=5, tol=1e-300, random_state=0,
                    n_jobs=n).fit(X, lengths)
        for n in (1, 2, 3)
    ]
    for other in fits[1:]:
        assert other.monitor_.history == fits[0].monitor_.history
        for name in ("startprob_", "transmat_", "means_", "covars_"):
            np.testing.assert_array_equal(getattr(other, name), getattr(fits[0], name))


def test_restarts_keep_the_best_run():
    gen = true_model("diag", K=4, D=2, seed=9)
    X, lengths = sampled(gen, [200] * 4)
    best = GaussianHMM(4, n_iter=20, random_state=5, n_init=4).fit(X, lengths)
    seeds = np.random.RandomState(5).randint(np.iinfo(np.int32).max, size=4)
    singles = [GaussianHMM(4, n_iter=20, random_state=int(s)).fit(X, lengths) for s in seeds]
    finals = [m.monitor_.objective[-1] for m in singles]
    assert best.monitor_.objective[-1] == pytest.approx(max(finals), rel=1e-12)


def test_left_to_right_topology_is_kept():
    K = 3
    startprob = np.array([1.0, 0.0, 0.0])
    transmat = np.array([[0.7, 0.3, 0.0], [0.0, 0.7, 0.3], [0.0, 0.0, 1.0]])
    gen = true_model("diag", K=K, D=2, seed=12)
    gen.startprob_, gen.transmat_ = startprob, transmat
    X, lengths = sampled(gen, [30] * 20)
    model = GaussianHMM(K, init_params="mc", n_iter=20, random_state=0)
    model.startprob_, model.transmat_ = startprob.copy(), np.array(
        [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]
    )
    model.fit(X, lengths)
    assert np.all(model.startprob_[1:] == 0)
    assert np.all(model.transmat_[transmat == 0] == 0)
    assert np.all(np.diff(model.predict(X[:30])) >= 0)


def test_input_is_not_mutated():
    gen = true_model("full", K=2, D=2, seed=13)
    X, lengths = sampled(gen, [50, 50])
    X_copy, lengths_copy = X.copy(), list(lengths)
    params = init_params("full", X, 2)
    model = set_params(GaussianHMM(2, covariance_type="full", init_params=""), params)
    given = [model.startprob_, model.transmat_, model.means_, model.covars_]
    given_copy = [p.copy() for p in given]
    model.fit(X, lengths)
    np.testing.assert_array_equal(X, X_copy)
    assert lengths == lengths_copy
    for g, c in zip(given, given_copy, strict=True):
        np.testing.assert_array_equal(g, c)


def test_list_of_sequences_equals_concatenation():
    gen = true_model("diag", K=2, D=2, seed=14)
    X, lengths = sampled(gen, [40, 60])
    a = GaussianHMM(2, random_state=0).fit(X, lengths)
    b = GaussianHMM(2, random_state=0).fit([X[:40], X[40:]])
    assert a.monitor_.history == b.monitor_.history
    assert a.score(X, lengths) == b.score([X[:40], X[40:]])


def test_score_samples_posteriors_and_decode_match_brute_force():
    gen = true_model("diag", K=3, D=2, seed=15)
    X, _ = gen.sample(6, random_state=0)
    loglik = G.GaussianDensity(gen.means_, gen.covars_, "diag")(X)
    total, post, _, best_path, best_lp = brute_force(loglik, gen.startprob_, gen.transmat_)
    lp, posteriors = gen.score_samples(X)
    np.testing.assert_allclose(lp, total, rtol=1e-12)
    np.testing.assert_allclose(gen.score(X), total, rtol=1e-12)
    np.testing.assert_allclose(posteriors, post, atol=1e-12)
    np.testing.assert_allclose(gen.predict_proba(X), post, atol=1e-12)
    vlp, vpath = gen.decode(X, algorithm="viterbi")
    np.testing.assert_array_equal(vpath, best_path)
    np.testing.assert_allclose(vlp, best_lp, rtol=1e-12)


# ------------------------------------------------------------------ where hmmlearn goes wrong


def test_outlying_frame_is_fine_with_scaling():
    """hmmlearn's scaled kernel exps raw log-likelihoods: one outlier breaks it."""
    gen = true_model("diag", K=3, D=2, seed=16)
    X, _ = gen.sample(200, random_state=1)
    X[100] = 1e3  # ~1e3 standard deviations away from every state
    ref = set_params(
        hmm.GaussianHMM(3, implementation="log", init_params=""),
        (gen.startprob_, gen.transmat_, gen.means_, gen.covars_),
    )
    with pytest.raises(ValueError):  # the peer's scaled kernel gives up on this input
        set_params(
            hmm.GaussianHMM(3, implementation="scaling", init_params=""),
            (gen.startprob_, gen.transmat_, gen.means_, gen.covars_),
        ).score(X)
    assert np.isfinite(gen.score(X))
    np.testing.assert_allclose(gen.score(X), ref.score(X), rtol=1e-10)
    np.testing.assert_allclose(gen.predict_proba(X), ref.predict_proba(X), atol=1e-9)


def test_many_short_sequences_share_kernel_calls():
    """10,000 short sequences run in a handful of kernel calls, with per-sequence results."""
    from emx.hmm import CHUNK_FRAMES, _make_chunks

    gen = true_model("diag", K=2, D=2, seed=17)
    X, _ = gen.sample(50_000, random_state=2)
    lengths = [5] * 10_000
    data = gen._validate(X, lengths, reset=False)
    n_chunks = -(-50_000 // CHUNK_FRAMES)
    assert len(data.chunks) == -(-n_chunks // 4) * 4 < 100  # a multiple of 4, for threads
    sizes = [f1 - f0 for f0, f1, _ in data.chunks]
    assert max(sizes) - min(sizes) <= 5  # equal shares, cut at sequence boundaries
    per_sequence = sum(gen.score(X[i : i + 5]) for i in range(0, 500, 5))
    assert gen.score(X[:500], [5] * 100) == pytest.approx(per_sequence, rel=1e-12)
    assert len(_make_chunks(np.array([0, 10_000, 10_001]))) == 2  # long sequences stay whole


def test_decrease_warns_and_is_not_convergence():
    monitor = ConvergenceMonitor(tol=1e-2, n_iter=10)
    monitor.report(-100.0)
    with pytest.warns(EMDecreaseWarning):
        monitor.report(-101.0)
    assert not monitor.converged
    monitor.report(-101.0 + 1e-3)
    assert monitor.converged
    monitor.report(-101.0 + 1e-3 - 1e-12)  # round-off: still converged, no warning
    assert monitor.converged


def test_map_decode_returns_a_log_probability():
    gen = true_model("diag", K=3, D=2, seed=18)
    X, _ = gen.sample(40, random_state=3)
    lp_map, path_map = gen.decode(X, algorithm="map")
    lp_vit, path_vit = gen.decode(X, algorithm="viterbi")
    loglik = G.GaussianDensity(gen.means_, gen.covars_, "diag")(X)
    np.testing.assert_allclose(
        lp_map, path_logprob(path_map, loglik, gen.startprob_, gen.transmat_), rtol=1e-12
    )
    assert lp_map <= lp_vit + 1e-9
    np.testing.assert_array_equal(path_map, gen.predict_proba(X).argmax(axis=1))


def test_covars_without_means_update_do_not_blow_up():
    """hmmlearn #569: params with 'c' but not 'm' accumulates no first moments."""
    gen = true_model("diag", K=2, D=2, seed=19)
    X, lengths = sampled(gen, [1000] * 5)
    params = (gen.startprob_, gen.transmat_, gen.means_, np.ones((2, 2)) * 3.0)
    ours = set_params(GaussianHMM(2, params="stc", init_params="", n_iter=20), params)
    ours.fit(X, lengths)
    np.testing.assert_allclose(ours.covars_, gen.covars_, rtol=0.15)
    np.testing.assert_array_equal(ours.means_, gen.means_)
    ref = set_params(hmm.GaussianHMM(2, params="stc", init_params="", n_iter=20), params)
    ref.fit(X, lengths)
    assert not np.allclose(np.diagonal(ref.covars_, axis1=1, axis2=2), gen.covars_, rtol=0.15)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_covars_getter_returns_the_setters_shape(covariance_type):
    gen = true_model(covariance_type, K=3, D=2, seed=20)
    shape = G.covars_shape(covariance_type, 3, 2)
    assert gen.covars_.shape == shape
    X, lengths = sampled(gen, [100, 100])
    model = GaussianHMM(3, covariance_type=covariance_type, random_state=0).fit(X, lengths)
    assert model.covars_.shape == shape
    other = GaussianHMM(3, covariance_type=covariance_type, init_params="", n_iter=1)
    other.startprob_, other.transmat_, other.means_ = (
        model.startprob_, model.transmat_, model.means_,
    )
    other.covars_ = model.covars_  # round trip
    other.fit(X, lengths)
    assert other.covars_.shape == shape


# ------------------------------------------------------------------ bad input and degenerate data


def fitted():
    gen = true_model("diag", K=2, D=2, seed=21)
    return gen, gen.sample(20, random_state=0)[0]


@pytest.mark.parametrize(
    "X, lengths, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), None, "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), None, "infinity"),
        (np.arange(5.0), None, "2D"),
        (np.zeros((5, 2)), [2, 2], "sum to 4"),
        (np.zeros((5, 2)), [5, 0], "positive"),
        (np.zeros((5, 2)), [6, -1], "positive"),
        (np.zeros((5, 2)), [2.5, 2.5], "integers"),
        ([np.zeros((3, 2)), np.zeros((0, 2))], None, "at least one sample"),
        (np.zeros((0, 2)), None, "0 sample"),
    ],
)
def test_bad_observations_raise(X, lengths, match):
    gen, _ = fitted()
    with pytest.raises(ValueError, match=match):
        GaussianHMM(2).fit(X, lengths)
    with pytest.raises(ValueError, match=match):
        gen.score(X, lengths)


def test_bad_parameters_raise():
    gen, X = fitted()
    bad = clone(gen)
    bad.n_features_in_ = 2
    bad.startprob_, bad.means_, bad.covars_ = gen.startprob_, gen.means_, gen.covars_
    bad.transmat_ = np.array([[0.5, 0.4], [0.5, 0.5]])
    with pytest.raises(ValueError, match="rows must sum to 1"):
        bad.score(X)
    bad.transmat_ = gen.transmat_
    bad.startprob_ = np.array([0.7, 0.7])
    with pytest.raises(ValueError, match="startprob_ must sum to 1"):
        bad.score(X)
    bad.startprob_ = gen.startprob_
    bad.covars_ = np.array([[1.0, -1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="positive"):
        bad.score(X)
    with pytest.raises(ValueError, match="features"):
        gen.score(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianHMM(2, covariance_type="banana").fit(X)
    with pytest.raises(ValueError, match="n_components"):
        GaussianHMM(0).fit(X)
    with pytest.raises(ValueError, match="at least as many samples as states"):
        GaussianHMM(5).fit(X[:3])
    with pytest.raises(ValueError, match="algorithm"):
        gen.decode(X, algorithm="beam")
    with pytest.raises(ValueError, match="currstate"):
        gen.sample(3, currstate=7)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_degenerate_data_gives_finite_parameters(covariance_type):
    rng = np.random.default_rng(0)
    # Three distinct points repeated, one constant feature, and more states than points.
    X = np.repeat(np.array([[0.0, 1.0, 5.0], [1.0, 1.0, 5.0], [2.0, 1.0, 5.0]]), 20, axis=0)
    X = X[rng.permutation(len(X))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KMeans warns about duplicate points
        model = GaussianHMM(
            5, covariance_type=covariance_type, n_iter=30, random_state=0
        ).fit(X, [30, 30])
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        assert np.all(np.isfinite(getattr(model, name))), name
    assert np.isfinite(model.score(X))
    evals = np.linalg.eigvalsh(G.full_covars(model.covars_, covariance_type, 5, 3))
    # The floor holds up to the round-off of rebuilding a matrix from its eigenvalues.
    assert np.all(evals >= model.min_covar - 1e-14 * evals.max(axis=1, keepdims=True))


def test_sample_draws_from_the_model():
    gen = true_model("full", K=2, D=2, seed=22)
    X, states = gen.sample(20_000, random_state=0)
    assert X.shape == (20_000, 2) and states.shape == (20_000,)
    for k in range(2):
        np.testing.assert_allclose(X[states == k].mean(axis=0), gen.means_[k], atol=0.1)
        np.testing.assert_allclose(np.cov(X[states == k].T), gen.covars_[k], atol=0.15)
    counts = np.zeros((2, 2))
    np.add.at(counts, (states[:-1], states[1:]), 1)
    np.testing.assert_allclose(counts / counts.sum(1, keepdims=True), gen.transmat_, atol=0.03)


def test_estimator_conventions():
    model = GaussianHMM(3, covariance_type="full", n_iter=7)
    assert model.get_params()["n_iter"] == 7
    assert not hasattr(model, "startprob_")
    c = clone(model).set_params(n_iter=3)
    assert c.n_iter == 3 and model.n_iter == 7
    gen, X = fitted()
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianHMM(2).score(X)
    assert GaussianHMM(2, random_state=0).fit(X).n_features_in_ == 2


def test_model_built_by_hand_scores_and_samples():
    model = GaussianHMM(2, covariance_type="spherical")
    model.startprob_ = np.array([0.5, 0.5])
    model.transmat_ = np.array([[0.9, 0.1], [0.1, 0.9]])
    model.means_ = np.array([[0.0, 0.0, 0.0], [3.0, 3.0, 3.0]])
    model.covars_ = np.array([1.0, 2.0])
    X, states = model.sample(50, random_state=0)
    assert X.shape == (50, 3) and model.n_features_in_ == 3
    assert np.isfinite(model.score(X))
    with pytest.raises(ValueError, match="features"):
        model.score(X[:, :2])


# ------------------------------------------------------------------ far components (issue 16)
@pytest.mark.parametrize("covariance_type", TYPES)
def test_far_state_keeps_its_variance(covariance_type):
    # Issue 16, finding 2: moments about the data mean lost a far state's variance.
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.01, (1000, 1)), 1e8 + rng.normal(0, 1, (10, 1))])
    m = GaussianHMM(2, covariance_type=covariance_type, init_params="", n_iter=1,
                    covars_prior=0.0, covars_weight=1.0, min_covar=1e-12)
    m.startprob_ = np.array([0.5, 0.5])
    m.transmat_ = np.array([[0.99, 0.01], [0.01, 0.99]])
    m.means_ = np.array([[1e-3], [1e8 + 0.5]])
    m.covars_ = {"spherical": np.array([1e-4, 1.0]), "diag": np.array([[1e-4], [1.0]]),
                 "full": np.array([[[1e-4]], [[1.0]]]), "tied": np.array([[1e-2]])}[covariance_type]
    m.n_features_in_ = 1
    gamma = m.predict_proba(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        m.fit(X)
    post = gamma.sum(axis=0)
    means = gamma.T @ X / post[:, None]
    scat = np.array([gamma[:, k] @ (X[:, 0] - means[k, 0]) ** 2 for k in range(2)])
    np.testing.assert_allclose(m.means_, means, rtol=1e-12)
    got = np.ravel(m.covars_) if covariance_type != "tied" else m.covars_.ravel()
    want = scat / post if covariance_type != "tied" else [scat.sum() / post.sum()]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # Several iterations: the objective never falls.
    m2 = clone(m).set_params(n_iter=10, tol=0)
    m2.startprob_, m2.transmat_, m2.means_ = m.startprob_, m.transmat_, means
    m2.covars_, m2.n_features_in_ = m.covars_, 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        m2.fit(X)
    obj = np.array(m2.monitor_.objective)
    assert np.all(np.diff(obj) >= -1e-8 - 1e-10 * np.abs(obj[1:]))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_zero_weight_means_prior_contributes_exactly_nothing(covariance_type):
    # means_weight=0 with a far means_prior computed 0 * inf = NaN.
    X = true_model(covariance_type).sample(300, random_state=1)[0]
    kw = dict(covariance_type=covariance_type, random_state=0, n_iter=5, tol=0)
    a = GaussianHMM(3, means_prior=1e300, means_weight=0.0, **kw).fit(X)
    b = GaussianHMM(3, means_prior=0.0, means_weight=0.0, **kw).fit(X)
    assert np.all(np.isfinite(a.monitor_.objective))
    np.testing.assert_array_equal(a.monitor_.objective, b.monitor_.objective)
    np.testing.assert_array_equal(a.covars_, b.covars_)


# ------------------------------------------------------------------ extreme magnitudes
@pytest.mark.parametrize("covariance_type", TYPES)
def test_fit_at_extreme_scales(covariance_type):
    # Issue 16, findings 4 and 5: finite parameters down to 1e-300; beyond the
    # representable range a clear error (not NaN, not a hang).
    X = true_model(covariance_type).sample(200, random_state=0)[0]
    for scale in (1e-300, 1e90):
        with warnings.catch_warnings():
            warnings.simplefilter("error", EMDecreaseWarning)
            m = GaussianHMM(3, covariance_type=covariance_type, random_state=0,
                            n_iter=5).fit(X * scale)
        for a in (m.startprob_, m.transmat_, m.means_, m.covars_):
            assert np.all(np.isfinite(a))
        assert np.isfinite(m.score(X * scale))
    for bad in (X * 1e200, X * 1e300, np.where(np.arange(len(X))[:, None] == 0,
                                                 np.finfo(float).max, X)):
        with pytest.raises(ValueError, match=r"at most 1e\+100 in magnitude"):
            GaussianHMM(3, covariance_type=covariance_type).fit(bad)


# ------------------------------------------------------------------ layouts and clear errors
@pytest.mark.parametrize("covariance_type", TYPES)
def test_parameters_in_any_layout_are_accepted(covariance_type):
    # Issue 16, finding 9: Fortran-order or strided startprob_/transmat_ raised
    # "ndarray is not C-contiguous".
    ref = true_model(covariance_type)
    X = ref.sample(200, random_state=0)[0]
    odd = clone(ref)
    odd.n_features_in_ = ref.n_features_in_
    odd.startprob_ = np.repeat(ref.startprob_, 2)[::2]
    odd.transmat_ = np.asfortranarray(ref.transmat_)
    odd.means_ = np.asfortranarray(ref.means_)
    covs = np.asarray(ref.covars_)
    odd.covars_ = np.repeat(covs, 2, axis=-1)[..., ::2] if covs.ndim else covs
    given = (odd.startprob_, odd.transmat_)
    kept = [a.copy() for a in given]
    assert odd.score(X) == ref.score(X)
    np.testing.assert_array_equal(odd.predict_proba(X), ref.predict_proba(X))
    for a, b in zip(given, kept, strict=True):
        np.testing.assert_array_equal(a, b)  # the caller's arrays are not mutated


def test_wrong_shaped_priors_and_non_finite_parameters_are_named():
    X = true_model().sample(100, random_state=0)[0]
    with pytest.raises(ValueError, match=r"transmat_prior .* shape \(3, 3\), got shape \(2, 2\)"):
        GaussianHMM(3, transmat_prior=np.ones((2, 2))).fit(X)
    with pytest.raises(ValueError, match=r"startprob_prior .* got shape \(4,\)"):
        GaussianHMM(3, startprob_prior=np.ones(4)).fit(X)
    with pytest.raises(ValueError, match=r"means_prior .* got shape \(5,\)"):
        GaussianHMM(3, means_prior=np.ones(5)).fit(X)
    m = true_model()
    m.means_ = m.means_.copy()
    m.means_[0, 0] = np.nan
    with pytest.raises(ValueError, match="means_ must be finite .*NaN or infinity"):
        m.score(X)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_frame_far_from_every_state(covariance_type):
    # Issue 16, finding 5: a frame at 1e200 made every state's log-likelihood -inf and the
    # sequence was reported as impossible under startprob_/transmat_.
    m = true_model(covariance_type)
    X = m.sample(30, random_state=0)[0]
    Z = np.vstack([X[:10], [[1e200, -1e200]], X[10:20]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lp, post = m.score_samples(Z)
        seq = m.score_sequences(np.vstack([Z, X[20:]]), [21, 10])
        logprob, path = m.decode(Z)
    assert lp == -np.inf and logprob == -np.inf
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    assert sorted(post[10]) == [0.0, 0.0, 1.0]  # the nearest state, by an exact comparison
    assert seq[0] == -np.inf and seq[1] == pytest.approx(m.score(X[20:]), rel=1e-12)
    assert path[10] == post[10].argmax()


def test_initial_covariance_of_far_clusters_is_positive_definite():
    # Clusters 1e8 apart: min_covar fell below the round-off of the data covariance, which
    # came out not positive definite (issue 16, finding 2).
    X = np.array([[179970738.31887075, 114416587.47471112],
                  [-41306352.02032268, -244146737.35527742],
                  [18905340.760077227, -52274843.70686705],
                  [179970739.6397483, 114416587.3825641]])
    for ct in TYPES:
        with warnings.catch_warnings():
            warnings.simplefilter("error", EMDecreaseWarning)
            m = GaussianHMM(2, covariance_type=ct, random_state=0).fit(X, [3, 1])
        assert np.all(np.isfinite(m.covars_)) and np.isfinite(m.score(X, [3, 1]))


# ------------------------------------------------------------------ hmmlearn's API (issue 12)


def test_aic_and_bic_equal_hmmlearns_from_the_same_parameters():
    for covariance_type in TYPES:
        gen = true_model(covariance_type, K=3, D=2, seed=30)
        X, lengths = sampled(gen, [40, 60])
        ref = hmm.GaussianHMM(3, covariance_type=covariance_type)
        for name in ("startprob_", "transmat_", "means_", "covars_"):
            setattr(ref, name, getattr(gen, name))
        ref.n_features = 2
        np.testing.assert_allclose(gen.aic(X, lengths), ref.aic(X, lengths), rtol=1e-10)
        np.testing.assert_allclose(gen.bic(X, lengths), ref.bic(X, lengths), rtol=1e-10)


def test_aic_and_bic_count_the_parameters_in_params():
    gen = true_model("full", K=3, D=2, seed=31)
    X, lengths = sampled(gen, [50, 50])
    ll = gen.score(X, lengths)
    counts = {"": 0, "st": 2 + 6, "stmc": 2 + 6 + 6 + 9, "mc": 6 + 9}
    for params, p in counts.items():
        gen.params = params
        assert gen.aic(X, lengths) == pytest.approx(-2 * ll + 2 * p, rel=1e-12)
        assert gen.bic(X, lengths) == pytest.approx(-2 * ll + p * np.log(100), rel=1e-12)
    # a list of sequences counts frames, not sequences
    seqs = [X[:50], X[50:]]
    assert gen.bic(seqs) == pytest.approx(gen.bic(X, lengths), rel=1e-12)


def test_stationary_distribution():
    rng = np.random.default_rng(32)
    model = GaussianHMM(4)
    model.transmat_ = rng.dirichlet(np.ones(4), size=4)
    pi = model.get_stationary_distribution()
    assert pi.dtype == np.float64 and pi.shape == (4,)
    np.testing.assert_allclose(pi @ model.transmat_, pi, atol=1e-12)
    assert pi.sum() == pytest.approx(1.0) and np.all(pi > 0)
    ref = hmm.GaussianHMM(4)
    ref.transmat_ = model.transmat_
    np.testing.assert_allclose(pi, ref.get_stationary_distribution(), rtol=1e-10)
    # left-to-right: all the mass ends in the absorbing last state
    model.transmat_ = np.array([[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0.5, 0.5],
                                [0, 0, 0, 1.0]])
    np.testing.assert_allclose(model.get_stationary_distribution(), [0, 0, 0, 1], atol=1e-12)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="transmat_"):
        GaussianHMM(2).get_stationary_distribution()


def test_n_features_as_hmmlearn():
    gen, X = fitted()
    model = GaussianHMM(2, random_state=0).fit(X)
    assert model.n_features == 2 == model.n_features_in_
    assert not hasattr(GaussianHMM(2), "n_features")
    # set by hand before sampling, as in hmmlearn
    model = GaussianHMM(2, covariance_type="spherical")
    model.n_features = 1
    model.startprob_, model.transmat_ = gen.startprob_, gen.transmat_
    model.means_, model.covars_ = np.array([[0.0], [5.0]]), np.array([1.0, 2.0])
    assert model.sample(10, random_state=0)[0].shape == (10, 1)
    assert "n_features" not in model.get_params()


def test_n_iter_zero_initialises_without_iterating():
    gen = true_model("full", K=3, D=2, seed=33)
    X, _ = sampled(gen, [200])
    model = GaussianHMM(3, covariance_type="full", n_iter=0, random_state=0).fit(X)
    ref = hmm.GaussianHMM(3, covariance_type="full", n_iter=0, random_state=0).fit(X)
    assert model.monitor_.history == [] and not model.monitor_.converged
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(model, name), getattr(ref, name), rtol=1e-7,
                                   err_msg=name)
    with pytest.raises(ValueError, match="n_iter"):
        GaussianHMM(3, n_iter=-1).fit(X)


def test_tol_minus_infinity_runs_every_iteration():
    gen = true_model("diag", K=2, D=2, seed=34)
    X, _ = sampled(gen, [300])
    model = GaussianHMM(2, n_iter=15, tol=-np.inf, random_state=0).fit(X)
    assert len(model.monitor_.history) == 15
    assert len(GaussianHMM(2, n_iter=15, tol=1e-2, random_state=0).fit(X).monitor_.history) < 15
    with pytest.raises(ValueError, match="tol"):
        GaussianHMM(2, tol=np.nan).fit(X)


def test_warns_when_a_set_attribute_will_be_overwritten():
    gen, X = fitted()
    model = GaussianHMM(2, random_state=0)
    model.startprob_ = gen.startprob_
    model.means_ = gen.means_
    with pytest.warns(UserWarning, match="will be overwritten") as record:
        model.fit(X)
    names = sorted(str(w.message).split("'")[1] for w in record
                   if "will be overwritten" in str(w.message))
    assert names == ["means_", "startprob_"]
    model = GaussianHMM(2, random_state=0, init_params="tc")
    model.startprob_, model.means_ = gen.startprob_, gen.means_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X)  # the set attributes are not in init_params: kept, no warning
        refit = GaussianHMM(2, random_state=0).fit(X)
        refit.fit(X)  # what the first fit set is not the caller's: no warning
    refit.means_ = gen.means_
    with pytest.warns(UserWarning, match="'means_' attribute is set"):
        refit.fit(X)


def test_warns_with_fewer_data_points_than_free_parameters():
    gen = true_model("full", K=3, D=2, seed=35)
    X, _ = sampled(gen, [8])  # 16 values; 2 + 6 + 6 + 9 = 23 free parameters
    with pytest.warns(UserWarning, match="23 free scalar parameters to only 16 data points"):
        GaussianHMM(3, covariance_type="full", n_iter=0, random_state=0).fit(X)
    X, _ = sampled(gen, [20])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GaussianHMM(3, covariance_type="full", n_iter=0, random_state=0).fit(X)


def test_monitor_exists_before_fit_and_a_custom_one_is_used():
    model = GaussianHMM(2, n_iter=7, tol=0.5, verbose=False)
    assert model.monitor_.n_iter == 7 and model.monitor_.tol == 0.5
    assert model.monitor_.history == []
    assert "monitor_" not in vars(model)  # nothing stored by __init__ or the getter

    class TwoIterations(ConvergenceMonitor):
        calls = 0

        @property
        def converged(self):
            type(self).calls += 1
            return len(self.history) == 2

    gen, X = fitted()
    mine = TwoIterations(model.monitor_.tol, model.monitor_.n_iter, model.monitor_.verbose)
    mine.history.append(-1.0)  # reset by fit, as in hmmlearn
    model.monitor_ = mine
    model.set_params(random_state=0).fit(X)
    assert model.monitor_ is mine and len(mine.history) == 2 and TwoIterations.calls == 2
    model.fit(X)  # kept for the next fit too
    assert model.monitor_ is mine and len(mine.history) == 2
    # without one assigned, each fit builds its monitor from the current hyperparameters
    other = GaussianHMM(2, n_iter=3, tol=-np.inf, random_state=0).fit(X)
    other.set_params(n_iter=5).fit(X)
    assert len(other.monitor_.history) == 5


def test_custom_monitor_with_restarts():
    gen, X = fitted()

    class Three(ConvergenceMonitor):
        @property
        def converged(self):
            return len(self.history) == 3

    model = GaussianHMM(2, n_init=3, random_state=0)
    model.monitor_ = Three(1e-2, 10)
    model.fit(X)
    assert isinstance(model.monitor_, Three) and len(model.monitor_.history) == 3


def test_estimator_checks_that_do_not_pass_y_still_pass():
    from sklearn.utils.estimator_checks import check_estimator

    from emx import GMMHMM

    for est in (GaussianHMM(2, n_iter=3, random_state=0),
                GMMHMM(2, n_mix=2, n_iter=3, random_state=0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = check_estimator(est, on_fail=None)
        failed = {r["check_name"]: str(r["exception"]) for r in results
                  if r["status"] == "failed"}
        # scikit-learn passes y as fit's second argument, which an HMM takes as lengths:
        # those checks fail on "lengths"; every other check must pass
        assert "check_no_attributes_set_in_init" not in failed
        assert "check_estimators_unfitted" not in failed
        others = {k: v for k, v in failed.items()
                  if "lengths" not in v and k != "check_positive_only_tag_during_fit"}
        assert not others, others


@pytest.mark.parametrize("shape", [(2, 1), (2, 1, 1), (2, 1, 1, 1)])
def test_spherical_covars_in_hmmlearns_shapes(shape):
    gen = true_model("spherical", K=2, D=1, seed=36)
    X, _ = sampled(gen, [50])
    other = clone(gen)
    other.n_features_in_ = 1
    other.startprob_, other.transmat_, other.means_ = gen.startprob_, gen.transmat_, gen.means_
    other.covars_ = np.asarray(gen.covars_).reshape(shape)
    assert other.score(X) == pytest.approx(gen.score(X), rel=1e-12)
    assert other.covars_.shape == (2,)
    other.covars_ = np.ones((2, 2))  # two values per state is not spherical
    with pytest.raises(ValueError, match="spherical"):
        other.score(X)


def test_missing_parameters_are_named():
    from sklearn.exceptions import NotFittedError

    gen, X = fitted()
    model = GaussianHMM(2)
    model.startprob_ = gen.startprob_
    with pytest.raises(NotFittedError, match="transmat_"):
        model.score(X)
    model.transmat_ = gen.transmat_
    with pytest.raises(NotFittedError, match="means_"):
        model.sample(3)
    model.startprob_ = 2 * gen.startprob_
    with pytest.raises(ValueError, match="startprob_ must sum to 1"):
        model.sample(3)
