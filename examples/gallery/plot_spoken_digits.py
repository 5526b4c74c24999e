"""
Spoken digits: training a recogniser and a forced alignment
===========================================================

:class:`emx.speech.Recognizer` trains one left-to-right GMM-HMM per word and a silence model
the way HTK does (uniform segmentation, embedded Baum-Welch over transcripts, mixture
splitting). Here it learns the ten digits of the Free Spoken Digit Dataset (FSDD) from a
few recordings per speaker, is tested on held-out takes, and then aligns one test recording
to its word: the plot shows which frames went to the leading silence, to each state of the
word model and to the trailing silence, over the waveform and the spectrogram.

The recordings are found as :func:`emx.datasets.load_fsdd` finds them (``$EMX_DATA/fsdd``,
``$EMX_DATA``, the download cache), then in ``../shared/data/fsdd`` beside the repository.
**When they are absent, the example runs on synthetic "speech"** (three made-up words of
gliding tones in noise) and says so in its output, so that the build does not need the data.
"""

import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from emx.datasets import load_fsdd
from emx.speech import SILENCE, Recognizer, load_audio


def find_fsdd():
    """The FSDD recordings, or None."""
    try:
        return load_fsdd()
    except (FileNotFoundError, ValueError):
        pass
    here = Path(globals().get("__file__", "examples/gallery/x.py")).resolve()
    for base in (*here.parents, Path.cwd(), *Path.cwd().parents):
        candidate = base / "shared" / "data" / "fsdd"
        if candidate.is_dir():
            try:
                return load_fsdd(candidate)
            except (FileNotFoundError, ValueError):
                return None
    return None


def synthetic_words(n_per_word, rng, rate=8000):
    """Waveforms of three made-up words: each a sequence of three gliding tones."""
    tones = {"one": [(300, 500), (900, 700), (400, 400)],
             "two": [(700, 300), (300, 300), (1200, 900)],
             "three": [(500, 1100), (1100, 1100), (600, 250)]}
    signals, labels = [], []
    for word, glides in tones.items():
        for _ in range(n_per_word):
            parts = [0.002 * rng.standard_normal(int(rate * rng.uniform(0.1, 0.25)))]
            for f0, f1 in glides:
                n = int(rate * rng.uniform(0.12, 0.2))
                freq = np.linspace(f0, f1, n) * rng.uniform(0.95, 1.05)
                phase = 2 * np.pi * np.cumsum(freq) / rate
                parts.append(0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase)
                             + 0.01 * rng.standard_normal(n))
            parts.append(0.002 * rng.standard_normal(int(rate * rng.uniform(0.1, 0.25))))
            signals.append((np.concatenate(parts), rate))
            labels.append(word)
    return signals, np.array(labels)


fsdd = find_fsdd()
if fsdd is not None:
    print(f"FSDD: {len(fsdd.paths)} recordings in {fsdd.root}")
    # A small, fast subset: takes 5-14 of every speaker and digit for training, takes 0-2
    # for testing (the official split tests on takes 0-4 and trains on all the rest).
    train = np.flatnonzero((fsdd.takes >= 5) & (fsdd.takes < 15))
    test = np.flatnonzero(fsdd.takes < 3)
    train_x = [fsdd.paths[i] for i in train]
    test_x = [fsdd.paths[i] for i in test]
    train_y, test_y = fsdd.labels[train], fsdd.labels[test]
else:
    print("The FSDD recordings were not found (set EMX_DATA, or run "
          "emx.datasets.load_fsdd(download=True)): this example uses synthetic words instead.")
    rng = np.random.default_rng(0)
    train_x, train_y = synthetic_words(20, rng)
    test_x, test_y = synthetic_words(5, rng)

# %%
# Training
# --------
# A smaller model than the default (6 states and 2 Gaussians per state instead of 10 and 8)
# keeps this example quick; ``history_`` records the log-likelihood of every Baum-Welch pass.

start = time.perf_counter()
rec = Recognizer(n_states=6, n_mix=2, n_iter=4).fit(train_x, train_y)
print(f"trained on {len(train_x)} utterances in {time.perf_counter() - start:.1f} s")
accuracy = rec.score(test_x, test_y)
print(f"accuracy on {len(test_x)} held-out utterances: {accuracy:.1%}")

# %%
# Forced alignment over the waveform and the spectrogram
# ------------------------------------------------------
# :meth:`~emx.speech.Recognizer.align` returns the segments (word and silences, with their
# times) and, with ``return_states=True``, the state of every frame within its model (the
# silence model's states, then the word's). Shaded: silence grey, the word blue.

# The first test utterance whose alignment takes a silence as well as the word.
for utterance, word in zip(test_x, test_y, strict=True):
    segments, states = rec.align(utterance, word, return_states=True)
    if any(seg.label == SILENCE for seg in segments):
        break
signal, rate = load_audio(utterance) if isinstance(utterance, str) else utterance
cfg = rec.feature_config_
times = np.arange(len(states)) * cfg.winstep + cfg.winlen / 2  # frame centres (s)
for seg in segments:
    print(f"{seg.label:>6}: {seg.start:.3f} - {seg.end:.3f} s")

fig, (ax0, ax1, ax2) = plt.subplots(3, 1, sharex=True, figsize=(9, 7),
                                    gridspec_kw=dict(height_ratios=[1.2, 2.5, 1]))
ax0.plot(np.arange(len(signal)) / rate, signal, lw=0.5, color="0.3")
ax0.set_ylabel("waveform")
nwin = int(round(cfg.winlen * rate))
step = int(round(cfg.winstep * rate))
ax1.specgram(signal, NFFT=nwin, Fs=rate, noverlap=nwin - step, cmap="magma")
ax1.set_ylabel("frequency (Hz)")
for seg in segments:
    colour = "tab:cyan" if seg.label == word else "0.6"
    ax0.axvspan(seg.start, seg.end, color=colour, alpha=0.25)
    for ax in (ax0, ax1):
        ax.axvline(seg.start, color=colour, lw=1.5)
    ax1.text((seg.start + seg.end) / 2, 0.9 * rate / 2, seg.label, color="white",
             ha="center", fontsize=11, fontweight="bold")
bounds = times[np.flatnonzero(np.diff(states)) + 1] - cfg.winstep / 2
for b in bounds:
    ax1.axvline(b, color="white", lw=0.6, ls=":")
ax2.step(times, states, where="mid")
ax2.set_ylabel("state")
ax2.set_xlabel("time (s)")
ax2.set_xlim(0, len(signal) / rate)
name = Path(utterance).name if isinstance(utterance, str) else "synthetic utterance"
ax0.set_title(f"{name}: '{word}' aligned (dotted lines: state changes)")
fig.tight_layout()

# %%
# Training curve
# --------------
# The average log-likelihood per frame after every pass; it never decreases within a
# mixture stage (the splits 1 -> 2 Gaussians start a new stage).

fig, ax = plt.subplots(figsize=(7, 3.5))
h = rec.history_
ax.plot(np.arange(1, len(h) + 1), [e["loglik_per_frame"] for e in h], marker="o")
ax.set_xlabel("Baum-Welch pass")
ax.set_ylabel("log-likelihood per frame")
fig.tight_layout()
plt.show()
