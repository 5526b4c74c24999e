"""Word recognition with left-to-right GMM-HMMs, trained the HTK way.

Every word (and an optional silence model) is a left-to-right HMM whose states sit in one
pool of GMM states. Training, as HTK's recipe does it:

1. *Uniform segmentation* (HInit's first pass): each training utterance is cut evenly over the
   states of its transcript's words, giving every state one Gaussian; silence starts from the
   lowest-energy frames of every utterance.
2. *Embedded Baum-Welch* (HERest): for every utterance the models of its transcript are joined
   into one composite HMM, with optional silence before, between and after the words, and
   forward-backward over it accumulates statistics for all models at once. Transcripts need
   no time boundaries; an isolated word is a one-word transcript.
3. *Mixture splitting* 1 -> 2 -> 4 ... (HHEd ``MU``) with Baum-Welch passes after each split.

An utterance must end by leaving the last state of its last model (HTK's exit state), so
every state of every word is used. Isolated words are recognised by the best word in a
``[silence] word [silence]`` network; connected words by Viterbi over a word loop (any word
after any word, or a word-pair grammar) with a word insertion penalty.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import soundfile as sf
from sklearn.base import BaseEstimator, ClassifierMixin

from .._core import _hmm
from .._em import ChunkRunner, ConvergenceMonitor, LocalData, user_stacklevel
from .._stats import AdditiveStats
from .._validation import check_n_jobs, check_positive_int
from ..emissions import GMMEmission
from ..gaussian import GaussianStats
from ..hmm import _make_chunks
from .features import (
    MAX_SAMPLERATE,
    MAX_SPEED,
    MIN_SAMPLERATE,
    MIN_SPEED,
    FeatureConfig,
    cmvn,
    features,
    load_audio,
    speed_perturb,
)
from .network import Network, chain, word_loop

__all__ = ["Recognizer", "Word", "word_errors", "word_error_rate", "SILENCE"]

# The recogniser's default front end: 39-d MFCC with per-utterance mean and variance
# normalisation and the filterbank from 100 Hz (on FSDD's four speakers, leave-one-speaker-out
# accuracy rose by about 8 points over mean normalisation alone).
DEFAULT_FEATURES = FeatureConfig(cvn=True, lowfreq=100.0)

#: Label of silence segments in :meth:`Recognizer.align` (never a recognised word).
SILENCE = "<sil>"

_FORMAT = "emx-recognizer"
_VERSION = 3  # 3: labels keep their type, the pinned front end, the estimator's parameters
_GROUP_FRAMES = 8192  # frames per E-step task (utterances with the same transcript)

# Bounds of the hyperparameters, and of what a model file may hold (Recognizer.load).
_MAX_STATES = 10_000  # n_states, silence_states, the states of any one word or silence model
_MAX_MIX = 1024  # Gaussians per state
_MAX_ITER = 100_000
_MAX_FEATURES = 10_000
_MAX_PARAMETERS = 2**27  # emission parameters of a loaded model (1 GiB of float64)
_MAX_HEADER_BYTES = 2**24  # a model file's JSON header
_MAX_STAY = float(np.nextafter(1.0, 0.0))  # self-loops are below 1: every state is left
#: VTLN warp search: a coarse grid, then the two neighbours half a step either side of its best
VTLN_GRID = tuple(round(0.80 + 0.04 * i, 2) for i in range(11))
_VTLN_FINE = 0.02
_SAT_ROUNDS = 2  # speaker-adaptive training: transforms re-estimated, models retrained
_SAT_ITER = 4  # EM iterations of each training speaker's CMLLR transform


@dataclass
class Word:
    """A recognised word and its span in seconds."""

    label: Any
    start: float
    end: float


def word_errors(reference, hypothesis) -> tuple[int, int, int, int]:
    """Minimum-edit alignment of two word sequences, as HResults counts it.

    Returns
    -------
    (substitutions, deletions, insertions, n_reference)
    """
    ref, hyp = list(reference), list(hypothesis)
    n, m = len(ref), len(hyp)
    # cost, then counts (S, D, I) carried along the cheapest path
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]),
                             cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    subs = dels = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            subs += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            dels += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return int(subs), dels, ins, n


def word_error_rate(references, hypotheses) -> dict:
    """Word error counts and rates of hypotheses against references, as HResults gives them.

    Parameters
    ----------
    references, hypotheses : sequences of transcripts, the same length
        Each transcript is one label or a sequence of labels.

    Returns
    -------
    dict
        'accuracy' (1 - WER), 'wer' ((S + D + I) / N), 'correct' (1 - (S + D) / N),
        'substitutions', 'deletions', 'insertions' and 'n_words' (N).

    Examples
    --------
    >>> from emx.speech import word_error_rate
    >>> r = word_error_rate([["1", "2", "3"], "4"], [["1", "3"], "4"])
    >>> r["deletions"], r["n_words"], round(r["wer"], 2)
    (1, 4, 0.25)
    """
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses.")
    counts = np.zeros(4, dtype=np.int64)  # substitutions, deletions, insertions, words
    for r, h in zip(references, hypotheses, strict=True):
        counts += word_errors(_words(r), _words(h))
    subs, dels, ins, n = (int(c) for c in counts)
    wer = (subs + dels + ins) / max(n, 1)
    return dict(accuracy=1 - wer, wer=wer, correct=1 - (subs + dels) / max(n, 1),
                substitutions=subs, deletions=dels, insertions=ins, n_words=n)


def _words(t) -> list:
    """A transcript or hypothesis as a list of labels (``Word`` objects give their label)."""
    if _is_label(t):
        return [_label(t)]
    return [_label(w.label if isinstance(w, Word) else w) for w in t]


@dataclass
class _Stats(AdditiveStats):
    """Additive statistics of one embedded Baum-Welch pass over some utterances."""

    loglik: float
    occupancy: np.ndarray  # (n_pool,) expected frames in each pool state
    stays: np.ndarray  # (n_pool,) expected self-loops of each pool state
    silence_entries: float  # expected number of optional silences taken
    silence_slots: float  # number of optional silences offered
    emission: GaussianStats

@dataclass
class _Summary:
    """Additive summary of training utterances: feature dimensions, and per word its share of
    frames (an utterance's frames split evenly over its words) and number of occurrences."""

    dims: set
    words: dict
    n_utterances: int

    @classmethod
    def of(cls, feats: list, transcripts: list) -> _Summary:
        words: dict = {}
        for f, t in zip(feats, transcripts, strict=True):
            for w in t:
                share = words.setdefault(w, [0.0, 0])
                share[0] += len(f) / len(t)
                share[1] += 1
        return cls({f.shape[1] for f in feats}, words, len(feats))

    def __add__(self, other: _Summary) -> _Summary:
        words = {w: list(v) for w, v in self.words.items()}
        for w, (frames, count) in other.words.items():
            share = words.setdefault(w, [0.0, 0])
            share[0] += frames
            share[1] += count
        return _Summary(self.dims | other.dims, words, self.n_utterances + other.n_utterances)


@dataclass
class _Kept:
    """Which words still have training utterances, and how many were too short."""

    words: set
    n_short: int
    first_short: tuple | None  # (frames, states) of one utterance left out

    def __add__(self, other: _Kept) -> _Kept:
        return _Kept(self.words | other.words, self.n_short + other.n_short,
                     self.first_short or other.first_short)


@dataclass
class _Moments(AdditiveStats):
    """Additive frame counts and sums (or sums of squared deviations) for initialisation:
    all frames, each pool state's uniform-segmentation frames, and the quiet frames."""

    n: float
    total: np.ndarray  # (D,)
    state_n: np.ndarray  # (S,)
    state_total: np.ndarray  # (S, D)
    quiet_n: float
    quiet_total: np.ndarray  # (D,)

    @classmethod
    def zeros(cls, S: int, D: int) -> _Moments:
        return cls(0.0, np.zeros(D), np.zeros(S), np.zeros((S, D)), 0.0, np.zeros(D))

@dataclass
class _Group:
    """Utterances sharing one transcript, with their features concatenated."""

    units: tuple  # word units of the transcript
    X: np.ndarray
    offsets: np.ndarray  # (n_utt + 1,)
    index: np.ndarray  # positions of the utterances in the training list


def _is_label(t) -> bool:
    """True for one word label (a string or a number), False for a sequence of them."""
    return isinstance(t, (str, bytes, int, float, np.generic))


def _label(w):
    """A word label as a plain Python str, int or float (numpy scalars unwrapped)."""
    if isinstance(w, np.generic):
        w = w.item()
    if isinstance(w, bytes):
        w = w.decode()
    if not isinstance(w, (str, int, float)) or (isinstance(w, float) and not math.isfinite(w)):
        raise ValueError(f"A word label must be a string or a finite number, got {w!r}.")
    if w == "":
        raise ValueError("A word label must not be empty.")
    if w == SILENCE:
        raise ValueError(f"{SILENCE!r} is reserved for the silence model.")
    return w


def _transcript(t) -> tuple:
    """A transcript as a tuple of labels: one label is one word."""
    words = (_label(t),) if _is_label(t) else tuple(_label(w) for w in t)
    if not words:
        raise ValueError(f"A transcript must hold at least one word label, got {t!r}.")
    return words


def _is_path(u) -> bool:
    return isinstance(u, (str, os.PathLike))


def _audio_rate(u, samplerate):
    """Sample rate of an utterance given as audio (None for feature arrays and unreadable
    files, which the front end reports with their name)."""
    if _is_path(u):
        try:
            return int(sf.info(os.fspath(u)).samplerate)
        except Exception:
            return None
    if isinstance(u, tuple) and len(u) == 2:
        return u[1] if isinstance(u[1], (int, np.integer)) else None
    try:
        return samplerate if np.ndim(u) == 1 else None
    except ValueError:  # ragged nested lists: the front end reports them
        return None


def _forward_scores(loglik: np.ndarray, offsets: np.ndarray, net: Network) -> np.ndarray:
    """Log-likelihood of each sequence under a network; -inf where it has probability zero.

    The scaled forward kernel does the batch; where it reports a zero (it stops there, and
    the rest of the batch is scored by calling it again), the sequence is scored again in log
    space, which is exact even when the scaled pass underflowed (features far from every
    model) and fails only when no path exists (too few frames for the states)."""
    n = len(offsets) - 1
    out = np.full(n, -np.inf)
    startprob, transmat = net.startprob, net.transmat
    a = 0
    while a < n:
        t0 = offsets[a]
        scores = np.empty(n - a)
        status = _hmm.forward_loglik(loglik[t0:], offsets[a:] - t0, startprob, transmat, scores)
        if status < 0:
            out[a:] = scores
            break
        out[a:a + status] = scores[:status]
        i = a + status
        one = np.empty(1)
        t0, t1 = offsets[i], offsets[i + 1]
        if _hmm.forward_loglik_log_edges(loglik[t0:t1], np.array([0, t1 - t0], dtype=np.intp),
                                         net.log_start, *net.edges(), one) < 0:
            out[i] = one[0]
        a = i + 1
    return out


# Phases of the initialisation, as functions of one partition (they run where it lives).
def _rates_of(part, rec) -> Counter:
    return rec._audio_rates(part[0])


def _loaded(part, rec) -> tuple:
    feats, labels = rec._load(*part)
    return feats, labels


def _dims_of(loaded) -> set:
    return {f.shape[1] for f in loaded[0]}


def _summary_of(loaded) -> _Summary:
    return _Summary.of(*loaded)


def _selected(loaded, rec) -> tuple:
    return rec._select(*loaded)


def _kept_of(selected):
    return selected[2]


def _moments_of(selected, rec, centres):
    return rec._init_moments(selected[0], selected[1], centres)


def _groups_of(selected, rec) -> list:
    return rec._groups(selected[0], selected[1])


def _pool(S: int, M: int, D: int, covariance_type: str, weights_, means_, covars_,
          var_floor_) -> GMMEmission:
    """The pool of GMM states (an emission model over all S states), its parameters checked."""
    em = GMMEmission(S, M, covariance_type=covariance_type, var_floor=0.0)
    em.weights_, em.means_, em.covars_ = weights_, means_, covars_
    em.var_floor_ = var_floor_
    em.check(D)
    return em


def _read_member(z: zipfile.ZipFile, name: str, shape: tuple, kinds: str,
                 max_bytes: int | None = None) -> np.ndarray:
    """One ``.npy`` member of an open ``.npz``, read only if its declared sizes fit.

    The zip directory's uncompressed size and the ``.npy`` header's dtype and shape are
    checked before the data is decompressed (so a huge or mislabelled member costs nothing);
    then exactly the declared bytes are read. ``shape=()`` with ``max_bytes`` takes a scalar
    of any item size up to ``max_bytes``."""
    try:
        info = z.getinfo(name + ".npy")
    except KeyError:
        raise ValueError(f"missing member {name!r}") from None
    with z.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            got_shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            got_shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"{name}: unsupported .npy version {version}")
        if dtype.hasobject or dtype.kind not in kinds or dtype.itemsize > (
                max_bytes or 8) or dtype.fields is not None or dtype.subdtype is not None:
            raise ValueError(f"{name} has dtype {dtype}")
        if tuple(got_shape) != tuple(shape):
            raise ValueError(f"{name} has shape {tuple(got_shape)}, the model {tuple(shape)}")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size > nbytes + fh.tell() or info.file_size < nbytes:
            raise ValueError(f"{name} declares {info.file_size} bytes for {nbytes} bytes of "
                             "data")
        data = fh.read(nbytes)
    if len(data) != nbytes:
        raise ValueError(f"{name} is truncated")
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(arr.dtype.newbyteorder("=") if arr.dtype.kind == "U" else
                      (np.float64 if "f" in kinds else np.int64), order="C")


class Recognizer(ClassifierMixin, BaseEstimator):
    """Isolated and connected word recognition with GMM-HMMs.

    A scikit-learn classifier over utterances: ``fit(utterances, labels)``, ``predict``,
    ``predict_proba``, ``decision_function`` and ``score`` (accuracy), so ``clone``,
    ``cross_val_score`` and ``GridSearchCV`` work on a list of paths. Connected words are
    recognised with :meth:`recognize`, aligned with :meth:`align` and scored with
    :meth:`evaluate` (word error rate).

    An utterance is any of: a path to an audio file; a 1-D waveform with ``samplerate=``
    given to the method; a ``(waveform, samplerate)`` tuple; or a 2-D ``(frames, features)``
    array. Audio goes through the model's front end (:meth:`features`), which ``fit`` pins:
    ``feature_config_`` records the configuration and the sample rate of the training audio,
    and audio at any other rate is resampled to it.

    Parameters
    ----------
    n_states : int or 'auto'
        States per word model (left to right, no skips). 'auto' derives each word's number
        from its mean duration in the training data: mean frames / ``frames_per_state``.
    n_mix : int
        Gaussians per state at the end of training (grown by splitting, doubling each time).
    frames_per_state : float
        Mean frames per state of a word with ``n_states='auto'``.
    covariance_type : {'diag', 'full'}
    n_iter : int
        Embedded Baum-Welch passes after the initialisation and after each split.
    var_floor : float
        Variance floor as a fraction of the global variance of the training features. The
        default, 1.0, keeps every variance at least at the global one (with the front end's
        per-utterance variance normalisation, about 1): broad Gaussians that carry over to
        voices the model has not heard. On FSDD's four speakers, with 8 Gaussians per state,
        leave-one-speaker-out accuracy rose from 79.5 % (0.1, 2 Gaussians) to 83.7 %, the
        official split stayed at 99.5 %. Lower it (e.g. 0.1) for features of unknown scale.
    silence : bool
        Train a silence model, optional before, between and after words (in training and in
        recognition). It starts from the quietest tenth of every utterance's frames (lowest
        feature 0, the front end's log energy) when the features come from emx's front end
        (audio, or arrays with ``feature_config`` given); from the first and last 5 % of every
        utterance's frames (at least one each) for feature arrays of unknown origin, whose
        column 0 need not be an energy.
    silence_states : int
        States of the silence model.
    feature_config : FeatureConfig, optional
        Front end for audio (default ``DEFAULT_FEATURES``). With ``samplerate=None`` the
        model takes the sample rate of its training audio. Given with feature arrays, it
        declares that they came from this front end (so audio can be recognised later).
    word_insertion_penalty : float
        Log-probability added for every word in connected recognition (negative: fewer words).
    augment : tuple of float or None
        Speed perturbation of the training audio (data augmentation, as Kaldi's recipes do
        it): the model also trains on a copy of every audio utterance played ``f`` times
        faster for each factor ``f`` (0.5 to 2; pitch and tempo change together), e.g.
        ``(0.9, 1.1)``, which triples the training data. Feature arrays are used as given.
    vtln : bool
        Vocal tract length normalisation. Training analyses each speaker's audio (each
        utterance's, without ``speakers=``) with the warp factor that maximises the
        likelihood of its transcripts (a grid search, :meth:`estimate_warp`) and trains
        again on the warped features; prediction chooses every test speaker's warp by the
        likelihood of its best-scoring words. Costs: training about 13 extra analyses and
        scorings of the data plus a second training; prediction about 14 times the front end
        and scoring of a model without it.
    sat : bool
        Speaker-adaptive training (needs ``speakers=`` in ``fit`` for every utterance): after
        the usual training, one CMLLR feature transform per training speaker is estimated
        (:meth:`adapt`) and the models are trained again on the transformed features, twice.
        The result is a canonical model meant to be adapted to each test speaker with
        ``adapt(..., method="cmllr")``; the training speakers' transforms are in
        ``speaker_transforms_``.
    n_jobs : int or None
        Threads for the E-step.
    verbose : bool or None
        Progress of ``fit`` on stderr. None (the default): one status line, rewritten in
        place after every phase and Baum-Welch pass, when stderr is a terminal, and nothing
        otherwise (pipes, files, notebooks, tests). True: a log line for every phase and
        pass with the average log-likelihood per frame, wherever stderr goes. False: nothing.

    Attributes
    ----------
    classes_ : ndarray
        The vocabulary: the training labels in their own type (str, int, ...), sorted.
        ``predict`` returns these, and ``predict_proba`` columns follow them.
    words_ : list
        ``classes_`` as a list of Python labels.
    feature_config_ : FeatureConfig or None
        The front end the model consumes, with the training audio's sample rate; None when
        the model was trained on feature arrays without ``feature_config`` (it then takes
        feature arrays only).
    word_states_ : ndarray of int
        States of each word's model.
    pool_ : emx.emissions.GMMEmission
        The pool of all states' GMMs (word ``i`` owns states ``unit_offsets_[i]`` to
        ``unit_offsets_[i + 1] - 1``, silence the last unit): ``weights_``, ``means_``,
        ``covars_``, ``var_floor_``. The topology is ``stay_`` and the networks.
    stay_ : ndarray of shape (n_pool_states,)
        Self-loop probability of each state (leaving moves to the next state, or exits).
    unit_offsets_ : ndarray
    silence_skip_ : float
        Probability of skipping an optional silence (estimated in training).
    history_ : list of dict
        Per training pass: ``n_mix``, ``loglik`` (total, before the pass's update) and
        ``loglik_per_frame``.
    n_features_in_ : int
    training_warps_ : dict, only with ``vtln=True``
        The VTLN warp factor chosen in training for every ``(speaker, speed factor)`` (the
        speaker of an utterance without one is ``("utterance", i)``).
    feature_transform_ : ndarray of shape (n_features, n_features + 1), optional
        Only on a speaker-adapted model (:meth:`adapt` with ``method='cmllr'``): ``[A, b]``,
        applied to the front end's features as ``A x + b`` before scoring; log-likelihoods
        include ``log |det A|`` per frame. :meth:`features` returns the features before it.

    Examples
    --------
    >>> from emx.speech import Recognizer
    >>> rec = Recognizer().fit(train_paths, train_labels)        # doctest: +SKIP
    >>> rec.predict(["7_jackson_0.wav"])                         # doctest: +SKIP
    array(['7'], dtype='<U1')
    >>> rec.predict([signal], samplerate=16000)                  # doctest: +SKIP
    >>> rec.score(test_paths, test_labels)                       # doctest: +SKIP
    0.995

    Two made-up words of two tones each, as waveforms at 8 kHz:

    >>> import numpy as np
    >>> from emx.speech import Recognizer
    >>> def say(word, seed, rate=8000):
    ...     rng = np.random.default_rng(seed)
    ...     t = np.arange(int(0.3 * rate)) / rate
    ...     f0, f1 = {"up": (300, 900), "down": (900, 300)}[word]
    ...     tone = np.sin(2 * np.pi * np.where(t < 0.15, f0, f1) * t)
    ...     return 0.3 * tone + 0.01 * rng.standard_normal(t.size), rate
    >>> train = [say(w, seed) for seed, w in enumerate(["up", "down"] * 6)]
    >>> rec = Recognizer(n_states=4, n_mix=1).fit(train, ["up", "down"] * 6)
    >>> rec.predict([say("up", 100), say("down", 101)]).tolist()
    ['up', 'down']
    >>> rec.score(train, ["up", "down"] * 6)
    1.0
    """

    def __init__(
        self,
        n_states: int | str = 10,
        n_mix: int = 8,
        frames_per_state: float = 4.0,
        covariance_type: str = "diag",
        n_iter: int = 5,
        var_floor: float = 1.0,
        silence: bool = True,
        silence_states: int = 3,
        feature_config: FeatureConfig | None = None,
        word_insertion_penalty: float = -60.0,
        augment: tuple | None = None,
        vtln: bool = False,
        sat: bool = False,
        n_jobs: int | None = None,
        verbose: bool | None = None,
    ):
        self.n_states = n_states
        self.n_mix = n_mix
        self.frames_per_state = frames_per_state
        self.covariance_type = covariance_type
        self.n_iter = n_iter
        self.var_floor = var_floor
        self.silence = silence
        self.silence_states = silence_states
        self.feature_config = feature_config
        self.word_insertion_penalty = word_insertion_penalty
        self.augment = augment
        self.vtln = vtln
        self.sat = sat
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ features
    def features(self, utterance, samplerate: int | None = None) -> np.ndarray:
        """The feature matrix the model consumes for one utterance.

        Parameters
        ----------
        utterance : path, 1-D waveform, (waveform, samplerate) tuple or 2-D array
            Audio is analysed by the model's front end (``feature_config_``, or before
            ``fit`` the one it would pin), resampled to its sample rate first; a 2-D
            ``(frames, features)`` array in any layout (C or Fortran order, strided) is
            checked and returned as a C-ordered float64 copy.
        samplerate : int, optional
            Sample rate of a 1-D waveform (required for one, ignored otherwise).

        Returns
        -------
        ndarray of shape (n_frames, n_features)

        Raises
        ------
        ValueError
            A 1-D array without ``samplerate``; audio for a model trained on feature arrays
            without a front end; arrays with the wrong number of features, NaN or inf.

        Examples
        --------
        >>> X = rec.features("7_jackson_0.wav")               # doctest: +SKIP
        >>> X = rec.features(signal, samplerate=44100)          # doctest: +SKIP
        >>> rec.recognize(X) == rec.recognize("7_jackson_0.wav")  # doctest: +SKIP
        True
        """
        return self._features(utterance, samplerate)

    def _front_end(self) -> FeatureConfig:
        """The configuration audio is analysed with."""
        if hasattr(self, "feature_config_"):
            if self.feature_config_ is None:
                raise ValueError(
                    "This Recognizer was trained on feature arrays without a front end, so it "
                    "takes (frames, features) arrays only. To recognise audio, fit it with "
                    "feature_config= (e.g. emx.speech.DEFAULT_FEATURES) or on audio."
                )
            return self.feature_config_
        return self.feature_config if self.feature_config is not None else DEFAULT_FEATURES

    @staticmethod
    def _source(utterance, samplerate=None):
        """An utterance given as audio as a source for the front end (a path or a
        ``(waveform, rate)`` tuple); None for a feature array."""
        if _is_path(utterance) or (isinstance(utterance, tuple) and len(utterance) == 2
                                   and np.ndim(utterance[0]) == 1):
            return utterance
        X = np.asarray(utterance)
        if X.dtype.kind not in "biuf":
            raise ValueError(f"An utterance must be a path, a waveform or a (frames, features) "
                             f"array of numbers, got dtype {X.dtype}.")
        if X.ndim == 1:
            if samplerate is None:
                raise ValueError(
                    "A 1-D array is taken as a waveform: give its samplerate= (or pass a "
                    "path, a (waveform, samplerate) tuple, or a (frames, features) array)."
                )
            return (X, samplerate)
        return None

    def _features(self, utterance, samplerate=None) -> np.ndarray:
        source = self._source(utterance, samplerate)
        if source is not None:
            return features(source, self._front_end())
        X = np.asarray(utterance)
        # a copy in C order: features in any layout (librosa's ``mfcc(...).T`` is Fortran
        # ordered, slices are strided) are accepted, and the caller's array is never touched
        X = np.array(X, dtype=np.float64, order="C")
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"An utterance must be a path, a waveform or a (frames, features) "
                             f"array, got shape {X.shape}.")
        if not np.all(np.isfinite(X)):
            raise ValueError("Utterance features contain NaN or infinity.")
        if hasattr(self, "n_features_in_") and X.shape[1] != self.n_features_in_:
            raise ValueError(f"Utterance has {X.shape[1]} features, the model "
                             f"{self.n_features_in_}.")
        return X

    @staticmethod
    def _as_list(utterances, samplerate=None) -> list:
        """A batch of utterances as a list; one utterance passed alone is an error."""
        if isinstance(utterances, (str, os.PathLike)) or (
                isinstance(utterances, np.ndarray) and utterances.ndim == 2
                and samplerate is None):
            raise ValueError("Expected a list of utterances; for one utterance pass [it].")
        if isinstance(utterances, tuple) and len(utterances) == 2 and np.ndim(
                utterances[1]) == 0 and not _is_path(utterances[0]):
            raise ValueError("Expected a list of utterances; for one (waveform, samplerate) "
                             "pair pass [(waveform, samplerate)].")
        return list(utterances)

    @staticmethod
    def _check_speakers(speakers, n: int) -> list:
        """One speaker identity (any hashable label; None: unknown) per utterance."""
        if speakers is None:
            return [None] * n
        if isinstance(speakers, (str, bytes)):
            raise ValueError("speakers must list one identity per utterance, got a string.")
        speakers = [x.item() if isinstance(x, np.generic) else x for x in speakers]
        if len(speakers) != n:
            raise ValueError(f"{n} utterances but {len(speakers)} speakers.")
        for x in speakers:
            try:
                hash(x)
            except TypeError:
                raise ValueError(f"A speaker identity must be hashable (a str, an int, ...), "
                                 f"got {type(x).__name__}.") from None
        return speakers

    def _featurize(self, utterances: list, samplerate=None, speakers=None,
                   factors=(1.0,), warps=None) -> tuple[list, np.ndarray]:
        """Front-end features of utterances, and the index of the utterance of each.

        Audio of a known speaker is normalised with statistics pooled over all that
        speaker's utterances (per-speaker CMVN, per speed factor); audio of an unknown
        speaker (None) per utterance. Audio is analysed once per speed factor in
        ``factors`` (speed perturbation; 1.0 is the recording itself), with the warp of
        ``warps`` (a float for all, or a dict from ``(speaker key, factor)`` to a warp; the
        key of an utterance without a speaker is ``("utterance", i)``). Feature arrays are
        taken as given, once.
        """
        speakers = self._check_speakers(speakers, len(utterances))
        out, origin, pooled = [], [], {}
        for i, u in enumerate(utterances):
            source = self._source(u, samplerate)
            if source is None:
                out.append(self._features(u, samplerate))
                origin.append(i)
                continue
            cfg = self._front_end()
            key = speakers[i] if speakers[i] is not None else ("utterance", i)
            for f in factors:
                src = source
                if f != 1.0:
                    x, rate = load_audio(src, cfg.samplerate) if _is_path(src) else src
                    src = (speed_perturb(x, rate, f), rate)
                warp = warps if not isinstance(warps, dict) else warps.get((key, f))
                c = cfg if warp is None or warp == 1.0 else dataclasses.replace(cfg, warp=warp)
                if speakers[i] is None:
                    out.append(features(src, c))
                else:
                    out.append(features(src, c, normalise=False))
                    pooled.setdefault((speakers[i], f), []).append(len(out) - 1)
                origin.append(i)
        for idx in pooled.values():
            for j, X in zip(idx, cmvn([out[j] for j in idx], self._front_end()), strict=True):
                out[j] = X
        return out, np.asarray(origin, dtype=np.intp)

    def _batch(self, utterances: list, samplerate=None, speakers=None) -> list:
        """Features of a batch of utterances for prediction (per-speaker normalisation, the
        speakers' VTLN warps, the adaptation transform), with one warning when feature arrays
        are not normalised as the model's front end normalises."""
        speakers = self._check_speakers(speakers, len(utterances))
        if self.vtln and any(self._source(u, samplerate) is not None for u in utterances):
            feats = self._warped_batch(utterances, samplerate, speakers)
        else:
            feats = self._featurize(utterances, samplerate, speakers)[0]
        unusual = sum(1 for u, X in zip(utterances, feats, strict=True)
                      if isinstance(u, np.ndarray) and u.ndim == 2
                      and not self._looks_normalised(X))
        feats = [self._transform(X) for X in feats]
        if unusual:
            cfg = self.feature_config_
            what = "unit variance (cvn)" if cfg.cvn else "zero mean (cmn)"
            warnings.warn(
                f"{unusual} feature array(s) are not normalised as the model's front end does "
                f"({what} per utterance): they may come from another configuration. Compute "
                "features with rec.features(...), or pass the audio.", stacklevel=user_stacklevel(),
            )
        return feats

    def _transform(self, X: np.ndarray) -> np.ndarray:
        """Front-end features as the model consumes them: through the speaker's affine
        feature transform ``feature_transform_`` (``[A, b]``: ``A x + b``, set by
        :meth:`adapt` with CMLLR), if any."""
        W = getattr(self, "feature_transform_", None)
        if W is None:
            return X
        return X @ W[:, :-1].T + W[:, -1]

    def _log_jacobian(self) -> float:
        """log |det A| of the feature transform (added per frame to log-likelihoods)."""
        W = getattr(self, "feature_transform_", None)
        return 0.0 if W is None else float(np.linalg.slogdet(W[:, :-1])[1])

    def _looks_normalised(self, X: np.ndarray) -> bool:
        """Whether a feature array has the per-utterance normalisation of the front end."""
        cfg = getattr(self, "feature_config_", None)
        if cfg is None or len(X) < 2:
            return True
        scale = max(1.0, float(np.abs(X).max()))
        if cfg.cvn:
            std = X.std(axis=0)
            return bool(np.all((np.abs(std - 1.0) < 1e-6) | (std < 1e-8 * scale)))
        if cfg.cmn:
            return bool(np.all(np.abs(X.mean(axis=0)) < 1e-8 * scale))
        return True

    @staticmethod
    def _audio_rates(utterances, samplerate=None) -> Counter:
        """How many utterances are audio at each sample rate (an additive summary)."""
        return Counter(int(r) for r in (_audio_rate(u, samplerate) for u in utterances)
                       if r is not None)

    def _pin_front_end(self, rates: Counter) -> None:
        """Set ``feature_config_``: the front end with the sample rate of the training audio
        (the most common one, if they differ: the rest is resampled to it)."""
        cfg = self.feature_config
        if rates:
            cfg = DEFAULT_FEATURES if cfg is None else cfg
            # audio at implausible rates is not a candidate: the front end refuses it
            rates = Counter({r: n for r, n in rates.items()
                             if MIN_SAMPLERATE <= r <= MAX_SAMPLERATE})
            if cfg.samplerate is None and rates:
                rate = max(rates, key=lambda r: (rates[r], r))
                if len(rates) > 1:
                    warnings.warn(f"Training audio has sample rates {sorted(rates)} Hz: all of "
                                  f"it is resampled to {rate} Hz, the model's rate.",
                                  stacklevel=user_stacklevel())
                cfg = dataclasses.replace(cfg, samplerate=rate)
        self.feature_config_ = cfg

    def _log(self, message: str, last: bool = False) -> None:
        """Report training progress on stderr as ``verbose`` says: with True a line per
        message; with None on a terminal one line rewritten in place (ended by the ``last``
        message); otherwise nothing."""
        if self.verbose is None:
            isatty = getattr(sys.stderr, "isatty", None)
            if isatty is None or not isatty():
                return
            # carriage return, the message, clear to the end of the line
            sys.stderr.write(f"\r{message.strip()}\x1b[K" + ("\n" if last else ""))
            sys.stderr.flush()
        elif self.verbose:
            print(message, file=sys.stderr)

    def _check_hyperparameters(self) -> None:
        def bounded(name, high):
            value = getattr(self, name)
            check_positive_int(value, name)
            if value > high:
                raise ValueError(f"{name} must be at most {high}, got {value!r}.")

        if self.n_states != "auto":
            bounded("n_states", _MAX_STATES)
        if not (isinstance(self.frames_per_state, (int, float, np.integer, np.floating))
                and not isinstance(self.frames_per_state, bool)
                and np.isfinite(self.frames_per_state) and self.frames_per_state >= 1):
            raise ValueError(f"frames_per_state must be at least 1, got "
                             f"{self.frames_per_state!r}.")
        bounded("n_mix", _MAX_MIX)
        bounded("n_iter", _MAX_ITER)
        bounded("silence_states", _MAX_STATES)
        for name in ("silence", "vtln", "sat"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got "
                                 f"{getattr(self, name)!r}.")
        if self.augment is not None:
            factors = self.augment
            if isinstance(factors, (str, bytes)) or not hasattr(factors, "__iter__"):
                raise ValueError(f"augment must be None or a sequence of speed factors, got "
                                 f"{factors!r}.")
            factors = list(factors)
            if len(factors) > 16 or not all(
                    isinstance(f, (int, float, np.integer, np.floating))
                    and not isinstance(f, bool) and MIN_SPEED <= f <= MAX_SPEED
                    and f != 1.0 for f in factors) or len(set(factors)) != len(factors):
                raise ValueError(f"augment must list at most 16 distinct speed factors from "
                                 f"{MIN_SPEED} to {MAX_SPEED}, other than 1, got "
                                 f"{self.augment!r}.")
        check_n_jobs(self.n_jobs)
        if self.covariance_type not in ("diag", "full"):
            raise ValueError(f"covariance_type must be 'diag' or 'full', got "
                             f"{self.covariance_type!r}.")
        for name in ("var_floor", "word_insertion_penalty"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(
                    value, bool) or not np.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}.")
        if self.var_floor < 0:
            raise ValueError(f"var_floor must be a non-negative float, got {self.var_floor!r}.")
        if self.feature_config is not None and not isinstance(self.feature_config,
                                                              FeatureConfig):
            raise ValueError(f"feature_config must be a FeatureConfig or None, got "
                             f"{type(self.feature_config).__name__}.")

    # ------------------------------------------------------------------ topology
    @property
    def _silence_unit(self) -> int | None:
        return len(self.words_) if self.silence else None

    def _chain(self, units) -> Network:
        return chain(units, self.unit_offsets_, self.stay_, self._silence_unit,
                     self.silence_skip_)

    def _submodel(self, states: np.ndarray) -> GMMEmission:
        """The emission model of some pool states (their GMMs only)."""
        h = self.pool_
        sub = GMMEmission(len(states), h.n_mix, covariance_type=h.covariance_type)
        sub.weights_, sub.means_, sub.covars_ = (h.weights_[states], h.means_[states],
                                                 h.covars_[states])
        sub.var_floor_ = h.var_floor_
        return sub

    # ------------------------------------------------------------------ training
    def fit(self, utterances, transcripts, samplerate: int | None = None,
            speakers=None) -> Recognizer:
        """Train the word (and silence) models.

        Parameters
        ----------
        utterances : list of paths, waveforms, (waveform, samplerate) tuples or arrays
            Audio goes through the front end (``feature_config``, default
            ``DEFAULT_FEATURES``), which the model pins with the training audio's sample
            rate in ``feature_config_``; 2-D arrays are features.
        transcripts : list
            One per utterance: a label (isolated word: a string or a number, kept in its
            type in ``classes_``) or a sequence of labels (connected words, in order,
            without time boundaries).
        samplerate : int, optional
            Sample rate of the 1-D waveforms among ``utterances``.
        speakers : list, optional
            Speaker (or recording condition) of each utterance, any hashable label; None
            for an unknown one. Audio of a known speaker is normalised with the mean and
            variance of all that speaker's utterances (per-speaker CMVN), and with
            ``vtln=True`` shares one warp factor; without it, per utterance.

        Returns
        -------
        self

        Examples
        --------
        >>> rec = Recognizer().fit(["0_a.wav", "1_a.wav"], [0, 1])    # doctest: +SKIP
        >>> rec.fit(paths, labels, speakers=["ann", "bob", ...])    # doctest: +SKIP
        >>> rec.fit([X1, X2], [["4", "2"], "7"])   # word strings      # doctest: +SKIP

        Training on feature arrays (audio paths and waveforms work the same way):

        >>> import numpy as np
        >>> from emx.speech import Recognizer
        >>> rng = np.random.default_rng(0)
        >>> def utterance(word):  # made-up 3-d features: quiet, two segments, quiet
        ...     middle = {"a": [[2, 2, 0], [2, -2, 0]], "b": [[2, 0, 2], [2, 0, -2]]}[word]
        ...     parts = [[-2, 0, 0], *middle, [-2, 0, 0]]
        ...     return np.concatenate([rng.normal(m, 0.5, (8, 3)) for m in parts])
        >>> words = list("aabbab")
        >>> rec = Recognizer(n_states=2, n_mix=1).fit([utterance(w) for w in words], words)
        >>> rec.classes_.tolist(), len(rec.history_) > 0
        (['a', 'b'], True)

        Transcripts of several words train on the joined models, without time marks:

        >>> strings = [["a", "b"], ["b", "a"], ["a"], ["b"]]
        >>> X = [np.concatenate([utterance(w) for w in s]) for s in strings]
        >>> rec = Recognizer(n_states=2, n_mix=1, word_insertion_penalty=-10).fit(X, strings)
        >>> [w.label for w in rec.recognize(np.concatenate([utterance("b"), utterance("a")]))]
        ['b', 'a']
        """
        # The phases below are the ones emx.distributed runs per partition: every quantity
        # the driver needs is an additive summary of the utterances.
        self._check_hyperparameters()
        start = time.perf_counter()
        for name in ("feature_transform_", "training_warps_", "speaker_transforms_"):
            self.__dict__.pop(name, None)
        utterances = list(utterances)
        keys = self._copy_keys(utterances, samplerate, speakers) if self.sat else None
        self._pin_front_end(self._audio_rates(utterances, samplerate))
        self._log(f"features of {len(utterances)} utterances ...")
        feats, labels = self._load(utterances, transcripts, samplerate, speakers)
        self._log(f"features: {len(feats)} utterances in {time.perf_counter() - start:.1f} s")
        self._fit_features(feats, labels)
        if self.vtln and any(self._source(u, samplerate) is not None for u in utterances):
            warps = self._training_warps(utterances, transcripts, samplerate, speakers)
            feats, labels = self._load(utterances, transcripts, samplerate, speakers, warps)
            self._log(f"VTLN: warps of {len(warps)} speakers in "
                      f"{time.perf_counter() - start:.1f} s; training again")
            self._fit_features(feats, labels)
            self.training_warps_ = warps
        if self.sat:
            self._sat(feats, labels, keys)
        self._log(f"trained {len(self.words_)} words in {time.perf_counter() - start:.1f} s",
                  last=True)
        return self

    def _copy_keys(self, utterances, samplerate, speakers) -> list:
        """The (speaker, speed factor) of every feature matrix :meth:`_load` returns."""
        speakers = self._check_speakers(speakers, len(utterances))
        if any(s is None for s in speakers):
            raise ValueError("sat=True estimates a transform per training speaker: give "
                             "speakers= for every utterance.")
        keys = []
        for u, s in zip(utterances, speakers, strict=True):
            factors = ((1.0,) + self._augment_factors()
                       if self._source(u, samplerate) is not None else (1.0,))
            keys.extend((s, f) for f in factors)
        return keys

    def _sat(self, feats: list, transcripts: list, keys: list) -> None:
        """Speaker-adaptive training: a CMLLR transform per training speaker (and speed
        copy) against the current model, then the models trained again from scratch on the
        transformed features; ``_SAT_ROUNDS`` times."""
        from .adapt import adapt

        groups: dict = {}
        for j, k in enumerate(keys):
            groups.setdefault(k, []).append(j)
        for r in range(_SAT_ROUNDS):
            transforms = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # speaker-normalised arrays, checked before
                for k, idx in groups.items():
                    new = adapt(self, [feats[j] for j in idx], [transcripts[j] for j in idx],
                                method="cmllr", n_iter=_SAT_ITER)
                    transforms[k] = new.feature_transform_
            moved = [feats[j] @ transforms[k][:, :-1].T + transforms[k][:, -1]
                     for j, k in enumerate(keys)]
            self._log(f"SAT round {r + 1}/{_SAT_ROUNDS}: {len(transforms)} speaker "
                      "transforms; training again")
            self._fit_features(moved, transcripts)
        self.speaker_transforms_ = transforms

    def _fit_features(self, feats: list, transcripts: list) -> None:
        """Train from scratch on features and transcripts (tuples of labels): the phases of
        the EM protocol (``_initialise_from``, ``em_run``) on one partition in memory."""
        source = LocalData((feats, transcripts), len(feats))
        self._initialise_from(source)
        groups = source.data

        def estep():
            with ChunkRunner(check_n_jobs(self.n_jobs)) as runner:
                return runner.map_sum(self._estep, groups, group=1)

        self.em_run(estep)

    # The EM protocol (emx._em.EMModel) -----------------------------------------------
    # A partition is an (utterances, transcripts) pair as fit takes them. Every quantity the
    # initialisation needs is an additive summary of the partitions' utterances.
    def em_describe(self, part):
        if not (isinstance(part, tuple) and len(part) == 2):
            return "must be an (utterances, transcripts) pair"
        return (len(part[0]), None)

    def em_prepare(self, part, *, reset: bool = False):
        """A partition as given (audio is read once the front end is pinned, in
        :meth:`em_init`)."""
        return part

    def em_rows(self, data):
        raise TypeError("A Recognizer initialises from reduced summaries, not from rows.")

    def em_join(self, parts: list):
        raise TypeError("A Recognizer initialises from reduced summaries, not from rows.")

    def em_init(self, source, random_state=None) -> None:
        """Pin the front end with the sample rates of all the audio, compute the features on
        the partitions, then :meth:`_initialise_from` them."""
        self._check_hyperparameters()
        if self.vtln or self.sat:
            raise ValueError("emx.distributed trains a Recognizer without VTLN or SAT "
                             "(vtln=True and sat=True train again on warped or transformed "
                             "features): fit it serially, or set them False.")
        for name in ("feature_transform_", "training_warps_", "speaker_transforms_"):
            self.__dict__.pop(name, None)
        self._pin_front_end(source.reduce(_rates_of, self))
        source.update(_loaded, self)
        self._initialise_from(source)

    def _initialise_from(self, source) -> None:
        """Vocabulary, selection and initial models from summaries reduced over the
        partitions of ``(features, transcripts)``; leaves each partition's utterance groups
        (the data of :meth:`em_estep`)."""
        dims = source.map(_dims_of) if len(source.index) > 1 else []
        for i, d in enumerate(dims):  # several partitions: name the one that differs
            if len(d) > 1:
                raise ValueError(f"Partition {source.index[i]} has utterances with different "
                                 f"feature dimensions: {sorted(d)}.")
            if d and dims[0] and d != dims[0]:
                raise ValueError(
                    f"Partition {source.index[i]} has utterances with {next(iter(d))} "
                    f"features, but partition {source.index[0]} has {next(iter(dims[0]))}: "
                    "every partition must have the same number of features."
                )
        self._setup(source.reduce(_summary_of))
        source.update(_selected, self)
        self._check_selection(source.reduce(_kept_of))
        first = source.reduce(_moments_of, self, None)
        self._initialise(first, source.reduce(_moments_of, self, self._centres(first)))
        source.update(_groups_of, self)
        self._n_frames = first.n

    def em_estep(self, data: list, runner) -> _Stats:
        return runner.map_sum(self._estep, data, group=1)

    def em_run(self, estep) -> None:
        """Baum-Welch passes with mixture splitting between stages (:meth:`_train`)."""
        n_frames = self.__dict__.pop("_n_frames")
        self._train(estep, n_frames)


    # The training phases -----------------------------------------------------------
    def _load(self, utterances, transcripts, samplerate=None, speakers=None,
              warps=None) -> tuple[list, list]:
        """Features and transcripts (tuples of labels) of some utterances, checked; audio
        also speed-perturbed by each factor of ``augment`` (copies with the same
        transcript)."""
        utterances = list(utterances)
        transcripts = [_transcript(t) for t in transcripts]
        if len(utterances) != len(transcripts):
            raise ValueError(f"{len(utterances)} utterances but {len(transcripts)} transcripts.")
        self.__dict__.pop("n_features_in_", None)
        feats, origin = self._featurize(utterances, samplerate, speakers,
                                        (1.0,) + self._augment_factors(), warps)
        return feats, [transcripts[i] for i in origin]

    def _augment_factors(self) -> tuple:
        return () if self.augment is None else tuple(float(f) for f in self.augment)

    # VTLN -------------------------------------------------------------------------
    def _warp_keys(self, utterances, speakers) -> list:
        speakers = self._check_speakers(speakers, len(utterances))
        return [s if s is not None else ("utterance", i) for i, s in enumerate(speakers)]

    def _search_warps(self, utterances, samplerate, speakers, score, factors=(1.0,)):
        """Warp factor of every speaker (utterances without one: each its own) maximising the
        summed ``score(feats, origin)`` (per-feature log-likelihoods) of its utterances, over
        ``VTLN_GRID`` then half a step either side of the best; returns the warps, keyed as
        :meth:`_featurize` takes them."""
        keys = self._warp_keys(utterances, speakers)
        # the (speaker key, factor) of every feature matrix :meth:`_featurize` returns (None
        # for feature arrays, which are not warped)
        copy_key: list = []
        for i, u in enumerate(utterances):
            if self._source(u, samplerate) is None:
                copy_key.append(None)
            else:
                copy_key.extend((keys[i], f) for f in factors)
        tried: dict = {}

        def at(alpha):
            if alpha not in tried:
                tried[alpha] = score(*self._featurize(utterances, samplerate, speakers,
                                                      factors, alpha))
            return tried[alpha]

        def best(grid, copies):
            totals = {}
            for a in grid:
                ll = at(a)
                # an utterance impossible at some warp (too short) counts at none
                totals[a] = {k: 0.0 for k in copies}
                for j, k in enumerate(copy_key):
                    if k in totals[a] and np.isfinite(ll[j]):
                        totals[a][k] += ll[j]
            return {k: max(grid, key=lambda a: (totals[a][k], -abs(a - 1.0))) for k in copies}

        copies = sorted({k for k in copy_key if k is not None}, key=repr)
        coarse = best(VTLN_GRID, copies)
        fine = {}
        for k, a in coarse.items():
            grid = [a] + [round(a + d, 3) for d in (-_VTLN_FINE, _VTLN_FINE)
                          if VTLN_GRID[0] <= a + d <= VTLN_GRID[-1]]
            fine[k] = best(grid, [k])[k]
        # the features at each copy's warp
        return fine

    def _training_warps(self, utterances, transcripts, samplerate, speakers) -> dict:
        """Warps of the training speakers (and speed copies) by forced alignment: the
        likelihood of each utterance's transcript."""
        unit_of = self._index
        units = [tuple(unit_of[w] for w in _transcript(t)) for t in transcripts]

        def score(feats, origin):
            return self._transcript_scores(feats, [units[i] for i in origin])

        return self._search_warps(utterances, samplerate, speakers, score,
                                  (1.0,) + self._augment_factors())

    def _warped_batch(self, utterances, samplerate, speakers) -> list:
        """Features of a batch at each speaker's warp (utterances without a speaker: each its
        own), chosen by the likelihood of the best word (a one-pass decode)."""
        def score(feats, origin):
            return self._scores([self._transform(X) for X in feats]).max(axis=1)

        warps = self._search_warps(utterances, samplerate, speakers, score)
        return self._featurize(utterances, samplerate, speakers, (1.0,), warps)[0]

    def estimate_warp(self, utterances, transcripts=None,
                      samplerate: int | None = None) -> float:
        """The VTLN warp factor of one speaker's utterances, by maximum likelihood.

        The utterances are analysed at every warp of ``VTLN_GRID`` (0.80 to 1.20 in steps of
        0.04) and then half a step either side of the best, normalised together (one
        speaker), and scored by the model: with transcripts, the likelihood of each
        utterance's transcript (forced alignment); without, that of its best word. A warp
        above 1 moves the filterbank up, for a voice with higher formants than the
        training voices (a shorter vocal tract).

        Parameters
        ----------
        utterances : list of paths, waveforms or (waveform, samplerate) tuples
        transcripts : list, optional
        samplerate : int, optional

        Returns
        -------
        float

        Examples
        --------
        >>> rec.estimate_warp(paths_of_one_speaker)                # doctest: +SKIP
        1.04
        """
        self._check_fitted()
        utterances = self._as_list(utterances, samplerate)
        if not utterances:
            raise ValueError("No utterances.")
        if any(self._source(u, samplerate) is None for u in utterances):
            raise ValueError("estimate_warp analyses audio: pass paths, waveforms or "
                             "(waveform, samplerate) tuples, not feature arrays.")
        speakers = [0] * len(utterances)
        if transcripts is None:
            def score(feats, origin):
                return self._scores([self._transform(X) for X in feats]).max(axis=1)
        else:
            transcripts = list(transcripts)
            if len(transcripts) != len(utterances):
                raise ValueError(f"{len(utterances)} utterances but {len(transcripts)} "
                                 "transcripts.")
            units = [tuple(self._unit(w) for w in _transcript(t)) for t in transcripts]

            def score(feats, origin):
                return self._transcript_scores([self._transform(X) for X in feats],
                                               [units[i] for i in origin])

        warps = self._search_warps(utterances, samplerate, speakers, score)
        return float(warps[(0, 1.0)])

    def _setup(self, summary: _Summary) -> None:
        """Vocabulary, model sizes and pool layout from the summary of all utterances."""
        if summary.n_utterances == 0:
            raise ValueError("No training utterances.")
        if len(summary.dims) != 1:
            raise ValueError(f"Utterances have different feature dimensions: "
                             f"{sorted(summary.dims)}.")
        self.n_features_in_ = next(iter(summary.dims))
        if self.n_features_in_ > _MAX_FEATURES:
            raise ValueError(f"Utterances have {self.n_features_in_} features; a Recognizer "
                             f"takes at most {_MAX_FEATURES}.")
        cfg = self.feature_config_
        if cfg is not None and cfg.n_features != self.n_features_in_:
            raise ValueError(f"Utterances have {self.n_features_in_} features, but the front "
                             f"end feature_config gives {cfg.n_features}.")
        try:
            self.words_ = sorted(summary.words)
        except TypeError:
            raise ValueError("Word labels must be all strings or all numbers, got "
                             f"{sorted({type(w).__name__ for w in summary.words})}.") from None
        self.classes_ = np.asarray(self.words_)
        if self.n_states == "auto":
            mean = np.array([summary.words[w][0] / summary.words[w][1] for w in self.words_])
            states = np.maximum(2, np.rint(mean / self.frames_per_state))
        else:
            states = np.full(len(self.words_), self.n_states)
        self.word_states_ = states.astype(np.intp)
        sizes = list(self.word_states_) + ([self.silence_states] if self.silence else [])
        self.unit_offsets_ = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)

    def _select(self, feats: list, transcripts: list) -> tuple[list, list, _Kept]:
        """Units of each transcript; utterances with fewer frames than their transcript's
        states are left out (as HERest does), and counted in the returned summary."""
        unit_of = {w: i for i, w in enumerate(self.words_)}
        units = [tuple(unit_of[w] for w in t) for t in transcripts]
        need = [int(self.word_states_[list(u)].sum()) for u in units]
        keep = [i for i, f in enumerate(feats) if len(f) >= need[i]]
        short = [(len(feats[i]), need[i]) for i in range(len(feats)) if len(feats[i]) < need[i]]
        kept = _Kept({w for i in keep for w in transcripts[i]}, len(short),
                     short[0] if short else None)
        return [feats[i] for i in keep], [units[i] for i in keep], kept

    def _check_selection(self, kept: _Kept) -> None:
        if kept.n_short:
            frames, states = kept.first_short
            warnings.warn(
                f"Left out {kept.n_short} training utterance(s) shorter than the states of "
                f"their transcript (e.g. {frames} frames for {states} states).",
                stacklevel=user_stacklevel(),
            )
        missing = sorted(set(self.words_) - kept.words)
        if missing:
            raise ValueError(f"Every training utterance of the word(s) {missing} is shorter "
                             "than the states of its transcript.")

    def _init_moments(self, feats: list, units: list, centres=None) -> _Moments:
        """Frame counts and sums (or, given ``centres``, sums of squared deviations from
        them) of all frames, of each state's frames in a uniform segmentation of every
        utterance over its transcript's states, and of every utterance's silence-like frames
        (the quietest tenth by feature 0, the front end's log energy; for features of
        unknown origin, the first and last 5 %)."""
        S, D = int(self.unit_offsets_[-1]), self.n_features_in_
        if not feats:
            return _Moments.zeros(S, D)
        X = np.concatenate(feats)
        state, quiet = [], []
        energy = self.feature_config_ is not None  # column 0 is the front end's log energy
        for f, u in zip(feats, units, strict=True):
            pool = np.concatenate([np.arange(self.unit_offsets_[w], self.unit_offsets_[w + 1])
                                   for w in u])
            state.append(pool[(np.arange(len(f)) * len(pool)) // len(f)])
            if energy:
                quiet.append(f[:, 0] <= np.quantile(f[:, 0], 0.1))
            else:  # features of unknown origin: the edges of the utterance
                edge = np.zeros(len(f), dtype=bool)
                k = max(1, round(0.05 * len(f)))
                edge[:k] = edge[-k:] = True
                quiet.append(edge)
        state, quiet = np.concatenate(state), np.concatenate(quiet)
        if centres is not None:
            mean, state_mean, quiet_mean = centres
            Y, Z, Q = (X - mean) ** 2, (X - state_mean[state]) ** 2, (X[quiet] - quiet_mean) ** 2
        else:
            Y, Z, Q = X, X, X[quiet]
        onehot = sp.csr_matrix((np.ones(len(X)), (state, np.arange(len(X)))), shape=(S, len(X)))
        return _Moments(float(len(X)), Y.sum(axis=0), np.asarray(onehot.sum(axis=1)).ravel(),
                        np.asarray(onehot @ Z), float(len(Q)), Q.sum(axis=0))

    @staticmethod
    def _centres(first: _Moments):
        mean = first.total / first.n
        used = first.state_n > 0
        state_mean = np.tile(mean, (len(first.state_n), 1))
        state_mean[used] = first.state_total[used] / first.state_n[used, None]
        quiet_mean = first.quiet_total / first.quiet_n if first.quiet_n > 0 else mean
        return mean, state_mean, quiet_mean

    def _initialise(self, first: _Moments, second: _Moments) -> None:
        """One Gaussian per state from the uniform segmentation (a state without frames keeps
        the global mean and variance: HCompV's flat start); silence from the quiet frames."""
        S, D = int(self.unit_offsets_[-1]), self.n_features_in_
        mean, means, quiet_mean = self._centres(first)
        global_var = second.total / first.n
        used = first.state_n > 0
        var = np.tile(global_var, (S, 1))
        var[used] = second.state_total[used] / first.state_n[used, None]
        # self-loops from the mean number of frames per state of each word
        stay = np.full(S, 0.8)
        for w in range(len(self.words_)):
            a, b = self.unit_offsets_[w], self.unit_offsets_[w + 1]
            per_state = first.state_n[a:b].mean()
            stay[a:b] = np.clip(1.0 - 1.0 / max(per_state, 1.0), 0.5, 0.95)
        if self.silence:
            a, b = self.unit_offsets_[-2], self.unit_offsets_[-1]
            means[a:b] = quiet_mean
            var[a:b] = second.quiet_total / first.quiet_n if first.quiet_n > 1 else global_var
        floor = np.maximum(1e-3, self.var_floor * global_var)
        var = np.maximum(var, floor)
        covars = (var[:, None] if self.covariance_type == "diag"
                  else np.stack([np.diag(v) for v in var])[:, None])
        self.pool_ = _pool(S, 1, D, self.covariance_type, np.ones((S, 1)), means[:, None],
                           covars, floor)
        self.stay_ = stay
        self.silence_skip_ = 0.5

    def _train(self, estep, n_frames: float) -> None:
        """Baum-Welch passes (``estep()`` returns the summed statistics of all utterances),
        mixture splitting between stages."""
        self.history_ = []
        m = 1
        while True:
            monitor = ConvergenceMonitor(tol=0.0, n_iter=self.n_iter)
            for it in range(self.n_iter):
                t0 = time.perf_counter()
                stats = estep()
                monitor.report(stats.loglik)
                self._mstep(stats)
                self.history_.append(dict(n_mix=m, loglik=stats.loglik,
                                          loglik_per_frame=stats.loglik / n_frames))
                self._log(f"  {m} Gaussian(s) per state, pass {it + 1}/{self.n_iter}: "
                          f"log-likelihood/frame {stats.loglik / n_frames:.4f} "
                          f"({time.perf_counter() - t0:.2f} s)")
            if m >= self.n_mix:
                break
            m = min(2 * m, self.n_mix)
            self.pool_.split(m)

    @staticmethod
    def _groups(feats: list, units: list) -> list:
        """Utterances grouped by transcript, cut into tasks of at most _GROUP_FRAMES frames."""
        by_units: dict = {}
        for i, u in enumerate(units):
            by_units.setdefault(u, []).append(i)
        groups = []
        for u, idx in by_units.items():
            lengths = np.array([len(feats[i]) for i in idx])
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            for f0, _, off in _make_chunks(offsets, _GROUP_FRAMES):
                a = int(np.searchsorted(offsets, f0))
                b = a + len(off) - 1
                part = idx[a:b]
                groups.append(_Group(u, np.concatenate([feats[i] for i in part]), off,
                                     np.asarray(part)))
        return groups

    def _composite_posteriors(self, group: _Group, X: np.ndarray, what: str) -> tuple:
        """Forward-backward of a group's utterances (features ``X``) over the composite
        model of their transcript: the network, its sub-pool (``sub_states`` and the pool
        emission model ``sub`` over them), ``local`` (network node -> sub-pool state), the
        within-state responsibilities ``resp``, the node posteriors ``post`` (n, L), the edge
        posteriors ``xi`` and the log-likelihood of each utterance. ``what`` names the
        utterances in the error for one of probability zero."""
        net = self._chain(group.units)
        sub_states, local = np.unique(net.states, return_inverse=True)
        sub = self._submodel(sub_states)
        loglik_sub, resp = sub.estep_fn()(X)
        loglik = np.ascontiguousarray(loglik_sub[:, local])
        offsets = group.offsets
        loglik[offsets[1:] - 1] += net.log_final  # end by leaving an allowed last state
        n, L = loglik.shape
        src, dst, log_p = net.edges()
        post, xi = np.empty((n, L)), np.empty(len(src))
        seq_ll = np.empty(len(offsets) - 1)
        status = _hmm.forward_backward_edges(loglik, offsets, net.startprob, src, dst,
                                             np.exp(log_p), post, xi, seq_ll, want_xi=True)
        if status >= 0:
            raise ValueError(
                f"{what} utterance {int(group.index[status])} has probability zero under the "
                "composite model of its transcript (fewer frames than the states of its "
                "words?)."
            )
        return net, sub_states, sub, local, resp, post, xi, seq_ll

    def _estep(self, group: _Group) -> _Stats:
        """Statistics of one group; second moments of every Gaussian about its current mean
        (so a Gaussian far from the others keeps its variance to round-off)."""
        net, sub_states, sub, local, resp, post, xi, seq_ll = self._composite_posteriors(
            group, group.X, "Training")
        offsets = group.offsets
        n, L = post.shape
        src, dst = net.edges()[:2]
        S = len(self.stay_)
        occupancy_l = post.sum(axis=0)
        loops = src == dst
        stays_l = np.zeros(L)
        stays_l[src[loops]] = xi[loops]
        occupancy = np.bincount(net.states, occupancy_l, S)
        stays = np.bincount(net.states, stays_l, S)
        to_sub = sp.csr_matrix((np.ones(L), (np.arange(L), local)), shape=(L, len(sub_states)))
        M, D = self.pool_.n_mix, self.n_features_in_
        shift = np.ascontiguousarray(self.pool_.means_.reshape(S * M, D))
        gauss = (sub_states[:, None] * M + np.arange(M)).ravel()
        # moments about the sub-pool's means (shift[gauss]), taken when its E-step began
        sub_stats = sub.stats(group.X, np.asarray(post @ to_sub), resp)
        post_g = np.zeros(S * M)
        sum1 = np.zeros((S * M, D))
        sum2 = np.zeros((S * M,) + sub_stats.sum2.shape[1:])
        post_g[gauss], sum1[gauss], sum2[gauss] = sub_stats.post, sub_stats.sum1, sub_stats.sum2
        entries = slots = 0.0
        if self.silence:
            sil = net.first[np.flatnonzero(net.states[net.first] == self.unit_offsets_[-2])]
            entries = float(np.sum(occupancy_l[sil] - stays_l[sil]))
            slots = float(len(sil) * (len(offsets) - 1))
        return _Stats(float(seq_ll.sum()), occupancy, stays, entries, slots,
                      GaussianStats(post_g, sum1, sum2, shift))

    def _mstep(self, stats: _Stats) -> None:
        self.pool_.mstep(stats.emission, "mcw")
        used = stats.occupancy > 1e-10
        # a state is always left in the end (stays < occupancy); never round to 1
        stay = np.where(used, stats.stays / np.where(used, stats.occupancy, 1.0), self.stay_)
        self.stay_ = np.clip(stay, 0.0, _MAX_STAY)
        if stats.silence_slots > 0:
            # never certain either way: silence can always be taken or skipped
            self.silence_skip_ = float(np.clip(
                1.0 - stats.silence_entries / stats.silence_slots, 0.05, 0.95))

    # ------------------------------------------------------------------ isolated words
    def _check_fitted(self) -> None:
        if not hasattr(self, "pool_"):
            raise ValueError("This Recognizer is not fitted yet: call fit or load first.")

    def _pool_loglik(self, X: np.ndarray) -> np.ndarray:
        """(n, n_pool) state log-likelihoods of frames X."""
        return self.pool_.estep_fn()(X)[0]

    def _transcript_scores(self, feats: list, units: list) -> np.ndarray:
        """Log-likelihood of each utterance (model features) under the network of its own
        transcript (``units[i]``: word indices), -inf where impossible."""
        out = np.full(len(feats), -np.inf)
        by_units: dict = {}
        for i, u in enumerate(units):
            by_units.setdefault(tuple(u), []).append(i)
        for u, idx in by_units.items():
            out[idx] = self._scores([feats[i] for i in idx], [self._chain(u)])[:, 0]
        return out

    def _scores(self, feats: list, nets=None) -> np.ndarray:
        """Log-likelihood of each utterance (model features, transformed) under each network,
        (n_utt, n_nets); by default every word's ``[silence] w [silence]`` (columns follow
        ``classes_``). Impossible scores are -inf."""
        if nets is None:
            nets = [self._chain([w]) for w in range(len(self.words_))]
        W = len(nets)
        if not feats:
            return np.empty((0, W))
        lengths = np.array([len(f) for f in feats])
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        out = np.empty((len(feats), W))
        n_seq = 0
        for _, _, off in _make_chunks(offsets):
            n = len(off) - 1
            ll_pool = self._pool_loglik(np.concatenate(feats[n_seq:n_seq + n]))
            for w, net in enumerate(nets):
                ll = np.ascontiguousarray(ll_pool[:, net.states])
                ll[off[1:] - 1] += net.log_final
                out[n_seq:n_seq + n, w] = _forward_scores(ll, off, net)
            n_seq += n
        return out + lengths[:, None] * self._log_jacobian()

    def decision_function(self, utterances, samplerate: int | None = None,
                          speakers=None) -> np.ndarray:
        """Log-likelihood of every utterance under every word, (n_utt, n_words).

        Word ``w`` is scored with the network ``[silence] w [silence]`` (the utterance ends by
        leaving ``w`` or the final silence). Columns follow ``classes_``. A word that cannot
        produce an utterance (fewer frames than its states) scores ``-inf`` for it, with one
        warning for the batch; an utterance no word can score is an error. Without
        ``speakers``, scores do not depend on the other utterances of the batch; with them,
        each speaker's utterances are normalised (and, with ``vtln``, warped) together.

        Parameters
        ----------
        utterances : list of paths, waveforms, (waveform, samplerate) tuples or arrays
        samplerate : int, optional
            Sample rate of the 1-D waveforms among ``utterances``.
        speakers : list, optional
            Speaker of each utterance (None: unknown), as in :meth:`predict`.

        Examples
        --------
        >>> rec.decision_function(["7_jackson_0.wav"]).shape     # doctest: +SKIP
        (1, 10)
        """
        self._check_fitted()
        utterances = self._as_list(utterances, samplerate)
        feats = self._batch(utterances, samplerate, speakers)
        out = self._scores(feats)
        lengths = np.array([len(f) for f in feats], dtype=np.intp)
        failed = np.isneginf(out)
        if failed.any():
            none = np.flatnonzero(failed.all(axis=1))
            if len(none):
                i = int(none[0])
                name = f" ({os.fspath(utterances[i])})" if _is_path(utterances[i]) else ""
                raise ValueError(
                    f"{len(none)} utterance(s) cannot be scored by any word, e.g. utterance "
                    f"{i}{name} of {lengths[i]} frames: the shortest word model has "
                    f"{int(self.word_states_.min())} states (one frame each at least)."
                )
            warnings.warn(
                f"{int(failed.any(axis=1).sum())} of {len(feats)} utterance(s) are too short "
                f"for some word models (fewer frames than states): those words score -inf "
                "for them.", stacklevel=user_stacklevel(),
            )
        return out

    def predict_proba(self, utterances, samplerate: int | None = None,
                      speakers=None) -> np.ndarray:
        """Posterior of each word given the utterance (equal priors), (n_utt, n_words),
        columns in the order of ``classes_``.

        Examples
        --------
        >>> p = rec.predict_proba(["7_jackson_0.wav"])          # doctest: +SKIP
        >>> rec.classes_[p.argmax(axis=1)]                       # doctest: +SKIP
        array(['7'], dtype='<U1')
        """
        s = self.decision_function(utterances, samplerate, speakers)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        return s / s.sum(axis=1, keepdims=True)

    def predict(self, utterances, samplerate: int | None = None,
                speakers=None) -> np.ndarray:
        """Best word of each (isolated-word) utterance.

        Parameters
        ----------
        utterances : list of paths, waveforms, (waveform, samplerate) tuples or arrays
        samplerate : int, optional
            Sample rate of the 1-D waveforms among ``utterances``.
        speakers : list, optional
            Speaker of each utterance (None: unknown): audio of a speaker is normalised
            with statistics over all that speaker's utterances in the batch (and, for a
            model with ``vtln``, analysed at one warp per speaker), as in ``fit``.

        Returns
        -------
        ndarray of shape (n_utt,)
            Labels from ``classes_``, in their type (``pred == y`` compares as expected).

        Examples
        --------
        >>> rec = Recognizer().fit(paths, [0, 1, 2, 0])           # doctest: +SKIP
        >>> rec.predict(["2_george_0.wav", (waveform, 44100)])    # doctest: +SKIP
        array([2, 0])

        >>> import numpy as np
        >>> from emx.speech import Recognizer
        >>> rng = np.random.default_rng(0)
        >>> def utterance(word):  # made-up 3-d features: quiet, two segments, quiet
        ...     middle = {"a": [[2, 2, 0], [2, -2, 0]], "b": [[2, 0, 2], [2, 0, -2]]}[word]
        ...     parts = [[-2, 0, 0], *middle, [-2, 0, 0]]
        ...     return np.concatenate([rng.normal(m, 0.5, (8, 3)) for m in parts])
        >>> words = list("aabbab")
        >>> rec = Recognizer(n_states=2, n_mix=1).fit([utterance(w) for w in words], words)
        >>> rec.predict([utterance("b"), utterance("a")]).tolist()
        ['b', 'a']
        >>> rec.predict_proba([utterance("a")]).round(2)    # columns follow rec.classes_
        array([[1., 0.]])
        """
        s = self.decision_function(utterances, samplerate, speakers)
        return self.classes_[s.argmax(axis=1)] if len(s) else self.classes_[:0]

    def score(self, utterances, labels, sample_weight=None,
              samplerate: int | None = None, speakers=None) -> float:
        """Accuracy of :meth:`predict` on isolated-word utterances (scikit-learn's
        classifier score; ``cross_val_score`` and ``GridSearchCV`` use it).

        For word strings (insertions, deletions, WER) use :meth:`evaluate`. Labels are
        matched in the model's spelling (``'7'`` finds the word ``7`` of a model trained on
        ints).

        Examples
        --------
        >>> from sklearn.model_selection import cross_val_score
        >>> cross_val_score(Recognizer(), paths, labels, cv=5)     # doctest: +SKIP
        """
        labels = list(labels)
        if not all(_is_label(t) for t in labels):
            raise ValueError("score takes one label per utterance (isolated words); for "
                             "word strings use evaluate, which gives the word error rate.")
        pred = self.predict(utterances, samplerate, speakers).tolist()
        if len(pred) != len(labels):
            raise ValueError(f"{len(pred)} utterances but {len(labels)} labels.")
        correct = [p == self._canonical(t) for p, t in zip(pred, labels, strict=True)]
        return float(np.average(correct, weights=sample_weight))

    @property
    def _index(self) -> dict:
        return {w: i for i, w in enumerate(self.words_)}

    def _canonical(self, w):
        """A label as the model spells it (``'7'`` for a model of ints finds ``7``); labels
        not in the model are returned as given."""
        w = _label(w)
        if w in self._index:
            return w
        by_text = {str(v): v for v in self.words_}
        return by_text.get(str(w), w)

    def _unit(self, w) -> int:
        """Index of a word of the model (its label in any spelling), or ValueError."""
        w = self._canonical(w)
        try:
            return self._index[w]
        except KeyError:
            raise ValueError(f"Word {w!r} is not in the model.") from None

    # ------------------------------------------------------------------ connected words
    def _viterbi(self, X: np.ndarray, net: Network):
        ll = np.ascontiguousarray(self._pool_loglik(X)[:, net.states])
        ll[-1] += net.log_final
        T, L = ll.shape
        path = np.empty(T, dtype=np.intp)
        lp = np.empty(1)
        src, dst, log_p = net.edges()
        status = _hmm.viterbi_edges(ll, np.array([0, T], dtype=np.intp), net.log_start,
                                    src, dst, log_p, path, lp)
        if status >= 0:
            raise ValueError(f"No path through the network matches this utterance ({T} frames).")
        return path, float(lp[0])

    def _grammar(self, grammar) -> dict | None:
        if grammar is None:
            return None
        ends = {"<s>": -1, "</s>": -2}

        def unit(w, what):
            if isinstance(w, str) and w in ends:
                return ends[w]
            try:
                return self._unit(w)
            except ValueError:
                if what == "key":
                    raise ValueError(f"Grammar key {w!r} is not a word of the model or "
                                     "'<s>'.") from None
                raise ValueError(f"Grammar {what} names unknown word {w!r}.") from None

        out = {}
        for key, followers in dict(grammar).items():
            k = unit(key, "key")
            if k == -2:
                raise ValueError("Grammar key '</s>' is not a word of the model or '<s>'.")
            if _is_label(followers):
                raise ValueError(f"Grammar entry {key!r} must list words, got {followers!r}.")
            fs = [unit(f, f"entry {key!r}") for f in followers]
            if -1 in fs:
                raise ValueError(f"Grammar entry {key!r} names '<s>' as a follower.")
            out[k] = fs
        return out

    def recognize(self, utterance, grammar=None, samplerate: int | None = None) -> list[Word]:
        """Connected words of one utterance, by Viterbi over a word loop.

        Parameters
        ----------
        utterance : path, 1-D waveform (with ``samplerate``), (waveform, samplerate) or array
        grammar : dict, optional
            Word-pair grammar: ``grammar[w]`` lists the words that may follow word ``w``
            (``'</s>'`` for the end of the utterance) and ``grammar['<s>']`` the words that
            may start it. Words without an entry may be followed by any word or the end.
        samplerate : int, optional
            Sample rate of a 1-D waveform.

        Returns
        -------
        list of Word
            Labels (as in ``classes_``) with start and end times in seconds (frame step of
            the front end; 10 ms for a model without one); silence is not reported.

        Examples
        --------
        >>> rec.recognize("three_digits.wav")                    # doctest: +SKIP
        [Word(label='4', start=0.12, end=0.55), ...]
        >>> rec.recognize(signal, samplerate=16000, grammar={"<s>": ["1"], "1": ["</s>"]})
        ... # doctest: +SKIP
        """
        self._check_fitted()
        return self._recognize(self._batch([utterance], samplerate)[0], grammar)

    def _recognize(self, X: np.ndarray, grammar=None) -> list[Word]:
        net, word_of_node = word_loop(
            range(len(self.words_)), self.unit_offsets_, self.stay_, self._silence_unit,
            self.silence_skip_, self.word_insertion_penalty, self._grammar(grammar),
        )
        path, _ = self._viterbi(X, net)
        return [w for w in self._segments(net, path, word_of_node) if w.label != SILENCE]

    def _segments(self, net: Network, path: np.ndarray, label_of_node) -> list[Word]:
        starts = net.entries(path)
        ends = np.append(starts[1:], len(path))
        step = self.feature_config_.winstep if self.feature_config_ is not None else 0.01
        out = []
        for a, b in zip(starts, ends, strict=True):
            k = label_of_node[net.node[path[a]]]
            out.append(Word(SILENCE if k < 0 else self.words_[k], float(a * step),
                            float(b * step)))
        return out

    def align(self, utterance, transcript, return_states: bool = False,
              samplerate: int | None = None):
        """Forced alignment of an utterance to its transcript (HVite ``-a``).

        Parameters
        ----------
        utterance : path, 1-D waveform (with ``samplerate``), (waveform, samplerate) or array
        transcript : label or sequence of labels
        return_states : bool
        samplerate : int, optional
            Sample rate of a 1-D waveform.

        Returns
        -------
        segments : list of Word
            The transcript's words and the silences taken (labelled ``SILENCE``), in order.
        states : ndarray of shape (n_frames,), only with ``return_states``
            State number within its model (word or silence) of every frame.

        Examples
        --------
        >>> segments, states = rec.align("42.wav", ["4", "2"], return_states=True)
        ... # doctest: +SKIP
        """
        self._check_fitted()
        words = _transcript(transcript)
        unknown = [w for w in words if self._canonical(w) not in self._index]
        if unknown:
            raise ValueError(f"Transcript words {unknown} are not in the model.")
        X = self._batch([utterance], samplerate)[0]
        labels = [self._unit(w) for w in words]
        net = self._chain(labels)
        path, _ = self._viterbi(X, net)
        if self.silence:  # nodes [sil, w1, sil, w2, ..., wn, sil]
            labels = [-1] + [x for i in labels for x in (i, -1)]
        segments = self._segments(net, path, np.asarray(labels))
        if not return_states:
            return segments
        unit_start = self.unit_offsets_[np.searchsorted(self.unit_offsets_, net.states,
                                                        side="right") - 1]
        return segments, (net.states - unit_start)[path]

    def evaluate(self, utterances, transcripts, grammar=None,
                 samplerate: int | None = None, speakers=None) -> dict:
        """Word accuracy and error rate against transcripts, aligned as HResults does.

        One label per utterance (and no grammar) scores :meth:`predict` (isolated words);
        sequences of labels, or a grammar, score :meth:`recognize` (connected words).
        ``speakers`` (one per utterance, None: unknown) normalises each speaker's audio
        over all its utterances, as in :meth:`predict`.

        Returns
        -------
        dict
            As :func:`word_error_rate`: 'accuracy' (1 - WER), 'wer', 'correct'
            (1 - (S + D) / N), 'substitutions', 'deletions', 'insertions', 'n_words'.

        Examples
        --------
        >>> rec.evaluate(string_paths, [["4", "2"], ["7", "1", "1"]])["wer"]  # doctest: +SKIP
        0.02
        """
        self._check_fitted()
        utterances, transcripts = self._as_list(utterances, samplerate), list(transcripts)
        if len(utterances) != len(transcripts):
            raise ValueError(f"{len(utterances)} utterances but {len(transcripts)} transcripts.")
        refs = [[self._canonical(w) for w in _transcript(t)] for t in transcripts]
        if all(_is_label(t) for t in transcripts) and grammar is None:
            hyps = [[h] for h in self.predict(utterances, samplerate, speakers).tolist()]
        else:
            feats = self._batch(utterances, samplerate, speakers)
            hyps = [self._recognize(X, grammar) for X in feats]
        return word_error_rate(refs, hyps)

    # ------------------------------------------------------------------ adaptation
    def adapt(self, utterances, transcripts=None, method: str = "map",
              samplerate: int | None = None, **options) -> Recognizer:
        """A copy of the model adapted to the speaker of ``utterances``, by EM.

        The model itself is unchanged. ``'map'`` (the default) re-estimates each Gaussian's
        mean with a prior weight ``tau`` on the speaker-independent one, ``'mllr'`` estimates
        one affine transform of all the means, ``'cmllr'`` (constrained MLLR, fMLLR) one
        affine transform of the features (``feature_transform_``).
        Without ``transcripts`` the adaptation is unsupervised: the model decodes the
        utterances, adapts on its hypotheses, and repeats (``n_passes``). The log-likelihood
        of the adaptation data never decreases over the EM iterations of a pass
        (``adaptation_history_``). All options and the mathematics:
        :func:`emx.speech.adapt.adapt`.

        Parameters
        ----------
        utterances : list of paths, waveforms, (waveform, samplerate) tuples or arrays
            One speaker's utterances (normalised together when the model was trained with
            ``speakers``: pass ``speakers=`` as for :meth:`predict`).
        transcripts : list, optional
            A label or a sequence of labels per utterance; None: unsupervised.
        method : {'cmllr', 'mllr', 'map'}
        samplerate : int, optional
        **options
            ``isolated``, ``n_passes``, ``n_iter``, ``n_sweeps``, ``blocks``, ``tau``,
            ``speakers``, ``verbose``: see :func:`emx.speech.adapt.adapt`.

        Returns
        -------
        Recognizer

        Examples
        --------
        >>> new = rec.adapt(paths_of_one_speaker)                  # doctest: +SKIP
        >>> new.predict(paths_of_one_speaker)                      # doctest: +SKIP
        """
        from .adapt import adapt

        return adapt(self, utterances, transcripts, method, samplerate=samplerate, **options)

    # ------------------------------------------------------------------ persistence
    _ARRAYS = ("weights_", "means_", "covars_", "var_floor_")

    def save(self, path) -> None:
        """Save to ``path`` (a .npz holding arrays and one JSON header; no pickle).

        The file keeps the labels in their type, the estimator's parameters and the front
        end the model pinned (``feature_config_``, with its sample rate).
        """
        self._check_fitted()
        params = self.get_params()
        config = params.pop("feature_config")
        header = dict(
            format=_FORMAT, version=_VERSION, words=self.classes_.tolist(), params=params,
            feature_config=None if config is None else config.to_dict(),
            feature_config_=None if self.feature_config_ is None else
            self.feature_config_.to_dict(),
            n_features=self.n_features_in_, silence_skip=self.silence_skip_,
        )
        arrays = {"header": np.array(json.dumps(header)), "stay_": self.stay_,
                  "unit_offsets_": self.unit_offsets_}
        for name in self._ARRAYS:
            arrays[name] = getattr(self.pool_, name)
        if getattr(self, "feature_transform_", None) is not None:
            arrays["feature_transform_"] = self.feature_transform_
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path) -> Recognizer:
        """Load a model written by :meth:`save` (this version, or version 2 files of emx
        0.1, whose front end is taken without a sample rate, with a warning); anything else
        raises ValueError.

        The file is checked before anything large is read: only the members :meth:`save`
        writes are read (others are ignored, unread), each only after its declared size (zip
        directory) and its dtype and shape (``.npy`` header) agree with the model the JSON
        header describes. Every parameter and front-end setting must lie within bounds
        (``FeatureConfig``'s; at most 10,000 states per word or silence model, 1,024
        Gaussians per state, 10,000 features and 2**27 emission parameters), and the
        model must be usable: mixture weights summing to 1, positive variances, and
        self-loop probabilities ``stay_`` in [0, 1) (a state with ``stay_ == 1`` is never
        left, so its word could never be recognised). A ValueError names the field at fault.
        """
        try:
            with zipfile.ZipFile(path) as z:
                rec, version = cls._from_zip(z)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{os.fspath(path)!s} is not a valid emx recognizer file "
                             f"({exc}).") from exc
        if version == 2 and rec.feature_config_ is not None \
                and rec.feature_config_.samplerate is None:
            warnings.warn(f"{os.fspath(path)!s} was saved by an older emx that did not record "
                          "the training audio's sample rate: audio is analysed at its own "
                          "rate. Re-save the model with feature_config.samplerate set.",
                          stacklevel=user_stacklevel())
        return rec

    @classmethod
    def _from_zip(cls, z: zipfile.ZipFile) -> tuple[Recognizer, int]:
        """The model in an open .npz (see :meth:`load`), and its format version."""
        header = json.loads(_read_member(z, "header", (), "U", _MAX_HEADER_BYTES).item())
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        version = header.get("version")
        if header.get("format") != _FORMAT or version not in (2, _VERSION):
            raise ValueError(f"not an emx recognizer of a version this emx reads "
                             f"(format {header.get('format')!r}, version {version!r}; "
                             f"reads 2 and {_VERSION})")

        def config(d):
            return None if d is None else FeatureConfig.from_dict(d)

        params = header["params"]
        if not isinstance(params, dict):
            raise ValueError("params must be a JSON object")
        rec = cls(feature_config=config(header["feature_config"]), **params)
        rec._check_hyperparameters()
        n_features = header["n_features"]
        if not (isinstance(n_features, int) and 1 <= n_features <= _MAX_FEATURES):
            raise ValueError(f"n_features must be an integer from 1 to {_MAX_FEATURES}, got "
                             f"{n_features!r}")
        if version == 2:  # labels were text; the front end had no pinned sample rate
            cfg = rec.feature_config
            if cfg is not None and cfg.n_features != n_features:
                rec.feature_config = cfg = None  # trained on arrays of another kind
            rec.feature_config_ = cfg
            words = [str(w) for w in header["words"]]
        else:
            rec.feature_config_ = config(header["feature_config_"])
            words = [_label(w) for w in header["words"]]
        if not words or len(set(words)) != len(words) or words != sorted(words):
            raise ValueError("words must be a non-empty sorted list of distinct labels")
        rec.words_ = words
        rec.classes_ = np.asarray(words)
        rec.n_features_in_ = D = n_features
        if (rec.feature_config_ is not None
                and rec.feature_config_.n_features != rec.n_features_in_):
            raise ValueError("the front end does not give the model's features")
        skip = header["silence_skip"]
        if not (isinstance(skip, (int, float)) and not isinstance(skip, bool)
                and 0 < skip < 1):
            raise ValueError(f"silence_skip must be a number in (0, 1), got {skip!r}")
        rec.silence_skip_ = float(skip)

        # the topology: units of at most _MAX_STATES states each
        n_units = len(words) + bool(rec.silence)
        offsets = _read_member(z, "unit_offsets_", (n_units + 1,), "iu")
        sizes = np.diff(offsets)
        if offsets[0] != 0 or np.any(sizes < 1) or np.any(sizes > _MAX_STATES):
            raise ValueError(f"unit_offsets_ must start at 0 and give every unit 1 to "
                             f"{_MAX_STATES} states, got sizes {sizes[:10].tolist()}...")
        if rec.n_states != "auto" and np.any(sizes[:len(words)] != rec.n_states):
            raise ValueError(f"unit_offsets_ give words other than n_states={rec.n_states} "
                             "states")
        if rec.silence and sizes[-1] != rec.silence_states:
            raise ValueError(f"unit_offsets_ give the silence model {sizes[-1]} states, "
                             f"silence_states is {rec.silence_states}")
        S, M = int(offsets[-1]), int(rec.n_mix)
        per_gaussian = D * D if rec.covariance_type == "full" else D
        if S * M * (per_gaussian + D + 1) > _MAX_PARAMETERS:
            raise ValueError(f"{S} states of {M} Gaussians in {D} dimensions exceed the "
                             f"{_MAX_PARAMETERS} parameters a model may have")
        rec.unit_offsets_ = offsets.astype(np.intp)
        rec.word_states_ = sizes[:len(words)].astype(np.intp)
        stay = _read_member(z, "stay_", (S,), "f")
        bad = np.flatnonzero(~((stay >= 0) & (stay < 1)))
        if len(bad):
            value = float(stay[bad[0]])
            raise ValueError(
                f"stay_ (self-loop probabilities) must be in [0, 1): state {bad[0]} has "
                f"{value!r}" + (" (it would never be left)" if value == 1 else "")
            )
        rec.stay_ = stay
        arrays = {}
        for name, shape in (("weights_", (S, M)), ("means_", (S, M, D)),
                            ("covars_", (S, M, D, D) if rec.covariance_type == "full"
                             else (S, M, D)), ("var_floor_", (D,))):
            arrays[name] = _read_member(z, name, shape, "f")
        if not np.all(np.isfinite(arrays["var_floor_"]) & (arrays["var_floor_"] >= 0)):
            raise ValueError("var_floor_ must be finite and non-negative")
        rec.pool_ = _pool(S, M, D, rec.covariance_type, **arrays)
        if "feature_transform_.npy" in z.namelist():  # a speaker-adapted model (CMLLR)
            W = _read_member(z, "feature_transform_", (D, D + 1), "f")
            if not np.all(np.isfinite(W)) or not np.isfinite(np.linalg.slogdet(W[:, :-1])[1]):
                raise ValueError("feature_transform_ must be finite with an invertible A")
            rec.feature_transform_ = W
        return rec, version
