"""Slow, obviously-correct references the kernels are checked against."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.special import logsumexp


def safe_log(p):
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, -np.inf)
    np.log(p, out=out, where=p > 0)
    return out


def path_logprob(path, loglik, startprob, transmat):
    """log P(X, path) for one sequence."""
    lsp, ltm = safe_log(startprob), safe_log(transmat)
    lp = lsp[path[0]] + loglik[0, path[0]]
    for t in range(1, len(path)):
        lp += ltm[path[t - 1], path[t]] + loglik[t, path[t]]
    return lp


def brute_force(loglik, startprob, transmat):
    """Enumerate every state path of one sequence.

    Returns log P(X), posteriors (T, K), expected transition counts (K, K), the best path and
    its log probability.
    """
    T, K = loglik.shape
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    lps = np.array([path_logprob(p, loglik, startprob, transmat) for p in paths])
    total = logsumexp(lps)
    w = np.exp(lps - total)
    post = np.zeros((T, K))
    xi = np.zeros((K, K))
    for p, wi in zip(paths, w, strict=True):
        post[np.arange(T), p] += wi
        for t in range(1, T):
            xi[p[t - 1], p[t]] += wi
    best = int(np.argmax(lps))
    return total, post, xi, paths[best], lps[best]


def log_forward_total(loglik, startprob, transmat):
    """log P(X) of a long sequence by a vectorised log-space tree reduction.

    The forward recursion is a product of matrices M_t = A diag(b_t); products are taken in
    log space pairwise (log-sum-exp over the inner index), so nothing underflows however long
    the sequence is.
    """
    lA = safe_log(transmat)
    M = lA[None, :, :] + loglik[1:, None, :]  # (T-1, K, K): M_t[i, j] = log a_ij + log b_t(j)
    while len(M) > 1:
        if len(M) % 2:
            last = M[-1:]
            M = M[:-1]
        else:
            last = None
        L, R = M[0::2], M[1::2]
        M = logsumexp(L[:, :, :, None] + R[:, None, :, :], axis=2)
        if last is not None:
            M = np.concatenate([M, last])
    alpha0 = safe_log(startprob) + loglik[0]
    if len(M) == 0:
        return logsumexp(alpha0)
    return logsumexp(alpha0[:, None] + M[0], axis=(0, 1))


def log_forward_backward(loglik, startprob, transmat):
    """Forward-backward of one sequence in log space (log-sum-exp per frame).

    Returns log P(X), posteriors (T, K) and expected transition counts (K, K); -inf, NaN
    posteriors and NaN counts when the sequence is impossible.
    """
    T, K = loglik.shape
    lsp, ltm = safe_log(startprob), safe_log(transmat)
    la = np.empty((T, K))
    lb = np.zeros((T, K))
    la[0] = lsp + loglik[0]
    for t in range(1, T):
        la[t] = logsumexp(la[t - 1][:, None] + ltm, axis=0) + loglik[t]
    for t in range(T - 2, -1, -1):
        lb[t] = logsumexp(ltm + (loglik[t + 1] + lb[t + 1])[None, :], axis=1)
    total = logsumexp(la[-1])
    with np.errstate(invalid="ignore"):
        post = np.exp(la + lb - total)
        xi = np.zeros((K, K))
        for t in range(T - 1):
            xi += np.exp(la[t][:, None] + ltm + (loglik[t + 1] + lb[t + 1])[None, :] - total)
    return total, post, xi
