"""Word recognition with one left-to-right GMM-HMM per word, trained the HTK way.

Training per word: a left-to-right model (each state loops or moves on), initialised by
uniform segmentation of every training utterance into the states (HInit's first pass), then
Baum-Welch, then mixture splitting 1 -> 2 -> 4 ... with re-estimation after each split
(HHEd ``MU`` + HERest). Isolated words are recognised by the best-scoring word model;
connected words by Viterbi over a word loop (every word may follow every word, with a word
insertion penalty), which returns words with their start and end times.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from .._core import _hmm
from ..hmm import GMMHMM
from .features import FeatureConfig, features

__all__ = ["Recognizer", "Word", "word_errors"]

# The recogniser's default front end: 39-d MFCC with per-utterance mean and variance
# normalisation and the filterbank from 100 Hz (on FSDD's four speakers, leave-one-speaker-out
# accuracy went from 67.6% with mean normalisation only to 76.0%).
DEFAULT_FEATURES = FeatureConfig(cvn=True, lowfreq=100.0)

_FORMAT = "emx-recognizer"
_VERSION = 1


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


def _left_to_right(n_states: int, stay: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    startprob = np.zeros(n_states)
    startprob[0] = 1.0
    transmat = np.zeros((n_states, n_states))
    for i in range(n_states - 1):
        transmat[i, i], transmat[i, i + 1] = stay, 1.0 - stay
    transmat[-1, -1] = 1.0
    return startprob, transmat


class Recognizer:
    """Isolated and connected word recognition with GMM-HMMs.

    Parameters
    ----------
    n_states : int
        States per word model (left to right).
    n_mix : int
        Gaussians per state at the end of training (grown by splitting, doubling each time).
    covariance_type : {'diag', 'full'}
    n_iter : int
        Baum-Welch iterations after initialisation and after each split.
    var_floor : float
        Variance floor as a fraction of the global variance of the training features.
    feature_config : FeatureConfig, optional
        Front end for utterances given as audio paths (saved with the model); default
        ``DEFAULT_FEATURES``.
    word_insertion_penalty : float
        Log-probability added for every word in connected recognition (negative: fewer words;
        the default suits 39-d MFCC).
    n_jobs : int or None
        Threads for each model's E-step.
    verbose : bool
        Log each training stage with the average log-likelihood per frame.
    """

    def __init__(
        self,
        n_states: int = 8,
        n_mix: int = 4,
        covariance_type: str = "diag",
        n_iter: int = 5,
        var_floor: float = 0.01,
        feature_config: FeatureConfig | None = None,
        word_insertion_penalty: float = -30.0,
        n_jobs: int | None = None,
        verbose: bool = False,
    ):
        self.n_states = n_states
        self.n_mix = n_mix
        self.covariance_type = covariance_type
        self.n_iter = n_iter
        self.var_floor = var_floor
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
        return X

    def _log(self, message: str) -> None:
        if self.verbose:
            print(message, file=sys.stderr)

    # ------------------------------------------------------------------ training
    def fit(self, utterances, transcripts) -> Recognizer:
        """Train one model per word from isolated-word utterances.

        Parameters
        ----------
        utterances : list of paths or (frames, features) arrays
        transcripts : list of labels (one word per utterance)

        Returns
        -------
        self
        """
        utterances, transcripts = list(utterances), [str(t) for t in transcripts]
        if len(utterances) != len(transcripts):
            raise ValueError(f"{len(utterances)} utterances but {len(transcripts)} transcripts.")
        if not utterances:
            raise ValueError("No training utterances.")
        start = time.perf_counter()
        feats = [self._features(u) for u in utterances]
        dims = {f.shape[1] for f in feats}
        if len(dims) != 1:
            raise ValueError(f"Utterances have different feature dimensions: {sorted(dims)}.")
        self.n_features_in_ = dims.pop()
        self._log(f"features: {len(feats)} utterances in {time.perf_counter() - start:.1f} s")
        all_frames = np.concatenate(feats)
        global_var = all_frames.var(axis=0)
        self.words_ = sorted(set(transcripts))
        self.models_ = {}
        for word in self.words_:
            seqs = [f for f, t in zip(feats, transcripts, strict=True) if t == word]
            self.models_[word] = self._train_word(word, seqs, global_var)
        self._log(f"trained {len(self.words_)} words in {time.perf_counter() - start:.1f} s")
        return self

    def _train_word(self, word: str, seqs: list, global_var: np.ndarray) -> GMMHMM:
        K = self.n_states
        short = [len(s) for s in seqs if len(s) < K]
        if short:
            raise ValueError(f"Word {word!r}: utterance(s) with {short} frames are shorter than "
                             f"the {K} states of its model.")
        X = np.concatenate(seqs)
        lengths = [len(s) for s in seqs]
        # Uniform segmentation: frame t of an utterance of length L goes to state K t // L.
        state = np.concatenate([(np.arange(n) * K) // n for n in lengths])
        model = GMMHMM(
            K, 1, covariance_type=self.covariance_type, n_iter=self.n_iter, tol=1e-4,
            params="tmcw", init_params="", var_floor=0.0, n_jobs=self.n_jobs,
        )
        model.startprob_, model.transmat_ = _left_to_right(K)
        floor = np.maximum(model.min_covar, self.var_floor * global_var)
        means = np.stack([X[state == k].mean(axis=0) for k in range(K)])
        var = np.stack([np.maximum(X[state == k].var(axis=0), floor) for k in range(K)])
        model.weights_ = np.ones((K, 1))
        model.means_ = means[:, None]
        model.covars_ = (var[:, None] if self.covariance_type == "diag"
                         else np.stack([np.diag(v) for v in var])[:, None])
        model.n_features_in_ = X.shape[1]
        model.var_floor_ = floor
        self._fit_stage(model, X, lengths, word, 1, floor)
        m = 1
        while m < self.n_mix:
            m = min(2 * m, self.n_mix)
            model.split_mixtures(m)
            self._fit_stage(model, X, lengths, word, m, floor)
        return model

    def _fit_stage(self, model, X, lengths, word, n_mix, floor) -> None:
        model.fit(X, lengths)
        model.var_floor_ = floor  # the floor relative to all training data, not this word's
        model.covars_ = model._floor(model.covars_)
        self._log(f"  word {word!r}: {n_mix} mix, {model.monitor_.iter} iterations, "
                  f"log-likelihood/frame {model.monitor_.history[-1] / len(X):.3f}")

    # ------------------------------------------------------------------ isolated words
    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise ValueError("This Recognizer is not fitted yet: call fit or load first.")

    def decision_function(self, utterances) -> np.ndarray:
        """Log-likelihood of every utterance under every word model, (n_utt, n_words)."""
        self._check_fitted()
        feats = [self._features(u) for u in utterances]
        X = np.concatenate(feats)
        lengths = [len(f) for f in feats]
        return np.column_stack([self.models_[w].score_sequences(X, lengths)
                                for w in self.words_])

    def predict_proba(self, utterances) -> np.ndarray:
        """Posterior of each word given the utterance (equal priors), (n_utt, n_words)."""
        s = self.decision_function(utterances)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        return s / s.sum(axis=1, keepdims=True)

    def predict(self, utterances) -> list:
        """Best word of each (isolated-word) utterance."""
        s = self.decision_function(utterances)
        return [self.words_[i] for i in s.argmax(axis=1)]

    # ------------------------------------------------------------------ connected words
    def _network(self):
        """Word-loop network: all word models' states side by side, each word's last state
        leaving (with its stay probability kept) to the first state of any word."""
        sizes = [self.models_[w].n_components for w in self.words_]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        S = offsets[-1]
        log_t = np.full((S, S), -np.inf)
        log_start = np.full(S, -np.inf)
        n_words = len(self.words_)
        enter = -np.log(n_words) + self.word_insertion_penalty
        for i, w in enumerate(self.words_):
            m = self.models_[w]
            a, b = offsets[i], offsets[i + 1]
            with np.errstate(divide="ignore"):
                block = np.log(m.transmat_)
            stay = 0.5  # the last state loops or leaves the word (its trained row is all "stay")
            block[-1, -1] = np.log(stay)
            log_t[a:b, a:b] = block
            log_start[a] = enter
            for j in range(n_words):
                log_t[b - 1, offsets[j]] = np.log(1 - stay) + enter
        return offsets, log_start, log_t

    def recognize(self, utterance) -> list[Word]:
        """Connected words of one utterance, by Viterbi over the word loop.

        Returns
        -------
        list of Word
            Labels with start and end times in seconds (frame step of the front end).
        """
        self._check_fitted()
        X = self._features(utterance)
        offsets, log_start, log_t = self._network()
        loglik = np.concatenate(
            [self.models_[w]._emission_loglik_fn()(X) for w in self.words_], axis=1
        )
        T, S = loglik.shape
        path = np.empty(T, dtype=np.intp)
        lp = np.empty(1)
        status = _hmm.viterbi(np.ascontiguousarray(loglik), np.array([0, T], dtype=np.intp),
                              log_start, np.ascontiguousarray(log_t.T), path, lp,
                              np.empty((T, S)), np.empty((T, S), dtype=np.intp))
        if status >= 0:
            raise ValueError("No path through the word network matches this utterance.")
        word_of = np.searchsorted(offsets, path, side="right") - 1
        new_word = np.ones(T, dtype=bool)
        new_word[1:] = (path[1:] == offsets[word_of[1:]]) & (path[:-1] != path[1:])
        starts = np.flatnonzero(new_word)
        ends = np.append(starts[1:], T)
        step = self._config.winstep
        return [Word(self.words_[word_of[a]], a * step, b * step)
                for a, b in zip(starts, ends, strict=True)]

    def score(self, utterances, transcripts) -> dict:
        """Word accuracy and error rate, aligned as HResults does.

        A transcript is one label (isolated words: ``predict``) or a sequence of labels
        (connected words: ``recognize``).

        Returns
        -------
        dict with 'accuracy' (1 - WER), 'wer', 'correct' (1 - (S + D) / N), 'substitutions',
        'deletions', 'insertions', 'n_words'.
        """
        utterances, transcripts = list(utterances), list(transcripts)
        isolated = all(isinstance(t, (str, int, np.integer)) for t in transcripts)
        if isolated:
            hyps = [[h] for h in self.predict(utterances)]
            refs = [[str(t)] for t in transcripts]
        else:
            hyps = [[w.label for w in self.recognize(u)] for u in utterances]
            refs = [[str(x) for x in t] for t in transcripts]
        counts = np.zeros(4, dtype=np.int64)  # substitutions, deletions, insertions, words
        for r, h in zip(refs, hyps, strict=True):
            counts += word_errors(r, h)
        subs, dels, ins, n = (int(c) for c in counts)
        wer = (subs + dels + ins) / max(n, 1)
        return dict(accuracy=1 - wer, wer=wer, correct=1 - (subs + dels) / max(n, 1),
                    substitutions=subs, deletions=dels, insertions=ins, n_words=n)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Save to ``path`` (a .npz holding arrays and one JSON header; no pickle)."""
        self._check_fitted()
        header = dict(
            format=_FORMAT, version=_VERSION, words=self.words_,
            params=dict(n_states=self.n_states, n_mix=self.n_mix,
                        covariance_type=self.covariance_type, n_iter=self.n_iter,
                        var_floor=self.var_floor,
                        word_insertion_penalty=self.word_insertion_penalty),
            feature_config=self._config.to_dict(), n_features=self.n_features_in_,
        )
        arrays = {"header": np.array(json.dumps(header))}
        for i, w in enumerate(self.words_):
            m = self.models_[w]
            for name in ("startprob_", "transmat_", "weights_", "means_", "covars_",
                         "var_floor_"):
                arrays[f"w{i}_{name}"] = getattr(m, name)
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
                raise ValueError("not an emx recognizer")
            rec = cls(feature_config=FeatureConfig.from_dict(header["feature_config"]),
                      **header["params"])
            rec.words_ = [str(w) for w in header["words"]]
            rec.n_features_in_ = int(header["n_features"])
            rec.models_ = {}
            for i, w in enumerate(rec.words_):
                K, M = data[f"w{i}_weights_"].shape
                m = GMMHMM(K, M, covariance_type=rec.covariance_type, init_params="")
                for name in ("startprob_", "transmat_", "weights_", "means_", "covars_",
                             "var_floor_"):
                    setattr(m, name, np.asarray(data[f"w{i}_{name}"], dtype=np.float64))
                m.n_features_in_ = rec.n_features_in_
                m._check()
                rec.models_[w] = m
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{os.fspath(path)!s} is not a valid emx recognizer file "
                             f"({exc}).") from exc
        return rec
