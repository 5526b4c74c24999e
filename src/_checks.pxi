# Shared by every kernel module (``include "_checks.pxi"`` in _hmm.pyx, _gauss.pyx,
# _missing.pyx and _discrete.pyx; listed in meson.build): the status codes, and the argument
# checks that run with the GIL held, before any output is written and before ``nogil``. Each
# check costs O(1) per array, plus one pass over an offsets array where one is checked.

# ------------------------------------------------------------------------------ status
# Every entry point returns an int status (the same convention in every kernel module):
#   STATUS_OK (-1)      success;
#   n >= 0              the caller's data item n (a sequence, for the HMM kernels) has
#                       probability zero under the model: the Python layer raises a
#                       ValueError naming it;
#   STATUS_NOT_PD (-2)  a covariance parameter (or a block of its inverse) is not positive
#                       definite: a property of the model, reported by the Python layer.
# A kernel with no data-dependent failure returns STATUS_OK all the same, so that every call
# is checked alike. Argument errors (shapes, offsets, indices, aliasing) are not statuses:
# they raise ValueError("<kernel>: ...") before anything is written.
STATUS_OK = -1
STATUS_NOT_PD = -2

cdef enum:
    _OK = -1
    _NOT_PD = -2


# ------------------------------------------------------------------------ argument checks
cdef int _need(str kernel, str name, Py_ssize_t got, Py_ssize_t want, bint at_least=False,
               str what="length") except -1:
    """Raise unless got == want (or got >= want when at_least)."""
    if got < want if at_least else got != want:
        raise ValueError(
            f"{kernel}: {name} has {what} {got}, expected {'at least ' if at_least else ''}"
            f"{want}")
    return 0


cdef int _need2(str kernel, str name, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t want_rows,
                Py_ssize_t want_cols) except -1:
    """Raise unless a 2-D array has shape (want_rows, want_cols)."""
    if rows != want_rows or cols != want_cols:
        raise ValueError(
            f"{kernel}: {name} has shape ({rows}, {cols}), expected ({want_rows}, {want_cols})")
    return 0


cdef int _need_given(str kernel, str name, object arr, str why) except -1:
    """Raise when an array an option requires was not passed (is None)."""
    if arr is None:
        raise ValueError(f"{kernel}: {name} is required {why}")
    return 0


cdef int _check_offsets(str kernel, str name, const Py_ssize_t[::1] offsets, Py_ssize_t end,
                        str end_what, str parts) except -1:
    """``offsets`` (n_parts + 1,) must start at 0, never decrease and end at ``end``: then
    every index the loops derive from it lies in [0, end). ``parts`` names what the offsets
    delimit (sequences, runs), ``end_what`` what ``end`` counts."""
    cdef Py_ssize_t i, n = offsets.shape[0] - 1
    if n < 0:
        raise ValueError(f"{kernel}: {name} must have n_{parts} + 1 >= 1 entries, got 0")
    if offsets[0] != 0:
        raise ValueError(f"{kernel}: {name} must start at 0, got {name}[0] = {offsets[0]}")
    for i in range(n):
        if offsets[i + 1] < offsets[i]:
            raise ValueError(
                f"{kernel}: {name} must be non-decreasing, got {name}[{i + 1}] = "
                f"{offsets[i + 1]} < {name}[{i}] = {offsets[i]}")
    if offsets[n] != end:
        raise ValueError(
            f"{kernel}: {name} must end at {end_what} {end}, got {name}[{n}] = {offsets[n]}")
    return 0


cdef int _check_blas_dim(str kernel, str name, Py_ssize_t n) except -1:
    """BLAS takes int dimensions: refuse one that would not fit."""
    if n > 2147483647:
        raise ValueError(f"{kernel}: {name} = {n} exceeds the BLAS limit 2**31 - 1")
    return 0


# Address ranges [lo, hi) of C-contiguous arrays (None or empty: (0, 0)), to refuse an output
# that shares memory with an index array (offsets, src, dst, order, starts): writing it would
# change indices the loops trust.
cdef tuple _span_d1(const double[::1] a):
    if a is None or a.shape[0] == 0:
        return (0, 0)
    return (<size_t>&a[0], <size_t>&a[0] + a.shape[0] * sizeof(double))


cdef tuple _span_d2(const double[:, ::1] a):
    if a is None or a.shape[0] == 0 or a.shape[1] == 0:
        return (0, 0)
    return (<size_t>&a[0, 0], <size_t>&a[0, 0] + a.shape[0] * a.shape[1] * sizeof(double))


cdef tuple _span_i1(const Py_ssize_t[::1] a):
    if a is None or a.shape[0] == 0:
        return (0, 0)
    return (<size_t>&a[0], <size_t>&a[0] + a.shape[0] * sizeof(Py_ssize_t))


cdef int _disjoint(str kernel, dict outputs, dict indices) except -1:
    """Raise when an output overlaps an index array (both given as name -> span)."""
    for out_name, (olo, ohi) in outputs.items():
        for idx_name, (ilo, ihi) in indices.items():
            if olo < ihi and ilo < ohi:
                raise ValueError(f"{kernel}: {out_name} shares memory with {idx_name}")
    return 0
