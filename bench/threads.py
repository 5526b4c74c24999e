"""Thread scaling: emx with ``n_jobs=2`` against ``n_jobs=1`` on every threaded benchmark.

For each case, the data, the model and the timing rule of the benchmark script it comes from
(at that script's default size), emx only, no peer library. Fits with one and two threads
alternate (after one untimed warm-up fit of each), and the table gives the medians over
``--repeats`` and their ratio. The machine's load average is printed before and after each
case: on a shared machine another process on one of the cores shows up as a ratio near 1.

Cases (script: what is timed):

* ``gmm.py``: GaussianMixture, N=200,000, D=20, K=8, every covariance type, 5 iterations,
  seconds of ``fit`` / 5;
* ``hmm.py``: GaussianHMM, T=100,000 in 100 sequences, D=13, K=4, 16, 64, 'diag' and
  'full', 3 iterations, seconds of ``fit`` / 3;
* ``gmmhmm.py``: GMMHMM 'diag', K=5, n_mix=4, D=39, T=200,000 in 1000 sequences, 3 iterations;
* ``discrete.py``: CategoricalHMM, K=16, T=100,000 in 100 sequences, 3 iterations;
* ``hmm_short_sequences.py``: GaussianHMM 'diag', K=4, 100,000 frames as 10,000 x 10;
* ``missing.py``: ``EMImputer().fit_transform`` on N=100,000, D=20 with 20 % missing;
* ``distributed.py``: the serial rows, GaussianMixture 'diag', N=2,000,000, D=20, K=16,
  seconds per iteration as (fit of 10 iterations - fit of 2) / 8.

Everything runs under ``threadpool_limits(1)`` (BLAS on one thread), as the scripts do.

Run from the repository root::

    python bench/threads.py                    # every case, 5 repeats
    python bench/threads.py --only gmm hmm --repeats 3

Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (emx's kernels' BLAS, loaded before the limit)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import describe_machine, log  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def fit_seconds(make, fit):
    model = make()
    t0 = time.perf_counter()
    fit(model)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------- cases
# Each returns a list of (case name, per_run(n_jobs) -> seconds).
def cases_gmm():
    import gmm

    X = gmm.make_data(np.random.default_rng(0), gmm.N_ROWS)
    out = []
    for cov in gmm.COV_TYPES:
        init = gmm.make_init(np.random.default_rng([0, 1]), X, cov)

        def run(n_jobs, cov=cov, init=init):
            return gmm.run_fit("emx", cov, 5, init, X, n_jobs)[0] / 5

        out.append((f"GaussianMixture {cov}", run))
    return out


def cases_hmm():
    import hmm

    X, lengths = hmm.make_data(np.random.default_rng(0), 100)
    out = []
    for cov in ("diag", "full"):
        for K in (4, 16, 64):
            init = hmm.make_init(np.random.default_rng([0, K]), X, K, cov)

            def run(n_jobs, K=K, cov=cov, init=init):
                return hmm.run_fit("emx", K, cov, 3, init, X, lengths, n_jobs)[0] / 3

            out.append((f"GaussianHMM K={K} {cov}", run))
    return out


def cases_gmmhmm():
    import gmmhmm

    X, lengths = gmmhmm.make_data(np.random.default_rng(0), gmmhmm.N_SEQ)
    init = gmmhmm.make_init(np.random.default_rng([0, 1]), X, "diag")

    def run(n_jobs):
        return gmmhmm.run_fit("emx", "diag", 3, init, X, lengths, n_jobs)[0] / 3

    return [("GMMHMM diag K=5 M=4", run)]


def cases_discrete():
    import discrete

    X, lengths = discrete.make_data("categorical", np.random.default_rng(0), 100)
    init = discrete.make_init("categorical", np.random.default_rng([0, 16]), X, 16)

    def run(n_jobs):
        return discrete.run_fit("categorical", "emx", 16, 3, init, X, lengths, n_jobs)[0] / 3

    return [("CategoricalHMM K=16", run)]


def cases_short():
    from emx import GaussianHMM

    T, D, K = 100_000, 13, 4
    rng = np.random.default_rng(0)
    X = rng.normal(size=(T, D)) + np.repeat(3.0 * rng.normal(size=(1000, D)), T // 1000, axis=0)
    params = (
        rng.dirichlet(np.ones(K)),
        rng.dirichlet(np.ones(K), size=K),
        X[rng.choice(T, K, replace=False)],
        np.tile(X.var(axis=0) + 1e-3, (K, 1)),
    )

    def make(n_jobs):
        m = GaussianHMM(n_components=K, covariance_type="diag", n_iter=3, tol=-1e300,
                        init_params="", n_jobs=n_jobs)
        m.startprob_, m.transmat_, m.means_, m.covars_ = (p.copy() for p in params)
        return m

    out = []
    for cut, lengths in (("100 x 1000", [1000] * 100), ("10000 x 10", [10] * 10_000)):
        def run(n_jobs, lengths=lengths):
            return fit_seconds(lambda: make(n_jobs), lambda m: m.fit(X, lengths)) / 3

        out.append((f"GaussianHMM K=4 {cut}", run))
    return out


def cases_missing():
    from emx import EMImputer

    N, D = 100_000, 20
    rng = np.random.default_rng(0)
    A = rng.normal(size=(D, D)) / np.sqrt(D)
    X = rng.multivariate_normal(3 * rng.normal(size=D), A @ A.T + 0.1 * np.eye(D), size=N)
    X[rng.random(X.shape) < 0.2] = np.nan

    def run(n_jobs):
        return fit_seconds(lambda: EMImputer(n_jobs=n_jobs), lambda m: m.fit_transform(X))

    return [("EMImputer fit_transform", run)]


def cases_distributed():
    from emx import GaussianMixture

    N, D, K, iters = 2_000_000, 20, 16, 8
    rng = np.random.default_rng(0)
    centres = 4 * rng.normal(size=(K, D))
    X = centres[rng.integers(0, K, N)] + rng.normal(size=(N, D))
    init = dict(
        weights_init=np.full(K, 1.0 / K),
        means_init=X[rng.choice(N, K, replace=False)],
        precisions_init=np.tile(1.0 / X.var(axis=0), (K, 1)),
    )

    def model(n_iter, n_jobs):
        return GaussianMixture(K, covariance_type="diag", max_iter=n_iter, tol=1e-300,
                               n_jobs=n_jobs, **init)

    def run(n_jobs):
        short = fit_seconds(lambda: model(2, n_jobs), lambda m: m.fit(X))
        long = fit_seconds(lambda: model(2 + iters, n_jobs), lambda m: m.fit(X))
        return (long - short) / iters

    return [("GaussianMixture diag N=2e6 K=16", run)]


CASES = {
    "gmm": cases_gmm,
    "hmm": cases_hmm,
    "gmmhmm": cases_gmmhmm,
    "discrete": cases_discrete,
    "hmm_short_sequences": cases_short,
    "missing": cases_missing,
    "distributed": cases_distributed,
}


def cpu_model(run) -> tuple[float, float]:
    """(serial share of the CPU time, ideal 2-thread speed-up) of one ``run(1)``, from CPU
    times, so unaffected by other processes: the CPU time outside the runner's tasks is
    serial; each ``ChunkRunner.map`` call costs the longer of two greedy workers' shares of
    its tasks (in submission order, as the thread pool hands them out)."""
    import emx._em as E

    calls = []
    plain = E.ChunkRunner.map

    def timed_map(self, func, chunks):
        rec = []
        calls.append(rec)

        def timed(chunk):
            t0 = time.thread_time()
            out = func(chunk)
            rec.append(time.thread_time() - t0)
            return out

        return plain(self, timed, chunks)

    E.ChunkRunner.map = timed_map
    try:
        c0 = time.process_time()
        run(1)
        cpu = time.process_time() - c0
    finally:
        E.ChunkRunner.map = plain
    two = cpu - sum(map(sum, calls))
    serial = two
    for rec in calls:
        workers = [0.0, 0.0]
        for t in rec:
            workers[workers.index(min(workers))] += t
        two += max(workers)
    return serial / cpu, cpu / two


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=sorted(CASES), default=None,
                   help="scripts whose cases to run (default all)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per variant (default 5)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    warnings.simplefilter("ignore")

    print("\n".join(describe_machine("no peer")))
    print(f"timing       : median and best of {args.repeats}, n_jobs=1 and 2 alternating after "
          "one warm-up each; BLAS limited to 1 thread")
    print("columns      : 1t/2t = median 1t / median 2t; best = fastest 1t / fastest 2t; "
          "serial = CPU share outside the\n"
          "               threaded tasks (1 thread); ideal = 1t/2t on two idle cores from "
          "the CPU times (see cpu_model)")
    print(f"{'script':>20}  {'case':>32}  {'1t s':>8}  {'2t s':>8}  {'1t/2t':>5}  {'best':>5}  "
          f"{'serial':>6}  {'ideal':>5}  load before -> after", flush=True)
    with threadpool_limits(limits=1):
        for script in args.only or CASES:
            for name, run in CASES[script]():
                before = load()
                log(f"{script}: {name}")
                run(1), run(2)
                serial, ideal = cpu_model(run)
                times = {1: [], 2: []}
                for _ in range(args.repeats):
                    for n_jobs in (1, 2):
                        times[n_jobs].append(run(n_jobs))
                t1, t2 = statistics.median(times[1]), statistics.median(times[2])
                best = min(times[1]) / min(times[2])
                print(f"{script:>20}  {name:>32}  {t1:8.4f}  {t2:8.4f}  {t1 / t2:5.2f}  "
                      f"{best:5.2f}  {serial:6.1%}  {ideal:5.2f}  {before} -> {load()}",
                      flush=True)


if __name__ == "__main__":
    main()
