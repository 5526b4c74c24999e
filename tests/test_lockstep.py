"""The lockstep forward-backward kernels (sequences in blocks, one matrix product per frame)
against a per-sequence log-space reference, on the cases the blocking could get wrong:
unsorted mixed lengths, more sequences than one block, more stacked frames than one xi
product, both sides of the BLAS switch, impossible and empty sequences."""

import numpy as np
import pytest
from _reference import log_forward_backward

from emx._core import _hmm
from emx._validation import offsets_from_lengths

BLOCK = _hmm.lockstep_block
BLAS_MIN = _hmm.blas_min_states


def model(rng, K, zeros=0.0):
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    if zeros:
        transmat[rng.random((K, K)) < zeros] = 0.0
        transmat[np.arange(K), np.arange(K)] += 0.1
        transmat /= transmat.sum(axis=1, keepdims=True)
    return startprob, transmat


def fb(loglik, lengths, startprob, transmat, want_xi=True):
    T, K = loglik.shape
    off = offsets_from_lengths(lengths)
    post, xi = np.full((T, K), np.nan), np.full((K, K), np.nan)
    ll, start = np.full(len(lengths), np.nan), np.full(K, np.nan)
    status = _hmm.forward_backward(loglik, off, startprob, transmat, post, xi, ll, start,
                                   want_xi=want_xi)
    return status, ll, post, xi, start


def reference(loglik, lengths, startprob, transmat):
    K = loglik.shape[1]
    off = offsets_from_lengths(lengths)
    lls, posts, xi, start = [], [], np.zeros((K, K)), np.zeros(K)
    for n in range(len(lengths)):
        total, post, xi_n = log_forward_backward(loglik[off[n]:off[n + 1]], startprob, transmat)
        lls.append(total)
        posts.append(post)
        xi += xi_n
        start += post[0]
    return np.array(lls), np.concatenate(posts), xi, start


@pytest.mark.parametrize("K", [1, 2, BLAS_MIN - 1, BLAS_MIN, 13, 33])
def test_mixed_lengths_over_several_blocks_equal_reference(K):
    rng = np.random.default_rng(K)
    # More sequences than a block, lengths in no order (1-frame ones included), and more
    # frame pairs than one stacked xi product.
    lengths = list(rng.integers(1, 12, size=BLOCK + 9)) + [60, 1, 35]
    rng.shuffle(lengths)
    startprob, transmat = model(rng, K, zeros=0.3 if K > 2 else 0.0)
    # (moderate magnitudes: the log-space reference itself loses ~1e-16 per unit of log P)
    loglik = rng.normal(scale=5.0, size=(sum(lengths), K)) - 3.0
    status, ll, post, xi, start = fb(loglik, lengths, startprob, transmat)
    assert status == -1
    ll_ref, post_ref, xi_ref, start_ref = reference(loglik, lengths, startprob, transmat)
    np.testing.assert_allclose(ll, ll_ref, rtol=1e-12)
    np.testing.assert_allclose(post, post_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(xi, xi_ref, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(start, start_ref, rtol=1e-12, atol=1e-13)
    assert np.all(xi[transmat == 0] == 0) and np.all(post >= 0)
    # The forward-only kernel gives the same log-likelihoods.
    ll2 = np.empty(len(lengths))
    assert _hmm.forward_loglik(loglik, offsets_from_lengths(lengths), startprob, transmat,
                               ll2) == -1
    np.testing.assert_allclose(ll2, ll, rtol=1e-13)


@pytest.mark.parametrize("K", [3, 16])
def test_a_sequence_gets_the_same_answer_alone_and_in_a_batch(K):
    """Blocks do not mix sequences: the rows of a matrix product are independent."""
    rng = np.random.default_rng(10 + K)
    startprob, transmat = model(rng, K)
    lengths = [700, 3, 40, 40, 1, 250]
    loglik = rng.normal(scale=4.0, size=(sum(lengths), K))
    _, ll, post, _, _ = fb(loglik, lengths, startprob, transmat)
    off = offsets_from_lengths(lengths)
    for n, L in enumerate(lengths):
        sl = slice(off[n], off[n + 1])
        _, ll1, post1, _, _ = fb(np.ascontiguousarray(loglik[sl]), [L], startprob, transmat)
        np.testing.assert_allclose(ll1[0], ll[n], rtol=1e-13)
        np.testing.assert_allclose(post1, post[sl], rtol=0, atol=1e-13)


def test_status_is_the_first_impossible_sequence_in_the_callers_order():
    """The kernel works in order of length; the status still names the caller's first."""
    K = 9
    startprob = np.full(K, 1.0 / K)
    transmat = np.full((K, K), 1.0 / K)
    lengths = [2, 3, 50, 1, 20]
    loglik = np.zeros((sum(lengths), K))
    off = offsets_from_lengths(lengths)
    loglik[off[4] + 5] = -np.inf  # sequence 4 (processed before 1 and 3: it is longer)
    loglik[off[1] + 1] = -np.inf  # sequence 1
    assert fb(loglik, lengths, startprob, transmat)[0] == 1
    ll = np.empty(len(lengths))
    assert _hmm.forward_loglik(loglik, off, startprob, transmat, ll) == 1
    loglik[off[1] + 1] = 0.0
    assert fb(loglik, lengths, startprob, transmat)[0] == 4


def test_empty_sequence_is_reported_in_the_callers_order():
    K = 2
    startprob, transmat = np.array([0.5, 0.5]), np.full((2, 2), 0.5)
    lengths = [3, 0, 4, 0]
    loglik = np.zeros((7, K))
    assert fb(loglik, lengths, startprob, transmat)[0] == 1
    assert fb(loglik, [3, 4, 0], startprob, transmat)[0] == 2


def test_scoring_only_leaves_xi_zero_and_posteriors_equal():
    rng = np.random.default_rng(3)
    K = 12
    startprob, transmat = model(rng, K)
    lengths = [30, 5, 17]
    loglik = rng.normal(size=(sum(lengths), K))
    a = fb(loglik, lengths, startprob, transmat, want_xi=True)
    b = fb(loglik, lengths, startprob, transmat, want_xi=False)
    assert np.all(b[3] == 0)
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[1], b[1])


def test_huge_loglik_in_unreachable_state_stays_harmless_in_a_batch():
    """A batch mixing a left-to-right start (states unreachable at first) with others."""
    K = 10
    startprob = np.eye(K)[0]
    transmat = np.triu(np.ones((K, K)))
    transmat /= transmat.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(4)
    lengths = [5, 9, 2]
    loglik = rng.normal(size=(sum(lengths), K))
    loglik[0, 5:] = 1e4  # unreachable at the first frame: must not underflow state 0
    status, ll, post, _, _ = fb(loglik, lengths, startprob, transmat)
    assert status == -1 and np.all(np.isfinite(ll))
    np.testing.assert_array_equal(post[0], np.eye(K)[0])
    ll_ref, post_ref, _, _ = reference(loglik, lengths, startprob, transmat)
    np.testing.assert_allclose(ll, ll_ref, rtol=1e-12)
    np.testing.assert_allclose(post, post_ref, atol=1e-12)


def test_fit_is_bit_identical_for_any_n_jobs_on_the_blas_path():
    """K >= blas_min_states (dgemm per frame), many chunks of mixed-length sequences."""
    from emx import GaussianHMM

    rng = np.random.default_rng(5)
    K, D = max(BLAS_MIN, 12), 3
    lengths = list(rng.integers(1, 400, size=120))
    X = rng.normal(size=(sum(lengths), D))

    def fit(n_jobs):
        m = GaussianHMM(K, n_iter=3, tol=-1e300, init_params="", n_jobs=n_jobs)
        r = np.random.default_rng(1)
        m.startprob_ = r.dirichlet(np.ones(K))
        m.transmat_ = r.dirichlet(np.ones(K), size=K)
        m.means_, m.covars_ = X[:K].copy(), np.ones((K, D))
        return m.fit(X, lengths)

    a, b = fit(1), fit(2)
    assert np.array_equal(a.monitor_.history, b.monitor_.history)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.predict_proba(X, lengths), b.predict_proba(X, lengths))


def test_weights_may_overwrite_loglik_and_change_nothing_else():
    rng = np.random.default_rng(8)
    K = 10
    startprob, transmat = model(rng, K, zeros=0.3)
    lengths = [40, 3, 17, 1]
    loglik = rng.normal(scale=3.0, size=(sum(lengths), K))
    off = offsets_from_lengths(lengths)
    ref = fb(loglik, lengths, startprob, transmat)
    # in place: the same answers, loglik now holds the weights, in [0, 1] with a 1 per row
    work = loglik.copy()
    post, xi, ll = np.empty_like(loglik), np.empty((K, K)), np.empty(len(lengths))
    assert _hmm.forward_backward(work, off, startprob, transmat, post, xi, ll,
                                 weights=work) == -1
    np.testing.assert_array_equal(post, ref[2])
    np.testing.assert_array_equal(xi, ref[3])
    np.testing.assert_array_equal(ll, ref[1])
    assert np.all((work >= 0) & (work <= 1)) and np.all(work.max(axis=1) == 1.0)
    # a separate array gets the same weights; overlapping an output or part of loglik is refused
    sep = np.empty_like(loglik)
    assert _hmm.forward_backward(loglik, off, startprob, transmat, post, xi, ll,
                                 weights=sep) == -1
    np.testing.assert_array_equal(sep, work)
    with pytest.raises(ValueError, match="weights shares memory with post"):
        _hmm.forward_backward(loglik, off, startprob, transmat, post, xi, ll, weights=post)
    big = np.vstack([loglik, loglik])
    with pytest.raises(ValueError, match="weights shares memory with loglik"):
        _hmm.forward_backward(big[: len(loglik)], off, startprob, transmat, post, xi, ll,
                              weights=big[1 : len(loglik) + 1])


@pytest.mark.parametrize("K, offsets", [(16, [0, 1]), (9, [-2, 0, 1, 3]), (5, [0, 1, 2]),
                                        (1, [0])])
def test_banded_products_equal_dense_ones(K, offsets):
    """band_offsets: the same kernel, products diagonal by diagonal."""
    rng = np.random.default_rng(K)
    i, j = np.indices((K, K))
    transmat = rng.dirichlet(np.ones(K), size=K) * np.isin(j - i, offsets)
    transmat[K - 1, K - 1] += 1.0  # the last state of a left-to-right model keeps a row
    transmat /= transmat.sum(axis=1, keepdims=True)
    startprob = rng.dirichlet(np.ones(K))
    lengths = [50, 1, 7, 300, 12] + [3] * 70
    loglik = rng.normal(scale=3.0, size=(sum(lengths), K))
    off = offsets_from_lengths(lengths)
    ref = fb(loglik, lengths, startprob, transmat)
    assert ref[0] == -1
    post, xi, ll, st = (np.empty_like(loglik), np.empty((K, K)), np.empty(len(lengths)),
                        np.empty(K))
    assert _hmm.forward_backward(loglik, off, startprob, transmat, post, xi, ll, st,
                                 band_offsets=np.array(offsets)) == -1
    np.testing.assert_allclose(ll, ref[1], rtol=1e-13)
    np.testing.assert_allclose(post, ref[2], rtol=0, atol=1e-13)
    np.testing.assert_allclose(xi, ref[3], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(st, ref[4], rtol=1e-13)
    assert np.all(xi[transmat == 0] == 0)
    ll2 = np.empty(len(lengths))
    assert _hmm.forward_loglik(loglik, off, startprob, transmat, ll2,
                               band_offsets=np.array(offsets)) == -1
    np.testing.assert_allclose(ll2, ref[1], rtol=1e-13)


def test_band_offsets_are_checked():
    K = 4
    transmat = np.full((K, K), 0.25)
    args = (np.zeros((3, K)), np.array([0, 3]), np.full(K, 0.25), transmat, np.empty((3, K)),
            np.empty((K, K)), np.empty(1))
    with pytest.raises(ValueError, match="non-zero entries off the diagonals"):
        _hmm.forward_backward(*args, band_offsets=[0, 1])
    with pytest.raises(ValueError, match="increase strictly"):
        _hmm.forward_backward(*args, band_offsets=[1, 0])
    with pytest.raises(ValueError, match="increase strictly"):
        _hmm.forward_backward(*args, band_offsets=[0, K])
    with pytest.raises(ValueError, match="non-empty"):
        _hmm.forward_backward(*args, band_offsets=[])


def test_hmms_pick_the_banded_products_for_left_to_right_models(monkeypatch):
    import emx.hmm as emx_hmm
    from emx import GaussianHMM

    K, D = 16, 2
    i = np.arange(K)
    transmat = np.zeros((K, K))
    transmat[i, i] = 0.7
    transmat[i[:-1], i[:-1] + 1] = 0.3
    transmat[-1, -1] = 1.0
    startprob = np.eye(K)[0]

    def left_to_right(n):
        t = np.zeros((n, n))
        t[np.arange(n), np.arange(n)] = 0.7
        t[np.arange(n - 1), np.arange(1, n)] = 0.3
        t[-1, -1] = 1.0
        return emx_hmm._Transitions(np.eye(n)[0], t)

    big = emx_hmm.BAND_MIN_STATES
    assert big == 20
    np.testing.assert_array_equal(left_to_right(big).bands, [0, 1])
    np.testing.assert_array_equal(left_to_right(64).bands, [0, 1])
    dense = np.full((big, big), 1.0 / big)
    assert emx_hmm._Transitions(np.full(big, 1.0 / big), dense).bands is None
    # fewer than BAND_MIN_STATES states: the dense forward-backward (faster there than the
    # banded and the edge-list kernels), Viterbi still on the edge list
    for n in (4, 8, 12, 16, big - 1):
        small = left_to_right(n)
        assert small.bands is None and not small.fb_edges, n
    assert left_to_right(16).sparse
    # a sparse matrix that is not banded keeps the edge lists
    perm = np.random.default_rng(1).permutation(16)
    scattered = left_to_right(16).transmat[np.ix_(perm, perm)]
    t = emx_hmm._Transitions(np.full(16, 1 / 16), scattered)
    assert t.bands is None and t.fb_edges

    rng = np.random.default_rng(0)
    lengths = [200, 60, 130, 30]
    X = rng.normal(size=(sum(lengths), D)) + np.repeat(np.arange(4), [200, 60, 130, 30])[:, None]

    def fit(mode):
        monkeypatch.setattr(emx_hmm, "_TRANSITIONS", mode)
        m = GaussianHMM(K, n_iter=4, tol=-1e300, init_params="mc", params="stmc",
                        random_state=0)
        m.startprob_, m.transmat_ = startprob.copy(), transmat.copy()
        m.fit(X, lengths)
        return m, m.score_samples(X, lengths)

    (a, (la, pa)), (b, (lb, pb)) = fit("dense"), fit("banded")
    np.testing.assert_allclose(a.monitor_.history, b.monitor_.history, rtol=1e-12)
    np.testing.assert_allclose(a.transmat_, b.transmat_, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    np.testing.assert_allclose(la, lb, rtol=1e-12)
    np.testing.assert_allclose(pa, pb, atol=1e-11)
    assert np.all(b.transmat_[transmat == 0] == 0)


def _misled_filter(n1, K=2):
    """A sequence whose forward filter is sure of the wrong state for a while: state 1 is
    absorbing and favoured by the first n1 frames (e^10 per frame), the next 50 frames favour
    state 0 so much (e^20 each) that the only likely path stays in state 0 throughout. At the
    end of the first part alpha_hat[state 0] is below 1e-308 while beta_hat[state 0] is above
    1e308: with n1 = 73 the scaled backward messages of the textbook recursion overflow
    (inf * 0 = NaN posteriors). States 2.. (K > 2) are unreachable padding (to reach the
    dgemm path)."""
    eps = 1e-3
    transmat = np.eye(K)
    transmat[0, :2] = [1 - eps, eps]
    startprob = np.eye(K)[0]
    loglik = np.zeros((n1 + 50, K))
    loglik[:n1, 1] = 10.0
    loglik[n1:, 0] = 20.0
    return loglik, startprob, transmat


@pytest.mark.parametrize("K", [2, BLAS_MIN + 1])
@pytest.mark.parametrize("path", ["dense", "banded", "edges"])
def test_backward_messages_stay_finite_when_the_filter_is_misled(K, path):
    """The backward messages are kept within [2^-600, 2^600] (a power of two at a time, the
    expected counts of the rescaled frames divided by alpha_hat . beta_hat): finite
    posteriors and counts equal to the log-space reference, alone and in a batch."""
    loglik1, startprob, transmat = _misled_filter(73, K)
    rng = np.random.default_rng(K)
    others = [rng.normal(scale=2.0, size=(n, K)) for n in (40, 123, 5)]
    for parts in ([loglik1], [others[0], loglik1, others[1], others[2]]):
        loglik = np.vstack(parts)
        lengths = [len(p) for p in parts]
        off = offsets_from_lengths(lengths)
        T = len(loglik)
        post, xi, ll, st = np.empty((T, K)), np.empty((K, K)), np.empty(len(parts)), np.empty(K)
        if path == "edges":
            src, dst = np.nonzero(transmat)
            order = np.lexsort((src, dst))
            src, dst = src[order].astype(np.intp), dst[order].astype(np.intp)
            xi_e = np.empty(len(src))
            status = _hmm.forward_backward_edges(loglik, off, startprob, src, dst,
                                                 transmat[src, dst].copy(), post, xi_e, ll)
            xi = np.zeros((K, K))
            xi[src, dst] = xi_e
        else:
            bands = np.array([0, 1]) if path == "banded" else None
            status = _hmm.forward_backward(loglik, off, startprob, transmat, post, xi, ll, st,
                                           band_offsets=bands)
        assert status == -1
        assert np.isfinite(post).all() and np.isfinite(xi).all()
        ll_ref, post_ref, xi_ref, _ = reference(loglik, lengths, startprob, transmat)
        np.testing.assert_allclose(ll, ll_ref, rtol=1e-13)
        np.testing.assert_allclose(post, post_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(xi, xi_ref, rtol=1e-12, atol=1e-12 * xi_ref.max())
        # the likely path stays in state 0: the smoother overrules the filter
        assert post[lengths[0] if len(parts) > 1 else 0, 0] > 1 - 1e-12


def test_fit_of_a_misled_left_to_right_model_keeps_finite_parameters():
    """The user-level symptom of the overflow: GaussianHMM.fit on such data returned NaN
    means, transitions and covariances."""
    from emx import GaussianHMM

    loglik, startprob, transmat = _misled_filter(73)
    # one feature whose Gaussian log-likelihoods differ as loglik's columns do: states at
    # means 0 and 1 with unit variance: ll1 - ll0 = x - 1/2
    diff = loglik[:, 1] - loglik[:, 0]
    X = (diff + 0.5)[:, None]
    model = GaussianHMM(2, covariance_type="diag", n_iter=5, init_params="", params="stmc",
                        min_covar=1e-3)
    model.startprob_, model.transmat_ = startprob, transmat
    model.means_, model.covars_ = np.array([[0.0], [1.0]]), np.ones((2, 1))
    model.fit(X)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        assert np.isfinite(getattr(model, name)).all(), name
    assert np.all(np.diff(model.monitor_.history) >= -1e-8 * abs(model.monitor_.history[-1]))


@pytest.mark.parametrize("K, offsets, back", [(12, [0, 1], False), (10, [-1, 0, 2], False),
                                              (9, [0, 1, 3], False), (8, [-1, 0, 1], True)])
def test_banded_windows_equal_dense_and_reference_when_most_states_are_exactly_zero(
        K, offsets, back):
    """The banded kernels work only on the states a frame's prediction can reach (the
    probabilities of states left far behind underflow to exactly 0 and stay there). With
    emissions hundreds of nats apart, most posteriors are exactly 0 and the windows are
    narrow and moving: the results must still be the dense kernel's and the log-space
    reference's, for sequences of any length in one batch, and the forward-only kernel too.
    ``back``: the sequences walk up the states and down again, so states whose probability
    was exactly 0 come back through a backward transition."""
    rng = np.random.default_rng(100 + K)
    i, j = np.indices((K, K))
    transmat = rng.uniform(0.2, 1.0, size=(K, K)) * np.isin(j - i, offsets)
    transmat[K - 1, K - 1] += 1.0
    transmat /= transmat.sum(axis=1, keepdims=True)
    startprob = np.zeros(K)
    startprob[:2] = [0.7, 0.3]
    lengths = [300, 1, 2, 57, 140, 9, 300, 33] + [12] * 20
    # each sequence walks through the states in order; emissions ~60 nats apart per state
    parts = []
    for n in lengths:
        state = np.minimum((np.arange(n) * K) // max(n, 1), K - 1)
        if back:
            state = np.minimum(state, K - 1 - state) * 2
        parts.append(-30.0 * (np.arange(K)[None, :] - state[:, None]) ** 2
                     + rng.normal(scale=2.0, size=(n, K)))
    loglik = np.vstack(parts)
    off = offsets_from_lengths(lengths)
    T = len(loglik)
    post, xi, ll, st = np.empty((T, K)), np.empty((K, K)), np.empty(len(lengths)), np.empty(K)
    assert _hmm.forward_backward(loglik, off, startprob, transmat, post, xi, ll, st,
                                 band_offsets=np.array(offsets)) == -1
    assert np.mean(post == 0.0) > 0.3  # the case the windows are for
    dense = fb(loglik, lengths, startprob, transmat)
    assert dense[0] == -1
    np.testing.assert_allclose(ll, dense[1], rtol=1e-13)
    # relative agreement even for the tiny posteriors (the states at a window's edges)
    np.testing.assert_allclose(post, dense[2], rtol=1e-11, atol=1e-280)
    np.testing.assert_allclose(xi, dense[3], rtol=1e-11, atol=1e-280)
    np.testing.assert_allclose(st, dense[4], rtol=1e-13, atol=1e-280)
    # (the log-space reference itself is good to ~1e-16 per nat of its log terms, here
    # thousands)
    ll_ref, post_ref, xi_ref, start_ref = reference(loglik, lengths, startprob, transmat)
    np.testing.assert_allclose(ll, ll_ref, rtol=1e-12)
    np.testing.assert_allclose(post, post_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(xi, xi_ref, rtol=1e-9, atol=1e-10)
    ll2 = np.empty(len(lengths))
    assert _hmm.forward_loglik(loglik, off, startprob, transmat, ll2,
                               band_offsets=np.array(offsets)) == -1
    np.testing.assert_allclose(ll2, ll, rtol=1e-13)
    # the emission weights are written whole: 0 outside a frame's window
    weights = np.full((T, K), np.nan)
    _hmm.forward_backward(loglik, off, startprob, transmat, post, xi, ll, st,
                          band_offsets=np.array(offsets), weights=weights)
    assert np.isfinite(weights).all() and np.all((weights >= 0) & (weights <= 1))
    assert np.all(weights[post > 0] > 0)


@pytest.mark.parametrize("path", ["dense", "banded", "edges", "dense, weights=loglik",
                                  "banded, weights=loglik"])
def test_posteriors_beyond_the_range_of_doubles_come_from_log_space(path):
    """Emissions hundreds of nats apart, changing from frame to frame, with states that never
    mix (identity transitions): a frame's posterior normaliser alpha_hat . beta_hat leaves
    the range of doubles (the exact one is 1; after rescaled backward messages it is
    anything). The kernels then do the call again in log space: finite posteriors, counts and
    log-likelihoods equal to the log-space reference (the scaled recursions gave NaN rows
    with a success status). With the weights in loglik's own memory (the E-step's way) the
    kernel says so (STATUS_NEEDS_LOGLIK) and the caller calls again with loglik intact (see
    the next test)."""
    rng = np.random.default_rng(41)
    K = 5
    transmat = np.eye(K)
    startprob = np.full(K, 1.0 / K)
    lengths = [32, 9, 30, 7, 9, 31, 34, 27, 50, 12]
    loglik = rng.normal(scale=300.0, size=(sum(lengths), K))
    off = offsets_from_lengths(lengths)
    T = len(loglik)
    post, ll = np.full((T, K), np.nan), np.full(len(lengths), np.nan)
    if path == "edges":
        i = np.arange(K, dtype=np.intp)
        xi_e = np.full(K, np.nan)
        status = _hmm.forward_backward_edges(loglik, off, startprob, i, i, np.ones(K), post,
                                             xi_e, ll)
        xi = np.diag(xi_e)
    else:
        xi, st = np.full((K, K), np.nan), np.full(K, np.nan)
        scratch = loglik.copy()
        status = _hmm.forward_backward(
            scratch, off, startprob, transmat, post, xi, ll, st,
            band_offsets=np.array([0]) if path.startswith("banded") else None,
            weights=scratch if "weights" in path else None)
    if "weights" in path:  # the log-space path needs loglik, which the weights overwrote
        assert status == _hmm.STATUS_NEEDS_LOGLIK
        return
    assert status == -1
    assert np.isfinite(post).all() and np.isfinite(xi).all() and np.isfinite(ll).all()
    ll_ref, post_ref, xi_ref, start_ref = reference(loglik, lengths, startprob, transmat)
    np.testing.assert_allclose(ll, ll_ref, rtol=1e-12)
    np.testing.assert_allclose(post, post_ref, rtol=0, atol=1e-9)  # the reference's precision
    np.testing.assert_allclose(xi, xi_ref, rtol=1e-9, atol=1e-9)
    if path != "edges":
        np.testing.assert_allclose(st, start_ref, rtol=1e-9, atol=1e-9)


def test_a_sequence_impossible_under_labels_is_reported_not_redone_in_log_space():
    """A sequence of probability zero fails in the forward pass; its meaningless backward
    must not send the call to the log-space path (which would see weights, not
    log-likelihoods, in a loglik the weights overwrote)."""
    K = 3
    transmat = np.array([[0.5, 0.0, 0.5], [0.3, 0.4, 0.3], [0.3, 0.3, 0.4]])
    rng = np.random.default_rng(3)
    loglik = rng.normal(size=(50, K))
    loglik[23, [1, 2]] = -np.inf  # state 0, then state 1: a transition of probability 0
    loglik[24, [0, 2]] = -np.inf
    off = np.array([0, 20, 50], dtype=np.intp)
    post, xi, ll, st = np.empty((50, K)), np.empty((K, K)), np.empty(2), np.empty(K)
    assert _hmm.forward_backward(loglik, off, np.full(K, 1 / 3), transmat, post, xi, ll, st,
                                 weights=loglik) == 1


@pytest.mark.parametrize("labels", [False, True])
def test_models_call_again_with_loglik_when_the_kernel_needs_it(monkeypatch, labels):
    """When the kernel answers STATUS_NEEDS_LOGLIK (its weights overwrote the
    log-likelihoods the log-space path needs), the E-step computes them again and calls
    without scratch; with labels, the masked copy is made again. The fit is then that of
    calls that never asked."""
    import emx.hmm as emx_hmm
    from emx import GaussianHMM

    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 2))
    lengths = [100, 120, 80]
    y = np.full(len(X), -1) if labels else None

    def fit():
        m = GaussianHMM(3, covariance_type="diag", n_iter=3, tol=-1e300, random_state=0)
        return m.fit(X, lengths, labels=y)

    ref = fit()
    plain = emx_hmm._Transitions.forward_backward
    calls = {"needs": 0, "again": 0}

    def flaky(self, loglik, offsets, want_xi=True, post=None, scratch=False):
        if scratch:  # as if the log-space path had been needed: loglik is spoilt
            calls["needs"] += 1
            loglik[...] = np.nan
            return (_hmm.STATUS_NEEDS_LOGLIK, None, None, None, None)
        calls["again"] += 1
        return plain(self, loglik, offsets, want_xi, post, scratch)

    monkeypatch.setattr(emx_hmm._Transitions, "forward_backward", flaky)
    got = fit()
    assert calls["needs"] > 0 and calls["again"] >= calls["needs"]
    np.testing.assert_array_equal(got.monitor_.history, ref.monitor_.history)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
