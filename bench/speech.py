"""Spoken-digit recognition on FSDD: emx.speech.Recognizer against hmmlearn recognisers.

Prints one table per task, with hmmlearn run in the same process on the same recordings:

* **official split** (train takes 5-49, test takes 0-4): accuracy and training time (median
  over ``--repeats``) of emx's default Recognizer; hmmlearn's GMMHMM doing the same job (one
  left-to-right model per word with emx's number of states and Gaussians, same 39-d features,
  as many Baum-Welch iterations as emx runs passes); and the "40-line" hmmlearn recogniser
  the issue quotes (GaussianHMM, 5 states, 1 Gaussian, 39-d MFCC with mean normalisation);
* **leave one speaker out**: train on three speakers, test on all 500 recordings of the
  fourth, for emx and the 40-line baseline (hmmlearn's GMMHMM is left out: minutes per fold);
* **connected digits**: 100 strings of 3-7 test recordings joined with 50-300 ms of low
  noise (``emx.datasets.join_recordings``), recognised with the word loop; emx trained on the
  isolated training recordings alone, and on those plus ``--strings`` strings joined the same
  way from training recordings (embedded training, HERest-style).

Feature extraction is timed separately (it is the same front end for every model).

Run:  python bench/speech.py [FSDD_DIR] [--repeats 3] [--strings 400] [--skip-gmmhmm]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _common import describe_machine, log

from emx.datasets import fsdd_split, join_recordings, load_fsdd
from emx.speech import DEFAULT_FEATURES, FeatureConfig, Recognizer, features, mfcc

REPO = Path(__file__).resolve().parents[1]


def hmmlearn_baseline(feats, labels, train, test):
    """The 40-line recogniser: one 5-state GaussianHMM (diag) per word."""
    from hmmlearn.hmm import GaussianHMM

    models = {}
    start = time.perf_counter()
    for w in sorted(set(labels[train])):
        idx = [i for i in train if labels[i] == w]
        m = GaussianHMM(5, covariance_type="diag", n_iter=20, random_state=0)
        m.fit(np.concatenate([feats[i] for i in idx]), [len(feats[i]) for i in idx])
        models[w] = m
    seconds = time.perf_counter() - start
    words = sorted(models)
    hyp = [words[int(np.argmax([models[w].score(feats[i]) for w in words]))] for i in test]
    return float(np.mean(np.asarray(hyp) == labels[test])), seconds


def hmmlearn_gmmhmm(feats, labels, train, test, n_states, n_mix, n_iter):
    """hmmlearn's GMMHMM doing emx's job: left-to-right per word, same features and sizes.

    Returns accuracy, training seconds and the words whose fitted model holds NaN (they score
    -inf: hmmlearn has no variance floor beyond ``min_covar`` and its startprob/transmat
    update can divide 0 by 0).
    """
    from hmmlearn.hmm import GMMHMM

    models = {}
    start = time.perf_counter()
    for w in sorted(set(labels[train])):
        idx = [i for i in train if labels[i] == w]
        m = GMMHMM(n_states, n_mix, covariance_type="diag", n_iter=n_iter, tol=-np.inf,
                   random_state=0, init_params="mcw", params="stmcw")
        m.startprob_ = np.eye(n_states)[0]
        t = np.diag(np.full(n_states, 0.5)) + np.diag(np.full(n_states - 1, 0.5), 1)
        t[-1, -1] = 1.0
        m.transmat_ = t
        m.fit(np.concatenate([feats[i] for i in idx]), [len(feats[i]) for i in idx])
        models[w] = m
    seconds = time.perf_counter() - start
    words = sorted(models)
    broken = [str(w) for w in words if not all(np.all(np.isfinite(getattr(models[w], a)))
                                           for a in ("startprob_", "transmat_", "means_",
                                                     "covars_", "weights_"))]

    def score(m, X):
        try:
            return m.score(X)
        except ValueError:
            return -np.inf

    hyp = [words[int(np.argmax([score(models[w], feats[i]) for w in words]))] for i in test]
    return float(np.mean(np.asarray(hyp) == labels[test])), seconds, broken


def emx_fit(feats, labels, train, extra=None):
    X = [feats[i] for i in train]
    y = [labels[i] for i in train]
    if extra is not None:
        X, y = X + extra[0], y + extra[1]
    start = time.perf_counter()
    # the arrays come from DEFAULT_FEATURES: declared, as a user training on arrays would
    rec = Recognizer(feature_config=DEFAULT_FEATURES).fit(X, y)
    return rec, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fsdd", nargs="?", default=str(REPO.parent / "shared" / "data" / "fsdd"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strings", type=int, default=400,
                        help="joined training strings for the connected-digit model")
    parser.add_argument("--test-strings", type=int, default=100)
    parser.add_argument("--skip-gmmhmm", action="store_true",
                        help="leave out hmmlearn's GMMHMM (minutes)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # hmmlearn's convergence chatter

    data = load_fsdd(args.fsdd)
    labels = np.asarray(data.labels)
    speakers = sorted(set(data.speakers))
    import hmmlearn

    for line in describe_machine(f"hmmlearn {hmmlearn.__version__}"):
        print(line)
    print(f"FSDD: {len(data.paths)} recordings, speakers {', '.join(speakers)}")
    t0 = time.perf_counter()
    feats = [features(p, DEFAULT_FEATURES) for p in data.paths]
    t_feat = time.perf_counter() - t0
    base_feats = [features(p, FeatureConfig()) for p in data.paths]  # mean normalisation only
    defaults = Recognizer()
    passes = defaults.n_iter * (1 + int(np.ceil(np.log2(defaults.n_mix))))
    print(f"emx Recognizer defaults: {defaults.n_states} states x {defaults.n_mix} Gaussians, "
          f"{passes} Baum-Welch passes, silence model, WIP {defaults.word_insertion_penalty}")
    print(f"features (all {len(feats)} recordings, 39-d MFCC + CMN/CVN): {t_feat:.1f} s")

    # ---------------------------------------------------------------- official split
    train, test = fsdd_split(data)
    times, accs = [], []
    for r in range(args.repeats):
        rec, sec = emx_fit(feats, labels, train)
        times.append(sec)
        accs.append(float(np.mean(np.asarray(rec.predict([feats[i] for i in test]))
                                  == labels[test])))
        log(f"emx official split, repeat {r + 1}: {sec:.2f} s")
    emx_time = float(np.median(times))
    base_acc, base_time = hmmlearn_baseline(base_feats, labels, train, test)
    print("\nOfficial split: train takes 5-49 (1800), test takes 0-4 (200)")
    print(f"{'recogniser':48s} {'accuracy':>9s} {'train s':>9s} {'ratio':>7s}")
    name = f"emx Recognizer (median of {args.repeats})"
    print(f"{name:48s} {100 * accs[0]:8.1f}% "
          f"{emx_time:9.2f} {'1.0':>7s}")
    if not args.skip_gmmhmm:
        log("hmmlearn GMMHMM (slow) ...")
        acc, sec, broken = hmmlearn_gmmhmm(feats, labels, train, test, defaults.n_states,
                                           defaults.n_mix, passes)
        print(f"{'hmmlearn GMMHMM, same sizes and features':48s} {100 * acc:8.1f}% "
              f"{sec:9.2f} {sec / emx_time:6.1f}x")
        if broken:
            print(f"  (hmmlearn's models of words {broken} came out with NaN parameters)")
    print(f"{'hmmlearn 40-line (GaussianHMM 5 states, CMN)':48s} {100 * base_acc:8.1f}% "
          f"{base_time:9.2f} {base_time / emx_time:6.1f}x")

    # ---------------------------------------------------------------- leave one speaker out
    print("\nLeave one speaker out: accuracy on the held-out speaker's 500 recordings")
    print(f"{'speaker':10s} {'emx':>8s} {'hmmlearn 40-line':>17s}")
    ours, theirs = [], []
    for s in speakers:
        held = np.asarray(data.speakers) == s
        tr, te = np.flatnonzero(~held), np.flatnonzero(held)
        rec, _ = emx_fit(feats, labels, tr)
        ours.append(float(np.mean(np.asarray(rec.predict([feats[i] for i in te]))
                                  == labels[te])))
        theirs.append(hmmlearn_baseline(base_feats, labels, tr, te)[0])
        print(f"{s:10s} {100 * ours[-1]:7.1f}% {100 * theirs[-1]:16.1f}%")
    print(f"{'mean':10s} {100 * np.mean(ours):7.1f}% {100 * np.mean(theirs):16.1f}%")

    # ---------------------------------------------------------------- connected digits
    paths = np.asarray(data.paths)
    sig, refs, rate = join_recordings(paths[test], labels[test], args.test_strings,
                                      random_state=0)
    utts = [mfcc(x, rate, DEFAULT_FEATURES) for x in sig]
    n_words = sum(len(r) for r in refs)
    print(f"\nConnected digits: {len(utts)} strings of 3-7 test recordings, 50-300 ms noise "
          f"gaps (std 0.002), {n_words} words")
    print(f"{'training data':44s} {'word acc':>9s} {'S':>4s} {'D':>4s} {'I':>4s} "
          f"{'train s':>8s} {'decode s':>9s}")
    rec_iso, sec_iso = emx_fit(feats, labels, train)
    jsig, jrefs, _ = join_recordings(paths[train], labels[train], args.strings,
                                     random_state=1)
    strings = ([mfcc(x, rate, DEFAULT_FEATURES) for x in jsig], jrefs)
    rec_str, sec_str = emx_fit(feats, labels, train, strings)
    for name, rec, sec in (("isolated training recordings", rec_iso, sec_iso),
                           (f"isolated + {args.strings} joined training strings", rec_str,
                            sec_str)):
        t0 = time.perf_counter()
        r = rec.evaluate(utts, refs)
        dec = time.perf_counter() - t0
        print(f"{name:44s} {100 * r['accuracy']:8.1f}% {r['substitutions']:4d} "
              f"{r['deletions']:4d} {r['insertions']:4d} {sec:8.1f} {dec:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
