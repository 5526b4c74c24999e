"""Spoken digits: train a GMM-HMM word recogniser on the Free Spoken Digit Dataset and test it.

Run:  python examples/spoken_digits.py [FSDD_DIR] [--plots DIR] [--loso] [--connected N]

The recordings (``{digit}_{speaker}_{take}.wav``, 8 kHz) are looked for in FSDD_DIR if given,
else in ``$EMX_DATA/fsdd`` and the download cache (see ``emx.datasets.load_fsdd``), else in
``../shared/data/fsdd`` next to this repository. The official split tests on takes 0-4 of
every speaker and digit and trains on the rest. ``--loso`` adds leave-one-speaker-out
testing (train on all recordings of the other speakers). ``--plots DIR`` writes, if
matplotlib is installed, the spectrogram of a test utterance with the Viterbi alignment of
its recognised word, and the training log-likelihood. ``--connected N`` also recognises N
connected-digit strings joined from test recordings with noisy gaps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from emx.cli import confusion_matrix, format_confusion
from emx.datasets import fsdd_split, join_recordings, load_fsdd
from emx.speech import DEFAULT_FEATURES, Recognizer, features, load_audio

REPO = Path(__file__).resolve().parents[1]


def find_fsdd(path=None):
    """The FSDD recordings: ``path``, else load_fsdd's search, else ../shared/data/fsdd."""
    if path is not None:
        return load_fsdd(path)
    try:
        return load_fsdd()
    except FileNotFoundError as exc:
        fallback = REPO.parent / "shared" / "data" / "fsdd"
        if fallback.is_dir():
            return load_fsdd(fallback)
        raise FileNotFoundError(f"{exc}\nAlso looked in: {fallback}") from None


def plot_alignment(path, X, reference, rec, out):
    """Spectrogram of one utterance with its forced alignment: silence, word and states."""
    import matplotlib.pyplot as plt

    word = rec.predict([X])[0]
    segments, states = rec.align(X, word, return_states=True)
    cfg = rec.feature_config_  # the front end the model consumes
    signal, rate = load_audio(path)
    times = np.arange(len(X)) * cfg.winstep + cfg.winlen / 2  # frame centres
    bounds = times[np.flatnonzero(np.diff(states)) + 1] - cfg.winstep / 2

    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(8, 5.5),
                                   gridspec_kw=dict(height_ratios=[3, 1]))
    nwin = int(round(cfg.winlen * rate))
    step = int(round(cfg.winstep * rate))
    ax1.specgram(signal, NFFT=nwin, Fs=rate, noverlap=nwin - step, cmap="magma")
    for b in bounds:
        ax1.axvline(b, color="white", lw=0.8, ls=":")
    for seg in segments:
        ax1.axvline(seg.start, color="cyan", lw=1.5)
        ax1.text((seg.start + seg.end) / 2, 0.93 * rate / 2, seg.label, color="cyan",
                 ha="center", fontsize=11, fontweight="bold")
    ax1.set_ylabel("frequency (Hz)")
    ax1.set_title(f"{Path(path).name}: reference '{reference}', recognised '{word}'")
    ax2.step(times, states, where="mid", color="C0")
    ax2.set_ylabel("state in model")
    ax2.set_xlabel("time (s)")
    ax2.set_xlim(0, len(signal) / rate)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_training(rec, out):
    """Average log-likelihood per frame over the embedded Baum-Welch passes."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    h = rec.history_
    x = np.arange(1, len(h) + 1)
    for m in sorted({p["n_mix"] for p in h}):
        idx = [i for i, p in enumerate(h) if p["n_mix"] == m]
        ax.plot(x[idx], [h[i]["loglik_per_frame"] for i in idx], marker="o",
                label=f"{m} Gaussian(s) per state")
    ax.set_xlabel("Baum-Welch pass (all words at once)")
    ax.set_ylabel("log-likelihood per frame")
    ax.set_title("Training (mixtures split between stages)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def make_plots(directory, data, feats, train, test, rec):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: skipped the plots (pip install matplotlib)")
        return
    matplotlib.use("Agg")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    i = test[0]
    plot_alignment(data.paths[i], feats[i], data.labels[i], rec, directory / "alignment.png")
    plot_training(rec, directory / "training.png")
    print(f"plots: {directory / 'alignment.png'}, {directory / 'training.png'}")


def train_and_test(feats, labels, train, test, args):
    given = dict(n_states=args.states, n_mix=args.mix, n_iter=args.iter)
    # The features were computed with DEFAULT_FEATURES: saying so lets the model take audio
    # too (paths or waveforms, through the same front end) and start silence from log energy.
    rec = Recognizer(feature_config=DEFAULT_FEATURES,
                     **{k: v for k, v in given.items() if v is not None})
    start = time.perf_counter()
    rec.fit([feats[i] for i in train], labels[train])
    seconds = time.perf_counter() - start
    hyps = np.asarray(rec.predict([feats[i] for i in test]))
    return rec, hyps, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fsdd", nargs="?", help="folder of the FSDD recordings")
    parser.add_argument("--plots", metavar="DIR", help="write PNG plots into DIR")
    parser.add_argument("--loso", action="store_true",
                        help="also run leave-one-speaker-out testing")
    parser.add_argument("--states", type=int, help="states per word (default: Recognizer's)")
    parser.add_argument("--mix", type=int, help="Gaussians per state (default: Recognizer's)")
    parser.add_argument("--iter", type=int, help="Baum-Welch iterations per stage")
    parser.add_argument("--connected", type=int, default=0, metavar="N",
                        help="also recognise N connected-digit strings joined from test "
                             "recordings with noisy gaps")
    args = parser.parse_args(argv)

    try:
        data = find_fsdd(args.fsdd)
    except (FileNotFoundError, ValueError) as exc:
        print(f"FSDD not found: {exc}", file=sys.stderr)
        return 2
    speakers = sorted(set(data.speakers))
    print(f"FSDD: {len(data.paths)} recordings, {len(speakers)} speakers "
          f"({', '.join(speakers)}), in {data.root}")

    # The front end runs once here and the arrays are reused by every model below;
    # Recognizer.fit and predict also take the file paths directly.
    start = time.perf_counter()
    feats = [features(p, DEFAULT_FEATURES) for p in data.paths]
    print(f"features: {len(feats)} x ({feats[0].shape[1]} MFCCs with deltas) in "
          f"{time.perf_counter() - start:.1f} s")
    labels = data.labels

    train, test = fsdd_split(data)
    rec, hyps, seconds = train_and_test(feats, labels, train, test, args)
    print(f"\nOfficial split: train on takes 5-49 ({len(train)} utterances), "
          f"test on takes 0-4 ({len(test)})")
    print(f"model: {rec.n_states} states x {rec.n_mix} Gaussians per word, "
          f"{len(rec.words_)} words; training time {seconds:.1f} s")
    print(f"test accuracy: {100 * np.mean(hyps == labels[test]):.1f}% "
          f"({int(np.sum(hyps == labels[test]))}/{len(test)})")
    matrix, names = confusion_matrix(labels[test], hyps, labels=rec.words_)
    print("confusion matrix (rows: spoken digit, columns: recognised):")
    print(format_confusion(matrix, names))

    if args.connected:
        signals, refs, rate = join_recordings([data.paths[i] for i in test], labels[test],
                                              args.connected, random_state=0)
        start = time.perf_counter()
        result = rec.evaluate(signals, refs, samplerate=rate)  # waveforms held in memory
        print(f"\nConnected digits: {len(signals)} strings of 3-7 test recordings with 50-300 ms "
              f"noise gaps, {result['n_words']} words, decoded in "
              f"{time.perf_counter() - start:.1f} s")
        print(f"word accuracy {100 * result['accuracy']:.1f}% (substitutions "
              f"{result['substitutions']}, deletions {result['deletions']}, insertions "
              f"{result['insertions']})")
        hyp = " ".join(w.label for w in rec.recognize(signals[0], samplerate=rate))
        print(f"e.g. reference '{' '.join(refs[0])}', recognised '{hyp}'")

    if args.plots:
        make_plots(args.plots, data, feats, train, test, rec)

    if args.loso:
        print("\nLeave one speaker out: train on the other speakers, test on all 500 "
              "recordings of the held-out one")
        accuracies = []
        for s in speakers:
            held = data.speakers == s
            _, hyps, seconds = train_and_test(feats, labels, np.flatnonzero(~held),
                                              np.flatnonzero(held), args)
            acc = float(np.mean(hyps == labels[held]))
            accuracies.append(acc)
            print(f"  {s:10s} {100 * acc:5.1f}%  ({int(np.sum(hyps == labels[held]))}/"
                  f"{int(held.sum())}, trained in {seconds:.1f} s)")
        print(f"  {'mean':10s} {100 * np.mean(accuracies):5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
