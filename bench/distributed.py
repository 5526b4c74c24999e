"""Distributed EM on Dask: per-iteration time of GaussianMixture, serial vs a LocalCluster.

GaussianMixture('diag', K=16) on N=2,000,000 rows, D=20 (seeded), the same initial
parameters for every fit:

* serial, n_jobs=1 and n_jobs=2 (threads in one process);
* emx.distributed.fit on a LocalCluster of 2 worker processes x 1 thread, data as a dask array
  of 8 blocks (persisted by the fit; each iteration ships the parameters only).

Per-iteration seconds are the median gap between successive E-steps (a callback for the
distributed fit; (fit of n+5 iterations - fit of 5 iterations) / n for the serial ones).
"Where the time goes": the E-step compute on the workers (the serial single-thread E-step
divided by 2 is the ideal), and the scheduling round trip of one iteration's task graph
(8 E-step tasks + 7 tree additions) measured with no-op tasks.

Run from the repository root::

    python bench/distributed.py [--n 2000000] [--iters 8]
"""

from __future__ import annotations

import argparse
import operator
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

# This file is called distributed.py: drop its folder from the import path, or dask's
# "import distributed" would find it instead of the dask.distributed package.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=8)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster
    from threadpoolctl import threadpool_limits

    import emx
    import emx.distributed as ed

    rng = np.random.default_rng(0)
    N, D, K = args.n, args.d, args.k
    centres = 4 * rng.normal(size=(K, D))
    X = centres[rng.integers(0, K, N)] + rng.normal(size=(N, D))
    init = dict(
        weights_init=np.full(K, 1.0 / K),
        means_init=X[rng.choice(N, K, replace=False)],
        precisions_init=np.tile(1.0 / X.var(axis=0), (K, 1)),
    )

    def model(n_iter, **kw):
        return emx.GaussianMixture(K, covariance_type="diag", max_iter=n_iter, tol=1e-300,
                                   **init, **kw)

    print("emx.distributed: GaussianMixture per-iteration time, serial vs LocalCluster")
    print(f"platform : {platform.platform()}, {platform.processor() or platform.machine()}")
    print(f"versions : numpy {np.__version__}, dask {dask.__version__}, emx {emx.__version__}")
    print(f"data     : N={N:,}, D={D}, K={K}, 'diag', {args.blocks} blocks; BLAS 1 thread")

    rows = []
    with threadpool_limits(1):
        for n_jobs in (1, 2):
            short = []
            long = []
            for _ in range(3):
                t = time.perf_counter()
                model(2, n_jobs=n_jobs).fit(X)
                short.append(time.perf_counter() - t)
                t = time.perf_counter()
                model(2 + args.iters, n_jobs=n_jobs).fit(X)
                long.append(time.perf_counter() - t)
            per_it = (statistics.median(long) - statistics.median(short)) / args.iters
            rows.append((f"serial n_jobs={n_jobs}", per_it))
        serial_1 = rows[0][1]

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=50)
        client = Client(cluster)
        client.run(lambda: __import__("threadpoolctl").threadpool_limits(1) and None)
        Xd = da.from_array(X, chunks=(int(np.ceil(N / args.blocks)), D))
        stamps = []
        t0 = time.perf_counter()
        fitted = ed.fit(model(2 + args.iters), Xd, client,
                        callback=lambda i, ll: stamps.append(time.perf_counter()))
        total = time.perf_counter() - t0
        gaps = np.diff(stamps)
        per_it = float(np.median(gaps))
        rows.append(("dask 2 workers x 1", per_it))
        # Scheduling round trip of one iteration's graph, with no-op tasks.
        trips = []
        for _ in range(10):
            t = time.perf_counter()
            futs = [client.submit(operator.add, i, 0, pure=False) for i in range(args.blocks)]
            while len(futs) > 1:
                futs = [client.submit(operator.add, futs[i], futs[i + 1], pure=False)
                        if i + 1 < len(futs) else futs[i] for i in range(0, len(futs), 2)]
            futs[0].result()
            trips.append(time.perf_counter() - t)
        trip = statistics.median(trips)
        set_up = total - per_it * len(stamps)
        client.close()
        cluster.close()

    print(f"\n{'variant':>22} {'s/iteration':>12} {'vs serial 1t':>13}")
    for name, t in rows:
        print(f"{name:>22} {t:12.4f} {serial_1 / t:13.2f}")
    ideal = serial_1 / 2
    print(f"\nwhere the time goes (dask, per iteration): ideal compute (serial 1t / 2) "
          f"{ideal:.4f} s; overhead {per_it - ideal:+.4f} s, of which the scheduling round "
          f"trip of the task graph is {trip:.4f} s; one-off set-up (persist, global moments, "
          f"init) {set_up:.2f} s; final lower bound {fitted.lower_bound_:.6f}")


if __name__ == "__main__":
    main()
