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
"""

from scipy.linalg.cython_blas cimport dgemm

cdef enum:
    BLOCK = 128


def log_density_diag(
    const double[:, ::1] X,
    const double[:, ::1] means,
    const double[:, ::1] precisions,
    const double[::1] log_norm,
    double[:, ::1] out,
):
    """Diagonal-covariance Gaussian log-densities, (n_frames, K) into ``out``."""
    cdef Py_ssize_t T = X.shape[0], D = X.shape[1], K = means.shape[0]
    cdef Py_ssize_t t, k, d
    cdef double s, diff
    if (means.shape[1] != D or precisions.shape[0] != K or precisions.shape[1] != D
            or log_norm.shape[0] != K or out.shape[0] != T or out.shape[1] != K):
        raise ValueError("log_density_diag: inconsistent array shapes")
    with nogil:
        for t in range(T):
            for k in range(K):
                s = 0.0
                for d in range(D):
                    diff = X[t, d] - means[k, d]
                    s += diff * diff * precisions[k, d]
                out[t, k] = log_norm[k] - 0.5 * s
    return None


def log_density_chol(
    const double[:, ::1] X,
    const double[:, ::1] means,
    const double[:, :, ::1] prec_chol,
    const double[::1] log_norm,
    double[:, ::1] out,
    double[:, ::1] work,
):
    """Full-covariance Gaussian log-densities through precision Cholesky factors.

    ``work`` is (2 * BLOCK, D) scratch with BLOCK = 128.
    """
    cdef Py_ssize_t T = X.shape[0], D = X.shape[1], K = means.shape[0]
    cdef Py_ssize_t t0, nb, b, k, d
    cdef double s, y
    cdef int m_, n_, k_, ld
    cdef double one = 1.0, zero = 0.0
    cdef char transa = b'N', transb = b'N'
    if (means.shape[1] != D or prec_chol.shape[0] != K or prec_chol.shape[1] != D
            or prec_chol.shape[2] != D or log_norm.shape[0] != K or out.shape[0] != T
            or out.shape[1] != K or work.shape[0] < 2 * BLOCK or work.shape[1] != D):
        raise ValueError("log_density_chol: inconsistent array shapes")
    if T == 0 or D == 0:
        return None
    cdef double* diff = &work[0, 0]
    cdef double* prod = &work[BLOCK, 0]
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
    return None
