"""What a few labels buy: state recovery of a GaussianHMM against the fraction of labelled
frames (semi-supervised EM, ``fit(X, lengths, labels=...)``).

Data: per seed, a Gaussian HMM with K states whose means overlap (drawn in D dimensions at a
scale comparable to the unit variances), sticky transitions, ``--n-seq`` sequences of
``--length`` frames sampled from it. For each fraction of labelled frames (frames chosen
uniformly at random, their true state given, -1 elsewhere), emx.GaussianHMM is fitted with
``labels=`` from the same initialisation (``random_state``), and the script reports the
accuracy of the Viterbi path of *unlabelled* held-out sequences from the same model (so the
figure measures the fitted model, not the labels copied back), and on the training data.
With labels, the initial means of the labelled states are the means of their labelled frames.

States are matched to the true ones by the Hungarian algorithm (on the confusion matrix) at
0 % labels, where the fitted states are an arbitrary permutation; with labels the states are
anchored and accuracy is counted as is (no matching). Medians (and min-max) over seeds.

Run from the repository root::

    python bench/semisupervised.py                  # 5 seeds, K=5, D=2
    python bench/semisupervised.py --seeds 3 --quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import describe_machine, format_header, format_row, log  # noqa: E402

from emx import GaussianHMM  # noqa: E402


def true_model(K: int, D: int, seed: int) -> GaussianHMM:
    rng = np.random.default_rng(seed)
    m = GaussianHMM(K, covariance_type="diag", random_state=seed)
    m.startprob_ = np.full(K, 1.0 / K)
    tm = rng.dirichlet(np.ones(K), size=K) * 0.15
    tm[np.arange(K), np.arange(K)] += 0.85
    m.transmat_ = tm / tm.sum(axis=1, keepdims=True)
    m.means_ = rng.normal(scale=1.5, size=(K, D))
    m.covars_ = np.ones((K, D))
    m.n_features = D
    return m


def sample(model, n_seq: int, length: int, seed: int):
    Xs, Zs = [], []
    for i in range(n_seq):
        X, Z = model.sample(length, random_state=seed * 1000 + i)
        Xs.append(X)
        Zs.append(Z)
    return np.concatenate(Xs), np.concatenate(Zs), [length] * n_seq


def accuracy(pred, true, K, match: bool) -> float:
    if not match:
        return float(np.mean(pred == true))
    C = np.zeros((K, K))
    np.add.at(C, (pred, true), 1)
    r, c = linear_sum_assignment(-C)
    return float(C[r, c].sum() / len(true))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--K", type=int, default=5)
    ap.add_argument("--D", type=int, default=2)
    ap.add_argument("--n-seq", type=int, default=20)
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--n-iter", type=int, default=100)
    ap.add_argument("--fractions", default="0,0.01,0.05,0.2,1")
    ap.add_argument("--quick", action="store_true", help="10 sequences, 3 seeds")
    args = ap.parse_args()
    if args.quick:
        args.n_seq, args.seeds = 10, min(args.seeds, 3)
    fractions = [float(f) for f in args.fractions.split(",")]
    K, D = args.K, args.D

    print("\n".join(describe_machine("scipy (Hungarian matching)")))
    print(f"data         : K={K} states, D={D}, {args.n_seq} sequences x {args.length} frames "
          f"per seed (train) + the same held out; {args.seeds} seeds; n_iter={args.n_iter}, "
          "tol=1e-4")
    results = {f: {"test": [], "train": [], "time": [], "matched": []} for f in fractions}
    for seed in range(args.seeds):
        model = true_model(K, D, seed)
        X, Z, lengths = sample(model, args.n_seq, args.length, seed)
        Xt, Zt, lt = sample(model, args.n_seq, args.length, seed + 10_000)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(X))
        for f in fractions:
            labels = np.full(len(X), -1)
            chosen = order[: int(round(f * len(X)))]
            labels[chosen] = Z[chosen]
            t = time.perf_counter()
            fit = GaussianHMM(K, n_iter=args.n_iter, tol=1e-4, random_state=seed).fit(
                X, lengths, labels=labels)
            results[f]["time"].append(time.perf_counter() - t)
            match = f == 0
            results[f]["test"].append(accuracy(fit.predict(Xt, lt), Zt, K, match))
            results[f]["train"].append(accuracy(fit.predict(X, lengths), Z, K, match))
            results[f]["matched"].append(accuracy(fit.predict(Xt, lt), Zt, K, True))
            log(f"seed {seed} labelled {f:.0%}: held-out accuracy "
                f"{results[f]['test'][-1]:.3f}")
    # reference: Viterbi with the true parameters
    oracle = []
    for seed in range(args.seeds):
        model = true_model(K, D, seed)
        Xt, Zt, lt = sample(model, args.n_seq, args.length, seed + 10_000)
        oracle.append(accuracy(model.predict(Xt, lt), Zt, K, False))

    cols = [("labelled", 9, ".0%"), ("held-out acc (median)", 21, ".3f"),
            ("min", 6, ".3f"), ("max", 6, ".3f"), ("train acc (median)", 18, ".3f"),
            ("held-out matched", 16, ".3f"), ("fit s (median)", 14, ".2f")]
    print()
    print(format_header(cols))
    for f in fractions:
        r = results[f]
        print(format_row(cols, [f, statistics.median(r["test"]), min(r["test"]),
                                max(r["test"]), statistics.median(r["train"]),
                                statistics.median(r["matched"]),
                                statistics.median(r["time"])]))
    print(f"true parameters (Viterbi): held-out accuracy median {statistics.median(oracle):.3f}")
    print("(0 %: states matched to the true ones by the Hungarian algorithm; with labels, "
          "no matching; 'held-out matched': Hungarian matching at every fraction, the quality "
          "of the fitted model whatever its state order)")


if __name__ == "__main__":
    main()
