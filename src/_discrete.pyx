# cython: language_level=3
"""Categorical-emission kernels: state log-likelihoods by a gather, posterior-weighted counts.

An observation is a symbol ``s`` in [0, n_symbols). With ``log_emission`` the (n_symbols, K)
table of ``log P(symbol | state)`` (the transpose of ``log emissionprob_``, so that one row is
gathered per frame), the state log-likelihoods of a frame are one row of the table; the
sufficient statistics of an E-step are the state posteriors summed per symbol. Kernels hold
no model policy (no priors, no normalisation).

Conventions (every ``def`` below; the status codes and the argument checks are shared by
all kernel modules through ``_checks.pxi``)
-----------------------------------------------------------------------------------------
* Arguments are marked IN (read only, ``const`` memoryviews) or OUT (overwritten; the caller
  allocates them), inputs first. All arrays are C-contiguous: float64, or intp for symbols.
  No scratch.
* Status: a kernel returns STATUS_OK (-1) when all went well. No data-dependent failure is
  reported by status here: every symbol is checked against the table before the loops run
  (callers check the status with ``emx._core.check_ok``).
* Argument errors raise ``ValueError("<kernel>: ...")`` before any output is written and
  before the GIL is released: wrong shapes, ``None`` for a required array, a symbol outside
  [0, n_symbols) (naming the first such frame). Every index the compiled loops use is checked
  there, in O(n_frames) time, so no mistake in the calling code can make a kernel read or
  write out of bounds (the module is compiled with boundscheck and wraparound off).
"""

include "_checks.pxi"


cdef int _check_symbols(str kernel, const Py_ssize_t[::1] symbols,
                        Py_ssize_t n_symbols) except -1:
    """Raise unless every symbol lies in [0, n_symbols)."""
    cdef Py_ssize_t t, s, n = symbols.shape[0]
    cdef Py_ssize_t bad = -1
    with nogil:
        for t in range(n):
            s = symbols[t]
            if s < 0 or s >= n_symbols:
                bad = t
                break
    if bad >= 0:
        raise ValueError(
            f"{kernel}: symbols[{bad}] = {symbols[bad]} is outside [0, {n_symbols})")
    return 0


def categorical_loglik(
    const Py_ssize_t[::1] symbols not None,
    const double[:, ::1] log_emission not None,
    double[:, ::1] loglik not None,
):
    """State log-likelihoods of symbol frames: ``loglik[t] = log_emission[symbols[t]]``.

    Parameters
    ----------
    symbols : IN (n_frames,) symbols, each in [0, n_symbols).
    log_emission : IN (n_symbols, K) log P(symbol | state) (finite or -inf).
    loglik : OUT (n_frames, K).

    Returns
    -------
    status : int
        STATUS_OK (-1).
    """
    cdef str kn = "categorical_loglik"
    cdef Py_ssize_t T = symbols.shape[0], M = log_emission.shape[0]
    cdef Py_ssize_t K = log_emission.shape[1]
    cdef Py_ssize_t t, k, s
    _need2(kn, "loglik", loglik.shape[0], loglik.shape[1], T, K)
    _check_symbols(kn, symbols, M)
    with nogil:
        for t in range(T):
            s = symbols[t]
            for k in range(K):
                loglik[t, k] = log_emission[s, k]
    return _OK


def categorical_counts(
    const Py_ssize_t[::1] symbols not None,
    const double[:, ::1] post not None,
    double[:, ::1] counts not None,
):
    """Posterior-weighted symbol counts: ``counts[k, s] = sum of post[t, k] over the frames t
    with symbols[t] == s``, summed in frame order.

    Parameters
    ----------
    symbols : IN (n_frames,) symbols, each in [0, n_symbols).
    post : IN (n_frames, K) state posteriors.
    counts : OUT (K, n_symbols), overwritten.

    Returns
    -------
    status : int
        STATUS_OK (-1).
    """
    cdef str kn = "categorical_counts"
    cdef Py_ssize_t T = symbols.shape[0], K = counts.shape[0], M = counts.shape[1]
    cdef Py_ssize_t t, k, s
    _need2(kn, "post", post.shape[0], post.shape[1], T, K)
    _check_symbols(kn, symbols, M)
    with nogil:
        for k in range(K):
            for s in range(M):
                counts[k, s] = 0.0
        for t in range(T):
            s = symbols[t]
            for k in range(K):
                counts[k, s] += post[t, k]
    return _OK
