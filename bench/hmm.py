"""Benchmark emx.GaussianHMM against hmmlearn.hmm.GaussianHMM.

For each number of states K and covariance type, both libraries fit the same data from the
same initial parameters in this one process, and the script prints:

* seconds per EM iteration (median over repeats of the wall time of a whole ``fit`` divided
  by ``n_iter``) for hmmlearn, emx with ``n_jobs=1`` and emx with ``n_jobs=2``, with the
  ratios hmmlearn / emx (1 thread) and emx 1 thread / 2 threads;
* peak memory allocated during ``fit`` (tracemalloc, which sees numpy's allocations but not
  BLAS's private buffers) for hmmlearn and emx with ``n_jobs=1``, measured in separate fits
  so that tracing does not slow the timed ones;
* the largest relative difference between the per-iteration log-likelihoods of hmmlearn and
  emx (``monitor_.history``), which shows that both started from the same parameters and
  ran the same EM, and the same between emx with 1 and 2 threads (it should be 0).

Data: a seeded synthetic Gaussian HMM (16 sticky states, full covariances), D=13 features,
100 sequences of 1000 frames (T=100,000; ``--quick``: 10 sequences, T=10,000). Initial
parameters: Dirichlet(1) start and transition rows, means from a few Lloyd (k-means)
iterations started at random data rows, every covariance set to the data covariance (plus
``min_covar``). Both models get them with ``init_params=""`` and run exactly ``n_iter``
iterations (a tolerance that never stops them; the script checks the iteration counts).

* the floor of one EM iteration measured on this machine in this run, and emx (1 thread) /
  floor: the iteration's flops at the dgemm rate measured here on the model's emission GEMM
  shape (numpy matmul 2048 x D x K for 'diag', 2048 x D x K*D for 'full', under
  ``threadpool_limits(1)``, median of 5; column ``GF/s``), plus ``np.exp`` over T x K, plus
  one ``X.sum()`` pass over the data. The flop model for GaussianHMM (in
  ``bench/_floor.py``): emissions 4*T*K*D ('diag', two T x D x K GEMMs) or
  T*K*D*(D+1) + 3*T*K*D ('full', triangular whitening), forward + backward 4*T*K*K, xi
  2*T*K*K + T*K, moments 4*T*K*D ('diag') or T*K*D*(D+1) + 2*T*K*D ('full'). Lower-order
  terms are left out, so the floor is a lower bound for that rate: emx/floor = 1 would
  leave nothing on the table.

Everything runs under ``threadpoolctl.threadpool_limits(--blas-threads)`` (default 1), so the
three variants are compared at the same BLAS threading; emx's ``n_jobs`` threads are its own.

Run from the repository root::

    python bench/hmm.py                      # K in 4,16,64; diag and full (slow: hmmlearn)
    python bench/hmm.py --quick              # smoke test on T=10,000
    python bench/hmm.py --sizes 4,16 --types diag --n-iter 5 --repeats 5
    python bench/hmm.py --hmmlearn-repeats 1  # time hmmlearn once per case to save time
    python bench/hmm.py --sizes 256 --types diag --hmmlearn-repeats 0   # emx and floor only
    python bench/hmm.py --layouts 100x1000,1x100000,10000x10   # the same frames cut 3 ways

Progress goes to stderr, the machine description and the table to stdout.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import tracemalloc

import hmmlearn
import numpy as np
from _common import describe_machine as _describe_machine
from _common import format_header as _format_header
from _common import format_row as _format_row
from _common import log, max_rel_diff
from _floor import Floor, hmm_flops
from hmmlearn.hmm import GaussianHMM as HmmlearnHMM
from threadpoolctl import threadpool_limits

from emx import GaussianHMM as EmxHMM

N_FEATURES = 13
SEQ_LEN = 1000
N_TRUE_STATES = 16
MIN_COVAR = 1e-3  # the default of both libraries; added to the initial covariance
NEVER_CONVERGE = {"hmmlearn": -np.inf, "emx": -1e300}  # emx requires a finite tol


# ---------------------------------------------------------------------------- data
def make_data(rng: np.random.Generator, n_seq: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n_seq`` sequences of SEQ_LEN frames from a random sticky Gaussian HMM."""
    S, D = N_TRUE_STATES, N_FEATURES
    start = rng.dirichlet(np.ones(S))
    trans = 0.9 * np.eye(S) + 0.1 * rng.dirichlet(np.ones(S), size=S)
    means = rng.normal(0.0, 2.0, size=(S, D))
    A = rng.normal(0.0, 0.3, size=(S, D, D))
    covs = A @ A.transpose(0, 2, 1)
    covs[:, np.arange(D), np.arange(D)] += rng.uniform(0.2, 1.0, size=(S, D))
    chol = np.linalg.cholesky(covs)

    # States of all sequences at once, one frame at a time (inverse-CDF draws).
    states = np.empty((n_seq, SEQ_LEN), dtype=np.intp)
    cdf_trans = np.cumsum(trans, axis=1)
    states[:, 0] = np.minimum(np.searchsorted(np.cumsum(start), rng.random(n_seq)), S - 1)
    for t in range(1, SEQ_LEN):
        u = rng.random(n_seq)
        states[:, t] = np.minimum((cdf_trans[states[:, t - 1]] < u[:, None]).sum(axis=1), S - 1)
    states = states.ravel()

    X = rng.standard_normal((len(states), D))
    for s in range(S):
        idx = states == s
        X[idx] = means[s] + X[idx] @ chol[s].T
    return np.ascontiguousarray(X), np.full(n_seq, SEQ_LEN, dtype=np.intp)


def make_init(rng: np.random.Generator, X: np.ndarray, K: int, cov_type: str) -> dict:
    """Initial parameters shared by both libraries (hmmlearn's setter shapes)."""
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)

    # A few Lloyd iterations from K distinct data rows; empty clusters keep their centre.
    means = X[rng.choice(len(X), size=K, replace=False)].copy()
    x2 = np.einsum("nd,nd->n", X, X)
    for _ in range(5):
        d2 = x2[:, None] - 2.0 * X @ means.T + np.einsum("kd,kd->k", means, means)
        label = d2.argmin(axis=1)
        counts = np.bincount(label, minlength=K)
        sums = np.zeros_like(means)
        np.add.at(sums, label, X)
        ok = counts > 0
        means[ok] = sums[ok] / counts[ok, None]

    cv = np.cov(X.T) + MIN_COVAR * np.eye(X.shape[1])
    if cov_type == "diag":
        covars = np.tile(np.diag(cv), (K, 1))
    elif cov_type == "full":
        covars = np.tile(cv, (K, 1, 1))
    else:
        raise ValueError(f"unsupported covariance type {cov_type!r}")
    return dict(startprob_=startprob, transmat_=transmat, means_=means, covars_=covars)


# ---------------------------------------------------------------------------- models
def build(lib: str, K: int, cov_type: str, n_iter: int, init: dict, n_jobs: int = 1):
    common = dict(
        n_components=K,
        covariance_type=cov_type,
        n_iter=n_iter,
        tol=NEVER_CONVERGE[lib],
        init_params="",
        params="stmc",
        min_covar=MIN_COVAR,
    )
    if lib == "hmmlearn":
        model = HmmlearnHMM(**common)
    else:
        model = EmxHMM(**common, n_jobs=n_jobs)
    for name, value in init.items():
        setattr(model, name, value.copy())
    return model


def run_fit(lib, K, cov_type, n_iter, init, X, lengths, n_jobs=1):
    """Fit a fresh model; return (seconds, log-likelihood history)."""
    model = build(lib, K, cov_type, n_iter, init, n_jobs)
    t0 = time.perf_counter()
    model.fit(X, lengths)
    elapsed = time.perf_counter() - t0
    history = np.asarray(model.monitor_.history, dtype=float)
    if len(history) != n_iter:
        raise RuntimeError(
            f"{lib} (n_jobs={n_jobs}) ran {len(history)} iterations instead of {n_iter} "
            f"(K={K}, {cov_type})."
        )
    return elapsed, history


def peak_mb(lib, K, cov_type, n_iter, init, X, lengths) -> float:
    """Peak traced memory (MB) allocated while fitting; data and init are allocated before."""
    model = build(lib, K, cov_type, n_iter, init)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        model.fit(X, lengths)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / 1e6


# ---------------------------------------------------------------------------- report


COLUMNS = [
    ("K", 4, "d"),
    ("cov", 5, "s"),
    ("layout", 9, "s"),
    ("hmmlearn s/it", 13, ".4f"),
    ("emx-1 s/it", 10, ".4f"),
    ("emx-2 s/it", 10, ".4f"),
    ("GF/s", 5, ".1f"),
    ("floor s/it", 10, ".4f"),
    ("emx-1/floor", 11, ".1f"),
    ("hmm/emx-1", 9, ".1f"),
    ("emx 1t/2t", 9, ".2f"),
    ("hmm MB", 8, ".1f"),
    ("emx MB", 8, ".1f"),
    ("MB hmm/emx", 10, ".1f"),
    ("LL rdiff hmm", 12, ".1e"),
    ("LL rdiff 2t", 11, ".1e"),
]


def describe_machine(blas_threads: int) -> list[str]:
    return _describe_machine(f"hmmlearn {hmmlearn.__version__}", blas_threads)


def format_row(values) -> str:
    return _format_row(COLUMNS, values)


def format_header() -> str:
    return _format_header(COLUMNS)


# ---------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Seconds per EM iteration and peak memory of emx.GaussianHMM vs "
        "hmmlearn.hmm.GaussianHMM on the same data and initial parameters."
    )
    p.add_argument("--sizes", default="4,16,64", help="numbers of states (default 4,16,64)")
    p.add_argument("--types", default="diag,full", help="covariance types (default diag,full)")
    p.add_argument("--n-iter", type=int, default=3, help="EM iterations per fit (default 3)")
    p.add_argument("--repeats", type=int, default=3, help="timed fits per variant (default 3)")
    p.add_argument(
        "--hmmlearn-repeats",
        type=int,
        default=None,
        help="timed hmmlearn fits per case (default: --repeats)",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads for all runs (default 1; 0 leaves BLAS at its default)",
    )
    p.add_argument(
        "--layouts",
        default=None,
        help="comma-separated N x L cuts of the same frames into N sequences of L frames "
        "(default 100x1000; 10x1000 with --quick), e.g. 100x1000,1x100000,10000x10",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: T=10,000 frames")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and init (default 0)")
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.types = [s.strip() for s in args.types.split(",") if s.strip()]
    if args.hmmlearn_repeats is None:
        args.hmmlearn_repeats = args.repeats
    if args.hmmlearn_repeats < 0:
        p.error("--hmmlearn-repeats must be at least 0 (0: emx and the floor only)")
    for name in ("n_iter", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def bench_case(args, X, lengths, K, cov_type, floor: Floor, layout: str) -> list:
    # Seeded by K only: 'diag' and 'full' start from the same weights and means.
    rng = np.random.default_rng([args.seed, K])
    init = make_init(rng, X, K, cov_type)
    n_iter = args.n_iter

    # Untimed fits under tracemalloc first (they also warm up both libraries).
    log(f"K={K} {cov_type}: memory")
    peer = args.hmmlearn_repeats > 0
    mem_h = peak_mb("hmmlearn", K, cov_type, n_iter, init, X, lengths) if peer else np.nan
    mem_e = peak_mb("emx", K, cov_type, n_iter, init, X, lengths)

    # Timed fits, variants interleaved so that machine noise spreads over all of them.
    times = {"hmmlearn": [], "emx1": [], "emx2": []}
    hist = {}
    for r in range(max(args.repeats, args.hmmlearn_repeats)):
        log(f"K={K} {cov_type}: timing, repeat {r + 1}")
        if r < args.hmmlearn_repeats:
            t, hist["hmmlearn"] = run_fit("hmmlearn", K, cov_type, n_iter, init, X, lengths)
            times["hmmlearn"].append(t / n_iter)
        if r < args.repeats:
            t, hist["emx1"] = run_fit("emx", K, cov_type, n_iter, init, X, lengths, n_jobs=1)
            times["emx1"].append(t / n_iter)
            t, hist["emx2"] = run_fit("emx", K, cov_type, n_iter, init, X, lengths, n_jobs=2)
            times["emx2"].append(t / n_iter)

    med = {k: statistics.median(v) if v else np.nan for k, v in times.items()}
    if not peer:
        hist["hmmlearn"] = np.full(n_iter, np.nan)
    log(f"K={K} {cov_type}: floor")
    floor_s, gflops = floor.seconds(hmm_flops(len(X), K, X.shape[1], cov_type), X, K, cov_type)
    return [
        K,
        cov_type,
        layout,
        med["hmmlearn"],
        med["emx1"],
        med["emx2"],
        gflops,
        floor_s,
        med["emx1"] / floor_s,
        med["hmmlearn"] / med["emx1"],
        med["emx1"] / med["emx2"],
        mem_h,
        mem_e,
        mem_h / mem_e,
        max_rel_diff(hist["hmmlearn"], hist["emx1"]),
        max_rel_diff(hist["emx1"], hist["emx2"]),
    ]


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)

    n_seq = 10 if args.quick else 100
    X, lengths = make_data(np.random.default_rng(args.seed), n_seq)

    print("emx.GaussianHMM vs hmmlearn.hmm.GaussianHMM: EM seconds per iteration and memory")
    for line in describe_machine(args.blas_threads):
        print(line)
    layouts = args.layouts or f"{n_seq}x{SEQ_LEN}"
    cuts = []
    for layout in layouts.split(","):
        n, L = (int(v) for v in layout.lower().split("x"))
        if n * L != len(X):
            raise SystemExit(f"--layouts: {layout} is not a cut of the {len(X):,} frames")
        cuts.append((layout, np.full(n, L, dtype=np.intp)))
    print(
        f"data         : T={len(X):,} frames sampled as {len(lengths)} sequences of {SEQ_LEN}, "
        f"D={X.shape[1]}, from a {N_TRUE_STATES}-state Gaussian HMM (seed {args.seed}); "
        f"layout N x L: cut into N sequences of L frames"
    )
    print(
        f"runs         : n_iter={args.n_iter} per fit (never converging early); median over "
        f"{args.repeats} timed fits for emx, {args.hmmlearn_repeats} for hmmlearn; "
        "1 untimed fit each for memory"
    )
    print(
        "columns      : s/it = fit seconds / n_iter; emx-1, emx-2 = n_jobs 1, 2; "
        "MB = tracemalloc peak during fit (n_jobs=1);\n"
        "               LL rdiff = max relative difference of the per-iteration "
        "log-likelihoods (hmmlearn vs emx-1, emx-1 vs emx-2)"
    )
    log("measuring the dgemm rate")
    floor = Floor()
    print(floor.describe())
    print(flush=True)

    rows = []
    with threadpool_limits(
        limits=args.blas_threads if args.blas_threads > 0 else None, user_api="blas"
    ):
        for cov_type in args.types:
            for K in args.sizes:
                for layout, cut in cuts:
                    rows.append(bench_case(args, X, cut, K, cov_type, floor, layout))

    print(format_header())
    for row in rows:
        print(format_row(row))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
