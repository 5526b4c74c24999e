"""Missing-data EM: emx.EMImputer against scikit-learn's imputers, and the cost of NaN in
emx.GaussianMixture.

Part 1: a correlated Gaussian (N rows, D features, seeded), with a fraction of entries removed
completely at random. emx.EMImputer (n_jobs 1 and 2), sklearn's IterativeImputer (default
BayesianRidge, max_iter=10) and SimpleImputer(mean) fill them; the table gives the seconds of
``fit_transform`` (median of ``--repeats``; IterativeImputer once unless
``--iterative-repeats``) and the RMSE on the removed entries.

Part 2: seconds per EM iteration of emx.GaussianMixture('diag', K=8) on the complete data and
on the same data with the entries removed (same initial parameters): the diagonal path should
cost about the same with NaN.

Run from the repository root::

    python bench/missing.py                 # N=100,000, D=20, 20% missing
    python bench/missing.py --quick         # N=10,000
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from threadpoolctl import threadpool_limits

import emx
from emx import EMImputer, GaussianMixture


def timed(make, X):
    imputer = make()
    start = time.perf_counter()
    out = imputer.fit_transform(X)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--missing", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterative-repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    N = 10_000 if args.quick else args.n
    D = args.d
    warnings.simplefilter("ignore", ConvergenceWarning)

    rng = np.random.default_rng(0)
    A = rng.normal(size=(D, D)) / np.sqrt(D)
    X = rng.multivariate_normal(3 * rng.normal(size=D), A @ A.T + 0.1 * np.eye(D), size=N)
    mask = rng.random(X.shape) < args.missing
    Xn = X.copy()
    Xn[mask] = np.nan

    print("emx missing-data EM vs scikit-learn imputers")
    print(f"platform : {platform.platform()}, {platform.processor() or platform.machine()}")
    print(f"versions : numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
          f"emx {emx.__version__}")
    print(f"data     : N={N:,}, D={D}, correlated Gaussian, {args.missing:.0%} of entries "
          "removed at random; BLAS limited to 1 thread")
    rows = []
    with threadpool_limits(1):
        makers = [
            ("SimpleImputer(mean)", SimpleImputer, args.repeats),
            ("IterativeImputer", lambda: IterativeImputer(random_state=0, max_iter=10),
             args.iterative_repeats),
            ("EMImputer n_jobs=1", lambda: EMImputer(n_jobs=1), args.repeats),
            ("EMImputer n_jobs=2", lambda: EMImputer(n_jobs=2), args.repeats),
        ]
        for name, make, reps in makers:
            runs = []
            for _ in range(reps):
                runs.append(timed(make, Xn))
                print(f"{name}: {runs[-1][0]:.2f} s", file=sys.stderr)
            seconds = statistics.median(r[0] for r in runs)
            rmse = float(np.sqrt(np.mean((runs[0][1] - X)[mask] ** 2)))
            rows.append((name, seconds, rmse))
    it = dict((r[0], r[1]) for r in rows)["IterativeImputer"]
    print(f"\n{'imputer':>20} {'seconds':>9} {'RMSE':>8} {'Iterative/this':>15}")
    for name, seconds, rmse in rows:
        print(f"{name:>20} {seconds:9.3f} {rmse:8.4f} {it / seconds:15.1f}")

    # Part 2: the diagonal mixture with and without NaN, same initial parameters.
    K = 8
    init = dict(
        weights_init=np.full(K, 1.0 / K),
        means_init=X[rng.choice(N, K, replace=False)],
        precisions_init=np.tile(1.0 / X.var(axis=0), (K, 1)),
    )
    times, fixed = {}, {}

    def fit_seconds(data, n_iter):
        model = GaussianMixture(K, covariance_type="diag", max_iter=n_iter, tol=1e-300, **init)
        start = time.perf_counter()
        model.fit(data)
        return time.perf_counter() - start

    with threadpool_limits(1):
        for label, data in (("complete", X), ("with NaN", Xn)):
            short = statistics.median(fit_seconds(data, 5) for _ in range(args.repeats))
            long = statistics.median(fit_seconds(data, 15) for _ in range(args.repeats))
            times[label] = (long - short) / 10  # per iteration, without per-fit set-up
            fixed[label] = short - 5 * times[label]
    print(f"\nGaussianMixture('diag', K={K}), seconds per EM iteration (fit of 15 minus fit of "
          f"5 iterations, / 10): complete {times['complete']:.4f}, with NaN "
          f"{times['with NaN']:.4f} (ratio {times['with NaN'] / times['complete']:.2f}); "
          f"per-fit set-up {fixed['complete']:.3f} s and {fixed['with NaN']:.3f} s")


if __name__ == "__main__":
    main()
