"""Speaker adaptation of the Recognizer by EM: CMLLR, MLLR and MAP (emx.speech.adapt)."""

import copy
import warnings

import numpy as np
import pytest
from _synthetic_speech import _isolated, _strings
from scipy.optimize import minimize
from scipy.special import logsumexp

from emx.speech import Recognizer
from emx.speech.adapt import (
    AdaptStats,
    _best_row,
    _decide_isolated,
    _estep,
    _row_objective,
    adapt,
    cmllr_auxiliary,
    cmllr_update,
    map_update,
)
from emx.speech.recognizer import _Group

# The synthetic "new speaker": x_new = A0^-1 (x - b0), so [A0, b0] maps it back.
_TH = 1.0
_R = np.eye(4)
_R[1:3, 1:3] = [[np.cos(_TH), -np.sin(_TH)], [np.sin(_TH), np.cos(_TH)]]
A0 = _R @ np.diag([1.0, 1.95, 0.8, 1.2])
B0 = np.array([0.5, 1.0, -1.0, 0.7])
W0 = np.hstack([A0, B0[:, None]])


def _speaker(feats):
    return [(x - B0) @ np.linalg.inv(A0).T for x in feats]


@pytest.fixture(scope="module")
def rec():
    X, y = _isolated(60, 0)
    return Recognizer(n_states=3, n_mix=2, silence_states=1, var_floor=0.1).fit(X, y)


@pytest.fixture(scope="module")
def speaker():
    X, y = _isolated(60, 1)
    return _speaker(X), y


def _arrays(r):
    out = {k: np.array(getattr(r.pool_, k)) for k in ("weights_", "means_", "covars_")}
    out["stay_"] = np.array(r.stay_)
    out["silence_skip_"] = np.array(r.silence_skip_)
    W = getattr(r, "feature_transform_", None)
    out["feature_transform_"] = None if W is None else np.array(W)
    return out


# ---------------------------------------------------------------------------- CMLLR
def test_cmllr_recovers_affine_speaker(rec, speaker):
    X, y = speaker
    before = rec.score(X, y)
    assert before < 0.75  # the transform really hurts the unadapted model
    new = adapt(rec, X, y, method="cmllr")
    W = new.feature_transform_
    assert W.shape == (4, 5)
    # within 0.2 of entries up to 1.95 (the residual is the trained model's own estimation
    # error: the same fit on the training speaker's features gives the identity to ~0.1)
    assert np.abs(W - W0).max() < 0.2
    assert np.linalg.norm(W - W0) / np.linalg.norm(W0) < 0.08
    assert new.score(X, y) >= 0.98


def test_cmllr_on_training_speaker_is_near_identity(rec):
    X, y = _isolated(40, 3)
    new = adapt(rec, X, y, method="cmllr")
    assert np.abs(new.feature_transform_ - np.hstack([np.eye(4), np.zeros((4, 1))])).max() < 0.15


def test_cmllr_unsupervised_recovers_speaker(rec, speaker):
    X, y = speaker
    before = rec.score(X, y)
    new = adapt(rec, X, method="cmllr", isolated=True)
    assert new.score(X, y) >= max(before + 0.2, 0.95)
    assert np.abs(new.feature_transform_ - W0).max() < 0.3
    passes = {e["pass"] for e in new.adaptation_history_}
    assert passes == {0, 1, 2}  # n_passes=3 by default
    # the second pass decoded with the adapted model: its hypotheses changed
    second = [e for e in new.adaptation_history_ if e["pass"] == 1][0]
    assert second["n_changed"] > 0


def test_cmllr_unsupervised_connected_strings(rec):
    X, refs = _strings(25, 7)
    Xs = _speaker(X)
    assert _decide_isolated(rec, Xs) is False
    before = rec.evaluate(Xs, refs)["accuracy"]
    new = adapt(rec, Xs, method="cmllr")  # isolated=None decides: connected words
    after = new.evaluate(Xs, refs)["accuracy"]
    assert after >= max(before + 0.2, 0.9)


def test_decide_isolated(rec):
    X, _ = _isolated(20, 4)
    assert _decide_isolated(rec, X) is True


def test_adapting_an_adapted_model_starts_where_it_was(rec, speaker):
    X, y = speaker
    once = adapt(rec, X, y, method="cmllr", n_iter=2)
    twice = adapt(once, X, y, method="cmllr", n_iter=2)
    h1, h2 = once.adaptation_history_, twice.adaptation_history_
    # the second adaptation starts at the first one's transform: same log-likelihood
    assert h2[0]["loglik"] == pytest.approx(h1[-1]["loglik"], rel=1e-9)
    assert h2[-1]["loglik"] >= h1[-1]["loglik"] - 1e-6 * abs(h1[-1]["loglik"])
    # and it is a transform of the front-end features (not of the adapted ones)
    assert np.abs(twice.feature_transform_ - W0).max() < 0.2
    # unsupervised: the adapted model decodes the features once through its transform
    # (a second application would make every hypothesis wrong)
    again = adapt(once, X, method="cmllr", isolated=True, n_iter=2)
    assert again.adaptation_history_[0]["loglik"] == pytest.approx(h1[-1]["loglik"], rel=1e-9)
    assert again.score(X, y) >= 0.98
    for method in ("mllr", "map"):
        on_top = adapt(once, X, method=method, isolated=True, n_iter=2)
        np.testing.assert_array_equal(on_top.feature_transform_, once.feature_transform_)
        assert on_top.adaptation_history_[0]["loglik"] == pytest.approx(h1[-1]["loglik"],
                                                                        rel=1e-9)
        assert on_top.score(X, y) >= 0.98


@pytest.mark.parametrize("blocks", [(1, 3), "diagonal"])
def test_cmllr_block_diagonal(rec, speaker, blocks):
    X, y = speaker
    new = adapt(rec, X, y, method="cmllr", blocks=blocks)
    A = new.feature_transform_[:, :4]
    mask = np.zeros((4, 4), dtype=bool)
    if blocks == "diagonal":
        np.fill_diagonal(mask, True)
    else:
        mask[0, 0] = True
        mask[1:, 1:] = True
    assert np.all(A[~mask] == 0) and np.all(A[mask] != 0)
    values = [e["loglik"] for e in new.adaptation_history_]
    assert np.all(np.diff(values) >= -1e-9 * np.abs(values[:-1]))
    full = adapt(rec, X, y, method="cmllr")
    # the (1, 3) blocks contain the true transform: as likely as the full one, nearly
    assert values[-1] <= full.adaptation_history_[-1]["loglik"] + 1e-6 * abs(values[-1])
    if blocks != "diagonal":
        assert np.abs(new.feature_transform_ - W0).max() < 0.2


# ---------------------------------------------------------------------------- monotone EM
@pytest.mark.parametrize("method", ["cmllr", "mllr", "map"])
@pytest.mark.parametrize("supervised", [True, False])
def test_adaptation_objective_never_decreases(rec, speaker, method, supervised):
    X, y = speaker
    new = adapt(rec, X, y if supervised else None, method=method, n_iter=5, tau=3.0,
                isolated=True)
    hist = new.adaptation_history_
    assert len(hist) == 6 * (1 if supervised else 3)  # n_iter + 1 E-steps per pass
    for p in {e["pass"] for e in hist}:
        values = [e["objective"] for e in hist if e["pass"] == p]
        steps = np.diff(values)
        assert np.all(steps >= -1e-9 * np.abs(values[:-1])), (method, values)
        assert values[-1] > values[0]  # adaptation moved
    if method != "map":  # for CMLLR/MLLR the objective is the log-likelihood itself
        assert all(e["objective"] == e["loglik"] for e in hist)
    else:
        assert all(e["objective"] <= e["loglik"] for e in hist)


def test_history_loglik_is_the_models_score(rec, speaker):
    """The recorded final log-likelihood is the adapted model's own score of the data
    (decision_function with the transcript's word, which includes n_frames log|det A|)."""
    X, y = speaker
    new = adapt(rec, X, y, method="cmllr", n_iter=3)
    scores = new.decision_function(X)
    col = [new._unit(w) for w in y]
    total = scores[np.arange(len(y)), col].sum()
    assert new.adaptation_history_[-1]["loglik"] == pytest.approx(total, rel=1e-9)


# ---------------------------------------------------------------------------- statistics
def _brute_force_stats(r, X, word):
    """Per-frame Gaussian posteriors by a log-space forward-backward (numpy), then the
    CMLLR statistics by their definitions."""
    net = r._chain([r._unit(word)])
    h = r.pool_
    S, M, D = h.means_.shape
    mu = h.means_.reshape(S * M, D)
    var = h.covars_.reshape(S * M, D)
    logw = np.log(h.weights_.reshape(S * M))
    lg = (-0.5 * (((X[:, None, :] - mu) ** 2) / var).sum(-1)
          - 0.5 * np.log(2 * np.pi * var).sum(-1) + logw)  # (T, S*M)
    ls = logsumexp(lg.reshape(len(X), S, M), axis=2)  # (T, S)
    e = ls[:, net.states]
    T, L = e.shape
    la = np.full((T, L), -np.inf)
    lb = np.full((T, L), -np.inf)
    la[0] = net.log_start + e[0]
    for t in range(1, T):
        la[t] = logsumexp(la[t - 1][:, None] + net.log_trans, axis=0) + e[t]
    lb[-1] = net.log_final
    for t in range(T - 2, -1, -1):
        lb[t] = logsumexp(net.log_trans + e[t + 1] + lb[t + 1], axis=1)
    total = logsumexp(la[-1] + lb[-1])
    post = np.exp(la + lb - total)  # (T, L)
    state_post = np.zeros((T, S))
    np.add.at(state_post.T, net.states, post.T)
    within = np.exp(lg.reshape(T, S, M) - ls[:, :, None])
    gamma = (within * state_post[:, :, None]).reshape(T, S * M)
    xi = np.hstack([X, np.ones((T, 1))])
    G = np.stack([(xi * (gamma @ (1 / var[:, i]))[:, None]).T @ xi for i in range(D)])
    k = np.stack([(gamma @ (mu[:, i] / var[:, i])) @ xi for i in range(D)])
    return total, gamma, G, k


def test_estep_statistics_match_brute_force(rec, speaker):
    X, y = speaker
    x0, x1 = X[0], X[1]
    group = _Group((rec._unit(y[0]),), np.concatenate([x0]), np.array([0, len(x0)]),
                   np.array([0]))
    st = _estep(rec, group, W=np.hstack([np.eye(4), np.zeros((4, 1))]), cmllr=True)
    total, gamma, G, k = _brute_force_stats(rec, x0, y[0])
    assert st.loglik == pytest.approx(total, rel=1e-10)
    np.testing.assert_allclose(st.occupancy, gamma.sum(0), atol=1e-9)
    np.testing.assert_allclose(st.first, gamma.T @ x0, atol=1e-8)
    np.testing.assert_allclose(st.G, G, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(st.k, k, rtol=1e-9, atol=1e-9)
    assert st.beta == pytest.approx(len(x0))
    # additive: two utterances of the same word in one group = the sum of each alone
    if y[1] == y[0]:
        other = x1
    else:
        other = next(x for x, w in zip(X, y, strict=True) if w == y[0] and x is not x0)
    both = _Group(group.units, np.concatenate([x0, other]),
                  np.array([0, len(x0), len(x0) + len(other)]), np.array([0, 1]))
    one = _Group(group.units, other, np.array([0, len(other)]), np.array([1]))
    W = np.hstack([np.eye(4), np.zeros((4, 1))])
    s2 = _estep(rec, both, W=W, cmllr=True)
    s1 = st + _estep(rec, one, W=W, cmllr=True)
    np.testing.assert_allclose(s2.G, s1.G, rtol=1e-9)
    np.testing.assert_allclose(s2.k, s1.k, rtol=1e-9)
    assert s2.loglik == pytest.approx(s1.loglik, rel=1e-12)


# ---------------------------------------------------------------------------- CMLLR M-step
def _random_stats(rng, D, n=200):
    X = rng.standard_normal((n, D)) * rng.uniform(0.5, 2, D) + rng.standard_normal(D)
    xi = np.hstack([X, np.ones((n, 1))])
    wts = rng.uniform(0.2, 3.0, (n, D))
    targ = rng.standard_normal((n, D)) * wts
    G = np.stack([(xi * wts[:, i, None]).T @ xi for i in range(D)])
    k = targ.T @ xi
    return AdaptStats(0.0, n, np.zeros(1), np.zeros((1, D)), float(n), G, k)


def test_cmllr_row_update_is_the_row_maximum():
    """Each row update is the maximum of Q over that row (checked against a numeric
    maximisation and the stationarity condition), so Q rises with every row."""
    rng = np.random.default_rng(0)
    D = 3
    st = _random_stats(rng, D)
    W = np.hstack([np.eye(D) + 0.2 * rng.standard_normal((D, D)), rng.standard_normal((D, 1))])
    q = cmllr_auxiliary(W, st)
    for i in range(D):
        p = np.append(np.linalg.inv(W[:, :D])[:, i], 0.0)
        new = _best_row(p, st.G[i], st.k[i], st.beta)

        def neg(w, p=p, i=i):
            return -_row_objective(w, p, st.G[i], st.k[i], st.beta)

        # numeric maximisation from both sides of the singular hyperplane w . p = 0
        best = min((minimize(neg, x0, method="Nelder-Mead",
                             options=dict(xatol=1e-10, fatol=1e-12, maxiter=20000))
                    for x0 in (W[i], -W[i])), key=lambda r: r.fun)
        assert -neg(new) >= -best.fun - 1e-7
        np.testing.assert_allclose(new, best.x, atol=1e-4)
        W2 = W.copy()
        W2[i] = new
        # stationarity of the full auxiliary function in row i
        grad = (st.beta * np.append(np.linalg.inv(W2[:, :D])[:, i], 0.0)
                - st.G[i] @ new + st.k[i])
        np.testing.assert_allclose(grad, 0, atol=1e-8 * st.beta)
        q2 = cmllr_auxiliary(W2, st)
        assert q2 > q  # each row update raises Q (here strictly: W was not optimal)
        W, q = W2, q2


def test_cmllr_update_converges_to_a_maximum():
    rng = np.random.default_rng(1)
    for D in (2, 4, 6):
        st = _random_stats(rng, D, n=20 + 10 * D)
        W = np.hstack([np.eye(D), np.zeros((D, 1))])
        values = [cmllr_auxiliary(W, st)]
        for _ in range(30):
            W = cmllr_update(W, st, n_sweeps=1)
            values.append(cmllr_auxiliary(W, st))
        assert np.all(np.diff(values) >= -1e-9 * np.abs(values[:-1]))
        assert values[-1] > values[0]
        W = cmllr_update(W, st, n_sweeps=2000)
        assert cmllr_auxiliary(W, st) >= values[-1] - 1e-12 * abs(values[-1])
        # at convergence the gradient of Q vanishes in every row
        grad = (st.beta * np.hstack([np.linalg.inv(W[:, :D]).T, np.zeros((D, 1))])
                - np.einsum("ijk,ik->ij", st.G, W) + st.k)
        np.testing.assert_allclose(grad, 0, atol=1e-5 * st.beta)
        # and a numeric optimiser started there finds nothing better
        res = minimize(lambda w, D=D, st=st: -cmllr_auxiliary(w.reshape(D, D + 1), st),
                       W.ravel(), method="BFGS")
        assert -res.fun <= cmllr_auxiliary(W, st) + 1e-7 * abs(values[-1])


# ---------------------------------------------------------------------------- MLLR and MAP
def test_mllr_recovers_mean_scale_and_shift(rec):
    X, y = _isolated(60, 5)
    a = np.array([1.0, 1.4, 0.7, 1.2])
    c = np.array([0.3, -1.0, 0.8, 0.5])
    Xs = [x * a + c for x in X]
    before = rec.score(Xs, y)
    new = adapt(rec, Xs, y, method="mllr")
    W = new.mllr_transform_
    assert new.mllr_form_ == "full"
    np.testing.assert_allclose(W[:, :4], np.diag(a), atol=0.15)
    np.testing.assert_allclose(W[:, 4], c, atol=0.2)
    S, M, D = rec.pool_.means_.shape
    np.testing.assert_allclose(new.pool_.means_.reshape(-1, D),
                               rec.pool_.means_.reshape(-1, D) @ W[:, :4].T + W[:, 4])
    assert new.score(Xs, y) >= before
    assert getattr(new, "feature_transform_", None) is None


def test_mllr_falls_back_when_few_gaussians_are_seen():
    X, y = _isolated(30, 6)
    rec1 = Recognizer(n_states=3, n_mix=1, silence_states=1, var_floor=0.1).fit(X, y)
    one = [x for x, w in zip(X, y, strict=True) if w == "a"][:2]
    new = adapt(rec1, [x + 0.5 for x in one], ["a"] * len(one), method="mllr")
    # one word (3 states) and silence: 4 Gaussians, fewer than the 5 columns of [A, b]
    assert new.mllr_form_ == "diagonal"
    np.testing.assert_array_equal(new.mllr_transform_[:, :4],
                                  np.diag(np.diag(new.mllr_transform_[:, :4])))
    assert np.all(np.isfinite(new.pool_.means_))
    values = [e["loglik"] for e in new.adaptation_history_]
    assert np.all(np.diff(values) >= -1e-9 * np.abs(values[:-1]))


def test_map_limits(rec, speaker):
    X, y = speaker
    stiff = adapt(rec, X, y, method="map", tau=1e12, n_iter=1)
    np.testing.assert_allclose(stiff.pool_.means_, rec.pool_.means_, rtol=0, atol=1e-8)
    free = adapt(rec, X, y, method="map", tau=0.0, n_iter=1)
    groups = Recognizer._groups(X, [(rec._unit(w),) for w in y])
    st = sum((_estep(rec, g, W=None, cmllr=False) for g in groups[1:]),
             _estep(rec, groups[0], W=None, cmllr=False))
    S, M, D = rec.pool_.means_.shape
    seen = st.occupancy > 0
    ml = st.first[seen] / st.occupancy[seen, None]
    np.testing.assert_allclose(free.pool_.means_.reshape(-1, D)[seen], ml, rtol=1e-10)
    # in between: a convex combination
    mid = map_update(st, rec.pool_.means_.reshape(-1, D), 10.0)
    lam = (st.occupancy / (st.occupancy + 10.0))[:, None]
    np.testing.assert_allclose(mid, lam * st.first / np.maximum(st.occupancy, 1e-300)[:, None]
                               + (1 - lam) * rec.pool_.means_.reshape(-1, D), atol=1e-9)


def test_map_full_covariance(speaker):
    X, y = _isolated(40, 0)
    full = Recognizer(n_states=3, n_mix=1, silence_states=1, covariance_type="full",
                      var_floor=0.1).fit(X, y)
    Xs, ys = speaker
    new = adapt(full, Xs, ys, method="map", tau=2.0)
    values = [e["objective"] for e in new.adaptation_history_]
    assert np.all(np.diff(values) >= -1e-9 * np.abs(values[:-1]))
    assert new.score(Xs, ys) >= full.score(Xs, ys)


# ---------------------------------------------------------------------------- contracts
@pytest.mark.parametrize("method", ["cmllr", "mllr", "map"])
def test_original_recognizer_unchanged(rec, speaker, method):
    X, y = speaker
    X_before = [x.copy() for x in X]
    before = _arrays(rec)
    params = rec.get_params()
    hist = copy.deepcopy(rec.history_)
    new = adapt(rec, X, None, method=method, n_iter=2)
    after = _arrays(rec)
    for k, v in before.items():
        if v is None:
            assert after[k] is None
        else:
            np.testing.assert_array_equal(after[k], v)
    assert rec.get_params() == params and rec.history_ == hist
    assert not hasattr(rec, "adaptation_history_")
    assert new is not rec and new.pool_ is not rec.pool_
    for a, b in zip(X, X_before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_input(rec, speaker):
    X, y = speaker
    with pytest.raises(ValueError, match="method"):
        adapt(rec, X, y, method="fmllr2")
    with pytest.raises(ValueError, match="utterances but"):
        adapt(rec, X, y[:-1])
    with pytest.raises(ValueError, match="not in the model"):
        adapt(rec, X[:2], ["a", "zzz"])
    with pytest.raises(ValueError, match="not in the model"):
        adapt(rec, X[:1], [["a", "q"]])
    with pytest.raises(ValueError, match="No adaptation utterances"):
        adapt(rec, [], method="map")
    with pytest.raises(ValueError, match="tau"):
        adapt(rec, X, y, method="map", tau=-1.0)
    with pytest.raises(ValueError, match="tau"):
        adapt(rec, X, y, method="map", tau=float("nan"))
    for name in ("n_iter", "n_passes", "n_sweeps"):
        with pytest.raises(ValueError, match=name):
            adapt(rec, X, y, **{name: 0})
    with pytest.raises(ValueError, match="isolated"):
        adapt(rec, X, isolated="yes")
    for blocks in ((2, 3), (0, 4), "full", (1.5, 2.5), 4):
        with pytest.raises(ValueError, match="blocks"):
            adapt(rec, X, y, blocks=blocks)
    with pytest.raises(ValueError, match="list of utterances"):
        adapt(rec, X[0], y[:1])
    with pytest.raises(ValueError, match="features"):
        adapt(rec, [np.zeros((20, 5))], ["a"])
    with pytest.raises(ValueError, match="probability zero"):
        adapt(rec, [X[0][:2]], ["a"])  # 2 frames for a word of 3 states
    with pytest.raises(ValueError, match="not fitted"):
        adapt(Recognizer(), X, y)
    full = Recognizer(n_states=3, n_mix=1, silence_states=1,
                      covariance_type="full").fit(*_isolated(30, 0))
    for method in ("cmllr", "mllr"):
        with pytest.raises(ValueError, match="diagonal"):
            adapt(full, X, y, method=method)


@pytest.mark.parametrize("method", ["cmllr", "mllr", "map"])
def test_save_load_keeps_scores(rec, speaker, method, tmp_path):
    X, y = speaker
    new = adapt(rec, X, y, method=method, n_iter=2)
    path = tmp_path / "adapted.npz"
    new.save(path)
    back = Recognizer.load(path)
    np.testing.assert_allclose(back.decision_function(X), new.decision_function(X), rtol=1e-12)
    assert not np.allclose(back.decision_function(X), rec.decision_function(X))


def test_no_warnings_on_clean_input(rec, speaker):
    X, y = speaker
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapt(rec, X[:5], y[:5], method="map", samplerate=16000)
        adapt(rec, X[:5], method="cmllr")


@pytest.mark.parametrize("method", ["cmllr", "mllr", "map"])
def test_threads_give_identical_results(rec, speaker, method):
    X, _ = speaker
    threaded = copy.deepcopy(rec)
    threaded.n_jobs = 2
    a, b = adapt(rec, X, method=method, n_iter=2), adapt(threaded, X, method=method, n_iter=2)
    np.testing.assert_array_equal(a.pool_.means_, b.pool_.means_)
    if method == "cmllr":
        np.testing.assert_array_equal(a.feature_transform_, b.feature_transform_)
    assert a.adaptation_history_ == b.adaptation_history_
