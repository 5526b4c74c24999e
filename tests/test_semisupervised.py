"""Partially labelled sequences (issue 14, section 2): fit/score/decode with ``labels=``."""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from emx import GMMHMM, CategoricalHMM, GaussianHMM


def _sample(K=3, D=2, n=400, seed=0, lengths=(150, 130, 120)):
    gen = GaussianHMM(K, random_state=seed)
    gen.startprob_ = np.full(K, 1.0 / K)
    tm = np.full((K, K), 0.1 / (K - 1))
    np.fill_diagonal(tm, 0.9)
    gen.transmat_ = tm
    gen.means_ = np.arange(K)[:, None] * 2.0 + np.zeros((K, D))
    gen.covars_ = np.ones((K, D))
    Xs, Zs = [], []
    for i, L in enumerate(lengths):
        X, Z = gen.sample(L, random_state=seed + i)
        Xs.append(X)
        Zs.append(Z)
    return np.concatenate(Xs), np.concatenate(Zs), np.array(lengths)


def _counting(Z, lengths, K):
    offs = np.concatenate([[0], np.cumsum(lengths)])
    start = np.bincount(Z[offs[:-1]], minlength=K).astype(float)
    trans = np.zeros((K, K))
    for a, b in zip(offs[:-1], offs[1:], strict=True):
        np.add.at(trans, (Z[a:b - 1], Z[a + 1:b]), 1)
    return start / start.sum(), trans / trans.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("ct", ["diag", "full"])
def test_fully_labelled_gaussian_is_counting(ct):
    X, Z, lengths = _sample()
    K = 3
    m = GaussianHMM(K, covariance_type=ct, n_iter=1, covars_prior=0.0, min_covar=1e-12,
                    random_state=5).fit(X, lengths, labels=Z)
    sp, tm = _counting(Z, lengths, K)
    np.testing.assert_allclose(m.startprob_, sp, atol=1e-12)
    np.testing.assert_allclose(m.transmat_, tm, atol=1e-12)
    for k in range(K):
        Xk = X[Z == k]
        np.testing.assert_allclose(m.means_[k], Xk.mean(axis=0), atol=1e-10)
        cov = np.cov(Xk.T, bias=True)
        expected = np.diag(cov) if ct == "diag" else cov
        np.testing.assert_allclose(m.covars_[k], expected, atol=1e-10)
    # the objective is log P(X, Z): the complete-data likelihood of the labelled path
    assert np.isfinite(m.monitor_.history[0])


def test_fully_labelled_categorical_is_counting():
    rng = np.random.default_rng(1)
    K, F = 3, 4
    gen = CategoricalHMM(K, n_features=F, random_state=0)
    gen.startprob_ = np.array([0.5, 0.3, 0.2])
    gen.transmat_ = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    gen.emissionprob_ = rng.dirichlet(np.ones(F), size=K)
    lengths = np.array([200, 150])
    X1, Z1 = gen.sample(200, random_state=1)
    X2, Z2 = gen.sample(150, random_state=2)
    X, Z = np.concatenate([X1, X2]), np.concatenate([Z1, Z2])
    m = CategoricalHMM(K, n_features=F, n_iter=1, random_state=3).fit(X, lengths, labels=Z)
    sp, tm = _counting(Z, lengths, K)
    np.testing.assert_allclose(m.startprob_, sp, atol=1e-12)
    np.testing.assert_allclose(m.transmat_, tm, atol=1e-12)
    counts = np.zeros((K, F))
    np.add.at(counts, (Z, X[:, 0].astype(int)), 1)
    np.testing.assert_allclose(m.emissionprob_, counts / counts.sum(axis=1, keepdims=True),
                               atol=1e-12)


@pytest.mark.parametrize("model", [
    lambda: GaussianHMM(3, n_iter=5, random_state=0),
    lambda: GMMHMM(2, n_mix=2, n_iter=4, random_state=0),
])
def test_unlabelled_is_todays_em_bit_identical(model):
    X, _, lengths = _sample()
    a = model().fit(X, lengths)
    b = model().fit(X, lengths, labels=np.full(len(X), -1))
    c = model().fit(X, lengths, labels=np.ones((len(X), a.n_components), dtype=bool))
    for other in (b, c):
        assert other.monitor_.history == a.monitor_.history
        for name in a._fitted_attrs:
            assert np.array_equal(getattr(a, name), getattr(other, name)), name
    y = np.full(len(X), -1)
    assert a.score(X, lengths) == a.score(X, lengths, labels=y)
    la, pa = a.score_samples(X, lengths)
    lb, pb = a.score_samples(X, lengths, labels=y)
    assert la == lb and np.array_equal(pa, pb)
    assert np.array_equal(a.predict(X, lengths), a.predict(X, lengths, labels=y))


def test_partially_labelled_objective_monotone_and_decode_respects_labels():
    X, Z, lengths = _sample(seed=3)
    rng = np.random.default_rng(0)
    y = np.where(rng.random(len(X)) < 0.1, Z, -1)
    y_given = y.copy()
    m = GaussianHMM(3, n_iter=40, tol=-np.inf, random_state=1).fit(X, lengths, labels=y)
    assert np.array_equal(y, y_given)  # not mutated
    h = np.array(m.monitor_.history)
    assert len(h) == 40
    assert np.all(np.diff(h) >= -1e-8 * np.abs(h[1:]))
    # the last recorded objective is log P(X, labels) at the parameters before the last step
    assert m.score(X, lengths, labels=y) >= h[-1] - 1e-8 * abs(h[-1])
    assert m.score(X, lengths, labels=y) < m.score(X, lengths)  # labels cost probability
    known = y >= 0
    for algorithm in ("viterbi", "map"):
        path = m.decode(X, lengths, algorithm=algorithm, labels=y)[1]
        assert np.array_equal(path[known], y[known])
    post = m.predict_proba(X, lengths, labels=y)
    assert np.all(post[known, y[known]] == 1.0)
    # sets of allowed states (a mask): every decoded state is allowed
    mask = np.ones((len(X), 3), dtype=bool)
    mask[::7, 0] = False
    mask[3::11, 2] = False
    for algorithm in ("viterbi", "map"):
        path = m.decode(X, lengths, algorithm=algorithm, labels=mask)[1]
        assert mask[np.arange(len(X)), path].all()


def _brute(model, X, lengths, mask):
    """log P(X, labels), posteriors and the best path by enumerating allowed paths."""
    ll = model._emission().estep_fn()(X)[0]
    log_sp, log_tm = np.log(model.startprob_), np.log(model.transmat_)
    K = model.n_components
    total, post, best = 0.0, np.zeros((len(X), K)), (-np.inf, None)
    offs = np.concatenate([[0], np.cumsum(lengths)])
    paths_all, lp_all = [], []
    for a, b in zip(offs[:-1], offs[1:], strict=True):
        paths, lps = [], []
        for path in itertools.product(range(K), repeat=b - a):
            path = np.array(path)
            if not mask[np.arange(a, b), path].all():
                continue
            lp = log_sp[path[0]] + log_tm[path[:-1], path[1:]].sum() + ll[
                np.arange(a, b), path].sum()
            paths.append(path)
            lps.append(lp)
        lps = np.array(lps)
        seq = logsumexp(lps)
        total += seq
        for path, lp in zip(paths, lps, strict=True):
            post[np.arange(a, b), path] += np.exp(lp - seq)
        paths_all.append(paths[int(np.argmax(lps))])
        lp_all.append(lps.max())
    best = (float(np.sum(lp_all)), np.concatenate(paths_all))
    return total, post, best


def test_brute_force_tiny_model():
    rng = np.random.default_rng(7)
    K = 3
    m = GaussianHMM(K, covariance_type="diag")
    m.startprob_ = np.array([0.5, 0.3, 0.2])
    m.transmat_ = rng.dirichlet(np.ones(K), size=K)
    m.means_ = rng.normal(size=(K, 2))
    m.covars_ = rng.uniform(0.5, 2, size=(K, 2))
    X = rng.normal(size=(9, 2))
    lengths = [5, 4]
    y = np.array([-1, 2, -1, -1, 0, 1, -1, -1, 2])
    mask = np.ones((9, K), dtype=bool)
    mask[y >= 0] = False
    mask[np.flatnonzero(y >= 0), y[y >= 0]] = True
    mask[2, 1] = False  # a set of allowed states at frame 2: {0, 2}
    total, post, (best_lp, best_path) = _brute(m, X, lengths, mask)
    assert m.score(X, lengths, labels=mask) == pytest.approx(total, rel=1e-12)
    np.testing.assert_allclose(m.predict_proba(X, lengths, labels=mask), post, atol=1e-12)
    lp, path = m.decode(X, lengths, labels=mask)
    assert lp == pytest.approx(best_lp, rel=1e-12)
    assert np.array_equal(path, best_path)
    # the int form gives the same as the equivalent mask
    total_y = _brute(m, X, lengths, mask | (np.arange(K) == 1) & (np.arange(9) == 2)[:, None])[0]
    assert m.score(X, lengths, labels=y) == pytest.approx(total_y, rel=1e-12)


def test_label_errors():
    X, Z, lengths = _sample(n=400)
    m = GaussianHMM(3, n_iter=2, random_state=0).fit(X, lengths)
    n = len(X)
    with pytest.raises(ValueError, match=r"in \[-1, 3\).*frame 5 has 3"):
        m.score(X, lengths, labels=np.where(np.arange(n) == 5, 3, -1))
    with pytest.raises(ValueError, match="frame 0 has -2"):
        m.fit(X, lengths, labels=np.full(n, -2))
    with pytest.raises(ValueError, match=f"labels has {n - 1} entries but X has {n} frames"):
        m.predict(X, lengths, labels=np.full(n - 1, -1))
    with pytest.raises(ValueError, match=r"shape \(n_frames, n_components\)"):
        m.predict(X, lengths, labels=np.ones((n, 2), dtype=bool))
    bad = np.ones((n, 3), dtype=bool)
    bad[17] = False
    with pytest.raises(ValueError, match="no state at frame 17"):
        m.fit(X, lengths, labels=bad)
    with pytest.raises(ValueError, match="whole numbers"):
        m.score(X, lengths, labels=np.full(n, 0.5))
    # a sequence impossible under the labels: 0 -> 1 forbidden by a structural zero
    m.transmat_ = np.array([[0.5, 0.0, 0.5], [0.3, 0.4, 0.3], [0.3, 0.3, 0.4]])
    y = np.full(n, -1)
    y[lengths[0] + 10], y[lengths[0] + 11] = 0, 1
    for call in (m.score, m.predict, m.predict_proba,
                 lambda *a, **k: m.decode(*a, algorithm="map", **k),
                 lambda *a, **k: m.set_params(init_params="mc").fit(*a, **k)):
        with pytest.raises(ValueError, match="Sequence 1 is impossible under the labels"):
            call(X, lengths, labels=y)


def test_labels_gmmhmm_and_categorical_decode():
    X, Z, lengths = _sample()
    y = np.where(np.arange(len(X)) % 5 == 0, Z % 2, -1)
    m = GMMHMM(2, n_mix=2, n_iter=5, random_state=0).fit(X, lengths, labels=y)
    path = m.predict(X, lengths, labels=y)
    assert np.array_equal(path[y >= 0], y[y >= 0])
    Xc = (X[:, :1] > 1).astype(int)
    c = CategoricalHMM(2, n_iter=5, random_state=0).fit(Xc, lengths, labels=y)
    assert np.array_equal(c.predict(Xc, lengths, labels=y)[y >= 0], y[y >= 0])


def test_labels_set_initial_means():
    X, Z, lengths = _sample()
    y = np.full(len(X), -1)
    y[::10] = Z[::10]
    m = GaussianHMM(3, n_iter=0, random_state=0).fit(X, lengths, labels=y)
    for k in range(3):
        np.testing.assert_allclose(m.means_[k], X[::10][Z[::10] == k].mean(axis=0))
    free = GaussianHMM(3, n_iter=0, random_state=0).fit(X, lengths)
    same = GaussianHMM(3, n_iter=0, random_state=0).fit(X, lengths, labels=np.full(len(X), -1))
    assert np.array_equal(free.means_, same.means_)
