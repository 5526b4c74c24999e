"""Spoken-digit recognition on FSDD: emx.speech.Recognizer against hmmlearn recognisers.

Prints one table per task, with hmmlearn run in the same process on the same recordings:

* **official split** (train takes 5-49, test takes 0-4): accuracy and training time (median
  over ``--repeats``) of emx's default Recognizer; hmmlearn's GMMHMM doing the same job (one
  left-to-right model per word with emx's number of states and Gaussians, same 39-d features,
  as many Baum-Welch iterations as emx runs passes); and the "40-line" hmmlearn recogniser
  the issue quotes (GaussianHMM, 5 states, 1 Gaussian, 39-d MFCC with mean normalisation);
* **leave one speaker out**: train on three speakers, test on all 500 recordings of the
  fourth: the 40-line baseline, then emx's unseen-speaker table (defaults, per-speaker CMVN,
  VTLN, speed perturbation, unsupervised adaptation with each method), each with isolated
  accuracy and the word accuracy of connected strings of the held-out speaker's recordings;
* **connected digits**: 100 strings of 3-7 test recordings joined with 50-300 ms of low
  noise (``emx.datasets.join_recordings``), recognised with the word loop; emx trained on the
  isolated training recordings alone, and on those plus ``--strings`` strings joined the same
  way from training recordings (embedded training, HERest-style).

Feature extraction is timed separately (it is the same front end for every model).

Run:  python bench/speech.py [FSDD_DIR] [--repeats 3] [--strings 400] [--skip-gmmhmm]
      [--skip-unseen] [--unseen-strings 25] [--only 'defaults' 'adapt map' ...]
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


UNSEEN_ROWS = ("defaults", "speaker CMVN", "VTLN", "VTLN + speaker CMVN", "augment 0.9/1.1",
               "adapt map", "adapt mllr", "adapt cmllr", "speaker CMVN + adapt map",
               "sharp: speaker CMVN + adapt map", "SAT + speaker CMVN + adapt cmllr",
               "sharp: SAT + speaker CMVN + adapt cmllr")
#: "sharp" rows train n_mix=2, var_floor=0.1 (the defaults before emx 0.2): narrower
#: Gaussians, worse on an unseen voice as they are, better once adapted to it
SHARP = dict(n_mix=2, var_floor=0.1)


def unseen(data, speakers, args):
    """Leave-one-speaker-out for every technique of emx.speech: isolated accuracy on the
    held-out speaker's 500 recordings and word accuracy on strings of them (3-7 words, noisy
    gaps), the model trained on the isolated recordings of the other three."""
    paths, labels, spk = (np.asarray(data.paths), np.asarray(data.labels),
                          np.asarray(data.speakers))
    rows = [r for r in UNSEEN_ROWS if args.only is None or r in args.only]
    iso = {r: {} for r in rows}
    con = {r: {} for r in rows}
    secs = {r: [] for r in rows}
    for s in speakers:
        tr, te = np.flatnonzero(spk != s), np.flatnonzero(spk == s)
        train = (list(paths[tr]), list(labels[tr]))
        test = list(paths[te])
        sig, refs, rate = join_recordings(paths[te], labels[te], args.unseen_strings,
                                          random_state=0)
        strings = [(x, rate) for x in sig]
        models = {}

        def fit(key, spk_cmvn=False, models=models, train=train, tr=tr, **params):
            if key not in models:
                t0 = time.perf_counter()
                models[key] = Recognizer(**params).fit(
                    *train, speakers=list(spk[tr]) if spk_cmvn else None)
                models[key + " seconds"] = time.perf_counter() - t0
            return models[key], models[key + " seconds"]

        for row in rows:
            log(f"unseen {s}: {row}")
            known = [s] * len(test) if "speaker CMVN" in row else None
            known_str = [s] * len(strings) if known else None
            if row.startswith("sharp: SAT"):
                rec, fit_s = fit("sharp SAT", True, sat=True, **SHARP)
            elif row.startswith("sharp"):
                rec, fit_s = fit("sharp", True, **SHARP)
            elif row.startswith("SAT"):
                rec, fit_s = fit("SAT", True, sat=True)
            elif row.startswith("VTLN"):
                rec, fit_s = fit(row, "speaker CMVN" in row, vtln=True)
            elif row.startswith("augment"):
                rec, fit_s = fit(row, augment=(0.9, 1.1))
            elif "speaker CMVN" in row:
                rec, fit_s = fit("speaker CMVN", True)
            else:
                rec, fit_s = fit("defaults")
            if "adapt" in row:
                t0 = time.perf_counter()
                rec = rec.adapt(test, method=row.split()[-1], isolated=True, speakers=known)
                fit_s = time.perf_counter() - t0  # the adaptation only
            iso[row][s] = rec.score(test, labels[te], speakers=known)
            con[row][s] = rec.evaluate(strings, refs, speakers=known_str)
            secs[row].append(fit_s)
    print("\nUnseen speakers (leave one speaker out; train on three speakers' isolated "
          f"recordings). Isolated: accuracy on the fourth's 500 recordings; connected: word "
          f"accuracy on {args.unseen_strings} strings of 3-7 of them (50-300 ms noise gaps), "
          "with substitutions/deletions/insertions summed over the speakers. Seconds: "
          "training (median per fold), or for adapt rows the adaptation per speaker.")
    head = "".join(f"{s:>9s}" for s in speakers)
    print(f"{'isolated':34s}{head}{'mean':>8s}{'min':>7s}   {'connected':>9s}"
          f"{'mean':>7s}{'min':>7s}{'S/D/I':>13s}{'seconds':>9s}")
    for row in rows:
        a = [100 * iso[row][s] for s in speakers]
        c = [100 * con[row][s]["accuracy"] for s in speakers]
        sdi = "/".join(str(sum(con[row][s][k] for s in speakers))
                       for k in ("substitutions", "deletions", "insertions"))
        print(f"{row:34s}" + "".join(f"{x:8.1f}%" for x in a)
              + f"{np.mean(a):7.1f}%{min(a):6.1f}%   {'':9s}{np.mean(c):6.1f}%{min(c):6.1f}%"
              + f"{sdi:>13s}{np.median(secs[row]):9.1f}")
    print("  connected per speaker: " + "; ".join(
        f"{row}: " + " ".join(f"{100 * con[row][s]['accuracy']:.1f}" for s in speakers)
        for row in rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fsdd", nargs="?", default=str(REPO.parent / "shared" / "data" / "fsdd"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strings", type=int, default=400,
                        help="joined training strings for the connected-digit model")
    parser.add_argument("--test-strings", type=int, default=100)
    parser.add_argument("--skip-gmmhmm", action="store_true",
                        help="leave out hmmlearn's GMMHMM (minutes)")
    parser.add_argument("--skip-unseen", action="store_true",
                        help="leave out the unseen-speaker table (about 15 minutes)")
    parser.add_argument("--unseen-strings", type=int, default=25,
                        help="connected strings per held-out speaker in the unseen table")
    parser.add_argument("--only", nargs="*", default=None,
                        help="rows of the unseen table to run (default: all)")
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
    print("\nLeave one speaker out: hmmlearn's 40-line recogniser on the held-out speaker's "
          "500 recordings")
    theirs = []
    for s in speakers:
        held = np.asarray(data.speakers) == s
        theirs.append(hmmlearn_baseline(base_feats, labels, np.flatnonzero(~held),
                                        np.flatnonzero(held))[0])
    print("  " + "  ".join(f"{s} {100 * a:.1f}%" for s, a in zip(speakers, theirs, strict=True))
          + f"  mean {100 * np.mean(theirs):.1f}%")
    if not args.skip_unseen:
        unseen(data, speakers, args)

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
