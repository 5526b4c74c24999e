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
    python bench/streaming.py --hmm-n 0         # GaussianMixture only

A second part (``--hmm-n`` frames, default 10^6, sequences of 1000 frames) does the same for
GaussianHMM 'diag' (K=16, D=13) on a memmap of sequences read in chunks of whole sequences.
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
    ap.add_argument("--hmm-n", type=int, default=1_000_000,
                    help="frames of the GaussianHMM part (0: skip it)")
    ap.add_argument("--hmm-tol", type=float, default=1.0)
    ap.add_argument("--hmm-step-frames", type=int, default=10_000,
                    help="frames per partial_fit call of the HMM (whole sequences)")
    ap.add_argument("--hmm-kappa", type=float, default=0.5,
                    help="kappa of the HMM's stepwise EM (0.5 forgets the statistics of "
                    "the broad initial covariances faster than 0.7)")
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
        hmm_lines = hmm_section(args, tmp) if args.hmm_n > 0 else []

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
    for line in hmm_lines:
        print(line)


def hmm_section(args, tmp: str) -> list[str]:
    """GaussianHMM 'diag' on a memmap of sequences: batch EM chunk by chunk (s per iteration,
    tracemalloc peak), stepwise EM passes to within 0.1 % of the batch optimum."""
    from emx import GaussianHMM

    n, D, K, L = args.hmm_n, args.D, args.K, 1000
    rng = np.random.default_rng(1)
    gen = GaussianHMM(K, covariance_type="diag", random_state=1)
    gen.startprob_ = np.full(K, 1.0 / K)
    tm = rng.dirichlet(np.ones(K), size=K) * 0.1
    tm[np.arange(K), np.arange(K)] += 0.9
    gen.transmat_ = tm / tm.sum(axis=1, keepdims=True)
    gen.means_ = rng.normal(scale=3.0, size=(K, D))
    gen.covars_ = rng.uniform(0.5, 1.5, size=(K, D))
    gen.n_features = D
    path = os.path.join(tmp, "H.npy")
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, D))
    for i, a in enumerate(range(0, n, L)):
        mm[a:a + L] = gen.sample(L, random_state=i)[0]
    mm.flush()
    del mm
    X = np.load(path, mmap_mode="r")
    lengths = np.full(n // L, L)
    per = max(1, args.chunk // L)  # sequences per chunk

    def pairs():
        for s in range(0, len(lengths), per):
            yield X[s * L:(s + per) * L], lengths[s:s + per]

    init = GaussianHMM(K, covariance_type="diag", n_iter=0, random_state=0)
    fit_chunks(init, pairs, max_init_rows=args.init_rows)
    params = {a: getattr(init, a) for a in init._fitted_attrs}

    def model(n_iter):
        m = GaussianHMM(K, covariance_type="diag", n_iter=n_iter, tol=args.hmm_tol,
                        init_params="", random_state=0)
        for a, v in params.items():
            setattr(m, a, v)
        return m

    tracemalloc.start()
    model(1).fit(pairs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t = time.perf_counter()
    batch = model(args.max_iter).fit(pairs)
    t_batch = time.perf_counter() - t
    n_iter = len(batch.monitor_.history)
    best = sum(batch.score(Xc, lc) for Xc, lc in pairs()) / n
    log(f"hmm batch: {n_iter} iterations, {t_batch / n_iter:.2f} s each, loglik {best:.6f}")
    sw = model(1)
    order = np.random.default_rng(0)
    step = max(1, args.hmm_step_frames // L)  # sequences per partial_fit call
    chunks = list(range(0, len(lengths), step))
    reached, hist = None, []
    for p in range(1, args.max_passes + 1):
        for s in order.permutation(chunks):
            sw.partial_fit(X[s * L:(s + step) * L], lengths[s:s + step],
                           kappa=args.hmm_kappa, t0=args.t0)
        ll = sum(sw.score(Xc, lc) for Xc, lc in pairs()) / n
        hist.append(ll)
        log(f"hmm stepwise pass {p}: {ll:.6f}")
        if best - ll <= 1e-3 * abs(best):
            reached = p
            break
    lines = [
        f"GaussianHMM  : N={n:,} frames ({len(lengths)} sequences of {L}), D={D}, K={K} "
        f"'diag', chunks of {per * L:,} frames; init k-means on a sample of "
        f"{min(n, args.init_rows):,} frames",
        f"  batch EM   : {n_iter} iterations to tol={args.hmm_tol} (converged="
        f"{batch.monitor_.converged}), {t_batch / n_iter:.2f} s per iteration, mean "
        f"log-likelihood {best:.6f}; peak {peak / 1e6:.1f} MB allocated during one "
        f"iteration for {n * D * 8 / 1e6:,.0f} MB of data",
        f"  stepwise   : kappa={args.hmm_kappa}, t0={args.t0}, {len(chunks)} steps per pass; "
        "mean log-likelihood per pass " + ", ".join(f"{h:.6f}" for h in hist)
        + ("; within 0.1 % of the batch optimum after " f"{reached} pass(es)" if reached
           else f"; not within 0.1 % after {args.max_passes} passes"),
    ]
    return lines


if __name__ == "__main__":
    main()
