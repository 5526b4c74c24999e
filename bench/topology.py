"""Sparse transitions: emx.GaussianHMM on the sparse-topology kernels vs the dense kernels.

``BaseHMM`` picks the transition kernels from ``transmat_`` (``emx.hmm``): a banded matrix
(left-to-right: every non-zero on a few diagonals) runs the forward-backward diagonal by
diagonal (``band_offsets``), other sparse matrices the edge-list kernels (O(n_edges) per
frame), dense ones the dense (lockstep, dgemm) kernels. All give the dense results to
round-off. For each number of states K and each topology, the script forces each path
(``emx.hmm._TRANSITIONS``: ``dense``, ``sparse`` = edge lists, ``auto`` = the rule's choice,
named in column ``auto``) on the same data and initial parameters, and prints:

* ``fit s/it``: seconds per EM iteration (median over repeats of the CPU time of a whole
  ``fit`` with ``n_jobs=1``, divided by ``n_iter``), and the ratios edges / dense and
  auto / dense;
* ``fb@init``, ``fb@fit``: seconds of the forward-backward alone on all the data (one call
  per E-step chunk, as ``fit`` cuts them, posteriors and xi included, emission
  log-likelihoods computed beforehand; median over repeats), and the same ratios, at the
  initial parameters and at those ``--fb-iter`` (default 10) dense EM iterations reach.
  They differ: the initial states share the data variance, so every state stays likely;
  fitted left-to-right states are sharp, most states' probabilities underflow to exactly 0
  at any frame, and the banded kernels work only on the window of the others;
* ``LL rdiff``: the largest relative difference between the per-iteration log-likelihoods
  (``monitor_.history``) of the edge and auto fits and the dense fit: all run the same EM.

Topologies: ``left-to-right`` (each state: a self-loop and a move to the next, the last
state absorbing; 2K - 1 non-zero transitions, the speech topology) and ``dense`` (every
transition allowed). Data: D=13 features, 100 sequences of 1000 frames (T=100,000;
``--quick``: 10 sequences) drawn from a Gaussian HMM of the same topology, K states. Initial
parameters: means of a uniform segmentation of every sequence into K parts, the data
variance for every state, transitions 0.5 / 0.5 (left-to-right) or Dirichlet(1) rows
(dense); ``init_params=""``, exactly ``n_iter`` iterations.

``--sweep`` prints, instead, the forward-backward time dense / edges for K in 2..128 and
matrices with r non-zero entries per row at random columns (r from 1 to K; density r / K;
not banded, since banded matrices take the banded path): the measurements behind the
edge-list rule (values above 1: the edge kernels are faster).

Everything runs under ``threadpoolctl.threadpool_limits(1)`` (one BLAS thread) with
``n_jobs=1``, so the process's CPU time (``time.process_time``) is the single thread's compute
time: other work on a shared box lengthens the wall time but hardly this.

Run from the repository root::

    python bench/topology.py                 # K in 16,64; left-to-right and dense
    python bench/topology.py --quick         # smoke test on T=10,000
    python bench/topology.py --sweep         # the crossover behind the edge-list rule

Progress goes to stderr, the machine description and the table to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from _common import describe_machine, format_header, format_row, log, max_rel_diff
from threadpoolctl import threadpool_limits

import emx.hmm as emx_hmm
from emx import GaussianHMM
from emx.hmm import (
    BAND_MIN_STATES,
    SPARSE_MAX_DENSITY,
    SPARSE_MAX_PER_ROW,
    SPARSE_MIN_STATES,
    _Transitions,
)

N_FEATURES = 13
SEQ_LEN = 1000
TOPOLOGIES = ("left-to-right", "dense")


# ---------------------------------------------------------------------------- data
def left_to_right(K: int, stay: float) -> np.ndarray:
    A = np.zeros((K, K))
    for i in range(K - 1):
        A[i, i], A[i, i + 1] = stay, 1.0 - stay
    A[K - 1, K - 1] = 1.0
    return A


def true_model(rng: np.random.Generator, K: int, topology: str):
    """Start, transitions, means and standard deviations of the model the data come from."""
    if topology == "left-to-right":
        start = np.eye(K)[0]
        trans = left_to_right(K, 1.0 - K / SEQ_LEN)  # about SEQ_LEN / K frames per state
    else:
        start = rng.dirichlet(np.ones(K))
        trans = 0.9 * np.eye(K) + 0.1 * rng.dirichlet(np.ones(K), size=K)
    means = rng.normal(0.0, 2.0, size=(K, N_FEATURES))
    sd = rng.uniform(0.5, 1.5, size=(K, N_FEATURES))
    return start, trans, means, sd


def make_data(rng: np.random.Generator, K: int, topology: str, n_seq: int):
    start, trans, means, sd = true_model(rng, K, topology)
    states = np.empty((n_seq, SEQ_LEN), dtype=np.intp)
    cdf = np.cumsum(trans, axis=1)
    states[:, 0] = np.minimum(np.searchsorted(np.cumsum(start), rng.random(n_seq)), K - 1)
    for t in range(1, SEQ_LEN):
        u = rng.random(n_seq)
        states[:, t] = np.minimum((cdf[states[:, t - 1]] < u[:, None]).sum(axis=1), K - 1)
    states = states.ravel()
    X = means[states] + sd[states] * rng.standard_normal((len(states), N_FEATURES))
    return np.ascontiguousarray(X), np.full(n_seq, SEQ_LEN, dtype=np.intp)


def make_init(rng: np.random.Generator, X: np.ndarray, K: int, topology: str) -> dict:
    segment = (np.arange(SEQ_LEN) * K) // SEQ_LEN  # uniform segmentation of every sequence
    seg = np.tile(segment, len(X) // SEQ_LEN)
    means = np.array([X[seg == k].mean(axis=0) for k in range(K)])
    covars = np.tile(X.var(axis=0) + 1e-3, (K, 1))
    if topology == "left-to-right":
        start, trans = np.eye(K)[0], left_to_right(K, 0.5)
    else:
        start, trans = rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K), size=K)
    return dict(startprob_=start, transmat_=trans, means_=means, covars_=covars)


# ---------------------------------------------------------------------------- timing
def fit_seconds(mode: str, K: int, init: dict, X, lengths, n_iter: int):
    """(seconds per iteration, log-likelihood history) of one fit on the forced path."""
    emx_hmm._TRANSITIONS = mode
    try:
        model = GaussianHMM(K, covariance_type="diag", n_iter=n_iter, tol=-1e300,
                            init_params="", n_jobs=1)
        for name, value in init.items():
            setattr(model, name, value.copy())
        t0 = time.process_time()
        model.fit(X, lengths)
        elapsed = time.process_time() - t0
    finally:
        emx_hmm._TRANSITIONS = "auto"
    history = np.asarray(model.monitor_.history)
    if len(history) != n_iter:
        raise RuntimeError(f"ran {len(history)} iterations instead of {n_iter}")
    return elapsed / n_iter, history


def chunked_loglik(model: GaussianHMM, X, lengths):
    """Emission log-likelihoods and local offsets of every E-step chunk, as fit cuts them."""
    data = model._validate(X, lengths, reset=False)
    loglik_fn = model._emission_loglik_fn()
    return [(np.ascontiguousarray(loglik_fn(data.X[f0:f1])[0]), off)
            for f0, f1, off in data.chunks]


def fb_seconds(modes, chunks, startprob, transmat, repeats: int) -> dict:
    """Median seconds of the forward-backward (with xi) over all the chunks, for each mode;
    the modes alternate within every repeat (a slow spell of a shared machine then falls on
    all of them), after one warm-up round."""
    trans = {}
    for mode in modes:
        emx_hmm._TRANSITIONS = mode
        try:
            trans[mode] = _Transitions(startprob, transmat)
        finally:
            emx_hmm._TRANSITIONS = "auto"
    times = {mode: [] for mode in modes}
    for r in range(repeats + 1):  # the first round is a warm-up
        for mode in modes:
            t0 = time.process_time()
            for ll, off in chunks:
                status = trans[mode].forward_backward(ll, off)[0]
                if status >= 0:
                    raise RuntimeError(f"sequence {status} has probability zero")
            if r:
                times[mode].append(time.process_time() - t0)
    return {mode: statistics.median(v) for mode, v in times.items()}


def auto_path(startprob, transmat) -> str:
    """The path the automatic rule picks for the forward-backward."""
    t = _Transitions(startprob, transmat)
    if getattr(t, "bands", None) is not None:
        return "banded"
    return "edges" if getattr(t, "fb_edges", t.sparse) else "dense"


MODES = ("dense", "sparse", "auto")
COLUMNS = [
    ("K", 4, "d"),
    ("topology", 13, "s"),
    ("nnz", 5, "d"),
    ("auto", 6, "s"),
    ("fit s/it dense", 14, ".4f"),
    ("edges", 7, ".4f"),
    ("auto", 7, ".4f"),
    ("e/d", 5, ".2f"),
    ("a/d", 5, ".2f"),
    ("fb@init dense", 13, ".4f"),
    ("edges", 7, ".4f"),
    ("auto", 7, ".4f"),
    ("e/d", 5, ".2f"),
    ("a/d", 5, ".2f"),
    ("fb@fit dense", 12, ".4f"),
    ("edges", 7, ".4f"),
    ("auto", 7, ".4f"),
    ("e/d", 5, ".2f"),
    ("a/d", 5, ".2f"),
    ("LL rdiff", 8, ".1e"),
]


def bench_case(args, K: int, topology: str) -> list:
    rng = np.random.default_rng([args.seed, K, TOPOLOGIES.index(topology)])
    X, lengths = make_data(rng, K, topology, 10 if args.quick else 100)
    init = make_init(rng, X, K, topology)
    fit_t = {mode: [] for mode in MODES}
    hist = {}
    for r in range(args.repeats + 1):  # variants interleaved; the first round is a warm-up
        log(f"K={K} {topology}: fit, round {r + 1}")
        for mode in MODES:
            t, hist[mode] = fit_seconds(mode, K, init, X, lengths, args.n_iter)
            if r:
                fit_t[mode].append(t)
    model = GaussianHMM(K, covariance_type="diag")
    for name, value in init.items():
        setattr(model, name, value.copy())
    model.n_features_in_ = N_FEATURES
    fb = {}
    for when in ("init", "fitted"):
        if when == "fitted":  # the parameters --fb-iter dense EM iterations reach
            emx_hmm._TRANSITIONS = "dense"
            try:
                model = GaussianHMM(K, covariance_type="diag", n_iter=args.fb_iter,
                                    tol=-1e300, init_params="")
                for name, value in init.items():
                    setattr(model, name, value.copy())
                model.fit(X, lengths)
            finally:
                emx_hmm._TRANSITIONS = "auto"
        chunks = chunked_loglik(model, X, lengths)
        log(f"K={K} {topology}: forward-backward at the {when} parameters")
        fb[when] = fb_seconds(MODES, chunks, model.startprob_, model.transmat_, args.repeats)
    fit = {mode: statistics.median(v) for mode, v in fit_t.items()}
    nnz = int(np.count_nonzero(init["transmat_"]))
    rdiff = max(max_rel_diff(hist["dense"], hist[m]) for m in ("sparse", "auto"))
    row = [K, topology, nnz, auto_path(init["startprob_"], init["transmat_"]),
           fit["dense"], fit["sparse"], fit["auto"], fit["sparse"] / fit["dense"],
           fit["auto"] / fit["dense"]]
    for when in ("init", "fitted"):
        f = fb[when]
        row += [f["dense"], f["sparse"], f["auto"], f["sparse"] / f["dense"],
                f["auto"] / f["dense"]]
    return row + [rdiff]


def sweep(args) -> None:
    """Forward-backward kernel seconds dense / sparse against the density of transmat_."""
    rng = np.random.default_rng(args.seed)
    T = 10 * SEQ_LEN if args.quick else 40 * SEQ_LEN
    lengths = np.full(T // SEQ_LEN, SEQ_LEN)
    print(f"sweep        : forward-backward kernel seconds dense / sparse (> 1: edges "
          f"faster), T={T:,} in sequences of {SEQ_LEN}, median of {args.repeats}; "
          "r non-zero entries per row at random columns (not banded: the pattern the edge "
          "lists get), density r / K")
    print(f"{'K':>4}  density:dense/sparse ...")
    for K in (2, 4, 8, 16, 32, 64, 128):
        cells = []
        for r in sorted({1, 2, 3, K // 8, K // 4, 3 * K // 8, K // 2, 3 * K // 4, K}):
            if not 1 <= r <= K:
                continue
            A = np.zeros((K, K))
            for i in range(K):
                cols = rng.choice(K, size=r, replace=False)  # r random states
                A[i, cols] = rng.dirichlet(np.ones(r))
            chunks = [(rng.normal(scale=3.0, size=(SEQ_LEN, K)),
                       np.array([0, SEQ_LEN], dtype=np.intp)) for _ in lengths]
            sp = np.full(K, 1.0 / K)
            t = fb_seconds(("dense", "sparse"), chunks, sp, A, args.repeats)
            cells.append(f"{np.count_nonzero(A) / K**2:.2f}:{t['dense'] / t['sparse']:.2f}")
        log(f"sweep K={K} done")
        print(f"{K:>4}  " + "  ".join(cells), flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="emx.GaussianHMM on the edge-list (sparse) vs the dense transition "
        "kernels: seconds per EM iteration and of the forward-backward kernel."
    )
    p.add_argument("--sizes", default="16,64", help="numbers of states (default 16,64)")
    p.add_argument("--topologies", default=",".join(TOPOLOGIES),
                   help="left-to-right and/or dense (default both)")
    p.add_argument("--n-iter", type=int, default=3, help="EM iterations per fit (default 3)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per variant (default 3)")
    p.add_argument("--fb-iter", type=int, default=10,
                   help="EM iterations behind the 'fitted' parameters of fb@fit (default 10)")
    p.add_argument("--quick", action="store_true", help="smoke test: T=10,000 frames")
    p.add_argument("--sweep", action="store_true",
                   help="print the dense/sparse kernel time against density instead")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and init (default 0)")
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.topologies = [s.strip() for s in args.topologies.split(",") if s.strip()]
    for t in args.topologies:
        if t not in TOPOLOGIES:
            p.error(f"unknown topology {t!r}: choose from {', '.join(TOPOLOGIES)}")
    for name in ("n_iter", "repeats", "fb_iter"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    print("emx.GaussianHMM 'diag': sparse-topology (edge-list, banded) vs dense transition "
          "kernels")
    for line in describe_machine("no peer (emx against itself)", 1):
        print(line)
    print(f"rule         : emx.hmm picks the edge lists when nnz(transmat_) <= min("
          f"{SPARSE_MAX_DENSITY} * K**2, {SPARSE_MAX_PER_ROW} * K) and K >= "
          f"{SPARSE_MIN_STATES}, unless the banded form is chosen first "
          f"(emx.hmm._band_offsets: K >= {BAND_MIN_STATES}; a banded matrix with fewer "
          "states takes the dense forward-backward)")
    with threadpool_limits(limits=1, user_api="blas"):
        if args.sweep:
            sweep(args)
            return
        n_seq = 10 if args.quick else 100
        print(f"data         : T={n_seq * SEQ_LEN:,} frames in {n_seq} sequences of "
              f"{SEQ_LEN}, D={N_FEATURES}, drawn from a Gaussian HMM of the topology "
              f"(seed {args.seed})")
        print(f"runs         : n_iter={args.n_iter} per fit, n_jobs=1; median of "
              f"{args.repeats} timed runs after a warm-up; e/d = edges / dense, "
              "a/d = auto / dense")
        print(flush=True)
        rows = [bench_case(args, K, topology)
                for topology in args.topologies for K in args.sizes]
    print(format_header(COLUMNS))
    for row in rows:
        print(format_row(COLUMNS, row))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
