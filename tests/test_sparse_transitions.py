"""Sparse transitions (issue 15, item 2): BaseHMM runs the edge-list kernels when
``transmat_`` has enough structural zeros, with the results of the dense kernels.

Each model computation (fit, score, score_sequences, score_samples / predict_proba, decode)
runs once with the dense kernels forced and once with the edge kernels forced
(``emx.hmm._TRANSITIONS``) on left-to-right, banded and random sparse transition matrices,
and the two must agree to 1e-12 (paths exactly); the edge path is also checked against a
brute-force enumeration of every state path, the automatic choice against its documented
rule, and the new scaled forward kernel on edges against the dense one.
"""

import numpy as np
import pytest
from _reference import brute_force

import emx.hmm as emx_hmm
from emx import GMMHMM, GaussianHMM
from emx._core import STATUS_OK, _hmm
from emx.discrete import CategoricalHMM
from emx.hmm import SPARSE_MAX_DENSITY, SPARSE_MAX_PER_ROW, SPARSE_MIN_STATES, _Transitions

TOL = dict(rtol=1e-12, atol=1e-12)
D = 3


# ------------------------------------------------------------------ topologies and models
def left_to_right(K, stay=0.7):
    A = np.zeros((K, K))
    for i in range(K - 1):
        A[i, i], A[i, i + 1] = stay, 1 - stay
    A[K - 1, K - 1] = 1.0
    return A


def banded(K, rng, width=2):
    """Non-zero within ``width`` of the diagonal (both sides), random weights."""
    A = np.zeros((K, K))
    for i in range(K):
        lo, hi = max(0, i - width), min(K, i + width + 1)
        A[i, lo:hi] = rng.dirichlet(np.ones(hi - lo))
    return A


def random_sparse(K, rng, per_row=3):
    """``per_row`` non-zero entries at random columns of every row."""
    A = np.zeros((K, K))
    for i in range(K):
        cols = rng.choice(K, size=per_row, replace=False)
        A[i, cols] = rng.dirichlet(np.ones(per_row))
    return A


TOPOLOGIES = ("left_to_right", "banded", "random_sparse")


def transmat(kind, K, rng):
    return {"left_to_right": lambda: left_to_right(K),
            "banded": lambda: banded(K, rng),
            "random_sparse": lambda: random_sparse(K, rng)}[kind]()


def gaussian_model(kind, K=8, seed=0, **kw):
    rng = np.random.default_rng(seed)
    model = GaussianHMM(K, covariance_type="diag", init_params="", n_iter=3, tol=-1e300,
                        random_state=0, **kw)
    model.startprob_ = (np.eye(K)[0] if kind == "left_to_right"
                        else rng.dirichlet(np.ones(K)))
    model.transmat_ = transmat(kind, K, rng)
    model.means_ = rng.normal(scale=2.0, size=(K, D))
    model.covars_ = rng.uniform(0.5, 2.0, size=(K, D))
    return model


def data(model, lengths, seed=1):
    """Sequences drawn from the model, concatenated, with their lengths."""
    rng = np.random.RandomState(seed)
    X = np.concatenate([model.sample(n, random_state=rng)[0] for n in lengths])
    return X, np.asarray(lengths)


@pytest.fixture
def force(monkeypatch):
    def set_mode(mode):
        monkeypatch.setattr(emx_hmm, "_TRANSITIONS", mode)
    return set_mode


def both(force, func):
    """``func()`` with the dense kernels, then with the edge kernels."""
    force("dense")
    dense = func()
    force("sparse")
    sparse = func()
    return dense, sparse


def assert_same(a, b, exact=False):
    if isinstance(a, tuple):
        for x, y in zip(a, b, strict=True):
            assert_same(x, y, exact)
    elif exact:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, **TOL)


LENGTHS = [40, 1, 25, 1, 60]  # with sequences of length 1


# ------------------------------------------------------------------ the automatic choice
def test_rule_chooses_edges_for_sparse_matrices_only():
    rng = np.random.default_rng(0)
    K = max(16, SPARSE_MIN_STATES)
    sp = np.full(K, 1 / K)
    assert _Transitions(sp, left_to_right(K)).sparse  # 2K - 1 of K**2 non-zero
    assert _Transitions(sp, banded(K, rng, width=1)).sparse
    assert not _Transitions(sp, rng.dirichlet(np.ones(K), size=K)).sparse  # dense
    # the documented thresholds, at their edges: a quarter of the matrix for small K, about
    # 3 non-zeros per row for large K
    for K in (SPARSE_MIN_STATES, 8, 16, 64):
        sp = np.full(K, 1 / K)
        limit = int(min(SPARSE_MAX_DENSITY * K * K, SPARSE_MAX_PER_ROW * K))
        A = np.zeros((K, K))
        A.flat[:limit] = 1.0
        assert _Transitions(sp, A).sparse
        A.flat[limit] = 1.0
        assert not _Transitions(sp, A).sparse
    small = SPARSE_MIN_STATES - 1
    assert not _Transitions(np.full(small, 1 / small), np.eye(small)).sparse
    assert _Transitions(np.full(SPARSE_MIN_STATES, 1 / SPARSE_MIN_STATES),
                        np.eye(SPARSE_MIN_STATES)).sparse


def test_edges_are_the_non_zero_entries_listed_by_destination_then_source():
    rng = np.random.default_rng(3)
    K = max(16, SPARSE_MIN_STATES)
    A = random_sparse(K, rng, per_row=3)
    t = _Transitions(np.full(K, 1 / K), A)
    assert t.sparse
    keys = list(zip(t.dst.tolist(), t.src.tolist(), strict=True))
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == np.count_nonzero(A)
    np.testing.assert_array_equal(t.prob, A[t.src, t.dst])


def test_left_to_right_model_uses_the_sparse_kernels_by_default(monkeypatch):
    # The automatic choice reaches the kernels: count the calls of each. A left-to-right
    # model is banded: the forward-backward takes its two diagonals (the lockstep kernel with
    # band_offsets), Viterbi the edge list.
    calls = []

    def record(name, kw):
        if kw.get("band_offsets") is not None:
            name += "[banded]"
        calls.append(name)

    for name in ("forward_backward", "forward_backward_edges", "forward_loglik",
                 "forward_loglik_edges", "viterbi", "viterbi_edges"):
        kernel = getattr(_hmm, name)
        monkeypatch.setattr(emx_hmm._hmm, name,
                            lambda *a, _k=kernel, _n=name, **kw: record(_n, kw) or _k(*a, **kw))
    K = max(emx_hmm.BAND_MIN_STATES, SPARSE_MIN_STATES)
    model = gaussian_model("left_to_right", K=K)
    X, lengths = data(model, [150, 100])
    model.score(X, lengths)
    model.score_samples(X, lengths)
    model.decode(X, lengths)
    model.fit(X, lengths)
    assert set(calls) == {"forward_loglik[banded]", "forward_backward[banded]", "viterbi_edges"}
    calls.clear()
    # below BAND_MIN_STATES: the dense forward-backward, Viterbi still on the edge list
    small = gaussian_model("left_to_right", K=16)
    Xs, ls = data(small, [150, 100])
    small.score(Xs, ls)
    small.fit(Xs, ls)
    small.decode(Xs, ls)
    assert set(calls) == {"forward_loglik", "forward_backward", "viterbi_edges"}
    calls.clear()
    model.transmat_ = np.full((K, K), 1 / K)
    model.score(X, lengths)
    model.score_samples(X, lengths)
    model.decode(X, lengths)
    assert set(calls) == {"forward_loglik", "forward_backward", "viterbi"}


# ------------------------------------------------------------------ dense == sparse
@pytest.mark.parametrize("kind", TOPOLOGIES)
def test_scores_and_posteriors_equal_the_dense_path(force, kind):
    model = gaussian_model(kind)
    X, lengths = data(model, LENGTHS)
    d, s = both(force, lambda: (model.score(X, lengths),
                                model.score_sequences(X, lengths),
                                *model.score_samples(X, lengths),
                                model.predict_proba(X, lengths)))
    assert_same(d, s)
    assert np.isfinite(d[0])


@pytest.mark.parametrize("kind", TOPOLOGIES)
def test_decoding_equals_the_dense_path(force, kind):
    model = gaussian_model(kind)
    X, lengths = data(model, LENGTHS)
    for algorithm in ("viterbi", "map"):
        (lp_d, path_d), (lp_s, path_s) = both(
            force, lambda a=algorithm: model.decode(X, lengths, algorithm=a))
        np.testing.assert_array_equal(path_d, path_s)
        np.testing.assert_allclose(lp_d, lp_s, **TOL)
        assert np.isfinite(lp_d)


def test_viterbi_ties_go_to_the_lowest_predecessor_on_both_paths(force):
    # States 0 and 1 are equally likely at the start and both move to state 2 with the same
    # probability; every emission is the same: two best paths, 0 -> 2 -> 3... and 1 -> 2 -> 3...
    K = 4
    model = gaussian_model("banded", K=K)
    model.startprob_ = np.array([0.5, 0.5, 0.0, 0.0])
    model.transmat_ = np.array([[0.0, 0.0, 1.0, 0.0],
                                [0.0, 0.0, 1.0, 0.0],
                                [0.0, 0.0, 0.5, 0.5],
                                [0.0, 0.0, 0.0, 1.0]])
    model.means_ = np.zeros((K, D))
    model.covars_ = np.ones((K, D))
    X = np.zeros((5, D))
    (lp_d, path_d), (lp_s, path_s) = both(force, lambda: model.decode(X))
    assert path_d.tolist() == path_s.tolist() == [0, 2, 3, 3, 3]  # 0, not 1
    assert lp_d == lp_s


@pytest.mark.parametrize("kind", TOPOLOGIES)
def test_fit_equals_the_dense_path(force, kind):
    def fit():
        model = gaussian_model(kind).fit(X, lengths)
        return (model.startprob_, model.transmat_, model.means_, model.covars_,
                np.asarray(model.monitor_.history))

    X, lengths = data(gaussian_model(kind), LENGTHS)
    d, s = both(force, fit)
    assert_same(d, s)
    # structural zeros stay zero on both paths
    zeros = gaussian_model(kind).transmat_ == 0
    assert zeros.any()
    assert np.all(s[1][zeros] == 0) and np.all(d[1][zeros] == 0)


def test_labelled_fit_and_posteriors_equal_the_dense_path(force):
    model = gaussian_model("left_to_right")
    X, lengths = data(model, LENGTHS)
    labels = np.full(len(X), -1)
    labels[:5] = 0  # the first sequence starts in state 0 ...
    labels[35:40] = 3  # ... and ends in state 3

    def run():
        m = gaussian_model("left_to_right").fit(X, lengths, labels=labels)
        return (m.transmat_, m.means_, np.asarray(m.monitor_.history),
                *m.score_samples(X, lengths, labels=labels),
                m.score_sequences(X, lengths, labels=labels),
                *m.decode(X, lengths, labels=labels))

    d, s = both(force, run)
    assert_same(d[:-1], s[:-1])
    np.testing.assert_array_equal(d[-1], s[-1])
    assert np.all(s[-1][35:40] == 3)


def test_threads_give_bit_identical_results_on_the_edge_path(force):
    force("sparse")
    X, lengths = data(gaussian_model("banded"), [300] * 20)  # several chunks

    def run(n_jobs):
        m = gaussian_model("banded", n_jobs=n_jobs).fit(X, lengths)
        return (m.transmat_, m.means_, m.covars_, np.asarray(m.monitor_.history),
                *m.score_samples(X, lengths), m.score_sequences(X, lengths),
                *m.decode(X, lengths))

    assert_same(run(1), run(2), exact=True)


def test_gmmhmm_equals_the_dense_path(force):
    rng = np.random.default_rng(5)
    K, M = 6, 2
    model = GMMHMM(K, n_mix=M, covariance_type="diag", init_params="", n_iter=2,
                   tol=-1e300, random_state=0)
    model.startprob_ = np.eye(K)[0]
    model.transmat_ = left_to_right(K)
    model.weights_ = rng.dirichlet(np.ones(M), size=K)
    model.means_ = rng.normal(scale=2.0, size=(K, M, D))
    model.covars_ = rng.uniform(0.5, 2.0, size=(K, M, D))
    model.var_floor_ = np.full(D, 1e-3)
    X, lengths = data(model, [50, 1, 30])

    def run():
        m = GMMHMM(**model.get_params())
        for name in ("startprob_", "transmat_", "weights_", "means_", "covars_",
                     "var_floor_"):
            setattr(m, name, getattr(model, name).copy())
        out = (*m.score_samples(X, lengths), *m.decode(X, lengths))
        m.fit(X, lengths)
        return (*out, m.transmat_, m.weights_, m.means_, np.asarray(m.monitor_.history))

    d, s = both(force, run)
    assert_same(d, s)


# ------------------------------------------------------------------ against brute force
@pytest.mark.parametrize("seed", range(4))
def test_edge_path_equals_brute_force_enumeration(force, seed):
    # K=3, T=4: every one of the 81 state paths enumerated. The transition matrix has zeros
    # and is not symmetric, so an edge scattered to the wrong (src, dst) cell of xi, or a
    # wrongly summed start count, fails.
    force("sparse")
    rng = np.random.default_rng(seed)
    K = 3
    A = np.array([[0.6, 0.4, 0.0], [0.0, 0.3, 0.7], [0.2, 0.0, 0.8]])
    A = A[rng.permutation(K)][:, rng.permutation(K)]
    A /= A.sum(axis=1, keepdims=True)
    sp = rng.dirichlet(np.ones(K))
    model = GaussianHMM(K, covariance_type="diag", init_params="", params="st", n_iter=1,
                        tol=-1e300)
    model.startprob_, model.transmat_ = sp, A
    model.means_ = rng.normal(scale=1.5, size=(K, D))
    model.covars_ = rng.uniform(0.5, 2.0, size=(K, D))
    seqs = [rng.normal(size=(4, D)) * 2, rng.normal(size=(4, D)) * 2]
    X, lengths = np.concatenate(seqs), np.array([4, 4])
    loglik = model._emission_loglik_fn()(X)[0]
    refs = [brute_force(loglik[4 * i:4 * i + 4], sp, A) for i in range(2)]

    total, post = model.score_samples(X, lengths)
    np.testing.assert_allclose(total, sum(r[0] for r in refs), rtol=1e-12)
    np.testing.assert_allclose(post, np.concatenate([r[1] for r in refs]), atol=1e-12)
    seq_ll, post2, xi, start = model._forward_backward(
        np.ascontiguousarray(loglik), np.array([0, 4, 8], dtype=np.intp))
    np.testing.assert_allclose(xi, refs[0][2] + refs[1][2], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(start, refs[0][1][0] + refs[1][1][0], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(model.score_sequences(X, lengths), [r[0] for r in refs],
                               rtol=1e-12)
    lp, path = model.decode(X, lengths)
    np.testing.assert_array_equal(path, np.concatenate([r[3] for r in refs]))
    np.testing.assert_allclose(lp, refs[0][4] + refs[1][4], rtol=1e-12)
    # one EM step on transitions only: the brute-force expected counts, normalised
    model.fit(X, lengths)
    counts = refs[0][2] + refs[1][2]
    np.testing.assert_allclose(model.transmat_, counts / counts.sum(axis=1, keepdims=True),
                               rtol=1e-10, atol=1e-12)
    starts = refs[0][1][0] + refs[1][1][0]
    np.testing.assert_allclose(model.startprob_, starts / 2, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ zero probability
def test_zero_probability_sequence_raises_the_same_error_on_both_paths(force):
    # Left to right over 4 states, state j emits symbol j only: the sequence [0, 3] needs a
    # jump 0 -> 3, which has probability zero. Discrete HMMs go through BaseHMM too.
    K = 4
    model = CategoricalHMM(K, init_params="", n_iter=2, tol=-1e300)
    model.startprob_ = np.eye(K)[0]
    model.transmat_ = left_to_right(K, stay=0.5)
    model.emissionprob_ = np.eye(K)
    X = np.array([[0], [1], [2], [0], [3]])
    lengths = [3, 2]
    for method in ("score", "score_sequences", "score_samples", "predict_proba", "decode",
                   "fit"):
        messages = []
        for mode in ("dense", "sparse"):
            force(mode)
            with pytest.raises(ValueError, match="Sequence 1 has probability zero") as err:
                getattr(model, method)(X, lengths)
            messages.append(str(err.value))
        assert messages[0] == messages[1]
    # a possible sequence works on both paths, with the same results
    d, s = both(force, lambda: (model.score(X[:3], [3]), *model.decode(X[:3], [3])))
    assert_same(d, s)
    assert d[2].tolist() == [0, 1, 2]


def test_sequence_impossible_under_the_labels_raises_the_same_error(force):
    model = gaussian_model("left_to_right", K=6)
    X, lengths = data(model, [10, 10])
    labels = np.full(len(X), -1)
    labels[11] = 5  # second sequence starts in state 0: state 5 at its second frame is out
    for mode in ("dense", "sparse"):
        force(mode)
        with pytest.raises(ValueError, match="Sequence 1 is impossible under the labels"):
            model.score_samples(X, lengths, labels=labels)
        with pytest.raises(ValueError, match="Sequence 1 is impossible under the labels"):
            model.score(X, lengths, labels=labels)


# ------------------------------------------------------------------ the new kernel
@pytest.mark.parametrize("seed", range(3))
def test_forward_loglik_edges_equals_the_dense_forward(seed):
    # Edges in any order, a pair split in two edges: the same log-likelihoods.
    rng = np.random.default_rng(seed)
    K, lengths = 7, [30, 1, 12]
    A = random_sparse(K, rng)
    sp = rng.dirichlet(np.ones(K))
    src, dst = (x.astype(np.intp) for x in np.nonzero(A))
    prob = A[src, dst]
    src, dst, prob = np.append(src, src[0]), np.append(dst, dst[0]), np.append(prob, prob[0] / 2)
    prob[0] /= 2
    perm = rng.permutation(len(src))
    src, dst, prob = src[perm], dst[perm], prob[perm]
    T = sum(lengths)
    off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.intp)
    loglik = rng.normal(scale=30.0, size=(T, K)) - 500.0
    dense, edges = np.empty(3), np.empty(3)
    assert _hmm.forward_loglik(loglik, off, sp, A, dense) == STATUS_OK
    assert _hmm.forward_loglik_edges(loglik, off, sp, src, dst, prob, edges) == STATUS_OK
    np.testing.assert_allclose(edges, dense, rtol=1e-12)
    # forward_backward_edges' xi per edge sums back to the dense xi in that order too
    post, xi_e, ll = np.empty((T, K)), np.empty(len(src)), np.empty(3)
    assert _hmm.forward_backward_edges(loglik, off, sp, src, dst, prob, post, xi_e,
                                       ll) == STATUS_OK
    post_d, xi_d, ll_d = np.empty((T, K)), np.empty((K, K)), np.empty(3)
    assert _hmm.forward_backward(loglik, off, sp, A, post_d, xi_d, ll_d) == STATUS_OK
    xi = np.zeros((K, K))
    np.add.at(xi, (src, dst), xi_e)
    np.testing.assert_allclose(xi, xi_d, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(post, post_d, atol=1e-12)
    np.testing.assert_allclose(ll, ll_d, rtol=1e-12)


def test_forward_loglik_edges_reports_impossible_sequences_and_checks_its_arguments():
    sp = np.array([1.0, 0.0])
    src, dst = np.array([0, 1], dtype=np.intp), np.array([1, 1], dtype=np.intp)
    prob = np.array([1.0, 1.0])
    # state 0 must move on to state 1: a second frame only state 0 explains is impossible
    loglik = np.array([[0.0, 0.0], [0.0, -np.inf], [0.0, -np.inf]])
    out = np.full(2, 7.0)
    assert _hmm.forward_loglik_edges(loglik, np.array([0, 1, 3], np.intp), sp, src, dst, prob,
                                     out) == 1
    assert _hmm.forward_loglik_edges(loglik, np.array([0, 1, 1, 3], np.intp), sp, src, dst,
                                     prob, np.empty(3)) == 1  # an empty sequence
    ok = np.empty(1)
    assert _hmm.forward_loglik_edges(loglik[:1], np.array([0, 1], np.intp), sp, src, dst,
                                     prob, ok) == STATUS_OK
    assert ok[0] == 0.0
    out = np.full(1, 7.0)
    with pytest.raises(ValueError, match=r"forward_loglik_edges: edge 1 \(1 -> 2\) leaves"):
        _hmm.forward_loglik_edges(loglik, np.array([0, 3], np.intp), sp, src,
                                  np.array([1, 2], np.intp), prob, out)
    with pytest.raises(ValueError, match="forward_loglik_edges: offsets must end at"):
        _hmm.forward_loglik_edges(loglik, np.array([0, 2], np.intp), sp, src, dst, prob, out)
    with pytest.raises(ValueError, match="forward_loglik_edges: prob has length 1"):
        _hmm.forward_loglik_edges(loglik, np.array([0, 3], np.intp), sp, src, dst, prob[:1],
                                  out)
    with pytest.raises(ValueError, match="forward_loglik_edges: seq_loglik"):
        _hmm.forward_loglik_edges(loglik, np.array([0, 3], np.intp), sp, src, dst, prob,
                                  np.empty(2))
    assert out[0] == 7.0  # nothing written on an argument error
    # no edges at all: only one-frame sequences are possible
    none, nd = np.empty(0, dtype=np.intp), np.empty(0)
    assert _hmm.forward_loglik_edges(loglik[:1], np.array([0, 1], np.intp), sp, none, none,
                                     nd, ok) == STATUS_OK
    assert _hmm.forward_loglik_edges(loglik, np.array([0, 3], np.intp), sp, none, none, nd,
                                     ok) == 0


@pytest.mark.parametrize("kind", ["left_to_right", "banded", "random_sparse"])
def test_edge_kernels_agree_in_sorted_and_any_order(kind):
    # Edges sorted by (dst, src) that fill few diagonals run as diagonal loops (left to
    # right, banded), others as grouped gathers (random sparse, or any order): every form
    # equals the dense kernels.
    rng = np.random.default_rng(11)
    K, lengths = 9, [25, 1, 40]
    A = transmat(kind, K, rng)
    sp = rng.dirichlet(np.ones(K))
    T = sum(lengths)
    off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.intp)
    loglik = rng.normal(scale=5.0, size=(T, K))
    post_d, xi_d, ll_d = np.empty((T, K)), np.empty((K, K)), np.empty(3)
    assert _hmm.forward_backward(loglik, off, sp, A, post_d, xi_d, ll_d) == STATUS_OK
    fwd_d = np.empty(3)
    assert _hmm.forward_loglik(loglik, off, sp, A, fwd_d) == STATUS_OK
    dst, src = (x.astype(np.intp) for x in np.nonzero(A.T))
    perm = rng.permutation(len(src))
    for s, d in ((src, dst), (src[perm], dst[perm])):
        prob = A[s, d]
        for want_xi in (True, False):
            post, xi_e, ll = np.empty((T, K)), np.full(len(s), 7.0), np.empty(3)
            assert _hmm.forward_backward_edges(loglik, off, sp, s, d, prob, post, xi_e, ll,
                                               want_xi=want_xi) == STATUS_OK
            np.testing.assert_allclose(post, post_d, atol=1e-12)
            np.testing.assert_allclose(ll, ll_d, rtol=1e-12)
            xi = np.zeros((K, K))
            xi[s, d] = xi_e
            np.testing.assert_allclose(xi, xi_d if want_xi else 0.0, rtol=1e-11, atol=1e-12)
        fwd = np.empty(3)
        assert _hmm.forward_loglik_edges(loglik, off, sp, s, d, prob, fwd) == STATUS_OK
        np.testing.assert_allclose(fwd, fwd_d, rtol=1e-12)
