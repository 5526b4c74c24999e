# cython: language_level=3
"""Hidden Markov model kernels: scaled forward-backward, Viterbi, state sampling.

Every kernel works on many sequences at once: frames of all sequences are concatenated
row-wise and ``offsets`` (length ``n_sequences + 1``) marks where each one starts and ends.
Emission probabilities come in as log-likelihoods, shape (n_frames, n_states); the kernels do
not know what produced them. Kernels hold no model policy (no floors, priors or defaults).

Conventions (every ``def`` below; the status codes and the argument checks are shared by
all kernel modules through ``_checks.pxi``)
-----------------------------------------------------------------------------------------
* Arguments come in two groups, in this order: IN (read only, ``const`` memoryviews), then
  OUT (overwritten; the caller allocates them, so that it can reuse them across iterations).
  Options (``want_xi``) are keyword-only and come last. All arrays are C-contiguous: numpy
  arrays of float64, or of intp for offsets, edges, paths. No caller passes work space: each
  kernel allocates its own scratch (numpy buffers taken before ``nogil``, released when the
  call returns, on every path).
* Status: every kernel returns an int: STATUS_OK (-1) when all went well, or the index
  (>= 0) of the first sequence that has probability zero under the model (no path of
  non-zero probability; an empty sequence counts as one). That is the caller's data, not a
  programming error: the Python layer turns it into a ValueError naming the sequence.
  (``sample_states`` cannot fail on valid arguments and returns STATUS_OK.)
* Argument errors raise ``ValueError("<kernel>: ...")`` before any output is written and
  before the GIL is released: wrong shapes, offsets that do not start at 0, decrease or do
  not end at n_frames, edge indices outside [0, n_states), a first state outside
  [0, n_states), ``None`` for a required array, an output array sharing memory with an index
  array (offsets, src, dst). Every index the compiled loops use is derived from arguments
  checked there, in O(n_sequences + n_edges) time, so no mistake in the calling code can
  make a kernel read or write out of bounds (the module is compiled with boundscheck and
  wraparound off).
"""

import numpy as np

from libc.math cimport exp, frexp, ldexp, log, INFINITY

include "_checks.pxi"


cdef int _check_states(str kernel, Py_ssize_t K) except -1:
    if K < 1:
        raise ValueError(f"{kernel}: loglik must have at least one state (column), got {K}")
    return 0


cdef int _check_offsets_frames(str kernel, const Py_ssize_t[::1] offsets,
                               Py_ssize_t n_frames) except -1:
    return _check_offsets(kernel, "offsets", offsets, n_frames, "the number of frames",
                          "sequences")


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


cdef inline double _to_posterior(double* alpha, const double* beta, Py_ssize_t K) noexcept nogil:
    """gamma = alpha * beta, normalised (in place in alpha); returns the normaliser."""
    cdef Py_ssize_t i
    cdef double s = 0.0
    for i in range(K):
        alpha[i] *= beta[i]
        s += alpha[i]
    if s > 0.0:
        for i in range(K):
            alpha[i] /= s
    return s


# ------------------------------------------------------------------------- lockstep blocks
# The forward and backward recursions of many sequences run in lockstep: the sequences of a
# call are ordered by length (longest first, ties in the caller's order) and taken in blocks
# of up to LOCKSTEP_BLOCK; frame tau of the block's active sequences (those longer than tau,
# a prefix of the block) is one (n_active x K) by (K x K) matrix product, done by dgemm when
# K >= BLAS_MIN_STATES and by a plain loop below (where a BLAS call costs more than the
# product). A block of one sequence is the single-sequence path (dgemm with one column,
# that is a matrix-vector product): one rule for every case, no switch to tune. The emission
# weights of all the block's active sequences at a frame are exponentiated in one vector call
# (_vmath.h). The expected transition counts sum_t alpha_hat[t] u[t+1]^T are accumulated by
# stacking the rows of XI_STACK frame-sequence pairs and multiplying the two stacks (one
# K x XI_STACK x K dgemm) instead of an outer product per frame.
#
# Every sequence's numbers depend on that sequence alone (the rows of a matrix product do not
# mix), on the block size and on nothing else: results do not depend on how the caller splits
# its work into threads.

from scipy.linalg.cython_blas cimport dgemm

cdef extern from "_vmath.h" nogil:
    void emx_exp_inplace(double* x, Py_ssize_t n)

cdef enum:
    LOCKSTEP_BLOCK = 64
    BLAS_MIN_STATES = 8
    XI_STACK = 256

# Exposed for tests and documentation.
lockstep_block = LOCKSTEP_BLOCK
#: forward_backward's status when its outputs needed the log-space path but the weights had
#: overwritten loglik (``weights=loglik``): call again with loglik intact.
STATUS_NEEDS_LOGLIK = -3
blas_min_states = BLAS_MIN_STATES


# The exponents of the forward pass are at most 0. The skipped entries (unreachable states,
# and exponents below _EXP_ZERO_BELOW, whose exp is exactly 0 in double precision) are given
# _EXP_SKIP instead, which exp maps above 1, and set to 0 after the exp.
cdef double _EXP_SKIP = 1.0
cdef double _EXP_ZERO_BELOW = -746.0
# The range the backward messages u are kept in (see _u_row).
cdef double _U_MAX = 2.0 ** 600
cdef double _U_MIN = 2.0 ** -600
# The range a frame's posterior normaliser s = alpha_hat . beta_hat must stay in (1 for the
# exact beta_hat; any scale once rescaled): outside it the call is done again in log space.
cdef double _S_MAX = 2.0 ** 900
cdef double _S_MIN = 2.0 ** -900


cdef struct _Trans:
    # The transition matrix as the lockstep kernels use it: dense (K x K, row-major), or,
    # when n_band > 0, only its diagonals: band k holds a[i, i + off[k]] in w[k * K + i]
    # (0 where i + off[k] falls outside [0, K)).
    const double* A
    # A transposed (row-major), for the backward products (dense, K >= BLAS_MIN_STATES) or
    # NULL: dgemm then runs the same no-transpose product as forward, which OpenBLAS does in
    # its small-matrix kernel, where the transposed product packs its operands in a buffer
    # taken under a lock that concurrent threads wait on.
    const double* At
    Py_ssize_t K
    Py_ssize_t n_band
    const Py_ssize_t* off
    const double* w


cdef void _times_transmat(const double* rows, Py_ssize_t n, const _Trans* tr,
                          double* out, bint transposed) noexcept nogil:
    """out (n x K) = rows (n x K) @ A, or rows @ A^T when ``transposed`` (all row-major), for
    a dense A (the banded blocks do their own products)."""
    cdef Py_ssize_t K = tr.K
    cdef const double* A = tr.A
    cdef int m = <int>K, nn = <int>n, ld = <int>K
    cdef double one = 1.0, zero = 0.0
    cdef Py_ssize_t r, i, j
    cdef double s, a
    if n == 0:
        return
    if K >= BLAS_MIN_STATES:
        # Column-major views: out^T = A^T rows^T (A's row-major storage is A^T column-major),
        # or out^T = A rows^T.
        if transposed and tr.At != NULL:
            dgemm("N", "N", &m, &nn, &m, &one, <double*>tr.At, &ld, <double*>rows, &ld,
                  &zero, out, &ld)
        elif transposed:
            dgemm("T", "N", &m, &nn, &m, &one, <double*>A, &ld, <double*>rows, &ld, &zero,
                  out, &ld)
        else:
            dgemm("N", "N", &m, &nn, &m, &one, <double*>A, &ld, <double*>rows, &ld, &zero,
                  out, &ld)
        return
    for r in range(n):
        if transposed:
            for i in range(K):
                s = 0.0
                for j in range(K):
                    s += A[i * K + j] * rows[r * K + j]
                out[r * K + i] = s
        else:
            for j in range(K):
                out[r * K + j] = 0.0
            for i in range(K):
                a = rows[r * K + i]
                for j in range(K):
                    out[r * K + j] += a * A[i * K + j]


cdef void _xi_flush(const double* alpha_rows, const double* u_rows, Py_ssize_t n, Py_ssize_t K,
                    double* xi_raw) noexcept nogil:
    """xi_raw (K x K) += alpha_rows^T u_rows over n stacked rows."""
    cdef int m = <int>K, nn = <int>n, ld = <int>K
    cdef double one = 1.0
    cdef Py_ssize_t r, i, j
    cdef double a
    if n == 0:
        return
    if K >= BLAS_MIN_STATES:
        # Column-major: xi^T (K x K) += u_rows^T-view (K x n) times (alpha_rows^T-view)^T.
        dgemm("N", "T", &m, &m, &nn, &one, <double*>u_rows, &ld, <double*>alpha_rows, &ld,
              &one, xi_raw, &ld)
        return
    for r in range(n):
        for i in range(K):
            a = alpha_rows[r * K + i]
            for j in range(K):
                xi_raw[i * K + j] += a * u_rows[r * K + j]


cdef inline double _reachable_max(const double* row, const double* p, Py_ssize_t K) noexcept nogil:
    """max of row[j] over the j with p[j] > 0 (-inf when there are none). Four running
    maxima: the loads overlap instead of waiting on one chain (a maximum does not depend on
    the order it is taken in)."""
    cdef double m0 = -INFINITY, m1 = -INFINITY, m2 = -INFINITY, m3 = -INFINITY, v
    cdef Py_ssize_t j = 0
    while j + 4 <= K:
        v = row[j] if p[j] > 0.0 else -INFINITY
        m0 = v if v > m0 else m0
        v = row[j + 1] if p[j + 1] > 0.0 else -INFINITY
        m1 = v if v > m1 else m1
        v = row[j + 2] if p[j + 2] > 0.0 else -INFINITY
        m2 = v if v > m2 else m2
        v = row[j + 3] if p[j + 3] > 0.0 else -INFINITY
        m3 = v if v > m3 else m3
        j += 4
    while j < K:
        v = row[j] if p[j] > 0.0 else -INFINITY
        m0 = v if v > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return m2 if m2 > m0 else m0


cdef void _forward_block(
    const double* ll, Py_ssize_t K, const Py_ssize_t* starts, const Py_ssize_t* lens,
    Py_ssize_t nb, const double* startprob, const _Trans* tr,
    double* post, double* frame_prob, double* scale,
    double* cur, double* pred, double* total, signed char* failed,
) noexcept nogil:
    """Scaled forward pass of nb sequences in lockstep: sequence b has frames
    [starts[b], starts[b] + lens[b]), lens non-increasing, lens[nb - 1] >= 1.

    Per frame and sequence (as for one sequence alone): pred = alpha_hat[t-1] A (startprob
    at the first frame); b[j] = exp(loglik[t, j] - m) with m the maximum of loglik[t] over
    the states pred reaches, b = 0 exactly on the others (a huge log-likelihood in an
    unreachable state can neither overflow nor underflow the reachable ones);
    alpha_hat[t] = pred * b / c with c its sum; log P = sum_t log(c) + m.
    Writes alpha_hat to post (and b, c to frame_prob, scale) unless they are NULL; total[b]
    receives log P; failed[b] is set to 1 when the sequence has probability zero (its other
    outputs are then meaningless). cur, pred: scratch of nb x K.
    """
    cdef Py_ssize_t tau, b, j, t, nact = nb, L = lens[0]
    cdef double m, c, inv, x
    cdef double* p
    cdef double* e
    cdef const double* row
    for b in range(nb):
        total[b] = 0.0
        failed[b] = 0
    for tau in range(L):
        while lens[nact - 1] <= tau:
            nact -= 1
        if tau == 0:
            for b in range(nact):
                for j in range(K):
                    pred[b * K + j] = startprob[j]
        else:
            _times_transmat(cur, nact, tr, pred, False)
        # exponents (loglik - m over the reachable states, -inf elsewhere), in cur
        for b in range(nact):
            row = ll + (starts[b] + tau) * K
            p = pred + b * K
            e = cur + b * K
            m = _reachable_max(row, p, K)
            total[b] += m
            if m == -INFINITY:
                failed[b] = 1
                for j in range(K):
                    e[j] = _EXP_SKIP
                continue
            for j in range(K):
                x = row[j] - m
                # (bitwise: no branch; NaN is kept, to fail the frame as before)
                e[j] = x if (p[j] > 0.0) & (not x < _EXP_ZERO_BELOW) else _EXP_SKIP
        # exp(x) for every x <= 0, and e for the skipped entries: the vector exp's slow path
        # (a scalar call per lane) is taken only for arguments out of its range, which the
        # unreachable states (-inf) and the underflowing ones would otherwise be.
        emx_exp_inplace(cur, nact * K)
        for b in range(nact):
            t = starts[b] + tau
            p = pred + b * K
            e = cur + b * K
            if frame_prob != NULL:  # the skipped entries to 0, kept as the weights too
                for j in range(K):
                    x = 0.0 if e[j] > 1.0 else e[j]
                    e[j] = x
                    frame_prob[t * K + j] = x
            else:
                for j in range(K):
                    e[j] = 0.0 if e[j] > 1.0 else e[j]
            c = _mul_sum(p, e, K)
            if not c > 0.0:
                failed[b] = 1
                for j in range(K):
                    e[j] = 0.0
                continue
            inv = 1.0 / c
            if inv < INFINITY:
                for j in range(K):
                    e[j] = p[j] * inv
            else:  # c below 1/DBL_MAX (subnormal): its reciprocal overflows, divide
                for j in range(K):
                    e[j] = p[j] / c
            if post != NULL:
                for j in range(K):
                    post[t * K + j] = e[j]
                scale[t] = c
            total[b] += log(c)


cdef void _backward_block(
    Py_ssize_t K, const Py_ssize_t* starts, const Py_ssize_t* lens, Py_ssize_t nb,
    const _Trans* tr, double* post, const double* frame_prob, const double* scale,
    double* u, double* u_new, double* beta, double* stack_a, double* stack_u,
    double* xi_raw, signed char* rescaled, bint want_xi, bint* trouble,
) noexcept nogil:
    """Backward pass of the block after :func:`_forward_block` (dense transmat): post
    (alpha_hat) becomes the posteriors gamma; xi_raw += sum_t alpha_hat[t] u[t+1]^T when
    want_xi.

    u[t] = b[t] * beta_hat[t] / c[t]; beta_hat[t-1] = A u[t] (beta_hat = 1 at a sequence's
    last frame); gamma[t] = alpha_hat[t] * beta_hat[t], normalised. When u leaves the range
    of :func:`_u_row`, it is brought back by a power of two and the sequence's beta_hat has
    an arbitrary scale from then on: its xi terms are divided by s[t] = alpha_hat[t] .
    beta_hat[t] (1 for the exact beta_hat).
    u, u_new, beta: scratch of nb x K; stack_a, stack_u: XI_STACK x K; rescaled: nb flags.
    """
    cdef Py_ssize_t tau, b, j, t, n_stack = 0, L = lens[0]
    cdef Py_ssize_t nact = 0, nnext
    cdef double* al
    cdef double* be
    cdef double* su
    cdef double* swap
    for b in range(nb):
        rescaled[b] = 0
    for tau in range(L - 1, -1, -1):
        nnext = nact  # sequences longer than tau + 1
        while nact < nb and lens[nact] > tau:
            nact += 1
        _times_transmat(u, nnext, tr, beta, True)
        for b in range(nnext, nact):
            for j in range(K):
                beta[b * K + j] = 1.0
        for b in range(nact):
            t = starts[b] + tau
            al = post + t * K
            be = beta + b * K
            if want_xi and b < nnext and rescaled[b]:
                # beta_hat known up to a factor: this frame's terms, divided by s[t], here
                _xi_divided(al, be, u + b * K, tr.A, K, xi_raw)
            elif want_xi and b < nnext:  # alpha_hat[t] and u[t+1] onto the stacks
                su = stack_u + n_stack * K
                for j in range(K):
                    stack_a[n_stack * K + j] = al[j]
                    su[j] = u[b * K + j]
                n_stack += 1
                if n_stack == XI_STACK:
                    _xi_flush(stack_a, stack_u, n_stack, K, xi_raw)
                    n_stack = 0
            _posterior_and_message(al, be, _mul_sum(al, be, K), 0, K, tau > 0,
                                   u_new + b * K, frame_prob + t * K, scale[t],
                                   &rescaled[b], trouble)
        swap = u
        u = u_new
        u_new = swap
    if want_xi:
        _xi_flush(stack_a, stack_u, n_stack, K, xi_raw)


cdef void _xi_divided(const double* al, const double* be, const double* ub, const double* A,
                      Py_ssize_t K, double* xi_raw) noexcept nogil:
    """xi_raw[i, j] += alpha_hat[i] u[j] / s for the transitions (a[i, j] > 0), with
    s = alpha_hat . beta_hat: one frame's expected transition counts (before the factor
    a[i, j]) when beta_hat has an arbitrary scale (:func:`_u_row`). Each product is formed
    before the division: s can be far below the smallest double's reciprocal."""
    cdef Py_ssize_t i, j
    cdef double s = 0.0, a
    for i in range(K):
        s += al[i] * be[i]
    if not s > 0.0:
        return
    for i in range(K):
        a = al[i]
        if a != 0.0:
            for j in range(K):
                if A[i * K + j] > 0.0:
                    xi_raw[i * K + j] += (a * ub[j]) / s


cdef inline void _posterior_and_message(
    double* al, const double* be, double s, Py_ssize_t lo, Py_ssize_t hi, bint message,
    double* u, const double* fp, double scale_t, signed char* rescaled, bint* trouble,
) noexcept nogil:
    """The end of a backward step on states [lo, hi): al holds alpha_hat * beta_hat, s its
    sum; al becomes the posteriors (al / s), and (``message``) u the message to the
    previous frame (:func:`_u_row`). Flags: rescaled (u was rescaled), trouble (s out of
    [_S_MIN, _S_MAX] or u out of reach: the caller's call goes to the log-space path)."""
    cdef Py_ssize_t i
    cdef double inv
    cdef int r
    if not (s > _S_MIN and s < _S_MAX):
        trouble[0] = True
    if s > 0.0:
        inv = 1.0 / s
        for i in range(lo, hi):
            al[i] *= inv
    if message:
        r = _u_row(u, fp, be, 1.0 / scale_t, lo, hi)
        if r == 1:
            rescaled[0] = 1
        elif r == 2:
            trouble[0] = True


cdef inline double _max4(const double* x, Py_ssize_t n) noexcept nogil:
    """max(0, x[0], ..., x[n-1]) ignoring NaN, in four running maxima (no chain of
    dependent comparisons)."""
    cdef double m0 = 0.0, m1 = 0.0, m2 = 0.0, m3 = 0.0
    cdef Py_ssize_t j = 0
    while j + 4 <= n:
        m0 = x[j] if x[j] > m0 else m0
        m1 = x[j + 1] if x[j + 1] > m1 else m1
        m2 = x[j + 2] if x[j + 2] > m2 else m2
        m3 = x[j + 3] if x[j + 3] > m3 else m3
        j += 4
    while j < n:
        m0 = x[j] if x[j] > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return m2 if m2 > m0 else m0


cdef inline int _u_row(double* u, const double* fp, const double* be, double inv,
                       Py_ssize_t lo, Py_ssize_t hi, bint divide=False) noexcept nogil:
    """u[j] = fp[j] * be[j] * inv for j in [lo, hi) (the backward message of a frame: emission
    weight times beta_hat over the frame's scale; fp[j] * be[j] / inv when ``divide``, as the
    edge-list kernel has always done it). When inv is infinite (a subnormal frame scale: 0
    times inv would be NaN) or the largest u is not within
    [2^-600, 2^600] (beta_hat grows without bound where the forward pass was surprised, and
    would overflow to inf, then NaN), u is instead fp * be times the power of two that puts
    its maximum in [0.5, 1), and 1 is returned: the caller must then treat beta_hat as
    known up to a factor (exact: a power of two). 0: u as computed; 2: not even fp * be is
    finite and positive somewhere (the caller redoes the call in log space)."""
    cdef Py_ssize_t j
    cdef double v, mx
    cdef int e
    if divide:
        for j in range(lo, hi):
            u[j] = fp[j] * be[j] / inv
    else:
        for j in range(lo, hi):
            u[j] = fp[j] * be[j] * inv
    mx = _max4(u + lo, hi - lo)
    if mx <= _U_MAX and (mx >= _U_MIN or mx == 0.0) and (divide or inv < INFINITY):
        return 0
    for j in range(lo, hi):
        u[j] = fp[j] * be[j]
    mx = _max4(u + lo, hi - lo)
    if not (mx > 0.0 and mx < INFINITY):
        return 2
    frexp(mx, &e)
    v = ldexp(1.0, -e)
    for j in range(lo, hi):
        u[j] *= v
    return 1


# ---------------------------------------------------------------------------- banded, windowed
# With a banded transmat (tr.n_band > 0: left-to-right and similar topologies) most states'
# forward probabilities are exactly 0 at any frame: those not reached yet and those left far
# behind (their probability underflows to 0 and nothing flows back into them). The banded
# block functions below keep, per sequence and frame, the window [lo, hi) of states the
# prediction alpha_hat[t-1] A can be non-zero on (from the first to the last non-zero state of
# alpha_hat[t-1], widened by the band's offsets) and do every per-state step on that window
# only. Everything outside is exactly 0 in the full computation too (the emission weights are
# 0 where the prediction is, the posteriors where alpha is), and the sums keep the lanes of
# _mul_sum, so the windowed results are the full ones.

cdef inline double _mul_sum_win(double* a, const double* b, Py_ssize_t lo, Py_ssize_t n,
                                Py_ssize_t K) noexcept nogil:
    """:func:`_mul_sum` of the states [lo, lo + n) of a K-state row, a and b pointing at state
    lo, when a is 0 on the other states: the same four partial sums (state j in sum j % 4,
    the states after the last multiple of 4 in sum 0) in the same order."""
    cdef double s[4]
    cdef double v
    cdef Py_ssize_t j = lo, hi = lo + n, K4 = K - K % 4, body_end
    s[0] = 0.0
    s[1] = 0.0
    s[2] = 0.0
    s[3] = 0.0
    while j < hi and j < K4 and (j & 3) != 0:  # up to a multiple of 4
        v = a[j - lo] * b[j - lo]
        a[j - lo] = v
        s[j & 3] += v
        j += 1
    body_end = hi if hi < K4 else K4
    while j + 4 <= body_end:
        a[j - lo] *= b[j - lo]
        a[j + 1 - lo] *= b[j + 1 - lo]
        a[j + 2 - lo] *= b[j + 2 - lo]
        a[j + 3 - lo] *= b[j + 3 - lo]
        s[0] += a[j - lo]
        s[1] += a[j + 1 - lo]
        s[2] += a[j + 2 - lo]
        s[3] += a[j + 3 - lo]
        j += 4
    while j < hi:
        v = a[j - lo] * b[j - lo]
        a[j - lo] = v
        s[(j & 3) if j < K4 else 0] += v
        j += 1
    return (s[0] + s[1]) + (s[2] + s[3])


cdef inline double _mul_sum(double* a, const double* b, Py_ssize_t K) noexcept nogil:
    """a[j] *= b[j] for every j; returns the sum of the products (four partial sums, so the
    additions do not wait on one chain): :func:`_mul_sum_win` of the whole row."""
    return _mul_sum_win(a, b, 0, K, K)


cdef inline void _band_range(Py_ssize_t d, Py_ssize_t src_lo, Py_ssize_t src_hi,
                             Py_ssize_t dst_lo, Py_ssize_t dst_hi, Py_ssize_t* i0,
                             Py_ssize_t* i1) noexcept nogil:
    """The i in [src_lo, src_hi) with i + d in [dst_lo, dst_hi), as [i0[0], i1[0])."""
    i0[0] = src_lo if src_lo > dst_lo - d else dst_lo - d
    i1[0] = src_hi if src_hi < dst_hi - d else dst_hi - d


cdef void _forward_band_block(
    const double* ll, Py_ssize_t K, const Py_ssize_t* starts, const Py_ssize_t* lens,
    Py_ssize_t nb, const double* startprob, const _Trans* tr,
    double* post, double* frame_prob, double* scale, Py_ssize_t* win,
    double* cur, double* pred, double* packed, Py_ssize_t* iscratch,
    double* total, signed char* failed,
) noexcept nogil:
    """:func:`_forward_block` for a banded transmat, on the windows (see above). The rows of
    post and frame_prob are written whole (0 outside the window); the window of frame t is
    stored in win[2 t], win[2 t + 1] (when win is not NULL) for :func:`_backward_band_block`.
    cur, pred, packed: scratch of nb x K; iscratch: of 5 nb."""
    cdef Py_ssize_t tau, b, j, k, d, t, i, i0, i1, lo, hi, alo, ahi, n_packed
    cdef Py_ssize_t nact = nb, L = lens[0]
    cdef Py_ssize_t dmin = tr.off[0], dmax = tr.off[tr.n_band - 1]
    cdef Py_ssize_t s_lo = 0, s_hi = K
    cdef Py_ssize_t* a_lo = iscratch
    cdef Py_ssize_t* a_hi = iscratch + nb
    cdef Py_ssize_t* p_lo = iscratch + 2 * nb
    cdef Py_ssize_t* p_hi = iscratch + 3 * nb
    cdef Py_ssize_t* pos = iscratch + 4 * nb
    cdef double m, c, inv, x
    cdef double* p
    cdef double* a
    cdef double* e
    cdef const double* wk
    cdef const double* row
    while s_lo < K and not startprob[s_lo] > 0.0:
        s_lo += 1
    while s_hi > s_lo and not startprob[s_hi - 1] > 0.0:
        s_hi -= 1
    for b in range(nb):
        total[b] = 0.0
        failed[b] = 0
    for tau in range(L):
        while lens[nact - 1] <= tau:
            nact -= 1
        n_packed = 0
        for b in range(nact):
            p = pred + b * K
            if tau == 0:
                lo = s_lo
                hi = s_hi
                for j in range(lo, hi):
                    p[j] = startprob[j]
            else:
                a = cur + b * K
                alo = a_lo[b]
                ahi = a_hi[b]
                if alo >= ahi:
                    lo = 0
                    hi = 0
                else:
                    lo = alo + dmin if alo + dmin > 0 else 0
                    hi = ahi + dmax if ahi + dmax < K else K
                for j in range(lo, hi):
                    p[j] = 0.0
                for k in range(tr.n_band):  # p[i + d] += alpha_hat[i] a[i, i + d]
                    d = tr.off[k]
                    wk = tr.w + k * K
                    _band_range(d, alo, ahi, lo, hi, &i0, &i1)
                    for i in range(i0, i1):
                        p[i + d] += a[i] * wk[i]
            p_lo[b] = lo
            p_hi[b] = hi
            pos[b] = n_packed
            row = ll + (starts[b] + tau) * K
            m = _reachable_max(row + lo, p + lo, hi - lo)
            total[b] += m
            if m == -INFINITY:
                failed[b] = 1
                for j in range(lo, hi):
                    packed[n_packed + j - lo] = _EXP_SKIP
            else:
                for j in range(lo, hi):
                    x = row[j] - m
                    packed[n_packed + j - lo] = (
                        x if (p[j] > 0.0) & (not x < _EXP_ZERO_BELOW) else _EXP_SKIP)
            n_packed += hi - lo
        emx_exp_inplace(packed, n_packed)
        for j in range(n_packed):
            packed[j] = 0.0 if packed[j] > 1.0 else packed[j]
        for b in range(nact):
            t = starts[b] + tau
            p = pred + b * K
            a = cur + b * K
            e = packed + pos[b]
            lo = p_lo[b]
            hi = p_hi[b]
            if frame_prob != NULL:
                for j in range(lo):
                    frame_prob[t * K + j] = 0.0
                for j in range(lo, hi):
                    frame_prob[t * K + j] = e[j - lo]
                for j in range(hi, K):
                    frame_prob[t * K + j] = 0.0
            if win != NULL:
                win[2 * t] = lo
                win[2 * t + 1] = hi
            c = _mul_sum_win(p + lo, e, lo, hi - lo, K)
            if not c > 0.0:
                failed[b] = 1
                a_lo[b] = 0
                a_hi[b] = 0
                continue
            inv = 1.0 / c
            if inv < INFINITY:
                for j in range(lo, hi):
                    a[j] = p[j] * inv
            else:  # c below 1/DBL_MAX (subnormal): its reciprocal overflows, divide
                for j in range(lo, hi):
                    a[j] = p[j] / c
            alo = lo
            ahi = hi
            while alo < ahi and a[alo] == 0.0:
                alo += 1
            while ahi > alo and a[ahi - 1] == 0.0:
                ahi -= 1
            a_lo[b] = alo
            a_hi[b] = ahi
            if post != NULL:
                for j in range(lo):
                    post[t * K + j] = 0.0
                for j in range(lo, hi):
                    post[t * K + j] = a[j]
                for j in range(hi, K):
                    post[t * K + j] = 0.0
                scale[t] = c
            total[b] += log(c)


cdef void _backward_band_block(
    Py_ssize_t K, const Py_ssize_t* starts, const Py_ssize_t* lens, Py_ssize_t nb,
    const _Trans* tr, double* post, const double* frame_prob, const double* scale,
    const Py_ssize_t* win, double* u, double* u_new, double* beta, double* xi_band,
    signed char* rescaled, bint want_xi, bint* trouble,
) noexcept nogil:
    """:func:`_backward_block` for a banded transmat after :func:`_forward_band_block`, on
    the windows it stored in win: u[t] is 0 outside frame t's window (its emission weights
    are), beta_hat[t] is needed only on it (alpha_hat is 0 outside). The counts go to
    xi_band[k * K + i] += alpha_hat[t, i] u[t+1, i + off[k]]. rescaled: nb flags."""
    cdef Py_ssize_t tau, b, i, j, t, k, d, i0, i1, lo, hi, lo1, hi1, L = lens[0]
    cdef Py_ssize_t nact = 0, nnext
    cdef double s
    cdef double* ub
    cdef double* al
    cdef double* be
    cdef double* xk
    cdef double* swap
    cdef const double* wk
    for b in range(nb):
        rescaled[b] = 0
    for tau in range(L - 1, -1, -1):
        nnext = nact  # sequences longer than tau + 1
        while nact < nb and lens[nact] > tau:
            nact += 1
        for b in range(nact):
            t = starts[b] + tau
            lo = win[2 * t]
            hi = win[2 * t + 1]
            al = post + t * K
            be = beta + b * K
            if b < nnext:
                lo1 = win[2 * t + 2]
                hi1 = win[2 * t + 3]
                ub = u + b * K
                for i in range(lo, hi):
                    be[i] = 0.0
                for k in range(tr.n_band):  # beta_hat[i] += a[i, i + d] u[i + d]
                    d = tr.off[k]
                    wk = tr.w + k * K
                    _band_range(d, lo, hi, lo1, hi1, &i0, &i1)
                    for i in range(i0, i1):
                        be[i] += wk[i] * ub[i + d]
                if want_xi and rescaled[b]:  # beta_hat known up to a factor: divide by s[t]
                    s = 0.0
                    for i in range(lo, hi):
                        s += al[i] * be[i]
                    for k in range(tr.n_band if s > 0.0 else 0):
                        d = tr.off[k]
                        xk = xi_band + k * K
                        _band_range(d, lo, hi, lo1, hi1, &i0, &i1)
                        for i in range(i0, i1):
                            xk[i] += (al[i] * ub[i + d]) / s
                elif want_xi:
                    for k in range(tr.n_band):
                        d = tr.off[k]
                        xk = xi_band + k * K
                        _band_range(d, lo, hi, lo1, hi1, &i0, &i1)
                        for i in range(i0, i1):
                            xk[i] += al[i] * ub[i + d]
            else:
                for i in range(lo, hi):
                    be[i] = 1.0
            _posterior_and_message(al, be, _mul_sum_win(al + lo, be + lo, lo, hi - lo, K),
                                   lo, hi, tau > 0, u_new + b * K, frame_prob + t * K,
                                   scale[t], &rescaled[b], trouble)
        swap = u
        u = u_new
        u_new = swap


cdef void _log_edge_sum(const double* frm, const double* add, double* into, double* acc,
                        Py_ssize_t K, Py_ssize_t E, const Py_ssize_t* a, const Py_ssize_t* b,
                        const double* w) noexcept nogil:
    """into[j] = log(sum of exp(frm[a[e]] + w[e]) over the edges e with b[e] == j) + add[j]
    (add: optional), -inf where no term is finite: one log-space step over edges, the
    maximum first, then the sum (the forward step with a = src, b = dst, add = loglik; the
    backward one with a = dst, b = src)."""
    cdef Py_ssize_t j, e
    cdef double v, m
    for j in range(K):
        into[j] = -INFINITY
        acc[j] = 0.0
    for e in range(E):
        v = frm[a[e]] + w[e]
        if v > into[b[e]]:
            into[b[e]] = v
    for e in range(E):
        m = into[b[e]]
        if m > -INFINITY:
            acc[b[e]] += exp(frm[a[e]] + w[e] - m)
    for j in range(K):
        if into[j] > -INFINITY:
            into[j] += log(acc[j]) + (add[j] if add != NULL else 0.0)


cdef inline double _log_sum_exp(const double* x, Py_ssize_t n) noexcept nogil:
    """log(sum(exp(x[:n]))), -inf when every x is -inf."""
    cdef Py_ssize_t i
    cdef double m = -INFINITY, acc = 0.0
    for i in range(n):
        if x[i] > m:
            m = x[i]
    if m == -INFINITY:
        return -INFINITY
    for i in range(n):
        acc += exp(x[i] - m)
    return m + log(acc)


cdef Py_ssize_t _fb_log_space(
    const double* ll, const Py_ssize_t* offsets, Py_ssize_t n_seq, Py_ssize_t K,
    const double* log_sp, Py_ssize_t E, const Py_ssize_t* src, const Py_ssize_t* dst,
    const double* log_prob, double* post, double* xi_edges, double* seq_ll,
    double* la, double* lb, double* tmp, double* acc, bint want_xi,
) noexcept nogil:
    """The forward-backward of every sequence in log space over the transitions as edges
    (src[e] -> dst[e], log probability log_prob[e]; the forward step is that of
    :func:`forward_loglik_log_edges`): the fallback when the scaled recursions leave the
    range of doubles (a frame's posterior normaliser, see _S_MIN/_S_MAX, or a backward
    message that cannot be brought back). Slower (an exp per edge and frame) but exact
    wherever log-probabilities are finite. Writes the posteriors, the log-likelihoods and
    (want_xi) each edge's expected count xi_edges[e] (overwritten); la, lb: scratch of
    (longest sequence) x K; tmp, acc: K. Returns STATUS_OK or the first sequence of
    probability zero."""
    cdef Py_ssize_t n, t, t0, L, j, e
    cdef double z
    if want_xi:
        for e in range(E):
            xi_edges[e] = 0.0
    for n in range(n_seq):
        t0 = offsets[n]
        L = offsets[n + 1] - t0
        if L <= 0:
            return n
        for j in range(K):
            la[j] = log_sp[j] + ll[t0 * K + j]
        for t in range(1, L):
            _log_edge_sum(la + (t - 1) * K, ll + (t0 + t) * K, la + t * K, acc, K, E, src,
                          dst, log_prob)
        z = _log_sum_exp(la + (L - 1) * K, K)
        if not z > -INFINITY or z != z:
            return n
        seq_ll[n] = z
        for j in range(K):
            lb[(L - 1) * K + j] = 0.0
        for t in range(L - 2, -1, -1):
            for j in range(K):  # log of b[t+1] beta[t+1], per destination state
                tmp[j] = ll[(t0 + t + 1) * K + j] + lb[(t + 1) * K + j]
            _log_edge_sum(tmp, NULL, lb + t * K, acc, K, E, dst, src, log_prob)
            if want_xi:
                for e in range(E):
                    xi_edges[e] += exp(la[t * K + src[e]] + log_prob[e] + tmp[dst[e]] - z)
        for t in range(L):
            for j in range(K):
                post[(t0 + t) * K + j] = exp(la[t * K + j] + lb[t * K + j] - z)
    return _OK


cdef Py_ssize_t[::1] _lockstep_order(const Py_ssize_t[::1] offsets):
    """Sequences by length, longest first (stable: ties keep the caller's order)."""
    lengths = np.diff(np.asarray(offsets))
    return np.ascontiguousarray(np.argsort(-lengths, kind="stable"), dtype=np.intp)


cdef object _band_weights(str kn, const double[:, ::1] transmat, object band_offsets):
    """(offsets, w) of the diagonals ``band_offsets`` of transmat (see ``_Trans``), after
    checking that they are strictly increasing, inside (-K, K), and hold every non-zero
    entry of transmat; (None, None) when band_offsets is None."""
    if band_offsets is None:
        return None, None
    cdef Py_ssize_t K = transmat.shape[0]
    off = np.ascontiguousarray(band_offsets, dtype=np.intp)
    if off.ndim != 1 or off.shape[0] == 0:
        raise ValueError(f"{kn}: band_offsets must be a non-empty 1-D array of diagonals")
    if np.any(np.diff(off) <= 0) or off[0] <= -K or off[len(off) - 1] >= K:
        raise ValueError(f"{kn}: band_offsets must increase strictly and lie in (-{K}, {K})")
    A = np.asarray(transmat)
    rows, cols = np.nonzero(A)
    if not np.all(np.isin(cols - rows, off)):
        raise ValueError(f"{kn}: transmat has non-zero entries off the diagonals band_offsets")
    i = np.arange(K)
    w = np.zeros((off.shape[0], K))
    for k in range(off.shape[0]):
        ok = (i + off[k] >= 0) & (i + off[k] < K)
        w[k, ok] = A[i[ok], i[ok] + off[k]]
    return off, w


def forward_backward(
    const double[:, ::1] loglik not None,
    const Py_ssize_t[::1] offsets not None,
    const double[::1] startprob not None,
    const double[:, ::1] transmat not None,
    double[:, ::1] post not None,
    double[:, ::1] xi_sum not None,
    double[::1] seq_loglik not None,
    double[::1] start_sum=None,
    *,
    bint want_xi=True,
    double[:, ::1] weights=None,
    object band_offsets=None,
):
    """Posteriors, expected transition counts and log-likelihoods of many sequences.

    Sequences run in lockstep blocks, longest first (see the comment above
    ``_times_transmat``): per frame, one matrix product for the block's active sequences
    (dgemm for K >= 8), one vector exp call, and the expected transition counts as one dgemm
    per 256 stacked frames.

    Parameters
    ----------
    loglik : IN (n_frames, K) emission log-likelihoods (finite or -inf), K >= 1.
    offsets : IN (n_sequences + 1,) frame offsets of the sequences: 0, non-decreasing, n_frames.
    startprob, transmat : IN (K,) and (K, K) model parameters; zeros are honoured.
    post : OUT (n_frames, K) state posteriors gamma.
    xi_sum : OUT (K, K), overwritten with the expected transition counts summed over all
        frames and sequences (without building a (T, K, K) array); zeros when not want_xi.
    seq_loglik : OUT (n_sequences,) log P(sequence).
    start_sum : OUT, optional (K,), overwritten with the posteriors of the first frames
        summed over the sequences (expected counts of each starting state).
    want_xi : keyword-only option: accumulate xi_sum (False for scoring only).
    weights : OUT, optional, keyword-only (n_frames, K): receives the emission weights
        b[t, j] = exp(loglik[t, j] - m[t]) (0 on the states frame t cannot reach), which the
        backward pass needs. It may be ``loglik``'s own memory (the same array): loglik is
        then overwritten (each row is read before it is written), which saves the caller an
        (n_frames, K) array per call. Allocated here when None.
    band_offsets : IN, optional, keyword-only: the diagonals d (increasing, -K < d < K) of
        transmat that hold all its non-zero entries (0 for self-loops, 1 for the next state:
        a left-to-right model is ``[0, 1]``). The products then run diagonal by diagonal, and
        every per-state step only on the window of states the frame's prediction reaches
        (see the comment above ``_mul_sum_win``): O(n_diagonals * window) per frame instead
        of dgemm's O(K^2), with the same results up to round-off; xi_sum is still (K, K),
        zero off the diagonals. transmat is checked to have nothing off them (ValueError
        otherwise).

    Scratch (the per-frame scales (n_frames,), a few block-sized buffers, and the weights
    when not given) is allocated here.

    Returns
    -------
    status : int
        STATUS_OK (-1) on success, otherwise the index of the first sequence whose
        probability is zero.
    """
    cdef str kn = "forward_backward"
    cdef Py_ssize_t T = loglik.shape[0], K = loglik.shape[1]
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t n, i, j, b, b0, nb, status = _OK
    cdef bint want_start = start_sum is not None
    _check_states(kn, K)
    _check_offsets_frames(kn, offsets, T)
    _need(kn, "startprob", startprob.shape[0], K)
    _need2(kn, "transmat", transmat.shape[0], transmat.shape[1], K, K)
    _need2(kn, "post", post.shape[0], post.shape[1], T, K)
    _need2(kn, "xi_sum", xi_sum.shape[0], xi_sum.shape[1], K, K)
    _need(kn, "seq_loglik", seq_loglik.shape[0], n_seq)
    if want_start:
        _need(kn, "start_sum", start_sum.shape[0], K)
    _disjoint(kn, {"post": _span_d2(post), "xi_sum": _span_d2(xi_sum),
                   "seq_loglik": _span_d1(seq_loglik), "start_sum": _span_d1(start_sum)},
              {"offsets": _span_i1(offsets)})
    cdef double[:, ::1] frame_prob
    cdef bint aliased = False
    if weights is None:
        frame_prob = _empty2(T, K)
    else:
        _need2(kn, "weights", weights.shape[0], weights.shape[1], T, K)
        others = {"post": _span_d2(post), "xi_sum": _span_d2(xi_sum),
                  "seq_loglik": _span_d1(seq_loglik), "start_sum": _span_d1(start_sum),
                  "offsets": _span_i1(offsets)}
        aliased = _span_d2(weights) == _span_d2(loglik)
        if not aliased:  # loglik itself, or apart from it
            others["loglik"] = _span_d2(loglik)
        _disjoint(kn, {"weights": _span_d2(weights)}, others)
        frame_prob = weights
    cdef Py_ssize_t[::1] order = _lockstep_order(offsets)
    cdef Py_ssize_t B = min(n_seq, LOCKSTEP_BLOCK)
    cdef Py_ssize_t[::1] starts = np.empty(max(B, 1), dtype=np.intp)
    cdef Py_ssize_t[::1] lens = np.empty(max(B, 1), dtype=np.intp)
    cdef double[::1] scale = _empty(T)
    cdef double[:, ::1] work = _empty2(3 * max(B, 1), K)  # cur, pred; then u, u_new, beta
    cdef double[:, ::1] stack = _empty2(2 * XI_STACK, K)
    cdef double[::1] total = _empty(max(B, 1))
    cdef signed char[::1] failed = np.zeros(max(n_seq, 1), dtype=np.int8)
    cdef signed char[::1] failed_b = np.zeros(max(B, 1), dtype=np.int8)
    cdef signed char[::1] resc = np.zeros(max(B, 1), dtype=np.int8)
    cdef double* w = &work[0, 0]
    cdef _Trans tr
    cdef Py_ssize_t[::1] band_off
    cdef double[:, ::1] band_w
    cdef double[:, ::1] xi_band = None
    cdef bint trouble = False
    cdef double[:, ::1] transmat_t
    cdef Py_ssize_t[::1] win = None, iscratch = None
    cdef Py_ssize_t k, d
    tr.A = &transmat[0, 0]
    tr.At = NULL
    if K >= BLAS_MIN_STATES:
        transmat_t = np.ascontiguousarray(np.asarray(transmat).T)
        tr.At = &transmat_t[0, 0]
    tr.K = K
    tr.n_band = 0
    band_off, band_w = _band_weights(kn, transmat, band_offsets)
    if band_off is not None:
        tr.n_band = band_off.shape[0]
        tr.off = &band_off[0]
        tr.w = &band_w[0, 0]
        xi_band = np.zeros((tr.n_band, K))
        win = np.empty(2 * max(T, 1), dtype=np.intp)
        iscratch = np.empty(5 * max(B, 1), dtype=np.intp)
    with nogil:
        for i in range(K):
            if want_start:
                start_sum[i] = 0.0
            for j in range(K):
                xi_sum[i, j] = 0.0
        b0 = 0
        while b0 < n_seq:
            nb = min(B, n_seq - b0)
            for b in range(nb):
                n = order[b0 + b]
                starts[b] = offsets[n]
                lens[b] = offsets[n + 1] - offsets[n]
            while nb > 0 and lens[nb - 1] == 0:  # empty sequences: probability zero
                failed[order[b0 + nb - 1]] = 1
                nb -= 1
            if nb > 0 and tr.n_band > 0:
                _forward_band_block(&loglik[0, 0], K, &starts[0], &lens[0], nb,
                                    &startprob[0], &tr, &post[0, 0], &frame_prob[0, 0],
                                    &scale[0], &win[0], w, w + B * K, w + 2 * B * K,
                                    &iscratch[0], &total[0], &failed_b[0])
                _backward_band_block(K, &starts[0], &lens[0], nb, &tr, &post[0, 0],
                                     &frame_prob[0, 0], &scale[0], &win[0], w, w + B * K,
                                     w + 2 * B * K, &xi_band[0, 0], &resc[0], want_xi, &trouble)
            elif nb > 0:
                _forward_block(&loglik[0, 0], K, &starts[0], &lens[0], nb, &startprob[0],
                               &tr, &post[0, 0], &frame_prob[0, 0], &scale[0],
                               w, w + B * K, &total[0], &failed_b[0])
                _backward_block(K, &starts[0], &lens[0], nb, &tr, &post[0, 0],
                                &frame_prob[0, 0], &scale[0], w, w + B * K, w + 2 * B * K,
                                &stack[0, 0], &stack[XI_STACK, 0], &xi_sum[0, 0],
                                &resc[0], want_xi, &trouble)
            for b in range(nb):
                n = order[b0 + b]
                failed[n] = failed_b[b]
                seq_loglik[n] = total[b]
            b0 += min(B, n_seq - b0)
        for n in range(n_seq):
            if failed[n]:
                status = n
                break
        if status == _OK:
            if want_start:
                for n in range(n_seq):
                    for i in range(K):
                        start_sum[i] += post[offsets[n], i]
            if want_xi:
                for k in range(tr.n_band):  # the diagonals' counts into the (K, K) array
                    d = tr.off[k]
                    for i in range(K):
                        if 0 <= i + d < K:
                            xi_sum[i, i + d] = xi_band[k, i]
                for i in range(K):
                    for j in range(K):
                        xi_sum[i, j] *= transmat[i, j]
    if trouble and status == _OK:
        if aliased:  # the weights overwrote loglik, which the log-space path needs
            return STATUS_NEEDS_LOGLIK
        src_a, dst_a = np.nonzero(np.asarray(transmat))
        xi_e = np.empty(len(src_a))
        status = _log_space_call(loglik, offsets, startprob, src_a.astype(np.intp),
                                 dst_a.astype(np.intp),
                                 np.ascontiguousarray(np.asarray(transmat)[src_a, dst_a]),
                                 post, xi_e, seq_loglik, start_sum if want_start else None,
                                 want_xi)
        if status == _OK:
            xi_arr = np.asarray(xi_sum)
            xi_arr[...] = 0.0
            xi_arr[src_a, dst_a] = xi_e
    return status


cdef Py_ssize_t _log_space_call(
    const double[:, ::1] loglik, const Py_ssize_t[::1] offsets, const double[::1] startprob,
    const Py_ssize_t[::1] src, const Py_ssize_t[::1] dst, const double[::1] prob,
    double[:, ::1] post, double[::1] xi_edges, double[::1] seq_loglik, double[::1] start_sum,
    bint want_xi,
):
    """Every output of a forward-backward call again, by :func:`_fb_log_space`, for the
    transitions as edges (the dense kernel passes its non-zero entries)."""
    cdef Py_ssize_t K = loglik.shape[1], n_seq = offsets.shape[0] - 1, E = src.shape[0], n, i
    cdef Py_ssize_t status
    lengths = np.diff(np.asarray(offsets))
    cdef Py_ssize_t longest = max(int(lengths.max()) if n_seq else 1, 1)
    with np.errstate(divide="ignore"):
        log_sp_arr = np.log(np.asarray(startprob))
        log_prob_arr = np.log(np.asarray(prob))
    cdef double[::1] log_sp = log_sp_arr
    cdef double[::1] log_prob = np.concatenate([log_prob_arr, [0.0]])  # (never empty)
    cdef Py_ssize_t[::1] src_p = np.concatenate([np.asarray(src), [0]]).astype(np.intp)
    cdef Py_ssize_t[::1] dst_p = np.concatenate([np.asarray(dst), [0]]).astype(np.intp)
    cdef double[:, ::1] la = _empty2(longest, K)
    cdef double[:, ::1] lb = _empty2(longest, K)
    cdef double[:, ::1] rows = _empty2(2, K)
    cdef double[::1] xi_e = np.zeros(E + 1)
    cdef bint has_start = start_sum is not None
    with nogil:
        status = _fb_log_space(&loglik[0, 0], &offsets[0], n_seq, K, &log_sp[0], E,
                               &src_p[0], &dst_p[0], &log_prob[0], &post[0, 0], &xi_e[0],
                               &seq_loglik[0], &la[0, 0], &lb[0, 0], &rows[0, 0],
                               &rows[1, 0], want_xi)
        if status == _OK:
            for i in range(E):
                xi_edges[i] = xi_e[i] if want_xi else 0.0
            if has_start:
                for i in range(K):
                    start_sum[i] = 0.0
                for n in range(n_seq):
                    for i in range(K):
                        start_sum[i] += post[offsets[n], i]
    return status


def forward_loglik(
    const double[:, ::1] loglik not None,
    const Py_ssize_t[::1] offsets not None,
    const double[::1] startprob not None,
    const double[:, ::1] transmat not None,
    double[::1] seq_loglik not None,
    *,
    object band_offsets=None,
):
    """Log-likelihood of each sequence by the scaled forward pass only (the forward half of
    :func:`forward_backward`, in the same lockstep blocks, storing nothing per frame).

    IN: ``loglik`` (n_frames, K), ``offsets``, ``startprob``, ``transmat`` as in
    :func:`forward_backward`; ``band_offsets`` (keyword-only) as there. OUT: ``seq_loglik``
    (n_sequences,). Scratch: block-sized
    buffers (two of up to 64 x K), allocated here.
    Returns STATUS_OK (-1), or the first zero-probability sequence.
    """
    cdef str kn = "forward_loglik"
    cdef Py_ssize_t T = loglik.shape[0], K = loglik.shape[1]
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t n, b, b0, nb, status = _OK
    _check_states(kn, K)
    _check_offsets_frames(kn, offsets, T)
    _need(kn, "startprob", startprob.shape[0], K)
    _need2(kn, "transmat", transmat.shape[0], transmat.shape[1], K, K)
    _need(kn, "seq_loglik", seq_loglik.shape[0], n_seq)
    _disjoint(kn, {"seq_loglik": _span_d1(seq_loglik)}, {"offsets": _span_i1(offsets)})
    cdef Py_ssize_t[::1] order = _lockstep_order(offsets)
    cdef Py_ssize_t B = min(n_seq, LOCKSTEP_BLOCK)
    cdef Py_ssize_t[::1] starts = np.empty(max(B, 1), dtype=np.intp)
    cdef Py_ssize_t[::1] lens = np.empty(max(B, 1), dtype=np.intp)
    cdef double[:, ::1] work = _empty2(3 * max(B, 1), K)
    cdef Py_ssize_t[::1] iscratch = np.empty(5 * max(B, 1), dtype=np.intp)
    cdef double[::1] total = _empty(max(B, 1))
    cdef signed char[::1] failed = np.zeros(max(n_seq, 1), dtype=np.int8)
    cdef signed char[::1] failed_b = np.zeros(max(B, 1), dtype=np.int8)
    cdef _Trans tr
    cdef Py_ssize_t[::1] band_off
    cdef double[:, ::1] band_w
    tr.A = &transmat[0, 0]
    tr.At = NULL
    tr.K = K
    tr.n_band = 0
    band_off, band_w = _band_weights(kn, transmat, band_offsets)
    if band_off is not None:
        tr.n_band = band_off.shape[0]
        tr.off = &band_off[0]
        tr.w = &band_w[0, 0]
    with nogil:
        b0 = 0
        while b0 < n_seq:
            nb = min(B, n_seq - b0)
            for b in range(nb):
                n = order[b0 + b]
                starts[b] = offsets[n]
                lens[b] = offsets[n + 1] - offsets[n]
            while nb > 0 and lens[nb - 1] == 0:
                failed[order[b0 + nb - 1]] = 1
                nb -= 1
            if nb > 0 and tr.n_band > 0:
                _forward_band_block(&loglik[0, 0], K, &starts[0], &lens[0], nb,
                                    &startprob[0], &tr, NULL, NULL, NULL, NULL, &work[0, 0],
                                    &work[B, 0], &work[2 * B, 0], &iscratch[0], &total[0],
                                    &failed_b[0])
            elif nb > 0:
                _forward_block(&loglik[0, 0], K, &starts[0], &lens[0], nb, &startprob[0],
                               &tr, NULL, NULL, NULL, &work[0, 0], &work[B, 0],
                               &total[0], &failed_b[0])
            for b in range(nb):
                n = order[b0 + b]
                failed[n] = failed_b[b]
                seq_loglik[n] = total[b]
            b0 += min(B, n_seq - b0)
        for n in range(n_seq):
            if failed[n]:
                status = n
                break
    return status


def viterbi(
    const double[:, ::1] loglik not None,
    const Py_ssize_t[::1] offsets not None,
    const double[::1] log_startprob not None,
    const double[:, ::1] log_transmat_t not None,
    Py_ssize_t[::1] path not None,
    double[::1] seq_logprob not None,
):
    """Most likely state path of each sequence, in log space.

    IN: ``loglik`` (n_frames, K) and ``offsets`` as in :func:`forward_backward`;
    ``log_startprob`` (K,); ``log_transmat_t`` (K, K), the transposed log transition matrix
    (row j holds log a[:, j]), ``-inf`` entries being forbidden transitions.
    OUT: ``path`` (n_frames,), ``seq_logprob`` (n_sequences,); the frames and entry of a
    sequence with no path of non-zero probability are left as they were.
    Scratch (log scores, a padded copy of the transitions, and the (n_frames, K)
    back-pointers, uint8 for K <= 256, uint16 for K <= 65536) is allocated here.
    Returns STATUS_OK (-1), or the first sequence (in the caller's order) with no path of
    non-zero probability (an empty sequence counts as one).

    Every score is the same sum as in the textbook recursion
    ``delta_t[j] = max_i (delta_{t-1}[i] + log a[i, j]) + loglik[t, j]``, with the
    predecessors i scanned in increasing order and replacing the best one only when strictly
    greater: ties go to the lowest i, and the final state is the lowest j among equal maxima.
    Max-plus has no rounding to reorder, so the results are the same bit for bit whichever
    loop and vector code runs (portable C, SSE2, AVX2 or AVX-512F: the best the CPU has,
    chosen at import), and the same as those of the scalar loop emx had before.
    Two loops, chosen here from K alone:

    * K >= 8: one sequence at a time, the states j in tiles of 8 (up to 16 with AVX2, 32 with
      AVX-512F) whose running maxima and arg-maxima stay in vector registers over one pass
      on the predecessors i (those of score -inf skipped);
    * K < 8: lockstep. The non-empty sequences, sorted by length (longest first, stable), go
      8 at a time, frame by frame, each sequence a vector lane (transitions of log probability
      -inf skipped); a block shrinks as its sequences end, and once 2 or fewer are left they
      finish one at a time. With fewer than 8 states a tile of the first loop would leave
      most lanes idle; from K = 8 on both loops measured alike (2-core Xeon, AVX2), so the
      simpler one is kept. A sequence run alone with K < 4 takes the plain scalar loop (a
      tile's set-up costs more than its few sums).
    """
    cdef str kn = "viterbi"
    cdef Py_ssize_t T = loglik.shape[0], K = loglik.shape[1]
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t vt = _vit_tile()
    _check_states(kn, K)
    _check_offsets_frames(kn, offsets, T)
    _need(kn, "log_startprob", log_startprob.shape[0], K)
    _need2(kn, "log_transmat_t", log_transmat_t.shape[0], log_transmat_t.shape[1], K, K)
    _need(kn, "path", path.shape[0], T)
    _need(kn, "seq_logprob", seq_logprob.shape[0], n_seq)
    _disjoint(kn, {"path": _span_i1(path), "seq_logprob": _span_d1(seq_logprob)},
              {"offsets": _span_i1(offsets)})
    cdef bint lockstep = K < vt if _vit_mode < 0 else _vit_mode == 1
    cdef Py_ssize_t[::1] order = None
    if lockstep:  # the non-empty sequences, longest first (stable)
        lens_np = np.diff(np.asarray(offsets))
        live = np.flatnonzero(lens_np)
        order = live[np.argsort(-lens_np[live], kind="stable")].astype(np.intp)
    # Back-pointers: the narrowest type that holds a state index.
    cdef unsigned char[:, ::1] bp8
    cdef unsigned short[:, ::1] bp16
    cdef Py_ssize_t[:, ::1] bp64
    if K <= 256:
        bp8 = np.empty((T, K), dtype=np.uint8)
    elif K <= 65536:
        bp16 = np.empty((T, K), dtype=np.uint16)
    else:
        bp64 = np.empty((T, K), dtype=np.intp)
    # Scores and transitions: la (K, Kp) = log a[i, j] in row i, padded with -inf; two frames
    # of Kp scores (one sequence); two (K, vt) blocks (lockstep).
    cdef Py_ssize_t Kp = ((K + vt - 1) // vt) * vt
    cdef double[::1] work = _empty(K * Kp + 2 * Kp + (2 * K * vt if lockstep else 0))
    # Arg-maxima of one frame (K fits an int: log_transmat_t holds K * K doubles).
    cdef int[::1] arg = np.empty(Kp, dtype=np.intc)
    cdef _VitArgs va
    va.loglik = &loglik[0, 0] if T else NULL
    va.K = K
    va.Kp = Kp
    va.log_startprob = &log_startprob[0]
    va.log_tt = &log_transmat_t[0, 0]
    va.offsets = &offsets[0]
    va.la = &work[0]
    va.x0 = &work[K * Kp]
    va.x1 = &work[K * Kp + Kp]
    va.blk0 = &work[K * Kp + 2 * Kp]
    va.blk1 = &work[K * Kp + 2 * Kp + K * vt]
    va.arg = &arg[0]
    va.path = &path[0] if T else NULL
    va.seq_logprob = &seq_logprob[0] if n_seq else NULL
    va.first_bad = n_seq
    va.level = _vit_level
    cdef Py_ssize_t q, nb, i, j, status = _OK
    with nogil:
        for i in range(K):
            for j in range(Kp):
                va.la[i * Kp + j] = log_transmat_t[j, i] if j < K else -INFINITY
        for q in range(n_seq):  # an empty sequence counts as one of probability zero
            if offsets[q + 1] == offsets[q]:
                va.first_bad = q
                break
        q = 0
        while q < n_seq:
            if lockstep:
                if q >= order.shape[0]:
                    break
                nb = min(vt, order.shape[0] - q)
                i = q
            else:
                nb = 1
                i = q
                if offsets[q + 1] == offsets[q]:
                    q += 1
                    continue
            if K <= 256:
                _vit_run(&va, &order[i] if lockstep else &i, nb, lockstep, &bp8[0, 0])
            elif K <= 65536:
                _vit_run(&va, &order[i] if lockstep else &i, nb, lockstep, &bp16[0, 0])
            else:
                _vit_run(&va, &order[i] if lockstep else &i, nb, lockstep, &bp64[0, 0])
            q += nb
        if va.first_bad < n_seq:
            status = va.first_bad
    return status


# Viterbi helpers. _VT is the narrowest tile: 8 states (one-sequence loop; up to 32 with wider
# vectors) or 8 sequences (lockstep), whose running maxima and arg-maxima stay in registers.
cdef enum:
    _VT = 8
    _VIT_SOLO = 2   # lockstep blocks with this many sequences left finish them one by one
    _VIT_SCALAR = 4  # one sequence with fewer states: scalar loop, no vector tiles

ctypedef fused _bp_t:
    unsigned char
    unsigned short
    Py_ssize_t

cdef extern from *:
    """
    /* Max-plus tiles for viterbi (src/_hmm.pyx). For the W lanes l of a tile:
         best[l] = max_i (s[i] + m[i * ms + l]), arg[l] = the lowest i attaining it,
       scanning i upwards and replacing only on strictly greater, from best = -inf, arg = 0:
       the textbook loop's comparisons, lane by lane, so the results are the same bit for bit
       at every vector width. An i with s[i] = -inf or NaN is skipped: s[i] + x is then -inf or
       NaN, never greater than best (best is never NaN). Arg-maxima are kept as doubles (exact
       for i < 2**53) so that their blend uses the comparison mask as it is.
       emx_vit_frame: one frame of one sequence, cur[j] = best[j] + ll[j] and arg_out[j] for
       j < K, with s = prev and m = la (K rows of Kp >= K entries, padded with -inf).
       emx_vit_tile8: 8 lanes (lockstep: s = a row of the transposed transitions, m = the
       scores of 8 sequences). level: 0 portable C, 1 SSE2, 2 AVX2, 3 AVX-512F. */
    #include <math.h>
    #include <stddef.h>
    #if defined(__GNUC__) && defined(__x86_64__)
    #define EMX_VIT_X86 1
    #include <immintrin.h>
    #endif

    /* A tile's maxima and arguments into the frame: score = best + loglik. */
    static inline void emx_vit_store(ptrdiff_t nv, const double *best, const double *arg,
                                     const double *ll, double *cur, int *arg_out) {
        for (ptrdiff_t l = 0; l < nv; l++) {
            cur[l] = best[l] + ll[l];
            arg_out[l] = (int)arg[l];
        }
    }

    /* One frame of one sequence with few states (K < 4), the textbook loop: no tile set-up. */
    static void emx_vit_frame_small(ptrdiff_t K, const double *prev, const double *log_tt,
                                    const double *ll, double *cur, int *arg_out) {
        for (ptrdiff_t j = 0; j < K; j++) {
            double best = -INFINITY;
            int arg = 0;
            for (ptrdiff_t i = 0; i < K; i++) {
                double v = prev[i] + log_tt[j * K + i];
                if (v > best) { best = v; arg = (int)i; }
            }
            cur[j] = best + ll[j];
            arg_out[j] = arg;
        }
    }

    static void emx_vit_tile8_c(ptrdiff_t n, const double *s, const double *m, ptrdiff_t ms,
                                double *best, double *arg) {
        int l;
        for (l = 0; l < 8; l++) { best[l] = -INFINITY; arg[l] = 0.0; }
        for (ptrdiff_t i = 0; i < n; i++) {
            double d = s[i];
            if (!(d > -INFINITY)) continue;
            const double *row = m + i * ms;
            for (l = 0; l < 8; l++) {
                double v = d + row[l];
                if (v > best[l]) { best[l] = v; arg[l] = (double)i; }
            }
        }
    }

    #ifdef EMX_VIT_X86
    /* x86-64 always has SSE2. max_pd(v, b) is (v > b ? v : b), NaN and signed zeros
       included: the strict comparison above. */
    static void emx_vit_tile8_sse2(ptrdiff_t n, const double *s, const double *m, ptrdiff_t ms,
                                   double *best, double *arg) {
        __m128d b0 = _mm_set1_pd(-INFINITY), b1 = b0, b2 = b0, b3 = b0;
        __m128d a0 = _mm_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        for (ptrdiff_t i = 0; i < n; i++) {
            double d = s[i];
            if (!(d > -INFINITY)) continue;
            const double *row = m + i * ms;
            __m128d dv = _mm_set1_pd(d), iv = _mm_set1_pd((double)i), v, k;
    #define EMX_VIT_LANE2(b, a, off) \\
            v = _mm_add_pd(dv, _mm_loadu_pd(row + off)); k = _mm_cmpgt_pd(v, b); \\
            b = _mm_max_pd(v, b); a = _mm_or_pd(_mm_and_pd(k, iv), _mm_andnot_pd(k, a));
            EMX_VIT_LANE2(b0, a0, 0) EMX_VIT_LANE2(b1, a1, 2)
            EMX_VIT_LANE2(b2, a2, 4) EMX_VIT_LANE2(b3, a3, 6)
    #undef EMX_VIT_LANE2
        }
        _mm_storeu_pd(best, b0); _mm_storeu_pd(best + 2, b1);
        _mm_storeu_pd(best + 4, b2); _mm_storeu_pd(best + 6, b3);
        _mm_storeu_pd(arg, a0); _mm_storeu_pd(arg + 2, a1);
        _mm_storeu_pd(arg + 4, a2); _mm_storeu_pd(arg + 6, a3);
    }

    #define EMX_VIT_LANE4(b, a, off) \\
            v = _mm256_add_pd(dv, _mm256_loadu_pd(row + off)); \\
            k = _mm256_cmp_pd(v, b, _CMP_GT_OQ); \\
            b = _mm256_max_pd(v, b); a = _mm256_blendv_pd(a, iv, k);
    #define EMX_VIT_HEAD4 \\
            double d = s[i]; \\
            if (!(d > -INFINITY)) continue; \\
            const double *row = m + i * ms; \\
            __m256d dv = _mm256_set1_pd(d), iv = _mm256_set1_pd((double)i), v, k;

    /* 8 lanes (nq = 2 ymm) or 16 lanes (nq = 4). */
    __attribute__((target("avx2")))
    static inline void emx_vit_tile_avx2(ptrdiff_t n, const double *s, const double *m,
                                         ptrdiff_t ms, double *best, double *arg, int nq) {
        __m256d b0 = _mm256_set1_pd(-INFINITY), b1 = b0, b2 = b0, b3 = b0;
        __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        ptrdiff_t i;
        if (nq == 4) {
            for (i = 0; i < n; i++) {
                EMX_VIT_HEAD4
                EMX_VIT_LANE4(b0, a0, 0) EMX_VIT_LANE4(b1, a1, 4)
                EMX_VIT_LANE4(b2, a2, 8) EMX_VIT_LANE4(b3, a3, 12)
            }
            _mm256_storeu_pd(best + 8, b2); _mm256_storeu_pd(best + 12, b3);
            _mm256_storeu_pd(arg + 8, a2); _mm256_storeu_pd(arg + 12, a3);
        } else {
            for (i = 0; i < n; i++) {
                EMX_VIT_HEAD4
                EMX_VIT_LANE4(b0, a0, 0) EMX_VIT_LANE4(b1, a1, 4)
            }
        }
        _mm256_storeu_pd(best, b0); _mm256_storeu_pd(best + 4, b1);
        _mm256_storeu_pd(arg, a0); _mm256_storeu_pd(arg + 4, a1);
    }
    #undef EMX_VIT_LANE4
    #undef EMX_VIT_HEAD4

    __attribute__((target("avx2")))
    static void emx_vit_frame_avx2(ptrdiff_t K, ptrdiff_t Kp, const double *prev,
                                   const double *la, const double *ll, double *cur,
                                   int *arg_out) {
        double best[16], arg[16];
        ptrdiff_t jt = 0, W, nv;
        while (jt < Kp) {
            W = jt + 16 <= Kp ? 16 : 8;
            emx_vit_tile_avx2(K, prev, la + jt, Kp, best, arg, (int)(W / 4));
            nv = K - jt < W ? K - jt : W;
            emx_vit_store(nv, best, arg, ll + jt, cur + jt, arg_out + jt);
            jt += W;
        }
    }

    /* AVX-512: 8 * nz lanes (nz = 1, 2 or 4 zmm); the strict comparison as a mask. */
    #define EMX_VIT_LANE8(b, a, off) \\
            v = _mm512_add_pd(dv, _mm512_loadu_pd(row + off)); \\
            k = _mm512_cmp_pd_mask(v, b, _CMP_GT_OQ); \\
            b = _mm512_mask_mov_pd(b, k, v); a = _mm512_mask_mov_pd(a, k, iv);
    #define EMX_VIT_HEAD8 \\
            double d = s[i]; \\
            if (!(d > -INFINITY)) continue; \\
            const double *row = m + i * ms; \\
            __m512d dv = _mm512_set1_pd(d), iv = _mm512_set1_pd((double)i), v; \\
            __mmask8 k;

    __attribute__((target("avx512f")))
    static inline void emx_vit_tile_avx512(ptrdiff_t n, const double *s, const double *m,
                                           ptrdiff_t ms, double *best, double *arg, int nz) {
        __m512d b0 = _mm512_set1_pd(-INFINITY), b1 = b0, b2 = b0, b3 = b0;
        __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        ptrdiff_t i;
        if (nz == 4) {
            for (i = 0; i < n; i++) {
                EMX_VIT_HEAD8
                EMX_VIT_LANE8(b0, a0, 0) EMX_VIT_LANE8(b1, a1, 8)
                EMX_VIT_LANE8(b2, a2, 16) EMX_VIT_LANE8(b3, a3, 24)
            }
            _mm512_storeu_pd(best + 16, b2); _mm512_storeu_pd(best + 24, b3);
            _mm512_storeu_pd(arg + 16, a2); _mm512_storeu_pd(arg + 24, a3);
        } else if (nz == 2) {
            for (i = 0; i < n; i++) {
                EMX_VIT_HEAD8
                EMX_VIT_LANE8(b0, a0, 0) EMX_VIT_LANE8(b1, a1, 8)
            }
        } else {
            for (i = 0; i < n; i++) {
                EMX_VIT_HEAD8
                EMX_VIT_LANE8(b0, a0, 0)
            }
        }
        _mm512_storeu_pd(best, b0); _mm512_storeu_pd(arg, a0);
        if (nz >= 2) { _mm512_storeu_pd(best + 8, b1); _mm512_storeu_pd(arg + 8, a1); }
    }
    #undef EMX_VIT_LANE8
    #undef EMX_VIT_HEAD8

    __attribute__((target("avx512f")))
    static void emx_vit_frame_avx512(ptrdiff_t K, ptrdiff_t Kp, const double *prev,
                                     const double *la, const double *ll, double *cur,
                                     int *arg_out) {
        double best[32], arg[32];
        ptrdiff_t jt = 0, W, nv;
        while (jt < Kp) {
            W = jt + 32 <= Kp ? 32 : (jt + 16 <= Kp ? 16 : 8);
            emx_vit_tile_avx512(K, prev, la + jt, Kp, best, arg, (int)(W / 8));
            nv = K - jt < W ? K - jt : W;
            emx_vit_store(nv, best, arg, ll + jt, cur + jt, arg_out + jt);
            jt += W;
        }
    }

    static int emx_vit_cpu_level(void) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) return 3;
        return __builtin_cpu_supports("avx2") ? 2 : 1;
    }
    #else
    static int emx_vit_cpu_level(void) { return 0; }
    #endif

    static void emx_vit_tile8(int level, ptrdiff_t n, const double *s, const double *m,
                              ptrdiff_t ms, double *best, double *arg) {
    #ifdef EMX_VIT_X86
        if (level >= 3) { emx_vit_tile_avx512(n, s, m, ms, best, arg, 1); return; }
        if (level == 2) { emx_vit_tile_avx2(n, s, m, ms, best, arg, 2); return; }
        if (level == 1) { emx_vit_tile8_sse2(n, s, m, ms, best, arg); return; }
    #endif
        emx_vit_tile8_c(n, s, m, ms, best, arg);
    }

    static void emx_vit_frame(int level, ptrdiff_t K, ptrdiff_t Kp, const double *prev,
                              const double *la, const double *ll, double *cur, int *arg_out) {
        double best[8], arg[8];
        ptrdiff_t jt, nv;
    #ifdef EMX_VIT_X86
        if (level >= 3) { emx_vit_frame_avx512(K, Kp, prev, la, ll, cur, arg_out); return; }
        if (level == 2) { emx_vit_frame_avx2(K, Kp, prev, la, ll, cur, arg_out); return; }
    #endif
        for (jt = 0; jt < Kp; jt += 8) {
            emx_vit_tile8(level, K, prev, la + jt, Kp, best, arg);
            nv = K - jt < 8 ? K - jt : 8;
            emx_vit_store(nv, best, arg, ll + jt, cur + jt, arg_out + jt);
        }
    }
    """
    int emx_vit_cpu_level() noexcept nogil
    void emx_vit_tile8(int level, Py_ssize_t n, const double* s, const double* m,
                       Py_ssize_t ms, double* best, double* arg) noexcept nogil
    void emx_vit_frame_small(Py_ssize_t K, const double* prev, const double* log_tt,
                             const double* ll, double* cur, int* arg_out) noexcept nogil
    void emx_vit_frame(int level, Py_ssize_t K, Py_ssize_t Kp, const double* prev,
                       const double* la, const double* ll, double* cur,
                       int* arg_out) noexcept nogil


cdef int _vit_cpu = emx_vit_cpu_level()   # best code the CPU runs: 0 C, 1 SSE2, 2 AVX2, 3 AVX-512F
cdef int _vit_level = _vit_cpu
cdef int _vit_mode = -1                    # -1 automatic, 0 one sequence at a time, 1 lockstep


def _viterbi_tune(level=None, mode=None):
    """Testing hook: cap the vector code :func:`viterbi` uses (``level`` 0 portable C,
    1 SSE2, 2 AVX2, 3 AVX-512F; capped at what the CPU runs) and force its loop (``mode``
    -1 automatic, 0 one sequence at a time, 1 lockstep). Returns the previous
    ``(level, mode)``; results do not depend on either (only speed does). Not thread-safe:
    for tests and benchmarks."""
    global _vit_level, _vit_mode
    old = (_vit_level, _vit_mode)
    if level is not None:
        _vit_level = max(0, min(int(level), _vit_cpu))
    if mode is not None:
        if mode not in (-1, 0, 1):
            raise ValueError(f"_viterbi_tune: mode must be -1, 0 or 1, got {mode!r}")
        _vit_mode = mode
    return old


cdef inline Py_ssize_t _vit_tile() noexcept nogil:
    return _VT


cdef inline void _vit_final(_VitArgs* va, const double* score, Py_ssize_t stride,
                            Py_ssize_t n, _bp_t* bp) noexcept nogil:
    """Last frame of sequence n, whose scores are score[j * stride]: the best final state
    (lowest j among equal maxima), then the path back through ``bp``."""
    cdef Py_ssize_t j, t, s = 0, K = va.K
    cdef Py_ssize_t t0 = va.offsets[n], t1 = va.offsets[n + 1]
    cdef double best = -INFINITY
    for j in range(K):
        if score[j * stride] > best:
            best = score[j * stride]
            s = j
    if best == -INFINITY:
        if n < va.first_bad:
            va.first_bad = n
        return
    va.seq_logprob[n] = best
    # s always comes from this call's own back-pointers, in [0, K) by construction.
    va.path[t1 - 1] = s
    for t in range(t1 - 1, t0, -1):
        s = bp[t * K + s]
        va.path[t - 1] = s


cdef struct _VitArgs:
    # One viterbi call's arrays (see there), shared by the helpers below.
    const double* loglik
    Py_ssize_t K
    Py_ssize_t Kp
    const double* log_startprob
    const double* log_tt      # (K, K), row j holds log a[:, j]
    const Py_ssize_t* offsets
    double* la                # (K, Kp), row i holds log a[i, :], padded with -inf
    double* x0                # one sequence: two frames of Kp scores
    double* x1
    double* blk0              # lockstep: two (K, _VT) blocks of scores, lane b = sequence b
    double* blk1
    int* arg                  # one frame's arg-maxima (Kp)
    Py_ssize_t* path
    double* seq_logprob
    Py_ssize_t first_bad      # the lowest sequence of probability zero found (n_seq: none)
    int level


cdef void _vit_run(_VitArgs* va, const Py_ssize_t* seqs, Py_ssize_t nb, bint lockstep,
                   _bp_t* bp) noexcept nogil:
    """Viterbi of the non-empty sequences ``seqs[:nb]``: one alone (not ``lockstep``, or
    nb = 1), else nb <= _VT of them by decreasing length in lockstep, lane b of the (K, _VT)
    score blocks being sequence seqs[b]; when no more than _VIT_SOLO of them remain, they
    finish one at a time from the frame reached."""
    cdef Py_ssize_t K = va.K, b, j, s, t, active = nb
    cdef Py_ssize_t L = va.offsets[seqs[0] + 1] - va.offsets[seqs[0]]
    cdef Py_ssize_t st[_VT]
    cdef double best[_VT]
    cdef double arg[_VT]
    cdef double* prev = va.blk0
    cdef double* cur = va.blk1
    cdef double* tmp
    cdef const double* loglik = va.loglik
    if not lockstep or nb == 1:
        for b in range(nb):
            t = va.offsets[seqs[b]]
            for j in range(K):
                va.x0[j] = va.log_startprob[j] + loglik[t * K + j]
            _vit_solo(va, seqs[b], 1, va.x0, va.x1, bp)
        return
    for b in range(_VT):
        st[b] = va.offsets[seqs[b]] if b < nb else 0
    for j in range(K):
        for b in range(_VT):
            prev[j * _VT + b] = (va.log_startprob[j] + loglik[st[b] * K + j]) if b < nb \
                else -INFINITY
    for s in range(1, L):
        # Sequences that ended at frame s - 1 (the block is sorted by decreasing length).
        while va.offsets[seqs[active - 1] + 1] - va.offsets[seqs[active - 1]] <= s:
            active -= 1
            _vit_final(va, &prev[active], _VT, seqs[active], bp)
        if active <= _VIT_SOLO:
            # Too few lanes left to pay: the rest one at a time, from frame s on.
            for b in range(active):
                for j in range(K):
                    va.x0[j] = prev[j * _VT + b]
                _vit_solo(va, seqs[b], s, va.x0, va.x1, bp)
            return
        for j in range(K):
            emx_vit_tile8(va.level, K, &va.log_tt[j * K], prev, _VT, best, arg)
            for b in range(active):
                t = st[b] + s
                cur[j * _VT + b] = best[b] + loglik[t * K + j]
                bp[t * K + j] = <_bp_t>arg[b]
            for b in range(active, _VT):
                cur[j * _VT + b] = -INFINITY
        tmp = prev
        prev = cur
        cur = tmp
    while active > 0:
        active -= 1
        _vit_final(va, &prev[active], _VT, seqs[active], bp)


cdef void _vit_solo(_VitArgs* va, Py_ssize_t n, Py_ssize_t s0, double* prev, double* cur,
                    _bp_t* bp) noexcept nogil:
    """Sequence n alone from its frame s0 on, ``prev`` holding the scores of frame s0 - 1
    (``prev`` and ``cur``: Kp entries each)."""
    cdef Py_ssize_t K = va.K, t, j
    cdef Py_ssize_t t0 = va.offsets[n], t1 = va.offsets[n + 1]
    cdef double* tmp
    cdef const double* log_tt = va.log_tt
    cdef const double* loglik = va.loglik
    for t in range(t0 + s0, t1):
        if K < _VIT_SCALAR:  # a tile's set-up costs more than these few sums
            emx_vit_frame_small(K, prev, log_tt, &loglik[t * K], cur, va.arg)
        else:
            emx_vit_frame(va.level, K, va.Kp, prev, va.la, &loglik[t * K], cur, va.arg)
        for j in range(K):
            bp[t * K + j] = <_bp_t>va.arg[j]
        tmp = prev
        prev = cur
        cur = tmp
    _vit_final(va, prev, 1, n, bp)


def sample_states(
    const double[::1] startprob_cdf not None,
    const double[:, ::1] transmat_cdf not None,
    const double[::1] uniforms not None,
    Py_ssize_t first_state,
    Py_ssize_t[::1] states not None,
):
    """Draw a Markov chain: states[0] from ``startprob_cdf`` (or ``first_state`` when >= 0),
    then states[t] from row states[t-1] of ``transmat_cdf``, by inverting the CDFs at
    ``uniforms`` (one per step, in [0, 1)).

    IN: ``startprob_cdf`` (K,), ``transmat_cdf`` (K, K), ``uniforms`` (>= T,),
    ``first_state`` (< K; negative: drawn). OUT: ``states`` (T,), each in [0, K).
    Returns STATUS_OK (-1): sampling cannot fail on arguments that pass the checks.
    """
    cdef str kn = "sample_states"
    cdef Py_ssize_t T = states.shape[0]
    cdef Py_ssize_t K = startprob_cdf.shape[0]
    cdef Py_ssize_t t, j, s
    if K < 1:
        raise ValueError(f"{kn}: startprob_cdf must have at least one state, got 0")
    _need2(kn, "transmat_cdf", transmat_cdf.shape[0], transmat_cdf.shape[1], K, K)
    _need(kn, "uniforms", uniforms.shape[0], T, True)
    if first_state >= K:
        raise ValueError(f"{kn}: first_state must be < n_states = {K} (or negative: drawn), "
                         f"got {first_state}")
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
    return _OK


# Scratch buffers, taken with the GIL held before ``nogil`` and released with the call's
# memoryviews on every path (success, status or exception).
cdef double[::1] _empty(Py_ssize_t n):
    return np.empty(n)


cdef double[:, ::1] _empty2(Py_ssize_t rows, Py_ssize_t cols):
    return np.empty((rows, cols))


cdef Py_ssize_t[:, ::1] _empty2_intp(Py_ssize_t rows, Py_ssize_t cols):
    return np.empty((rows, cols), dtype=np.intp)


# ---------------------------------------------------------------------------- sparse topologies
# Networks built from left-to-right models (word strings, word loops) have a few transitions
# per state: these kernels take the transitions as an edge list (src[e] -> dst[e] with
# probability prob[e], or log probability) and cost O(n_edges) per frame instead of O(K^2).
#
# Before the loops, the edges are grouped (a stable counting sort, O(n_edges + K)) by
# destination (forward, Viterbi: the edges into each state) and by source (backward, xi: the
# edges out of each state), so that every per-frame sum is a gather accumulated in a
# register, with no scatter and no per-edge branch, and runs over each group in the order the
# edges are listed. Listed by (dst, src) (what ``np.nonzero(transmat.T)`` gives), the sums
# and the Viterbi ties are term for term those of :func:`forward_backward`,
# :func:`forward_loglik` and :func:`viterbi` on the dense matrix (a zero entry only adds an
# exact 0); emx.hmm.BaseHMM relies on that to switch between the two. Edges so listed that
# fill few diagonals of the matrix (left-to-right, banded: ``_Bands``) run as contiguous loops
# over the diagonals instead, which vectorise, with the same terms in the same order.

cdef int _check_edges(str kernel, Py_ssize_t K, const Py_ssize_t[::1] src,
                      const Py_ssize_t[::1] dst, Py_ssize_t n_prob, str prob_name) except -1:
    """src, dst and the probabilities have one entry per edge, and every edge joins two
    states in [0, K)."""
    cdef Py_ssize_t e, E = src.shape[0]
    _need(kernel, "dst", dst.shape[0], E)
    _need(kernel, prob_name, n_prob, E)
    for e in range(E):
        if src[e] < 0 or src[e] >= K or dst[e] < 0 or dst[e] >= K:
            raise ValueError(
                f"{kernel}: edge {e} ({src[e]} -> {dst[e]}) leaves the states [0, {K})")
    return 0


cdef class _Grouped:
    """The edges grouped by one end (``key``, checked in [0, K)): group j holds the edges
    ``order[ptr[j]:ptr[j + 1]]``, in the order listed; ``other[k]`` is the other end of the
    k-th grouped edge and ``w[k]`` its weight (probability or log probability)."""
    cdef Py_ssize_t[::1] ptr, order, other
    cdef double[::1] w

    def __cinit__(self, Py_ssize_t K, const Py_ssize_t[::1] key,
                  const Py_ssize_t[::1] other, const double[::1] w):
        cdef Py_ssize_t j, e, k, E = key.shape[0]
        self.ptr = np.zeros(K + 1, dtype=np.intp)
        self.order = np.empty(E, dtype=np.intp)
        self.other = np.empty(E, dtype=np.intp)
        self.w = np.empty(E)
        with nogil:
            for e in range(E):
                self.ptr[key[e] + 1] += 1
            for j in range(K):
                self.ptr[j + 1] += self.ptr[j]
            # ptr[j] is now the start of group j; advance it while filling (then it is the
            # end of group j, the start of group j + 1), and shift it back.
            for e in range(E):
                k = self.ptr[key[e]]
                self.order[k] = e
                self.other[k] = other[e]
                self.w[k] = w[e]
                self.ptr[key[e]] = k + 1
            for j in range(K, 0, -1):
                self.ptr[j] = self.ptr[j - 1]
            self.ptr[0] = 0


cdef inline void _gather_sum(const double* prev, double* cur, Py_ssize_t K,
                             const Py_ssize_t* ptr, const Py_ssize_t* other,
                             const double* w) noexcept nogil:
    """cur[j] = sum over the edges k into j of prev[other[k]] * w[k] (one forward step)."""
    cdef Py_ssize_t j, k
    cdef double s
    for j in range(K):
        s = 0.0
        for k in range(ptr[j], ptr[j + 1]):
            s += prev[other[k]] * w[k]
        cur[j] = s


cdef class _Bands:
    """The edges as diagonals of the transition matrix, when they fill few of them (banded
    and left-to-right topologies): diagonal k holds the edges ``i -> i + off[k]``, with
    ``w[k, i]`` their probabilities (0 where a diagonal has no edge), ``off`` increasing, and
    edge e is ``w[diag_of[e], src[e]]``. Built only when the edges are listed by strictly
    increasing (dst, src) (then the diagonal sums run in the same order as the grouped ones,
    and every pair appears once) and ``n_diagonals * K <= 2 * n_edges``: the loops over a
    diagonal are contiguous and vectorise. ``ok`` says whether the form was built."""
    cdef bint ok
    cdef Py_ssize_t[::1] off, diag_of
    cdef double[:, ::1] w

    def __cinit__(self, Py_ssize_t K, const Py_ssize_t[::1] src, const Py_ssize_t[::1] dst,
                  const double[::1] prob):
        cdef Py_ssize_t e, k, E = src.shape[0], n_off = 0
        self.ok = False
        if E == 0:
            return
        for e in range(1, E):
            if dst[e] < dst[e - 1] or (dst[e] == dst[e - 1] and src[e] <= src[e - 1]):
                return
        cdef Py_ssize_t[::1] slot = np.full(2 * K - 1, -1, dtype=np.intp)  # offset + K - 1
        for e in range(E):
            if slot[dst[e] - src[e] + K - 1] < 0:
                slot[dst[e] - src[e] + K - 1] = 0
                n_off += 1
        if n_off * K > 2 * E:
            return
        self.off = np.empty(n_off, dtype=np.intp)
        k = 0
        for e in range(2 * K - 1):
            if slot[e] >= 0:
                slot[e] = k
                self.off[k] = e - (K - 1)
                k += 1
        self.w = np.zeros((n_off, K))
        self.diag_of = np.empty(E, dtype=np.intp)
        for e in range(E):
            k = slot[dst[e] - src[e] + K - 1]
            self.diag_of[e] = k
            self.w[k, src[e]] = prob[e]
        self.ok = True


cdef inline void _band_sum(const double* prev, double* cur, Py_ssize_t K,
                           const Py_ssize_t* off, Py_ssize_t n_off, const double* w) noexcept nogil:
    """cur[j] = sum over the diagonals, by decreasing offset d (increasing source j - d), of
    prev[j - d] * w[d, j - d] (one forward step on the diagonal form)."""
    cdef Py_ssize_t j, k, d, lo, hi
    cdef const double* wk
    for j in range(K):
        cur[j] = 0.0
    for k in range(n_off - 1, -1, -1):
        d = off[k]
        wk = w + k * K
        lo = d if d > 0 else 0
        hi = K + d if d < 0 else K
        for j in range(lo, hi):
            cur[j] += prev[j - d] * wk[j - d]


def forward_backward_edges(
    const double[:, ::1] loglik not None,
    const Py_ssize_t[::1] offsets not None,
    const double[::1] startprob not None,
    const Py_ssize_t[::1] src not None,
    const Py_ssize_t[::1] dst not None,
    const double[::1] prob not None,
    double[:, ::1] post not None,
    double[::1] xi_edges not None,
    double[::1] seq_loglik not None,
    *,
    bint want_xi=True,
):
    """Forward-backward of many sequences over a sparse transition structure.

    The same scaled recursions as :func:`forward_backward` (per-frame maximum over the states
    the prediction reaches), with the transitions given as edges ``src[e] -> dst[e]`` of
    probability ``prob[e]`` (repeated pairs add up). ``xi_edges`` (n_edges,) is overwritten
    with the expected number of times each edge is taken, summed over frames and sequences.
    With the edges listed by (dst, src) (one per non-zero entry of the matrix), every
    output equals :func:`forward_backward`'s on the dense matrix, term for term.

    IN: ``loglik``, ``offsets``, ``startprob`` as in :func:`forward_backward`; ``src``,
    ``dst`` (n_edges,) states in [0, K); ``prob`` (n_edges,). OUT: ``post`` (n_frames, K),
    ``xi_edges`` (n_edges,), ``seq_loglik`` (n_sequences,). ``want_xi``: keyword-only
    option, as in :func:`forward_backward` (zeros when False). Scratch (per-frame emission
    weights and scales, the edges grouped by each end) is allocated here.
    Returns STATUS_OK (-1), or the index of the first sequence whose probability is zero.
    """
    cdef str kn = "forward_backward_edges"
    cdef Py_ssize_t T = loglik.shape[0], K = loglik.shape[1]
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t E = src.shape[0]
    cdef Py_ssize_t n, t, t0, t1, i, j, k, e, status = _OK
    cdef double m, c, s, a, v, total
    _check_states(kn, K)
    _check_offsets_frames(kn, offsets, T)
    _need(kn, "startprob", startprob.shape[0], K)
    _check_edges(kn, K, src, dst, prob.shape[0], "prob")
    _need2(kn, "post", post.shape[0], post.shape[1], T, K)
    _need(kn, "xi_edges", xi_edges.shape[0], E)
    _need(kn, "seq_loglik", seq_loglik.shape[0], n_seq)
    _disjoint(kn, {"post": _span_d2(post), "xi_edges": _span_d1(xi_edges),
                   "seq_loglik": _span_d1(seq_loglik)},
              {"offsets": _span_i1(offsets), "src": _span_i1(src), "dst": _span_i1(dst)})
    cdef _Grouped into = _Grouped(K, dst, src, prob)
    cdef _Grouped out_of = _Grouped(K, src, dst, prob)
    cdef _Bands bands = _Bands(K, src, dst, prob)
    cdef bint banded = bands.ok
    cdef Py_ssize_t n_off = bands.off.shape[0] if banded else 0
    cdef const Py_ssize_t* b_off = &bands.off[0] if banded else NULL
    cdef const double* b_w = &bands.w[0, 0] if banded else NULL
    cdef double[:, ::1] xi_band = np.zeros((n_off, K)) if banded else None
    cdef Py_ssize_t d, lo, hi
    cdef const double* wk
    cdef double* xk
    cdef const Py_ssize_t* in_ptr = &into.ptr[0]
    cdef const Py_ssize_t* in_src = &into.other[0] if E else NULL
    cdef const double* in_w = &into.w[0] if E else NULL
    cdef const Py_ssize_t* out_ptr = &out_of.ptr[0]
    cdef const Py_ssize_t* out_dst = &out_of.other[0] if E else NULL
    cdef const double* out_w = &out_of.w[0] if E else NULL
    cdef double[:, ::1] frame_prob = _empty2(T, K)
    cdef double[::1] scale = _empty(T)
    cdef double[::1] beta = _empty(K)
    cdef double[::1] u = _empty(K)
    cdef double[::1] xi_acc = np.zeros(E)  # sum of alpha_hat[t, src] u[t+1, dst], grouped
    cdef double* alpha
    cdef bint resc, xi_now, trouble = False
    cdef int r
    with nogil:
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
                elif banded:
                    _band_sum(&post[t - 1, 0], &post[t, 0], K, b_off, n_off, b_w)
                else:
                    _gather_sum(&post[t - 1, 0], &post[t, 0], K, in_ptr, in_src, in_w)
                if _weigh_frame(&post[t, 0], &loglik[t, 0], &frame_prob[t, 0], K, &c, &m):
                    status = n
                    break
                scale[t] = c
                total += log(c) + m
            if status >= 0:
                break
            seq_loglik[n] = total
            # ---- backward, turning alpha_hat[t] into gamma[t] ----
            resc = False
            xi_now = want_xi
            for t in range(t1 - 1, t0 - 1, -1):
                if t == t1 - 1:
                    for i in range(K):
                        beta[i] = 1.0
                elif banded:
                    # by increasing offset: increasing destination for each source
                    alpha = &post[t, 0]
                    for i in range(K):
                        beta[i] = 0.0
                    for k in range(n_off):
                        d = b_off[k]
                        wk = b_w + k * K
                        lo = -d if d < 0 else 0
                        hi = K - d if d > 0 else K
                        if xi_now:
                            xk = &xi_band[k, 0]
                            for i in range(lo, hi):
                                v = u[i + d]
                                beta[i] += wk[i] * v
                                xk[i] += alpha[i] * v
                        else:
                            for i in range(lo, hi):
                                beta[i] += wk[i] * u[i + d]
                elif xi_now:
                    # u holds u[t+1]; alpha_hat[t] is still in post[t]
                    alpha = &post[t, 0]
                    for i in range(K):
                        a = alpha[i]
                        s = 0.0
                        for k in range(out_ptr[i], out_ptr[i + 1]):
                            v = u[out_dst[k]]
                            s += out_w[k] * v
                            xi_acc[k] += a * v
                        beta[i] = s
                else:
                    for i in range(K):
                        s = 0.0
                        for k in range(out_ptr[i], out_ptr[i + 1]):
                            s += out_w[k] * u[out_dst[k]]
                        beta[i] = s
                if want_xi and resc and t < t1 - 1:
                    # beta_hat known up to a factor (_u_row): the counts divided by s[t]
                    alpha = &post[t, 0]
                    s = 0.0
                    for i in range(K):
                        s += alpha[i] * beta[i]
                    if s > 0.0 and banded:
                        for k in range(n_off):
                            d = b_off[k]
                            xk = &xi_band[k, 0]
                            lo = -d if d < 0 else 0
                            hi = K - d if d > 0 else K
                            for i in range(lo, hi):
                                xk[i] += (alpha[i] * u[i + d]) / s
                    elif s > 0.0:
                        for i in range(K):
                            a = alpha[i]
                            for k in range(out_ptr[i], out_ptr[i + 1]):
                                xi_acc[k] += (a * u[out_dst[k]]) / s
                s = _to_posterior(&post[t, 0], &beta[0], K)
                if not (s > _S_MIN and s < _S_MAX):
                    trouble = True
                if t > t0:
                    r = _u_row(&u[0], &frame_prob[t, 0], &beta[0], scale[t], 0, K, True)
                    if r == 1:
                        resc = True
                        xi_now = False
                    elif r == 2:
                        trouble = True
        # (on a status the outputs are unspecified; the caller raises)
        if banded:
            for e in range(E):
                xi_edges[e] = prob[e] * xi_band[bands.diag_of[e], src[e]]
        else:
            for k in range(E):
                xi_edges[out_of.order[k]] = out_w[k] * xi_acc[k]
    if trouble:  # again in log space, over the same edges
        status = _log_space_call(loglik, offsets, startprob, src, dst, prob, post, xi_edges,
                                 seq_loglik, None, want_xi)
    return status


def forward_loglik_edges(
    const double[:, ::1] loglik not None,
    const Py_ssize_t[::1] offsets not None,
    const double[::1] startprob not None,
    const Py_ssize_t[::1] src not None,
    const Py_ssize_t[::1] dst not None,
    const double[::1] prob not None,
    double[::1] seq_loglik not None,
):
    """Log-likelihood of each sequence by the scaled forward pass only, over a sparse
    transition structure (edges as in :func:`forward_backward_edges`): :func:`forward_loglik`
    in O(n_edges) per frame. With the edges listed by (dst, src), it equals
    :func:`forward_loglik` on the dense matrix, term for term.

    IN: ``loglik``, ``offsets``, ``startprob``, ``src``, ``dst``, ``prob`` as in
    :func:`forward_backward_edges`. OUT: ``seq_loglik`` (n_sequences,). Scratch (two rows of
    forward variables, the edges grouped by destination or as diagonals) is allocated here.
    Returns STATUS_OK (-1), or the first zero-probability sequence.
    """
    cdef str kn = "forward_loglik_edges"
    cdef Py_ssize_t T = loglik.shape[0], K = loglik.shape[1]
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t E = src.shape[0]
    cdef Py_ssize_t n, t, j, t0, t1, cur, status = _OK
    cdef double m, c, total
    _check_states(kn, K)
    _check_offsets_frames(kn, offsets, T)
    _need(kn, "startprob", startprob.shape[0], K)
    _check_edges(kn, K, src, dst, prob.shape[0], "prob")
    _need(kn, "seq_loglik", seq_loglik.shape[0], n_seq)
    _disjoint(kn, {"seq_loglik": _span_d1(seq_loglik)},
              {"offsets": _span_i1(offsets), "src": _span_i1(src), "dst": _span_i1(dst)})
    cdef _Grouped into = _Grouped(K, dst, src, prob)
    cdef _Bands bands = _Bands(K, src, dst, prob)
    cdef bint banded = bands.ok
    cdef Py_ssize_t n_off = bands.off.shape[0] if banded else 0
    cdef const Py_ssize_t* b_off = &bands.off[0] if banded else NULL
    cdef const double* b_w = &bands.w[0, 0] if banded else NULL
    cdef const Py_ssize_t* in_ptr = &into.ptr[0]
    cdef const Py_ssize_t* in_src = &into.other[0] if E else NULL
    cdef const double* in_w = &into.w[0] if E else NULL
    cdef double[:, ::1] work = _empty2(2, K)  # row (t - t0) % 2 holds frame t
    with nogil:
        for n in range(n_seq):
            t0 = offsets[n]
            t1 = offsets[n + 1]
            if t1 <= t0:
                status = n
                break
            total = 0.0
            for t in range(t0, t1):
                cur = (t - t0) & 1
                if t == t0:
                    for j in range(K):
                        work[cur, j] = startprob[j]
                elif banded:
                    _band_sum(&work[1 - cur, 0], &work[cur, 0], K, b_off, n_off, b_w)
                else:
                    _gather_sum(&work[1 - cur, 0], &work[cur, 0], K, in_ptr, in_src, in_w)
                if _weigh_frame(&work[cur, 0], &loglik[t, 0], NULL, K, &c, &m):
                    status = n
                    break
                total += log(c) + m
            if status >= 0:
                break
            seq_loglik[n] = total
    return status


def viterbi_edges(
    const double[:, ::1] loglik not None,
    const Py_ssize_t[::1] offsets not None,
    const double[::1] log_startprob not None,
    const Py_ssize_t[::1] src not None,
    const Py_ssize_t[::1] dst not None,
    const double[::1] log_prob not None,
    Py_ssize_t[::1] path not None,
    double[::1] seq_logprob not None,
):
    """Most likely state path of each sequence over a sparse transition structure (log
    space); as :func:`viterbi`, with the transitions as edges ``src[e] -> dst[e]`` of log
    probability ``log_prob[e]``. Ties go to the edge listed first: with the edges listed by
    (dst, src), to the lowest predecessor, as in :func:`viterbi` (same paths and scores).

    IN: ``loglik``, ``offsets``, ``log_startprob`` as in :func:`viterbi`; ``src``, ``dst``
    (n_edges,) states in [0, K); ``log_prob`` (n_edges,). OUT: ``path`` (n_frames,),
    ``seq_logprob`` (n_sequences,). Scratch (two rows of log scores, the (n_frames, K)
    back-pointers, the edges grouped by destination) is allocated here.
    Returns STATUS_OK (-1), or the first sequence with no path of non-zero probability.
    """
    cdef str kn = "viterbi_edges"
    cdef Py_ssize_t T = loglik.shape[0], K = loglik.shape[1]
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t E = src.shape[0]
    cdef Py_ssize_t n, t, t0, t1, j, k, best_i, cur, status = _OK
    cdef double best, v
    _check_states(kn, K)
    _check_offsets_frames(kn, offsets, T)
    _need(kn, "log_startprob", log_startprob.shape[0], K)
    _check_edges(kn, K, src, dst, log_prob.shape[0], "log_prob")
    _need(kn, "path", path.shape[0], T)
    _need(kn, "seq_logprob", seq_logprob.shape[0], n_seq)
    _disjoint(kn, {"path": _span_i1(path), "seq_logprob": _span_d1(seq_logprob)},
              {"offsets": _span_i1(offsets), "src": _span_i1(src), "dst": _span_i1(dst)})
    cdef _Grouped into = _Grouped(K, dst, src, log_prob)
    cdef const Py_ssize_t* in_ptr = &into.ptr[0]
    cdef const Py_ssize_t* in_src = &into.other[0] if E else NULL
    cdef const double* in_w = &into.w[0] if E else NULL
    cdef double[:, ::1] delta = _empty2(2, K)  # row (t - t0) % 2 holds frame t
    cdef Py_ssize_t[:, ::1] backptr = _empty2_intp(T, K)
    cdef const double* prev
    with nogil:
        for n in range(n_seq):
            t0 = offsets[n]
            t1 = offsets[n + 1]
            if t1 <= t0:
                status = n
                break
            for j in range(K):
                delta[0, j] = log_startprob[j] + loglik[t0, j]
                backptr[t0, j] = 0
            for t in range(t0 + 1, t1):
                cur = (t - t0) & 1
                prev = &delta[1 - cur, 0]
                for j in range(K):
                    best = -INFINITY
                    best_i = 0
                    for k in range(in_ptr[j], in_ptr[j + 1]):
                        v = prev[in_src[k]] + in_w[k]
                        if v > best:
                            best = v
                            best_i = in_src[k]
                    delta[cur, j] = best + loglik[t, j]
                    backptr[t, j] = best_i
            cur = (t1 - 1 - t0) & 1
            best = -INFINITY
            best_i = 0
            for j in range(K):
                if delta[cur, j] > best:
                    best = delta[cur, j]
                    best_i = j
            if best == -INFINITY:
                status = n
                break
            seq_logprob[n] = best
            # Back-pointers are checked edge ends in [0, K), in this call's own buffer.
            path[t1 - 1] = best_i
            for t in range(t1 - 1, t0, -1):
                path[t - 1] = backptr[t, path[t]]
    return status


def forward_loglik_log_edges(
    const double[:, ::1] loglik not None,
    const Py_ssize_t[::1] offsets not None,
    const double[::1] log_startprob not None,
    const Py_ssize_t[::1] src not None,
    const Py_ssize_t[::1] dst not None,
    const double[::1] log_prob not None,
    double[::1] seq_loglik not None,
):
    """Log-likelihood of each sequence by the forward pass in log space, over a sparse
    transition structure (edges as in :func:`viterbi_edges`).

    The scaled kernels lose a path whose probability falls below about 1e-308 of the best
    one within a frame (it underflows to zero); here every path keeps its exact share, so a
    sequence fails only when no path has non-zero probability. It costs about twice the
    scaled pass (an exp and a log per edge and frame): use it where the scaled pass reports
    a zero.

    IN: ``loglik``, ``offsets``, ``log_startprob``, ``src``, ``dst``, ``log_prob`` as in
    :func:`viterbi_edges`. OUT: ``seq_loglik`` (n_sequences,). Scratch (two rows of log
    forward variables, one of sums) is allocated here.
    Returns STATUS_OK (-1), or the first sequence with no path of non-zero probability.
    """
    cdef str kn = "forward_loglik_log_edges"
    cdef Py_ssize_t T = loglik.shape[0], K = loglik.shape[1]
    cdef Py_ssize_t n_seq = offsets.shape[0] - 1
    cdef Py_ssize_t E = src.shape[0]
    cdef Py_ssize_t n, t, t0, t1, j, cur, prv, status = _OK
    cdef double s
    _check_states(kn, K)
    _check_offsets_frames(kn, offsets, T)
    _need(kn, "log_startprob", log_startprob.shape[0], K)
    _check_edges(kn, K, src, dst, log_prob.shape[0], "log_prob")
    _need(kn, "seq_loglik", seq_loglik.shape[0], n_seq)
    _disjoint(kn, {"seq_loglik": _span_d1(seq_loglik)},
              {"offsets": _span_i1(offsets), "src": _span_i1(src), "dst": _span_i1(dst)})
    cdef double[:, ::1] work = _empty2(2, K)  # row (t - t0) % 2 holds frame t
    cdef double[::1] acc = _empty(K)
    with nogil:
        for n in range(n_seq):
            t0 = offsets[n]
            t1 = offsets[n + 1]
            if t1 <= t0:
                status = n
                break
            for j in range(K):
                work[0, j] = log_startprob[j] + loglik[t0, j]
            for t in range(t0 + 1, t1):
                cur = (t - t0) & 1
                prv = 1 - cur
                _log_edge_sum(&work[prv, 0], &loglik[t, 0], &work[cur, 0], &acc[0], K, E,
                              &src[0] if E else NULL, &dst[0] if E else NULL,
                              &log_prob[0] if E else NULL)
            cur = (t1 - 1 - t0) & 1
            s = _log_sum_exp(&work[cur, 0], K)
            if s == -INFINITY:
                status = n
                break
            seq_loglik[n] = s
    return status
