"""Benchmark emx.GaussianMixture against sklearn.mixture.GaussianMixture.

For each BLAS setting and covariance type, both libraries fit the same data from the same
initial parameters in this one process, and the script prints:

* seconds per EM iteration (median over repeats of the wall time of a whole ``fit`` divided
  by ``n_iter``) for scikit-learn, emx with ``n_jobs=1`` and emx with ``n_jobs=2``, with the
  ratios sklearn / emx (1 and 2 threads) and emx 1 thread / 2 threads. scikit-learn's
  ``fit`` ends with one extra E-step (so that ``fit_predict`` agrees with ``predict``); it is
  part of its fit time, as in real use;
* peak memory allocated during ``fit`` (tracemalloc, which sees numpy's allocations but not
  BLAS's private buffers) for scikit-learn and emx with ``n_jobs=1``, measured in separate
  untimed fits so that tracing does not slow the timed ones;
* the largest relative difference between the per-iteration lower bounds (mean
  log-likelihood per sample, ``lower_bounds_``) of scikit-learn and emx, which shows that
  both started from the same parameters and ran the same EM (expect ~1e-14), and the same
  between emx with 1 and 2 threads (it should be 0).

The floor of one EM iteration, measured on this machine in this run, is printed next to the
emx figures with the ratio emx (1 thread) / floor: the iteration's flops at the dgemm rate
measured here on the emission GEMM's shape (numpy matmul 2048 x D x K for 'spherical' and
'diag', 2048 x D x K*D for 'tied' and 'full', under ``threadpool_limits(1)``, median of 5;
column ``GF/s``), plus ``np.exp`` over N x K, plus one ``X.sum()`` pass over the data. The
flop model (in ``bench/_floor.py``), the GaussianHMM's without transitions: log-densities
4*N*K*D ('spherical', 'diag': two N x D x K GEMMs) or N*K*D*(D+1) + 3*N*K*D ('tied', 'full':
triangular whitening), moments 4*N*K*D or N*K*D*(D+1) + 2*N*K*D (weighted scatter, a SYRK).
Lower-order terms are left out, so the floor is a lower bound at that rate; in the rows with
BLAS at its default the floor is still the 1-core one.

BLAS settings (``--blas``): ``1`` runs everything under ``threadpool_limits(1)``, the same
single core for all; ``default`` leaves BLAS at its default thread count, so scikit-learn's
large matrix products use every core while emx's kernels, which call BLAS on small blocks
only, stay single-threaded per worker: there the fair comparison is sklearn vs emx-2.

Data: N=200,000 rows (``--quick``: 20,000), D=20 features, sampled with a seeded numpy
Generator from a mixture of 8 Gaussians with random weights, means and full covariances.
Initial parameters for K=8 components: means from a few Lloyd (k-means) iterations started
at random data rows, weights from the cluster sizes, every covariance set to the data
covariance (plus ``reg_covar``), given as ``weights_init``, ``means_init`` and
``precisions_init`` (in the covariance type's shape) to both. Both run exactly ``--n-iter``
EM iterations: scikit-learn with ``tol=0`` (it stops when ``abs(change) < tol``), emx with
``tol=1e-300`` (it stops when ``-roundoff <= change < tol``); the script checks the counts.

Run from the repository root::

    python bench/gmm.py                       # diag and full, BLAS 1 thread and default
    python bench/gmm.py --quick               # smoke test on N=20,000
    python bench/gmm.py --types spherical,diag,tied,full --blas 1 --n-iter 5 --repeats 5

Progress goes to stderr, the machine description and the table to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
import warnings

import numpy as np
import sklearn
from _common import blas_pools, log, max_rel_diff
from _common import describe_machine as _describe_machine
from _common import format_header as _format_header
from _common import format_row as _format_row
from _floor import Floor, gmm_flops
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGMM
from threadpoolctl import threadpool_limits

from emx import GaussianMixture as EmxGMM

N_ROWS = 200_000
N_ROWS_QUICK = 20_000
N_FEATURES = 20
N_COMPONENTS = 8
REG_COVAR = 1e-6  # the default of both libraries; added to the initial covariances
COV_TYPES = ("spherical", "diag", "tied", "full")
NEVER_CONVERGE = {"sklearn": 0.0, "emx": 1e-300}


# ---------------------------------------------------------------------------- data
def make_data(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` rows drawn from a random mixture of N_COMPONENTS full-covariance Gaussians."""
    K, D = N_COMPONENTS, N_FEATURES
    weights = rng.dirichlet(np.full(K, 5.0))
    means = rng.normal(0.0, 3.0, size=(K, D))
    B = rng.normal(0.0, 0.4, size=(K, D, D))
    covs = B @ B.transpose(0, 2, 1)
    covs[:, np.arange(D), np.arange(D)] += rng.uniform(0.3, 1.5, size=(K, D))
    chol = np.linalg.cholesky(covs)

    labels = rng.choice(K, size=n, p=weights)
    Z = rng.standard_normal((n, D))
    X = np.empty((n, D))
    for k in range(K):
        rows = labels == k
        X[rows] = means[k] + Z[rows] @ chol[k].T
    return np.ascontiguousarray(X)


def make_init(rng: np.random.Generator, X: np.ndarray, cov_type: str) -> dict:
    """``weights_init``, ``means_init`` and ``precisions_init`` shared by both libraries."""
    K, (n, D) = N_COMPONENTS, X.shape

    # Lloyd iterations from K distinct rows; a centre that loses all its rows stays put.
    centres = X[rng.choice(n, size=K, replace=False)].copy()
    sq_norms = np.einsum("ij,ij->i", X, X)
    for _ in range(5):
        dist = sq_norms[:, None] - 2.0 * (X @ centres.T) + np.einsum("ij,ij->i", centres, centres)
        nearest = dist.argmin(axis=1)
        sizes = np.bincount(nearest, minlength=K)
        for k in np.flatnonzero(sizes):
            centres[k] = X[nearest == k].mean(axis=0)
    weights = (sizes + 1.0) / (sizes.sum() + K)

    cov = np.cov(X, rowvar=False) + REG_COVAR * np.eye(D)
    prec = np.linalg.inv(cov)
    prec = 0.5 * (prec + prec.T)
    if cov_type == "spherical":
        precisions = np.full(K, 1.0 / np.diag(cov).mean())
    elif cov_type == "diag":
        precisions = np.tile(1.0 / np.diag(cov), (K, 1))
    elif cov_type == "tied":
        precisions = prec
    elif cov_type == "full":
        precisions = np.tile(prec, (K, 1, 1))
    else:
        raise ValueError(f"unsupported covariance type {cov_type!r}")
    return dict(weights_init=weights, means_init=centres, precisions_init=precisions)


# ---------------------------------------------------------------------------- models
def build(lib: str, cov_type: str, n_iter: int, init: dict, n_jobs: int = 1):
    common = dict(
        n_components=N_COMPONENTS,
        covariance_type=cov_type,
        tol=NEVER_CONVERGE[lib],
        reg_covar=REG_COVAR,
        max_iter=n_iter,
        n_init=1,
        **{name: value.copy() for name, value in init.items()},
    )
    if lib == "sklearn":
        return SklearnGMM(**common)
    return EmxGMM(**common, n_jobs=n_jobs)


def run_fit(lib, cov_type, n_iter, init, X, n_jobs=1):
    """Fit a fresh model; return (seconds, per-iteration lower bounds)."""
    model = build(lib, cov_type, n_iter, init, n_jobs)
    t0 = time.perf_counter()
    model.fit(X)
    elapsed = time.perf_counter() - t0
    bounds = np.asarray(model.lower_bounds_, dtype=float)
    if len(bounds) != n_iter or model.n_iter_ != n_iter:
        raise RuntimeError(
            f"{lib} (n_jobs={n_jobs}) ran {len(bounds)} iterations (n_iter_={model.n_iter_}) "
            f"instead of {n_iter} ({cov_type})."
        )
    return elapsed, bounds


def peak_mb(lib, cov_type, n_iter, init, X) -> float:
    """Peak traced memory (MB) allocated while fitting; data and init are allocated before."""
    model = build(lib, cov_type, n_iter, init)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        model.fit(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / 1e6


# ---------------------------------------------------------------------------- report


COLUMNS = [
    ("BLAS", 7, "s"),
    ("cov", 9, "s"),
    ("sk s/it", 8, ".4f"),
    ("emx-1 s/it", 10, ".4f"),
    ("emx-2 s/it", 10, ".4f"),
    ("GF/s", 5, ".1f"),
    ("floor s/it", 10, ".4f"),
    ("emx-1/floor", 11, ".1f"),
    ("sk/emx-1", 8, ".2f"),
    ("sk/emx-2", 8, ".2f"),
    ("emx 1t/2t", 9, ".2f"),
    ("sk MB", 7, ".1f"),
    ("emx MB", 7, ".1f"),
    ("MB sk/emx", 9, ".1f"),
    ("LB rdiff sk", 11, ".1e"),
    ("LB rdiff 2t", 11, ".1e"),
]


def describe_machine() -> list[str]:
    return _describe_machine(f"scikit-learn {sklearn.__version__}")


def format_row(values) -> str:
    return _format_row(COLUMNS, values)


def format_header() -> str:
    return _format_header(COLUMNS)


# ---------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Seconds per EM iteration and peak memory of emx.GaussianMixture vs "
        "sklearn.mixture.GaussianMixture on the same data and initial parameters."
    )
    p.add_argument(
        "--types",
        default="diag,full",
        help=f"covariance types among {','.join(COV_TYPES)} (default diag,full)",
    )
    p.add_argument("--n-iter", type=int, default=5, help="EM iterations per fit (default 5)")
    p.add_argument("--repeats", type=int, default=5, help="timed fits per variant (default 5)")
    p.add_argument(
        "--blas",
        choices=("both", "1", "default"),
        default="both",
        help="BLAS threads: 1 for all runs, the library default, or both in turn (default both)",
    )
    p.add_argument("--quick", action="store_true", help=f"smoke test: N={N_ROWS_QUICK:,} rows")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and init (default 0)")
    args = p.parse_args(argv)
    args.types = [s.strip() for s in args.types.split(",") if s.strip()]
    for t in args.types:
        if t not in COV_TYPES:
            p.error(f"unknown covariance type {t!r} (choose among {', '.join(COV_TYPES)})")
    for name in ("n_iter", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    args.blas = ["1", "default"] if args.blas == "both" else [args.blas]
    return args


def bench_case(args, X, blas: str, cov_type: str, floor: Floor) -> list:
    # Seeded by the covariance type only: both BLAS settings start from the same parameters.
    rng = np.random.default_rng([args.seed, COV_TYPES.index(cov_type)])
    init = make_init(rng, X, cov_type)
    n_iter = args.n_iter
    tag = f"BLAS {blas} {cov_type}"

    # Untimed fits under tracemalloc first (they also warm up both libraries).
    log(f"{tag}: memory")
    mem_s = peak_mb("sklearn", cov_type, n_iter, init, X)
    mem_e = peak_mb("emx", cov_type, n_iter, init, X)

    # Timed fits, variants interleaved so that machine noise spreads over all of them.
    times = {"sklearn": [], "emx1": [], "emx2": []}
    bounds = {}
    for r in range(args.repeats):
        log(f"{tag}: timing, repeat {r + 1}/{args.repeats}")
        for key, lib, n_jobs in (("sklearn", "sklearn", 1), ("emx1", "emx", 1), ("emx2", "emx", 2)):
            t, bounds[key] = run_fit(lib, cov_type, n_iter, init, X, n_jobs)
            times[key].append(t / n_iter)

    med = {k: statistics.median(v) for k, v in times.items()}
    log(f"{tag}: floor")
    floor_s, gflops = floor.seconds(
        gmm_flops(len(X), N_COMPONENTS, X.shape[1], cov_type), X, N_COMPONENTS, cov_type
    )
    return [
        blas,
        cov_type,
        med["sklearn"],
        med["emx1"],
        med["emx2"],
        gflops,
        floor_s,
        med["emx1"] / floor_s,
        med["sklearn"] / med["emx1"],
        med["sklearn"] / med["emx2"],
        med["emx1"] / med["emx2"],
        mem_s,
        mem_e,
        mem_s / mem_e,
        max_rel_diff(bounds["sklearn"], bounds["emx1"]),
        max_rel_diff(bounds["emx1"], bounds["emx2"]),
    ]


def main(argv=None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    n = N_ROWS_QUICK if args.quick else N_ROWS
    X = make_data(np.random.default_rng(args.seed), n)

    print(
        "emx.GaussianMixture vs sklearn.mixture.GaussianMixture: EM seconds per iteration "
        "and memory"
    )
    for line in describe_machine():
        print(line)
    default_threads = max((i.get("num_threads", 1) for i in blas_pools()), default=1)
    print(
        f"data         : N={n:,} rows, D={N_FEATURES}, sampled from a mixture of "
        f"{N_COMPONENTS} full-covariance Gaussians (seed {args.seed}); K={N_COMPONENTS}"
    )
    print(
        f"runs         : n_iter={args.n_iter} per fit (never converging early); median over "
        f"{args.repeats} timed fits per variant, interleaved; 1 untimed fit each for memory"
    )
    print(
        "columns      : BLAS = threads of BLAS (1: threadpool_limits(1) for all runs; "
        f"default: {default_threads}, where sklearn vs emx-2 is the fair comparison);\n"
        "               s/it = fit seconds / n_iter; emx-1, emx-2 = n_jobs 1, 2; "
        "MB = tracemalloc peak during fit (n_jobs=1);\n"
        "               LB rdiff = max relative difference of lower_bounds_ "
        "(sklearn vs emx-1, emx-1 vs emx-2)"
    )
    log("measuring the dgemm rate")
    floor = Floor()
    print(floor.describe())
    print(flush=True)

    rows = []
    for blas in args.blas:
        label = "1" if blas == "1" else f"dflt:{default_threads}"
        with threadpool_limits(limits=1 if blas == "1" else None):
            for cov_type in args.types:
                rows.append(bench_case(args, X, label, cov_type, floor))

    print(format_header())
    for row in rows:
        print(format_row(row))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
