"""Variational Bayes hidden Markov models with hmmlearn's names and priors (its ``vhmm``).

The E-step is the HMMs' compiled forward-backward run on *subnormalised* parameters: the
exponentiated expected log start and transition probabilities under their Dirichlet
posteriors (rows summing to less than 1) and the expected log emission probabilities in
place of the log emission probabilities. The scaled forward-backward kernel takes any
non-negative start vector and transition matrix (it normalises every frame by its own sum), so
its log-likelihood is exactly the log of the subnormalised total, hmmlearn's ``logprob``, and
its posteriors and transition counts are the variational posteriors of the states.

The monitored objective is the variational lower bound (ELBO)

    log Z(subnormalised parameters) - KL(q(parameters) || prior),

evaluated at each iteration's posterior before its update, as hmmlearn's ``monitor_.history``.
It never decreases.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln
from sklearn.utils import check_random_state

from ._core import _discrete, _hmm
from ._em import ChunkRunner
from .discrete import CategoricalEmission, CategoricalHMM
from .hmm import BaseHMM, HMMStats

__all__ = ["VariationalCategoricalHMM", "kl_dirichlet"]


def kl_dirichlet(q: np.ndarray, p: np.ndarray) -> float:
    """KL(Dir(q) || Dir(p)) summed over the rows of ``q`` and ``p`` (last axis: the
    concentrations of one Dirichlet)."""
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    qs, ps = q.sum(axis=-1), p.sum(axis=-1)
    kl = (gammaln(qs) - gammaln(ps) - np.sum(gammaln(q) - gammaln(p), axis=-1)
          + np.sum((q - p) * (digamma(q) - digamma(qs)[:, None]), axis=-1))
    return float(kl.sum())


def expected_log_dirichlet(alpha: np.ndarray) -> np.ndarray:
    """E[log p] under Dir(alpha), row by row (last axis)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    return digamma(alpha) - digamma(alpha.sum(axis=-1, keepdims=True))


def _prior_array(value, default: float, shape: tuple, name: str) -> np.ndarray:
    """A Dirichlet prior as an array of ``shape`` (None: ``default`` everywhere), positive and
    finite, or a ValueError naming it."""
    v = np.asarray(default if value is None else value, dtype=np.float64)
    try:
        out = np.array(np.broadcast_to(v, shape))
    except ValueError:
        raise ValueError(f"{name} must be a float or an array broadcastable to {shape}, got "
                         f"shape {v.shape}.") from None
    if not (np.all(np.isfinite(out)) and np.all(out > 0)):
        raise ValueError(f"{name} must be positive and finite.")
    return out


class _VariationalTransitions:
    """Dirichlet posteriors of the start and transition probabilities (hmmlearn's
    ``VariationalBaseHMM``); mixed into an emx HMM."""

    _PARAM_LETTERS = {
        "startprob_": "s", "transmat_": "t", "emissionprob_": "e", "means_": "m",
        "covars_": "c", "startprob_posterior_": "s", "transmat_posterior_": "t",
        "emissionprob_posterior_": "e",
    }

    def _init_transitions(self, data, rs) -> None:
        K = self.n_components
        n_seq, n_frames = len(data.lengths), int(np.sum(data.lengths))
        if "s" in self.init_params or not hasattr(self, "startprob_posterior_"):
            self.startprob_prior_ = _prior_array(self.startprob_prior, 1.0 / K, (K,),
                                                 "startprob_prior")
            self.startprob_posterior_ = rs.dirichlet(np.full(K, 1.0 / K)) * n_seq
        if "t" in self.init_params or not hasattr(self, "transmat_posterior_"):
            self.transmat_prior_ = _prior_array(self.transmat_prior, 1.0 / K, (K, K),
                                                "transmat_prior")
            self.transmat_posterior_ = rs.dirichlet(np.full(K, 1.0 / K), size=K) * (
                n_frames / K)

    def _subnormalised(self):
        """exp E[log startprob], exp E[log transmat] (C-contiguous)."""
        sp = np.exp(expected_log_dirichlet(self.startprob_posterior_))
        tm = np.exp(expected_log_dirichlet(self.transmat_posterior_))
        return np.ascontiguousarray(sp), np.ascontiguousarray(tm)

    def _forward_backward_sub(self, loglik, offsets, sp, tm, first):
        n, K = loglik.shape
        post, xi, start = np.empty((n, K)), np.empty((K, K)), np.empty(K)
        seq_ll = np.empty(len(offsets) - 1)
        status = _hmm.forward_backward(loglik, offsets, sp, tm, post, xi, seq_ll,
                                       np.empty((n, K)), np.empty(n), True, start)
        self._raise_status(status, first)
        return seq_ll, post, xi, start

    def _transitions_kl(self) -> float:
        return (kl_dirichlet(self.startprob_posterior_, self.startprob_prior_)
                + kl_dirichlet(self.transmat_posterior_, self.transmat_prior_))

    def _mstep_transitions(self, stats) -> None:
        if "s" in self.params:
            self.startprob_posterior_ = self.startprob_prior_ + stats.start
        if "t" in self.params:
            self.transmat_posterior_ = self.transmat_prior_ + stats.trans
        self._point_transitions()

    def _point_transitions(self) -> None:
        """The posterior means (hmmlearn's ``startprob_``, ``transmat_``)."""
        self.startprob_ = self.startprob_posterior_ / self.startprob_posterior_.sum()
        self.transmat_ = self.transmat_posterior_ / self.transmat_posterior_.sum(
            axis=1, keepdims=True)

    def em_log_prior(self) -> float:
        return 0.0  # the KL terms are in the monitored bound (em_summed)

    def em_summed(self, stats):
        """The summed statistics with their log-likelihood turned into the lower bound at the
        current posterior (what the monitor records, as hmmlearn's ``monitor_.history``)."""
        stats.loglik = float(stats.loglik) - self._posterior_kl()
        return stats


class VariationalCategoricalHMM(_VariationalTransitions, CategoricalHMM):
    """Hidden Markov model with categorical emissions trained by variational Bayes.

    hmmlearn's ``vhmm.VariationalCategoricalHMM``: the same parameters, priors, initial
    draws (same ``random_state``, same start), fitted posteriors and lower bound, on emx's
    compiled forward-backward (threads with ``n_jobs``, restarts with ``n_init``,
    :func:`emx.distributed.fit`).

    Parameters
    ----------
    n_components : int
    startprob_prior : float or array of shape (n_components,), optional
        Dirichlet prior of the start probabilities (default ``1 / n_components``).
    transmat_prior : float or array of shape (n_components, n_components), optional
        Dirichlet prior of each row of the transition matrix (default ``1 / n_components``).
    emissionprob_prior : float or array of shape (n_components, n_features), optional
        Dirichlet prior of each state's emission probabilities (default ``1 / n_features``).
    n_features : int, optional
        Number of symbols (default one more than the largest symbol of the training data).
    algorithm : {'viterbi', 'map'}
    random_state : int, RandomState or None
    n_iter : int
    tol : float
        Stop when the lower bound gains less than this.
    verbose : bool
    params, init_params : str
        's' start, 't' transitions, 'e' emissions.
    implementation : str
        Accepted for compatibility.
    n_init : int
    n_jobs : int or None

    Attributes
    ----------
    startprob_prior_, transmat_prior_, emissionprob_prior_ : ndarray
    startprob_posterior_, transmat_posterior_, emissionprob_posterior_ : ndarray
        Dirichlet concentrations of the variational posteriors.
    startprob_, transmat_, emissionprob_ : ndarray
        Posterior means (used by score, predict, decode, sample).
    monitor_ : ConvergenceMonitor
        ``history``: the lower bound at every iteration.

    Examples
    --------
    >>> import numpy as np
    >>> from emx import VariationalCategoricalHMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.choice(3, 50, p=[.8, .1, .1]),
    ...                     rng.choice(3, 50, p=[.1, .1, .8])]).reshape(-1, 1)
    >>> model = VariationalCategoricalHMM(n_components=2, random_state=0).fit(X)
    >>> bool(np.all(np.diff(model.monitor_.history) >= -1e-9))
    True
    """

    _emission_attrs = ("emissionprob_",)

    def __init__(
        self,
        n_components: int = 1,
        startprob_prior=None,
        transmat_prior=None,
        *,
        emissionprob_prior=None,
        n_features: int | None = None,
        algorithm: str = "viterbi",
        random_state=None,
        n_iter: int = 100,
        tol: float = 1e-6,
        verbose: bool = False,
        params: str = "ste",
        init_params: str = "ste",
        implementation: str = "log",
        n_init: int = 1,
        n_jobs: int | None = None,
    ):
        super().__init__(
            n_components=n_components, startprob_prior=startprob_prior,
            transmat_prior=transmat_prior, emissionprob_prior=emissionprob_prior,
            n_features=n_features, algorithm=algorithm, random_state=random_state,
            n_iter=n_iter, tol=tol, verbose=verbose, params=params, init_params=init_params,
            implementation=implementation, n_init=n_init, n_jobs=n_jobs,
        )

    @property
    def _fitted_attrs(self) -> tuple:
        return ("startprob_", "transmat_", "emissionprob_", "startprob_posterior_",
                "transmat_posterior_", "emissionprob_posterior_", "startprob_prior_",
                "transmat_prior_", "emissionprob_prior_")

    def _check_hyperparameters(self) -> None:
        K = self.n_components
        # BaseHMM's checks, with 1.0 standing for the priors (checked in _init_params).
        priors = (self.startprob_prior, self.transmat_prior)
        try:
            self.startprob_prior, self.transmat_prior = 1.0, 1.0
            BaseHMM._check_hyperparameters(self)
        finally:
            self.startprob_prior, self.transmat_prior = priors
        _prior_array(self.startprob_prior, 1.0, (K,), "startprob_prior")
        _prior_array(self.transmat_prior, 1.0, (K, K), "transmat_prior")
        self._new_emission().check_hyperparameters()

    def _new_emission(self) -> CategoricalEmission:
        # The point estimates are checked as a CategoricalHMM's (the prior is not used).
        return CategoricalEmission(self.n_components, self.n_features, 1.0)

    def _init_params(self, data, random_state) -> None:
        rs = check_random_state(random_state)
        self._init_transitions(data, rs)
        K = self.n_components
        M = self.n_features if self.n_features is not None else int(data.X.max()) + 1
        if "e" in self.init_params or not hasattr(self, "emissionprob_posterior_"):
            # hmmlearn draws the emissions from check_random_state(random_state) again: a
            # fresh generator for an int seed, the same one for a RandomState.
            rs_e = check_random_state(random_state)
            self.emissionprob_prior_ = _prior_array(self.emissionprob_prior, 1.0 / M, (K, M),
                                                    "emissionprob_prior")
            alpha = (np.full(M, float(self.emissionprob_prior))
                     if np.ndim(self.emissionprob_prior) == 0
                     and self.emissionprob_prior is not None else np.full(M, 1.0 / M))
            self.emissionprob_posterior_ = rs_e.dirichlet(alpha, size=K) * (len(data.X) / K)
        self._point_transitions()
        self._point_emissions()
        self._check()

    def _point_emissions(self) -> None:
        self.emissionprob_ = self.emissionprob_posterior_ / self.emissionprob_posterior_.sum(
            axis=1, keepdims=True)

    def _posterior_kl(self) -> float:
        return self._transitions_kl() + kl_dirichlet(self.emissionprob_posterior_,
                                                     self.emissionprob_prior_)

    def em_estep(self, data, runner: ChunkRunner) -> HMMStats:
        sp, tm = self._subnormalised()
        log_table = np.ascontiguousarray(expected_log_dirichlet(self.emissionprob_posterior_).T)
        K, M = self.emissionprob_posterior_.shape

        def accumulate(i):
            X, offsets, first = self._chunk(data, i)
            symbols = np.ascontiguousarray(X[:, 0], dtype=np.intp)
            if symbols.size and symbols.max() >= M:
                raise ValueError(f"X holds symbol {int(symbols.max())}, but the model has {M} "
                                 "symbols.")
            ll = np.empty((len(symbols), K))
            _discrete.categorical_loglik(symbols, log_table, ll)
            seq_ll, post, xi, start = self._forward_backward_sub(ll, offsets, sp, tm, first)
            counts = np.empty((K, M))
            _discrete.categorical_counts(symbols, post, counts)
            return HMMStats(float(seq_ll.sum()), start, xi, counts)

        return runner.map_sum(accumulate, range(len(data.chunks)))

    def em_mstep(self, stats: HMMStats) -> None:
        self._mstep_transitions(stats)
        if "e" in self.params:
            self.emissionprob_posterior_ = self.emissionprob_prior_ + stats.emission
        self._point_emissions()
