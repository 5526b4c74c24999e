# cython: language_level=3
"""Missing-data kernels for one Gaussian N(mean, cov): observed-marginal log-densities and
expected complete-data moments of rows with NaN entries.

Rows are visited in ``order`` (sorted by missingness pattern); ``starts`` marks where each
pattern's run begins (length n_runs + 1). The precision matrix is factorised once per call,
the (missing x missing) block of it once per run, so the cost is per pattern plus O(D^2)
per row. Small dense algebra is written out (D is the number of features, tens at most).

Conventions (every ``def`` below; the status codes and the argument checks are shared by
all kernel modules through ``_checks.pxi``)
-----------------------------------------------------------------------------------------
* Arguments come in two groups: IN (read only, ``const`` memoryviews), then OUT (written or
  accumulated into; allocated by the caller, who reuses them across components). The five
  arrays every call needs are positional; the optional groups are keyword-only and an
  output is computed exactly when it is passed (no flags): ``loglik``; ``fill``; the
  moments ``post``, ``sum1``, ``sum2`` with their inputs ``weights`` and ``shift`` (all five
  or none). Arrays are C-contiguous float64 (intp for ``order`` and ``starts``). The work
  space (O(D^2)) is malloc'ed here and freed on every path.
* Status: STATUS_OK (-1) when all went well, STATUS_NOT_PD (-2) when ``cov`` (or the
  missing block of its inverse) is not positive definite: a property of the model, which
  the Python layer reports.
* Argument errors raise ``ValueError("conditional_pass: ...")``: wrong shapes, ``starts``
  that do not start at 0, decrease or do not end at ``len(order)``, row indices in ``order``
  outside [0, n_rows), ``None`` for a required array, a moments group given in part, an
  output sharing memory with ``order`` or ``starts``; all checked with the GIL held before
  any output is written, in O(n_runs + len(order)), so no mistake in the calling code can
  make the kernel read or write out of bounds (the module is compiled with boundscheck and
  wraparound off). A row whose missingness pattern differs from the first row of its run
  (``order`` and ``starts`` do not group rows by pattern) is found during the pass, which
  then stops and raises a ValueError as well; the outputs are then unspecified.
"""

from libc.math cimport log, sqrt, isnan, INFINITY
from libc.stdlib cimport malloc, free

include "_checks.pxi"

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
    const double[:, ::1] X not None,
    const Py_ssize_t[::1] order not None,
    const Py_ssize_t[::1] starts not None,
    const double[::1] mean not None,
    const double[:, ::1] cov not None,
    *,
    const double[::1] weights=None,
    const double[::1] shift=None,
    double[::1] loglik=None,
    double[:, ::1] fill=None,
    double[::1] post=None,
    double[::1] sum1=None,
    double[:, ::1] sum2=None,
):
    """One pass over rows with missing entries under N(mean, cov).

    For row r = order[i] (i in [starts[0], starts[-1])), with observed entries o and missing
    entries m:

    * ``loglik`` given: ``loglik[r] = log N(x_o; mean_o, cov_oo)`` (0 when nothing observed);
    * ``fill`` given: ``fill[r]`` = the row with x_m replaced by E[x_m | x_o];
    * moments given (``weights``, ``shift``, ``post``, ``sum1``, ``sum2``): with
      w = weights[r], adds ``post[0] += w``, ``sum1 += w (xhat - shift)``,
      ``sum2 += w ((xhat - shift)(xhat - shift)^T + C)`` where C is the conditional
      covariance on the missing block (zero elsewhere); ``sum2`` must be symmetric on entry
      (the lower triangle is accumulated, then mirrored).

    Works with the precision P = cov^{-1}, factorised once per call: given x_o, x_m is normal
    with covariance C = P_mm^{-1} and mean mean_m - C P_mo (x_o - mean_o), so each pattern
    needs only an m x m Cholesky factor, and log N(x_o) = -(o/2) log 2 pi - (1/2) log|cov|
    + (1/2) log|C| - (1/2) d_o^T (P_oo - P_om C P_mo) d_o.

    Parameters
    ----------
    X : IN (n_rows, D), D >= 1, NaN for missing entries.
    order : IN (n_visit,) row indices in [0, n_rows).
    starts : IN (n_runs + 1,) offsets into ``order``: 0, non-decreasing, n_visit.
    mean, cov : IN (D,) and (D, D).
    weights, shift : IN, keyword-only, (n_rows,) and (D,): the moments' inputs.
    loglik : OUT, keyword-only, optional (n_rows,).
    fill : OUT, keyword-only, optional (n_rows, D).
    post, sum1, sum2 : OUT, keyword-only, (1,), (D,) and (D, D), accumulated into.

    Only the rows listed in ``order`` are written.

    Returns
    -------
    status : int
        STATUS_OK (-1), or STATUS_NOT_PD (-2) when ``cov`` is not positive definite.
    """
    cdef str kn = "conditional_pass"
    cdef Py_ssize_t n = X.shape[0], D = X.shape[1], n_runs = starts.shape[0] - 1
    cdef Py_ssize_t n_visit = order.shape[0]
    cdef Py_ssize_t run, i, r, a, b, j, k, no, nm, bad_row = -1, run_row = -1
    cdef double w, wsum, s, quad, logdet_cov = 0.0, logdet_c
    cdef bint want_loglik = loglik is not None
    cdef bint want_fill = fill is not None
    cdef bint want_moments = post is not None
    if D < 1:
        raise ValueError(f"{kn}: X must have at least one feature (column), got {D}")
    _need(kn, "mean", mean.shape[0], D)
    _need2(kn, "cov", cov.shape[0], cov.shape[1], D, D)
    if want_loglik:
        _need(kn, "loglik", loglik.shape[0], n)
    if want_moments:
        for name, arr in (("weights", weights), ("shift", shift), ("sum1", sum1),
                          ("sum2", sum2)):
            _need_given(kn, name, arr, "with post (the moments take weights, shift, post, "
                        "sum1 and sum2)")
        _need(kn, "weights", weights.shape[0], n)
        _need(kn, "shift", shift.shape[0], D)
        _need(kn, "post", post.shape[0], 1)
        _need(kn, "sum1", sum1.shape[0], D)
        _need2(kn, "sum2", sum2.shape[0], sum2.shape[1], D, D)
    else:
        for name, arr in (("weights", weights), ("shift", shift), ("sum1", sum1),
                          ("sum2", sum2)):
            if arr is not None:
                raise ValueError(f"{kn}: {name} was given without post (the moments take "
                                 "weights, shift, post, sum1 and sum2)")
    if want_fill:
        _need2(kn, "fill", fill.shape[0], fill.shape[1], n, D)
    _check_offsets(kn, "starts", starts, n_visit, "len(order) =", "runs")
    _disjoint(kn, {"loglik": _span_d1(loglik), "fill": _span_d2(fill), "post": _span_d1(post),
                   "sum1": _span_d1(sum1), "sum2": _span_d2(sum2)},
              {"order": _span_i1(order), "starts": _span_i1(starts)})
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
    cdef int status = _OK
    with nogil:
        # P = cov^{-1} through the Cholesky factor of cov
        for j in range(D):
            for k in range(D):
                L[j * D + k] = cov[j, k]
        if _cholesky(L, D, D):
            status = _NOT_PD
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
            if status != _OK:
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
                status = _NOT_PD
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
        if want_moments and status == _OK and bad_row < 0:
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
