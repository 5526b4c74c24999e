"""Discrete-emission HMMs (CategoricalHMM, MultinomialHMM, PoissonHMM): kernels, emission
objects against scipy.stats and hand-computed updates, brute-force path enumeration,
agreement with hmmlearn, EM properties, bad input."""

import logging
import warnings

import numpy as np
import pytest
from _reference import brute_force
from scipy import stats
from sklearn.base import clone

from emx import EMDecreaseWarning
from emx._core import _discrete
from emx.discrete import (
    CategoricalEmission,
    CategoricalHMM,
    DiscreteStats,
    MultinomialEmission,
    MultinomialHMM,
    PoissonEmission,
    PoissonHMM,
)

hmm = pytest.importorskip("hmmlearn.hmm")
logging.getLogger("hmmlearn").setLevel(logging.ERROR)


# ------------------------------------------------------------------ data and references
def random_params(K, F, seed, kind):
    rng = np.random.default_rng(seed)
    sp = rng.dirichlet(np.ones(K))
    tm = rng.dirichlet(np.ones(K), size=K) + 2 * np.eye(K)
    tm /= tm.sum(axis=1, keepdims=True)
    if kind == "poisson":
        em = rng.gamma(2.0, 1.5, size=(K, F))
    else:
        em = rng.dirichlet(np.ones(F), size=K)
    return sp, tm, em


def set_params(model, sp, tm, em):
    model.startprob_, model.transmat_ = sp.copy(), tm.copy()
    if isinstance(model, (PoissonHMM, hmm.PoissonHMM)):
        model.lambdas_ = em.copy()
    else:
        model.emissionprob_ = em.copy()
    return model


def sample_data(kind, K, F, lengths, seed=0, n_trials=5):
    """Observations drawn from a random model of the kind (a fresh emx model samples)."""
    sp, tm, em = random_params(K, F, seed + 100, kind)
    model = {
        "categorical": lambda: CategoricalHMM(K),
        "multinomial": lambda: MultinomialHMM(K, n_trials=n_trials),
        "poisson": lambda: PoissonHMM(K),
    }[kind]()
    set_params(model, sp, tm, em)
    X = np.concatenate([model.sample(n, random_state=seed + i)[0] for i, n in enumerate(lengths)])
    return X, list(lengths)


def scipy_loglik(kind, X, em):
    """(n, K) emission log-likelihoods from scipy.stats (independent of emx)."""
    K = em.shape[0]
    if kind == "categorical":
        return np.stack([np.log(em[k, X[:, 0].astype(int)]) for k in range(K)], axis=1)
    if kind == "multinomial":
        n = X.sum(axis=1)
        return np.stack([stats.multinomial.logpmf(X, n, em[k]) for k in range(K)], axis=1)
    return np.stack([stats.poisson.logpmf(X, em[k]).sum(axis=1) for k in range(K)], axis=1)


MODELS = {
    "categorical": (CategoricalHMM, hmm.CategoricalHMM, {}),
    "multinomial": (MultinomialHMM, hmm.MultinomialHMM, {"n_trials": 5}),
    "poisson": (PoissonHMM, hmm.PoissonHMM, {}),
}
SIZES = {"categorical": 6, "multinomial": 4, "poisson": 3}


def emission_attr(model):
    return model.lambdas_ if hasattr(model, "lambdas_") else model.emissionprob_


# ------------------------------------------------------------------ kernels
def test_kernels_match_numpy():
    rng = np.random.default_rng(0)
    T, K, M = 500, 4, 7
    sym = rng.integers(0, M, T).astype(np.intp)
    table = np.log(rng.random((M, K)))
    table[2, 1] = -np.inf
    ll = np.full((T, K), np.nan)
    assert _discrete.categorical_loglik(sym, table, ll) == -1
    np.testing.assert_array_equal(ll, table[sym])
    post = rng.random((T, K))
    counts = np.full((K, M), np.nan)
    assert _discrete.categorical_counts(sym, post, counts) == -1
    ref = np.zeros((K, M))
    for t in range(T):  # explicit sum, frame by frame
        ref[:, sym[t]] += post[t]
    np.testing.assert_allclose(counts, ref, rtol=1e-13, atol=0)


@pytest.mark.parametrize("bad", [-1, 7, 10**9])
def test_kernels_refuse_out_of_range_symbols(bad):
    sym = np.array([0, 3, bad, 1], dtype=np.intp)
    ll, counts = np.zeros((4, 2)), np.zeros((2, 7))
    with pytest.raises(ValueError, match=r"symbols\[2\]"):
        _discrete.categorical_loglik(sym, np.zeros((7, 2)), ll)
    with pytest.raises(ValueError, match=r"symbols\[2\]"):
        _discrete.categorical_counts(sym, np.ones((4, 2)), counts)
    assert not ll.any() and not counts.any()  # nothing written


def test_kernels_refuse_bad_shapes():
    sym = np.zeros(4, dtype=np.intp)
    with pytest.raises(ValueError, match="loglik has shape"):
        _discrete.categorical_loglik(sym, np.zeros((3, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="post has shape"):
        _discrete.categorical_counts(sym, np.zeros((4, 3)), np.zeros((2, 3)))


# ------------------------------------------------------------------ emission objects
def test_categorical_emission_against_scipy_and_sums():
    rng = np.random.default_rng(1)
    K, M = 3, 5
    p = rng.dirichlet(np.ones(M), size=K)
    p[1, 2] = 0.0
    p[1] /= p[1].sum()
    X = rng.integers(0, M, (40, 1)).astype(float)
    em = CategoricalEmission(K)
    em.emissionprob_ = p
    assert em.check(1) == 1
    ll, ctx = em.estep_fn()(X)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(ll, scipy_loglik("categorical", X, p), rtol=1e-14)
    post = rng.dirichlet(np.ones(K), size=len(X))
    st = em.stats(X, post, ctx)
    ref = np.array([[post[X[:, 0] == s, k].sum() for s in range(M)] for k in range(K)])
    np.testing.assert_allclose(st.obs, ref, rtol=1e-13)
    np.testing.assert_allclose(st.post, post.sum(axis=0), rtol=1e-13)


@pytest.mark.parametrize("kind", ["multinomial", "poisson"])
def test_count_emissions_against_scipy(kind):
    rng = np.random.default_rng(2)
    K, D = 3, 4
    if kind == "multinomial":
        X = rng.multinomial(9, [0.1, 0.2, 0.3, 0.4], size=50).astype(float)
        em = MultinomialEmission(K, n_trials=9)
        par = rng.dirichlet(np.ones(D), size=K)
        par[0, 1] = 0.0  # an outcome state 0 never produces
        par[0] /= par[0].sum()
        em.emissionprob_ = par
    else:
        X = rng.poisson(2.0, size=(50, D)).astype(float)
        em = PoissonEmission(K)
        par = rng.gamma(2.0, 1.0, size=(K, D))
        par[2, 3] = 0.0  # a feature state 2 only emits as 0
        em.lambdas_ = par
    X[:3, :] = 0.0  # rows of zeros have probability 1 (multinomial) / exp(-sum lambda)
    X[:3, -1] = 9.0 if kind == "multinomial" else 0.0
    assert em.validate(X) is X
    assert em.check(D) == D
    ll, _ = em.estep_fn()(X)
    ref = scipy_loglik(kind, X, par)
    assert np.array_equal(np.isneginf(ll), np.isneginf(ref)) and np.isneginf(ll).any()
    fin = np.isfinite(ref)
    np.testing.assert_allclose(ll[fin], ref[fin], rtol=1e-12, atol=1e-12)
    post = rng.dirichlet(np.ones(K), size=len(X))
    st = em.stats(X, post, None)
    np.testing.assert_allclose(st.obs, sum(np.outer(post[t], X[t]) for t in range(len(X))),
                               rtol=1e-12)


@pytest.mark.parametrize("top", [0, 5, 300, 70_000])
def test_log_factorial_table_equals_gammaln(top):
    from scipy.special import gammaln

    from emx.discrete import _log_factorial

    rng = np.random.default_rng(top)
    X = rng.integers(0, top + 1, size=(50, 4)).astype(float)
    X[0, 0] = top
    np.testing.assert_array_equal(_log_factorial(X), gammaln(X + 1.0))
    np.testing.assert_array_equal(_log_factorial(X.sum(axis=1)), gammaln(X.sum(axis=1) + 1.0))


def test_statistics_add():
    a = DiscreteStats(np.ones(2), np.ones((2, 3)))
    b = DiscreteStats(np.full(2, 2.0), np.full((2, 3), 3.0))
    c = a + b
    np.testing.assert_array_equal(c.obs, np.full((2, 3), 4.0))
    a += b
    np.testing.assert_array_equal(a.post, np.full(2, 3.0))


def test_dirichlet_mstep_hand_computed():
    # MAP of a Dirichlet-multinomial: (n + a - 1)^+ normalised; a row with no mass keeps its
    # previous probabilities.
    counts = np.array([[3.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.2, 5.0, 0.0]])
    prior = np.array([[2.0, 1.5, 0.5], [1.0, 1.0, 1.0], [0.5, 1.0, 3.0]])
    old = np.array([[0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [1 / 3] * 3])
    for em in (CategoricalEmission(3, emissionprob_prior=prior),
               MultinomialEmission(3, emissionprob_prior=prior)):
        em.emissionprob_ = old.copy()
        em.mstep(DiscreteStats(counts.sum(axis=1), counts), "e")
        expect = np.array([
            np.array([4.0, 0.5, 0.5]) / 5.0,
            old[1],
            np.array([0.0, 5.0, 2.0]) / 7.0,  # 0.2 + 0.5 - 1 < 0 clips to 0
        ])
        np.testing.assert_allclose(em.emissionprob_, expect, rtol=1e-15)
        # the log prior the objective adds: sum (a - 1) log p over non-zero p
        lp = em.log_prior("e")
        nz = expect > 0
        assert lp == pytest.approx(np.sum((prior - 1)[nz] * np.log(expect[nz])), rel=1e-14)
        assert em.log_prior("st") == 0.0
        em.emissionprob_ = old.copy()
        em.mstep(DiscreteStats(counts.sum(axis=1), counts), "st")  # 'e' not in params
        np.testing.assert_array_equal(em.emissionprob_, old)


def test_poisson_mstep_hand_computed():
    # Gamma(alpha, beta) prior: lambda = (alpha + S_k) / (beta + N_k) per state; a state with
    # no data keeps its rates; defaults (0, 0) give the weighted mean.
    alpha = np.array([1.0, 0.5, 2.0])
    beta = np.array([[2.0, 0.0], [1.0, 3.0], [0.5, 0.5]])
    N = np.array([4.0, 10.0, 0.0])
    S = np.array([[6.0, 1.0], [20.0, 0.0], [0.0, 0.0]])
    old = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 0.7]])
    em = PoissonEmission(3, lambdas_prior=alpha, lambdas_weight=beta)
    em.lambdas_ = old.copy()
    em.check(2)
    em.mstep(DiscreteStats(N, S), "stl")
    expect = np.array([
        [(1.0 + 6.0) / (2.0 + 4.0), (1.0 + 1.0) / (0.0 + 4.0)],
        [(0.5 + 20.0) / (1.0 + 10.0), (0.5 + 0.0) / (3.0 + 10.0)],
        old[2],
    ])
    np.testing.assert_allclose(em.lambdas_, expect, rtol=1e-15)
    lam = em.lambdas_
    a2 = np.broadcast_to(alpha[:, None], (3, 2))
    assert em.log_prior("l") == pytest.approx(np.sum(a2 * np.log(lam) - beta * lam), rel=1e-14)
    # it is the maximum of S log(l) - N l + alpha log(l) - beta l for each state with data
    def objective(v, k, d):
        return (S[k, d] + a2[k, d]) * np.log(v) - (N[k] + beta[k, d]) * v

    for k in (0, 1):
        for d in (0, 1):
            v = lam[k, d]
            best = objective(v, k, d)
            assert best >= max(objective(v * 1.001, k, d), objective(v * 0.999, k, d))
    plain = PoissonEmission(3)
    plain.lambdas_ = old.copy()
    plain.mstep(DiscreteStats(N, S), "l")
    np.testing.assert_allclose(plain.lambdas_[:2], S[:2] / N[:2, None], rtol=1e-15)


# ------------------------------------------------------------------ brute force
@pytest.mark.parametrize("kind", list(MODELS))
def test_brute_force_path_enumeration(kind):
    K, F = 3, SIZES[kind]
    lengths = [4, 1, 5]
    X, _ = sample_data(kind, K, F, lengths, seed=3)
    sp, tm, em = random_params(K, F, 7, kind)
    cls, _, kw = MODELS[kind]
    model = set_params(cls(K, **kw), sp, tm, em)
    ll_ref = scipy_loglik(kind, X, em)
    total, posts, paths, best = 0.0, [], [], 0.0
    start = 0
    for n in lengths:
        t, post, _, path, lp = brute_force(ll_ref[start:start + n], sp, tm)
        total += t
        posts.append(post)
        paths.append(path)
        best += lp
        start += n
    assert model.score(X, lengths) == pytest.approx(total, rel=1e-12)
    score, post = model.score_samples(X, lengths)
    assert score == pytest.approx(total, rel=1e-12)
    np.testing.assert_allclose(post, np.concatenate(posts), rtol=0, atol=1e-12)
    lp, states = model.decode(X, lengths)
    np.testing.assert_array_equal(states, np.concatenate(paths))
    assert lp == pytest.approx(best, rel=1e-12)


# ------------------------------------------------------------------ agreement with hmmlearn
@pytest.mark.parametrize("kind", list(MODELS))
def test_agrees_with_hmmlearn_from_same_parameters(kind):
    K, F = 3, SIZES[kind]
    X, lengths = sample_data(kind, K, F, [60, 45, 80, 30], seed=5)
    sp, tm, em = random_params(K, F, 11, kind)
    cls, ref_cls, kw = MODELS[kind]
    extra = {}
    if kind == "categorical":  # hmmlearn's priors: Dirichlet on all three
        extra = dict(startprob_prior=1.5, transmat_prior=2.0, emissionprob_prior=1.3)
    ours = set_params(cls(K, n_iter=15, tol=1e-300, init_params="", **kw, **extra), sp, tm, em)
    ref = set_params(ref_cls(K, n_iter=15, tol=1e-300, init_params="", **kw, **extra),
                     sp, tm, em)
    ours.fit(X, lengths)
    ref.fit(X.astype(int), lengths)
    assert len(ours.monitor_.history) == len(ref.monitor_.history) == 15
    np.testing.assert_allclose(ours.monitor_.history, ref.monitor_.history, rtol=1e-10)
    np.testing.assert_allclose(ours.startprob_, ref.startprob_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.transmat_, ref.transmat_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(emission_attr(ours), emission_attr(ref), rtol=1e-8, atol=1e-10)
    assert ours.score(X, lengths) == pytest.approx(ref.score(X.astype(int), lengths), rel=1e-10)
    np.testing.assert_array_equal(ours.predict(X, lengths), ref.predict(X.astype(int), lengths))


@pytest.mark.parametrize("kind", list(MODELS))
def test_initial_draw_is_hmmlearns(kind):
    # Same int seed, params="" (EM changes nothing): the initial parameters are hmmlearn's.
    K, F = 3, SIZES[kind]
    X, lengths = sample_data(kind, K, F, [50, 50], seed=8)
    cls, ref_cls, kw = MODELS[kind]
    ours = cls(K, random_state=4, params="", n_iter=1, **kw).fit(X, lengths)
    ref = ref_cls(K, random_state=4, params="", n_iter=1, **kw).fit(X.astype(int), lengths)
    np.testing.assert_allclose(emission_attr(ours), emission_attr(ref), rtol=1e-14)
    np.testing.assert_allclose(ours.transmat_, ref.transmat_, rtol=1e-12, atol=1e-300)


def test_wikipedia_example_and_multinomial_with_one_trial():
    # hmmlearn's own check: the Viterbi path of walk-shop-clean and its probability 0.01344.
    sp, tm = np.array([0.6, 0.4]), np.array([[0.7, 0.3], [0.4, 0.6]])
    ep = np.array([[0.1, 0.4, 0.5], [0.6, 0.3, 0.1]])
    cat = set_params(CategoricalHMM(2), sp, tm, ep)
    mult = set_params(MultinomialHMM(2, n_trials=1), sp, tm, ep)
    for model, X in ((cat, [[0], [1], [2]]), (mult, np.eye(3))):
        lp, states = model.decode(X)
        assert round(np.exp(lp), 5) == 0.01344
        np.testing.assert_array_equal(states, [1, 0, 0])
        np.testing.assert_allclose(model.predict_proba(X), [
            [0.23170303, 0.76829697], [0.62406281, 0.37593719], [0.86397706, 0.13602294],
        ], atol=1e-6)  # hmmlearn's figures and tolerance


# ------------------------------------------------------------------ EM properties
@pytest.mark.parametrize("kind", list(MODELS))
def test_objective_never_falls(kind):
    K, F = 4, SIZES[kind]
    X, lengths = sample_data(kind, K, F, [100] * 6, seed=9)
    cls, _, kw = MODELS[kind]
    priors = {
        "categorical": dict(emissionprob_prior=1.7, transmat_prior=1.2),
        "multinomial": dict(emissionprob_prior=2.5, startprob_prior=3.0),
        "poisson": dict(lambdas_prior=0.5, lambdas_weight=np.array([0.1, 1.0, 2.0, 0.3])),
    }[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        model = cls(K, n_iter=40, tol=1e-300, random_state=0, **kw, **priors).fit(X, lengths)
    obj = np.array(model.monitor_.objective)
    assert len(obj) == 40
    assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[1:]))
    # the objective holds a real prior: it differs from the log-likelihood
    assert not np.allclose(obj, model.monitor_.history)


@pytest.mark.parametrize("kind", list(MODELS))
def test_threads_give_identical_results(kind):
    K, F = 3, SIZES[kind]
    X, lengths = sample_data(kind, K, F, [150] * 40, seed=10)  # several chunks
    cls, _, kw = MODELS[kind]
    fits = [cls(K, n_iter=8, random_state=2, n_jobs=j, **kw).fit(X, lengths) for j in (1, 2)]
    assert fits[0].monitor_.history == fits[1].monitor_.history
    for a in ("startprob_", "transmat_"):
        np.testing.assert_array_equal(getattr(fits[0], a), getattr(fits[1], a))
    np.testing.assert_array_equal(emission_attr(fits[0]), emission_attr(fits[1]))
    np.testing.assert_array_equal(fits[0].predict_proba(X, lengths),
                                  fits[1].predict_proba(X, lengths))


def test_categorical_learns_the_generating_model():
    K = 2
    sp = np.array([1.0, 0.0])
    tm = np.array([[0.9, 0.1], [0.2, 0.8]])
    ep = np.array([[0.7, 0.1, 0.1, 0.1], [0.05, 0.05, 0.1, 0.8]])
    gen = set_params(CategoricalHMM(K), sp, tm, ep)
    X = np.concatenate([gen.sample(300, random_state=i)[0] for i in range(20)])
    # restarts: some random starts creep along a near-symmetric saddle (hmmlearn too)
    model = CategoricalHMM(K, n_iter=200, tol=1e-6, n_init=3, random_state=0).fit(X, [300] * 20)
    order = np.argsort(model.emissionprob_[:, 0])[::-1]
    np.testing.assert_allclose(model.emissionprob_[order], ep, atol=0.03)
    np.testing.assert_allclose(model.transmat_[np.ix_(order, order)], tm, atol=0.03)


def test_n_features_inferred_or_respected_and_not_mutated():
    X = np.array([[0], [2], [1], [2], [0], [1]] * 5)
    model = CategoricalHMM(2, random_state=0, n_iter=3)
    params = model.get_params()
    model.fit(X)
    assert model.emissionprob_.shape == (2, 3)
    assert model.get_params() == params  # n_features stays None (scikit-learn's rule)
    assert model.n_features_in_ == 1
    model5 = clone(model).set_params(n_features=5).fit(X)
    assert model5.emissionprob_.shape == (2, 5)


def test_count_models_report_n_features_as_hmmlearn():
    X = np.array([[1, 2, 0], [0, 0, 3], [2, 1, 0], [1, 1, 1]])
    for model in (MultinomialHMM(2, n_trials=3), PoissonHMM(2)):
        with pytest.raises(AttributeError, match="no n_features yet"):
            model.n_features  # noqa: B018
        model.set_params(random_state=0, n_iter=2).fit(X)
        assert model.n_features == model.n_features_in_ == 3
        assert "n_features" not in model.get_params()


def test_sampling():
    K = 2
    sp, tm = np.array([0.5, 0.5]), np.array([[0.5, 0.5], [0.5, 0.5]])
    ep = np.array([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]])
    cat = set_params(CategoricalHMM(K), sp, tm, ep)
    X, states = cat.sample(4000, random_state=0)
    assert X.shape == (4000, 1) and np.issubdtype(X.dtype, np.integer)
    assert set(X[states == 1, 0]) == {0} and 0 not in set(X[states == 0, 0])
    assert np.mean(X[states == 0, 0] == 2) == pytest.approx(0.75, abs=0.03)
    mult = set_params(MultinomialHMM(K, n_trials=6), sp, tm, ep)
    Xm, _ = mult.sample(200, random_state=0)
    assert Xm.shape == (200, 3) and np.all(Xm.sum(axis=1) == 6)
    mult.n_trials = None
    with pytest.raises(ValueError, match="single n_trials"):
        mult.sample(5)
    lam = np.array([[0.5, 8.0], [3.0, 0.0]])
    pois = set_params(PoissonHMM(K), sp, tm, lam)
    Xp, sp_states = pois.sample(4000, random_state=1)
    assert Xp.shape == (4000, 2) and np.all(Xp[sp_states == 1, 1] == 0)
    np.testing.assert_allclose(Xp[sp_states == 0].mean(axis=0), lam[0], rtol=0.05)


def test_zero_probability_frame_scores_minus_inf():
    sp, tm = np.array([0.5, 0.5]), np.array([[0.5, 0.5], [0.5, 0.5]])
    ep = np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]])  # symbol 2: never emitted
    model = set_params(CategoricalHMM(2), sp, tm, ep)
    X = np.array([[0], [2], [1], [0], [1]])
    seqs = model.score_sequences(X, [2, 3])
    assert seqs[0] == -np.inf and np.isfinite(seqs[1])
    _, post = model.score_samples(X, [2, 3])
    assert np.all(np.isfinite(post))


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kind, X, match",
    [
        ("categorical", [[0], [-1], [2]], "non-negative integers; X\\[1, 0\\] = -1"),
        ("categorical", [[0], [1.5], [2]], "integers; X\\[1, 0\\] = 1.5"),
        ("categorical", [[0, 1], [1, 0]], "one column of symbols"),
        ("multinomial", [[2, 3], [1, -1]], "non-negative integers; X\\[1, 1\\]"),
        ("multinomial", [[2, 3], [2.5, 2.5]], "integers; X\\[1, 0\\] = 2.5"),
        ("multinomial", [[2, 3], [1, 3]], "row 1 sums to 4, not 5"),
        ("poisson", [[2, 3], [0.5, 1]], "integers; X\\[1, 0\\] = 0.5"),
        ("poisson", [[2, -3], [0, 1]], "non-negative integers; X\\[0, 1\\]"),
    ],
)
def test_bad_observations(kind, X, match):
    cls, _, kw = MODELS[kind]
    X = np.array(X, dtype=float)
    before = X.copy()
    with pytest.raises(ValueError, match=match):
        cls(2, **kw).fit(X)
    np.testing.assert_array_equal(X, before)  # not mutated


@pytest.mark.filterwarnings("ignore:Fitting a model with:UserWarning")
@pytest.mark.filterwarnings("ignore:Even though:UserWarning")
def test_symbol_beyond_n_features_or_emissionprob():
    X = np.array([[0], [3], [1], [4]])
    with pytest.raises(ValueError, match="symbol 4, but n_features=4"):
        CategoricalHMM(2, n_features=4).fit(X)
    model = CategoricalHMM(2, random_state=0, n_iter=2).fit(X[:3])  # 4 symbols
    with pytest.raises(ValueError, match="symbol 4, but emissionprob_ has 4 columns"):
        model.score(X)
    with pytest.raises(ValueError, match="symbol 4, but emissionprob_ has 4 columns"):
        model.set_params(init_params="st").fit(X)


@pytest.mark.filterwarnings("ignore:Fitting a model with:UserWarning")
@pytest.mark.filterwarnings("ignore:Even though:UserWarning")
def test_bad_parameters_and_hyperparameters():
    X = np.array([[0], [1], [2], [1]])
    model = CategoricalHMM(2, random_state=0, n_iter=1).fit(X)
    for bad, match in [
        (np.zeros((1, 3)), r"emissionprob_ must have shape \(2, n_features\)"),
        (np.full((2, 3), 0.5), "rows must sum to 1"),
        (np.array([[1.5, -0.5, 0.0], [0.2, 0.3, 0.5]]), "finite and non-negative"),
    ]:
        broken = clone(model)
        broken.startprob_, broken.transmat_ = model.startprob_, model.transmat_
        broken.emissionprob_ = bad
        with pytest.raises(ValueError, match=match):
            broken.score(X)
    with pytest.raises(ValueError, match="n_features must be an integer"):
        CategoricalHMM(2, n_features=0).fit(X)
    with pytest.raises(ValueError, match="emissionprob_prior must be"):
        CategoricalHMM(2, emissionprob_prior=np.ones((3, 3))).fit(X)
    with pytest.raises(ValueError, match="n_trials must be None"):
        MultinomialHMM(2, n_trials=-2).fit(np.array([[1, 1], [2, 0]]))
    with pytest.raises(ValueError, match="n_trials has 3 values, but X has 2 rows"):
        MultinomialHMM(2, n_trials=[2, 2, 2]).fit(np.array([[1, 1], [2, 0]]))
    with pytest.raises(ValueError, match="lambdas_prior must be non-negative"):
        PoissonHMM(2, lambdas_prior=-1.0).fit(np.array([[1, 1], [2, 0], [0, 3]]))
    with pytest.raises(ValueError, match="lambdas_weight must be a scalar"):
        PoissonHMM(2, lambdas_weight=np.ones(5)).fit(np.array([[1, 1], [2, 0], [0, 3]]))


def test_multinomial_n_trials_none_and_array():
    X = np.array([[1, 2, 0], [0, 0, 5], [2, 2, 2], [1, 0, 0]])
    a = MultinomialHMM(2, random_state=0, n_iter=3).fit(X)  # any row totals
    b = MultinomialHMM(2, n_trials=[3, 5, 6, 1], random_state=0, n_iter=3).fit(X)
    assert a.monitor_.history == b.monitor_.history
    assert a.n_trials is None


def test_degenerate_poisson_data_is_not_nan():
    X = np.zeros((20, 2))
    model = PoissonHMM(2, random_state=0, n_iter=3).fit(X)
    np.testing.assert_array_equal(model.lambdas_, 0.0)
    assert model.score(X) == pytest.approx(0.0, abs=1e-12)
    assert model.score(np.array([[1.0, 0.0]])) == -np.inf
    X = np.full((20, 2), 3.0)
    model = PoissonHMM(2, random_state=0, n_iter=3).fit(X)
    np.testing.assert_allclose(model.lambdas_, 3.0)


# ------------------------------------------------------------------ distributed (Dask)
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
            silence_logs=50,
        )
        c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _partitions(X, lengths, cut):
    """Two partitions of whole sequences: the first ``cut`` sequences, then the rest."""
    n = sum(lengths[:cut])
    return [(X[:n], lengths[:cut]), (X[n:], lengths[cut:])]


@pytest.mark.parametrize("kind", list(MODELS))
def test_distributed_fit_equals_serial(client, kind):
    import emx.distributed as ed

    K, F = 3, SIZES[kind]
    X, lengths = sample_data(kind, K, F, [80, 60, 100, 40, 70], seed=12)
    cls, _, kw = MODELS[kind]
    serial = cls(K, n_iter=6, tol=1e-300, random_state=3, **kw).fit(X, lengths)
    dist = ed.fit(cls(K, n_iter=6, tol=1e-300, random_state=3, **kw),
                  _partitions(X, lengths, 2), client)
    np.testing.assert_allclose(dist.monitor_.history, serial.monitor_.history, rtol=1e-12)
    np.testing.assert_allclose(dist.transmat_, serial.transmat_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(emission_attr(dist), emission_attr(serial), rtol=1e-10,
                               atol=1e-12)


def test_distributed_symbols_from_all_partitions(client):
    # The initial draw sees a sample of 100 frames; the number of symbols comes from all the
    # data, so a rare symbol in the last partition is in emissionprob_.
    import emx.distributed as ed

    rng = np.random.default_rng(13)
    X = rng.integers(0, 4, (3000, 1)).astype(float)
    X[2500] = 9
    model = ed.fit(CategoricalHMM(2, n_iter=3, random_state=0),
                   _partitions(X, [1000, 1000, 1000], 2), client, max_init_rows=100)
    assert model.emissionprob_.shape == (2, 10)
    assert model.n_features is None
    X[2500] = -1
    with pytest.raises(ValueError, match=r"Partition 1: Symbols must be non-negative"):
        ed.fit(CategoricalHMM(2, n_iter=3, random_state=0),
               _partitions(X, [1000, 1000, 1000], 2), client)


def test_distributed_poisson_starts_from_all_counts(client):
    # Above max_init_rows the initial rates come from the moments of all the counts: the
    # distributed fit starts (and so ends) where the serial one does.
    import emx.distributed as ed

    X, lengths = sample_data("poisson", 3, 3, [500] * 6, seed=14)
    serial = PoissonHMM(3, n_iter=4, random_state=5).fit(X, lengths)
    dist = ed.fit(PoissonHMM(3, n_iter=4, random_state=5), _partitions(X, lengths, 3), client,
                  max_init_rows=200)
    np.testing.assert_allclose(dist.monitor_.history, serial.monitor_.history, rtol=1e-10)
    np.testing.assert_allclose(dist.lambdas_, serial.lambdas_, rtol=1e-9)


# ------------------------------------------------------------------ random data (hypothesis)
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=25, deadline=None, derandomize=True,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(
    kind=st.sampled_from(list(MODELS)),
    K=st.integers(1, 4),
    n_seq=st.integers(1, 4),
    seq_len=st.integers(1, 12),
    alphabet=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    prior=st.sampled_from([None, 1.5, 3.0]),  # < 1: no maximum (see the README)
)
def test_random_data_finite_and_monotone(kind, K, n_seq, seq_len, alphabet, seed, prior):
    # Any small data set, degenerate ones included (one symbol, all-zero counts, more states
    # than distinct values): finite normalised parameters, an objective that never falls.
    rng = np.random.default_rng(seed)
    n = n_seq * seq_len
    hypothesis.assume(n >= K)
    if kind == "categorical":
        X = rng.integers(0, alphabet, (n, 1))
        kw = {} if prior is None else {"emissionprob_prior": prior}
    elif kind == "multinomial":
        X = rng.multinomial(alphabet - 1, np.ones(3) / 3, size=n)
        kw = {"n_trials": alphabet - 1}
        if prior is not None:
            kw["emissionprob_prior"] = prior
    else:
        X = rng.poisson(alphabet - 1, size=(n, 2))
        kw = {} if prior is None else {"lambdas_prior": prior, "lambdas_weight": prior}
    cls = MODELS[kind][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # few data points for the parameters
        warnings.simplefilter("error", EMDecreaseWarning)
        model = cls(K, n_iter=8, tol=1e-300, random_state=seed, **kw).fit(X, [seq_len] * n_seq)
    par = emission_attr(model)
    assert np.all(np.isfinite(par)) and np.all(par >= 0)
    if kind != "poisson":
        np.testing.assert_allclose(par.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(model.transmat_.sum(axis=1), 1.0, atol=1e-12)
    obj = np.array(model.monitor_.objective)
    assert np.all(np.isfinite(obj))
    assert np.all(np.diff(obj) >= -(1e-8 + 1e-10 * np.abs(obj[1:])))
    assert np.isfinite(model.score(X, [seq_len] * n_seq))


@pytest.mark.parametrize("kind", list(MODELS))
def test_arrays_the_caller_set_are_not_modified(kind):
    K, F = 2, SIZES[kind]
    X, lengths = sample_data(kind, K, F, [40, 30], seed=15)
    sp, tm, em = random_params(K, F, 16, kind)
    cls, _, kw = MODELS[kind]
    model = cls(K, n_iter=3, init_params="", **kw)
    model.startprob_, model.transmat_ = sp, tm
    if kind == "poisson":
        model.lambdas_ = em
    else:
        model.emissionprob_ = em
    copies = [a.copy() for a in (sp, tm, em, X)]
    model.fit(X, lengths)
    model.score(X, lengths)
    for before, after in zip(copies, (sp, tm, em, X), strict=True):
        np.testing.assert_array_equal(before, after)
    assert not np.array_equal(emission_attr(model), em)  # EM did move the parameters
