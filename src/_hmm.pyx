# cython: language_level=3
"""Hidden Markov model kernels: scaled forward-backward, Viterbi, state sampling.

Every kernel works on many sequences at once: frames of all sequences are concatenated
row-wise and ``offsets`` (length ``n_sequences + 1``) marks where each one starts and ends.
Emission probabilities come in as log-likelihoods, shape (n_frames, n_states); the kernels do
not know what produced them. Kernels hold no model policy (no floors, priors or defaults) and
return a status instead of raising: the index of the first sequence that has probability zero
under the model, or -1 when all went well.
"""

from libc.math cimport exp, log, INFINITY


cdef inline bint _weigh_frame(double* pred, const double* ll, double* fp, Py_ssize_t K,
                              double* c_out, double* m_out) noexcept nogil:
    """One forward step's emission: pred[j] *= b[j] = exp(ll[j] - m), with m the maximum of ll
    over the states pred reaches (the others get b = 0 exactly, so a huge log-likelihood in an
    unreachable state can neither overflow nor underflow the reachable ones); then pred is
    normalised by its sum c. Stores b in fp (unless NULL), c and m in c_out and m_out.
    Returns True when the frame has probability zero."""
    cdef Py_ssize_t j
    cdef double m = -INFINITY, c = 0.0, b
    for j in range(K):
        if pred[j] > 0.0 and ll[j] > m:
            m = ll[j]
    if m == -INFINITY:
        return True
    for j in range(K):
        if pred[j] > 0.0:
            b = exp(ll[j] - m)
            pred[j] *= b
            c += pred[j]
        else:
            b = 0.0
            pred[j] = 0.0
        if fp != NULL:
            fp[j] = b
    if not c > 0.0:
        return True
    for j in range(K):
        pred[j] /= c
    c_out[0] = c
    m_out[0] = m
    return False


cdef inline void _to_posterior(double* alpha, const double* beta, Py_ssize_t K) noexcept nogil:
    """gamma = alpha * beta, normalised (in place in alpha)."""
    cdef Py_ssize_t i
    cdef double s = 0.0
    for i in range(K):
        alpha[i] *= beta[i]
        s += alpha[i]
    if s > 0.0:
        for i in range(K):
            alpha[i] /= s


cdef Py_ssize_t _forward_backward_one(
    const double[:, ::1] loglik, Py_ssize_t t0, Py_ssize_t t1,
    const double[::1] startprob, const double[:, ::1] transmat,
    double[:, ::1] post, double[:, ::1] frame_prob, double[::1] scale,
    double[:, ::1] xi_raw, double[::1] beta, double[::1] u, bint want_xi,
    double* seq_loglik,
) noexcept nogil:
    """Scaled forward-backward on frames [t0, t1). Returns 0, or 1 when P(sequence) == 0.

    Forward: alpha_hat[t] = normalised (pred[t] * b[t]), where pred[t] is the predicted state
    distribution and b[t, j] = exp(loglik[t, j] - m[t]) with m[t] the frame's maximum over the
    states that pred[t] can reach. States pred[t] cannot reach get b = 0 exactly (they cannot
    contribute), so a huge log-likelihood in an unreachable state neither overflows nor
    underflows the reachable ones. log P = sum_t log(c[t]) + m[t].
    Backward: u[t] = b[t] * beta_hat[t] / c[t]; beta_hat[t-1] = A u[t];
    gamma[t] = alpha_hat[t] * beta_hat[t]; sum_t xi[t] = A (elementwise) sum_t alpha_hat[t] u[t+1]^T.
    """
    cdef Py_ssize_t K = loglik.shape[1]
    cdef Py_ssize_t t, i, j
    cdef double m, c, s, a, total = 0.0

    # ---- forward: alpha_hat is stored in post[t] ----
    for t in range(t0, t1):
        if t == t0:
            for j in range(K):
                post[t, j] = startprob[j]
        else:
            for j in range(K):
                post[t, j] = 0.0
            for i in range(K):
                a = post[t - 1, i]
                if a != 0.0:
                    for j in range(K):
                        post[t, j] += a * transmat[i, j]
        if _weigh_frame(&post[t, 0], &loglik[t, 0], &frame_prob[t, 0], K, &c, &m):
            return 1
        scale[t] = c
        total += log(c) + m
    seq_loglik[0] = total

    # ---- backward, overwriting alpha_hat[t] by gamma[t] once it is no longer needed ----
    for t in range(t1 - 1, t0 - 1, -1):
        if t == t1 - 1:
            for i in range(K):
                beta[i] = 1.0
        else:
            # u holds u[t+1]; alpha_hat[t] is still in post[t].
            if want_xi:
                for i in range(K):
                    a = post[t, i]
                    if a != 0.0:
                        for j in range(K):
                            xi_raw[i, j] += a * u[j]
            for i in range(K):
                s = 0.0
                for j in range(K):
                    s += transmat[i, j] * u[j]
                beta[i] = s
        _to_posterior(&post[t, 0], &beta[0], K)
        if t > t0:
            for j in range(K):
                u[j] = frame_prob[t, j] * beta[j] / scale[t]
    return 0


def forward_backward(
    const double[:, ::1] loglik,
    const Py_ssize_t[::1] offsets,
    const double[::1] startprob,
    const double[:, ::1] transmat,
    double[:, ::1] post,
    double[:, ::1] xi_sum,
    double[::1] seq_loglik,
    double[:, ::1] frame_prob,
    double[::1] scale,
    bint want_xi=True,
    double[::1] start_sum=None,
):
    """Posteriors, expected transition counts and log-likelihoods of many sequences.

    Parameters
    ----------
    loglik : (n_frames, K) emission log-likelihoods (finite or -inf).
    offsets : (n_sequences + 1,) frame offsets of the sequences, offsets[0] == 0.
    startprob, transmat : (K,) and (K, K) model parameters; zeros are honoured.
    post : (n_frames, K) output, state posteriors gamma.
    xi_sum : (K, K) output, overwritten with the expected transition counts summed over all
        frames and sequences (without building a (T, K, K) array).
    seq_loglik : (n_sequences,) output, log P(sequence).
    frame_prob, scale : (n_frames, K) and (n_frames,) work space.
    want_xi : accumulate xi_sum (False for scoring only).
    start_sum : (K,) optional output, overwritten with the posteriors of the first frames
        summed over the sequences (expected counts of each starting state).

    Returns
    -------
    status : int
        -1 on success, otherwise the index of the first sequence whose probability is zero.
    """
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t K = loglik.shape[1]
    cdef Py_ssize_t n, i, j, status = -1
    cdef double ll
    if (post.shape[0] != loglik.shape[0] or post.shape[1] != K or frame_prob.shape[0] < loglik.shape[0]
            or frame_prob.shape[1] != K or scale.shape[0] < loglik.shape[0]
            or startprob.shape[0] != K or transmat.shape[0] != K or transmat.shape[1] != K
            or xi_sum.shape[0] != K or xi_sum.shape[1] != K or seq_loglik.shape[0] != n_seq
            or offsets[n_seq] != loglik.shape[0]):
        raise ValueError("forward_backward: inconsistent array shapes")
    cdef bint want_start = start_sum is not None
    if want_start and start_sum.shape[0] != K:
        raise ValueError("forward_backward: inconsistent array shapes")
    cdef double[::1] beta = _empty(K)
    cdef double[::1] u = _empty(K)
    with nogil:
        for i in range(K):
            if want_start:
                start_sum[i] = 0.0
            for j in range(K):
                xi_sum[i, j] = 0.0
        for n in range(n_seq):
            if offsets[n + 1] <= offsets[n]:
                status = n
                break
            if _forward_backward_one(loglik, offsets[n], offsets[n + 1], startprob, transmat,
                                     post, frame_prob, scale, xi_sum, beta, u, want_xi, &ll):
                status = n
                break
            seq_loglik[n] = ll
            if want_start:
                for i in range(K):
                    start_sum[i] += post[offsets[n], i]
        if want_xi:
            for i in range(K):
                for j in range(K):
                    xi_sum[i, j] *= transmat[i, j]
    return status


def forward_loglik(
    const double[:, ::1] loglik,
    const Py_ssize_t[::1] offsets,
    const double[::1] startprob,
    const double[:, ::1] transmat,
    double[::1] seq_loglik,
    double[:, ::1] work,
):
    """Log-likelihood of each sequence by the scaled forward pass only.

    ``work`` is (n_frames, K) scratch. Returns -1, or the first zero-probability sequence.
    """
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t K = loglik.shape[1]
    cdef Py_ssize_t n, t, i, j, t0, t1, status = -1
    cdef double m, c, a, total
    if (work.shape[0] < loglik.shape[0] or work.shape[1] != K or startprob.shape[0] != K
            or transmat.shape[0] != K or transmat.shape[1] != K
            or seq_loglik.shape[0] != n_seq or offsets[n_seq] != loglik.shape[0]):
        raise ValueError("forward_loglik: inconsistent array shapes")
    with nogil:
        for n in range(n_seq):
            t0 = offsets[n]
            t1 = offsets[n + 1]
            if t1 <= t0:
                status = n
                break
            total = 0.0
            for t in range(t0, t1):
                if t == t0:
                    for j in range(K):
                        work[t, j] = startprob[j]
                else:
                    for j in range(K):
                        work[t, j] = 0.0
                    for i in range(K):
                        a = work[t - 1, i]
                        if a != 0.0:
                            for j in range(K):
                                work[t, j] += a * transmat[i, j]
                if _weigh_frame(&work[t, 0], &loglik[t, 0], NULL, K, &c, &m):
                    status = n
                    break
                total += log(c) + m
            if status >= 0:
                break
            seq_loglik[n] = total
    return status


def viterbi(
    const double[:, ::1] loglik,
    const Py_ssize_t[::1] offsets,
    const double[::1] log_startprob,
    const double[:, ::1] log_transmat_t,
    Py_ssize_t[::1] path,
    double[::1] seq_logprob,
    double[:, ::1] delta,
    Py_ssize_t[:, ::1] backptr,
):
    """Most likely state path of each sequence, in log space.

    ``log_transmat_t`` is the transposed log transition matrix (row j holds log a[:, j]);
    ``-inf`` entries are forbidden transitions. ``delta`` (n_frames, K) and ``backptr``
    (n_frames, K) are scratch. Writes ``path`` (n_frames,) and ``seq_logprob``
    (n_sequences,). Returns -1, or the first sequence with no path of non-zero probability.
    """
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t K = loglik.shape[1]
    cdef Py_ssize_t n, t, i, j, t0, t1, best_i, status = -1
    cdef double best, v
    if (delta.shape[0] < loglik.shape[0] or delta.shape[1] != K or backptr.shape[0] < loglik.shape[0]
            or backptr.shape[1] != K or path.shape[0] != loglik.shape[0]
            or log_startprob.shape[0] != K or log_transmat_t.shape[0] != K
            or log_transmat_t.shape[1] != K or seq_logprob.shape[0] != n_seq
            or offsets[n_seq] != loglik.shape[0]):
        raise ValueError("viterbi: inconsistent array shapes")
    with nogil:
        for n in range(n_seq):
            t0 = offsets[n]
            t1 = offsets[n + 1]
            if t1 <= t0:
                status = n
                break
            for j in range(K):
                delta[t0, j] = log_startprob[j] + loglik[t0, j]
                backptr[t0, j] = 0
            for t in range(t0 + 1, t1):
                for j in range(K):
                    best = -INFINITY
                    best_i = 0
                    for i in range(K):
                        v = delta[t - 1, i] + log_transmat_t[j, i]
                        if v > best:
                            best = v
                            best_i = i
                    delta[t, j] = best + loglik[t, j]
                    backptr[t, j] = best_i
            best = -INFINITY
            best_i = 0
            for j in range(K):
                if delta[t1 - 1, j] > best:
                    best = delta[t1 - 1, j]
                    best_i = j
            if best == -INFINITY:
                status = n
                break
            seq_logprob[n] = best
            path[t1 - 1] = best_i
            for t in range(t1 - 1, t0, -1):
                path[t - 1] = backptr[t, path[t]]
    return status


def sample_states(
    const double[::1] startprob_cdf,
    const double[:, ::1] transmat_cdf,
    const double[::1] uniforms,
    Py_ssize_t first_state,
    Py_ssize_t[::1] states,
):
    """Draw a Markov chain: states[0] from ``startprob_cdf`` (or ``first_state`` when >= 0),
    then states[t] from row states[t-1] of ``transmat_cdf``, by inverting the CDFs at
    ``uniforms`` (one per step, in [0, 1))."""
    cdef Py_ssize_t T = states.shape[0]
    cdef Py_ssize_t K = startprob_cdf.shape[0]
    cdef Py_ssize_t t, j, s
    if uniforms.shape[0] < T:
        raise ValueError("sample_states: need one uniform per step")
    with nogil:
        for t in range(T):
            if t == 0 and first_state >= 0:
                states[0] = first_state
                continue
            s = K - 1
            for j in range(K):
                if (startprob_cdf[j] if t == 0 else transmat_cdf[states[t - 1], j]) > uniforms[t]:
                    s = j
                    break
            states[t] = s
    return None


cdef double[::1] _empty(Py_ssize_t n):
    from numpy import empty
    return empty(n)


# ---------------------------------------------------------------------------- sparse topologies
# Networks built from left-to-right models (word strings, word loops) have a few transitions
# per state: these kernels take the transitions as an edge list (src[e] -> dst[e] with
# probability prob[e], or log probability) and cost O(n_edges) per frame instead of O(K^2).

cdef bint _edges_ok(Py_ssize_t K, const Py_ssize_t[::1] src, const Py_ssize_t[::1] dst,
                    Py_ssize_t n_prob) noexcept nogil:
    cdef Py_ssize_t e, E = src.shape[0]
    if dst.shape[0] != E or n_prob != E:
        return False
    for e in range(E):
        if src[e] < 0 or src[e] >= K or dst[e] < 0 or dst[e] >= K:
            return False
    return True


def forward_backward_edges(
    const double[:, ::1] loglik,
    const Py_ssize_t[::1] offsets,
    const double[::1] startprob,
    const Py_ssize_t[::1] src,
    const Py_ssize_t[::1] dst,
    const double[::1] prob,
    double[:, ::1] post,
    double[::1] xi_edges,
    double[::1] seq_loglik,
    double[:, ::1] frame_prob,
    double[::1] scale,
    bint want_xi=True,
):
    """Forward-backward of many sequences over a sparse transition structure.

    The same scaled recursions as :func:`forward_backward` (per-frame maximum over the states
    the prediction reaches), with the transitions given as edges ``src[e] -> dst[e]`` of
    probability ``prob[e]`` (repeated pairs add up). ``xi_edges`` (n_edges,) is overwritten
    with the expected number of times each edge is taken, summed over frames and sequences.

    Returns -1, or the index of the first sequence whose probability is zero.
    """
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t K = loglik.shape[1]
    cdef Py_ssize_t E = src.shape[0]
    cdef Py_ssize_t n, t, t0, t1, i, j, e, status = -1
    cdef double m, c, s, total
    if (post.shape[0] != loglik.shape[0] or post.shape[1] != K
            or frame_prob.shape[0] < loglik.shape[0] or frame_prob.shape[1] != K
            or scale.shape[0] < loglik.shape[0] or startprob.shape[0] != K
            or xi_edges.shape[0] != E or seq_loglik.shape[0] != n_seq
            or offsets[n_seq] != loglik.shape[0] or not _edges_ok(K, src, dst, prob.shape[0])):
        raise ValueError("forward_backward_edges: inconsistent array shapes")
    cdef double[::1] beta = _empty(K)
    cdef double[::1] u = _empty(K)
    with nogil:
        for e in range(E):
            xi_edges[e] = 0.0
        for n in range(n_seq):
            t0 = offsets[n]
            t1 = offsets[n + 1]
            if t1 <= t0:
                status = n
                break
            total = 0.0
            # ---- forward: alpha_hat in post[t] ----
            for t in range(t0, t1):
                if t == t0:
                    for j in range(K):
                        post[t, j] = startprob[j]
                else:
                    for j in range(K):
                        post[t, j] = 0.0
                    for e in range(E):
                        post[t, dst[e]] += post[t - 1, src[e]] * prob[e]
                if _weigh_frame(&post[t, 0], &loglik[t, 0], &frame_prob[t, 0], K, &c, &m):
                    status = n
                    break
                scale[t] = c
                total += log(c) + m
            if status >= 0:
                break
            seq_loglik[n] = total
            # ---- backward, turning alpha_hat[t] into gamma[t] ----
            for t in range(t1 - 1, t0 - 1, -1):
                if t == t1 - 1:
                    for i in range(K):
                        beta[i] = 1.0
                else:
                    for i in range(K):
                        beta[i] = 0.0
                    for e in range(E):
                        beta[src[e]] += prob[e] * u[dst[e]]
                        if want_xi:
                            xi_edges[e] += post[t, src[e]] * prob[e] * u[dst[e]]
                _to_posterior(&post[t, 0], &beta[0], K)
                if t > t0:
                    for j in range(K):
                        u[j] = frame_prob[t, j] * beta[j] / scale[t]
    return status


def viterbi_edges(
    const double[:, ::1] loglik,
    const Py_ssize_t[::1] offsets,
    const double[::1] log_startprob,
    const Py_ssize_t[::1] src,
    const Py_ssize_t[::1] dst,
    const double[::1] log_prob,
    Py_ssize_t[::1] path,
    double[::1] seq_logprob,
    double[:, ::1] delta,
    Py_ssize_t[:, ::1] backptr,
):
    """Most likely state path of each sequence over a sparse transition structure (log
    space); as :func:`viterbi`, with the transitions as edges ``src[e] -> dst[e]`` of log
    probability ``log_prob[e]``. Ties go to the edge listed first.

    Returns -1, or the first sequence with no path of non-zero probability.
    """
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t K = loglik.shape[1]
    cdef Py_ssize_t E = src.shape[0]
    cdef Py_ssize_t n, t, t0, t1, j, e, best_i, status = -1
    cdef double best, v
    if (delta.shape[0] < loglik.shape[0] or delta.shape[1] != K
            or backptr.shape[0] < loglik.shape[0] or backptr.shape[1] != K
            or path.shape[0] != loglik.shape[0] or log_startprob.shape[0] != K
            or seq_logprob.shape[0] != n_seq or offsets[n_seq] != loglik.shape[0]
            or not _edges_ok(K, src, dst, log_prob.shape[0])):
        raise ValueError("viterbi_edges: inconsistent array shapes")
    with nogil:
        for n in range(n_seq):
            t0 = offsets[n]
            t1 = offsets[n + 1]
            if t1 <= t0:
                status = n
                break
            for j in range(K):
                delta[t0, j] = log_startprob[j] + loglik[t0, j]
                backptr[t0, j] = 0
            for t in range(t0 + 1, t1):
                for j in range(K):
                    delta[t, j] = -INFINITY
                    backptr[t, j] = 0
                for e in range(E):
                    v = delta[t - 1, src[e]] + log_prob[e]
                    if v > delta[t, dst[e]]:
                        delta[t, dst[e]] = v
                        backptr[t, dst[e]] = src[e]
                for j in range(K):
                    delta[t, j] += loglik[t, j]
            best = -INFINITY
            best_i = 0
            for j in range(K):
                if delta[t1 - 1, j] > best:
                    best = delta[t1 - 1, j]
                    best_i = j
            if best == -INFINITY:
                status = n
                break
            seq_logprob[n] = best
            path[t1 - 1] = best_i
            for t in range(t1 - 1, t0, -1):
                path[t - 1] = backptr[t, path[t]]
    return status


def forward_loglik_log_edges(
    const double[:, ::1] loglik,
    const Py_ssize_t[::1] offsets,
    const double[::1] log_startprob,
    const Py_ssize_t[::1] src,
    const Py_ssize_t[::1] dst,
    const double[::1] log_prob,
    double[::1] seq_loglik,
    double[:, ::1] work,
):
    """Log-likelihood of each sequence by the forward pass in log space, over a sparse
    transition structure (edges as in :func:`viterbi_edges`).

    The scaled kernels lose a path whose probability falls below about 1e-308 of the best
    one within a frame (it underflows to zero); here every path keeps its exact share, so a
    sequence fails only when no path has non-zero probability. It costs about twice the
    scaled pass (an exp and a log per edge and frame): use it where the scaled pass reports
    a zero. ``work`` is (n_frames, K) scratch (the log forward variables).

    Returns -1, or the first sequence with no path of non-zero probability.
    """
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t K = loglik.shape[1]
    cdef Py_ssize_t E = src.shape[0]
    cdef Py_ssize_t n, t, t0, t1, j, e, status = -1
    cdef double v, m, s
    if (work.shape[0] < loglik.shape[0] or work.shape[1] != K
            or log_startprob.shape[0] != K or seq_loglik.shape[0] != n_seq
            or offsets[n_seq] != loglik.shape[0]
            or not _edges_ok(K, src, dst, log_prob.shape[0])):
        raise ValueError("forward_loglik_log_edges: inconsistent array shapes")
    cdef double[::1] acc = _empty(K)
    with nogil:
        for n in range(n_seq):
            t0 = offsets[n]
            t1 = offsets[n + 1]
            if t1 <= t0:
                status = n
                break
            for j in range(K):
                work[t0, j] = log_startprob[j] + loglik[t0, j]
            for t in range(t0 + 1, t1):
                # log-sum-exp over the incoming edges of each state: the maximum, then the sum
                for j in range(K):
                    work[t, j] = -INFINITY
                    acc[j] = 0.0
                for e in range(E):
                    v = work[t - 1, src[e]] + log_prob[e]
                    if v > work[t, dst[e]]:
                        work[t, dst[e]] = v
                for e in range(E):
                    m = work[t, dst[e]]
                    if m > -INFINITY:
                        acc[dst[e]] += exp(work[t - 1, src[e]] + log_prob[e] - m)
                for j in range(K):
                    if work[t, j] > -INFINITY:
                        work[t, j] += log(acc[j]) + loglik[t, j]
            m = -INFINITY
            for j in range(K):
                if work[t1 - 1, j] > m:
                    m = work[t1 - 1, j]
            if m == -INFINITY:
                status = n
                break
            s = 0.0
            for j in range(K):
                s += exp(work[t1 - 1, j] - m)
            seq_loglik[n] = m + log(s)
    return status
