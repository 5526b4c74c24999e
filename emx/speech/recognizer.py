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

import json
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._core import _hmm
from .._em import ChunkRunner, ConvergenceMonitor
from .._validation import check_n_jobs, check_positive_int
from ..gaussian import GaussianStats
from ..hmm import GMMHMM, _make_chunks
from .features import FeatureConfig, features
from .network import Network, chain, word_loop

__all__ = ["Recognizer", "Word", "word_errors", "SILENCE"]

# The recogniser's default front end: 39-d MFCC with per-utterance mean and variance
# normalisation and the filterbank from 100 Hz (on FSDD's four speakers, leave-one-speaker-out
# accuracy rose by about 8 points over mean normalisation alone).
DEFAULT_FEATURES = FeatureConfig(cvn=True, lowfreq=100.0)

#: Label of silence segments in :meth:`Recognizer.align` (never a recognised word).
SILENCE = "<sil>"

_FORMAT = "emx-recognizer"
_VERSION = 2
_GROUP_FRAMES = 8192  # frames per E-step task (utterances with the same transcript)


@dataclass
class Word:
    """A recognised word and its span in seconds."""

    label: str
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


@dataclass
class _Stats:
    """Additive statistics of one embedded Baum-Welch pass over some utterances."""

    loglik: float
    occupancy: np.ndarray  # (n_pool,) expected frames in each pool state
    stays: np.ndarray  # (n_pool,) expected self-loops of each pool state
    silence_entries: float  # expected number of optional silences taken
    silence_slots: float  # number of optional silences offered
    emission: GaussianStats

    def __add__(self, other: _Stats) -> _Stats:
        return _Stats(self.loglik + other.loglik, self.occupancy + other.occupancy,
                      self.stays + other.stays, self.silence_entries + other.silence_entries,
                      self.silence_slots + other.silence_slots, self.emission + other.emission)

    def __iadd__(self, other: _Stats) -> _Stats:
        self.loglik += other.loglik
        self.occupancy += other.occupancy
        self.stays += other.stays
        self.silence_entries += other.silence_entries
        self.silence_slots += other.silence_slots
        self.emission += other.emission
        return self


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
class _Moments:
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

    def __add__(self, other: _Moments) -> _Moments:
        return _Moments(self.n + other.n, self.total + other.total,
                        self.state_n + other.state_n, self.state_total + other.state_total,
                        self.quiet_n + other.quiet_n, self.quiet_total + other.quiet_total)


@dataclass
class _Group:
    """Utterances sharing one transcript, with their features concatenated."""

    units: tuple  # word units of the transcript
    X: np.ndarray
    offsets: np.ndarray  # (n_utt + 1,)
    index: np.ndarray  # positions of the utterances in the training list


def _transcript(t) -> tuple:
    """A transcript as a tuple of labels: a str (or number) is one word."""
    if isinstance(t, (str, int, np.integer)):
        words = (str(t),)
    else:
        words = tuple(str(w) for w in t)
    if not words or any(w == "" for w in words):
        raise ValueError(f"A transcript must hold at least one non-empty word label, got {t!r}.")
    if SILENCE in words:
        raise ValueError(f"{SILENCE!r} is reserved for the silence model.")
    return words


class Recognizer:
    """Isolated and connected word recognition with GMM-HMMs.

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
        Variance floor as a fraction of the global variance of the training features.
    silence : bool
        Train a silence model, optional before, between and after words (in training and in
        recognition).
    silence_states : int
        States of the silence model.
    feature_config : FeatureConfig, optional
        Front end for utterances given as audio paths (saved with the model); default
        ``DEFAULT_FEATURES``.
    word_insertion_penalty : float
        Log-probability added for every word in connected recognition (negative: fewer words).
    n_jobs : int or None
        Threads for the E-step.
    verbose : bool
        Log every training pass with the average log-likelihood per frame to stderr.

    Attributes
    ----------
    words_ : list of str
        The vocabulary, sorted.
    word_states_ : ndarray of int
        States of each word's model.
    hmm_ : GMMHMM
        The pool of all states' GMMs (word ``i`` owns states ``unit_offsets_[i]`` to
        ``unit_offsets_[i + 1] - 1``, silence the last unit); its ``startprob_`` and
        ``transmat_`` are unused: the topology is ``stay_``.
    stay_ : ndarray of shape (n_pool_states,)
        Self-loop probability of each state (leaving moves to the next state, or exits).
    unit_offsets_ : ndarray
    silence_skip_ : float
        Probability of skipping an optional silence (estimated in training).
    history_ : list of dict
        Per training pass: ``n_mix``, ``loglik`` (total, before the pass's update) and
        ``loglik_per_frame``.
    n_features_in_ : int
    """

    def __init__(
        self,
        n_states: int | str = 10,
        n_mix: int = 2,
        frames_per_state: float = 4.0,
        covariance_type: str = "diag",
        n_iter: int = 5,
        var_floor: float = 0.1,
        silence: bool = True,
        silence_states: int = 3,
        feature_config: FeatureConfig | None = None,
        word_insertion_penalty: float = -60.0,
        n_jobs: int | None = None,
        verbose: bool = False,
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
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ features
    @property
    def _config(self) -> FeatureConfig:
        return self.feature_config if self.feature_config is not None else DEFAULT_FEATURES

    def _features(self, utterance) -> np.ndarray:
        if isinstance(utterance, (str, os.PathLike)):
            return features(utterance, self._config)
        X = np.asarray(utterance, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"An utterance must be a path or a (frames, features) array, got "
                             f"shape {X.shape}.")
        if not np.all(np.isfinite(X)):
            raise ValueError("Utterance features contain NaN or infinity.")
        if hasattr(self, "n_features_in_") and X.shape[1] != self.n_features_in_:
            raise ValueError(f"Utterance has {X.shape[1]} features, the model "
                             f"{self.n_features_in_}.")
        return X

    def _log(self, message: str) -> None:
        if self.verbose:
            print(message, file=sys.stderr)

    def _check_hyperparameters(self) -> None:
        if self.n_states != "auto":
            check_positive_int(self.n_states, "n_states")
        if not (np.isfinite(self.frames_per_state) and self.frames_per_state >= 1):
            raise ValueError(f"frames_per_state must be at least 1, got "
                             f"{self.frames_per_state!r}.")
        check_positive_int(self.n_mix, "n_mix")
        check_positive_int(self.n_iter, "n_iter")
        check_positive_int(self.silence_states, "silence_states")
        check_n_jobs(self.n_jobs)
        if self.covariance_type not in ("diag", "full"):
            raise ValueError(f"covariance_type must be 'diag' or 'full', got "
                             f"{self.covariance_type!r}.")
        if not (np.isfinite(self.var_floor) and self.var_floor >= 0):
            raise ValueError(f"var_floor must be a non-negative float, got {self.var_floor!r}.")
        if not np.isfinite(self.word_insertion_penalty):
            raise ValueError("word_insertion_penalty must be finite.")

    # ------------------------------------------------------------------ topology
    @property
    def _silence_unit(self) -> int | None:
        return len(self.words_) if self.silence else None

    def _chain(self, units) -> Network:
        return chain(units, self.unit_offsets_, self.stay_, self._silence_unit,
                     self.silence_skip_)

    def _submodel(self, states: np.ndarray) -> GMMHMM:
        """A GMMHMM over some pool states (their GMMs only), for their emissions."""
        h = self.hmm_
        sub = GMMHMM(len(states), h.n_mix, covariance_type=h.covariance_type, init_params="")
        sub.n_features_in_ = h.n_features_in_
        sub.weights_, sub.means_, sub.covars_ = (h.weights_[states], h.means_[states],
                                                 h.covars_[states])
        return sub

    # ------------------------------------------------------------------ training
    def fit(self, utterances, transcripts) -> Recognizer:
        """Train the word (and silence) models.

        Parameters
        ----------
        utterances : list of paths or (frames, features) arrays
        transcripts : list
            One per utterance: a label (isolated word) or a sequence of labels (connected
            words, in order, without time boundaries).

        Returns
        -------
        self
        """
        # The phases below are the ones emx.distributed runs per partition: every quantity
        # the driver needs is an additive summary of the utterances.
        self._check_hyperparameters()
        start = time.perf_counter()
        feats, transcripts = self._load(utterances, transcripts)
        self._log(f"features: {len(feats)} utterances in {time.perf_counter() - start:.1f} s")
        self._setup(_Summary.of(feats, transcripts))
        feats, units, kept = self._select(feats, transcripts)
        self._check_selection(kept)
        first = self._init_moments(feats, units)
        self._initialise(first, self._init_moments(feats, units, self._centres(first)))
        groups = self._groups(feats, units)
        shift = first.total / first.n

        def estep():
            with ChunkRunner(check_n_jobs(self.n_jobs)) as runner:
                return runner.map_sum(lambda g: self._estep(g, shift), groups, group=1)

        self._train(estep, first.n)
        self._log(f"trained {len(self.words_)} words in {time.perf_counter() - start:.1f} s")
        return self

    # The training phases -----------------------------------------------------------
    def _load(self, utterances, transcripts) -> tuple[list, list]:
        """Features and transcripts (tuples of labels) of some utterances, checked."""
        utterances = list(utterances)
        transcripts = [_transcript(t) for t in transcripts]
        if len(utterances) != len(transcripts):
            raise ValueError(f"{len(utterances)} utterances but {len(transcripts)} transcripts.")
        self.__dict__.pop("n_features_in_", None)
        return [self._features(u) for u in utterances], transcripts

    def _setup(self, summary: _Summary) -> None:
        """Vocabulary, model sizes and pool layout from the summary of all utterances."""
        if summary.n_utterances == 0:
            raise ValueError("No training utterances.")
        if len(summary.dims) != 1:
            raise ValueError(f"Utterances have different feature dimensions: "
                             f"{sorted(summary.dims)}.")
        self.n_features_in_ = next(iter(summary.dims))
        self.words_ = sorted(summary.words)
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
                stacklevel=3,
            )
        missing = sorted(set(self.words_) - kept.words)
        if missing:
            raise ValueError(f"Every training utterance of the word(s) {missing} is shorter "
                             "than the states of its transcript.")

    def _init_moments(self, feats: list, units: list, centres=None) -> _Moments:
        """Frame counts and sums (or, given ``centres``, sums of squared deviations from
        them) of all frames, of each state's frames in a uniform segmentation of every
        utterance over its transcript's states, and of every utterance's quietest tenth
        (lowest feature 0, the front end's log energy)."""
        S, D = int(self.unit_offsets_[-1]), self.n_features_in_
        if not feats:
            return _Moments.zeros(S, D)
        X = np.concatenate(feats)
        state, quiet = [], []
        for f, u in zip(feats, units, strict=True):
            pool = np.concatenate([np.arange(self.unit_offsets_[w], self.unit_offsets_[w + 1])
                                   for w in u])
            state.append(pool[(np.arange(len(f)) * len(pool)) // len(f)])
            quiet.append(f[:, 0] <= np.quantile(f[:, 0], 0.1))
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
        h = GMMHMM(S, 1, covariance_type=self.covariance_type, params="mcw", init_params="",
                   var_floor=0.0)
        h.n_features_in_ = D
        h.startprob_, h.transmat_ = np.full(S, 1.0 / S), np.eye(S)
        h.weights_ = np.ones((S, 1))
        h.means_ = means[:, None]
        h.covars_ = (var[:, None] if self.covariance_type == "diag"
                     else np.stack([np.diag(v) for v in var])[:, None])
        h.var_floor_ = floor
        h._check()
        self.hmm_, self.stay_ = h, stay
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
            self.hmm_.split_mixtures(m)

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

    def _estep(self, group: _Group, shift: np.ndarray) -> _Stats:
        net = self._chain(group.units)
        sub_states, local = np.unique(net.states, return_inverse=True)
        sub = self._submodel(sub_states)
        loglik_sub, resp = sub._emission_estep_fn()(group.X)
        loglik = np.ascontiguousarray(loglik_sub[:, local])
        offsets = group.offsets
        loglik[offsets[1:] - 1] += net.log_final  # end by leaving an allowed last state
        n, L = loglik.shape
        src, dst, log_p = net.edges()
        post, xi = np.empty((n, L)), np.empty(len(src))
        seq_ll = np.empty(len(offsets) - 1)
        status = _hmm.forward_backward_edges(loglik, offsets, net.startprob, src, dst,
                                             np.exp(log_p), post, xi, seq_ll,
                                             np.empty((n, L)), np.empty(n), True)
        if status >= 0:
            raise ValueError(
                f"Training utterance {group.index[status]} has probability zero under the "
                "composite model of its transcript."
            )
        S = len(self.stay_)
        occupancy_l = post.sum(axis=0)
        loops = src == dst
        stays_l = np.zeros(L)
        stays_l[src[loops]] = xi[loops]
        occupancy = np.bincount(net.states, occupancy_l, S)
        stays = np.bincount(net.states, stays_l, S)
        to_sub = sp.csr_matrix((np.ones(L), (np.arange(L), local)), shape=(L, len(sub_states)))
        sub_stats = sub._emission_stats(group.X, np.asarray(post @ to_sub), shift, resp)
        M, D = self.hmm_.n_mix, self.n_features_in_
        gauss = (sub_states[:, None] * M + np.arange(M)).ravel()
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
        self.hmm_._mstep_emission(stats.emission)
        used = stats.occupancy > 1e-10
        self.stay_ = np.where(used, stats.stays / np.where(used, stats.occupancy, 1.0),
                              self.stay_)
        if stats.silence_slots > 0:
            # never certain either way: silence can always be taken or skipped
            self.silence_skip_ = float(np.clip(
                1.0 - stats.silence_entries / stats.silence_slots, 0.05, 0.95))

    # ------------------------------------------------------------------ isolated words
    def _check_fitted(self) -> None:
        if not hasattr(self, "hmm_"):
            raise ValueError("This Recognizer is not fitted yet: call fit or load first.")

    def _pool_loglik(self, X: np.ndarray) -> np.ndarray:
        """(n, n_pool) state log-likelihoods of frames X."""
        return self.hmm_._emission_estep_fn()(X)[0]

    def decision_function(self, utterances) -> np.ndarray:
        """Log-likelihood of every utterance under every word, (n_utt, n_words).

        Word ``w`` is scored with the network ``[silence] w [silence]`` (the utterance ends by
        leaving ``w`` or the final silence).
        """
        self._check_fitted()
        feats = [self._features(u) for u in utterances]
        if not feats:
            return np.empty((0, len(self.words_)))
        lengths = np.array([len(f) for f in feats])
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        nets = [self._chain([w]) for w in range(len(self.words_))]
        out = np.empty((len(feats), len(self.words_)))
        n_seq = 0
        for _, _, off in _make_chunks(offsets):
            ll_pool = self._pool_loglik(np.concatenate(feats[n_seq:n_seq + len(off) - 1]))
            for w, net in enumerate(nets):
                ll = np.ascontiguousarray(ll_pool[:, net.states])
                ll[off[1:] - 1] += net.log_final
                scores = np.empty(len(off) - 1)
                _hmm.forward_loglik(ll, off, net.startprob, net.transmat, scores,
                                    np.empty_like(ll))
                out[n_seq:n_seq + len(off) - 1, w] = scores
            n_seq += len(off) - 1
        return out

    def predict_proba(self, utterances) -> np.ndarray:
        """Posterior of each word given the utterance (equal priors), (n_utt, n_words)."""
        s = self.decision_function(utterances)
        with np.errstate(invalid="ignore"):
            s = np.exp(s - s.max(axis=1, keepdims=True))
        return s / s.sum(axis=1, keepdims=True)

    def predict(self, utterances) -> list:
        """Best word of each (isolated-word) utterance."""
        s = self.decision_function(utterances)
        return [self.words_[i] for i in s.argmax(axis=1)]

    # ------------------------------------------------------------------ connected words
    def _viterbi(self, X: np.ndarray, net: Network):
        ll = np.ascontiguousarray(self._pool_loglik(X)[:, net.states])
        ll[-1] += net.log_final
        T, L = ll.shape
        path = np.empty(T, dtype=np.intp)
        lp = np.empty(1)
        src, dst, log_p = net.edges()
        status = _hmm.viterbi_edges(ll, np.array([0, T], dtype=np.intp), net.log_start,
                                    src, dst, log_p, path, lp, np.empty((T, L)),
                                    np.empty((T, L), dtype=np.intp))
        if status >= 0:
            raise ValueError(f"No path through the network matches this utterance ({T} frames).")
        return path, float(lp[0])

    def _grammar(self, grammar) -> dict | None:
        if grammar is None:
            return None
        index = {w: i for i, w in enumerate(self.words_)}
        index["<s>"], index["</s>"] = -1, -2
        out = {}
        for key, followers in dict(grammar).items():
            if str(key) not in index or str(key) == "</s>":
                raise ValueError(f"Grammar key {key!r} is not a word of the model or '<s>'.")
            if isinstance(followers, str):
                raise ValueError(f"Grammar entry {key!r} must list words, got a string.")
            bad = [f for f in followers if str(f) not in index or str(f) == "<s>"]
            if bad:
                raise ValueError(f"Grammar entry {key!r} names unknown words {bad}.")
            out[index[str(key)]] = [index[str(f)] for f in followers]
        return out

    def recognize(self, utterance, grammar=None) -> list[Word]:
        """Connected words of one utterance, by Viterbi over a word loop.

        Parameters
        ----------
        utterance : path or (frames, features) array
        grammar : dict, optional
            Word-pair grammar: ``grammar[w]`` lists the words that may follow word ``w``
            (``'</s>'`` for the end of the utterance) and ``grammar['<s>']`` the words that
            may start it. Words without an entry may be followed by any word or the end.

        Returns
        -------
        list of Word
            Labels with start and end times in seconds (frame step of the front end); silence
            is not reported.
        """
        self._check_fitted()
        X = self._features(utterance)
        net, word_of_node = word_loop(
            range(len(self.words_)), self.unit_offsets_, self.stay_, self._silence_unit,
            self.silence_skip_, self.word_insertion_penalty, self._grammar(grammar),
        )
        path, _ = self._viterbi(X, net)
        return [w for w in self._segments(net, path, word_of_node) if w.label != SILENCE]

    def _segments(self, net: Network, path: np.ndarray, label_of_node) -> list[Word]:
        starts = net.entries(path)
        ends = np.append(starts[1:], len(path))
        step = self._config.winstep
        out = []
        for a, b in zip(starts, ends, strict=True):
            k = label_of_node[net.node[path[a]]]
            out.append(Word(SILENCE if k < 0 else self.words_[k], a * step, b * step))
        return out

    def align(self, utterance, transcript, return_states: bool = False):
        """Forced alignment of an utterance to its transcript (HVite ``-a``).

        Returns
        -------
        segments : list of Word
            The transcript's words and the silences taken (labelled ``SILENCE``), in order.
        states : ndarray of shape (n_frames,), only with ``return_states``
            State number within its model (word or silence) of every frame.
        """
        self._check_fitted()
        words = _transcript(transcript)
        index = {w: i for i, w in enumerate(self.words_)}
        unknown = [w for w in words if w not in index]
        if unknown:
            raise ValueError(f"Transcript words {unknown} are not in the model.")
        X = self._features(utterance)
        net = self._chain([index[w] for w in words])
        path, _ = self._viterbi(X, net)
        labels = [index[w] for w in words]
        if self.silence:  # nodes [sil, w1, sil, w2, ..., wn, sil]
            labels = [-1] + [x for i in labels for x in (i, -1)]
        segments = self._segments(net, path, np.asarray(labels))
        if not return_states:
            return segments
        unit_start = self.unit_offsets_[np.searchsorted(self.unit_offsets_, net.states,
                                                        side="right") - 1]
        return segments, (net.states - unit_start)[path]

    def score(self, utterances, transcripts, grammar=None) -> dict:
        """Word accuracy and error rate, aligned as HResults does.

        A transcript is one label (isolated words: ``predict``) or a sequence of labels
        (connected words: ``recognize``).

        Returns
        -------
        dict with 'accuracy' (1 - WER), 'wer', 'correct' (1 - (S + D) / N), 'substitutions',
        'deletions', 'insertions', 'n_words'.
        """
        utterances, transcripts = list(utterances), list(transcripts)
        if len(utterances) != len(transcripts):
            raise ValueError(f"{len(utterances)} utterances but {len(transcripts)} transcripts.")
        isolated = all(isinstance(t, (str, int, np.integer)) for t in transcripts)
        if isolated and grammar is None:
            hyps = [[h] for h in self.predict(utterances)]
            refs = [[str(t)] for t in transcripts]
        else:
            hyps = [[w.label for w in self.recognize(u, grammar)] for u in utterances]
            refs = [list(_transcript(t)) for t in transcripts]
        counts = np.zeros(4, dtype=np.int64)  # substitutions, deletions, insertions, words
        for r, h in zip(refs, hyps, strict=True):
            counts += word_errors(r, h)
        subs, dels, ins, n = (int(c) for c in counts)
        wer = (subs + dels + ins) / max(n, 1)
        return dict(accuracy=1 - wer, wer=wer, correct=1 - (subs + dels) / max(n, 1),
                    substitutions=subs, deletions=dels, insertions=ins, n_words=n)

    # ------------------------------------------------------------------ persistence
    _ARRAYS = ("weights_", "means_", "covars_", "var_floor_")

    def save(self, path) -> None:
        """Save to ``path`` (a .npz holding arrays and one JSON header; no pickle)."""
        self._check_fitted()
        header = dict(
            format=_FORMAT, version=_VERSION, words=self.words_,
            params=dict(n_states=self.n_states, n_mix=self.n_mix,
                        frames_per_state=self.frames_per_state,
                        covariance_type=self.covariance_type, n_iter=self.n_iter,
                        var_floor=self.var_floor, silence=self.silence,
                        silence_states=self.silence_states,
                        word_insertion_penalty=self.word_insertion_penalty),
            feature_config=self._config.to_dict(), n_features=self.n_features_in_,
            silence_skip=self.silence_skip_,
        )
        arrays = {"header": np.array(json.dumps(header)), "stay_": self.stay_,
                  "unit_offsets_": self.unit_offsets_}
        for name in self._ARRAYS:
            arrays[name] = getattr(self.hmm_, name)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path) -> Recognizer:
        """Load a model written by :meth:`save`; anything else raises ValueError."""
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            header = json.loads(str(data["header"]))
            if header.get("format") != _FORMAT or header.get("version") != _VERSION:
                raise ValueError("not an emx recognizer of this version")
            rec = cls(feature_config=FeatureConfig.from_dict(header["feature_config"]),
                      **header["params"])
            rec._check_hyperparameters()
            rec.words_ = [str(w) for w in header["words"]]
            rec.n_features_in_ = int(header["n_features"])
            rec.silence_skip_ = float(header["silence_skip"])
            rec.stay_ = np.asarray(data["stay_"], dtype=np.float64)
            rec.unit_offsets_ = np.asarray(data["unit_offsets_"], dtype=np.intp)
            rec.word_states_ = np.diff(rec.unit_offsets_)[:len(rec.words_)]
            S, M = data["weights_"].shape
            n_units = len(rec.words_) + bool(rec.silence)
            if (rec.unit_offsets_.shape != (n_units + 1,) or rec.unit_offsets_[0] != 0
                    or rec.unit_offsets_[-1] != S or np.any(np.diff(rec.unit_offsets_) < 1)
                    or rec.stay_.shape != (S,) or not np.all((rec.stay_ >= 0)
                                                             & (rec.stay_ <= 1))
                    or not 0 < rec.silence_skip_ < 1):
                raise ValueError("inconsistent topology")
            h = GMMHMM(S, M, covariance_type=rec.covariance_type, params="mcw",
                       init_params="", var_floor=0.0)
            h.n_features_in_ = rec.n_features_in_
            h.startprob_, h.transmat_ = np.full(S, 1.0 / S), np.eye(S)
            for name in cls._ARRAYS:
                setattr(h, name, np.asarray(data[name], dtype=np.float64))
            h._check()
            rec.hmm_ = h
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{os.fspath(path)!s} is not a valid emx recognizer file "
                             f"({exc}).") from exc
        return rec
