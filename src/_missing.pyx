# cython: language_level=3
"""Missing-data kernels for one Gaussian N(mean, cov): observed-marginal log-densities and
expected complete-data moments of rows with NaN entries.

Rows are visited in ``order`` (sorted by missingness pattern); ``starts`` marks where each
pattern's run begins (length n_runs + 1). The precision matrix is factorised once per call,
the (missing x missing) block of it once per run, so the cost is per pattern plus O(D^2)
per row. Small dense algebra is written out (D is the number of features, tens at most).
"""

from libc.math cimport log, sqrt, isnan, INFINITY
from libc.stdlib cimport malloc, free

cdef double LOG_2PI = 1.8378770664093453


cdef int _cholesky(double* A, Py_ssize_t n, Py_ssize_t ld) noexcept nogil:
    """In-place lower Cholesky of the leading n x n block (row-major, leading dim ld)."""
    cdef Py_ssize_t i, j, k
    cdef double s
    for j in range(n):
        s = A[j * ld + j]
        for k in range(j):
            s -= A[j * ld + k] * A[j * ld + k]
        if not s > 0.0:
            return 1
        s = sqrt(s)
        A[j * ld + j] = s
        for i in range(j + 1, n):
            for k in range(j):
                A[i * ld + j] -= A[i * ld + k] * A[j * ld + k]
            A[i * ld + j] /= s
    return 0


cdef void _forward(const double* L, Py_ssize_t n, Py_ssize_t ld, double* b) noexcept nogil:
    """Solve L y = b in place."""
    cdef Py_ssize_t i, k
    for i in range(n):
        for k in range(i):
            b[i] -= L[i * ld + k] * b[k]
        b[i] /= L[i * ld + i]


cdef void _backward(const double* L, Py_ssize_t n, Py_ssize_t ld, double* b) noexcept nogil:
    """Solve L^T x = b in place."""
    cdef Py_ssize_t i, k
    for i in range(n - 1, -1, -1):
        for k in range(i + 1, n):
            b[i] -= L[k * ld + i] * b[k]
        b[i] /= L[i * ld + i]


def conditional_pass(
    const double[:, ::1] X,
    const Py_ssize_t[::1] order,
    const Py_ssize_t[::1] starts,
    const double[::1] mean,
    const double[:, ::1] cov,
    double[::1] loglik,
    const double[::1] weights,
    const double[::1] shift,
    double[::1] post,
    double[::1] sum1,
    double[:, ::1] sum2,
    double[:, ::1] fill,
    bint want_loglik,
    bint want_moments,
    bint want_fill,
):
    """One pass over rows with missing entries under N(mean, cov).

    For row r = order[i] (i in [starts[0], starts[-1])), with observed entries o and missing
    entries m:

    * ``want_loglik``: ``loglik[r] = log N(x_o; mean_o, cov_oo)`` (0 when nothing observed);
    * ``want_fill``: ``fill[r]`` = the row with x_m replaced by E[x_m | x_o];
    * ``want_moments``: with w = weights[r], adds ``post[0] += w``,
      ``sum1 += w (xhat - shift)``, ``sum2 += w ((xhat - shift)(xhat - shift)^T + C)`` where C
      is the conditional covariance on the missing block (zero elsewhere); ``sum2`` must be
      symmetric on entry (the lower triangle is accumulated, then mirrored).

    Works with the precision P = cov^{-1}, factorised once per call: given x_o, x_m is normal
    with covariance C = P_mm^{-1} and mean mean_m - C P_mo (x_o - mean_o), so each pattern
    needs only an m x m Cholesky factor, and log N(x_o) = -(o/2) log 2 pi - (1/2) log|cov|
    + (1/2) log|C| - (1/2) d_o^T (P_oo - P_om C P_mo) d_o.

    Returns -1, or -2 when ``cov`` is not positive definite.
    """
    cdef Py_ssize_t n = X.shape[0], D = X.shape[1], n_runs = starts.shape[0] - 1
    cdef Py_ssize_t run, i, r, a, b, j, k, no, nm
    cdef double w, wsum, s, quad, logdet_cov = 0.0, logdet_c
    if (mean.shape[0] != D or cov.shape[0] != D or cov.shape[1] != D
            or (want_loglik and loglik.shape[0] != n)
            or (want_moments and (weights.shape[0] != n or shift.shape[0] != D
                                  or post.shape[0] != 1 or sum1.shape[0] != D
                                  or sum2.shape[0] != D or sum2.shape[1] != D))
            or (want_fill and (fill.shape[0] != n or fill.shape[1] != D))):
        raise ValueError("conditional_pass: inconsistent array shapes")
    for i in range(n_runs + 1):
        if starts[i] < 0 or starts[i] > order.shape[0] or (i and starts[i] < starts[i - 1]):
            raise ValueError("conditional_pass: bad run starts")
    for i in range(order.shape[0]):
        if order[i] < 0 or order[i] >= n:
            raise ValueError("conditional_pass: row index out of range")
    cdef double* P = <double*>malloc(D * D * sizeof(double))   # precision
    cdef double* L = <double*>malloc(D * D * sizeof(double))   # Cholesky of cov, then P_mm
    cdef double* C = <double*>malloc(D * D * sizeof(double))   # conditional covariance
    cdef double* d = <double*>malloc(D * sizeof(double))
    cdef double* g = <double*>malloc(D * sizeof(double))
    cdef double* xh = <double*>malloc(D * sizeof(double))
    cdef Py_ssize_t* obs = <Py_ssize_t*>malloc(D * sizeof(Py_ssize_t))
    cdef Py_ssize_t* mis = <Py_ssize_t*>malloc(D * sizeof(Py_ssize_t))
    if not (P and L and C and d and g and xh and obs and mis):
        free(P); free(L); free(C); free(d); free(g); free(xh); free(obs); free(mis)
        raise MemoryError()
    cdef int status = -1
    with nogil:
        # P = cov^{-1} through the Cholesky factor of cov
        for j in range(D):
            for k in range(D):
                L[j * D + k] = cov[j, k]
        if _cholesky(L, D, D):
            status = -2
        else:
            for j in range(D):
                logdet_cov += 2.0 * log(L[j * D + j])
            for k in range(D):
                for j in range(D):
                    g[j] = 1.0 if j == k else 0.0
                _forward(L, D, D, g)
                _backward(L, D, D, g)
                for j in range(D):
                    P[j * D + k] = g[j]
        for run in range(n_runs):
            if status != -1:
                break
            a = starts[run]
            b = starts[run + 1]
            if b <= a:
                continue
            r = order[a]
            no = 0
            nm = 0
            for j in range(D):
                if isnan(X[r, j]):
                    mis[nm] = j
                    nm += 1
                else:
                    obs[no] = j
                    no += 1
            # Cholesky of P_mm; log|C| = -log|P_mm|
            for j in range(nm):
                for k in range(nm):
                    L[j * D + k] = P[mis[j] * D + mis[k]]
            if _cholesky(L, nm, D):
                status = -2
                break
            logdet_c = 0.0
            for j in range(nm):
                logdet_c -= 2.0 * log(L[j * D + j])
            if want_moments:  # C = P_mm^{-1}
                for k in range(nm):
                    for j in range(nm):
                        g[j] = 1.0 if j == k else 0.0
                    _forward(L, nm, D, g)
                    _backward(L, nm, D, g)
                    for j in range(nm):
                        C[j * D + k] = g[j]
            wsum = 0.0
            for i in range(a, b):
                r = order[i]
                for j in range(no):
                    d[j] = X[r, obs[j]] - mean[obs[j]]
                for k in range(nm):  # g = P_mo d_o
                    s = 0.0
                    for j in range(no):
                        s += P[mis[k] * D + obs[j]] * d[j]
                    g[k] = s
                _forward(L, nm, D, g)  # h = Lm^{-1} g, |h|^2 = g^T C g
                if want_loglik:
                    quad = 0.0
                    for j in range(no):
                        s = 0.0
                        for k in range(j):
                            s += P[obs[j] * D + obs[k]] * d[k]
                        quad += d[j] * (2.0 * s + P[obs[j] * D + obs[j]] * d[j])
                    for k in range(nm):
                        quad -= g[k] * g[k]
                    loglik[r] = 0.5 * (logdet_c - logdet_cov - no * LOG_2PI - quad)
                if want_fill or want_moments:
                    _backward(L, nm, D, g)  # g = C P_mo d_o
                    for j in range(no):
                        xh[obs[j]] = X[r, obs[j]]
                    for k in range(nm):
                        xh[mis[k]] = mean[mis[k]] - g[k]
                    if want_fill:
                        for j in range(D):
                            fill[r, j] = xh[j]
                    if want_moments:
                        w = weights[r]
                        if w != 0.0:
                            wsum += w
                            for j in range(D):
                                xh[j] -= shift[j]
                            for j in range(D):
                                sum1[j] += w * xh[j]
                                s = w * xh[j]
                                for k in range(j + 1):
                                    sum2[j, k] += s * xh[k]
            if want_moments and wsum != 0.0:
                post[0] += wsum
                for j in range(nm):
                    for k in range(nm):
                        if mis[k] <= mis[j]:
                            sum2[mis[j], mis[k]] += wsum * C[j * D + k]
        if want_moments and status == -1:
            # only the lower triangle was accumulated above
            for j in range(D):
                for k in range(j + 1, D):
                    sum2[j, k] = sum2[k, j]
    free(P); free(L); free(C); free(d); free(g); free(xh); free(obs); free(mis)
    return status
