"""Hidden Markov models: BaseHMM (transitions, decoding, sampling, EM) and GaussianHMM.

Parameter and attribute names follow hmmlearn, so code can switch by changing an import.
The E-step runs the compiled scaled forward-backward over chunks of whole sequences (one
kernel call per chunk, sequences looped in C) and returns additive sufficient statistics; the
M-step is closed form. Chunks run in threads with ``n_jobs``; the result does not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from . import gaussian as G
from ._core import _gauss, _hmm
from ._em import ChunkRunner, ConvergenceMonitor, fit_restarts, restart_seeds
from ._validation import check_n_jobs, check_positive_int, check_sequences

__all__ = ["BaseHMM", "GaussianHMM", "GMMHMM", "HMMStats"]

# Target number of frames per E-step chunk (whole sequences are never split). Small enough
# that per-chunk work arrays stay near the size of one long sequence's lattice; large enough
# that many short sequences share one kernel call.
CHUNK_FRAMES = 2048


@dataclass
class HMMStats:
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

    def __add__(self, other: HMMStats) -> HMMStats:
        return HMMStats(
            self.loglik + other.loglik,
            self.start + other.start,
            self.trans + other.trans,
            self.emission + other.emission,
        )

    def __iadd__(self, other: HMMStats) -> HMMStats:
        self.loglik += other.loglik
        self.start += other.start
        self.trans += other.trans
        self.emission += other.emission
        return self


@dataclass
class _Data:
    """Validated observations, cut into chunks of whole sequences."""

    X: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    chunks: list  # (first frame, end frame, offsets relative to the first frame)
    shift: np.ndarray | None = None

    def __post_init__(self):
        # Index of each chunk's first sequence (for error messages).
        self.first_sequence = [0]
        for c in self.chunks[:-1]:
            self.first_sequence.append(self.first_sequence[-1] + len(c[2]) - 1)


def _make_chunks(offsets: np.ndarray, target: int | None = None) -> list:
    target = CHUNK_FRAMES if target is None else target
    chunks = []
    n_seq = len(offsets) - 1
    s = 0
    while s < n_seq:
        e = s + 1
        while e < n_seq and offsets[e + 1] - offsets[s] <= target:
            e += 1
        f0, f1 = int(offsets[s]), int(offsets[e])
        chunks.append((f0, f1, np.ascontiguousarray(offsets[s : e + 1] - f0, dtype=np.intp)))
        s = e
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


def _prior(value, name: str, shape: tuple) -> np.ndarray:
    """``value`` broadcast to ``shape`` (read-only view), or a ValueError naming ``name``."""
    arr = np.asarray(value, dtype=np.float64)
    try:
        out = np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(
            f"{name} must be a scalar or an array that broadcasts to shape {shape}, got "
            f"shape {arr.shape}."
        ) from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite.")
    return out


class BaseHMM(BaseEstimator):
    """Common machinery of HMMs with any emission model.

    Subclasses implement the emission model: ``_init_emission``, ``_check_emission``,
    ``_emission_estep_fn`` (a function of a chunk of frames returning (n, K) state
    log-likelihoods and a context its statistics need, computed once per E-step),
    ``_emission_stats``, ``_mstep_emission``, ``_log_prior_emission``,
    ``_sample_emissions`` and ``_emission_attrs``.
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
        check_positive_int(self.n_iter, "n_iter")
        check_positive_int(self.n_init, "n_init")
        check_n_jobs(self.n_jobs)
        if self.algorithm not in ("viterbi", "map"):
            raise ValueError(f"algorithm must be 'viterbi' or 'map', got {self.algorithm!r}.")
        if self.implementation not in ("scaling", "log"):
            raise ValueError(
                f"implementation must be 'scaling' or 'log', got {self.implementation!r}."
            )
        if not np.isfinite(self.tol):
            raise ValueError(f"tol must be finite, got {self.tol!r}.")
        K = self.n_components
        _prior(self.startprob_prior, "startprob_prior", (K,))
        _prior(self.transmat_prior, "transmat_prior", (K, K))

    def _check(self) -> None:
        """Validate the current parameters (called before every use). Any layout is
        accepted: the kernel calls take C-contiguous copies where needed."""
        K = self.n_components
        sp = np.asarray(self.startprob_, dtype=np.float64)
        tm = np.asarray(self.transmat_, dtype=np.float64)
        if sp.shape != (K,):
            raise ValueError(f"startprob_ must have shape ({K},), got {sp.shape}.")
        if tm.shape != (K, K):
            raise ValueError(f"transmat_ must have shape ({K}, {K}), got {tm.shape}.")
        for name, p in (("startprob_", sp), ("transmat_", tm)):
            if not np.all(np.isfinite(p)) or np.any(p < 0):
                raise ValueError(f"{name} must be finite and non-negative.")
        if not np.isclose(sp.sum(), 1.0, rtol=0, atol=1e-6):
            raise ValueError(f"startprob_ must sum to 1 (got {sp.sum():.6g}).")
        rows = tm.sum(axis=1)
        if not np.allclose(rows, 1.0, rtol=0, atol=1e-6):
            bad = np.flatnonzero(~np.isclose(rows, 1.0, rtol=0, atol=1e-6))
            raise ValueError(
                f"transmat_ rows must sum to 1 (rows {bad.tolist()} sum to {rows[bad].tolist()})."
            )
        self.startprob_, self.transmat_ = sp, tm
        self._check_emission()

    def _validate(self, X, lengths, *, reset: bool) -> _Data:
        X, lengths, offsets = check_sequences(self, X, lengths, reset=reset)
        return _Data(X, lengths, offsets, _make_chunks(offsets))

    # ------------------------------------------------------------------ kernels
    def _forward_backward(self, loglik, offsets, want_xi=True, first=0):
        """Per-sequence log-likelihoods, posteriors, xi summed and start counts of a chunk
        with emission log-likelihoods ``loglik``."""
        n, K = loglik.shape
        post = np.empty((n, K))
        xi = np.empty((K, K))
        start = np.empty(K)
        seq_ll = np.empty(len(offsets) - 1)
        status = _hmm.forward_backward(
            loglik, offsets, np.ascontiguousarray(self.startprob_),
            np.ascontiguousarray(self.transmat_), post, xi, seq_ll,
            np.empty((n, K)), np.empty(n), want_xi, start,
        )
        self._raise_status(status, first)
        return seq_ll, post, xi, start

    @staticmethod
    def _raise_status(status: int, first: int = 0) -> None:
        if status >= 0:
            raise ValueError(
                f"Sequence {status + first} has probability zero under the model: no state "
                "path allowed by startprob_ and transmat_ can produce it."
            )

    def _map_chunks(self, data: _Data, func, runner=None):
        """``func(X_chunk, offsets_chunk, first_sequence)`` over the chunks, in order: a list,
        or with ``runner`` an iterator (so that a sum need not hold every chunk's result)."""
        def call(i):
            return func(*self._chunk(data, i))

        if runner is None:
            with ChunkRunner(check_n_jobs(self.n_jobs)) as r:
                return list(r.map(call, range(len(data.chunks))))
        return runner.map(call, range(len(data.chunks)))

    # ------------------------------------------------------------------ EM
    def _estep(self, data: _Data, runner: ChunkRunner) -> HMMStats:
        emission = self._emission_estep_fn()
        # Moments about each emission component's current mean (one array for every chunk,
        # so the statistics add exactly): no cancellation for components far from the others.
        shift = self._emission_shift(data)

        def accumulate(i):
            X, offsets, first = self._chunk(data, i)
            loglik, context = emission(X)
            seq_ll, post, xi, start = self._forward_backward(loglik, offsets, first=first)
            return HMMStats(
                float(seq_ll.sum()), start, xi,
                self._emission_stats(X, post, shift, context),
            )

        return runner.map_sum(accumulate, range(len(data.chunks)))

    @staticmethod
    def _chunk(data: _Data, i: int):
        """Frames, local offsets and index of the first sequence of chunk ``i``."""
        f0, f1, off = data.chunks[i]
        return data.X[f0:f1], off, data.first_sequence[i]

    def _mstep(self, stats: HMMStats) -> None:
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
        self._mstep_emission(stats.emission)

    def _log_prior(self) -> float:
        lp = 0.0
        if "s" in self.params:
            a = np.broadcast_to(np.asarray(self.startprob_prior, float) - 1, self.startprob_.shape)
            nz = self.startprob_ > 0
            lp += float(np.sum(a[nz] * np.log(self.startprob_[nz])))
        if "t" in self.params:
            a = np.broadcast_to(np.asarray(self.transmat_prior, float) - 1, self.transmat_.shape)
            nz = self.transmat_ > 0
            lp += float(np.sum(a[nz] * np.log(self.transmat_[nz])))
        return lp + self._log_prior_emission()

    def _init_params(self, data: _Data, random_state) -> None:
        K = self.n_components
        rs = check_random_state(random_state)
        if "s" in self.init_params or not hasattr(self, "startprob_"):
            # hmmlearn's draw (same seed, same start); no exact zeros, which would be taken
            # for structural ones.
            self.startprob_ = _no_zeros(rs.dirichlet(np.full(K, 1.0 / K)))
        if "t" in self.init_params or not hasattr(self, "transmat_"):
            self.transmat_ = _no_zeros(rs.dirichlet(np.full(K, 1.0 / K), size=K))
        self._init_emission(data, random_state)
        self._check()

    def fit(self, X, lengths=None):
        """Estimate the parameters by (MAP-)EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of 2-D arrays
            Observations; several sequences are concatenated (with ``lengths``) or given as a
            list, one array per sequence.
        lengths : array-like of int, optional
            Lengths of the sequences in ``X``; they must sum to ``n_samples``.

        Returns
        -------
        self
        """
        self._check_hyperparameters()
        data = self._validate(X, lengths, reset=True)
        G.check_magnitude(data.X)
        if len(data.X) < self.n_components:
            raise ValueError(
                f"Cannot fit {self.n_components} states to {len(data.X)} samples: need at "
                "least as many samples as states."
            )
        data.shift = data.X.mean(axis=0)
        return fit_restarts(
            self,
            data,
            seeds=restart_seeds(self.random_state, self.n_init),
            n_jobs=check_n_jobs(self.n_jobs),
            make_monitor=lambda: ConvergenceMonitor(self.tol, self.n_iter, self.verbose),
        )

    def _emission_shift(self, data: _Data):
        """Point(s) the emission statistics of an E-step are taken about."""
        return data.shift

    def _emission_loglik_fn(self):
        """Function of a chunk of frames returning its (n, K) state log-likelihoods and a
        mask of the frames far from every state (None when there are none).

        A frame far from every state (at 1e200, say) has log-likelihood below -1.8e308 in
        every state: all -inf, which the kernels would take for an impossible sequence. Such
        frames get relative log-likelihoods instead (0 for the nearest state by an exact
        comparison, -inf for the others), so posteriors and paths are defined; the
        log-likelihood of their sequence is -inf (its true value is not representable).
        """
        emission = self._emission_estep_fn()

        def loglik(X):
            ll = emission(X)[0]
            far = ~(ll.max(axis=1) > -np.inf)
            if not far.any():
                return ll, None
            ll[far] = self._far_frame_loglik(X[far])
            return ll, far

        return loglik

    def _far_frame_loglik(self, X: np.ndarray) -> np.ndarray:
        """Relative state log-likelihoods of frames far from every state (see
        :meth:`_emission_loglik_fn`); the emission model provides it."""
        raise ValueError("Frames far from every state (log-likelihood below -1.8e308).")

    @staticmethod
    def _far_sequences(seq_ll: np.ndarray, off: np.ndarray, far) -> np.ndarray:
        """Set to -inf the log-likelihood of every sequence holding a far frame."""
        if far is not None:
            seqs = np.searchsorted(off, np.flatnonzero(far), side="right") - 1
            seq_ll = np.array(seq_ll, dtype=np.float64)
            seq_ll[seqs] = -np.inf
        return seq_ll

    # ------------------------------------------------------------------ inference
    def _prepare(self, X, lengths) -> _Data:
        check_is_fitted(self, "startprob_")
        self._check()
        return self._validate(X, lengths, reset=False)

    def score_samples(self, X, lengths=None):
        """Log-likelihood of ``X`` and the state posteriors of every frame.

        Returns
        -------
        log_prob : float
        posteriors : ndarray of shape (n_samples, n_components)
        """
        data = self._prepare(X, lengths)
        loglik_fn = self._emission_loglik_fn()
        def run(Xc, off, first):
            ll, far = loglik_fn(Xc)
            seq_ll, post = self._forward_backward(ll, off, False, first)[:2]
            return self._far_sequences(seq_ll, off, far), post

        parts = self._map_chunks(data, run)
        return float(sum(p[0].sum() for p in parts)), np.concatenate([p[1] for p in parts])

    def score(self, X, lengths=None) -> float:
        """Log-likelihood of ``X`` under the model (summed over sequences)."""
        return float(self.score_sequences(X, lengths).sum())

    def score_sequences(self, X, lengths=None) -> np.ndarray:
        """Log-likelihood of each sequence, shape (n_sequences,) (forward pass only)."""
        data = self._prepare(X, lengths)
        loglik_fn = self._emission_loglik_fn()

        def forward(Xc, off, first):
            ll, far = loglik_fn(Xc)
            seq_ll = np.empty(len(off) - 1)
            status = _hmm.forward_loglik(
                ll, off, np.ascontiguousarray(self.startprob_),
                np.ascontiguousarray(self.transmat_), seq_ll, np.empty_like(ll)
            )
            self._raise_status(status, first)
            return self._far_sequences(seq_ll, off, far)

        return np.concatenate(self._map_chunks(data, forward))

    def predict_proba(self, X, lengths=None) -> np.ndarray:
        """Posterior probability of each state at each frame, shape (n_samples, n_components)."""
        return self.score_samples(X, lengths)[1]

    def decode(self, X, lengths=None, algorithm=None):
        """Most likely state sequence.

        Parameters
        ----------
        X, lengths : as in :meth:`fit`
        algorithm : {'viterbi', 'map'}, optional
            'viterbi' finds the jointly most likely path; 'map' takes the most likely state
            of every frame (from the posteriors). Defaults to ``self.algorithm``.

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
        data = self._prepare(X, lengths)
        loglik_fn = self._emission_loglik_fn()
        log_sp, log_tm = _safe_log(self.startprob_), _safe_log(self.transmat_)
        log_tm_t = np.ascontiguousarray(log_tm.T)

        def run(Xc, off, first):
            ll, far = loglik_fn(Xc)
            n, K = ll.shape
            if algorithm == "viterbi":
                path = np.empty(n, dtype=np.intp)
                seq_lp = np.empty(len(off) - 1)
                status = _hmm.viterbi(
                    ll, off, log_sp, log_tm_t, path, seq_lp, np.empty((n, K)),
                    np.empty((n, K), dtype=np.intp),
                )
                self._raise_status(status, first)
                return self._far_sequences(seq_lp, off, far).sum(), path
            path = self._forward_backward(ll, off, False, first)[1].argmax(axis=1)
            lp = _path_logprob(path, off, ll, log_sp, log_tm)
            return (-np.inf if far is not None else lp), path

        parts = self._map_chunks(data, run)
        return float(sum(p[0] for p in parts)), np.concatenate([p[1] for p in parts])

    def predict(self, X, lengths=None) -> np.ndarray:
        """Most likely state of each frame by :meth:`decode` with ``self.algorithm``."""
        return self.decode(X, lengths)[1]

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
        self._check()
        n_samples = check_positive_int(n_samples, "n_samples")
        if currstate is not None and not 0 <= int(currstate) < self.n_components:
            raise ValueError(f"currstate must be in [0, {self.n_components}), got {currstate}.")
        rs = check_random_state(self.random_state if random_state is None else random_state)
        states = np.empty(n_samples, dtype=np.intp)
        _hmm.sample_states(
            np.cumsum(self.startprob_), np.ascontiguousarray(np.cumsum(self.transmat_, axis=1)),
            rs.random_sample(n_samples), -1 if currstate is None else int(currstate), states,
        )
        return self._sample_emissions(states, rs), states


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


class GaussianHMM(BaseHMM):
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
        reading and for setting.
    monitor_ : ConvergenceMonitor
        ``history`` holds the log-likelihood per iteration, ``converged`` the outcome.
    n_features_in_ : int
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

    def _check_emission(self) -> None:
        means = np.ascontiguousarray(self.means_, dtype=np.float64)
        if not hasattr(self, "n_features_in_") and means.ndim == 2:
            self.n_features_in_ = means.shape[1]  # a model built by hand, not fitted
        K, D = self.n_components, self.n_features_in_
        if means.shape != (K, D):
            raise ValueError(f"means_ must have shape ({K}, {D}), got {means.shape}.")
        if not np.all(np.isfinite(means)):
            raise ValueError("means_ must be finite (it holds NaN or infinity).")
        self.means_ = means
        self.covars_ = G.validate_covars(self.covars_, self.covariance_type, K, D)
        ct = self.covariance_type
        tails = {
            "means_prior": (D,), "means_weight": (1,),
            "covars_prior": (D,) if ct in ("diag", "spherical") else (D, D),
            "covars_weight": (1,) if ct in ("diag", "spherical") else (1, 1),
        }
        for name, tail in tails.items():
            value = getattr(self, name)
            if ct == "tied" and name.startswith("covars"):
                shape = (D, D) if name == "covars_prior" else np.shape(value)
                _prior(value, name, shape)
                continue
            try:  # the broadcasting rules of the M-step (a per-component vector allowed)
                G._as_k_by(value, K, *tail)
            except ValueError:
                raise ValueError(
                    f"{name} must be a scalar, one value per component or an array that "
                    f"broadcasts to shape {(K, *tail)}, got shape {np.shape(value)}."
                ) from None
            if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
                raise ValueError(f"{name} must be finite.")

    def _init_emission(self, data: _Data, random_state) -> None:
        X = data.X
        K, D = self.n_components, X.shape[1]
        if "m" in self.init_params or not hasattr(self, "means_"):
            km = KMeans(n_clusters=K, random_state=random_state, n_init=10)
            # One thread: scikit-learn's k-means sums in an order that depends on its OpenMP
            # thread count, and the fit must not depend on n_jobs (on a 2-core machine its
            # threaded run was also 4x slower).
            with threadpool_limits(limits=1):
                self.means_ = km.fit(X).cluster_centers_
        if "c" in self.init_params or not hasattr(self, "covars_"):
            cv = G.data_covariance(X, data.shift) + self.min_covar * np.eye(D)
            # positive definite even when clusters far apart put min_covar below round-off
            cv = G._floor_eigenvalues(cv, self.min_covar)
            self.covars_ = G.covars_from_template(cv, self.covariance_type, K)

    def _emission_estep_fn(self):
        density = G.GaussianDensity(self.means_, self.covars_, self.covariance_type)
        return lambda X: (density(X), None)

    def _emission_shift(self, data: _Data):
        return np.array(self.means_, dtype=np.float64, order="C")

    def _far_frame_loglik(self, X: np.ndarray) -> np.ndarray:
        K = self.n_components
        resp, log_norm = np.zeros((len(X), K)), np.full(len(X), -np.inf)
        G.resolve_far_rows(X, resp, log_norm, self.means_, self.covars_, self.covariance_type,
                           np.zeros(K))
        with np.errstate(divide="ignore"):
            return np.log(resp)

    def _emission_stats(self, X, post, shift, context):
        return G.GaussianStats.from_weights(X, post, shift, self.covariance_type)

    def _prior_kwargs(self) -> dict:
        return dict(
            means_prior=self.means_prior,
            means_weight=self.means_weight,
            covars_prior=self.covars_prior,
            covars_weight=self.covars_weight,
        )

    def _mstep_emission(self, stats: G.GaussianStats) -> None:
        if "m" in self.params:
            self.means_ = G.update_means(stats, self.means_, self.means_prior, self.means_weight)
        if "c" in self.params:
            old = self.covars_
            new = G.update_covars(
                stats, self.means_, self.covars_, self.covariance_type,
                min_covar=self.min_covar, **self._prior_kwargs(),
            )
            # Generalised EM: min_covar and the eigenvalue floor are not part of the
            # objective; where they would lower it (expected complete-data log-likelihood
            # plus log prior, with the new means), the previous covariances stay.
            if self._emission_objective(stats, new) < self._emission_objective(stats, old):
                new = old
            self.covars_ = new

    def _emission_objective(self, stats: G.GaussianStats, covars) -> float:
        ct = self.covariance_type
        try:
            q = G.expected_loglik(stats, self.means_, covars, ct).sum()
            prior = G.log_prior(self.means_, covars, ct, **self._prior_kwargs())
        except (np.linalg.LinAlgError, ValueError):
            return -np.inf
        total = float(q + prior)
        return total if np.isfinite(total) else -np.inf

    def _log_prior_emission(self) -> float:
        if "m" not in self.params and "c" not in self.params:
            return 0.0
        return G.log_prior(self.means_, self.covars_, self.covariance_type, **self._prior_kwargs())

    def _sample_emissions(self, states: np.ndarray, rs) -> np.ndarray:
        K, D = self.n_components, self.n_features_in_
        covs = G.full_covars(self.covars_, self.covariance_type, K, D)
        chol = np.linalg.cholesky(covs)
        X = rs.standard_normal((len(states), D))
        for k in range(K):
            idx = states == k
            X[idx] = self.means_[k] + X[idx] @ chol[k].T
        return X


_FLAT_TYPE = {"diag": "diag", "spherical": "spherical", "full": "full", "tied": "full"}


def _floor_weights(weights: np.ndarray, floor: float) -> np.ndarray:
    """Raise weights below ``floor`` to it and take the mass from the others, so that every
    row still sums to 1 (rows with nothing below the floor are unchanged)."""
    low = weights < floor
    if not low.any():
        return weights
    free = 1.0 - floor * low.sum(axis=1, keepdims=True)
    high = np.where(low, 0.0, weights).sum(axis=1, keepdims=True)
    return np.where(low, floor, weights * free / np.where(high > 0, high, 1.0))


class GMMHMM(BaseHMM):
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

    # ------------------------------------------------------------------ checks and priors
    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        check_positive_int(self.n_mix, "n_mix")
        G.check_covariance_type(self.covariance_type)
        for name in ("min_covar", "var_floor", "weight_floor"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a non-negative float, got {v!r}.")
        if self.weight_floor * self.n_mix >= 1:
            raise ValueError("weight_floor * n_mix must be below 1.")

    def _priors(self) -> dict:
        """Priors broadcast to their shapes, with hmmlearn's defaults for None."""
        K, M, D = self.n_components, self.n_mix, self.n_features_in_
        ct = self.covariance_type
        cp, cw = self.covars_prior, self.covars_weight
        default = {
            "full": (0.0, -(1.0 + D + 1.0)),
            "tied": (0.0, -(M + D + 1.0)),
            "diag": (-1.5, 0.0),
            "spherical": (-(M + 2.0) / 2.0, 0.0),
        }[ct]
        cp = default[0] if cp is None else cp
        cw = default[1] if cw is None else cw
        shapes = {
            "full": ((K, M, D, D), (K, M)),
            "tied": ((K, D, D), (K,)),
            "diag": ((K, M, D), (K, M, D)),
            "spherical": ((K, M), (K, M)),
        }[ct]
        return dict(
            weights_prior=_prior(self.weights_prior, "weights_prior", (K, M)),
            means_prior=_prior(self.means_prior, "means_prior", (K, M, D)),
            means_weight=_prior(self.means_weight, "means_weight", (K, M)),
            covars_prior=_prior(cp, "covars_prior", shapes[0]),
            covars_weight=_prior(cw, "covars_weight", shapes[1]),
        )

    def _check_emission(self) -> None:
        weights = np.ascontiguousarray(self.weights_, dtype=np.float64)
        means = np.ascontiguousarray(self.means_, dtype=np.float64)
        if not hasattr(self, "n_features_in_") and means.ndim == 3:
            self.n_features_in_ = means.shape[2]
        K, M, D = self.n_components, self.n_mix, self.n_features_in_
        if weights.shape != (K, M):
            raise ValueError(f"weights_ must have shape ({K}, {M}), got {weights.shape}.")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("weights_ must be finite and non-negative.")
        if not np.allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-6):
            raise ValueError(f"weights_ rows must sum to 1 (got {weights.sum(axis=1)}).")
        if means.shape != (K, M, D):
            raise ValueError(f"means_ must have shape ({K}, {M}, {D}), got {means.shape}.")
        if not np.all(np.isfinite(means)):
            raise ValueError("means_ must be finite (it holds NaN or infinity).")
        ct = self.covariance_type
        covars = np.ascontiguousarray(self.covars_, dtype=np.float64)
        if ct == "tied":
            G.validate_covars(covars, "full", K, D)
        else:
            shape = G.covars_shape(ct, K * M, D)
            if covars.shape[:2] != (K, M):
                raise ValueError(f"{ct!r} covars_ must have shape {(K, M) + shape[1:]}, "
                                 f"got {covars.shape}.")
            G.validate_covars(covars.reshape(shape), ct, K * M, D)
        self.weights_, self.means_, self.covars_ = weights, means, covars
        if not hasattr(self, "var_floor_"):
            self.var_floor_ = np.full(D, float(self.min_covar))

    def _flat(self):
        """Means (K*M, D) and covariances of the K*M Gaussians, in a GaussianDensity type."""
        K, M, D = self.n_components, self.n_mix, self.n_features_in_
        ct = self.covariance_type
        means = self.means_.reshape(K * M, D)
        if ct == "tied":
            covars = np.repeat(self.covars_, M, axis=0)
        else:
            covars = self.covars_.reshape(G.covars_shape(ct, K * M, D))
        return means, covars, _FLAT_TYPE[ct]

    # ------------------------------------------------------------------ E-step
    def _emission_estep_fn(self):
        means, covars, flat_type = self._flat()
        density = G.GaussianDensity(means, covars, flat_type)
        log_w = np.full(self.weights_.size, -np.inf)
        np.log(self.weights_.ravel(), out=log_w, where=self.weights_.ravel() > 0)
        K = self.n_components

        def emission(X):
            # One density evaluation: per-mixture log-densities become the within-state
            # responsibilities in place, and their per-state log-sum-exp the state
            # log-likelihoods.
            resp = density(X)
            loglik = np.empty((X.shape[0], K))
            _gauss.responsibilities(resp, log_w, loglik)
            return loglik, resp

        return emission

    def _emission_shift(self, data: _Data):
        K, M, D = self.means_.shape
        return np.array(self.means_.reshape(K * M, D), dtype=np.float64, order="C")

    def _far_frame_loglik(self, X: np.ndarray) -> np.ndarray:
        # The nearest Gaussian over all states' mixtures (weights included); its state wins.
        K, M, D = self.means_.shape
        ct = self.covariance_type
        covars = (np.repeat(self.covars_, M, axis=0) if ct == "tied"
                  else self.covars_.reshape((K * M,) + self.covars_.shape[2:]))
        resp, log_norm = np.zeros((len(X), K * M)), np.full(len(X), -np.inf)
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights_.reshape(K * M))
        G.resolve_far_rows(X, resp, log_norm, self.means_.reshape(K * M, D), covars,
                           "full" if ct == "tied" else ct, log_w)
        with np.errstate(divide="ignore"):
            return np.log(resp.reshape(len(X), K, M).sum(axis=2))

    def _emission_stats(self, X, post, shift, resp):
        n, K, M = len(X), self.n_components, self.n_mix
        w = resp.reshape(n, K, M)
        w *= post[:, :, None]  # state posterior x mixture responsibility
        kind = "full" if self.covariance_type == "tied" else self.covariance_type
        return G.GaussianStats.from_weights(X, resp, shift, kind)

    # ------------------------------------------------------------------ M-step
    def _mstep_emission(self, gs: G.GaussianStats) -> None:
        K, M, D = self.n_components, self.n_mix, self.n_features_in_
        pri = self._priors()
        n_km = gs.post.reshape(K, M)
        if "w" in self.params:
            a = pri["weights_prior"] - 1.0
            num = n_km + a
            den = num.sum(axis=1, keepdims=True)
            ok = den[:, 0] > 0
            weights = self.weights_.copy()
            weights[ok] = np.maximum(num[ok], 0) / den[ok]
            self.weights_ = _floor_weights(weights, self.weight_floor)
        flat_means = self.means_.reshape(K * M, D)
        lam = pri["means_weight"].reshape(K * M)
        mu0 = pri["means_prior"].reshape(K * M, D)
        if "m" in self.params:
            flat_means = G.update_means(gs, flat_means, mu0, lam)
            self.means_ = flat_means.reshape(K, M, D)
        if "c" in self.params:
            old = self.covars_
            new = self._floor(self._update_covars(gs, flat_means, lam, mu0, pri))
            # Generalised EM: the variance floors are not part of the objective; where the
            # floored covariances would lower it (expected complete-data log-likelihood plus
            # log prior, with the new weights and means), the previous ones stay.
            if self._emission_objective(gs, new) < self._emission_objective(gs, old):
                new = old
            self.covars_ = new

    def _emission_objective(self, gs: G.GaussianStats, covars) -> float:
        """Gaussian part of EM's objective for ``covars`` with the current weights and means:
        expected complete-data log-likelihood from ``gs`` plus the log prior."""
        K, M, D = self.n_components, self.n_mix, self.n_features_in_
        ct = self.covariance_type
        if ct == "tied":
            flat = np.repeat(covars, M, axis=0)
            kind = "full"
        else:
            flat = covars.reshape((K * M,) + covars.shape[2:])
            kind = ct
        saved = self.covars_
        try:
            self.covars_ = covars
            prior = self._log_prior_emission()
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            return -np.inf
        finally:
            self.covars_ = saved
        q = G.expected_loglik(gs, self.means_.reshape(K * M, D), flat, kind).sum()
        return float(q + prior) if np.isfinite(q + prior) else -np.inf

    def _update_covars(self, gs, flat_means, lam, mu0, pri):
        K, M, D = self.n_components, self.n_mix, self.n_features_in_
        ct = self.covariance_type
        kind = "full" if ct == "tied" else ct
        scatter = G._scatter(gs, flat_means, kind)
        d = flat_means - mu0
        n = gs.post
        old = self.covars_
        if ct == "diag":
            alpha = pri["covars_prior"].reshape(K * M, D)
            beta = pri["covars_weight"].reshape(K * M, D)
            c_n = G.weighted_square(lam[:, None], d) + 2 * beta + scatter
            c_d = n[:, None] + 1 + 2 * (alpha + 1)
            new = c_n / np.where(c_d > G._EMPTY, c_d, 1.0)
            keep = (c_d <= G._EMPTY) | (n[:, None] <= G._EMPTY)
            return np.where(keep, old.reshape(K * M, D), new).reshape(K, M, D)
        if ct == "spherical":
            alpha = pri["covars_prior"].reshape(K * M)
            beta = pri["covars_weight"].reshape(K * M)
            c_n = G.weighted_square(lam[:, None], d).sum(axis=1) + 2 * beta + scatter.sum(axis=1)
            c_d = D * (n + 1) + 2 * (alpha + 1)
            new = c_n / np.where(c_d > G._EMPTY, c_d, 1.0)
            keep = (c_d <= G._EMPTY) | (n <= G._EMPTY)
            return np.where(keep, old.reshape(K * M), new).reshape(K, M)
        wd = lam[:, None] * d  # exactly 0 where the weight is 0 (no 0 * inf)
        outer = np.einsum("kd,ke->kde", wd, d)
        if ct == "full":
            psi = pri["covars_prior"].reshape(K * M, D, D)
            nu = pri["covars_weight"].reshape(K * M)
            c_n = np.swapaxes(psi, 1, 2) + outer + scatter
            c_d = n + 1 + nu + D + 1
            keep = (c_d <= G._EMPTY) | (n <= G._EMPTY)
            new = c_n / np.where(keep, 1.0, c_d)[:, None, None]
            new[keep] = old.reshape(K * M, D, D)[keep]
            return new.reshape(K, M, D, D)
        psi, nu = pri["covars_prior"], pri["covars_weight"]
        n_k = n.reshape(K, M).sum(axis=1)
        c_n = (np.swapaxes(psi, 1, 2) + (outer + scatter).reshape(K, M, D, D).sum(axis=1))
        c_d = n_k + M + nu + D + 1
        keep = (c_d <= G._EMPTY) | (n_k <= G._EMPTY)
        new = c_n / np.where(keep, 1.0, c_d)[:, None, None]
        new[keep] = old[keep]
        return new

    def _floor(self, covars):
        """Variances (eigenvalues, in units of the floor) at least ``var_floor_``."""
        ct, fl = self.covariance_type, self.var_floor_
        if ct == "diag":
            return np.maximum(covars, fl)
        if ct == "spherical":
            return np.maximum(covars, fl.mean())
        shape = covars.shape
        D = shape[-1]
        s = 1.0 / np.sqrt(fl)
        scaled = covars.reshape(-1, D, D) * s[:, None] * s[None, :]
        floored = G._floor_eigenvalues(scaled, 1.0)
        return (floored / (s[:, None] * s[None, :])).reshape(shape)

    def _log_prior_emission(self) -> float:
        """Log prior density of weights, means and covariances matching the M-step above."""
        K, M, D = self.n_components, self.n_mix, self.n_features_in_
        pri = self._priors()
        lp = 0.0
        if "w" in self.params:
            a = pri["weights_prior"] - 1.0
            nz = self.weights_ > 0
            lp += float(np.sum(a[nz] * np.log(self.weights_[nz])))
        if "m" not in self.params and "c" not in self.params:
            return lp
        ct = self.covariance_type
        lam = pri["means_weight"].reshape(K * M)
        d = self.means_.reshape(K * M, D) - pri["means_prior"].reshape(K * M, D)
        if ct == "diag":
            var = self.covars_.reshape(K * M, D)
            alpha = pri["covars_prior"].reshape(K * M, D)
            beta = pri["covars_weight"].reshape(K * M, D)
            return lp + float(np.sum(
                -(alpha + 1.5) * np.log(var)
                - (beta + 0.5 * G.weighted_square(lam[:, None], d)) / var
            ))
        if ct == "spherical":
            var = self.covars_.reshape(K * M)
            c = D + 2 * (pri["covars_prior"].reshape(K * M) + 1)
            beta = pri["covars_weight"].reshape(K * M)
            return lp + float(np.sum(
                -0.5 * c * np.log(var)
                - (beta + 0.5 * G.weighted_square(lam[:, None], d).sum(axis=1)) / var
            ))
        if ct == "full":
            mats = self.covars_.reshape(K * M, D, D)
            c = pri["covars_weight"].reshape(K * M) + D + 2
            psi = np.swapaxes(pri["covars_prior"].reshape(K * M, D, D), 1, 2)
        else:
            mats = self.covars_
            c = pri["covars_weight"] + M + D + 1
            psi = np.swapaxes(pri["covars_prior"], 1, 2)
        inv = np.linalg.inv(mats)
        logdet = np.linalg.slogdet(mats)[1]
        inv_m = np.repeat(inv, M, axis=0) if ct == "tied" else inv  # one per Gaussian
        wd = lam[:, None] * d
        quad = np.einsum("kd,kde,ke->", wd, inv_m, np.where(wd != 0, d, 0.0))
        return lp + float(
            np.sum(-0.5 * c * logdet - 0.5 * np.einsum("kde,ked->k", psi, inv)) - 0.5 * quad
        )

    # ------------------------------------------------------------------ init, sampling
    def _init_emission(self, data: _Data, random_state) -> None:
        X = data.X
        K, M, D = self.n_components, self.n_mix, X.shape[1]
        rs = check_random_state(random_state)
        cv = G.data_covariance(X, data.shift) + self.min_covar * np.eye(D)
        # positive definite even when clusters far apart put min_covar below round-off
        cv = G._floor_eigenvalues(cv, self.min_covar)
        n = len(X)
        global_var = (cv.diagonal() - self.min_covar) * (n - 1) / max(n, 1)
        self.var_floor_ = np.maximum(self.min_covar, self.var_floor * global_var)
        if "m" in self.init_params or not hasattr(self, "means_"):
            with threadpool_limits(limits=1):  # repeatable for any n_jobs
                labels = KMeans(n_clusters=K, random_state=random_state, n_init=10).fit(X)
                centre = labels.cluster_centers_.mean(axis=0)
                means = []
                for k in range(K):
                    Xk = X[labels.labels_ == k]
                    if len(Xk) >= M:
                        km = KMeans(n_clusters=M, random_state=random_state, n_init=10)
                        means.append(km.fit(Xk).cluster_centers_)
                    else:  # too few frames: draw around the centre, from our own generator
                        if not (np.all(np.isfinite(cv)) and np.all(np.isfinite(centre))):
                            raise ValueError(
                                "The data covariance is not finite: rescale X (entries at "
                                f"most {G.MAX_ABS:.0e} in magnitude)."
                            )
                        means.append(rs.multivariate_normal(centre, cv, size=M))
            self.means_ = np.stack(means)
        if "w" in self.init_params or not hasattr(self, "weights_"):
            self.weights_ = np.full((K, M), 1.0 / M)
        if "c" in self.init_params or not hasattr(self, "covars_"):
            ct = self.covariance_type
            if ct == "tied":
                self.covars_ = np.tile(cv, (K, 1, 1))
            else:
                flat = G.covars_from_template(cv, ct, K * M)
                self.covars_ = flat.reshape((K, M) + flat.shape[1:])

    def _sample_emissions(self, states: np.ndarray, rs) -> np.ndarray:
        K, M, D = self.n_components, self.n_mix, self.n_features_in_
        means, covars, flat_type = self._flat()
        chol = np.linalg.cholesky(G.full_covars(covars, flat_type, K * M, D))
        comp = np.empty(len(states), dtype=np.intp)
        for k in range(K):
            idx = np.flatnonzero(states == k)
            comp[idx] = k * M + rs.choice(M, size=len(idx), p=self.weights_[k])
        X = rs.standard_normal((len(states), D))
        for c in np.unique(comp):
            idx = comp == c
            X[idx] = means[c] + X[idx] @ chol[c].T
        return X

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
        self._check()
        n_mix = check_positive_int(n_mix, "n_mix")
        if n_mix < self.n_mix:
            raise ValueError(f"n_mix must be at least the current {self.n_mix}, got {n_mix}.")
        K, D = self.n_components, self.n_features_in_
        ct = self.covariance_type
        weights, means, covars = self.weights_, self.means_, self.covars_
        while weights.shape[1] < n_mix:
            M = weights.shape[1]
            j = weights.argmax(axis=1)  # heaviest Gaussian of each state
            rows = np.arange(K)
            if ct == "tied":
                var = np.diagonal(covars, axis1=1, axis2=2)
            else:
                var = G.full_covars(covars.reshape(G.covars_shape(ct, K * M, D)), ct,
                                    K * M, D).reshape(K, M, D, D)[rows, j]
                var = np.diagonal(var, axis1=1, axis2=2)
            offset = 0.2 * np.sqrt(var)
            mu = means[rows, j]
            means = np.concatenate([means, (mu + offset)[:, None]], axis=1)
            means[rows, j] = mu - offset
            weights = weights.copy()
            weights[rows, j] *= 0.5
            weights = np.concatenate([weights, weights[rows, j][:, None]], axis=1)
            if ct != "tied":
                covars = np.concatenate([covars, covars[rows, j][:, None]], axis=1)
        self.weights_, self.means_, self.covars_ = weights, means, covars
        self.n_mix = n_mix
        return self
