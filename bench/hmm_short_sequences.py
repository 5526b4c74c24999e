"""Cost of many short sequences: emx.GaussianHMM vs hmmlearn.hmm.GaussianHMM.

The same 100,000 frames (D=13) are cut into 100 sequences of 1000 frames, then into 10,000
sequences of 10. hmmlearn loops over sequences in Python in every E-step; emx hands whole
chunks of sequences to one kernel call. For each library the script prints the median seconds
per EM iteration for both cuts and their ratio (short / long): near 1 means the number of
sequences does not matter. Both libraries start from the same parameters (init_params="")
and run exactly ``--n-iter`` iterations; BLAS is limited to one thread.

Run from the repository root::

    python bench/hmm_short_sequences.py [--states 4] [--n-iter 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time

import numpy as np
from hmmlearn.hmm import GaussianHMM as HmmlearnHMM
from threadpoolctl import threadpool_limits

from emx import GaussianHMM as EmxHMM

D = 13
T = 100_000


def make_model(cls, K, params, n_iter):
    tol = -np.inf if cls is HmmlearnHMM else -1e300  # never stop early
    model = cls(n_components=K, covariance_type="diag", n_iter=n_iter, tol=tol, init_params="")
    model.startprob_, model.transmat_, model.means_, model.covars_ = (p.copy() for p in params)
    return model


def seconds_per_iteration(cls, K, params, X, lengths, n_iter):
    model = make_model(cls, K, params, n_iter)
    start = time.perf_counter()
    model.fit(X, lengths)
    elapsed = time.perf_counter() - start
    assert len(model.monitor_.history) == n_iter
    return elapsed / n_iter, model.monitor_.history[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=4)
    parser.add_argument("--n-iter", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)

    rng = np.random.default_rng(0)
    K = args.states
    X = rng.normal(size=(T, D)) + np.repeat(3.0 * rng.normal(size=(1000, D)), T // 1000, axis=0)
    params = (
        rng.dirichlet(np.ones(K)),
        rng.dirichlet(np.ones(K), size=K),
        X[rng.choice(T, K, replace=False)],
        np.tile(X.var(axis=0) + 1e-3, (K, 1)),
    )
    cuts = {"100 x 1000": [1000] * 100, "10000 x 10": [10] * 10_000}
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}")
    print(f"T={T} frames, D={D}, K={K}, 'diag', n_iter={args.n_iter}, "
          f"median of {args.repeats}, BLAS 1 thread")
    rows = []
    with threadpool_limits(1):
        for name, cls in (("hmmlearn", HmmlearnHMM), ("emx", EmxHMM)):
            times, first_ll = {}, {}
            for cut, lengths in cuts.items():
                runs = [
                    seconds_per_iteration(cls, K, params, X, lengths, args.n_iter)
                    for _ in range(args.repeats)
                ]
                times[cut] = statistics.median(r[0] for r in runs)
                first_ll[cut] = runs[0][1]
            rows.append((name, times, first_ll))
    print(f"{'library':>9} {'100 x 1000 s/it':>16} {'10000 x 10 s/it':>16} {'short/long':>11}"
          f" {'LL(10000 x 10)':>16}")
    for name, times, first_ll in rows:
        a, b = times["100 x 1000"], times["10000 x 10"]
        print(f"{name:>9} {a:16.4f} {b:16.4f} {b / a:11.2f} {first_ll['10000 x 10']:16.2f}")
    (_, th, _), (_, te, _) = rows
    print(f"emx speed-up on 10000 x 10: {th['10000 x 10'] / te['10000 x 10']:.1f}x; "
          f"on 100 x 1000: {th['100 x 1000'] / te['100 x 1000']:.1f}x")


if __name__ == "__main__":
    main()
