"""A hardware floor for one EM iteration, measured on this machine in this run.

The floor of an EM iteration is the time this core would need for

* the iteration's floating-point operations at the ``dgemm`` rate measured on a matrix
  product of the model's own shape: numpy matmul of a block of 2048 frames (2048 x D)
  against the K density rows (D x K for 'diag', D x K*D for 'full': the emission GEMM of
  the flop model below), under ``threadpool_limits(1)``, median of 5. The peak rate on
  512 x 512 matrices is printed beside it: small-D, small-K products run well below peak,
  and the floor uses the rate of the shape the work actually has;
* ``exp`` over the T x K responsibilities (``np.exp`` into a preallocated T x K array; arrays
  beyond 2**22 elements are timed on 2**22 and scaled);
* one pass over the data (``X.sum()`` over the data's bytes),

each measured as the median of a few runs. ``emx / floor`` then says how far a fit is from
the machine: 1 would mean no overhead at all beyond the necessary arithmetic and memory.

Flop counts per EM iteration (T frames or rows, K states or components, D features); a flop
is one addition or one multiplication, so a multiply-add is 2:

* emission log-densities, 'diag': 4*T*K*D. Written as GEMMs, log N(x | mu, 1/p) is a
  constant minus 1/2 (x**2 . p - 2 x . (mu*p) + mu**2 . p): two T x D x K products (x**2
  against the K precision rows and x against the K rows mu*p), 2*T*K*D each. The direct
  loop (x - mu)**2 * p summed over D has the same count.
* emission log-densities, 'full': T*K*D*(D+1) + 3*T*K*D. Whitening each frame by each
  state's triangular Cholesky factor of the precision is a T x D x (K*D) GEMM with half its
  entries zero (D*(D+1)/2 multiply-adds per frame and state), then centring and the sum of
  squares, 3 flops per (t, k, d).
* forward and backward (HMM only): 2 * 2*T*K*K, one K x K matrix-vector product per frame
  each way.
* xi (HMM only): 2*T*K*K, the sum over frames of the outer products alpha_t u_{t+1}^T as one
  K x T x K GEMM, plus the posteriors gamma = alpha * beta, T*K.
* M-step moments, 'diag': 4*T*K*D, gamma^T x and gamma^T x**2 (two K x T x D GEMMs).
* M-step moments, 'full': T*K*D*(D+1) + 2*T*K*D, the weighted scatter matrices
  sum_t gamma_tk x_t x_t^T (symmetric: half of a D x T x D GEMM per component, a SYRK) and
  the weighted means.

Everything of lower order (normalisations, log, K x K or K x D x D parameter updates, the
Cholesky factorisations) is left out, which lowers the floor.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

GEMM_N = 512
EXP_MAX_ELEMENTS = 2**22


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


GEMM_ROWS = 2048


def measure_dgemm_gflops(m: int, k: int, n: int, repeats: int = 5) -> float:
    """GFLOP/s of numpy matmul (m x k) @ (k x n) in float64 on one BLAS thread."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    out = np.empty((m, n))
    with threadpool_limits(limits=1, user_api="blas"):
        sec = _median_seconds(lambda: np.matmul(a, b, out=out), repeats)
    return 2.0 * m * k * n / sec / 1e9


def gemm_shape(K: int, D: int, cov_type: str) -> tuple[int, int, int]:
    """(m, k, n) of the emission GEMM whose measured rate the floor uses."""
    n = K * D if cov_type in ("full", "tied") else K
    return GEMM_ROWS, D, n


def measure_exp_seconds(n_rows: int, n_cols: int, repeats: int = 5) -> float:
    """Seconds of ``np.exp`` over an n_rows x n_cols float64 array (scaled beyond 2**22)."""
    total = n_rows * n_cols
    size = min(total, EXP_MAX_ELEMENTS)
    a = np.random.default_rng(0).uniform(-30.0, 0.0, size=size)
    out = np.empty_like(a)
    sec = _median_seconds(lambda: np.exp(a, out=out), repeats)
    return sec * total / size


def measure_pass_seconds(X: np.ndarray, repeats: int = 5) -> float:
    """Seconds of one reading pass (``X.sum()``) over the data."""
    return _median_seconds(X.sum, repeats)


def emission_flops(T: int, K: int, D: int, cov_type: str) -> float:
    if cov_type in ("diag", "spherical"):
        return 4.0 * T * K * D
    if cov_type in ("full", "tied"):
        return T * K * D * (D + 1.0) + 3.0 * T * K * D
    raise ValueError(f"no flop model for covariance type {cov_type!r}")


def moment_flops(T: int, K: int, D: int, cov_type: str) -> float:
    if cov_type in ("diag", "spherical"):
        return 4.0 * T * K * D
    if cov_type in ("full", "tied"):
        return T * K * D * (D + 1.0) + 2.0 * T * K * D
    raise ValueError(f"no flop model for covariance type {cov_type!r}")


def hmm_flops(T: int, K: int, D: int, cov_type: str) -> float:
    """Flops of one EM iteration of a GaussianHMM (see the module docstring)."""
    transitions = 2 * 2.0 * T * K * K + 2.0 * T * K * K + T * K  # fwd+bwd, xi, gamma
    return emission_flops(T, K, D, cov_type) + transitions + moment_flops(T, K, D, cov_type)


def gmm_flops(T: int, K: int, D: int, cov_type: str) -> float:
    """Flops of one EM iteration of a GaussianMixture (see the module docstring)."""
    return emission_flops(T, K, D, cov_type) + moment_flops(T, K, D, cov_type)


class Floor:
    """Floor seconds per EM iteration on one core, measured in this run."""

    def __init__(self, repeats: int = 5):
        self.repeats = repeats
        self.peak_gflops = measure_dgemm_gflops(GEMM_N, GEMM_N, GEMM_N, repeats)

    def seconds(self, flops: float, X: np.ndarray, K: int, cov_type: str) -> tuple[float, float]:
        """(floor seconds, dgemm GFLOP/s used) for an iteration of ``flops`` over ``X``."""
        T, D = X.shape
        gflops = measure_dgemm_gflops(*gemm_shape(K, D, cov_type), self.repeats)
        with threadpool_limits(limits=1, user_api="blas"):
            floor = (
                flops / (gflops * 1e9)
                + measure_exp_seconds(T, K, self.repeats)
                + measure_pass_seconds(X, self.repeats)
            )
        return floor, gflops

    def describe(self) -> str:
        return (
            "floor        : per EM iteration, 1 core: flops (bench/_floor.py) at the dgemm "
            f"rate of a {GEMM_ROWS} x D x (K or K*D) matmul\n"
            "               (column GF/s; threadpool_limits(1), median of "
            f"{self.repeats}; peak {GEMM_N}^3 rate here: {self.peak_gflops:.1f} GFLOP/s)\n"
            "               + np.exp over T x K + one X.sum() pass; "
            "emx-1/floor = emx-1 s/it / floor"
        )
