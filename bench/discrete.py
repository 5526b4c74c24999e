"""Benchmark emx's discrete HMMs against hmmlearn's (CategoricalHMM by default).

For each number of states K, both libraries fit the same data from the same initial
parameters in this one process, and the script prints seconds per EM iteration (median over
repeats of the wall time of a whole ``fit`` divided by ``n_iter``) for hmmlearn with its
default ``implementation="log"``, hmmlearn with ``implementation="scaling"``, emx with
``n_jobs=1`` and emx with ``n_jobs=2``; the ratios hmmlearn (log) / emx and hmmlearn
(scaling) / emx (both 1 thread); and the largest relative difference between the
per-iteration log-likelihoods of hmmlearn and emx (``monitor_.history``), which shows that
both started from the same parameters and ran the same EM, and between emx with 1 and 2
threads (it should be 0).

Data: 100 sequences of 1000 frames (T=100,000; ``--quick``: 10 sequences) sampled from a
seeded sticky 16-state HMM: symbols 0..63 for CategoricalHMM, 8 counts per frame for
MultinomialHMM (20 trials) and PoissonHMM. Initial parameters: Dirichlet(1) start and
transition rows, Dirichlet(1) emission rows (gamma rates for Poisson); both models get them
with ``init_params=""`` and run exactly ``n_iter`` iterations (a tolerance that never stops
them; the script checks the iteration counts). BLAS is limited to ``--blas-threads``
(default 1) for every run.

Run from the repository root::

    python bench/discrete.py                          # CategoricalHMM, K=16, 64 symbols
    python bench/discrete.py --sizes 4,16,64 --models categorical,multinomial,poisson
    python bench/discrete.py --quick

Progress goes to stderr, the machine description and the table to stdout.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time

import hmmlearn
import numpy as np
from _common import describe_machine, log, max_rel_diff
from _common import format_header as _format_header
from _common import format_row as _format_row
from hmmlearn import hmm as hl
from threadpoolctl import threadpool_limits

from emx import discrete as ed

SEQ_LEN = 1000
N_TRUE_STATES = 16
N_SYMBOLS = 64  # categorical
N_COUNTS = 8  # multinomial / Poisson features
N_TRIALS = 20
NEVER_CONVERGE = {"hmmlearn": -np.inf, "emx": -1e300}  # emx requires a finite tol
CLASSES = {
    "categorical": (hl.CategoricalHMM, ed.CategoricalHMM, "emissionprob_"),
    "multinomial": (hl.MultinomialHMM, ed.MultinomialHMM, "emissionprob_"),
    "poisson": (hl.PoissonHMM, ed.PoissonHMM, "lambdas_"),
}


# ---------------------------------------------------------------------------- data
def sample_states(rng: np.random.Generator, n_seq: int) -> np.ndarray:
    S = N_TRUE_STATES
    start = rng.dirichlet(np.ones(S))
    trans = 0.9 * np.eye(S) + 0.1 * rng.dirichlet(np.ones(S), size=S)
    states = np.empty((n_seq, SEQ_LEN), dtype=np.intp)
    cdf = np.cumsum(trans, axis=1)
    states[:, 0] = np.minimum(np.searchsorted(np.cumsum(start), rng.random(n_seq)), S - 1)
    for t in range(1, SEQ_LEN):
        u = rng.random(n_seq)
        states[:, t] = np.minimum((cdf[states[:, t - 1]] < u[:, None]).sum(axis=1), S - 1)
    return states.ravel()


def make_data(model: str, rng: np.random.Generator, n_seq: int):
    """Integer observations of ``n_seq`` sequences and their lengths."""
    states = sample_states(rng, n_seq)
    S = N_TRUE_STATES
    if model == "categorical":
        p = rng.dirichlet(np.full(N_SYMBOLS, 0.3), size=S)
        cdf = np.cumsum(p, axis=1)
        u = rng.random(len(states))
        X = np.minimum((cdf[states] < u[:, None]).sum(axis=1), N_SYMBOLS - 1)[:, None]
    elif model == "multinomial":
        p = rng.dirichlet(np.ones(N_COUNTS), size=S)
        X = np.empty((len(states), N_COUNTS), dtype=np.int64)
        for s in range(S):
            idx = states == s
            X[idx] = rng.multinomial(N_TRIALS, p[s], size=int(idx.sum()))
    else:
        lam = rng.gamma(2.0, 2.0, size=(S, N_COUNTS))
        X = rng.poisson(lam[states])
    return np.ascontiguousarray(X, dtype=np.int64), np.full(n_seq, SEQ_LEN, dtype=np.intp)


def make_init(model: str, rng: np.random.Generator, X: np.ndarray, K: int) -> dict:
    init = dict(startprob_=rng.dirichlet(np.ones(K)),
                transmat_=rng.dirichlet(np.ones(K), size=K))
    if model == "categorical":
        init["emissionprob_"] = rng.dirichlet(np.ones(int(X.max()) + 1), size=K)
    elif model == "multinomial":
        init["emissionprob_"] = rng.dirichlet(np.ones(X.shape[1]), size=K)
    else:
        init["lambdas_"] = rng.gamma(2.0, X.mean() / 2.0, size=(K, X.shape[1]))
    return init


# ---------------------------------------------------------------------------- runs
def build(model: str, lib: str, K: int, n_iter: int, init: dict, n_jobs=1, impl="log"):
    ref_cls, emx_cls, _ = CLASSES[model]
    kw = dict(n_components=K, n_iter=n_iter, tol=NEVER_CONVERGE[lib], init_params="")
    if model == "multinomial":
        kw["n_trials"] = N_TRIALS
    if lib == "hmmlearn":
        m = ref_cls(**kw, implementation=impl)
    else:
        m = emx_cls(**kw, n_jobs=n_jobs)
    for name, value in init.items():
        setattr(m, name, value.copy())
    return m


def run_fit(model, lib, K, n_iter, init, X, lengths, n_jobs=1, impl="log"):
    """Fit a fresh model; return (seconds, log-likelihood history)."""
    m = build(model, lib, K, n_iter, init, n_jobs, impl)
    t0 = time.perf_counter()
    m.fit(X, lengths)
    elapsed = time.perf_counter() - t0
    history = np.asarray(m.monitor_.history, dtype=float)
    if len(history) != n_iter:
        raise RuntimeError(f"{lib} ran {len(history)} iterations instead of {n_iter}.")
    return elapsed, history


COLUMNS = [
    ("model", 11, "s"),
    ("K", 3, "d"),
    ("hl-log s/it", 11, ".4f"),
    ("hl-scal s/it", 12, ".4f"),
    ("emx-1 s/it", 10, ".4f"),
    ("emx-2 s/it", 10, ".4f"),
    ("log/emx-1", 9, ".1f"),
    ("scal/emx-1", 10, ".1f"),
    ("emx 1t/2t", 9, ".2f"),
    ("LL rdiff hl", 11, ".1e"),
    ("LL rdiff 2t", 11, ".1e"),
]


def bench_case(args, model, X, lengths, K) -> list:
    rng = np.random.default_rng([args.seed, K])
    init = make_init(model, rng, X, K)
    n = args.n_iter
    log(f"{model} K={K}: warm-up")
    run_fit(model, "emx", K, 1, init, X, lengths)
    run_fit(model, "hmmlearn", K, 1, init, X, lengths)
    times = {"log": [], "scal": [], "emx1": [], "emx2": []}
    hist = {}
    for r in range(max(args.repeats, args.hmmlearn_repeats)):
        log(f"{model} K={K}: repeat {r + 1}")
        if r < args.hmmlearn_repeats:
            t, hist["log"] = run_fit(model, "hmmlearn", K, n, init, X, lengths, impl="log")
            times["log"].append(t / n)
            t, hist["scal"] = run_fit(model, "hmmlearn", K, n, init, X, lengths,
                                      impl="scaling")
            times["scal"].append(t / n)
        if r < args.repeats:
            t, hist["emx1"] = run_fit(model, "emx", K, n, init, X, lengths, n_jobs=1)
            times["emx1"].append(t / n)
            t, hist["emx2"] = run_fit(model, "emx", K, n, init, X, lengths, n_jobs=2)
            times["emx2"].append(t / n)
    med = {k: statistics.median(v) for k, v in times.items()}
    return [
        model, K, med["log"], med["scal"], med["emx1"], med["emx2"],
        med["log"] / med["emx1"], med["scal"] / med["emx1"], med["emx1"] / med["emx2"],
        max(max_rel_diff(hist["log"], hist["emx1"]), max_rel_diff(hist["scal"], hist["emx1"])),
        max_rel_diff(hist["emx1"], hist["emx2"]),
    ]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Seconds per EM iteration of emx's discrete HMMs vs hmmlearn's on the "
        "same data and initial parameters."
    )
    p.add_argument("--models", default="categorical",
                   help="comma list of categorical, multinomial, poisson (default categorical)")
    p.add_argument("--sizes", default="16", help="numbers of states (default 16)")
    p.add_argument("--n-iter", type=int, default=3, help="EM iterations per fit (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="timed emx fits (default 5)")
    p.add_argument("--hmmlearn-repeats", type=int, default=3,
                   help="timed hmmlearn fits per implementation (default 3)")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads for all runs (default 1; 0 leaves BLAS at its default)")
    p.add_argument("--quick", action="store_true", help="smoke test: T=10,000 frames")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and init (default 0)")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in args.models:
        if m not in CLASSES:
            p.error(f"unknown model {m!r} (choose from {', '.join(CLASSES)})")
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    for name in ("n_iter", "repeats", "hmmlearn_repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    n_seq = 10 if args.quick else 100
    print("emx discrete HMMs vs hmmlearn: EM seconds per iteration")
    for line in describe_machine(f"hmmlearn {hmmlearn.__version__}", args.blas_threads):
        print(line)
    print(
        f"data         : T={n_seq * SEQ_LEN:,} frames in {n_seq} sequences of {SEQ_LEN} from a "
        f"{N_TRUE_STATES}-state sticky HMM (seed {args.seed}); categorical {N_SYMBOLS} "
        f"symbols; multinomial {N_COUNTS} outcomes x {N_TRIALS} trials; Poisson {N_COUNTS} "
        "counts"
    )
    print(
        f"runs         : n_iter={args.n_iter} per fit (never converging early); median over "
        f"{args.repeats} timed fits for emx, {args.hmmlearn_repeats} for each hmmlearn "
        "implementation, after one untimed warm-up fit each"
    )
    print(
        "columns      : s/it = fit seconds / n_iter; hl-log, hl-scal = hmmlearn with "
        "implementation 'log' (its default) and 'scaling';\n"
        "               emx-1, emx-2 = n_jobs 1, 2; LL rdiff = max relative difference of "
        "the per-iteration log-likelihoods (hmmlearn vs emx-1, emx-1 vs emx-2)"
    )
    print(flush=True)
    rows = []
    with threadpool_limits(
        limits=args.blas_threads if args.blas_threads > 0 else None, user_api="blas"
    ):
        for model in args.models:
            X, lengths = make_data(model, np.random.default_rng(args.seed), n_seq)
            for K in args.sizes:
                rows.append(bench_case(args, model, X, lengths, K))
    print(_format_header(COLUMNS))
    for row in rows:
        print(_format_row(COLUMNS, row))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
