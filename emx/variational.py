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
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from . import gaussian as G
from ._core import _discrete, _hmm, check_ok
from ._em import ChunkRunner
from .discrete import CategoricalEmission, CategoricalHMM
from .emissions import GaussianEmission
from .hmm import BaseHMM, GaussianHMM, HMMStats

__all__ = ["VariationalCategoricalHMM", "VariationalGaussianHMM", "kl_dirichlet", "kl_wishart"]


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
        status = _hmm.forward_backward(loglik, offsets, sp, tm, post, xi, seq_ll, start,
                                       want_xi=True)
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
            check_ok(_discrete.categorical_loglik(symbols, log_table, ll))
            seq_ll, post, xi, start = self._forward_backward_sub(ll, offsets, sp, tm, first)
            counts = np.empty((K, M))
            check_ok(_discrete.categorical_counts(symbols, post, counts))
            return HMMStats(float(seq_ll.sum()), start, xi, counts)

        return runner.map_sum(accumulate, range(len(data.chunks)))

    def em_mstep(self, stats: HMMStats) -> None:
        self._mstep_transitions(stats)
        if "e" in self.params:
            self.emissionprob_posterior_ = self.emissionprob_prior_ + stats.emission
        self._point_emissions()


# ------------------------------------------------------------------------ Gaussian emissions
def _full(a: np.ndarray, ct: str, K: int, D: int) -> np.ndarray:
    """Scale matrices of any covariance type as (K, D, D) (tied: broadcast; diagonal ones
    as diagonal matrices)."""
    a = np.asarray(a, dtype=np.float64)
    if ct == "full":
        return a
    if ct == "tied":
        return np.broadcast_to(a, (K, D, D))
    diag = np.broadcast_to(a[:, None] if ct == "spherical" else a, (K, D))
    return diag[:, :, None] * np.eye(D)


def _logdet(a: np.ndarray) -> np.ndarray:
    sign, ld = np.linalg.slogdet(a)
    if np.any(sign <= 0):
        raise ValueError("A scale matrix of the Wishart posterior is not positive definite.")
    return ld


def kl_wishart(dof_q, scale_q, dof_p, scale_p) -> float:
    """KL(q || p) between Wishart distributions given by degrees of freedom and *inverse*
    scale matrices (hmmlearn's ``scale``: E[precision] = dof * inv(scale)), summed over a
    leading axis of matrices."""
    scale_q, scale_p = np.asarray(scale_q, float), np.asarray(scale_p, float)
    if scale_q.ndim == 2:
        scale_q, scale_p = scale_q[None], scale_p[None]
    dof_q = np.broadcast_to(np.asarray(dof_q, float), scale_q.shape[:1])
    dof_p = np.broadcast_to(np.asarray(dof_p, float), scale_q.shape[:1])
    D = scale_q.shape[-1]
    i = np.arange(D)[:, None]
    ld_q, ld_p = _logdet(scale_q / 2), _logdet(scale_p / 2)
    e_q = -ld_q + digamma((dof_q - i) / 2).sum(axis=0)
    log_z = lambda dof, ld: -dof / 2 * ld + gammaln((dof - i) / 2).sum(axis=0)  # noqa: E731
    tr = np.einsum("kij,kji->k", scale_p, np.linalg.inv(scale_q))
    kl = ((dof_q - dof_p) / 2 * e_q - D * dof_q / 2 + dof_q / 2 * tr
          + log_z(dof_p, ld_p) - log_z(dof_q, ld_q))
    return float(kl.sum())


class VariationalGaussianHMM(_VariationalTransitions, GaussianHMM):
    """Hidden Markov model with Gaussian emissions trained by variational Bayes.

    hmmlearn's ``vhmm.VariationalGaussianHMM``: Normal-Wishart posteriors of the states'
    means and precisions (``means_posterior_``, ``beta_posterior_``, ``dof_posterior_``,
    ``scale_posterior_``; 'diag' and 'spherical' as Wisharts with diagonal scale matrices, as
    hmmlearn), Dirichlet posteriors of the start and transition probabilities, the same
    priors, initialisation (same ``random_state``, same start) and updates, on emx's
    compiled Gaussian log-densities and forward-backward. The expected emission
    log-likelihood is the log-density of ``N(means_posterior_, scale_posterior_ /
    dof_posterior_)`` plus ``(E[log |Lambda|] - log |dof W|) / 2 - n_features / (2 beta)``
    per state.

    The monitored lower bound counts the Gaussian normalising constant
    ``-n_features / 2 * log(2 pi)`` per frame, which hmmlearn leaves out: hmmlearn's
    ``monitor_.history`` is this one plus ``n_samples * n_features / 2 * log(2 pi)``.

    Parameters
    ----------
    n_components : int
    covariance_type : {'full', 'diag', 'spherical', 'tied'}
    startprob_prior, transmat_prior : float or array, optional
        Dirichlet priors (default ``1 / n_components``).
    means_prior : array of shape (n_components, n_features), optional
        Prior means (default the data mean).
    beta_prior : array of shape (n_components,), optional
        Prior precision scale of the means (default 1).
    dof_prior : array of shape (n_components,) (a float for 'tied'), optional
        Wishart degrees of freedom (default n_features).
    scale_prior : array, optional
        Wishart inverse scale (default 1e-3 times the identity), shaped by covariance type:
        (K, D, D) 'full', (D, D) 'tied', (K, D) 'diag', (K,) 'spherical'.
    algorithm, random_state, n_iter, tol, verbose, params, init_params, implementation,
    n_init, n_jobs
        As :class:`VariationalCategoricalHMM` ('m' means, 'c' covariances).

    Attributes
    ----------
    means_prior_, beta_prior_, dof_prior_, scale_prior_ : ndarray
    means_posterior_, beta_posterior_, dof_posterior_, scale_posterior_ : ndarray
    startprob_posterior_, transmat_posterior_ : ndarray
    startprob_, transmat_, means_, covars_ : ndarray
        Posterior point estimates (``covars_ = scale_posterior_ / dof_posterior_``, in the
        covariance type's shape as :class:`emx.GaussianHMM`).
    monitor_ : ConvergenceMonitor

    Examples
    --------
    >>> import numpy as np
    >>> from emx import VariationalGaussianHMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(5, 1, (100, 2))])
    >>> model = VariationalGaussianHMM(n_components=2, random_state=0).fit(X)
    >>> bool(np.all(np.diff(model.monitor_.history) >= -1e-9))
    True
    """

    _emission_attrs = ("means_", "covars_")
    _POSTERIOR = ("means_posterior_", "beta_posterior_", "dof_posterior_", "scale_posterior_",
                  "means_prior_", "beta_prior_", "dof_prior_", "scale_prior_")

    def __init__(
        self,
        n_components: int = 1,
        covariance_type: str = "full",
        startprob_prior=None,
        transmat_prior=None,
        means_prior=None,
        beta_prior=None,
        dof_prior=None,
        scale_prior=None,
        algorithm: str = "viterbi",
        random_state=None,
        n_iter: int = 100,
        tol: float = 1e-6,
        verbose: bool = False,
        params: str = "stmc",
        init_params: str = "stmc",
        implementation: str = "log",
        n_init: int = 1,
        n_jobs: int | None = None,
    ):
        BaseHMM.__init__(
            self, n_components=n_components, startprob_prior=startprob_prior,
            transmat_prior=transmat_prior, algorithm=algorithm, random_state=random_state,
            n_iter=n_iter, tol=tol, verbose=verbose, params=params, init_params=init_params,
            implementation=implementation, n_init=n_init, n_jobs=n_jobs,
        )
        self.covariance_type = covariance_type
        self.means_prior = means_prior
        self.beta_prior = beta_prior
        self.dof_prior = dof_prior
        self.scale_prior = scale_prior

    @property
    def _fitted_attrs(self) -> tuple:
        return ("startprob_", "transmat_", "means_", "covars_", "startprob_posterior_",
                "transmat_posterior_", "startprob_prior_", "transmat_prior_", *self._POSTERIOR)

    def _check_hyperparameters(self) -> None:
        K = self.n_components
        priors = (self.startprob_prior, self.transmat_prior)
        try:
            self.startprob_prior, self.transmat_prior = 1.0, 1.0
            BaseHMM._check_hyperparameters(self)
        finally:
            self.startprob_prior, self.transmat_prior = priors
        G.check_covariance_type(self.covariance_type)
        _prior_array(self.startprob_prior, 1.0, (K,), "startprob_prior")
        _prior_array(self.transmat_prior, 1.0, (K, K), "transmat_prior")

    def _new_emission(self) -> GaussianEmission:
        # Checks the point estimates as a GaussianHMM's (no floor, no prior: not used).
        G.check_covariance_type(self.covariance_type)
        return GaussianEmission(self.n_components, self.covariance_type, 0.0, 0, 0, 0, 0)

    # ------------------------------------------------------------------ priors
    def _resolve_priors(self, X: np.ndarray) -> None:
        K, D, ct = self.n_components, X.shape[1], self.covariance_type
        if self.means_prior is None:
            self.means_prior_ = np.tile(X.mean(axis=0), (K, 1))
        else:
            mp = np.array(np.broadcast_to(np.asarray(self.means_prior, float), (K, D)))
            if not np.all(np.isfinite(mp)):
                raise ValueError("means_prior must be finite.")
            self.means_prior_ = mp
        self.beta_prior_ = _prior_array(self.beta_prior, 1.0, (K,), "beta_prior")
        dof_shape = () if ct == "tied" else (K,)
        dof = _prior_array(self.dof_prior, float(D), dof_shape, "dof_prior")
        if np.any(dof <= D - 1):
            raise ValueError(f"dof_prior must be greater than n_features - 1 = {D - 1}.")
        self.dof_prior_ = float(dof) if ct == "tied" else dof
        shape = G.covars_shape(ct, K, D)
        if self.scale_prior is None:
            if ct in ("full", "tied"):
                self.scale_prior_ = np.array(np.broadcast_to(1e-3 * np.eye(D), shape))
            else:
                self.scale_prior_ = np.full(shape, 1e-3)
        else:
            sp = np.asarray(self.scale_prior, dtype=np.float64)
            if sp.shape != shape:
                raise ValueError(f"scale_prior must have shape {shape} for covariance_type="
                                 f"{ct!r}, got {sp.shape}.")
            try:
                G.validate_covars(sp, ct, K, D)
            except ValueError:
                raise ValueError("scale_prior must be symmetric positive definite "
                                 "(positive for 'diag' and 'spherical').") from None
            self.scale_prior_ = sp.copy()

    # ------------------------------------------------------------------ init
    def _init_params(self, data, random_state) -> None:
        rs = check_random_state(random_state)
        self._init_transitions(data, rs)
        X = data.X
        K, D, ct = self.n_components, X.shape[1], self.covariance_type
        if ("m" in self.init_params or "c" in self.init_params
                or not hasattr(self, "means_posterior_")
                or not hasattr(self, "scale_posterior_")):
            # hmmlearn: k-means (10 starts) seeded with random_state itself.
            with threadpool_limits(limits=1):
                km = KMeans(n_clusters=K, random_state=random_state, n_init=10).fit(X)
            counts = np.bincount(km.predict(X), minlength=K).astype(np.float64)
            self._resolve_priors(X)
        elif not hasattr(self, "means_prior_"):
            self._resolve_priors(X)
        if "m" in self.init_params or not hasattr(self, "means_posterior_"):
            self.means_posterior_ = km.cluster_centers_.copy()
            # hmmlearn's start: the cluster sizes; an empty cluster (fewer distinct rows than
            # states) gets 1, not 0 (a Normal of infinite variance).
            self.beta_posterior_ = np.maximum(counts, 1.0)
        if "c" in self.init_params or not hasattr(self, "scale_posterior_"):
            cv = (np.atleast_2d(np.cov(X.T)) if len(X) > 1 else np.zeros((D, D))) + (
                1e-3 * np.eye(D))
            # Degrees of freedom from the cluster sizes as hmmlearn, raised to n_features
            # where smaller (a Wishart needs more than n_features - 1; an empty cluster would
            # give a zero scale matrix).
            if ct == "tied":
                self.dof_posterior_ = float(max(counts.sum(), D))
                self.scale_posterior_ = cv * self.dof_posterior_
            else:
                counts = np.maximum(counts, float(D))
                self.dof_posterior_ = counts.copy()
                if ct == "full":
                    base = np.broadcast_to(cv, (K, D, D))
                elif ct == "diag":
                    base = np.broadcast_to(np.diag(cv), (K, D))
                else:
                    # hmmlearn's start: the mean of every entry of the covariance (its
                    # off-diagonal ones too); the mean variance when that is not positive.
                    v = cv.mean()
                    base = np.full(K, v if v > 0 else np.diag(cv).mean())
                extra = (slice(None),) + (None,) * (base.ndim - 1)
                self.scale_posterior_ = np.array(base * counts[extra])
        self._point_transitions()
        self._point_emissions()
        self._check()

    def _point_emissions(self) -> None:
        dof = np.asarray(self.dof_posterior_, dtype=np.float64)
        extra = (slice(None),) + (None,) * (np.ndim(self.scale_posterior_) - 1)
        self.means_ = np.array(self.means_posterior_, dtype=np.float64)
        self.covars_ = (self.scale_posterior_ / dof if self.covariance_type == "tied"
                        else self.scale_posterior_ / dof[extra])

    # ------------------------------------------------------------------ E-step
    def _state_terms(self) -> np.ndarray:
        """Per-state terms added to log N(x | means_posterior_, scale/dof):
        (E[log |Lambda|] - log |dof W|) / 2 - D / (2 beta)."""
        D = self.means_posterior_.shape[1]
        nu = np.asarray(self.dof_posterior_, dtype=np.float64)
        e_log_det = digamma(0.5 * (nu - np.arange(D)[:, None])).sum(axis=0) + D * np.log(2.0)
        c = 0.5 * (e_log_det - D * np.log(nu)) - 0.5 * D / self.beta_posterior_
        return np.ascontiguousarray(np.broadcast_to(c, (self.n_components,)), dtype=float)

    def em_estep(self, data, runner: ChunkRunner) -> HMMStats:
        sp, tm = self._subnormalised()
        dens = G.GaussianDensity(self.means_, self.covars_, self.covariance_type)
        terms = self._state_terms()
        kind = self.covariance_type
        shift = np.array(self.means_, dtype=np.float64, order="C")

        def accumulate(i):
            X, offsets, first = self._chunk(data, i)
            ll = dens(X)
            ll += terms
            seq_ll, post, xi, start = self._forward_backward_sub(ll, offsets, sp, tm, first)
            gs = G.GaussianStats.from_weights(X, post, shift, kind)
            return HMMStats(float(seq_ll.sum()), start, xi, gs)

        return runner.map_sum(accumulate, range(len(data.chunks)))

    # ------------------------------------------------------------------ M-step
    def em_mstep(self, stats: HMMStats) -> None:
        self._mstep_transitions(stats)
        gs = stats.emission
        ct = self.covariance_type
        n = gs.post
        b0, m0 = self.beta_prior_, self.means_prior_
        s = np.broadcast_to(gs.shift, m0.shape)
        if "m" in self.params:
            self.beta_posterior_ = b0 + n
            self.means_posterior_ = s + (b0[:, None] * (m0 - s) + gs.sum1) / (
                self.beta_posterior_[:, None])
        if "c" in self.params:
            # sum r x x' + b0 m0 m0' - b m m', written about the shift (no cancellation when
            # the means were updated: the terms in the shift then vanish).
            beta, m = self.beta_posterior_, self.means_posterior_
            u0, u = m0 - s, m - s
            c = gs.sum1 + b0[:, None] * u0 - beta[:, None] * u
            e = n + b0 - beta
            if ct in ("diag", "spherical"):
                t = (gs.sum2 + b0[:, None] * u0**2 - beta[:, None] * u**2 + 2 * c * s
                     + e[:, None] * s**2)
                t = t.mean(axis=1) if ct == "spherical" else t
                self.dof_posterior_ = self.dof_prior_ + n
                self.scale_posterior_ = self.scale_prior_ + t
            else:
                outer = lambda a, b: np.einsum("ki,kj->kij", a, b)  # noqa: E731
                t = (b0[:, None, None] * outer(u0, u0) - beta[:, None, None] * outer(u, u)
                     + outer(c, s) + outer(s, c) + e[:, None, None] * outer(s, s))
                if ct == "full":
                    self.dof_posterior_ = self.dof_prior_ + n
                    self.scale_posterior_ = self.scale_prior_ + gs.sum2 + t
                else:
                    self.dof_posterior_ = float(self.dof_prior_ + n.sum())
                    self.scale_posterior_ = self.scale_prior_ + gs.sum2 + t.sum(axis=0)
            # exact symmetry for the full types (the sums are symmetric up to round-off)
            if ct in ("full", "tied"):
                self.scale_posterior_ = 0.5 * (
                    self.scale_posterior_ + np.swapaxes(self.scale_posterior_, -1, -2))
        self._point_emissions()

    # ------------------------------------------------------------------ bound
    def _posterior_kl(self) -> float:
        K, D = self.means_posterior_.shape
        ct = self.covariance_type
        scale_q = _full(self.scale_posterior_, ct, K, D)
        scale_p = _full(self.scale_prior_, ct, K, D)
        nu = np.broadcast_to(np.asarray(self.dof_posterior_, float), (K,))
        # KL of the means' Normals at the expected precision nu W (hmmlearn's plug-in)
        prec = np.linalg.inv(scale_q) * nu[:, None, None]
        bq, bp = self.beta_posterior_, self.beta_prior_
        d = self.means_posterior_ - self.means_prior_
        maha = np.einsum("ki,kij,kj->k", d, prec, d)
        kl_n = 0.5 * (D * np.log(bq / bp) + D * bp / bq + bp * maha - D)
        if ct == "tied":
            kl_w = kl_wishart(self.dof_posterior_, self.scale_posterior_, self.dof_prior_,
                              self.scale_prior_)
        else:
            kl_w = kl_wishart(self.dof_posterior_, scale_q, self.dof_prior_, scale_p)
        return self._transitions_kl() + float(kl_n.sum()) + kl_w
