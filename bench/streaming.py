"""Out-of-core and stepwise EM on a memmap: GaussianMixture 'diag' on N frames (D=13, K=16).

The data (a seeded 16-component diagonal Gaussian mixture in 13 dimensions) are written to a
``numpy.memmap`` in a temporary folder (deleted at the end; never in the repository). Then:

1. initialisation (k-means++ on a uniform sample of ``--init-rows`` rows, read chunk by chunk):
   ``GaussianMixture(max_iter=0)`` fitted on the chunked data;
2. batch EM from those parameters on the memmap, read in chunks of ``--chunk`` rows at every
   iteration (``GaussianMixture.fit`` on chunked data): seconds per iteration, and the peak
   of memory allocated during one iteration (tracemalloc: numpy's allocations; the memmap's
   pages are the kernel's page cache, not allocations), against the size of the data;
3. stepwise EM (``partial_fit`` on the same chunks in a shuffled order each pass, default
   ``kappa=0.7, t0=2``) from the same initial parameters: the mean log-likelihood of all the
   data after each pass, and the number of passes it took to come within 0.1 % of the batch
   optimum's.

Run from the repository root::

    python bench/streaming.py                   # N = 10^7 (1.04 GB on disk)
    python bench/streaming.py --n 1000000       # a reduced size
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import describe_machine, log  # noqa: E402

from emx import GaussianMixture  # noqa: E402
from emx._chunked import fit_chunks  # noqa: E402


def write_data(path: str, n: int, D: int, K: int, seed: int, block: int) -> np.memmap:
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(K, D))
    sds = rng.uniform(0.5, 1.5, size=(K, D))
    weights = rng.dirichlet(np.full(K, 5.0))
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, D))
    for a in range(0, n, block):
        b = min(n, a + block)
        z = rng.choice(K, size=b - a, p=weights)
        mm[a:b] = means[z] + sds[z] * rng.standard_normal((b - a, D))
    mm.flush()
    del mm
    return np.load(path, mmap_mode="r")


def mean_loglik(model, X, chunk: int) -> float:
    total = 0.0
    for a in range(0, len(X), chunk):
        total += float(model.score_samples(X[a:a + chunk]).sum())
    return total / len(X)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--D", type=int, default=13)
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=100_000)
    ap.add_argument("--init-rows", type=int, default=200_000)
    ap.add_argument("--max-iter", type=int, default=200)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-passes", type=int, default=10)
    ap.add_argument("--kappa", type=float, default=0.7)
    ap.add_argument("--t0", type=float, default=2.0)
    args = ap.parse_args()
    n, D, K, chunk = args.n, args.D, args.K, args.chunk

    print("\n".join(describe_machine("GaussianMixture only (no peer)")))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        X = write_data(os.path.join(tmp, "X.npy"), n, D, K, 0, chunk)
        log(f"data written in {time.perf_counter() - t:.1f} s")
        data_mb = n * D * 8 / 1e6
        print(f"data         : N={n:,} frames, D={D}, K={K}, float64 memmap "
              f"{data_mb:,.0f} MB; chunks of {chunk:,} rows ({chunk * D * 8 / 1e6:.1f} MB)")

        def chunks():
            for a in range(0, n, chunk):
                yield X[a:a + chunk]

        # 1. initialisation on a sample
        t = time.perf_counter()
        init = GaussianMixture(K, covariance_type="diag", init_params="k-means++",
                               max_iter=0, random_state=0)
        fit_chunks(init, chunks, max_init_rows=args.init_rows)
        t_init = time.perf_counter() - t
        log(f"initialised in {t_init:.1f} s")

        # 2. batch EM, chunk by chunk; one traced iteration for the memory peak
        kw = dict(n_components=K, covariance_type="diag", weights_init=init.weights_,
                  means_init=init.means_, precisions_init=init.precisions_,
                  random_state=0, tol=args.tol)
        tracemalloc.start()
        with warnings.catch_warnings():  # one iteration does not converge
            warnings.simplefilter("ignore")
            GaussianMixture(max_iter=1, **kw).fit(chunks)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GaussianMixture(max_iter=1, **kw).fit(chunks)
        t_one = time.perf_counter() - t  # setup passes (column means) + one iteration
        t = time.perf_counter()
        batch = GaussianMixture(max_iter=args.max_iter, **kw).fit(chunks)
        t_batch = time.perf_counter() - t
        per_iter = (t_batch - t_one) / max(batch.n_iter_ - 1, 1)
        best = mean_loglik(batch, X, chunk)
        log(f"batch: {batch.n_iter_} iterations, {per_iter:.2f} s each, loglik {best:.6f}")

        # 3. stepwise EM from the same initial parameters
        sw = copy.deepcopy(init)
        rng = np.random.default_rng(0)
        starts = np.arange(0, n, chunk)
        history, reached, t_sw = [], None, 0.0
        for p in range(1, args.max_passes + 1):
            t = time.perf_counter()
            for a in rng.permutation(starts):
                sw.partial_fit(X[a:a + chunk], kappa=args.kappa, t0=args.t0)
            t_sw += time.perf_counter() - t
            ll = mean_loglik(sw, X, chunk)
            history.append(ll)
            log(f"stepwise pass {p}: loglik {ll:.6f} ({(best - ll) / abs(best):.2e} below)")
            if reached is None and best - ll <= 1e-3 * abs(best):
                reached = p
                break

    print(f"init         : k-means++ on a uniform sample of {args.init_rows:,} rows, "
          f"{t_init:.1f} s")
    print(f"batch EM     : {batch.n_iter_} iterations to tol={args.tol} (converged="
          f"{batch.converged_}), {per_iter:.2f} s per iteration (one pass over the memmap; "
          f"{t_batch:.1f} s for the whole fit, setup passes included), "
          f"mean log-likelihood {best:.6f}")
    print(f"peak memory  : {peak / 1e6:.1f} MB allocated during one iteration (tracemalloc) "
          f"for {data_mb:,.0f} MB of data")
    print(f"stepwise EM  : kappa={args.kappa}, t0={args.t0}, {n // chunk} steps per pass; "
          f"mean log-likelihood per pass "
          + ", ".join(f"{h:.6f}" for h in history))
    if reached is None:
        print(f"               not within 0.1 % of the batch optimum after {args.max_passes} "
              "passes")
    else:
        print(f"               within 0.1 % of the batch optimum after {reached} pass(es) "
              f"({t_sw:.1f} s of partial_fit, vs {t_batch:.1f} s for batch EM)")


if __name__ == "__main__":
    main()
