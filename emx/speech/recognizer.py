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

    def __iadd__(self, other: _Stats) -> _Stats:
        self.loglik += other.loglik
        self.occupancy += other.occupancy
        self.stays += other.stays
        self.silence_entries += other.silence_entries
        self.silence_slots += other.silence_slots
        self.emission += other.emission
        return self


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
        self._check_hyperparameters()
        utterances = list(utterances)
        transcripts = [_transcript(t) for t in transcripts]
        if len(utterances) != len(transcripts):
            raise ValueError(f"{len(utterances)} utterances but {len(transcripts)} transcripts.")
        if not utterances:
            raise ValueError("No training utterances.")
        for attr in ("n_features_in_", "words_"):
            self.__dict__.pop(attr, None)
        start = time.perf_counter()
        feats = [self._features(u) for u in utterances]
        dims = {f.shape[1] for f in feats}
        if len(dims) != 1:
            raise ValueError(f"Utterances have different feature dimensions: {sorted(dims)}.")
        D = dims.pop()
        self._log(f"features: {len(feats)} utterances in {time.perf_counter() - start:.1f} s")
        self.words_ = sorted({w for t in transcripts for w in t})
        unit_of = {w: i for i, w in enumerate(self.words_)}
        units = [tuple(unit_of[w] for w in t) for t in transcripts]
        self.word_states_ = self._word_states(feats, units)
        need = [int(self.word_states_[list(u)].sum()) for u in units]
        short = [i for i, f in enumerate(feats) if len(f) < need[i]]
        if short:
            # as HERest does: an utterance no path of its transcript fits is left out
            i = short[0]
            warnings.warn(
                f"Left out {len(short)} training utterance(s) shorter than the states of their "
                f"transcript (utterance {i}: {len(feats[i])} frames, {need[i]} states).",
                stacklevel=2,
            )
            keep = sorted(set(range(len(feats))) - set(short))
            feats, units = [feats[i] for i in keep], [units[i] for i in keep]
            missing = sorted(set(self.words_) - {self.words_[w] for u in units for w in u})
            if missing:
                raise ValueError(f"Every training utterance of the word(s) {missing} is shorter "
                                 "than the states of its transcript.")
        sizes = list(self.word_states_) + ([self.silence_states] if self.silence else [])
        self.unit_offsets_ = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        self.n_features_in_ = D
        self._initialise(feats, units)
        groups = self._groups(feats, units)
        n_frames = sum(len(f) for f in feats)
        shift = np.mean([f.mean(axis=0) for f in feats], axis=0)
        self.history_ = []
        m = 1
        while True:
            self._passes(groups, shift, n_frames, m)
            if m >= self.n_mix:
                break
            m = min(2 * m, self.n_mix)
            self.hmm_.split_mixtures(m)
        self._log(f"trained {len(self.words_)} words in {time.perf_counter() - start:.1f} s")
        return self

    def _word_states(self, feats: list, units: list) -> np.ndarray:
        """States of each word: ``n_states``, or with 'auto' the word's mean number of frames
        (an utterance's frames shared evenly by its words) over ``frames_per_state``."""
        W = len(self.words_)
        if self.n_states != "auto":
            return np.full(W, self.n_states, dtype=np.intp)
        frames, count = np.zeros(W), np.zeros(W)
        for f, u in zip(feats, units, strict=True):
            for w in u:
                frames[w] += len(f) / len(u)
                count[w] += 1
        return np.maximum(2, np.rint(frames / count / self.frames_per_state)).astype(np.intp)

    def _initialise(self, feats: list, units: list) -> None:
        """One Gaussian per state from a uniform segmentation; silence from quiet frames."""
        S, D = int(self.unit_offsets_[-1]), self.n_features_in_
        X = np.concatenate(feats)
        global_var = X.var(axis=0)
        state = []
        for f, u in zip(feats, units, strict=True):
            pool = np.concatenate([np.arange(self.unit_offsets_[w], self.unit_offsets_[w + 1])
                                   for w in u])
            state.append(pool[(np.arange(len(f)) * len(pool)) // len(f)])
        state = np.concatenate(state)
        onehot = sp.csr_matrix((np.ones(len(X)), (state, np.arange(len(X)))), shape=(S, len(X)))
        count = np.asarray(onehot.sum(axis=1)).ravel()
        used = count > 0
        # flat start (HCompV): a state without frames keeps the global mean and variance
        means = np.tile(X.mean(axis=0), (S, 1))
        var = np.tile(global_var, (S, 1))
        means[used] = (onehot @ X)[used] / count[used, None]
        var[used] = (onehot @ X**2)[used] / count[used, None] - means[used] ** 2
        # self-loops from the mean number of frames per state of each word
        stay = np.full(S, 0.8)
        for w in range(len(self.words_)):
            a, b = self.unit_offsets_[w], self.unit_offsets_[w + 1]
            per_state = count[a:b].mean()
            stay[a:b] = np.clip(1.0 - 1.0 / max(per_state, 1.0), 0.5, 0.95)
        if self.silence:
            # the quietest tenth of every utterance (column 0: log energy of the front end)
            quiet = np.concatenate([f[f[:, 0] <= np.quantile(f[:, 0], 0.1)] for f in feats])
            a, b = self.unit_offsets_[-2], self.unit_offsets_[-1]
            means[a:b] = quiet.mean(axis=0)
            var[a:b] = quiet.var(axis=0) if len(quiet) > 1 else global_var
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

    def _passes(self, groups: list, shift: np.ndarray, n_frames: int, n_mix: int) -> None:
        monitor = ConvergenceMonitor(tol=0.0, n_iter=self.n_iter)
        with ChunkRunner(check_n_jobs(self.n_jobs)) as runner:
            for it in range(self.n_iter):
                t0 = time.perf_counter()
                stats = runner.map_sum(lambda g: self._estep(g, shift), groups, group=1)
                monitor.report(stats.loglik)
                self._mstep(stats)
                self.history_.append(dict(n_mix=n_mix, loglik=stats.loglik,
                                          loglik_per_frame=stats.loglik / n_frames))
                self._log(f"  {n_mix} Gaussian(s) per state, pass {it + 1}/{self.n_iter}: "
                          f"log-likelihood/frame {stats.loglik / n_frames:.4f} "
                          f"({time.perf_counter() - t0:.2f} s)")

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
