"""Compiled kernels against brute force and log-space references."""

import numpy as np
import pytest
from _reference import brute_force, log_forward_total, path_logprob, safe_log
from scipy.stats import multivariate_normal

from emx import gaussian as G
from emx._core import _gauss, _hmm
from emx._validation import offsets_from_lengths


def random_model(rng, K, left_to_right=False):
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    if left_to_right:
        startprob = np.eye(K)[0]
        transmat = np.triu(transmat)
        transmat /= transmat.sum(axis=1, keepdims=True)
    return startprob, transmat


def run_fb(loglik, lengths, startprob, transmat):
    T, K = loglik.shape
    off = offsets_from_lengths(lengths)
    post, xi, ll = np.empty((T, K)), np.empty((K, K)), np.empty(len(lengths))
    status = _hmm.forward_backward(
        loglik, off, startprob, transmat, post, xi, ll
    )
    return status, ll, post, xi


def run_viterbi(loglik, lengths, startprob, transmat):
    T, K = loglik.shape
    off = offsets_from_lengths(lengths)
    path, lp = np.empty(T, dtype=np.intp), np.empty(len(lengths))
    status = _hmm.viterbi(
        loglik, off, safe_log(startprob), np.ascontiguousarray(safe_log(transmat).T), path, lp,
    )
    return status, lp, path


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("left_to_right", [False, True])
def test_forward_backward_and_viterbi_equal_brute_force(seed, left_to_right):
    rng = np.random.default_rng(seed)
    K, lengths = 3, [6, 4, 5]
    startprob, transmat = random_model(rng, K, left_to_right)
    # Log-likelihoods spanning a wide range, so the per-frame maximum matters.
    loglik = rng.normal(scale=30.0, size=(sum(lengths), K)) - 500.0
    status, ll, post, xi = run_fb(loglik, lengths, startprob, transmat)
    vstatus, vlp, vpath = run_viterbi(loglik, lengths, startprob, transmat)
    assert status == -1 and vstatus == -1
    xi_ref = np.zeros((K, K))
    off = offsets_from_lengths(lengths)
    for n in range(len(lengths)):
        sl = slice(off[n], off[n + 1])
        total, post_ref, xi_n, best_path, best_lp = brute_force(loglik[sl], startprob, transmat)
        np.testing.assert_allclose(ll[n], total, rtol=1e-12)
        np.testing.assert_allclose(post[sl], post_ref, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(vpath[sl], best_path)
        np.testing.assert_allclose(vlp[n], best_lp, rtol=1e-12)
        xi_ref += xi_n
    np.testing.assert_allclose(xi, xi_ref, rtol=0, atol=1e-12)
    if left_to_right:
        assert np.all(xi[np.tril_indices(K, -1)] == 0)


def test_structural_zeros_are_exact_zeros():
    K = 4
    startprob = np.array([1.0, 0, 0, 0])
    transmat = np.array([[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0.5, 0.5], [0, 0, 0, 1.0]])
    loglik = np.random.default_rng(1).normal(size=(3, K))
    _, _, post, xi = run_fb(loglik, [3], startprob, transmat)
    # State 3 cannot be reached within 3 frames, state 2 only at the last one.
    assert np.all(post[:, 3] == 0) and post[0, 1] == 0 and post[1, 2] == 0
    assert np.all(xi[transmat == 0] == 0)


def test_unreachable_state_with_huge_loglik_does_not_underflow():
    """A frame maximum over *all* states would underflow every reachable state to zero."""
    startprob = np.array([1.0, 0.0])
    transmat = np.eye(2)
    loglik = np.array([[-5000.0, 0.0], [-5001.0, 0.0], [-4999.0, 0.0]])
    status, ll, post, _ = run_fb(loglik, [3], startprob, transmat)
    assert status == -1
    np.testing.assert_allclose(ll[0], -15000.0, rtol=1e-14)
    np.testing.assert_array_equal(post[:, 0], 1.0)


def test_impossible_sequence_reports_status():
    startprob = np.array([1.0, 0.0])
    transmat = np.eye(2)
    loglik = np.array([[0.0, 0.0], [-np.inf, 0.0]])
    status, *_ = run_fb(loglik, [1, 1], startprob, transmat)
    assert status == 1
    vstatus, *_ = run_viterbi(loglik, [1, 1], startprob, transmat)
    assert vstatus == 1


def test_million_frames_against_log_space_reference():
    hmmlearn = pytest.importorskip("hmmlearn.hmm")
    rng = np.random.default_rng(7)
    K, T = 3, 1_000_000
    startprob, transmat = random_model(rng, K)
    loglik = rng.normal(scale=5.0, size=(T, K)) - 50.0
    loglik[T // 2] -= 2000.0  # one far outlying frame
    status, ll, post, xi = run_fb(loglik, [T], startprob, transmat)
    assert status == -1
    ref = log_forward_total(loglik, startprob, transmat)
    assert np.isfinite(ll[0]) and ll[0] < -4e7  # exp of it underflows by far
    np.testing.assert_allclose(ll[0], ref, rtol=1e-10)
    # Posteriors and xi from hmmlearn's log-space kernels (compiled, independent code).
    from hmmlearn import _hmmc

    fwd_ll, fwd = _hmmc.forward_log(startprob, transmat, loglik)
    bwd = _hmmc.backward_log(startprob, transmat, loglik)
    log_gamma = fwd + bwd
    log_gamma -= log_gamma.max(axis=1, keepdims=True)
    gamma = np.exp(log_gamma)
    gamma /= gamma.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(fwd_ll, ref, rtol=1e-10)
    np.testing.assert_allclose(post, gamma, rtol=0, atol=1e-8)
    # xi_t normalised frame by frame: log-space lattices 5e7 from zero drift by ~1e-4 over a
    # million frames, and only the per-frame normalisation cancels that drift.
    log_xi = fwd[:-1, :, None] + safe_log(transmat)[None] + loglik[1:, None, :] + bwd[1:, None, :]
    log_xi -= log_xi.max(axis=(1, 2), keepdims=True)
    xi_t = np.exp(log_xi)
    xi_ref = (xi_t / xi_t.sum(axis=(1, 2), keepdims=True)).sum(axis=0)
    np.testing.assert_allclose(xi, xi_ref, rtol=1e-8)
    np.testing.assert_allclose(xi.sum(), T - 1, rtol=1e-12)
    assert hmmlearn is not None


def test_path_logprob_reference_matches_viterbi_value():
    rng = np.random.default_rng(3)
    startprob, transmat = random_model(rng, 3)
    loglik = rng.normal(size=(5, 3))
    _, lp, path = run_viterbi(loglik, [5], startprob, transmat)
    np.testing.assert_allclose(lp[0], path_logprob(path, loglik, startprob, transmat))


def test_sample_states_inverts_cdfs():
    startprob_cdf = np.cumsum([0.2, 0.8])
    transmat_cdf = np.cumsum([[0.0, 1.0], [1.0, 0.0]], axis=1)
    states = np.empty(4, dtype=np.intp)
    _hmm.sample_states(startprob_cdf, transmat_cdf, np.array([0.1, 0.5, 0.5, 0.5]), -1, states)
    np.testing.assert_array_equal(states, [0, 1, 0, 1])
    _hmm.sample_states(startprob_cdf, transmat_cdf, np.zeros(4), 1, states)
    np.testing.assert_array_equal(states, [1, 0, 1, 0])


# ---------------------------------------------------------------- Gaussian log-densities


def random_covars(rng, covariance_type, K, D, scale=1.0):
    if covariance_type == "spherical":
        return scale * rng.uniform(0.5, 2.0, size=K)
    if covariance_type == "diag":
        return scale * rng.uniform(0.5, 2.0, size=(K, D))
    A = rng.normal(size=(K, D, D))
    full = scale * (A @ np.swapaxes(A, 1, 2) + D * np.eye(D))
    return full[0] if covariance_type == "tied" else full


@pytest.mark.parametrize("covariance_type", G.COVARIANCE_TYPES)
def test_log_density_matches_scipy(covariance_type):
    rng = np.random.default_rng(0)
    K, D, n = 4, 5, 300  # n > 128 crosses a block boundary of the full kernel
    means = rng.normal(size=(K, D))
    covars = random_covars(rng, covariance_type, K, D)
    X = rng.normal(size=(n, D)) * 2
    out = G.GaussianDensity(means, covars, covariance_type)(X)
    full = G.full_covars(covars, covariance_type, K, D)
    ref = np.column_stack([multivariate_normal(means[k], full[k]).logpdf(X) for k in range(K)])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", G.COVARIANCE_TYPES)
def test_log_density_far_from_origin(covariance_type):
    """Data 1e4 from the origin with variances 1e-4: no cancellation."""
    rng = np.random.default_rng(1)
    K, D, n = 3, 4, 200
    centre = 1e4
    means = centre + 0.01 * rng.normal(size=(K, D))
    covars = random_covars(rng, covariance_type, K, D, scale=1e-4)
    X = centre + 0.01 * rng.normal(size=(n, D))
    out = G.GaussianDensity(means, covars, covariance_type)(X)
    full = G.full_covars(covars, covariance_type, K, D)
    ref = np.empty((n, K))
    for k in range(K):
        diff = X - means[k]  # direct differences, as exact as float64 allows
        sol = np.linalg.solve(full[k], diff.T).T
        _, logdet = np.linalg.slogdet(full[k])
        ref[:, k] = -0.5 * (D * np.log(2 * np.pi) + logdet + np.sum(diff * sol, axis=1))
    np.testing.assert_allclose(out, ref, rtol=1e-9)


def test_density_kernels_reject_bad_shapes():
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"log_density_diag: means has shape \(2, 3\), expected "
                       r"\(2, 2\)"):
        _gauss.log_density_diag(X, np.zeros((2, 3)), np.ones((2, 3)), np.zeros(2), np.empty((3, 2)))
    with pytest.raises(ValueError, match="forward_backward: offsets must end at"):
        _hmm.forward_backward(
            np.zeros((3, 2)), np.array([0, 2], dtype=np.intp), np.ones(2) / 2,
            np.ones((2, 2)) / 2, np.empty((3, 2)), np.empty((2, 2)), np.empty(1),
        )


@pytest.mark.parametrize("per_component", [False, True])
@pytest.mark.parametrize("covariance_type", G.COVARIANCE_TYPES)
def test_moment_accumulation_matches_numpy(covariance_type, per_component):
    rng = np.random.default_rng(5)
    n, K, D = 300, 3, 4  # crosses block boundaries
    X = 1e4 + rng.normal(size=(n, D))
    W = rng.dirichlet(np.ones(K), size=n) * rng.uniform(0, 2, size=(n, 1))
    # One shift for all components (D,), or one per component (K, D).
    shift = X.mean(axis=0) + (rng.normal(size=(K, D)) if per_component else 0.0)
    s = G.GaussianStats.from_weights(X, W, shift, covariance_type)
    Xc = X[:, None, :] - np.broadcast_to(shift, (K, D))[None]  # (n, K, D)
    np.testing.assert_allclose(s.post, W.sum(0), rtol=1e-12)
    np.testing.assert_allclose(s.sum1, np.einsum("tk,tkd->kd", W, Xc), rtol=1e-10,
                               atol=1e-10)
    if covariance_type in ("diag", "spherical"):
        ref = np.einsum("tk,tkd->kd", W, Xc**2)
    elif covariance_type == "full":
        ref = np.einsum("tk,tkd,tke->kde", W, Xc, Xc)
    else:
        ref = np.einsum("tk,tkd,tke->de", W, Xc, Xc)
    np.testing.assert_allclose(s.sum2, ref, rtol=1e-10, atol=1e-10)
    half = G.GaussianStats.from_weights(X[:100], W[:100], shift, covariance_type)
    rest = G.GaussianStats.from_weights(X[100:], W[100:], shift, covariance_type)
    np.testing.assert_allclose((half + rest).sum2, s.sum2, rtol=1e-12, atol=1e-10)


def test_moment_kernel_rejects_wrong_shift_shape():
    X, W = np.zeros((5, 2)), np.ones((5, 3))
    with pytest.raises(ValueError, match=r"accumulate_moments: shift has shape \(2, 2\)"):
        _gauss.accumulate_moments(X, W, np.zeros((2, 2)), 0, np.zeros(3), np.zeros((3, 2)),
                                  np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"accumulate_moments_nan_diag: shift has shape"):
        _gauss.accumulate_moments_nan_diag(X, W, np.zeros((2, 2)), np.zeros(3),
                                           np.zeros((3, 2)), np.zeros((3, 2)),
                                           np.zeros((3, 2)))


def test_start_counts_are_first_frame_posteriors():
    rng = np.random.default_rng(9)
    K, lengths = 3, [4, 1, 6]
    startprob, transmat = random_model(rng, K)
    loglik = rng.normal(size=(sum(lengths), K))
    T = len(loglik)
    off = offsets_from_lengths(lengths)
    post, start = np.empty((T, K)), np.full(K, np.nan)
    _hmm.forward_backward(
        loglik, off, startprob, transmat, post, np.empty((K, K)), np.empty(3), start,
        want_xi=True,
    )
    np.testing.assert_allclose(start, post[off[:-1]].sum(axis=0), rtol=1e-14)


def test_data_covariance_matches_numpy():
    X = 1e3 + np.random.default_rng(11).normal(size=(500, 4))
    np.testing.assert_allclose(G.data_covariance(X), np.cov(X.T), rtol=1e-10)
    np.testing.assert_allclose(G.data_covariance(X, ddof=0), np.cov(X.T, ddof=0), rtol=1e-10)


def _sparse_model(rng, K):
    """A random start and a transition matrix with about half its entries zero, given as
    edges in shuffled order (one pair split into two edges that must add up)."""
    startprob, transmat = random_model(rng, K)
    transmat[rng.random((K, K)) < 0.5] = 0.0
    transmat[np.arange(K), np.arange(K)] += 0.1  # every row keeps an entry
    transmat /= transmat.sum(axis=1, keepdims=True)
    src, dst = np.nonzero(transmat)
    prob = transmat[src, dst]
    order = rng.permutation(len(src))
    src, dst, prob = src[order], dst[order], prob[order]
    # split the first edge in two halves
    src = np.append(src, src[0]).astype(np.intp)
    dst = np.append(dst, dst[0]).astype(np.intp)
    prob = np.append(prob, prob[0] / 2)
    prob[0] /= 2
    return startprob, transmat, src, dst, prob


@pytest.mark.parametrize("seed", range(5))
def test_edge_kernels_equal_dense_kernels(seed):
    rng = np.random.default_rng(seed)
    K, lengths = 6, [40, 1, 25]
    startprob, transmat, src, dst, prob = _sparse_model(rng, K)
    T = sum(lengths)
    loglik = rng.normal(scale=30.0, size=(T, K)) - 500.0
    loglik[5, 2] = -np.inf  # an impossible emission
    off = offsets_from_lengths(lengths)
    status, ll, post, xi = run_fb(loglik, lengths, startprob, transmat)
    post_e, xi_e, ll_e = np.empty((T, K)), np.empty(len(src)), np.empty(len(lengths))
    status_e = _hmm.forward_backward_edges(loglik, off, startprob, src, dst, prob, post_e,
                                           xi_e, ll_e)
    assert status == status_e == -1
    np.testing.assert_allclose(ll_e, ll, rtol=1e-12)
    np.testing.assert_allclose(post_e, post, rtol=0, atol=1e-12)
    xi_from_edges = np.zeros((K, K))
    np.add.at(xi_from_edges, (src, dst), xi_e)
    np.testing.assert_allclose(xi_from_edges, xi, rtol=0, atol=1e-10)
    assert xi_e.sum() == pytest.approx(T - len(lengths), rel=1e-12)

    vstatus, vlp, vpath = run_viterbi(loglik, lengths, startprob, transmat)
    path, lp = np.empty(T, dtype=np.intp), np.empty(len(lengths))
    # Viterbi takes one log probability per pair: merge the split edge back
    src1, dst1, prob1 = src[:-1], dst[:-1], prob[:-1].copy()
    prob1[0] *= 2
    vstatus_e = _hmm.viterbi_edges(loglik, off, safe_log(startprob), src1, dst1,
                                   np.log(prob1), path, lp)
    assert vstatus == vstatus_e == -1
    np.testing.assert_allclose(lp, vlp, rtol=1e-12)
    np.testing.assert_array_equal(path, vpath)


def test_edge_kernels_report_impossible_sequences_and_bad_edges():
    startprob = np.array([1.0, 0.0])
    src, dst = np.array([0, 1], dtype=np.intp), np.array([1, 1], dtype=np.intp)
    prob = np.array([1.0, 1.0])
    # state 0 must move on to state 1: a second frame that only state 0 explains is impossible
    loglik = np.array([[0.0, 0.0], [0.0, -np.inf]])
    off = np.array([0, 2], dtype=np.intp)
    loglik2 = np.array([[0.0, 0.0], [-np.inf, 0.0], [0.0, -np.inf]])
    off2 = np.array([0, 2, 3], dtype=np.intp)  # the third frame starts a new sequence: fine
    for ll, o, expect in ((loglik, off, 0), (loglik2, off2, -1)):
        T = len(ll)
        status = _hmm.forward_backward_edges(ll, o, startprob, src, dst, prob,
                                             np.empty((T, 2)), np.empty(2),
                                             np.empty(len(o) - 1))
        vstatus = _hmm.viterbi_edges(ll, o, safe_log(startprob), src, dst, np.log(prob),
                                     np.empty(T, dtype=np.intp), np.empty(len(o) - 1))
        assert status == vstatus == expect
    with pytest.raises(ValueError, match=r"forward_backward_edges: edge 0 \(0 -> 2\)"):
        _hmm.forward_backward_edges(loglik, off, startprob, src, np.array([2, 1], np.intp),
                                    prob, np.empty((2, 2)), np.empty(2), np.empty(1))


def _log_forward_edges(loglik, off, startprob, src, dst, prob):
    T, K = loglik.shape
    out = np.empty(len(off) - 1)
    status = _hmm.forward_loglik_log_edges(loglik, off, safe_log(startprob), src, dst,
                                           np.log(prob), out)
    return status, out


@pytest.mark.parametrize("seed", range(3))
def test_log_space_forward_on_edges_equals_references(seed):
    rng = np.random.default_rng(seed)
    K, lengths = 5, [30, 1, 12]
    startprob, transmat, src, dst, prob = _sparse_model(rng, K)
    T = sum(lengths)
    off = offsets_from_lengths(lengths)
    loglik = rng.normal(scale=30.0, size=(T, K)) - 500.0
    status, ll = run_fb(loglik, lengths, startprob, transmat)[:2]
    status_l, ll_l = _log_forward_edges(loglik, off, startprob, src, dst, prob)
    assert status == status_l == -1
    np.testing.assert_allclose(ll_l, ll, rtol=1e-12)
    # Left to right 0 -> 1 -> 2, ending in 2; state 0 is 1e5 nats more likely than the others
    # in every frame but the last: the scaled pass loses every path through state 1 (its
    # share underflows to zero) and finds no way to end; the log-space pass keeps them.
    startprob = np.array([1.0, 0.0, 0.0])
    transmat = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    src, dst = (np.array(x, dtype=np.intp) for x in np.nonzero(transmat))
    prob = transmat[src, dst]
    T = 20
    loglik = rng.normal(size=(T, 3))
    loglik[:-1, 0] += 1e5
    loglik[-1, :2] = -np.inf
    off = np.array([0, T], dtype=np.intp)
    scaled = np.empty(1)
    assert _hmm.forward_loglik(loglik, off, startprob, transmat, scaled) == 0
    status_l, ll_l = _log_forward_edges(loglik, off, startprob, src, dst, prob)
    assert status_l == -1
    assert ll_l[0] == pytest.approx(log_forward_total(loglik, startprob, transmat), rel=1e-12)


def test_log_space_forward_reports_impossible_sequences():
    startprob = np.array([1.0, 0.0])
    src, dst = np.array([0, 1], dtype=np.intp), np.array([1, 1], dtype=np.intp)
    prob = np.array([1.0, 1.0])
    loglik = np.array([[0.0, 0.0], [0.0, -np.inf]])
    assert _log_forward_edges(loglik, np.array([0, 2], np.intp), startprob, src, dst,
                              prob)[0] == 0
    with pytest.raises(ValueError, match="forward_loglik_log_edges: offsets must end at"):
        _log_forward_edges(loglik, np.array([0, 3], np.intp), startprob, src, dst, prob)
    with pytest.raises(ValueError, match="forward_loglik_log_edges: edge 1 .* leaves"):
        _log_forward_edges(loglik, np.array([0, 2], np.intp), startprob, src,
                           np.array([0, 2], np.intp), prob)
