# cython: language_level=3
"""Missing-data kernels for one Gaussian N(mean, cov): observed-marginal log-densities and
expected complete-data moments of rows with NaN entries.

Rows are visited in ``order`` (sorted by missingness pattern); ``starts`` marks where each
pattern's run begins (length n_runs + 1). The Cholesky factor of the observed block and the
conditional covariance are computed once per run, so the cost is per pattern plus O(D^2) per
row. Small dense algebra is written out (D is the number of features, tens at most).
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

    For row r = order[i] (i in [starts[0], starts[-1])), with observed entries o:

    * ``want_loglik``: ``loglik[r] = log N(x_o; mean_o, cov_oo)`` (0 when nothing observed);
    * ``want_fill``: ``fill[r]`` = the row with x_m replaced by E[x_m | x_o];
    * ``want_moments``: with w = weights[r], adds ``post[0] += w``,
      ``sum1 += w (xhat - shift)``, ``sum2 += w ((xhat - shift)(xhat - shift)^T + C)`` where C
      is the conditional covariance on the missing block (zero elsewhere).

    Returns -1, or the row index where ``cov`` restricted to the observed entries was not
    positive definite.
    """
    cdef Py_ssize_t n = X.shape[0], D = X.shape[1], n_runs = starts.shape[0] - 1
    cdef Py_ssize_t run, i, r, a, b, j, k, no, nm, status = -1
    cdef double w, wsum, s, ll_norm
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
    cdef double* L = <double*>malloc(D * D * sizeof(double))
    cdef double* Bt = <double*>malloc(D * D * sizeof(double))  # S_oo^{-1} S_om, (no x nm)
    cdef double* C = <double*>malloc(D * D * sizeof(double))
    cdef double* y = <double*>malloc(D * sizeof(double))
    cdef double* xh = <double*>malloc(D * sizeof(double))
    cdef Py_ssize_t* obs = <Py_ssize_t*>malloc(D * sizeof(Py_ssize_t))
    cdef Py_ssize_t* mis = <Py_ssize_t*>malloc(D * sizeof(Py_ssize_t))
    if not (L and Bt and C and y and xh and obs and mis):
        free(L); free(Bt); free(C); free(y); free(xh); free(obs); free(mis)
        raise MemoryError()
    with nogil:
        for run in range(n_runs):
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
            # Cholesky of the observed block
            for j in range(no):
                for k in range(no):
                    L[j * D + k] = cov[obs[j], obs[k]]
            if _cholesky(L, no, D):
                status = r
                break
            ll_norm = -0.5 * no * LOG_2PI
            for j in range(no):
                ll_norm -= log(L[j * D + j])
            # Bt = S_oo^{-1} S_om (column by column) and C = S_mm - S_mo Bt
            if want_moments or want_fill:
                for k in range(nm):
                    for j in range(no):
                        y[j] = cov[obs[j], mis[k]]
                    _forward(L, no, D, y)
                    _backward(L, no, D, y)
                    for j in range(no):
                        Bt[j * D + k] = y[j]
                if want_moments:
                    for j in range(nm):
                        for k in range(nm):
                            s = cov[mis[j], mis[k]]
                            for i in range(no):
                                s -= cov[mis[j], obs[i]] * Bt[i * D + k]
                            C[j * D + k] = s
            wsum = 0.0
            for i in range(a, b):
                r = order[i]
                for j in range(no):
                    y[j] = X[r, obs[j]] - mean[obs[j]]
                if want_fill or want_moments:
                    for j in range(no):
                        xh[obs[j]] = X[r, obs[j]]
                    for k in range(nm):
                        s = mean[mis[k]]
                        for j in range(no):
                            s += y[j] * Bt[j * D + k]
                        xh[mis[k]] = s
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
                                for k in range(D):
                                    sum2[j, k] += s * xh[k]
                if want_loglik:
                    if no == 0:
                        loglik[r] = 0.0
                    else:
                        _forward(L, no, D, y)
                        s = 0.0
                        for j in range(no):
                            s += y[j] * y[j]
                        loglik[r] = ll_norm - 0.5 * s
            if want_moments and wsum != 0.0:
                post[0] += wsum
                for j in range(nm):
                    for k in range(nm):
                        sum2[mis[j], mis[k]] += wsum * C[j * D + k]
    free(L); free(Bt); free(C); free(y); free(xh); free(obs); free(mis)
    return status
