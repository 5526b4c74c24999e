# cython: language_level=3
"""Gaussian log-density kernels.

Both kernels evaluate differences ``x - mu`` directly (no expansion of the square), so they
stay accurate when the data sit far from the origin with small variances.

* ``log_density_diag``: out[t, k] = log_norm[k] - 0.5 * sum_d (x[t, d] - mu[k, d])**2 * prec[k, d]
* ``log_density_chol``: out[t, k] = log_norm[k] - 0.5 * ||(x[t] - mu[k]) @ P[k]||**2, where
  P[k] is the upper-triangular Cholesky factor of the precision (P P^T = Sigma^{-1}); the
  products go through BLAS dgemm on blocks of frames.

``log_norm`` is supplied by the caller (it holds the normalising constant and log-determinant),
so spherical and tied covariances are the diagonal and full kernels with repeated parameters.

Conventions (every ``def`` below; the status codes and the argument checks are shared by
all kernel modules through ``_checks.pxi``)
-----------------------------------------------------------------------------------------
* Arguments come in two groups, in this order: IN (read only, ``const`` memoryviews), then
  OUT (written, or accumulated into where the docstring says "adds"; the caller allocates
  them). ``responsibilities`` works in place: its first argument is IN/OUT. All arrays are
  C-contiguous float64. No caller passes work space: the kernels that need some (blocks of
  ``BLOCK`` = 128 rows) malloc it with the GIL held and free it after the ``nogil`` section
  (no Python exception can be raised in between, so nothing leaks).
* Status: every kernel returns an int, STATUS_OK (-1). None of these kernels has a
  data-dependent failure (an all -inf group is a valid result of ``responsibilities``); the
  status is returned so that every kernel call in emx is checked alike
  (``emx._core.check_ok``).
* Argument errors raise ``ValueError("<kernel>: <array> has shape ..., expected ...")``
  before any output is written and before the GIL is released: every shape the loops rely
  on, ``None`` for an array, an unknown ``kind``, a dimension too large for BLAS.
"""

from libc.math cimport exp, log, INFINITY
from libc.stdlib cimport calloc, malloc, free
from scipy.linalg.cython_blas cimport dgemm

include "_checks.pxi"

cdef enum:
    BLOCK = 128

# Vectorised loops of log_density_diag and accumulate_moments (kind 0, a shift per
# component): bit-identical to the scalar loops, see the header.
cdef extern from "_gauss_simd.h" nogil:
    enum:
        EMX_LD_ROWS
    int emx_gauss_forced_level
    int emx_gauss_level()
    Py_ssize_t emx_gauss_kpad(Py_ssize_t K)
    void emx_log_density_diag(const double* X, Py_ssize_t T, Py_ssize_t D, Py_ssize_t K,
                              const double* meansT, const double* precT, const double* lnp,
                              double* xtail, double* out)
    void emx_moments_diag_shifted(const double* X, const double* W, Py_ssize_t nb,
                                  Py_ssize_t D, Py_ssize_t K, const double* shiftT,
                                  double* sum1T, double* sum2T, double* scratch)
    void emx_add_rows(const double* W, Py_ssize_t nb, Py_ssize_t K, double* post)

# One pass for the data checks: smallest and largest non-NaN value, and whether a NaN was
# seen (see the header).
cdef extern from "_scan.h" nogil:
    int emx_value_range(const double* x, Py_ssize_t n, double* lo, double* hi, int level)


cdef inline void _transpose_pad(const double* a, Py_ssize_t rows, Py_ssize_t cols,
                                double* out, Py_ssize_t ld) noexcept nogil:
    """out[j * ld + i] = a[i * cols + j]: a (rows x cols) transposed into the first rows
    columns of out (cols x ld), both row-major; the caller zeroes the padding."""
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            out[j * ld + i] = a[i * cols + j]


cdef inline void _untranspose(const double* a, Py_ssize_t ld, Py_ssize_t rows,
                              Py_ssize_t cols, double* out) noexcept nogil:
    """out (rows x cols)[i, j] = a[j * ld + i]: the inverse of _transpose_pad."""
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            out[i * cols + j] = a[j * ld + i]


def _set_simd_level(int level):
    """Cap the instruction set of the vectorised loops (tests only): -1 the best the CPU
    supports, 0 baseline, 1 AVX2, 2 AVX-512 (never above what the CPU supports). Returns
    the previous cap. Not thread-safe: call it with no kernel running."""
    cdef int previous = emx_gauss_forced_level
    global emx_gauss_forced_level
    emx_gauss_forced_level = level
    return previous


def _simd_level():
    """Instruction set the vectorised loops use now: 0 baseline, 1 AVX2, 2 AVX-512."""
    return emx_gauss_level()


def value_range(const double[::1] x not None, double[::1] out not None, *, int level=-1):
    """The smallest and largest entry of ``x`` that is not NaN, and whether ``x`` holds a
    NaN, in one pass (the data checks of a fit: finiteness and magnitude).

    Parameters
    ----------
    x : IN (n,) values; infinite ones count as values (``hi == inf`` when ``x`` holds +inf).
    out : OUT (3,) receives ``lo, hi, has_nan``: ``inf, -inf`` when every entry is NaN (or
        there is none), and 1.0 or 0.0.
    level : keyword-only (tests): -1 the best loop the CPU runs, 0 the plain loop, 1 SSE2,
        2 AVX2; every loop gives the same result.

    Returns
    -------
    status : int
        STATUS_OK (-1): this kernel has no data-dependent failure.
    """
    cdef double lo = 0.0, hi = 0.0
    cdef int nan
    _need("value_range", "out", out.shape[0], 3)
    with nogil:
        nan = emx_value_range(&x[0] if x.shape[0] > 0 else NULL, x.shape[0], &lo, &hi, level)
    out[0] = lo
    out[1] = hi
    out[2] = 1.0 if nan else 0.0
    return STATUS_OK

cdef int _check_gauss(str kn, Py_ssize_t D, Py_ssize_t K, const double[:, ::1] means,
                      const double[:, ::1] precisions, const double[::1] log_norm) except -1:
    """Diagonal-density parameters: means and precisions (K, D), log_norm (K,)."""
    _need2(kn, "means", means.shape[0], means.shape[1], K, D)
    _need2(kn, "precisions", precisions.shape[0], precisions.shape[1], K, D)
    _need(kn, "log_norm", log_norm.shape[0], K)
    return 0


cdef int _check_moments_in(str kn, Py_ssize_t T, Py_ssize_t D, Py_ssize_t K,
                           const double[:, ::1] weights, const double[:, ::1] shift) except -1:
    """Moment inputs: weights (n, K), shift (K, D) or (1, D); BLAS-sized dimensions."""
    _need2(kn, "weights", weights.shape[0], weights.shape[1], T, K)
    if shift.shape[1] != D or not (shift.shape[0] == 1 or shift.shape[0] == K):
        raise ValueError(f"{kn}: shift has shape ({shift.shape[0]}, {shift.shape[1]}), "
                         f"expected ({K}, {D}) or (1, {D})")
    _check_blas_dim(kn, "n_features", D)
    _check_blas_dim(kn, "n_components", K)
    return 0


def log_density_diag(
    const double[:, ::1] X not None,
    const double[:, ::1] means not None,
    const double[:, ::1] precisions not None,
    const double[::1] log_norm not None,
    double[:, ::1] out not None,
):
    """Diagonal-covariance Gaussian log-densities.

    Each ``out[t, k]`` is summed over d in increasing d, in vectors across components
    (src/_gauss_simd.h): bit-identical to the plain loop on every instruction set.

    IN: ``X`` (n, D), ``means`` (K, D), ``precisions`` (K, D) (inverse variances),
    ``log_norm`` (K,). OUT: ``out`` (n, K). Scratch (the transposed parameters, 2 x D x KP,
    KP = K rounded up to a multiple of 8, and 8 rows of X) is calloc'ed here.
    Returns STATUS_OK (-1).
    """
    cdef str kn = "log_density_diag"
    cdef Py_ssize_t T = X.shape[0], D = X.shape[1], K = means.shape[0]
    _check_gauss(kn, D, K, means, precisions, log_norm)
    _need2(kn, "out", out.shape[0], out.shape[1], T, K)
    if T == 0 or K == 0:
        return _OK
    # The loop (src/_gauss_simd.h) runs in vectors across k, on transposed parameters padded
    # to KP columns; each out[t, k] is the same sum over d in increasing d as the scalar
    # loop's, bit for bit.
    cdef Py_ssize_t KP = emx_gauss_kpad(K)
    cdef Py_ssize_t n_scratch = 2 * D * KP + KP + EMX_LD_ROWS * D
    cdef double* meansT = <double*>calloc(n_scratch, sizeof(double))
    if not meansT:
        raise MemoryError()
    cdef double* precT = meansT + D * KP
    cdef double* lnp = precT + D * KP
    cdef double* xtail = lnp + KP
    cdef Py_ssize_t k
    with nogil:
        _transpose_pad(&means[0, 0], K, D, meansT, KP)
        _transpose_pad(&precisions[0, 0], K, D, precT, KP)
        for k in range(K):
            lnp[k] = log_norm[k]
        emx_log_density_diag(&X[0, 0], T, D, K, meansT, precT, lnp, xtail, &out[0, 0])
    free(meansT)
    return _OK


def log_density_diag_nan(
    const double[:, ::1] X not None,
    const double[:, ::1] means not None,
    const double[:, ::1] precisions not None,
    const double[::1] log_norm not None,
    const double[:, ::1] log_var not None,
    double[:, ::1] out not None,
):
    """Diagonal-covariance log-densities of the observed (non-NaN) entries of each row.

    ``log_norm[k]`` is the full normaliser of ``log_density_diag``; each missing entry d gives
    back its share, 0.5 * (log(2 pi) + log_var[k, d]). Without NaN this is exactly
    ``log_density_diag``; a row with nothing observed gets 0.

    IN: ``X`` (n, D) with NaN for missing entries, ``means``, ``precisions`` (K, D),
    ``log_norm`` (K,), ``log_var`` (K, D). OUT: ``out`` (n, K). Scratch (two blocks of
    BLOCK x D, one K x D) is malloc'ed here. Returns STATUS_OK (-1).
    """
    cdef str kn = "log_density_diag_nan"
    cdef Py_ssize_t T = X.shape[0], D = X.shape[1], K = means.shape[0]
    cdef Py_ssize_t t0, nb, b, k, d
    cdef double s, diff, x
    cdef double LOG_2PI = 1.8378770664093453
    _check_gauss(kn, D, K, means, precisions, log_norm)
    _need2(kn, "log_var", log_var.shape[0], log_var.shape[1], K, D)
    _need2(kn, "out", out.shape[0], out.shape[1], T, K)
    if T == 0 or K == 0:
        return _OK
    # Per block of rows: NaN -> 0 plus an observed mask (one branchy pass over n x D), then
    # the n x K x D loop runs branch-free:
    # out = -0.5 * sum_d obs_d * (log 2 pi + log_var_kd + (x_d - mu_kd)**2 * prec_kd).
    cdef double* x0 = <double*>malloc((BLOCK * D + 1) * sizeof(double))
    cdef double* obs = <double*>malloc((BLOCK * D + 1) * sizeof(double))
    cdef double* c = <double*>malloc((K * D + 1) * sizeof(double))
    if not (x0 and obs and c):
        free(x0); free(obs); free(c)
        raise MemoryError()
    with nogil:
        for k in range(K):
            for d in range(D):
                c[k * D + d] = LOG_2PI + log_var[k, d]
        t0 = 0
        while t0 < T:
            nb = BLOCK if T - t0 > BLOCK else T - t0
            for b in range(nb):
                for d in range(D):
                    x = X[t0 + b, d]
                    if x == x:
                        x0[b * D + d] = x
                        obs[b * D + d] = 1.0
                    else:
                        x0[b * D + d] = 0.0
                        obs[b * D + d] = 0.0
            for b in range(nb):
                for k in range(K):
                    s = 0.0
                    for d in range(D):
                        diff = x0[b * D + d] - means[k, d]
                        s += obs[b * D + d] * (c[k * D + d] + diff * diff * precisions[k, d])
                    out[t0 + b, k] = -0.5 * s
            t0 += nb
    free(x0); free(obs); free(c)
    return _OK


def accumulate_moments_nan_diag(
    const double[:, ::1] X not None,
    const double[:, ::1] weights not None,
    const double[:, ::1] shift not None,
    double[::1] post not None,
    double[:, ::1] sum1 not None,
    double[:, ::1] sum2 not None,
    double[:, ::1] missing_weight not None,
):
    """``accumulate_moments`` (kind 'diag') over the observed entries of rows with NaN.

    ``shift`` is (K, D), one point per component, or (1, D), one for all. Adds
    ``post[k] += sum_t w[t, k]``, ``sum1[k] += sum_t w[t, k] [x observed] (x_t - s_k)``,
    ``sum2[k] += sum_t w[t, k] [x observed] (x_t - s_k)**2`` and
    ``missing_weight[k, d] += sum_t w[t, k] [x_td missing]``: the caller adds the expected
    contribution of the missing entries, which depends on each component's mean and variance.

    IN: ``X`` (n, D) with NaN for missing entries, ``weights`` (n, K), ``shift`` (K, D) or
    (1, D). OUT (added to): ``post`` (K,), ``sum1``, ``sum2``, ``missing_weight`` (K, D).
    Scratch (3 blocks of BLOCK x D) is malloc'ed here. Returns STATUS_OK (-1).
    """
    cdef str kn = "accumulate_moments_nan_diag"
    cdef Py_ssize_t T = X.shape[0], D = X.shape[1], K = weights.shape[1]
    cdef Py_ssize_t S = shift.shape[0]
    cdef Py_ssize_t t0, nb, b, k, d
    cdef double x, w, dx
    cdef int m_, n_, k_, ldw, ldd
    cdef double one = 1.0
    cdef char N = b'N', Tr = b'T'
    _check_moments_in(kn, T, D, K, weights, shift)
    _need(kn, "post", post.shape[0], K)
    _need2(kn, "sum1", sum1.shape[0], sum1.shape[1], K, D)
    _need2(kn, "sum2", sum2.shape[0], sum2.shape[1], K, D)
    _need2(kn, "missing_weight", missing_weight.shape[0], missing_weight.shape[1], K, D)
    if T == 0 or D == 0 or K == 0:
        return _OK
    cdef double* diff = <double*>malloc(3 * BLOCK * D * sizeof(double))
    if not diff:
        raise MemoryError()
    cdef double* sq = diff + BLOCK * D
    cdef double* miss = diff + 2 * BLOCK * D
    ldw = <int>K
    ldd = <int>D
    m_ = <int>D
    n_ = <int>K
    with nogil:
        if S == K and K > 1:
            for t0 in range(T):
                for k in range(K):
                    w = weights[t0, k]
                    post[k] += w
                    for d in range(D):
                        x = X[t0, d]
                        if x == x:
                            dx = x - shift[k, d]
                            sum1[k, d] += w * dx
                            sum2[k, d] += w * dx * dx
                        else:
                            missing_weight[k, d] += w
        else:
            t0 = 0
            while t0 < T:
                nb = BLOCK if T - t0 > BLOCK else T - t0
                k_ = <int>nb
                for b in range(nb):
                    for d in range(D):
                        x = X[t0 + b, d]
                        if x == x:
                            diff[b * D + d] = x - shift[0, d]
                            sq[b * D + d] = diff[b * D + d] * diff[b * D + d]
                            miss[b * D + d] = 0.0
                        else:
                            diff[b * D + d] = 0.0
                            sq[b * D + d] = 0.0
                            miss[b * D + d] = 1.0
                    for k in range(K):
                        post[k] += weights[t0 + b, k]
                dgemm(&N, &Tr, &m_, &n_, &k_, &one, diff, &ldd, <double*>&weights[t0, 0], &ldw,
                      &one, &sum1[0, 0], &ldd)
                dgemm(&N, &Tr, &m_, &n_, &k_, &one, sq, &ldd, <double*>&weights[t0, 0], &ldw,
                      &one, &sum2[0, 0], &ldd)
                dgemm(&N, &Tr, &m_, &n_, &k_, &one, miss, &ldd, <double*>&weights[t0, 0], &ldw,
                      &one, &missing_weight[0, 0], &ldd)
                t0 += nb
    free(diff)
    return _OK


def log_density_chol(
    const double[:, ::1] X not None,
    const double[:, ::1] means not None,
    const double[:, :, ::1] prec_chol not None,
    const double[::1] log_norm not None,
    double[:, ::1] out not None,
):
    """Full-covariance Gaussian log-densities through precision Cholesky factors.

    IN: ``X`` (n, D), ``means`` (K, D), ``prec_chol`` (K, D, D), ``log_norm`` (K,).
    OUT: ``out`` (n, K). Scratch (2 blocks of BLOCK x D) is malloc'ed here.
    Returns STATUS_OK (-1).
    """
    cdef str kn = "log_density_chol"
    cdef Py_ssize_t T = X.shape[0], D = X.shape[1], K = means.shape[0]
    cdef Py_ssize_t t0, nb, b, k, d
    cdef double s, y
    cdef int m_, n_, k_, ld
    cdef double one = 1.0, zero = 0.0
    cdef char transa = b'N', transb = b'N'
    _need2(kn, "means", means.shape[0], means.shape[1], K, D)
    if prec_chol.shape[0] != K or prec_chol.shape[1] != D or prec_chol.shape[2] != D:
        raise ValueError(
            f"{kn}: prec_chol has shape ({prec_chol.shape[0]}, {prec_chol.shape[1]}, "
            f"{prec_chol.shape[2]}), expected ({K}, {D}, {D})")
    _need(kn, "log_norm", log_norm.shape[0], K)
    _need2(kn, "out", out.shape[0], out.shape[1], T, K)
    _check_blas_dim(kn, "n_features", D)
    if T == 0 or D == 0 or K == 0:
        return _OK
    cdef double* diff = <double*>malloc(2 * BLOCK * D * sizeof(double))
    if not diff:
        raise MemoryError()
    cdef double* prod = diff + BLOCK * D
    m_ = <int>D
    k_ = <int>D
    ld = <int>D
    with nogil:
        t0 = 0
        while t0 < T:
            nb = BLOCK if T - t0 > BLOCK else T - t0
            n_ = <int>nb
            for k in range(K):
                for b in range(nb):
                    for d in range(D):
                        diff[b * D + d] = X[t0 + b, d] - means[k, d]
                # Row-major prod (nb x D) = diff (nb x D) @ P_k (D x D); BLAS is column-major,
                # so compute prod^T = P_k^T diff^T with the row-major buffers as they are.
                dgemm(&transa, &transb, &m_, &n_, &k_, &one, <double*>&prec_chol[k, 0, 0], &ld,
                      diff, &ld, &zero, prod, &ld)
                for b in range(nb):
                    s = 0.0
                    for d in range(D):
                        y = prod[b * D + d]
                        s += y * y
                    out[t0 + b, k] = log_norm[k] - 0.5 * s
            t0 += nb
    free(diff)
    return _OK


def accumulate_moments(
    const double[:, ::1] X not None,
    const double[:, ::1] weights not None,
    const double[:, ::1] shift not None,
    int kind,
    double[::1] post not None,
    double[:, ::1] sum1 not None,
    double[:, ::1] sum2 not None,
):
    """Add weighted moments of the rows of ``X`` about a shift per component to the outputs.

    ``weights`` is (n, K); ``shift`` is (K, D), one point per component (component k's moments
    are taken about ``shift[k]``), or (1, D), the same point for every component. Adds
    ``post[k] += sum_t w[t, k]``, ``sum1[k] += sum_t w[t, k] (x_t - s_k)`` and, by ``kind``:

    * 0 ('diag'): ``sum2`` (K, D), ``sum2[k] += sum_t w[t, k] (x_t - s_k)**2``
    * 1 ('full'): ``sum2`` (K * D, D), block k ``+= sum_t w[t, k] d_tk d_tk^T``
    * 2 ('tied'): ``sum2`` (D, D) ``+= sum_t sum_k w[t, k] d_tk d_tk^T``

    with ``d_tk = x_t - s_k``. Differences are formed directly, BLOCK frames at a time, and
    the sums go through dgemm, except for 'diag' with a shift per component, whose sums add
    the frames one by one in increasing t, in vectors across components
    (src/_gauss_simd.h; bit-identical on every instruction set). Taking each component's
    moments about a point near its mean (its previous mean, say) keeps its second moments
    free of cancellation however far it sits from the other components.

    IN: ``X`` (n, D), ``weights`` (n, K), ``shift`` (K, D) or (1, D), ``kind`` (0, 1, 2).
    OUT (added to): ``post`` (K,), ``sum1`` (K, D), ``sum2`` (shape by ``kind``).
    Scratch (2 blocks of BLOCK x D; for 'diag' with a shift per component also the
    transposed shift and sums, 3 x D x KP, and a block of weights, BLOCK x KP, KP = K
    rounded up to a multiple of 8) is allocated here. Returns STATUS_OK (-1).
    """
    cdef str kn = "accumulate_moments"
    cdef Py_ssize_t T = X.shape[0], D = X.shape[1], K = weights.shape[1]
    cdef Py_ssize_t S = shift.shape[0]
    cdef Py_ssize_t t0, nb, b, k, d, s0
    cdef double w
    cdef int m_, n_, k_, ldw, ldd
    cdef double one = 1.0
    cdef char N = b'N', Tr = b'T'
    _check_moments_in(kn, T, D, K, weights, shift)
    if kind < 0 or kind > 2:
        raise ValueError(f"{kn}: kind must be 0 (diag), 1 (full) or 2 (tied), got {kind}")
    _need(kn, "post", post.shape[0], K)
    _need2(kn, "sum1", sum1.shape[0], sum1.shape[1], K, D)
    _need2(kn, "sum2", sum2.shape[0], sum2.shape[1],
           K if kind == 0 else (K * D if kind == 1 else D), D)
    if T == 0 or D == 0 or K == 0:
        return _OK
    cdef double* diff = <double*>malloc(2 * BLOCK * D * sizeof(double))
    if not diff:
        raise MemoryError()
    cdef double* other = diff + BLOCK * D
    # kind 0 with a shift per component: the sums accumulate in transposed (D x K) copies.
    # Padded to D x KP (src/_gauss_simd.h), plus scratch for a block of padded weights.
    cdef bint shifted_diag = S != 1 and kind == 0
    cdef Py_ssize_t KP = emx_gauss_kpad(K)
    cdef double* shT = NULL
    cdef double* s1T = NULL
    cdef double* s2T = NULL
    cdef double* pad = NULL
    if shifted_diag:
        shT = <double*>calloc(3 * D * KP + BLOCK * KP, sizeof(double))
        if not shT:
            free(diff)
            raise MemoryError()
        s1T = shT + D * KP
        s2T = shT + 2 * D * KP
        pad = shT + 3 * D * KP
    ldw = <int>K
    ldd = <int>D
    with nogil:
        if shifted_diag:
            _transpose_pad(&shift[0, 0], K, D, shT, KP)
            _transpose_pad(&sum1[0, 0], K, D, s1T, KP)
            _transpose_pad(&sum2[0, 0], K, D, s2T, KP)
        t0 = 0
        while t0 < T:
            nb = BLOCK if T - t0 > BLOCK else T - t0
            k_ = <int>nb
            emx_add_rows(&weights[t0, 0], nb, K, &post[0])
            if S == 1:
                for b in range(nb):
                    for d in range(D):
                        diff[b * D + d] = X[t0 + b, d] - shift[0, d]
                # Row-major sum1 (K x D) += w^T (K x nb) diff (nb x D); in column-major
                # terms sum1^T (D x K) += diff^T (D x nb) w (nb x K).
                m_ = <int>D
                n_ = <int>K
                dgemm(&N, &Tr, &m_, &n_, &k_, &one, diff, &ldd, <double*>&weights[t0, 0],
                      &ldw, &one, &sum1[0, 0], &ldd)
                if kind == 0:
                    for b in range(nb * D):
                        other[b] = diff[b] * diff[b]
                    dgemm(&N, &Tr, &m_, &n_, &k_, &one, other, &ldd,
                          <double*>&weights[t0, 0], &ldw, &one, &sum2[0, 0], &ldd)
                else:
                    n_ = <int>D
                    for k in range(K if kind == 1 else 1):
                        for b in range(nb):
                            if kind == 1:
                                w = weights[t0 + b, k]
                            else:
                                w = 0.0
                                for d in range(K):
                                    w = w + weights[t0 + b, d]
                            for d in range(D):
                                other[b * D + d] = diff[b * D + d] * w
                        # (D x D) += diff^T (D x nb) other (nb x D), symmetric.
                        dgemm(&N, &Tr, &m_, &n_, &k_, &one, diff, &ldd, other, &ldd, &one,
                              &sum2[k * D if kind == 1 else 0, 0], &ldd)
            elif kind == 0:
                # Every component's sums in frame order, on transposed (D x K) copies
                # (src/_gauss_simd.h: k innermost, vectorised): per element the same
                # operations in the same order as the scalar loop
                # sum1[k, d] += (x - s) * w;  sum2[k, d] += ((x - s) * w) * (x - s).
                emx_moments_diag_shifted(&X[t0, 0], &weights[t0, 0], nb, D, K, shT, s1T, s2T,
                                         pad)
            else:
                for k in range(K):
                    for b in range(nb):
                        w = weights[t0 + b, k]
                        for d in range(D):
                            diff[b * D + d] = X[t0 + b, d] - shift[k, d]
                            other[b * D + d] = diff[b * D + d] * w
                    # sum1[k] (D) += other^T 1: plain sums in frame order.
                    for b in range(nb):
                        for d in range(D):
                            sum1[k, d] += other[b * D + d]
                    m_ = <int>D
                    n_ = <int>D
                    s0 = k * D if kind == 1 else 0
                    dgemm(&N, &Tr, &m_, &n_, &k_, &one, diff, &ldd, other, &ldd, &one,
                          &sum2[s0, 0], &ldd)
            t0 += nb
        if shifted_diag:
            _untranspose(s1T, KP, K, D, &sum1[0, 0])
            _untranspose(s2T, KP, K, D, &sum2[0, 0])
    free(diff)
    free(shT)
    return _OK


def responsibilities(
    double[:, ::1] logp not None,
    const double[::1] log_weights not None,
    double[:, ::1] log_norm not None,
):
    """Turn log-densities into responsibilities within groups of columns, in place.

    ``logp`` is (n, G * M): G groups of M components (a mixture has G = 1; a GMM-HMM has
    one group per state). On entry ``logp[t, g * M + m]`` is ``log N(x_t | g, m)``; on exit it
    is ``p(m | x_t, g)``, and ``log_norm[t, g] = log sum_m w[g, m] N(x_t | g, m)``
    (log-sum-exp with the group maximum subtracted). ``log_weights`` (G * M) may hold -inf;
    a group whose every term is -inf gets ``log_norm = -inf`` and responsibilities 0.

    IN/OUT: ``logp`` (n, G * M), in place. IN: ``log_weights`` (G * M,). OUT: ``log_norm``
    (n, G). Returns STATUS_OK (-1).
    """
    cdef str kn = "responsibilities"
    cdef Py_ssize_t T = logp.shape[0], C = logp.shape[1], G = log_norm.shape[1]
    cdef Py_ssize_t t, g, k, M, k0
    cdef double m, s, v
    _need(kn, "log_weights", log_weights.shape[0], C)
    if G == 0 or C % G != 0:
        raise ValueError(f"{kn}: log_norm has {G} columns (groups), which must be >= 1 and "
                         f"divide the {C} columns of logp")
    _need2(kn, "log_norm", log_norm.shape[0], log_norm.shape[1], T, G)
    M = C // G
    with nogil:
        for t in range(T):
            for g in range(G):
                k0 = g * M
                m = -INFINITY
                for k in range(k0, k0 + M):
                    v = logp[t, k] + log_weights[k]
                    logp[t, k] = v
                    if v > m:
                        m = v
                if m == -INFINITY:
                    log_norm[t, g] = -INFINITY
                    for k in range(k0, k0 + M):
                        logp[t, k] = 0.0
                    continue
                s = 0.0
                for k in range(k0, k0 + M):
                    v = exp(logp[t, k] - m)
                    logp[t, k] = v
                    s += v
                for k in range(k0, k0 + M):
                    logp[t, k] /= s
                log_norm[t, g] = m + log(s)
    return _OK
