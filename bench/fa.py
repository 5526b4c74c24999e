"""Benchmark emx.FactorAnalysis against sklearn.decomposition.FactorAnalysis.

All three fit the same data in this one process, each with its default stopping rule (stop
when an iteration gains less than ``tol=1e-2`` in total log-likelihood, at most 1000
iterations), and the script prints for each:

* seconds to converge: median over ``--repeats`` (default 3) of the wall time of ``fit``;
* the number of iterations (``n_iter_``) and seconds per iteration;
* the final log-likelihood of the data, ``score(X) * N``, and its gap to the best of the three
  (how close each stopped to the maximum);
* the relative difference (Frobenius) of ``get_covariance()`` to that of scikit-learn's
  'lapack' fit.

Variants: scikit-learn with ``svd_method='randomized'`` (its default: a randomized SVD of the
scaled data every iteration) and ``'lapack'`` (a full SVD every iteration); emx (one pass over
the data for its covariance, then EM iterations of O(D^2 k) that never touch the data again).
scikit-learn's fit is an alternating (profile-likelihood) algorithm that needs fewer but far
costlier iterations than EM.

BLAS settings (``--blas``): ``1`` runs everything under ``threadpool_limits(1)``; ``default``
leaves BLAS at its default thread count (scikit-learn's SVDs then use every core; emx's
moment kernel calls BLAS on small blocks and stays on one core).

Data: N=100,000 rows (``--quick``: 10,000), D=50 features, sampled with a seeded numpy
Generator from a factor-analysis model with k=5 factors (standard normal loadings, noise
variances uniform in [0.2, 1.0], random means); all fits use k=5.

Run from the repository root::

    python bench/fa.py                 # BLAS 1 thread and default, 3 timed fits each
    python bench/fa.py --quick         # smoke test on N=10,000
    python bench/fa.py --blas 1 --repeats 5

Progress goes to stderr, the machine description and the table to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np
import sklearn
from _common import blas_pools, log
from _common import describe_machine as _describe_machine
from _common import format_header as _format_header
from _common import format_row as _format_row
from sklearn.decomposition import FactorAnalysis as SklearnFA
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from emx.factor import FactorAnalysis as EmxFA

N_ROWS = 100_000
N_ROWS_QUICK = 10_000
N_FEATURES = 50
N_FACTORS = 5
VARIANTS = ("sklearn-randomized", "sklearn-lapack", "emx")


# ---------------------------------------------------------------------------- data
def make_data(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` rows from a random factor-analysis model with N_FACTORS factors."""
    D, k = N_FEATURES, N_FACTORS
    W = rng.normal(size=(D, k))
    psi = rng.uniform(0.2, 1.0, size=D)
    mean = rng.normal(0.0, 3.0, size=D)
    X = mean + rng.standard_normal((n, k)) @ W.T + rng.standard_normal((n, D)) * np.sqrt(psi)
    return np.ascontiguousarray(X)


# ---------------------------------------------------------------------------- models
def build(variant: str):
    if variant == "emx":
        return EmxFA(N_FACTORS)
    return SklearnFA(N_FACTORS, svd_method=variant.split("-")[1], random_state=0)


def run_fit(variant: str, X: np.ndarray):
    """Fit a fresh model; return (seconds, fitted model)."""
    model = build(variant)
    t0 = time.perf_counter()
    model.fit(X)
    return time.perf_counter() - t0, model


# ---------------------------------------------------------------------------- report


COLUMNS = [
    ("BLAS", 7, "s"),
    ("variant", 18, "s"),
    ("fit s", 8, ".3f"),
    ("n_iter", 6, "d"),
    ("ms/it", 8, ".3f"),
    ("sk-rand/this", 12, ".1f"),
    ("loglik (score*N)", 18, ".3f"),
    ("gap to best", 11, ".3f"),
    ("cov rdiff lapack", 16, ".1e"),
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
        description="Seconds to converge and final log-likelihood of emx.FactorAnalysis vs "
        "sklearn.decomposition.FactorAnalysis (randomized and lapack SVD) on the same data."
    )
    p.add_argument("--repeats", type=int, default=3, help="timed fits per variant (default 3)")
    p.add_argument(
        "--blas",
        choices=("both", "1", "default"),
        default="both",
        help="BLAS threads: 1 for all runs, the library default, or both in turn (default both)",
    )
    p.add_argument("--quick", action="store_true", help=f"smoke test: N={N_ROWS_QUICK:,} rows")
    p.add_argument("--seed", type=int, default=0, help="seed of the data (default 0)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    args.blas = ["1", "default"] if args.blas == "both" else [args.blas]
    return args


def bench_case(args, X, label: str) -> list[list]:
    times = {v: [] for v in VARIANTS}
    models = {}
    for r in range(args.repeats):
        # Variants interleaved so that machine noise spreads over all of them.
        for variant in VARIANTS:
            log(f"BLAS {label}: {variant}, repeat {r + 1}/{args.repeats}")
            t, models[variant] = run_fit(variant, X)
            times[variant].append(t)
    n = X.shape[0]
    loglik = {v: float(models[v].score(X)) * n for v in VARIANTS}
    best = max(loglik.values())
    ref_cov = models["sklearn-lapack"].get_covariance()
    med = {v: statistics.median(times[v]) for v in VARIANTS}
    rows = []
    for v in VARIANTS:
        cov = models[v].get_covariance()
        rows.append([
            label,
            v,
            med[v],
            int(models[v].n_iter_),
            1e3 * med[v] / models[v].n_iter_,
            med["sklearn-randomized"] / med[v],
            loglik[v],
            best - loglik[v],
            float(np.linalg.norm(cov - ref_cov) / np.linalg.norm(ref_cov)),
        ])
    return rows


def main(argv=None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    n = N_ROWS_QUICK if args.quick else N_ROWS
    X = make_data(np.random.default_rng(args.seed), n)

    print("emx.FactorAnalysis vs sklearn.decomposition.FactorAnalysis: seconds to converge")
    for line in describe_machine():
        print(line)
    default_threads = max((i.get("num_threads", 1) for i in blas_pools()), default=1)
    print(
        f"data         : N={n:,} rows, D={N_FEATURES}, sampled from a factor-analysis model "
        f"with {N_FACTORS} factors (seed {args.seed}); n_components={N_FACTORS}"
    )
    print(
        "runs         : default tol=1e-2 (total log-likelihood) and max_iter=1000 for all; "
        f"median over {args.repeats} timed fits per variant, interleaved"
    )
    print(
        "columns      : BLAS = threads of BLAS (1: threadpool_limits(1); default: "
        f"{default_threads});\n"
        "               fit s = median fit seconds; ms/it = fit ms / n_iter; sk-rand/this = "
        "speed-up over sklearn randomized;\n"
        "               loglik = score(X) * N at the end of the fit; gap to best = best loglik "
        "of the three minus this one;\n"
        "               cov rdiff lapack = |cov - cov_lapack|_F / |cov_lapack|_F "
        "(get_covariance())"
    )
    print(flush=True)

    rows = []
    for blas in args.blas:
        label = "1" if blas == "1" else f"dflt:{default_threads}"
        with threadpool_limits(limits=1 if blas == "1" else None):
            rows.extend(bench_case(args, X, label))

    print(format_header())
    for row in rows:
        print(format_row(row))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
