"""Hidden Markov models: BaseHMM (transitions, decoding, sampling, EM) and GaussianHMM.

Parameter and attribute names follow hmmlearn, so code can switch by changing an import.
The E-step runs the compiled scaled forward-backward over chunks of whole sequences (one
kernel call per chunk, sequences looped in C) and returns additive sufficient statistics; the
M-step is closed form. Chunks run in threads with ``n_jobs``; the result does not depend on it.
"""

from __future__ import annotations

import copy
import numbers
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import gaussian as G
from ._core import _hmm, check_ok
from ._em import (
    ChunkRunner,
    ConvergenceMonitor,
    EMMixin,
    column_moments,
    fit_restarts,
    restart_seeds,
    user_stacklevel,
)
from ._labels import apply_mask, label_mask
from ._stats import AdditiveStats
from ._validation import broadcast_prior, check_n_jobs, check_positive_int, check_sequences
from .emissions import Emission, GaussianEmission, GMMEmission

__all__ = ["BaseHMM", "GaussianHMM", "GMMHMM", "HMMStats"]

# Target number of frames per E-step chunk (whole sequences are never split; the count is
# rounded up to a multiple of 4 for thread balance, see _make_chunks). The kernels run
# a chunk's sequences in lockstep blocks of up to 64 (one matrix product per frame for the
# whole block): 8192 frames give blocks of about 8 sequences of 1000 frames, where the block's
# rows still stream from memory well (measured: larger blocks of long sequences were slower,
# smaller ones leave the matrix products too thin), and keep the per-chunk (n, K) arrays at
# 1 MB per 16 states. Chunks are the unit of threading; their number does not depend on
# n_jobs, so neither do the results.
CHUNK_FRAMES = 8192


@dataclass
class HMMStats(AdditiveStats):
    """Additive sufficient statistics of an HMM E-step.

    Attributes
    ----------
    loglik : float
        Log-likelihood of the data the statistics were taken from.
    start : (K,) expected counts of each state at a sequence start.
    trans : (K, K) expected transition counts.
    emission : statistics of the emission model (e.g. :class:`emx.gaussian.GaussianStats`).
    """

    loglik: float
    start: np.ndarray
    trans: np.ndarray
    emission: Any


@dataclass
class _Data:
    """Validated observations, cut into chunks of whole sequences."""

    X: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    chunks: list  # (first frame, end frame, offsets relative to the first frame)
    shift: np.ndarray | None = None
    mask: np.ndarray | None = None  # (n_frames, K) allowed states (labels), None: all

    def __post_init__(self):
        # Index of each chunk's first sequence (for error messages).
        self.first_sequence = [0]
        for c in self.chunks[:-1]:
            self.first_sequence.append(self.first_sequence[-1] + len(c[2]) - 1)


def _make_chunks(offsets: np.ndarray, target: int | None = None) -> list:
    """Chunks ``(f0, f1, local offsets)`` of whole consecutive sequences.

    About ``ceil(n_frames / target)`` chunks, rounded up to a multiple of 4 so that 2 or 4
    threads get equal shares, cut at the sequence boundaries nearest to equal numbers of
    frames. The cut depends on the data alone (never on n_jobs), so results do not depend
    on the number of threads. A sequence longer than a share stays whole.
    """
    target = CHUNK_FRAMES if target is None else target
    offsets = np.asarray(offsets, dtype=np.intp)
    n_seq = len(offsets) - 1
    total = int(offsets[-1]) if n_seq > 0 else 0
    if n_seq <= 0:
        return []
    n = max(1, -(-total // max(int(target), 1)))
    if n > 1:
        n = -(-n // 4) * 4
    bounds = [0]
    for k in range(1, n):
        goal = k * total / n
        s = int(np.searchsorted(offsets, goal))  # offsets[s - 1] < goal <= offsets[s]
        if s > 0 and goal - offsets[s - 1] < offsets[s] - goal:
            s -= 1
        if bounds[-1] < s < n_seq:
            bounds.append(s)
    bounds.append(n_seq)
    chunks = []
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        f0, f1 = int(offsets[s]), int(offsets[e])
        chunks.append((f0, f1, np.ascontiguousarray(offsets[s : e + 1] - f0, dtype=np.intp)))
    return chunks


def _safe_log(p: np.ndarray) -> np.ndarray:
    """log with exact zeros mapped to -inf, without a warning."""
    out = np.full(p.shape, -np.inf)
    np.log(p, out=out, where=p > 0)
    return out


def _normalize_rows(counts: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Normalise the last axis; rows with no mass keep their previous values."""
    total = counts.sum(axis=-1, keepdims=True)
    ok = total > 0
    p = np.where(ok, counts / np.where(ok, total, 1.0), old)
    # A probability that underflowed to a subnormal (1e-310) would overflow the scaled
    # kernels' reciprocals: raise it to 1e-300 (the row sums change by far less than
    # round-off); exact zeros stay zero (structural).
    return np.where((p > 0) & (p < _MIN_PROB), _MIN_PROB, p)


_MIN_PROB = 1e-300

# Sparse transitions: when transmat_ has enough structural zeros (left-to-right, banded),
# the E-step, scoring and decoding run the edge-list kernels, O(n_edges) per frame instead
# of O(K^2), with the same results (the edges are listed by (dst, src), so every sum and
# every Viterbi tie is the dense kernels' term for term). Rule: edges when
# nnz(transmat_) <= min(SPARSE_MAX_DENSITY * K**2, SPARSE_MAX_PER_ROW * K) and
# K >= SPARSE_MIN_STATES (measured against the lockstep dense kernel with
# ``python bench/topology.py --sweep``: random sparse patterns, the edges win up to about 3
# non-zeros per row for K >= 16, up to a quarter of the matrix below; see the class
# docstring of BaseHMM).
SPARSE_MAX_DENSITY = 0.25
SPARSE_MAX_PER_ROW = 3
SPARSE_MIN_STATES = 4
# "auto" (the rules here), "dense", "sparse" (edge lists) or "banded" (diagonals in the
# forward-backward, the dense Viterbi): forces one path (for tests and benchmarks).
_TRANSITIONS = "auto"


def _use_edges(n_states: int, nnz: int) -> bool:
    """Whether the edge-list kernels are chosen for ``nnz`` non-zero transitions."""
    if _TRANSITIONS != "auto":
        return _TRANSITIONS == "sparse"
    return n_states >= SPARSE_MIN_STATES and nnz <= _max_edges(n_states)


def _max_edges(n_states: int) -> float:
    """The largest number of non-zero transitions the edge-list kernels are chosen for."""
    return min(SPARSE_MAX_DENSITY * n_states**2, SPARSE_MAX_PER_ROW * n_states)


# Banded transitions (left-to-right, banded: every non-zero of transmat_ on a few diagonals)
# run the lockstep forward-backward with its products taken diagonal by diagonal
# (``band_offsets``), per frame only on the states the prediction reaches, when
# n_diagonals <= SPARSE_MAX_DENSITY * K and K >= BAND_MIN_STATES; below BAND_MIN_STATES a
# banded matrix takes the dense forward-backward, which is faster there than both the banded
# and the edge-list kernels. Measured on left-to-right data (bench/topology.py's, 100 x 1000
# frames, D=13; forward-backward time over dense, medians of 15 interleaved repeats, at the
# initial / fitted parameters): banded K=12 1.19 / 1.32, K=16 1.04 / 1.15, K=20 0.94 / 0.93,
# K=24 0.80 / 0.95, K=32 0.69 / 0.83, K=64 0.43 / 0.51; edge lists K=12 1.13 / 1.09,
# K=16 0.99 / 1.06. Viterbi takes the edge list whenever _use_edges says so.
BAND_MIN_STATES = 20


def _diagonals(transmat: np.ndarray) -> np.ndarray:
    """The diagonals ``j - i`` holding transmat's non-zeros, increasing."""
    rows, cols = np.nonzero(transmat)
    return np.unique(cols - rows)


def _is_banded(diagonals: np.ndarray, K: int) -> bool:
    """Whether a K-state transmat whose non-zeros lie on ``diagonals`` (:func:`_diagonals`)
    counts as banded: at most ``SPARSE_MAX_DENSITY * K`` of them."""
    return len(diagonals) <= SPARSE_MAX_DENSITY * K


def _band_offsets(transmat: np.ndarray, diagonals: np.ndarray | None = None) -> np.ndarray | None:
    """The diagonals ``j - i`` holding transmat's non-zeros, when the banded forward-backward
    is chosen for them (None otherwise); ``diagonals``: :func:`_diagonals`, when known."""
    if _TRANSITIONS not in ("auto", "banded"):
        return None
    diagonals = _diagonals(transmat) if diagonals is None else diagonals
    K = len(transmat)
    if _TRANSITIONS == "auto" and (K < BAND_MIN_STATES or not _is_banded(diagonals, K)):
        return None
    return diagonals.astype(np.intp) if len(diagonals) else None


class _Transitions:
    """``startprob_`` and ``transmat_`` in the form the kernels take: the dense matrix, or
    (when :func:`_use_edges`) its non-zero entries as edges ``src -> dst`` of probability
    ``prob``, listed by (dst, src). Each method runs one kernel on a chunk and returns its
    status first; the outputs are those of the dense kernels in either form."""

    def __init__(self, startprob: np.ndarray, transmat: np.ndarray):
        self.startprob = np.ascontiguousarray(startprob, dtype=np.float64)
        self.transmat = np.ascontiguousarray(transmat, dtype=np.float64)
        K = len(self.startprob)
        self.sparse = _use_edges(K, int(np.count_nonzero(self.transmat)))
        diagonals = _diagonals(self.transmat)
        self.bands = _band_offsets(self.transmat, diagonals)
        # The forward-backward's kernel: banded (bands), edge lists, or dense, which is also
        # the automatic choice for a banded matrix below BAND_MIN_STATES (see there).
        self.fb_edges = self.sparse and self.bands is None and not (
            _TRANSITIONS == "auto" and _is_banded(diagonals, K))
        if self.sparse:
            dst, src = np.nonzero(self.transmat.T)  # row-major over (dst, src)
            self.src = src.astype(np.intp)
            self.dst = dst.astype(np.intp)
            self.prob = np.ascontiguousarray(self.transmat[self.src, self.dst])

    def forward_backward(self, loglik, offsets, want_xi=True, post=None, scratch=False):
        """``(status, seq_ll, post, xi, start)`` of a chunk (xi zeros when not want_xi).
        ``post``: an (n, K) array to write the posteriors into (a new one when None);
        ``scratch``: ``loglik`` may be overwritten (the dense kernel keeps its emission
        weights there instead of in a new array)."""
        n, K = loglik.shape
        post = np.empty((n, K)) if post is None else post
        seq_ll = np.empty(len(offsets) - 1)
        if not self.fb_edges:
            xi, start = np.empty((K, K)), np.empty(K)
            status = _hmm.forward_backward(loglik, offsets, self.startprob, self.transmat,
                                           post, xi, seq_ll, start, want_xi=want_xi,
                                           weights=loglik if scratch else None,
                                           band_offsets=self.bands)
            return status, seq_ll, post, xi, start
        xi_edges = np.empty(len(self.src))
        status = _hmm.forward_backward_edges(loglik, offsets, self.startprob, self.src,
                                             self.dst, self.prob, post, xi_edges, seq_ll,
                                             want_xi=want_xi)
        xi = np.zeros((K, K))
        xi[self.src, self.dst] = xi_edges  # one edge per (src, dst) pair
        start = np.add.reduce(post[offsets[:-1]], axis=0)  # row after row, as the kernel
        return status, seq_ll, post, xi, start

    def forward_loglik(self, loglik, offsets):
        """``(status, seq_ll)`` of a chunk by the forward pass only."""
        seq_ll = np.empty(len(offsets) - 1)
        if not self.fb_edges:
            status = _hmm.forward_loglik(loglik, offsets, self.startprob, self.transmat, seq_ll,
                                         band_offsets=self.bands)
        else:
            status = _hmm.forward_loglik_edges(loglik, offsets, self.startprob, self.src,
                                               self.dst, self.prob, seq_ll)
        return status, seq_ll

    def viterbi(self, loglik, offsets):
        """``(status, seq_logprob, path)`` of a chunk (ties to the lowest predecessor)."""
        if not hasattr(self, "_log"):
            log_sp = _safe_log(self.startprob)
            if self.sparse:
                self._log = log_sp, np.log(self.prob)
            else:
                self._log = log_sp, np.ascontiguousarray(_safe_log(self.transmat).T)
        log_sp, log_t = self._log
        path = np.empty(len(loglik), dtype=np.intp)
        seq_lp = np.empty(len(offsets) - 1)
        if not self.sparse:
            status = _hmm.viterbi(loglik, offsets, log_sp, log_t, path, seq_lp)
        else:
            status = _hmm.viterbi_edges(loglik, offsets, log_sp, self.src, self.dst, log_t,
                                        path, seq_lp)
        return status, seq_lp, path


class BaseHMM(EMMixin, BaseEstimator):
    """Common machinery of HMMs with any emission model.

    BaseHMM owns the transitions (``startprob_``, ``transmat_``), the forward-backward,
    decoding, sampling and the EM loop. The emission model is an object
    (:class:`emx.emissions.Emission`): a subclass declares the names of its fitted
    emission attributes in ``_emission_attrs`` and builds the object from its
    hyperparameters in ``_new_emission()``. BaseHMM copies the fitted attributes present on
    the estimator onto the object before using it (:meth:`_emission`) and back after
    initialisation and every M-step (:meth:`_store`).

    Sparse transitions: when ``transmat_`` has many structural zeros, the kernels touch
    only its non-zero entries, chosen automatically from ``transmat_``'s pattern:

    * banded (every non-zero on at most ``SPARSE_MAX_DENSITY * K`` diagonals ``j - i``,
      ``K >= BAND_MIN_STATES`` (20): left-to-right models, with or without skips): the
      forward-backward of the E-step, :meth:`score`, :meth:`score_sequences`,
      :meth:`score_samples` and :meth:`predict_proba` take the products diagonal by
      diagonal, per frame only on the states the prediction reaches, instead of O(K^2),
      in the same lockstep blocks as the dense case (with fewer states, the dense
      forward-backward, which measured faster there);
    * other sparse patterns (``nnz(transmat_) <= min(SPARSE_MAX_DENSITY * K**2,
      SPARSE_MAX_PER_ROW * K)``, i.e. at most a quarter of the matrix and about 3 non-zeros
      per row, and ``K >= SPARSE_MIN_STATES`` (4)) run edge-list kernels, O(n_edges) per
      frame, and so does :meth:`decode` (Viterbi) for banded ones.

    The constants are in :mod:`emx.hmm` (``python bench/topology.py`` times the paths). The
    paths agree to round-off (1e-12 relative; Viterbi paths exactly, ties to the lowest
    predecessor on all); the choice changes only the speed.
    """

    _emission_attrs: tuple = ()

    def __init__(
        self,
        n_components: int = 1,
        startprob_prior=1.0,
        transmat_prior=1.0,
        algorithm: str = "viterbi",
        random_state=None,
        n_iter: int = 10,
        tol: float = 1e-2,
        verbose: bool = False,
        params: str = "st",
        init_params: str = "st",
        implementation: str = "scaling",
        n_init: int = 1,
        n_jobs: int | None = None,
    ):
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.implementation = implementation
        self.n_init = n_init
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ checks
    @property
    def _fitted_attrs(self) -> tuple:
        return ("startprob_", "transmat_", *self._emission_attrs)

    def _check_hyperparameters(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.n_iter, "n_iter", minimum=0)  # 0: initialise only (hmmlearn)
        check_positive_int(self.n_init, "n_init")
        check_n_jobs(self.n_jobs)
        if self.algorithm not in ("viterbi", "map"):
            raise ValueError(f"algorithm must be 'viterbi' or 'map', got {self.algorithm!r}.")
        if self.implementation not in ("scaling", "log"):
            raise ValueError(
                f"implementation must be 'scaling' or 'log', got {self.implementation!r}."
            )
        if (isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real)
                or np.isnan(self.tol)):
            # -inf: never converged, every one of n_iter iterations runs (as in hmmlearn)
            raise ValueError(f"tol must be a real number (not NaN), got {self.tol!r}.")
        K = self.n_components
        broadcast_prior(self.startprob_prior, "startprob_prior", (K,))
        broadcast_prior(self.transmat_prior, "transmat_prior", (K, K))

    # ------------------------------------------------------------------ emission object
    def _new_emission(self) -> Emission:
        """The emission model, built from the hyperparameters only (subclasses)."""
        raise NotImplementedError

    def _emission(self) -> Emission:
        """The emission model with the estimator's current fitted emission attributes."""
        em = self._new_emission()
        for name in self._emission_attrs:
            if hasattr(self, name):
                setattr(em, name, getattr(self, name))
        return em

    def _store(self, em: Emission) -> None:
        """Copy the emission model's fitted attributes onto the estimator."""
        for name in self._emission_attrs:
            value = getattr(em, name, None)
            if value is not None:
                setattr(self, name, value)

    def _check(self) -> Emission:
        """Validate the current parameters (called before every use) and return the
        checked emission model. Any layout is accepted: the kernel calls take C-contiguous
        copies where needed."""
        K = self.n_components
        sp = self._probabilities("startprob_", (K,))
        if not np.isclose(sp.sum(), 1.0, rtol=0, atol=1e-6):
            raise ValueError(f"startprob_ must sum to 1 (got {sp.sum():.6g}).")
        tm = self._probabilities("transmat_", (K, K))
        rows = tm.sum(axis=1)
        if not np.allclose(rows, 1.0, rtol=0, atol=1e-6):
            bad = np.flatnonzero(~np.isclose(rows, 1.0, rtol=0, atol=1e-6))
            raise ValueError(
                f"transmat_ rows must sum to 1 (rows {bad.tolist()} sum to {rows[bad].tolist()})."
            )
        self.startprob_, self.transmat_ = sp, tm
        em = self._emission()
        try:
            n_features = em.check(getattr(self, "n_features_in_", None))
        except AttributeError as exc:  # an emission parameter that was never set
            if getattr(exc, "name", None) not in self._emission_attrs:
                raise
            raise NotFittedError(
                f"{type(self).__name__} has no {exc.name}: fit the model or set {exc.name}."
            ) from None
        if not hasattr(self, "n_features_in_"):
            self.n_features_in_ = n_features  # a model built by hand, not fitted
        self._store(em)
        return em

    def _probabilities(self, name: str, shape: tuple) -> np.ndarray:
        """``startprob_`` or ``transmat_`` as a float64 array of ``shape``, finite and
        non-negative, or an error naming it (NotFittedError, a ValueError, when unset)."""
        if not hasattr(self, name):
            raise NotFittedError(
                f"{type(self).__name__} has no {name}: fit the model or set {name}."
            )
        p = np.asarray(getattr(self, name), dtype=np.float64)
        if p.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {p.shape}.")
        if not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError(f"{name} must be finite and non-negative.")
        return p

    def _validate(self, X, lengths, *, reset: bool) -> _Data:
        X, lengths, offsets = check_sequences(self, X, lengths, reset=reset)
        X = self._new_emission().validate(X)
        return _Data(X, lengths, offsets, _make_chunks(offsets))

    # ------------------------------------------------------------------ kernels
    def _transitions(self) -> _Transitions:
        """The transitions in the kernels' form, dense or edges (:class:`_Transitions`)."""
        return _Transitions(self.startprob_, self.transmat_)

    def _forward_backward(self, loglik, offsets, want_xi=True, first=0, post=None,
                          scratch=False, transitions=None):
        """Per-sequence log-likelihoods, posteriors, xi summed and start counts of a chunk
        with emission log-likelihoods ``loglik`` (dense or edge kernels, the same results);
        ``post`` and ``scratch`` as in :meth:`_Transitions.forward_backward`;
        ``transitions``: :meth:`_transitions`, when the caller built it once for many chunks."""
        trans = self._transitions() if transitions is None else transitions
        status, *out = trans.forward_backward(loglik, offsets, want_xi, post, scratch)
        if status == _hmm.STATUS_NEEDS_LOGLIK:  # (only with scratch: loglik is gone)
            raise _NeedsLoglik
        self._raise_status(status, first)
        return tuple(out)

    @staticmethod
    def _raise_status(status: int, first: int = 0, labelled: bool = False) -> None:
        if status >= 0:
            if labelled:
                raise _ZeroProbability(
                    status + first,
                    f"Sequence {status + first} is impossible under the labels (probability "
                    "zero): no state path allowed by startprob_, transmat_ and the labels "
                    "can produce it.")
            raise _ZeroProbability(
                status + first,
                f"Sequence {status + first} has probability zero under the model: no state "
                "path allowed by startprob_ and transmat_ can produce it."
            )

    def _labelled_fb(self, loglik, offsets, mask, want_xi=True, first=0, post=None,
                     scratch=False, transitions=None):
        """:meth:`_forward_backward` of the emission log-likelihoods restricted to the
        states the labels allow (``mask``, None: all): exact, see :mod:`emx._labels`."""
        if mask is None:
            return self._forward_backward(loglik, offsets, want_xi, first, post, scratch,
                                          transitions)
        try:  # the masked copy is this call's own: always scratch
            try:
                return self._forward_backward(apply_mask(loglik, mask), offsets, want_xi,
                                              first, post, True, transitions)
            except _NeedsLoglik:  # the log-space path needs the copy intact
                return self._forward_backward(apply_mask(loglik, mask), offsets, want_xi,
                                              first, post, False, transitions)
        except _ZeroProbability as exc:
            self._raise_status(exc.sequence, 0, True)

    @staticmethod
    def _chunk_mask(data: _Data, i: int):
        """The labels' mask of chunk ``i`` (None without labels)."""
        if data.mask is None:
            return None
        f0, f1, _ = data.chunks[i]
        return data.mask[f0:f1]

    @staticmethod
    def _masked(ll, mask, far):
        """Log-likelihoods of a chunk restricted by the labels; a frame far from every state
        (relative log-likelihoods) whose nearest state is not allowed gets 0 in every allowed
        state."""
        if mask is None:
            return ll
        out = apply_mask(ll, mask)
        if far is not None:
            lost = far & ~(out.max(axis=1) > -np.inf)
            out[lost] = np.where(mask[lost], 0.0, -np.inf)
        return out

    def _map_chunks(self, data: _Data, func, runner=None):
        """``func(X_chunk, offsets_chunk, first_sequence)`` over the chunks, in order: a list,
        or with ``runner`` an iterator (so that a sum need not hold every chunk's result)."""
        def call(i):
            if data.mask is None:
                return func(*self._chunk(data, i))
            return func(*self._chunk(data, i), mask=self._chunk_mask(data, i))

        if runner is None:
            with ChunkRunner(check_n_jobs(self.n_jobs)) as r:
                return list(r.map(call, range(len(data.chunks))))
        return runner.map(call, range(len(data.chunks)))

    # ------------------------------------------------------------------ EM
    def em_estep(self, data: _Data, runner: ChunkRunner) -> HMMStats:
        em = self._emission()
        emission = em.estep_fn()

        # Each thread keeps one posterior array for all its chunks, and the kernel keeps its
        # emission weights in the chunk's log-likelihoods (a new array per chunk, see
        # Emission.estep_fn): fresh (n, K) arrays per chunk cost page faults that were about
        # a tenth of a 16-state iteration.
        local = threading.local()
        transitions = self._transitions()  # once per E-step, shared (read only) by all chunks

        def accumulate(i):
            X, offsets, first = self._chunk(data, i)
            loglik, context = emission(X)
            buf = getattr(local, "post", None)
            if buf is None or len(buf) < len(X):
                buf = local.post = np.empty((max(len(X), CHUNK_FRAMES), loglik.shape[1]))
            mask = self._chunk_mask(data, i)
            try:
                seq_ll, post, xi, start = self._labelled_fb(
                    loglik, offsets, mask, first=first, post=buf[: len(X)], scratch=True,
                    transitions=transitions)
            except _NeedsLoglik:  # the log-space path needs them: computed again, kept
                loglik, context = emission(X)
                seq_ll, post, xi, start = self._labelled_fb(
                    loglik, offsets, mask, first=first, post=buf[: len(X)],
                    transitions=transitions)
            return HMMStats(float(seq_ll.sum()), start, xi, em.stats(X, post, context))

        return runner.map_sum(accumulate, range(len(data.chunks)))

    @staticmethod
    def _chunk(data: _Data, i: int):
        """Frames, local offsets and index of the first sequence of chunk ``i``."""
        f0, f1, off = data.chunks[i]
        return data.X[f0:f1], off, data.first_sequence[i]

    def em_mstep(self, stats: HMMStats) -> None:
        # Dirichlet MAP; counts below zero (priors < 1) clip to zero; structural zeros stay
        # zero; a state never left keeps its previous row instead of becoming 0/0.
        if "s" in self.params:
            sp = np.maximum(np.asarray(self.startprob_prior, dtype=float) - 1 + stats.start, 0)
            sp = np.where(self.startprob_ == 0, 0.0, sp)
            self.startprob_ = _normalize_rows(sp, self.startprob_)
        if "t" in self.params:
            tm = np.maximum(np.asarray(self.transmat_prior, dtype=float) - 1 + stats.trans, 0)
            tm = np.where(self.transmat_ == 0, 0.0, tm)
            self.transmat_ = _normalize_rows(tm, self.transmat_)
        em = self._emission()
        em.mstep(stats.emission, self.params)
        self._store(em)

    def em_log_prior(self) -> float:
        lp = 0.0
        if "s" in self.params:
            a = np.broadcast_to(np.asarray(self.startprob_prior, float) - 1, self.startprob_.shape)
            nz = self.startprob_ > 0
            lp += float(np.sum(a[nz] * np.log(self.startprob_[nz])))
        if "t" in self.params:
            a = np.broadcast_to(np.asarray(self.transmat_prior, float) - 1, self.transmat_.shape)
            nz = self.transmat_ > 0
            lp += float(np.sum(a[nz] * np.log(self.transmat_[nz])))
        return lp + self._emission().log_prior(self.params)

    def _init_params(self, data: _Data, random_state) -> None:
        K = self.n_components
        rs = check_random_state(random_state)
        if "s" in self.init_params or not hasattr(self, "startprob_"):
            # hmmlearn's draw (same seed, same start); no exact zeros, which would be taken
            # for structural ones.
            self.startprob_ = _no_zeros(rs.dirichlet(np.full(K, 1.0 / K)))
        if "t" in self.init_params or not hasattr(self, "transmat_"):
            self.transmat_ = _no_zeros(rs.dirichlet(np.full(K, 1.0 / K), size=K))
        em = self._emission()
        em.init(data.X, self.init_params, random_state)
        _init_means_from_labels(em, data, self.init_params)
        self._store(em)
        self._check()

    def fit(self, X, lengths=None, labels=None):
        """Estimate the parameters by (MAP-)EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of 2-D arrays
            Observations; several sequences are concatenated (with ``lengths``) or given as a
            list, one array per sequence.
        lengths : array-like of int, optional
            Lengths of the sequences in ``X``; they must sum to ``n_samples``.
        labels : array-like, optional
            Known states (semi-supervised EM): an int per frame, ``-1`` where the state is
            unknown, or a boolean mask of shape (n_samples, n_components) of the states
            allowed at each frame. The forward-backward then sums over the state paths the
            labels allow only, and EM maximises the likelihood of the data and the labels,
            ``log P(X, labels)`` (recorded in ``monitor_.history``). Fully labelled data
            give the supervised (counting) estimates in one iteration; no labels, or ``-1``
            everywhere, give the unlabelled fit exactly. Initialisation ignores the labels.

        ``X`` may also be chunked data that do not fit in memory: a ``numpy.memmap`` (with
        ``lengths``; read in blocks of whole sequences of about
        ``emx._chunked.MEMMAP_CHUNK_ROWS`` frames), a list of ``(X, lengths)`` pairs of
        whole sequences, or a callable returning a fresh iterable of such pairs. They are
        read chunk by chunk at every iteration (memory bounded by the chunk size); the fit
        equals the in-memory fit of the concatenated data (to round-off) up to 2,000,000
        frames, above which the initialisation runs on a uniform sample of that many frames
        (``n_init=1``, no ``labels``).

        Returns
        -------
        self
        """
        from ._chunked import MEMMAP_CHUNK_ROWS, _memmap_chunks, fit_chunks, is_chunked

        if is_chunked(X, sequences=True):
            if labels is not None:
                raise ValueError("labels are not supported with chunked data.")
            if isinstance(X, np.memmap):
                X = _memmap_chunks(X, lengths, MEMMAP_CHUNK_ROWS)
            elif lengths is not None:
                raise ValueError("lengths goes inside the chunks: give (X, lengths) pairs.")
            self.__dict__.pop("_stepwise", None)
            fit_chunks(self, X)
            self.__dict__["_set_by_fit"] = {a: getattr(self, a) for a in self._fitted_attrs}
            return self
        self._check_hyperparameters()
        data = self._validate(X, lengths, reset=True)
        data.mask = label_mask(labels, len(data.X), self.n_components)
        self.__dict__.pop("_stepwise", None)  # a new fit: stepwise EM starts afresh
        if len(data.X) < self.n_components:
            raise ValueError(
                f"Cannot fit {self.n_components} states to {len(data.X)} samples: need at "
                "least as many samples as states."
            )
        self._warn_overwritten()
        make_monitor, given = self._monitor_maker()
        fit_restarts(
            self,
            data,
            seeds=restart_seeds(self.random_state, self.n_init),
            n_jobs=check_n_jobs(self.n_jobs),
            make_monitor=make_monitor,
        )
        self.__dict__["_monitor_given"] = given  # fit_restarts set monitor_, not the caller
        # What this fit set (a refit re-initialises it without a warning: the caller did not
        # set it).
        self.__dict__["_set_by_fit"] = {a: getattr(self, a) for a in self._fitted_attrs}
        self._warn_too_little_data(data.X.size)
        return self

    def partial_fit(self, X, lengths=None, labels=None, *, kappa=0.7, t0=2.0):
        """One step of stepwise (online) EM on a chunk of data.

        Stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009): the E-step statistics of
        the chunk, per frame, are folded into running statistics,
        ``s <- (1 - eta) s + eta * stats(chunk) / n_frames(chunk)`` with step size
        ``eta = (t + t0) ** -kappa`` at the ``t``-th call after the first (the first call
        takes ``eta = 1``), and the M-step runs on ``s`` times the number of frames seen so
        far (so priors weigh as in a batch fit of all the data seen). The first call on a
        model without parameters initialises them from its chunk, as :meth:`fit` would; a
        fitted model (or one whose parameters were set) continues from its parameters.
        Its first step also has ``eta = 1`` (``fit`` keeps no running statistics).

        With ``kappa=0`` every step is 1: ``partial_fit`` on the whole data is one batch EM
        iteration (the first call on a fresh model equals ``fit`` with ``n_iter=1``).

        Parameters
        ----------
        X, lengths, labels : as in :meth:`fit`
            One chunk of whole sequences (and its labels, optional).
        kappa : float in [0, 1], default 0.7
            Decay of the step size; (0.5, 1] satisfies the Robbins-Monro conditions.
        t0 : float >= 0, default 2.0
            Offset of the step-size schedule (larger: smaller, steadier early steps).

        Returns
        -------
        self
        """
        from ._stepwise import StepwiseState, check_schedule

        kappa, t0 = check_schedule(kappa, t0)
        state = self.__dict__.get("_stepwise")
        if not hasattr(self, "startprob_"):
            self._check_hyperparameters()
            data = self._validate(X, lengths, reset=True)
            if len(data.X) < self.n_components:
                raise ValueError(
                    f"Cannot fit {self.n_components} states to {len(data.X)} samples: need "
                    "at least as many samples as states."
                )
            self._init_params(data, self.random_state)
            state = None
        else:
            self._check_hyperparameters()
            data = self._prepare(X, lengths)
        data.mask = label_mask(labels, len(data.X), self.n_components)
        if state is None:
            state = StepwiseState()
        with ChunkRunner(check_n_jobs(self.n_jobs)) as runner:
            stats = self.em_estep(data, runner)
        kind = getattr(self, "covariance_type", "diag")
        summed, _ = state.step(stats, float(len(data.X)), kappa, t0, kind)
        self.em_mstep(summed)
        self.__dict__["_stepwise"] = state
        self.__dict__["_set_by_fit"] = {a: getattr(self, a) for a in self._fitted_attrs}
        return self

    # ------------------------------------------------------------------ hmmlearn's API
    # Letter of init_params / params for each fitted attribute (hmmlearn's).
    _PARAM_LETTERS = {
        "startprob_": "s", "transmat_": "t", "means_": "m", "covars_": "c", "weights_": "w",
        "emissionprob_": "e", "lambdas_": "l",
    }

    def _warn_overwritten(self) -> None:
        """hmmlearn's warning: an attribute the caller set is replaced by initialisation
        (not one a previous fit set and the caller left alone)."""
        by_fit = self.__dict__.get("_set_by_fit", {})
        for name in self._fitted_attrs:
            code = self._PARAM_LETTERS.get(name)
            if code is None or code not in self.init_params or not hasattr(self, name):
                continue
            value = getattr(self, name)
            if name in by_fit and (value is by_fit[name] or _same(value, by_fit[name])):
                continue
            warnings.warn(
                f"Even though the {name!r} attribute is set, it will be overwritten "
                f"during initialization because 'init_params' contains {code!r}.",
                UserWarning, stacklevel=user_stacklevel(),
            )

    def _warn_too_little_data(self, n_values: int) -> None:
        """hmmlearn's warning: fewer data points (values of X) than free parameters."""
        n_free = self._n_parameters()
        if n_values < n_free:
            warnings.warn(
                f"Fitting a model with {n_free} free scalar parameters to only {n_values} "
                "data points: expect a degenerate solution.",
                UserWarning, stacklevel=user_stacklevel(),
            )

    @property
    def monitor_(self) -> ConvergenceMonitor:
        """The convergence monitor. After :meth:`fit`, the one of the kept run (``history``,
        ``converged``); before, a new one with the model's ``tol``, ``n_iter`` and
        ``verbose``. As in hmmlearn, a monitor assigned to ``monitor_`` (e.g. a subclass of
        :class:`emx.ConvergenceMonitor` with its own ``converged``) is reset and used by every
        later fit, with its own ``tol`` and ``n_iter`` (a copy of it for each further
        restart when ``n_init > 1``)."""
        monitor = self.__dict__.get("_monitor")
        if monitor is None:
            return ConvergenceMonitor(self.tol, self.n_iter, self.verbose)
        return monitor

    @monitor_.setter
    def monitor_(self, monitor) -> None:
        self.__dict__["_monitor"] = monitor
        self.__dict__["_monitor_given"] = True

    def _monitor_maker(self):
        """``(make_monitor, given)``: the monitor factory of one fit (one call per restart),
        and whether it hands out the monitor the caller assigned to ``monitor_``."""
        given = self.__dict__.get("_monitor") if self.__dict__.get("_monitor_given") else None
        if given is None:
            return (lambda: ConvergenceMonitor(self.tol, self.n_iter, self.verbose)), False
        template = copy.deepcopy(given) if self.n_init > 1 else None
        handed = []

        def make():
            monitor = copy.deepcopy(template) if handed else given
            handed.append(monitor)
            _reset_monitor(monitor)
            return monitor

        return make, True

    def _n_parameters(self) -> int:
        """Number of free scalar parameters estimated (those whose letters are in
        ``params``): ``n_components - 1`` for 's', ``n_components * (n_components - 1)`` for
        't', plus the emission model's."""
        em = self._check()
        K = self.n_components
        n = (K - 1 if "s" in self.params else 0) + (K * (K - 1) if "t" in self.params else 0)
        return n + int(em.n_parameters(self.params))

    def aic(self, X, lengths=None) -> float:
        """Akaike information criterion of the model on ``X``: ``-2 log L + 2 p``, with ``p``
        the number of free parameters estimated (those in ``params``). Lower is better.

        Parameters
        ----------
        X, lengths : as in :meth:`fit`

        Returns
        -------
        float
        """
        return -2.0 * self.score(X, lengths) + 2.0 * self._n_parameters()

    def bic(self, X, lengths=None) -> float:
        """Bayesian information criterion of the model on ``X``: ``-2 log L + p log n``,
        with ``p`` the number of free parameters estimated (those in ``params``) and ``n``
        the number of frames. Lower is better.

        Parameters
        ----------
        X, lengths : as in :meth:`fit`

        Returns
        -------
        float
        """
        n_frames = len(self._prepare(X, lengths).X)
        return -2.0 * self.score(X, lengths) + self._n_parameters() * np.log(n_frames)

    def get_stationary_distribution(self) -> np.ndarray:
        """Stationary distribution of the state chain: ``pi`` with ``pi @ transmat_ == pi``
        and ``pi.sum() == 1``, the left eigenvector of ``transmat_`` for the eigenvalue 1
        (for a chain with several, e.g. two absorbing states, one of them).

        Returns
        -------
        ndarray of shape (n_components,)
        """
        K = self.n_components
        tm = self._probabilities("transmat_", (K, K))
        rows = tm.sum(axis=1)
        if not np.allclose(rows, 1.0, rtol=0, atol=1e-6):
            raise ValueError(f"transmat_ rows must sum to 1 (got {rows.tolist()}).")
        values, vectors = np.linalg.eig(tm.T)
        pi = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
        pi = np.maximum(pi / pi.sum(), 0.0)  # round-off below zero
        return pi / pi.sum()

    def _emission_loglik_fn(self):
        """Function of a chunk of frames returning its (n, K) state log-likelihoods and a
        mask of the frames far from every state (None when there are none).

        A frame far from every state (at 1e200, say) has log-likelihood below -1.8e308 in
        every state: all -inf, which the kernels would take for an impossible sequence. Such
        frames get relative log-likelihoods instead (0 for the nearest state by an exact
        comparison, -inf for the others), so posteriors and paths are defined; the
        log-likelihood of their sequence is -inf (its true value is not representable).
        """
        em = self._emission()
        emission = em.estep_fn()

        def loglik(X):
            ll = emission(X)[0]
            far = ~(ll.max(axis=1) > -np.inf)
            if not far.any():
                return ll, None
            ll[far] = em.far_loglik(X[far])
            return ll, far

        return loglik

    @staticmethod
    def _far_sequences(seq_ll: np.ndarray, off: np.ndarray, far) -> np.ndarray:
        """Set to -inf the log-likelihood of every sequence holding a far frame."""
        if far is not None:
            seqs = np.searchsorted(off, np.flatnonzero(far), side="right") - 1
            seq_ll = np.array(seq_ll, dtype=np.float64)
            seq_ll[seqs] = -np.inf
        return seq_ll

    # ------------------------------------------------------------------ EM protocol
    # (emx._em.EMModel: what emx.distributed drives; a partition is an (X, lengths) pair or
    # a list of 2-D sequences, whole sequences only.)
    def em_describe(self, part):
        """``(n_frames, n_features)`` of a partition, or what is wrong with it."""
        if isinstance(part, np.ndarray):
            return ("is an array: give an HMM partition as an (X, lengths) pair or a list of "
                    "2-D sequences")
        if isinstance(part, tuple):
            if len(part) != 2:
                return "must be an (X, lengths) pair or a list of 2-D sequences"
            X = np.asarray(part[0])
            if X.ndim != 2:
                return f"X has shape {X.shape}, not (n_rows, n_features)"
            return X.shape
        seqs = [np.asarray(x) for x in part]
        if not seqs:
            return (0, None)
        bad = [i for i, x in enumerate(seqs) if x.ndim != 2]
        if bad:
            return f"sequence {bad[0]} has shape {seqs[bad[0]].shape}, not (n_frames, n_features)"
        dims = [x.shape[1] for x in seqs]
        if len(set(dims)) > 1:
            other = next(i for i, d in enumerate(dims) if d != dims[0])
            return (f"sequence 0 has {dims[0]} features but sequence {other} has "
                    f"{dims[other]}")
        return (sum(len(x) for x in seqs), dims[0])

    def em_prepare(self, part, *, reset: bool = False) -> _Data:
        """A partition validated and cut into chunks (an array is one sequence)."""
        if isinstance(part, tuple):
            X, lengths = part
        elif isinstance(part, np.ndarray):
            X, lengths = part, None
        else:
            X, lengths = list(part), None
        return self._validate(X, lengths, reset=reset)

    def em_rows(self, data: _Data):
        return data.X, data.lengths

    def em_join(self, parts: list):
        return (np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]))

    def em_init(self, source, random_state) -> bool:
        """Initialise from all the frames of ``source`` (a uniform sample of them above its
        ``max_rows``); returns whether it saw all of them."""
        self._check_hyperparameters()
        K, n = self.n_components, source.n_rows
        if n < K:
            raise ValueError(f"Cannot fit {K} states to {n} samples: need at least as many "
                             "samples as states.")
        data, complete = self._init_without_rows(source), True
        if data is None:
            data, complete = source.rows()
        self._init_params(data, random_state)
        return complete

    def _init_without_rows(self, source):
        """A one-frame stand-in for the data when initialisation does not need them (every
        fitted attribute set and none of their letters in ``init_params``; attributes without
        a letter, e.g. GMMHMM's ``var_floor_``, always need the data), so that a chunked or
        distributed fit does not gather rows for nothing; None otherwise."""
        for name in self._fitted_attrs:
            code = self._PARAM_LETTERS.get(name)
            if code is None or code in self.init_params or not hasattr(self, name):
                return None
        if source.n_features is None:
            return None
        try:
            return self._validate(np.zeros((1, source.n_features)), None, reset=True)
        except ValueError:
            return None

    def em_monitor(self) -> ConvergenceMonitor:
        return self._monitor_maker()[0]()  # the caller's monitor_ if one was assigned

    def em_finish(self, monitor: ConvergenceMonitor) -> None:
        given = bool(self.__dict__.get("_monitor_given"))
        self.monitor_ = monitor
        self.__dict__["_monitor_given"] = given

    # ------------------------------------------------------------------ inference
    def _prepare(self, X, lengths, labels=None) -> _Data:
        check_is_fitted(self, "startprob_")
        self._check()
        data = self._validate(X, lengths, reset=False)
        data.mask = label_mask(labels, len(data.X), self.n_components)
        return data

    def score_samples(self, X, lengths=None, labels=None):
        """Log-likelihood of ``X`` and the state posteriors of every frame.

        With ``labels`` (as in :meth:`fit`), the log-likelihood of the data and the labels,
        ``log P(X, labels)``, and the posteriors given both.

        Returns
        -------
        log_prob : float
        posteriors : ndarray of shape (n_samples, n_components)
        """
        data = self._prepare(X, lengths, labels)
        loglik_fn = self._emission_loglik_fn()
        transitions = self._transitions()

        def run(Xc, off, first, mask=None):
            ll, far = loglik_fn(Xc)
            seq_ll, post = self._labelled_fb(self._masked(ll, mask, far), off, mask, False,
                                             first, transitions=transitions)[:2]
            return self._far_sequences(seq_ll, off, far), post

        parts = self._map_chunks(data, run)
        return float(sum(p[0].sum() for p in parts)), np.concatenate([p[1] for p in parts])

    def score(self, X, lengths=None, labels=None) -> float:
        """Log-likelihood of ``X`` under the model (summed over sequences); with
        ``labels`` (as in :meth:`fit`), of ``X`` and the labels."""
        return float(self.score_sequences(X, lengths, labels).sum())

    def score_sequences(self, X, lengths=None, labels=None) -> np.ndarray:
        """Log-likelihood of each sequence, shape (n_sequences,) (forward pass only); with
        ``labels`` (as in :meth:`fit`), of each sequence and its labels."""
        data = self._prepare(X, lengths, labels)
        loglik_fn = self._emission_loglik_fn()
        trans = self._transitions()

        def forward(Xc, off, first, mask=None):
            ll, far = loglik_fn(Xc)
            ll = self._masked(ll, mask, far)
            status, seq_ll = trans.forward_loglik(ll, off)
            self._raise_status(status, first, mask is not None)
            return self._far_sequences(seq_ll, off, far)

        return np.concatenate(self._map_chunks(data, forward))

    def predict_proba(self, X, lengths=None, labels=None) -> np.ndarray:
        """Posterior probability of each state at each frame, shape (n_samples, n_components)
        (given the labels too, when ``labels`` is passed as in :meth:`fit`)."""
        return self.score_samples(X, lengths, labels)[1]

    def decode(self, X, lengths=None, algorithm=None, labels=None):
        """Most likely state sequence.

        Parameters
        ----------
        X, lengths : as in :meth:`fit`
        algorithm : {'viterbi', 'map'}, optional
            'viterbi' finds the jointly most likely path; 'map' takes the most likely state
            of every frame (from the posteriors). Defaults to ``self.algorithm``.
        labels : array-like, optional
            Known states, as in :meth:`fit`: the path is the best one among those the labels
            allow (it never contradicts them).

        Returns
        -------
        log_prob : float
            ``log P(X, states)`` of the returned path (summed over sequences): the same
            quantity for both algorithms, so they can be compared (Viterbi's is the largest).
            It is ``-inf`` when a 'map' path uses a forbidden transition.
        states : ndarray of shape (n_samples,)
        """
        algorithm = self.algorithm if algorithm is None else algorithm
        if algorithm not in ("viterbi", "map"):
            raise ValueError(f"algorithm must be 'viterbi' or 'map', got {algorithm!r}.")
        data = self._prepare(X, lengths, labels)
        loglik_fn = self._emission_loglik_fn()
        log_sp, log_tm = _safe_log(self.startprob_), _safe_log(self.transmat_)
        trans = self._transitions()

        def run(Xc, off, first, mask=None):
            ll, far = loglik_fn(Xc)
            ll = self._masked(ll, mask, far)
            if algorithm == "viterbi":
                status, seq_lp, path = trans.viterbi(ll, off)
                self._raise_status(status, first, mask is not None)
                return self._far_sequences(seq_lp, off, far).sum(), path
            path = self._labelled_fb(ll, off, mask, False, first)[1].argmax(axis=1)
            lp = _path_logprob(path, off, ll, log_sp, log_tm)
            return (-np.inf if far is not None else lp), path

        parts = self._map_chunks(data, run)
        return float(sum(p[0] for p in parts)), np.concatenate([p[1] for p in parts])

    def predict(self, X, lengths=None, labels=None) -> np.ndarray:
        """Most likely state of each frame by :meth:`decode` with ``self.algorithm`` (among
        the paths ``labels`` allow, when given as in :meth:`fit`)."""
        return self.decode(X, lengths, labels=labels)[1]

    def sample(self, n_samples: int = 1, random_state=None, currstate: int | None = None):
        """Draw a sequence from the model.

        Parameters
        ----------
        n_samples : int
            Number of frames.
        random_state : int, RandomState or None
            Defaults to the model's ``random_state``.
        currstate : int, optional
            First state (otherwise drawn from ``startprob_``).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        states : ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "startprob_")
        em = self._check()
        n_samples = check_positive_int(n_samples, "n_samples")
        if currstate is not None and not 0 <= int(currstate) < self.n_components:
            raise ValueError(f"currstate must be in [0, {self.n_components}), got {currstate}.")
        rs = check_random_state(self.random_state if random_state is None else random_state)
        states = np.empty(n_samples, dtype=np.intp)
        check_ok(_hmm.sample_states(
            np.cumsum(self.startprob_), np.ascontiguousarray(np.cumsum(self.transmat_, axis=1)),
            rs.random_sample(n_samples), -1 if currstate is None else int(currstate), states,
        ))
        return em.sample(states, rs), states


def _init_means_from_labels(em, data: _Data, init_params: str) -> None:
    """With labels, the initial mean of every state that has labelled frames (frames with a
    single allowed state) is the mean of those frames (Gaussian emissions with one mean per
    state; ``'m'`` in ``init_params``), so that the states start where their labels are
    rather than in an arbitrary order. Nothing changes without labels."""
    if data.mask is None or "m" not in init_params:
        return
    means = getattr(em, "means_", None)
    if means is None or np.ndim(means) != 2:
        return
    single = data.mask.sum(axis=1) == 1
    if not single.any():
        return
    y = data.mask[single].argmax(axis=1)
    counts = np.bincount(y, minlength=len(means))
    sums = np.zeros_like(np.asarray(means, dtype=np.float64))
    np.add.at(sums, y, data.X[single])
    have = counts > 0
    means = np.array(means, dtype=np.float64)
    means[have] = sums[have] / counts[have, None]
    em.means_ = means


class _NeedsLoglik(Exception):
    """The forward-backward kernel needed the log-space path, but its emission weights had
    overwritten the log-likelihoods (``scratch``): call it again with them intact."""


class _ZeroProbability(ValueError):
    """A sequence with probability zero (the kernels' status), ``sequence`` its index."""

    def __init__(self, sequence: int, message: str):
        super().__init__(message)
        self.sequence = sequence


def _same(a, b) -> bool:
    """Whether two parameter values are equal arrays (False when they cannot be compared)."""
    try:
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.array_equal(a, b))
    except (TypeError, ValueError):
        return False


def _reset_monitor(monitor) -> None:
    """Empty a monitor's record before a fit (its ``_reset`` where it has one, as
    hmmlearn's monitors)."""
    reset = getattr(monitor, "_reset", None)
    if callable(reset):
        reset()
        return
    monitor.history = []
    if hasattr(monitor, "objective"):
        monitor.objective = []
    monitor.iter = 0


def _no_zeros(p: np.ndarray) -> np.ndarray:
    p = np.maximum(p, np.finfo(float).tiny)
    return p / p.sum(axis=-1, keepdims=True)


def _path_logprob(path, offsets, loglik, log_sp, log_tm) -> float:
    """log P(X, path) of concatenated sequences, vectorised over frames."""
    starts = offsets[:-1]
    inner = np.ones(len(path), dtype=bool)
    inner[starts] = False
    t = np.flatnonzero(inner)
    return float(
        log_sp[path[starts]].sum()
        + log_tm[path[t - 1], path[t]].sum()
        + loglik[np.arange(len(path)), path].sum()
    )


class _NFeatures:
    """hmmlearn's ``n_features`` attribute of the continuous HMMs: ``n_features_in_`` under
    hmmlearn's name (set by :meth:`fit`, or by hand before sampling from a model built by
    hand)."""

    @property
    def n_features(self) -> int:
        """Number of features (columns of X); an AttributeError before it is known."""
        try:
            return self.n_features_in_
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__} has no n_features yet: fit the model or set its means_."
            ) from None

    @n_features.setter
    def n_features(self, value) -> None:
        self.n_features_in_ = check_positive_int(value, "n_features")


class GaussianHMM(_NFeatures, BaseHMM):
    """Hidden Markov model with Gaussian emissions, trained by (MAP-)EM.

    A drop-in for ``hmmlearn.hmm.GaussianHMM`` (same parameters, attributes and meaning of
    the priors) on compiled kernels, with restarts (``n_init``) and threads (``n_jobs``).

    Parameters
    ----------
    n_components : int
        Number of states.
    covariance_type : {'diag', 'full', 'spherical', 'tied'}
        Form of the state covariances.
    min_covar : float
        Floor on the variances (every eigenvalue of a covariance after each M-step), also
        added to the diagonal of the initial covariance.
    startprob_prior, transmat_prior : float or array
        Dirichlet concentrations for ``startprob_`` and each row of ``transmat_``.
    means_prior, means_weight : float or array
        Mean and precision scale of the normal prior on ``means_``.
    covars_prior, covars_weight : float or array
        Parameters of the inverse-gamma ('diag', 'spherical') or inverse-Wishart ('full',
        'tied') prior on ``covars_``, with hmmlearn's conventions.
    algorithm : {'viterbi', 'map'}
        Decoder used by :meth:`decode` and :meth:`predict`.
    random_state : int, RandomState or None
        Seed for initialisation and sampling.
    n_iter : int
        Maximum number of EM iterations.
    tol : float
        Stop when the objective gains less than this.
    verbose : bool
        Print per-iteration progress to stderr.
    params, init_params : str
        Letters of the parameters updated by EM / initialised by :meth:`fit`: 's' startprob,
        't' transmat, 'm' means, 'c' covars.
    implementation : {'scaling', 'log'}
        Accepted for compatibility with hmmlearn; emx always uses its scaled kernel, which
        subtracts each frame's maximum and is as robust as a log-space one.
    n_init : int
        Number of initialisations; the fit with the best final objective is kept.
    n_jobs : int or None
        Threads for the E-step (None: 1, -1: all cores). Results do not depend on it.

    Attributes
    ----------
    startprob_ : ndarray of shape (n_components,)
    transmat_ : ndarray of shape (n_components, n_components)
    means_ : ndarray of shape (n_components, n_features)
    covars_ : ndarray
        (n_components,) 'spherical', (n_components, n_features) 'diag', (n_components,
        n_features, n_features) 'full', (n_features, n_features) 'tied': the same shape for
        reading and for setting ('spherical' also takes hmmlearn's (n_components, 1) and
        (n_components, 1, 1), read back as (n_components,)).
    monitor_ : ConvergenceMonitor
        ``history`` holds the log-likelihood per iteration, ``converged`` the outcome; one
        assigned before :meth:`fit` is used by it (hmmlearn's custom monitors).
    n_features_in_ : int
    n_features : int
        hmmlearn's name for ``n_features_in_`` (may be set by hand before :meth:`sample`).

    Examples
    --------
    Two regimes that alternate in runs of 50 frames; the fitted states find them:

    >>> import numpy as np
    >>> from emx import GaussianHMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (50, 2)), rng.normal(5, 1, (50, 2))] * 2)
    >>> model = GaussianHMM(n_components=2, n_iter=20, random_state=0).fit(X)
    >>> model.monitor_.converged
    True
    >>> bool(np.allclose(np.sort(model.means_[:, 0]), [0, 5], atol=0.5))
    True
    >>> states = model.predict(X)
    >>> bool((states[:50] == states[0]).all() and (states[50:100] != states[0]).all())
    True

    Several sequences are stacked in one array, with their lengths:

    >>> model = GaussianHMM(n_components=2, covariance_type="full", random_state=0)
    >>> model = model.fit(X, lengths=[100, 100])
    >>> logprob, path = model.decode(X, lengths=[100, 100])
    >>> path.shape
    (200,)
    """

    _emission_attrs = ("means_", "covars_")

    def __init__(
        self,
        n_components: int = 1,
        covariance_type: str = "diag",
        min_covar: float = 1e-3,
        startprob_prior=1.0,
        transmat_prior=1.0,
        means_prior=0,
        means_weight=0,
        covars_prior=1e-2,
        covars_weight=1,
        algorithm: str = "viterbi",
        random_state=None,
        n_iter: int = 10,
        tol: float = 1e-2,
        verbose: bool = False,
        params: str = "stmc",
        init_params: str = "stmc",
        implementation: str = "scaling",
        n_init: int = 1,
        n_jobs: int | None = None,
    ):
        super().__init__(
            n_components=n_components,
            startprob_prior=startprob_prior,
            transmat_prior=transmat_prior,
            algorithm=algorithm,
            random_state=random_state,
            n_iter=n_iter,
            tol=tol,
            verbose=verbose,
            params=params,
            init_params=init_params,
            implementation=implementation,
            n_init=n_init,
            n_jobs=n_jobs,
        )
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        G.check_covariance_type(self.covariance_type)
        if not (np.isfinite(self.min_covar) and self.min_covar >= 0):
            raise ValueError(f"min_covar must be a non-negative float, got {self.min_covar!r}.")

    def _new_emission(self) -> GaussianEmission:
        G.check_covariance_type(self.covariance_type)  # a ValueError wherever it is used
        return GaussianEmission(
            self.n_components, self.covariance_type, self.min_covar, self.means_prior,
            self.means_weight, self.covars_prior, self.covars_weight,
        )

    def _emission(self) -> GaussianEmission:
        em = super()._emission()
        covars = getattr(em, "covars_", None)
        if self.covariance_type == "spherical" and covars is not None:
            # hmmlearn takes spherical covars_ in any shape holding one variance per state,
            # (K, 1), (K, 1, 1), ...; they read back as (K,)
            covars, K = np.asarray(covars), self.n_components
            if covars.ndim > 1 and covars.shape[0] == K and covars.size == K:
                em.covars_ = covars.reshape(K)
        return em


class GMMHMM(_NFeatures, BaseHMM):
    """Hidden Markov model with Gaussian-mixture emissions, trained by (MAP-)EM.

    A drop-in for ``hmmlearn.hmm.GMMHMM`` (same parameters, attributes, default priors) with
    what speech training needs: one density evaluation per E-step (the per-mixture
    log-densities give both the state log-likelihoods and the within-state
    responsibilities), memory O(frames x states x mixtures) for every covariance type,
    variance floors (absolute ``min_covar`` and ``var_floor`` times the global variance of each
    feature, as HTK's HCompV ``-f``), a mixture-weight floor, components that receive no data
    keep their parameters (never NaN), repeatable initialisation, and mixture splitting
    (:meth:`split_mixtures`, as HTK's HHEd ``MU``).

    Parameters
    ----------
    n_components : int
        Number of states.
    n_mix : int
        Number of Gaussians per state.
    min_covar : float
        Absolute variance floor, also added to the diagonal of the initial covariance.
    startprob_prior, transmat_prior : float or array
        Dirichlet concentrations for ``startprob_`` and the rows of ``transmat_``.
    weights_prior : float or array of shape (n_components, n_mix)
        Dirichlet concentration for each state's mixture weights.
    means_prior, means_weight : float or array
        Mean and precision scale of the normal prior on the means.
    covars_prior, covars_weight : float, array or None
        Parameters of the prior on the covariances, with hmmlearn's conventions and defaults
        (None: the default of the covariance type, which for 'diag', 'full' and 'tied' is
        no prior at all).
    algorithm : {'viterbi', 'map'}
    covariance_type : {'diag', 'full', 'spherical', 'tied'}
        'tied' shares one full covariance between the Gaussians of each state.
    random_state, n_iter, tol, verbose, params, init_params, implementation, n_init, n_jobs
        As in :class:`GaussianHMM`; ``params``/``init_params`` also take 'w' (weights).
    var_floor : float
        Relative variance floor: variances (eigenvalues, in units of each feature's global
        variance) never fall below this fraction of the global variance of the training data.
    weight_floor : float
        Floor on the mixture weights (then renormalised).

    Attributes
    ----------
    startprob_, transmat_ : as in GaussianHMM
    weights_ : ndarray of shape (n_components, n_mix)
    means_ : ndarray of shape (n_components, n_mix, n_features)
    covars_ : ndarray
        (n_components, n_mix) 'spherical', (n_components, n_mix, n_features) 'diag',
        (n_components, n_mix, n_features, n_features) 'full', (n_components, n_features,
        n_features) 'tied'.
    var_floor_ : ndarray of shape (n_features,)
        The variance floor applied after each M-step.
    monitor_ : ConvergenceMonitor
    n_features_in_ : int
    n_features : int
        hmmlearn's name for ``n_features_in_`` (may be set by hand before :meth:`sample`).

    Examples
    --------
    >>> import numpy as np
    >>> from emx import GMMHMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (50, 2)), rng.normal(5, 1, (50, 2))] * 2)
    >>> model = GMMHMM(n_components=2, n_mix=2, n_iter=20, random_state=0)
    >>> model = model.fit(X, lengths=[100, 100])
    >>> model.weights_.shape, model.means_.shape
    ((2, 2), (2, 2, 2))
    >>> states = model.predict(X, lengths=[100, 100])
    >>> bool(states[10] != states[60])
    True

    Grow the mixtures as HTK's ``HHEd MU`` does, retraining after each split:

    >>> model = model.split_mixtures(4).set_params(init_params="").fit(X, lengths=[100, 100])
    >>> model.means_.shape
    (2, 4, 2)
    """

    _emission_attrs = ("weights_", "means_", "covars_", "var_floor_")

    def __init__(
        self,
        n_components: int = 1,
        n_mix: int = 1,
        min_covar: float = 1e-3,
        startprob_prior=1.0,
        transmat_prior=1.0,
        weights_prior=1.0,
        means_prior=0.0,
        means_weight=0.0,
        covars_prior=None,
        covars_weight=None,
        algorithm: str = "viterbi",
        covariance_type: str = "diag",
        random_state=None,
        n_iter: int = 10,
        tol: float = 1e-2,
        verbose: bool = False,
        params: str = "stmcw",
        init_params: str = "stmcw",
        implementation: str = "scaling",
        var_floor: float = 0.01,
        weight_floor: float = 1e-5,
        n_init: int = 1,
        n_jobs: int | None = None,
    ):
        super().__init__(
            n_components=n_components,
            startprob_prior=startprob_prior,
            transmat_prior=transmat_prior,
            algorithm=algorithm,
            random_state=random_state,
            n_iter=n_iter,
            tol=tol,
            verbose=verbose,
            params=params,
            init_params=init_params,
            implementation=implementation,
            n_init=n_init,
            n_jobs=n_jobs,
        )
        self.n_mix = n_mix
        self.min_covar = min_covar
        self.weights_prior = weights_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.covariance_type = covariance_type
        self.var_floor = var_floor
        self.weight_floor = weight_floor

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        self._new_emission().check_hyperparameters()

    def _new_emission(self) -> GMMEmission:
        G.check_covariance_type(self.covariance_type)  # a ValueError wherever it is used
        return GMMEmission(
            self.n_components, self.n_mix, self.covariance_type, self.min_covar,
            self.weights_prior, self.means_prior, self.means_weight, self.covars_prior,
            self.covars_weight, self.var_floor, self.weight_floor,
        )

    def _flat(self):
        """Means (K*M, D) and covariances of the K*M Gaussians, in a GaussianDensity type."""
        return self._emission().flat()

    def em_init(self, source, random_state) -> bool:
        complete = super().em_init(source, random_state)
        if not complete:  # the variance floors from all the data, not the sample
            var = column_moments(source, _frames)[1]
            self.var_floor_ = np.maximum(self.min_covar, self.var_floor * var)
        return complete

    def split_mixtures(self, n_mix: int) -> GMMHMM:
        """Grow every state to ``n_mix`` Gaussians by splitting, as HTK's HHEd ``MU``.

        Repeatedly, in every state, the Gaussian with the largest weight is replaced by two
        copies with half its weight each, their means moved by +-0.2 standard deviations
        along every feature. Retrain afterwards (``init_params=""``) between splits, e.g.::

            for m in (2, 4, 8):
                model.split_mixtures(m).fit(X, lengths)

        Returns
        -------
        self
        """
        check_is_fitted(self, "weights_")
        em = self._check()
        em.split(n_mix)
        self._store(em)
        self.n_mix = n_mix
        return self


def _frames(data: _Data) -> np.ndarray:
    return data.X
