"""Benchmark emx.GMMHMM against hmmlearn.hmm.GMMHMM.

For each covariance type, both libraries fit the same data from the same initial parameters
in this one process, and the script prints:

* seconds per EM iteration (median over repeats of the wall time of a whole ``fit`` divided
  by ``n_iter``) for hmmlearn, emx with ``n_jobs=1`` and emx with ``n_jobs=2``, with the
  ratios hmmlearn / emx (1 and 2 threads) and emx 1 thread / 2 threads;
* peak memory allocated during ``fit`` (tracemalloc, which sees numpy's allocations but not
  BLAS's private buffers) for hmmlearn and emx with ``n_jobs=1``, measured in separate
  untimed fits so that tracing does not slow the timed ones (``--skip-hmmlearn-memory``
  leaves out hmmlearn's);
* the relative difference between the log-likelihoods (``monitor_.history``) of hmmlearn and
  emx at the first iteration, which are computed from the initial parameters alone and show
  that both started from the same model (expect ~1e-12 or less), the largest relative
  difference over all iterations, and the same between emx with 1 and 2 threads (it
  should be 0).

Both update every parameter (``params="stmcw"``, the default of both, as in real training),
but not with quite the same covariance update: emx centres the scatter of each Gaussian on
its new mean (the exact EM update), hmmlearn on the mean of the previous iteration, which it
used during the E-step. The log-likelihoods therefore drift apart slightly from the second
iteration on, and only the first one is a test of equality. emx gets ``var_floor=0`` and
``weight_floor=0`` (its defaults floor the variances at 1% of the global variance and the
mixture weights at 1e-5) and both get ``min_covar=1e-3``, their default, which emx also uses
as an absolute variance floor; the data's variances stay well above it, so both run
unfloored EM with hmmlearn's default priors.

Data: a seeded synthetic GMM-HMM shaped like speech features: 5 states with sticky,
mostly left-to-right transitions, 4 diagonal Gaussians per state, D=39 features (13 "static"
coefficients with decreasing spread, then 13 "deltas" and 13 "delta-deltas" on smaller
scales); 1000 sequences of 200 frames (T=200,000; ``--quick``: 100 sequences, T=20,000).
The fitted model has the same size, K=5 states and n_mix=4. Initial parameters: start and
transition probabilities and mixture weights mixed from uniform (or identity) and
Dirichlet draws, so that none is near 0; the K x n_mix means from a few Lloyd (k-means)
iterations started at random data rows, dealt to the states at random; every covariance set
to the data covariance (its diagonal for 'diag') plus ``min_covar``. Both models get them
with ``init_params=""`` and run exactly ``--n-iter`` iterations: hmmlearn with
``tol=-inf``, emx with ``tol=1e-300`` (it stops when ``-roundoff <= gain < tol``); the
script checks the iteration counts.

Everything runs under ``threadpoolctl.threadpool_limits(--blas-threads)`` (default 1), so the
three variants are compared at the same BLAS threading; emx's ``n_jobs`` threads are its own.

Run from the repository root::

    python bench/gmmhmm.py                      # diag, T=200,000 (hmmlearn is slow)
    python bench/gmmhmm.py --quick              # smoke test on T=20,000
    python bench/gmmhmm.py --types diag,full --skip-hmmlearn-memory
    python bench/gmmhmm.py --n-iter 5 --repeats 5 --hmmlearn-repeats 3

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
from _common import log
from hmmlearn.hmm import GMMHMM as HmmlearnGMMHMM
from threadpoolctl import threadpool_limits

from emx import GMMHMM as EmxGMMHMM

N_STATES = 5
N_MIX = 4
N_STATIC = 13  # static coefficients; the features are static + delta + delta-delta
N_FEATURES = 3 * N_STATIC
SEQ_LEN = 200
N_SEQ, N_SEQ_QUICK = 1000, 100
COV_TYPES = ("diag", "full")
MIN_COVAR = 1e-3  # the default of both libraries; added to the initial covariances
NEVER_CONVERGE = {"hmmlearn": -np.inf, "emx": 1e-300}  # emx requires a finite tol
SAME_START_RTOL = 1e-10  # first-iteration log-likelihoods must agree to this


# ---------------------------------------------------------------------------- data
def feature_scales() -> np.ndarray:
    """Spread of each feature: c0 widest, then decaying cepstra; deltas and delta-deltas
    on smaller scales (roughly the shape of MFCC + delta + delta-delta features)."""
    static = 12.0 / (1.0 + 0.1 * np.arange(N_STATIC))
    static[0] *= 2.0
    return np.concatenate([static, 0.3 * static, 0.1 * static])


def make_data(rng: np.random.Generator, n_seq: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n_seq`` sequences of SEQ_LEN frames from a random speech-like GMM-HMM."""
    S, M, D = N_STATES, N_MIX, N_FEATURES
    scale = feature_scales()
    start = 0.8 * np.eye(S)[0] + 0.2 * rng.dirichlet(np.ones(S))
    # Sticky, mostly left to right (the last state wraps round to the first), with a little
    # probability of jumping anywhere.
    trans = 0.92 * np.eye(S) + 0.06 * np.roll(np.eye(S), 1, axis=1)
    trans += 0.02 * rng.dirichlet(np.ones(S), size=S)
    weights = rng.dirichlet(np.full(M, 4.0), size=S)
    means = rng.normal(0.0, 1.5, size=(S, 1, D)) * scale
    means = means + rng.normal(0.0, 0.7, size=(S, M, D)) * scale
    sds = rng.uniform(0.6, 1.0, size=(S, M, D)) * scale

    # States of all sequences at once, one frame at a time (inverse-CDF draws).
    states = np.empty((n_seq, SEQ_LEN), dtype=np.intp)
    cdf_trans = np.cumsum(trans, axis=1)
    states[:, 0] = np.minimum(np.searchsorted(np.cumsum(start), rng.random(n_seq)), S - 1)
    for t in range(1, SEQ_LEN):
        u = rng.random(n_seq)
        states[:, t] = np.minimum((cdf_trans[states[:, t - 1]] < u[:, None]).sum(axis=1), S - 1)
    states = states.ravel()

    # Gaussian of each frame within its state, then the frame itself.
    cdf_w = np.cumsum(weights, axis=1)
    u = rng.random(len(states))
    mix = np.minimum((cdf_w[states] < u[:, None]).sum(axis=1), M - 1)
    X = means[states, mix] + sds[states, mix] * rng.standard_normal((len(states), D))
    return np.ascontiguousarray(X), np.full(n_seq, SEQ_LEN, dtype=np.intp)


def make_init(rng: np.random.Generator, X: np.ndarray, cov_type: str) -> dict:
    """Initial parameters shared by both libraries (hmmlearn's attribute shapes)."""
    K, M, (n, D) = N_STATES, N_MIX, X.shape
    startprob = 0.5 / K + 0.5 * rng.dirichlet(np.ones(K))
    transmat = 0.5 * np.eye(K) + 0.4 * rng.dirichlet(np.ones(K), size=K) + 0.1 / K
    weights = 0.5 / M + 0.5 * rng.dirichlet(np.ones(M), size=K)

    # Lloyd iterations from K*M distinct rows; a centre that loses all its rows stays put.
    centres = X[rng.choice(n, size=K * M, replace=False)].copy()
    sq_norms = np.einsum("ij,ij->i", X, X)
    for _ in range(5):
        dist = sq_norms[:, None] - 2.0 * (X @ centres.T) + np.einsum("ij,ij->i", centres, centres)
        nearest = dist.argmin(axis=1)
        for c in np.flatnonzero(np.bincount(nearest, minlength=K * M)):
            centres[c] = X[nearest == c].mean(axis=0)
    means = centres[rng.permutation(K * M)].reshape(K, M, D)

    cov = np.cov(X, rowvar=False) + MIN_COVAR * np.eye(D)
    if cov_type == "diag":
        covars = np.tile(np.diag(cov), (K, M, 1))
    elif cov_type == "full":
        covars = np.tile(cov, (K, M, 1, 1))
    else:
        raise ValueError(f"unsupported covariance type {cov_type!r}")
    init = dict(
        startprob_=startprob, transmat_=transmat, weights_=weights, means_=means, covars_=covars
    )
    check_init(init, cov_type)
    return init


def check_init(init: dict, cov_type: str) -> None:
    """Refuse degenerate initial parameters (zero probabilities, singular covariances)."""
    for name in ("startprob_", "transmat_", "weights_"):
        p = init[name]
        if not (np.all(p > 1e-3) and np.allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-12)):
            raise RuntimeError(f"degenerate initial {name}")
    flat = init["means_"].reshape(N_STATES * N_MIX, -1)
    gaps = np.linalg.norm(flat[:, None] - flat[None], axis=-1)[np.triu_indices(len(flat), 1)]
    if gaps.min() <= 0:
        raise RuntimeError("two initial means coincide")
    covars = init["covars_"]
    low = covars.min() if cov_type == "diag" else np.linalg.eigvalsh(covars).min()
    if not low > MIN_COVAR:
        raise RuntimeError(f"initial covariances not positive definite (min {low:g})")


# ---------------------------------------------------------------------------- models
def build(lib: str, cov_type: str, n_iter: int, init: dict, n_jobs: int = 1):
    common = dict(
        n_components=N_STATES,
        n_mix=N_MIX,
        covariance_type=cov_type,
        min_covar=MIN_COVAR,
        n_iter=n_iter,
        tol=NEVER_CONVERGE[lib],
        init_params="",
        params="stmcw",
    )
    if lib == "hmmlearn":
        model = HmmlearnGMMHMM(**common)
    else:
        model = EmxGMMHMM(**common, var_floor=0.0, weight_floor=0.0, n_jobs=n_jobs)
    for name, value in init.items():
        setattr(model, name, value.copy())
    return model


def run_fit(lib, cov_type, n_iter, init, X, lengths, n_jobs=1):
    """Fit a fresh model; return (seconds, log-likelihood history, fitted model)."""
    model = build(lib, cov_type, n_iter, init, n_jobs)
    t0 = time.perf_counter()
    model.fit(X, lengths)
    elapsed = time.perf_counter() - t0
    history = np.asarray(model.monitor_.history, dtype=float)
    if len(history) != n_iter:
        raise RuntimeError(
            f"{lib} (n_jobs={n_jobs}) ran {len(history)} iterations instead of {n_iter} "
            f"({cov_type})."
        )
    return elapsed, history, model


def peak_mb(lib, cov_type, n_iter, init, X, lengths) -> float:
    """Peak traced memory (MB) allocated while fitting; data and init are allocated before."""
    model = build(lib, cov_type, n_iter, init)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        model.fit(X, lengths)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / 1e6


def smallest_variance(model, cov_type: str) -> float:
    """Smallest fitted variance (eigenvalue for 'full'), to see whether a floor was hit."""
    covars = model.covars_
    return float(covars.min() if cov_type == "diag" else np.linalg.eigvalsh(covars).min())


def rel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.abs(a), np.finfo(float).tiny)


def hmmlearn_full_temp_mb(lengths: np.ndarray) -> float:
    """Size of the (frames, K, n_mix, D, D) array hmmlearn builds per sequence for 'full'."""
    return int(lengths.max()) * N_STATES * N_MIX * N_FEATURES**2 * 8 / 1e6


# ---------------------------------------------------------------------------- report


COLUMNS = [
    ("cov", 4, "s"),
    ("hmm s/it", 9, ".4f"),
    ("emx-1 s/it", 10, ".4f"),
    ("emx-2 s/it", 10, ".4f"),
    ("hmm/emx-1", 9, ".1f"),
    ("hmm/emx-2", 9, ".1f"),
    ("emx 1t/2t", 9, ".2f"),
    ("hmm MB", 7, ".1f"),
    ("emx MB", 7, ".1f"),
    ("MB hmm/emx", 10, ".1f"),
    ("LL0 rdiff", 9, ".1e"),
    ("LL max rdiff", 12, ".1e"),
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
        description="Seconds per EM iteration and peak memory of emx.GMMHMM vs "
        "hmmlearn.hmm.GMMHMM on the same data and initial parameters."
    )
    p.add_argument(
        "--types",
        default="diag",
        help=f"covariance types among {','.join(COV_TYPES)} (default diag)",
    )
    p.add_argument("--n-iter", type=int, default=3, help="EM iterations per fit (default 3)")
    p.add_argument("--repeats", type=int, default=3, help="timed emx fits per variant (default 3)")
    p.add_argument(
        "--hmmlearn-repeats", type=int, default=1, help="timed hmmlearn fits (default 1)"
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads for all runs (default 1; 0 leaves BLAS at its default)",
    )
    p.add_argument(
        "--skip-hmmlearn-memory",
        action="store_true",
        help="do not measure hmmlearn's peak memory (saves an untimed hmmlearn fit, and "
        "its large per-sequence arrays for 'full')",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: T={N_SEQ_QUICK * SEQ_LEN:,} frames in {N_SEQ_QUICK} sequences",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the data and init (default 0)")
    args = p.parse_args(argv)
    args.types = [s.strip() for s in args.types.split(",") if s.strip()]
    for t in args.types:
        if t not in COV_TYPES:
            p.error(f"unknown covariance type {t!r} (choose among {', '.join(COV_TYPES)})")
    for name in ("n_iter", "repeats", "hmmlearn_repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.blas_threads < 0:
        p.error("--blas-threads must be 0 or more")
    return args


def bench_case(args, X, lengths, cov_type) -> tuple[list, float]:
    # Seeded without the covariance type: 'diag' and 'full' start from the same probabilities
    # and means.
    init = make_init(np.random.default_rng([args.seed, 1]), X, cov_type)
    n_iter = args.n_iter

    # Untimed fits under tracemalloc first (they also warm up both libraries).
    mem_h = None
    if not args.skip_hmmlearn_memory:
        log(f"{cov_type}: memory, hmmlearn")
        mem_h = peak_mb("hmmlearn", cov_type, n_iter, init, X, lengths)
    log(f"{cov_type}: memory, emx")
    mem_e = peak_mb("emx", cov_type, n_iter, init, X, lengths)

    # Timed fits, variants interleaved so that machine noise spreads over all of them.
    times = {"hmmlearn": [], "emx1": [], "emx2": []}
    hist = {}
    n_rounds = max(args.repeats, args.hmmlearn_repeats)
    for r in range(n_rounds):
        log(f"{cov_type}: timing, repeat {r + 1}/{n_rounds}")
        if r < args.hmmlearn_repeats:
            t, hist["hmmlearn"], _ = run_fit("hmmlearn", cov_type, n_iter, init, X, lengths)
            times["hmmlearn"].append(t / n_iter)
            log(f"  hmmlearn {t / n_iter:.3f} s/it")
        if r < args.repeats:
            for key, n_jobs in (("emx1", 1), ("emx2", 2)):
                t, hist[key], fitted = run_fit("emx", cov_type, n_iter, init, X, lengths, n_jobs)
                times[key].append(t / n_iter)
                log(f"  emx n_jobs={n_jobs} {t / n_iter:.3f} s/it")

    med = {k: statistics.median(v) for k, v in times.items()}
    rdiff = rel_diff(hist["hmmlearn"], hist["emx1"])
    row = [
        cov_type,
        med["hmmlearn"],
        med["emx1"],
        med["emx2"],
        med["hmmlearn"] / med["emx1"],
        med["hmmlearn"] / med["emx2"],
        med["emx1"] / med["emx2"],
        mem_h,
        mem_e,
        None if mem_h is None else mem_h / mem_e,
        float(rdiff[0]),
        float(rdiff.max()),
        float(rel_diff(hist["emx1"], hist["emx2"]).max()),
    ]
    return row, smallest_variance(fitted, cov_type)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)

    n_seq = N_SEQ_QUICK if args.quick else N_SEQ
    X, lengths = make_data(np.random.default_rng(args.seed), n_seq)

    print("emx.GMMHMM vs hmmlearn.hmm.GMMHMM: EM seconds per iteration and memory")
    for line in describe_machine(args.blas_threads):
        print(line)
    print(
        f"data         : T={len(X):,} frames in {len(lengths)} sequences of {SEQ_LEN}, "
        f"D={X.shape[1]}, sampled from a speech-like {N_STATES}-state, {N_MIX}-Gaussian "
        f"GMM-HMM (seed {args.seed}); fitted K={N_STATES}, n_mix={N_MIX}"
    )
    print(
        f"models       : init_params='', params='stmcw', min_covar={MIN_COVAR:g}; emx "
        "var_floor=0, weight_floor=0 (emx's covariance update centres on the new means, "
        "hmmlearn's on the previous ones)"
    )
    print(
        f"runs         : n_iter={args.n_iter} per fit (never converging early); median over "
        f"{args.repeats} timed fits for emx, {args.hmmlearn_repeats} for hmmlearn, "
        "interleaved; 1 untimed fit each for memory"
        + (" (emx only)" if args.skip_hmmlearn_memory else "")
    )
    print(
        "columns      : s/it = fit seconds / n_iter; emx-1, emx-2 = n_jobs 1, 2; "
        "MB = tracemalloc peak during fit (n_jobs=1);\n"
        "               LL0 rdiff = relative difference of the first-iteration "
        "log-likelihoods (same start: expect ~1e-12);\n"
        "               LL max rdiff = the largest over all iterations (hmmlearn vs emx-1); "
        "LL rdiff 2t = the same for emx-1 vs emx-2"
    )
    if "full" in args.types:
        print(
            f"warning      : hmmlearn's 'full' statistics build a (frames, K, n_mix, D, D) "
            f"array per sequence, {hmmlearn_full_temp_mb(lengths):,.0f} MB here, besides "
            "taking long;\n"
            "               it grows with the sequence length (GBs for long sequences): "
            "--skip-hmmlearn-memory skips its tracemalloc fit"
            + (" (skipped in this run)" if args.skip_hmmlearn_memory else "")
        )
    print(flush=True)

    rows, min_vars = [], []
    with threadpool_limits(
        limits=args.blas_threads if args.blas_threads > 0 else None, user_api="blas"
    ):
        for cov_type in args.types:
            row, min_var = bench_case(args, X, lengths, cov_type)
            rows.append(row)
            min_vars.append(min_var)

    print(format_header())
    for row in rows:
        print(format_row(row))
    bad = [row[0] for row in rows if not row[-3] <= SAME_START_RTOL]
    if bad:
        print(
            f"WARNING: first-iteration log-likelihoods differ by more than {SAME_START_RTOL:g} "
            f"for {', '.join(bad)}: the two fits did not start from the same model"
        )
    for row, min_var in zip(rows, min_vars, strict=True):
        if min_var <= 1.01 * MIN_COVAR:
            print(
                f"WARNING: {row[0]}: a variance of emx's fit reached the floor min_covar "
                f"({min_var:.3g}), which hmmlearn does not apply: the fits are not comparable"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
