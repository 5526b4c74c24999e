# cython: language_level=3
"""Missing-data kernels for one Gaussian N(mean, cov): observed-marginal log-densities and
expected complete-data moments of rows with NaN entries.

Rows are visited in ``order`` (sorted by missingness pattern); ``starts`` marks where each
pattern's run begins (length n_runs + 1). The precision matrix is factorised once per call,
the (missing x missing) block of it once per run, so the cost is per pattern plus O(D^2)
per row. Small dense algebra is written out (D is the number of features, tens at most).

Conventions (as in ``_hmm``)
----------------------------
* Arguments are IN (read only, ``const`` memoryviews) or OUT (written or accumulated into;
  allocated by the caller). Arrays are C-contiguous float64 (intp for ``order`` and
  ``starts``). An output the flags do not ask for is not touched and may be empty.
* Status: -1 when all went well, -2 when ``cov`` (or the missing block of its inverse) is
  not positive definite: a property of the model, which the Python layer reports.
* Argument errors raise ``ValueError("conditional_pass: ...")``: wrong shapes, ``starts``
  that do not start at 0, decrease or do not end at ``len(order)``, row indices in ``order``
  outside [0, n_rows), ``None`` for an array, an output sharing memory with ``order`` or
  ``starts``; all checked with the GIL held before any output
  is written, in O(n_runs + len(order)), so no mistake in the calling code can make the
  kernel read or write out of bounds (the module is compiled with boundscheck and wraparound
  off). A row whose missingness pattern differs from the first row of its run (``order``
  and ``starts`` do not group rows by pattern) is found during the pass, which then stops and
  raises a ValueError as well; the outputs are then unspecified.
"""

from libc.math cimport log, sqrt, isnan, INFINITY
from libc.stdlib cimport malloc, free

cdef double LOG_2PI = 1.8378770664093453


cdef int _disjoint(str kernel, tuple outs1, tuple outs2, const Py_ssize_t[::1] order,
                   const Py_ssize_t[::1] starts) except -1:
    """Raise when an output (1-D in outs1, 2-D in outs2) overlaps ``order`` or ``starts``:
    writing it would change the row indices the pass trusts."""
    cdef double[::1] a
    cdef double[:, ::1] b
    cdef list spans = []
    for a in outs1:
        if a.shape[0]:
            spans.append((<size_t>&a[0], <size_t>&a[0] + a.shape[0] * sizeof(double)))
    for b in outs2:
        if b.shape[0] and b.shape[1]:
            spans.append((<size_t>&b[0, 0],
                          <size_t>&b[0, 0] + b.shape[0] * b.shape[1] * sizeof(double)))
    cdef dict indices = {}
    if order.shape[0]:
        indices["order"] = (<size_t>&order[0],
                            <size_t>&order[0] + order.shape[0] * sizeof(Py_ssize_t))
    if starts.shape[0]:
        indices["starts"] = (<size_t>&starts[0],
                             <size_t>&starts[0] + starts.shape[0] * sizeof(Py_ssize_t))
    for name, (lo, hi) in indices.items():
        for olo, ohi in spans:
            if olo < hi and lo < ohi:
                raise ValueError(f"{kernel}: an output shares memory with {name}")
    return 0


cdef int _need(str kernel, str name, Py_ssize_t got, Py_ssize_t want) except -1:
    if got != want:
        raise ValueError(f"{kernel}: {name} has length {got}, expected {want}")
    return 0


cdef int _need2(str kernel, str name, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t want_rows,
                Py_ssize_t want_cols) except -1:
    if rows != want_rows or cols != want_cols:
        raise ValueError(
            f"{kernel}: {name} has shape ({rows}, {cols}), expected ({want_rows}, {want_cols})")
    return 0


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
    const double[:, ::1] X not None,
    const Py_ssize_t[::1] order not None,
    const Py_ssize_t[::1] starts not None,
    const double[::1] mean not None,
    const double[:, ::1] cov not None,
    double[::1] loglik not None,
    const double[::1] weights not None,
    const double[::1] shift not None,
    double[::1] post not None,
    double[::1] sum1 not None,
    double[:, ::1] sum2 not None,
    double[:, ::1] fill not None,
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

    IN: ``X`` (n_rows, D), D >= 1; ``order`` (n_visit,) row indices in [0, n_rows);
    ``starts`` (n_runs + 1,) offsets into ``order``: 0, non-decreasing, n_visit; ``mean``
    (D,); ``cov`` (D, D); ``weights`` (n_rows,) and ``shift`` (D,) when ``want_moments``.
    OUT: ``loglik`` (n_rows,) when ``want_loglik``; ``post`` (1,), ``sum1`` (D,), ``sum2``
    (D, D) accumulated into when ``want_moments``; ``fill`` (n_rows, D) when ``want_fill``.
    Only the rows listed in ``order`` are written.

    Returns -1, or -2 when ``cov`` is not positive definite.
    """
    cdef str kn = "conditional_pass"
    cdef Py_ssize_t n = X.shape[0], D = X.shape[1], n_runs = starts.shape[0] - 1
    cdef Py_ssize_t n_visit = order.shape[0]
    cdef Py_ssize_t run, i, r, a, b, j, k, no, nm, bad_row = -1, run_row = -1
    cdef double w, wsum, s, quad, logdet_cov = 0.0, logdet_c
    if D < 1:
        raise ValueError(f"{kn}: X must have at least one feature (column), got {D}")
    _need(kn, "mean", mean.shape[0], D)
    _need2(kn, "cov", cov.shape[0], cov.shape[1], D, D)
    if want_loglik:
        _need(kn, "loglik", loglik.shape[0], n)
    if want_moments:
        _need(kn, "weights", weights.shape[0], n)
        _need(kn, "shift", shift.shape[0], D)
        _need(kn, "post", post.shape[0], 1)
        _need(kn, "sum1", sum1.shape[0], D)
        _need2(kn, "sum2", sum2.shape[0], sum2.shape[1], D, D)
    if want_fill:
        _need2(kn, "fill", fill.shape[0], fill.shape[1], n, D)
    if n_runs < 0:
        raise ValueError(f"{kn}: starts must have n_runs + 1 >= 1 entries, got 0")
    if starts[0] != 0:
        raise ValueError(f"{kn}: starts must start at 0, got starts[0] = {starts[0]}")
    for i in range(n_runs):
        if starts[i + 1] < starts[i]:
            raise ValueError(
                f"{kn}: starts must be non-decreasing, got starts[{i + 1}] = {starts[i + 1]} "
                f"< starts[{i}] = {starts[i]}")
    if starts[n_runs] != n_visit:
        raise ValueError(
            f"{kn}: starts must end at len(order) = {n_visit}, got starts[{n_runs}] = "
            f"{starts[n_runs]}")
    _disjoint(kn, (loglik, post, sum1), (sum2, fill), order, starts)
    for i in range(n_visit):
        if order[i] < 0 or order[i] >= n:
            raise ValueError(
                f"{kn}: order[{i}] = {order[i]} is not a row index of X (n_rows = {n})")
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
                if i > a:  # every row of the run must have the run's pattern: O(D)
                    for j in range(no):
                        if isnan(X[r, obs[j]]):
                            bad_row = r
                    for k in range(nm):
                        if not isnan(X[r, mis[k]]):
                            bad_row = r
                    if bad_row >= 0:
                        run_row = order[a]
                        break
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
            if bad_row >= 0:
                break
            if want_moments and wsum != 0.0:
                post[0] += wsum
                for j in range(nm):
                    for k in range(nm):
                        if mis[k] <= mis[j]:
                            sum2[mis[j], mis[k]] += wsum * C[j * D + k]
        if want_moments and status == -1 and bad_row < 0:
            # only the lower triangle was accumulated above
            for j in range(D):
                for k in range(j + 1, D):
                    sum2[j, k] = sum2[k, j]
    free(P); free(L); free(C); free(d); free(g); free(xh); free(obs); free(mis)
    if bad_row >= 0:
        raise ValueError(
            f"{kn}: row {bad_row} does not have the missingness pattern of its run (that of "
            f"row {run_row}): order and starts must group the rows by pattern")
    return status
