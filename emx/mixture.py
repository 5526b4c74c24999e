"""Gaussian mixture model fitted by EM, with scikit-learn's API and sample weights."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from . import gaussian as G
from ._core import _gauss, _missing, check_ok
from ._em import (
    ChunkRunner,
    ConvergenceMonitor,
    EMMixin,
    column_moments,
    fit_restarts,
    user_stacklevel,
)
from ._missing import pattern_runs, split_runs
from ._stats import AdditiveStats
from ._validation import check_n_jobs, check_positive_int, describe_rows

__all__ = ["BaseMixture", "GaussianMixture", "MixtureStats", "MonotoneSteps", "mixture_weights"]

# Rows per E-step chunk (fixed by the data, never by the number of threads).
CHUNK_ROWS = 4096
_INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


@dataclass
class MixtureStats(AdditiveStats):
    """Additive statistics of a Gaussian-mixture E-step.

    Attributes
    ----------
    loglik_sum : float
        Weighted sum of the rows' log-likelihoods.
    weight : float
        Sum of the rows' weights (their number, unweighted).
    gaussian : emx.gaussian.GaussianStats
        Responsibility-weighted moments.
    """

    loglik_sum: float
    weight: float
    gaussian: G.GaussianStats

    @property
    def loglik(self) -> float:
        """Mean log-likelihood per (weighted) sample: scikit-learn's lower bound."""
        return self.loglik_sum / self.weight


@dataclass
class _Rows:
    """Validated rows cut into chunks: complete rows in ``X``; rows with missing entries (if
    any) in ``X_missing``, grouped by missingness pattern. Rows with nothing observed are
    left out (they say nothing about the parameters)."""

    X: np.ndarray
    sample_weight: np.ndarray | None
    shift: np.ndarray
    chunks: list  # (a, b) over X
    X_missing: np.ndarray | None = None
    w_missing: np.ndarray | None = None
    missing_chunks: tuple = ()  # (a, b, local pattern starts) over X_missing

    def chunk(self, i):
        a, b = self.chunks[i]
        w = None if self.sample_weight is None else self.sample_weight[a:b]
        return self.X[a:b], w

    def missing_chunk(self, i):
        a, b, starts = self.missing_chunks[i]
        w = None if self.w_missing is None else self.w_missing[a:b]
        return self.X_missing[a:b], w, starts

    @property
    def n_rows(self) -> int:
        return len(self.X) + (0 if self.X_missing is None else len(self.X_missing))

    def filled(self):
        """All usable rows, missing entries replaced by column means (for initialisation),
        and their weights."""
        if self.X_missing is None:
            return self.X, self.sample_weight
        Xm = np.where(np.isnan(self.X_missing), self.shift, self.X_missing)
        X = np.concatenate([self.X, Xm])
        if self.sample_weight is None:
            return X, None
        return X, np.concatenate([self.sample_weight, self.w_missing])


def _weighted_nanmean(data: _Rows) -> np.ndarray:
    """Column means of the observed entries of all usable rows (weighted)."""
    parts = [(data.X, data.sample_weight)]
    if data.X_missing is not None:
        parts.append((data.X_missing, data.w_missing))
    total = np.zeros(data.X.shape[1])
    count = np.zeros(data.X.shape[1])
    for i, (X, w) in enumerate(parts):
        if len(X) == 0:
            continue
        w = np.ones(len(X)) if w is None else w
        if i == 0:  # complete rows: no mask, no copy of X
            total += w @ X
            count += w.sum()
            continue
        observed = ~np.isnan(X)
        total += w @ np.where(observed, X, 0.0)
        count += w @ observed
    return total / np.where(count > 0, count, 1.0)


def _nan_rows(data: _Rows) -> np.ndarray:
    """All usable rows of prepared data, NaN for missing entries."""
    return data.X if data.X_missing is None else np.concatenate([data.X, data.X_missing])


def _with_shift(data: _Rows, shift: np.ndarray) -> _Rows:
    """The prepared data with moments about ``shift`` (the arrays are shared, not copied)."""
    return dataclasses.replace(data, shift=shift)


def _filled_moments(data: _Rows, covariance_type: str) -> G.GaussianStats:
    X, w = data.filled()
    resp = np.ones((len(X), 1)) if w is None else w[:, None].copy()
    return G.GaussianStats.from_weights(X, resp, data.shift, covariance_type)


def _row_chunks(n: int) -> list:
    return [(a, min(a + CHUNK_ROWS, n)) for a in range(0, n, CHUNK_ROWS)]


def _distinct_rows(X: np.ndarray, w: np.ndarray | None, K: int):
    """Distinct rows of ``X`` in sorted order with their total weights (zero-weight rows
    dropped).

    Initialising from these makes the fit independent of the order of the rows, and a
    row of weight 2 the same as the row repeated. Falls back to the rows as given when
    fewer than ``K`` distinct rows carry weight.
    """
    weights = np.ones(len(X)) if w is None else w
    U, inverse = np.unique(X, axis=0, return_inverse=True)
    wU = np.bincount(inverse.ravel(), weights=weights, minlength=len(U))
    keep = wU > 0
    if keep.sum() < K:
        return X, weights
    return np.ascontiguousarray(U[keep]), wU[keep]


def mixture_weights(post: np.ndarray) -> np.ndarray:
    """Component weights from their summed responsibilities, with scikit-learn's 10 * eps
    added to each (no component's weight is exactly 0 from the data alone)."""
    nk = post + 10 * np.finfo(float).eps
    return nk / nk.sum()


class MonotoneSteps:
    """EM monotone by construction (the protocol's ``em_summed``), for GaussianMixture,
    MixtureOfFactorAnalyzers and FactorAnalysis.

    The statistics of every E-step pass through :meth:`em_summed`, which compares their
    log-likelihood with the last accepted step's; ``_refused_fall(fall, loglik, last)``
    (the model's policy) says whether a fall by ``fall`` to ``loglik`` from the parameters
    ``last`` (a dict of ``_fitted_attrs``) is refused. A refused step brings the previous
    parameters and statistics back and skips the next M-step (``em_mstep`` starts with
    ``if self._step_refused(): return``); the monitor sees no gain and EM stops there.
    """

    _fitted_attrs: tuple = ()

    def em_summed(self, stats):
        """The statistics EM continues from: ``stats`` (of the current parameters), or those
        of the last accepted parameters when the step to the current ones is refused (the
        parameters come back too, and the next M-step is skipped). Any E-step (serial or
        distributed) passes its summed statistics through this before the monitor sees
        them, so the monitored log-likelihood never falls by a refused amount: the monitor
        sees no gain and EM stops there."""
        last = self.__dict__.get("_accepted")
        params = {a: getattr(self, a) for a in self._fitted_attrs}
        self._refused = False
        if last is not None:
            fall = last[0].loglik - stats.loglik
            self._refused = bool(self._refused_fall(fall, stats.loglik, last[1]))
            if self._refused:
                stats, params = last
                for name, value in params.items():
                    setattr(self, name, value)
        self._accepted = (stats, params)
        return stats

    def _step_refused(self) -> bool:
        """True (once) when the last E-step refused its step: the M-step is skipped."""
        return bool(self.__dict__.pop("_refused", False))

    def _reset_accept(self) -> None:
        """Forget the accepted step (a new run starts)."""
        self.__dict__.pop("_accepted", None)
        self.__dict__.pop("_refused", None)


class BaseMixture(MonotoneSteps, EMMixin, DensityMixin, BaseEstimator):
    """What every mixture of emx shares (GaussianMixture, MixtureOfFactorAnalyzers): weights
    and responsibilities, the monotone E-step wrapper, the fit tail (restarts, fitted
    attributes, the convergence warning) and inference (score_samples, score,
    predict_proba, predict, sample, bic, aic).

    A subclass provides ``_fitted_attrs`` (``weights_`` and ``means_`` first), and

    * ``_density()``: a function of a block of rows returning their (n, K) component
      log-densities, prepared once per parameter set;
    * ``_far_args()``: ``(means, covars, covariance_type)`` for
      :func:`emx.gaussian.resolve_far_rows` (rows whose log-density underflows everywhere);
    * ``_validate_input(X)``: ``X`` checked for prediction (``reset=False``);
    * ``_sampler()``: a function ``(k, n, random_state)`` drawing n rows of component k;
    * ``_n_parameters()``; the protocol's ``em_estep(data, runner)`` and ``em_mstep(stats)``
      (which starts with ``if self._step_refused(): return``), and ``_refused_fall(fall,
      loglik, last)``: whether a fall of the log-likelihood by ``fall`` to ``loglik`` from
      the parameters ``last`` (a dict) is refused (see :meth:`em_summed`).
    """

    _fitted_attrs: tuple = ("weights_", "means_")

    # ------------------------------------------------------------------ parameters
    def _log_weights(self) -> np.ndarray:
        out = np.full(len(self.weights_), -np.inf)
        np.log(self.weights_, out=out, where=self.weights_ > 0)
        return out

    def _responsibilities(self, dens, log_w, X):
        """(responsibilities (n, K), log p(x) per row) for a block of rows."""
        resp = dens(X)
        log_norm = np.empty((X.shape[0], 1))
        check_ok(_gauss.responsibilities(resp, log_w, log_norm))
        if not np.all(log_norm > -np.inf):  # rows far from every component
            means, covars, ct = self._far_args()
            G.resolve_far_rows(X, resp, log_norm[:, 0], means, covars, ct, log_w)
        return resp, log_norm[:, 0]

    # ------------------------------------------------------------------ fit tail
    def _fit_em(self, data, seeds: list, n_jobs: int, final_check: bool = False) -> None:
        """EM from every seed (``fit_restarts``), the best run kept; then the fitted
        attributes (:meth:`em_finish`).

        With ``final_check`` (and one seed), the parameters of the last M-step are checked
        by one more E-step: a step that lowered the log-likelihood by round-off (or gained
        less than round-off) is refused and the parameters of the last E-step are kept, so
        that the returned parameters never score below those of the last E-step. A warm
        start needs it: one-iteration fits in a row then never score lower than the fit
        before."""
        try:
            fit_restarts(self, data, seeds=seeds, n_jobs=n_jobs, make_monitor=self.em_monitor)
            last = self.__dict__.get("_accepted")
            if final_check and len(seeds) == 1 and last is not None:
                with ChunkRunner(n_jobs) as runner:
                    stats = self.em_estep(data, runner)
                fall = last[0].loglik - stats.loglik
                # Refused: a fall within round-off, or a gain within the round-off of
                # summing the rows' log-likelihoods in another order (score does that).
                if fall > -1e-12 * abs(stats.loglik) or self._refused_fall(
                        fall, stats.loglik, last[1]):
                    for name, value in last[1].items():
                        setattr(self, name, value)
        finally:
            self._reset_accept()
        monitor = self.monitor_
        del self.monitor_
        self.em_finish(monitor)

    def em_monitor(self) -> ConvergenceMonitor:
        return ConvergenceMonitor(self.tol, self.max_iter, bool(self.verbose))

    def em_finish(self, monitor: ConvergenceMonitor) -> None:
        """Fitted attributes from the monitor of the kept run."""
        self._reset_accept()
        self.converged_ = monitor.converged
        self.n_iter_ = monitor.iter
        # The bounds of this fit's iterations (a warm start's monitor starts with the
        # previous fit's last bound, see GaussianMixture.em_monitor).
        self.lower_bounds_ = list(monitor.history[len(monitor.history) - monitor.iter:])
        self.lower_bound_ = monitor.history[-1]
        if not self.converged_:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )
        self._set_derived()

    def _set_derived(self) -> None:
        """Attributes derived from the fitted parameters (none by default)."""

    # ------------------------------------------------------------------ inference
    def _estimate_resp(self, X, want_fill: bool = False):
        """(responsibilities, log-density of every row, None) for validated rows, in
        chunks. Subclasses handling missing entries override it (``want_fill``)."""
        if want_fill:
            raise ValueError(f"{type(self).__name__} does not fill missing entries.")
        dens, log_w = self._density(), self._log_weights()
        n, K = X.shape[0], len(self.weights_)
        resp, log_norm = np.empty((n, K)), np.empty(n)

        def block(a):
            resp[a : a + CHUNK_ROWS], log_norm[a : a + CHUNK_ROWS] = self._responsibilities(
                dens, log_w, X[a : a + CHUNK_ROWS]
            )

        self._run_blocks(block, range(0, n, CHUNK_ROWS))
        return resp, log_norm, None

    def _run_blocks(self, func, items) -> None:
        """``func(item)`` for every item, in the threads of ``n_jobs`` when there are two
        items or more (each writes its own rows of the outputs: the result does not depend
        on the number of threads)."""
        items = list(items)
        n_jobs = check_n_jobs(getattr(self, "n_jobs", None)) if len(items) > 1 else 1
        with ChunkRunner(n_jobs) as runner:
            for _ in runner.map(func, items):
                pass

    def _checked(self, X) -> np.ndarray:
        check_is_fitted(self, "means_")
        return self._validate_input(X)

    def score_samples(self, X) -> np.ndarray:
        """Log-density of every row of ``X`` under the mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self._estimate_resp(self._checked(X))[1]

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        float
        """
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """Responsibility of every component for every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
        """
        return self._estimate_resp(self._checked(X))[0]

    def predict(self, X) -> np.ndarray:
        """Most likely component of every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self.predict_proba(X).argmax(axis=1)

    def sample(self, n_samples: int = 1):
        """Draw rows from the fitted mixture.

        Parameters
        ----------
        n_samples : int

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component of each row (grouped by component, as scikit-learn).
        """
        check_is_fitted(self, "means_")
        if isinstance(n_samples, (int, np.integer)) and not isinstance(n_samples, bool) and (
            n_samples < 1
        ):
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least "
                "one sample."
            )
        n_samples = check_positive_int(n_samples, "n_samples")
        rs = check_random_state(self.random_state)
        counts = rs.multinomial(n_samples, self.weights_)
        draw = self._sampler()
        D = self.means_.shape[1]
        X = np.vstack([np.empty((0, D))] + [
            draw(k, int(c), rs) for k, c in enumerate(counts)
        ])
        return X, np.repeat(np.arange(len(counts)), counts)

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        float
        """
        X = self._checked(X)
        n = X.shape[0]
        return float(-2 * self.score(X) * n + self._n_parameters() * np.log(n))

    def aic(self, X) -> float:
        """Akaike information criterion on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        float
        """
        X = self._checked(X)
        return float(-2 * self.score(X) * X.shape[0] + 2 * self._n_parameters())


class GaussianMixture(BaseMixture):
    """Gaussian mixture fitted by EM on compiled kernels.

    Same parameters, attributes and methods as ``sklearn.mixture.GaussianMixture`` (so the
    same settings and initial parameters give the same fit), plus ``sample_weight`` in
    :meth:`fit` (a weight of 0 is the same as removing the row, 2 the same as repeating it)
    and ``n_jobs`` threads (results do not depend on it).

    ``X`` may hold NaN (missing entries): the E-step uses each row's observed marginal and the
    M-step the expected complete-data statistics (EM for incomplete data). A row with nothing
    observed is left out of the fit; a column with nothing observed is an error.

    The random initialisations ('kmeans', 'k-means++', 'random', 'random_from_data') run on
    the distinct rows of ``X`` in sorted order, each with its total weight: the fit does not
    depend on the order of the rows, and weights are exactly repetitions, at the price of
    drawing different initial values than scikit-learn for the same ``random_state``.

    Parameters
    ----------
    n_components : int
        Number of mixture components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
        Form of the component covariances.
    tol : float
        Stop when the mean log-likelihood per sample changes by less than this.
    reg_covar : float
        Added to the diagonal of every covariance (keeps them positive definite).
    max_iter : int
        Maximum EM iterations per initialisation.
    n_init : int
        Number of initialisations; the best final lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}
        How responsibilities are initialised when not all of ``weights_init``,
        ``means_init`` and ``precisions_init`` are given.
    weights_init, means_init, precisions_init : array-like, optional
        Initial parameters (precisions in the shape of ``covariance_type``).
    random_state : int, RandomState or None
        Seed for the initialisation and for :meth:`sample`.
    warm_start : bool
        Start the next :meth:`fit` from the current parameters (then ``n_init`` is 1).
    verbose : int
        Print per-iteration progress to stderr when > 0.
    verbose_interval : int
        Accepted for scikit-learn compatibility (progress is printed every iteration).
    n_jobs : int or None
        Threads for the E-step (None: 1, -1: all cores).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        (n_components,) 'spherical', (n_components, n_features) 'diag', (n_components,
        n_features, n_features) 'full', (n_features, n_features) 'tied'.
    precisions_, precisions_cholesky_ : ndarray
        Inverses of the covariances and their Cholesky factors, shaped like
        ``covariances_``.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per sample at the last iteration of the best initialisation.
    lower_bounds_ : list of float
        The same at every iteration of the best initialisation (never decreasing: a step
        whose log-likelihood falls by no more than its float64 round-off, which nearly
        singular covariances make up to ~1e-5 per sample, is refused and EM stops there
        with the previous parameters; a larger fall would warn ``EMDecreaseWarning``).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from emx import GaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2))])
    >>> gmm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> gmm.converged_
    True
    >>> bool(np.allclose(np.sort(gmm.means_[:, 0]), [0, 6], atol=0.5))
    True
    >>> labels = gmm.predict([[0, 0], [6, 6]])
    >>> bool(labels[0] != labels[1])
    True

    Sample weights (a weight of 2 counts a row twice) and missing entries:

    >>> gmm = GaussianMixture(n_components=2, random_state=0).fit(X, sample_weight=np.ones(200))
    >>> X_missing = X.copy()
    >>> X_missing[::10, 1] = np.nan
    >>> gmm = GaussianMixture(n_components=2, random_state=0).fit(X_missing)
    >>> gmm.means_.shape
    (2, 2)
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        n_jobs: int | None = None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_jobs = n_jobs

    _fitted_attrs = ("weights_", "means_", "covariances_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ checks
    def _check_hyperparameters(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.max_iter, "max_iter", minimum=0)
        check_positive_int(self.n_init, "n_init")
        check_n_jobs(self.n_jobs)
        G.check_covariance_type(self.covariance_type)
        if self.init_params not in _INIT_PARAMS:
            raise ValueError(
                f"init_params must be one of {_INIT_PARAMS}, got {self.init_params!r}."
            )
        if not (np.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be a non-negative float, got {self.tol!r}.")
        if not (np.isfinite(self.reg_covar) and self.reg_covar >= 0):
            raise ValueError(f"reg_covar must be a non-negative float, got {self.reg_covar!r}.")

    def _check_initial(self, D: int):
        K, ct = self.n_components, self.covariance_type
        weights = means = covars = None
        # Messages in scikit-learn's words (code matching them keeps working), each naming
        # the argument at fault.
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
            if weights.shape != (K,):
                raise ValueError(
                    f"weights_init: The parameter 'weights' should have the shape of ({K},), "
                    f"but got {weights.shape}."
                )
            if not np.all(np.isfinite(weights)) or np.any(weights < 0) or np.any(weights > 1):
                raise ValueError(
                    "weights_init: The parameter 'weights' should be in the range [0, 1], but "
                    f"got min value {np.min(weights):.5f}, max value {np.max(weights):.5f}."
                )
            if not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-6):
                raise ValueError(
                    "weights_init: The parameter 'weights' should be normalized, but got "
                    f"sum(weights) = {np.sum(weights):.5f}."
                )
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
            if means.shape != (K, D):
                raise ValueError(
                    f"means_init: The parameter 'means' should have the shape of ({K}, {D}), "
                    f"but got {means.shape}."
                )
            if not np.all(np.isfinite(means)):
                raise ValueError("means_init must be finite (it holds NaN or infinity).")
        if self.precisions_init is not None:
            covars = G.covars_from_precisions(self._check_precisions_init(D), ct)
        return weights, means, covars

    def _check_precisions_init(self, D: int) -> np.ndarray:
        """``precisions_init`` as a float64 array, or a ValueError naming it."""
        K, ct = self.n_components, self.covariance_type
        prec = np.asarray(self.precisions_init, dtype=np.float64)
        shape = G.covars_shape(ct, K, D)
        if prec.shape != shape:
            raise ValueError(
                f"precisions_init: The parameter '{ct} precision' should have the shape of "
                f"{shape}, but got {prec.shape}."
            )
        if not np.all(np.isfinite(prec)):
            raise ValueError("precisions_init must be finite (it holds NaN or infinity).")
        if ct in ("diag", "spherical"):
            if np.any(prec <= 0):
                raise ValueError(f"precisions_init: '{ct} precision' should be positive.")
            return prec
        try:
            G.validate_covars(prec, ct, K, D)
        except ValueError:
            raise ValueError(
                f"precisions_init: '{ct} precision' should be symmetric, positive-definite."
            ) from None
        return prec

    def _prepare(self, X, sample_weight, *, reset: bool) -> _Rows:
        """Validated rows of ``X`` (and weights) as the data EM runs on: complete rows in
        chunks, rows with missing entries grouped by pattern."""
        checks = dict(reset=reset, dtype=np.float64, order="C",
                      ensure_min_samples=2 if reset else 1)
        X = validate_data(self, X, ensure_all_finite=False, **checks)
        # Infinities, the magnitude and NaNs from one pass over X (G.value_range); on an
        # infinity, scikit-learn's own check, for its error message.
        lo, hi, has_nan = G.value_range(X)
        if hi == np.inf or lo == -np.inf:
            validate_data(self, X, ensure_all_finite="allow-nan", **checks)
            raise ValueError("Input X contains infinity.")  # not reached
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != (X.shape[0],):
                raise ValueError(
                    f"sample_weight must have shape ({X.shape[0]},), got {sample_weight.shape}."
                )
            if not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
                raise ValueError("sample_weight must be finite and non-negative.")
            if not sample_weight.sum() > 0:
                raise ValueError("sample_weight must contain at least one non-zero weight.")
        G.check_magnitude(X, bounds=(lo, hi))
        if not has_nan:
            return _Rows(X, sample_weight, np.zeros(X.shape[1]), _row_chunks(len(X)))
        nan = np.isnan(X)
        empty_cols = np.flatnonzero(nan.all(axis=0))
        if len(empty_cols):
            raise ValueError(
                f"Column(s) {empty_cols.tolist()} of X have no observed value: nothing can be "
                "estimated for them."
            )
        row_missing = nan.any(axis=1)
        usable = ~nan.all(axis=1)  # rows with nothing observed carry no information
        complete = np.flatnonzero(~row_missing)
        incomplete = np.flatnonzero(row_missing & usable)
        order, starts = pattern_runs(X[incomplete])
        incomplete = incomplete[order]
        Xm = np.ascontiguousarray(X[incomplete])
        pieces = split_runs(np.arange(len(Xm), dtype=np.intp), starts, CHUNK_ROWS)
        missing_chunks, a = [], 0
        for rows, local in pieces:
            missing_chunks.append((a, a + len(rows), local))
            a += len(rows)
        w = sample_weight
        return _Rows(
            np.ascontiguousarray(X[complete]), None if w is None else w[complete],
            np.zeros(X.shape[1]), _row_chunks(len(complete)), Xm,
            None if w is None else w[incomplete], tuple(missing_chunks),
        )

    # ------------------------------------------------------------------ EM parts
    def _density(self):
        return G.GaussianDensity(self.means_, self.covariances_, self.covariance_type)

    def _far_args(self):
        return self.means_, self.covariances_, self.covariance_type

    def em_monitor(self) -> ConvergenceMonitor:
        monitor = super().em_monitor()
        previous = self.__dict__.get("lower_bound_", -np.inf)
        if self.warm_start and hasattr(self, "converged_") and np.isfinite(previous):
            # As scikit-learn: a warm start continues the previous fit, so its first
            # iteration's gain is measured from the previous fit's last bound (two
            # one-iteration fits can converge). Not counted as an iteration of this fit.
            monitor.history.append(float(previous))
            monitor.objective.append(float(previous))
        return monitor

    def _refused_fall(self, fall: float, loglik: float, last: dict) -> bool:
        # Monotone by construction. In exact arithmetic an EM (or generalised EM) step never
        # lowers the log-likelihood; in float64 the log-likelihood of a nearly singular
        # covariance (eigenvalue floor, condition number up to 1e10) is only defined to
        # about n_features * eps * cond per sample (G.loglik_roundoff): repeated parameters
        # give values ~1e-7 apart. A step whose log-likelihood falls by no more than that
        # is refused: the previous parameters and their statistics come back, the monitor
        # sees no gain and EM stops (converged at the attainable precision). A larger fall
        # is not round-off: it is recorded, and the monitor warns.
        return fall > 0 and fall <= (
            ConvergenceMonitor.roundoff(loglik)
            + max(G.loglik_roundoff(last["covariances_"], self.covariance_type),
                  G.loglik_roundoff(self.covariances_, self.covariance_type))
        )

    def em_estep(self, data: _Rows, runner: ChunkRunner) -> MixtureStats:
        dens, log_w = self._density(), self._log_weights()
        kind = self.covariance_type
        # Each component's moments about its current mean (one array shared by every chunk,
        # so the statistics add exactly): no cancellation however far apart components sit.
        shift = np.array(self.means_, dtype=np.float64, order="C")

        def accumulate(task):
            missing, i = task
            if missing and self.n_components == 1 and kind in ("full", "tied"):
                X, w, starts = data.missing_chunk(i)
                return self._missing_single(X, w, starts, shift)
            if missing:
                X, w, starts = data.missing_chunk(i)
                resp, log_norm = self._missing_responsibilities(dens, log_w, X, starts)
            else:
                X, w = data.chunk(i)
                resp, log_norm = self._responsibilities(dens, log_w, X)
            if w is None:
                ll, total = float(log_norm.sum()), float(len(X))
            else:
                ll, total = float(w @ log_norm), float(w.sum())
                resp *= w[:, None]
            if missing:
                gs = self._missing_moments(dens, X, starts, resp, shift)
            else:
                gs = G.GaussianStats.from_weights(X, resp, shift, kind)
            return MixtureStats(ll, total, gs)

        tasks = [(False, i) for i in range(len(data.chunks))]
        tasks += [(True, i) for i in range(len(data.missing_chunks))]
        return runner.map_sum(accumulate, tasks)

    # ------------------------------------------------------------------ missing entries
    def _full_covariances(self):
        K, D = self.means_.shape
        if self.covariance_type == "tied":
            return np.broadcast_to(self.covariances_, (K, D, D))
        return self.covariances_

    def _missing_logp(self, dens, X, starts):
        """Log-density of the observed entries of each row under each component."""
        n, K = len(X), self.n_components
        out = np.empty((n, K))
        if dens.prec_chol is None:  # diagonal: one pass skipping NaN entries
            check_ok(_gauss.log_density_diag_nan(X, dens.means, dens.precisions, dens.log_norm,
                                                 -np.log(dens.precisions), out))
            return out
        order, buf = np.arange(n, dtype=np.intp), np.empty(n)
        covs = self._full_covariances()
        for k in range(K):
            status = _missing.conditional_pass(
                X, order, starts, self.means_[k], np.ascontiguousarray(covs[k]), loglik=buf
            )
            if status != -1:
                raise ValueError(f"Covariance {k} is not positive definite.")
            out[:, k] = buf
        return out

    def _missing_single(self, X, w, starts, shift) -> MixtureStats:
        """One Gaussian: log-likelihoods and expected moments in a single compiled pass (one
        factorisation per pattern)."""
        n, D = X.shape
        weights = np.ones(n) if w is None else w
        ll = np.empty(n)
        post, sum1, sum2 = np.zeros(1), np.zeros((1, D)), np.zeros((1, D, D))
        cov = np.ascontiguousarray(self._full_covariances()[0])
        status = _missing.conditional_pass(
            X, np.arange(n, dtype=np.intp), starts, self.means_[0], cov, weights=weights,
            shift=np.ascontiguousarray(shift[0]), loglik=ll, post=post, sum1=sum1[0],
            sum2=sum2[0],
        )
        if status != -1:
            raise ValueError("The covariance is not positive definite.")
        sum2 = sum2[0] if self.covariance_type == "tied" else sum2
        return MixtureStats(
            float(weights @ ll), float(weights.sum()), G.GaussianStats(post, sum1, sum2, shift)
        )

    def _missing_responsibilities(self, dens, log_w, X, starts):
        resp = self._missing_logp(dens, X, starts)
        log_norm = np.empty((len(X), 1))
        check_ok(_gauss.responsibilities(resp, log_w, log_norm))
        G.resolve_far_rows(X, resp, log_norm[:, 0], self.means_, self.covariances_,
                           self.covariance_type, log_w)
        return resp, log_norm[:, 0]

    def _missing_moments(self, dens, X, starts, R, shift) -> G.GaussianStats:
        """Expected complete-data moments of rows with missing entries, weighted by ``R``,
        about ``shift`` ((K, D), one point per component, or (D,), one for all)."""
        K, D = R.shape[1], X.shape[1]
        rows_shift = np.ascontiguousarray(np.asarray(shift, dtype=np.float64).reshape(-1, D))
        shifts = np.broadcast_to(rows_shift, (K, D))
        ct = self.covariance_type
        if ct in ("diag", "spherical"):
            # Missing entries: expectation mean_k, variance var_k (components are diagonal).
            post, sum1, sum2, Rm = (np.zeros(K), np.zeros((K, D)), np.zeros((K, D)),
                                    np.zeros((K, D)))
            check_ok(_gauss.accumulate_moments_nan_diag(X, R, rows_shift, post, sum1, sum2, Rm))
            d = self.means_ - shift
            sum1 += Rm * d
            sum2 += Rm * (d * d + 1.0 / dens.precisions)
            return G.GaussianStats(post, sum1, sum2, shift)
        post = R.sum(axis=0)
        covs = self._full_covariances()
        order = np.arange(len(X), dtype=np.intp)
        sum1 = np.zeros((K, D))
        sum2 = np.zeros((K, D, D))
        for k in range(K):
            status = _missing.conditional_pass(
                X, order, starts, self.means_[k], np.ascontiguousarray(covs[k]),
                weights=np.ascontiguousarray(R[:, k]), shift=np.ascontiguousarray(shifts[k]),
                post=np.zeros(1), sum1=sum1[k], sum2=sum2[k],
            )
            if status != -1:
                raise ValueError(f"Covariance {k} is not positive definite.")
        return G.GaussianStats(post, sum1, sum2.sum(axis=0) if ct == "tied" else sum2, shift)

    def _missing_fill(self, dens, X, starts, resp):
        """Rows with missing entries replaced by E[x_m | x_o] under the mixture.

        Observed entries are returned as they are (bit for bit); only missing entries are
        computed, as the responsibility-weighted conditional expectations.
        """
        missing = np.isnan(X)
        if self.covariance_type in ("diag", "spherical"):
            return np.where(missing, resp @ self.means_, X)
        covs = self._full_covariances()
        order, buf = np.arange(len(X), dtype=np.intp), np.empty(X.shape)
        out = np.zeros(X.shape)
        for k in range(self.n_components):
            status = _missing.conditional_pass(
                X, order, starts, self.means_[k], np.ascontiguousarray(covs[k]), fill=buf
            )
            if status != -1:
                raise ValueError(f"Covariance {k} is not positive definite.")
            out += resp[:, k : k + 1] * buf
        return np.where(missing, out, X)

    def em_mstep(self, stats: MixtureStats) -> None:
        if self._step_refused():
            return  # the step from these statistics was refused (see em_summed): params stay
        gs = stats.gaussian
        old_covs = self.covariances_
        weights, means, covs = self._estimate(gs, self.means_, old_covs)
        # reg_covar and the variance floors move the covariances off the maximiser of EM's
        # expected complete-data log-likelihood Q. Keep the monitored log-likelihood monotone
        # (a generalised EM step): where the regularised covariance gives a lower Q than the
        # previous one (with the new means, which maximise Q for any covariance), the
        # previous covariance is kept. Most steps are unaffected.
        ct = self.covariance_type
        q_new = G.expected_loglik(gs, means, covs, ct)
        q_old = G.expected_loglik(gs, means, old_covs, ct)
        worse = q_new < q_old - 1e-12 * np.abs(q_old)
        if np.any(worse):
            if ct == "tied":
                covs = old_covs
            else:
                covs = covs.copy()
                covs[worse] = old_covs[worse]
        self.weights_, self.means_, self.covariances_ = weights, means, covs

    def _estimate(self, gs: G.GaussianStats, old_means, old_covs):
        """Weights, means and covariances (plus ``reg_covar``) from moments
        (:func:`emx.gaussian.estimate_gaussians`, scikit-learn's conventions: component
        weights get 10 * eps added; a component with no weight at all keeps its previous
        mean and covariance, when it has them, instead of 0/0)."""
        means, covs = G.estimate_gaussians(
            gs, self.covariance_type, reg_covar=self.reg_covar, old_means=old_means,
            old_covars=old_covs,
        )
        return mixture_weights(gs.post), means, covs

    def _check_well_defined(self, gs: G.GaussianStats, means) -> None:
        """With ``reg_covar=0``, scikit-learn's error when an initial covariance estimated
        from the data (before emx's floors) is not positive definite: a component on a
        single point or on collapsed points. (With ``reg_covar > 0``, and for a component
        that collapses during EM, emx floors the covariance instead.)"""
        ct = self.covariance_type
        raw = G.map_covars(gs, means, ct,
                           count={"spherical": gs.sum1.shape[1], "tied": len(gs.post)}.get(
                               ct, 1) * 10 * np.finfo(float).eps)
        if ct in ("diag", "spherical"):
            bad = bool(np.any(raw <= 0))
        else:
            try:
                np.linalg.cholesky(raw)
                bad = False
            except np.linalg.LinAlgError:
                bad = True
        if bad:
            raise ValueError(
                "Fitting the mixture model failed because some components have ill-defined "
                "empirical covariance (for instance caused by singleton or collapsed "
                "samples). Try to decrease the number of components, increase reg_covar, or "
                "scale the input data."
            )

    def _init_params(self, data: _Rows, random_state) -> None:
        self._reset_accept()  # no step accepted yet (see em_summed)
        if self.warm_start and hasattr(self, "converged_"):
            return
        X, w = data.filled()
        n, D = X.shape
        K = self.n_components
        weights, means, covars = self._check_initial(D)
        if weights is None or means is None or covars is None:
            if K == 1:  # every initialisation gives all rows to the one component
                U, wU, resp = X, (np.ones(n) if w is None else w), np.ones((n, 1))
            else:
                U, wU, resp = self._initial_resp(X, w, random_state)
            resp *= wU[:, None]
            gs = G.GaussianStats.from_weights(U, resp, None, self.covariance_type)
            w0, m0, c0 = self._estimate(gs, None, None)
            if covars is None and self.reg_covar == 0:
                self._check_well_defined(gs, m0)
            weights = w0 if weights is None else weights
            means = m0 if means is None else means
            covars = c0 if covars is None else covars
        self.weights_, self.means_, self.covariances_ = weights, means, covars

    def _initial_resp(self, X, w, random_state):
        """Distinct rows, their weights, and initial responsibilities by ``init_params``."""
        K = self.n_components
        U, wU = _distinct_rows(X, w, K)
        m = len(U)
        rs = check_random_state(random_state)
        resp = np.zeros((m, K))
        if self.init_params == "kmeans":
            with threadpool_limits(limits=1):  # repeatable for any thread count
                labels = KMeans(n_clusters=K, n_init=1, random_state=rs).fit(
                    U, sample_weight=wU
                ).labels_
            resp[np.arange(m), labels] = 1
        elif self.init_params == "random":
            resp = rs.uniform(size=(m, K))
            resp /= resp.sum(axis=1, keepdims=True)
        elif self.init_params == "random_from_data":
            n_pos = int(np.count_nonzero(wU > 0))
            if n_pos < K:
                raise ValueError(
                    f"init_params='random_from_data' draws n_components={K} distinct rows of "
                    f"non-zero weight, but X has only {n_pos}: lower n_components or use "
                    "another init_params."
                )
            resp[rs.choice(m, size=K, replace=False, p=wU / wU.sum()), np.arange(K)] = 1
        else:
            _, idx = kmeans_plusplus(U, K, random_state=rs, sample_weight=wU)
            resp[idx, np.arange(K)] = 1
        return U, wU, resp

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or chunked data
            The rows in memory; or, for data that do not fit in memory, a ``numpy.memmap``
            (read in blocks of ``emx._chunked.MEMMAP_CHUNK_ROWS`` rows), a list of 2-D
            arrays (chunks of rows), or a callable returning a fresh iterable of such
            chunks at every call. Chunked data are read chunk by chunk at every iteration
            (memory bounded by the chunk size); the fit equals the in-memory fit of the
            concatenated rows (to round-off) up to 2,000,000 rows, above which the
            initialisation runs on a uniform sample of that many rows (``n_init=1``, no
            ``sample_weight``).
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the rows (a weight of 2 counts the row twice).

        Returns
        -------
        self
        """
        from ._chunked import MEMMAP_CHUNK_ROWS, _memmap_chunks, fit_chunks, is_chunked

        if is_chunked(X, sequences=False):
            if sample_weight is not None:
                raise ValueError("sample_weight is not supported with chunked data.")
            if isinstance(X, np.memmap):
                X = _memmap_chunks(X, None, MEMMAP_CHUNK_ROWS)
            self._check_hyperparameters()
            self.__dict__.pop("_stepwise", None)
            return fit_chunks(self, X)
        self._fit(X, sample_weight)
        return self

    def partial_fit(self, X, y=None, sample_weight=None, *, kappa=0.7, t0=2.0):
        """One step of stepwise (online) EM on a chunk of rows.

        Stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009): the chunk's E-step
        statistics, per row, are folded into running statistics,
        ``s <- (1 - eta) s + eta * stats(chunk) / n_rows(chunk)`` with step size
        ``eta = (t + t0) ** -kappa`` at the ``t``-th call after the first (the first call
        takes ``eta = 1``); the M-step runs on ``s`` times the number of rows seen so far.
        The first call on a model without parameters initialises them from its chunk
        (``init_params``, ``random_state``), as :meth:`fit` would; a fitted model continues
        from its parameters.
        Its first step also has ``eta = 1`` (``fit`` keeps no running statistics).

        With ``kappa=0`` every step is 1: ``partial_fit`` on the whole data is one batch EM
        iteration (the first call on a fresh model equals ``fit`` with ``max_iter=1``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One chunk of rows (NaN for missing entries, as in :meth:`fit`).
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
        kappa : float in [0, 1], default 0.7
            Decay of the step size; (0.5, 1] satisfies the Robbins-Monro conditions.
        t0 : float >= 0, default 2.0
            Offset of the step-size schedule.

        Returns
        -------
        self
        """
        from ._stepwise import StepwiseState, check_schedule

        kappa, t0 = check_schedule(kappa, t0)
        self._check_hyperparameters()
        state = self.__dict__.get("_stepwise")
        fresh = not hasattr(self, "precisions_cholesky_")
        data = self._prepare(X, sample_weight, reset=fresh)
        if fresh:
            if data.n_rows < self.n_components:
                raise ValueError(
                    f"Expected n_samples >= n_components but got n_components = "
                    f"{self.n_components}, n_samples = {data.n_rows}"
                )
            data.shift = _weighted_nanmean(data)
            self._init_params(data, check_random_state(self.random_state))
            state = None
        if state is None:
            state = StepwiseState()
        self._reset_accept()
        with ChunkRunner(check_n_jobs(self.n_jobs)) as runner:
            stats = self.em_estep(data, runner)
        summed, _ = state.step(stats, stats.weight, kappa, t0, self.covariance_type)
        self.em_mstep(summed)
        self._set_derived()
        self.__dict__["_stepwise"] = state
        self.lower_bound_ = stats.loglik  # mean log-likelihood of this chunk (E-step)
        return self

    def _fit(self, X, sample_weight) -> _Rows:
        self._check_hyperparameters()
        self.__dict__.pop("_stepwise", None)  # a new fit: stepwise EM starts afresh
        data = self._prepare(X, sample_weight, reset=not (
            self.warm_start and hasattr(self, "converged_")))
        if data.n_rows < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {data.n_rows}"
            )
        data.shift = _weighted_nanmean(data)
        warm = self.warm_start and hasattr(self, "converged_")
        n_init = 1 if warm else self.n_init
        rs = check_random_state(self.random_state)
        if self.max_iter == 0:
            self._init_params(data, rs)
            self.converged_, self.n_iter_ = False, 0
            self.lower_bound_, self.lower_bounds_ = -np.inf, []
        else:
            self._fit_em(data, [rs] * n_init, check_n_jobs(self.n_jobs),
                         final_check=self.warm_start)
            return data
        self._set_derived()
        return data

    def _set_derived(self) -> None:
        self.precisions_cholesky_ = G.precision_cholesky(self.covariances_, self.covariance_type)
        self.precisions_ = G.precisions_from_cholesky(
            self.precisions_cholesky_, self.covariance_type
        )

    # ------------------------------------------------------------------ EM protocol
    # (emx._em.EMModel, for emx.distributed: a partition is a 2-D array of rows, NaN for
    # missing entries.)
    def em_describe(self, part):
        return describe_rows(part)

    def em_prepare(self, part, *, reset: bool = False) -> _Rows:
        X = np.asarray(part)
        if (not reset and X.ndim == 2 and X.size and X.dtype.kind == "f"
                and np.isnan(X).all(axis=0).any()):
            # A column with no observed value in this partition, observed in others (the
            # whole data are checked at initialisation): validate with one complete row
            # appended, then drop it.
            data = self._prepare(np.vstack([X, np.zeros((1, X.shape[1]))]), None,
                                 reset=False)
            data.X = data.X[:-1]
            data.chunks = _row_chunks(len(data.X))
            return data
        return self._prepare(X, None, reset=reset)

    def em_rows(self, data: _Rows) -> np.ndarray:
        return _nan_rows(data)

    def em_join(self, parts: list) -> np.ndarray:
        return np.concatenate(parts)

    def em_init(self, source, random_state) -> None:
        """Initialise as :meth:`fit` does, from all the rows of ``source`` (k-means and the
        like on a uniform sample above its ``max_rows``; one component from moments
        reduced over all rows); moments about the column means of all rows."""
        self._check_hyperparameters()
        self._reset_accept()  # no step accepted yet, as in fit
        K, D = self.n_components, source.n_features
        warm = self.warm_start and hasattr(self, "converged_")
        if warm and D != self.n_features_in_:
            raise ValueError(f"X has {D} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        needs_data = not warm and any(g is None for g in self._check_initial(D))
        rs = check_random_state(random_state)  # as fit draws it
        if not warm:
            self.n_features_in_ = D
        data = None
        if needs_data and source.n_rows <= source.max_rows:
            data = source.rows()[0]  # the serial initialisation: all rows, in order
            n = data.n_rows
            shift = _weighted_nanmean(data)
        else:
            n = source.n_rows
            shift = column_moments(source, _nan_rows)[0]
        if n < K:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{K}, n_samples = {n}")
        source.update(_with_shift, shift)
        if data is not None:
            data.shift = shift
            self._init_params(data, rs)
        elif not needs_data:  # every initial parameter given (or a warm start): rows unused
            self._init_params(self._prepare(np.zeros((1, D)), None, reset=False), rs)
        elif K == 1:
            # One component: the initial fit is the moments of all rows (missing entries at
            # the column means), as in a serial fit: reduce them rather than sample.
            gs = source.reduce(_filled_moments, self.covariance_type)
            estimated = self._estimate(gs, None, None)
            given = self._check_initial(D)
            self.weights_, self.means_, self.covariances_ = (
                g if g is not None else e for g, e in zip(given, estimated, strict=True))
        else:  # too many rows for the driver: a uniform sample of them
            sample = _nan_rows(source.rows()[0])
            sample = np.where(np.isnan(sample), shift, sample)  # as _Rows.filled() fills
            data = self._prepare(sample, None, reset=False)
            data.shift = shift
            self._init_params(data, rs)

    def em_finish(self, monitor: ConvergenceMonitor) -> None:
        if monitor.n_iter == 0:  # as fit with max_iter=0: the initial parameters, no EM
            self.converged_, self.n_iter_ = False, 0
            self.lower_bound_, self.lower_bounds_ = -np.inf, []
            self._set_derived()
            return
        super().em_finish(monitor)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most likely component of every row of ``X``."""
        self._fit(X, sample_weight)
        return self.predict(X)

    # ------------------------------------------------------------------ inference
    def _estimate_resp(self, X, want_fill: bool = False):
        """Responsibilities and log-likelihood of every row (rows with NaN use their observed
        entries; a row with nothing observed gets the weights and log-likelihood 0), and with
        ``want_fill`` the rows with missing entries filled by their conditional expectation."""
        dens, log_w = self._density(), self._log_weights()
        n, K = X.shape[0], self.n_components
        resp, log_norm = np.empty((n, K)), np.empty(n)
        nan_rows = np.isnan(X).any(axis=1)
        complete = np.flatnonzero(~nan_rows)
        Xc = X if len(complete) == n else np.ascontiguousarray(X[complete])
        filled = X.copy() if want_fill else None
        incomplete = np.flatnonzero(nan_rows)
        if len(incomplete):
            order, starts = pattern_runs(X[incomplete])
            rows = incomplete[order]
            Xm = np.ascontiguousarray(X[rows])
            # Blocks of at most CHUNK_ROWS rows (a pattern cut in two is factorised once per
            # piece; every row's result is the same whatever the cut).
            pieces = [(int(idx[0]), int(idx[-1]) + 1, local)
                      for idx, local in split_runs(np.arange(len(Xm), dtype=np.intp), starts,
                                                   CHUNK_ROWS)]
        else:
            pieces = []

        def block(task):
            missing, a, b, local = task
            if not missing:
                r, ll = self._responsibilities(dens, log_w, Xc[a:b])
                resp[complete[a:b]], log_norm[complete[a:b]] = r, ll
                return
            Xp = Xm[a:b]
            r, ll = self._missing_responsibilities(dens, log_w, Xp, local)
            resp[rows[a:b]], log_norm[rows[a:b]] = r, ll
            if want_fill:
                filled[rows[a:b]] = self._missing_fill(dens, Xp, local, r)

        tasks = [(False, a, min(a + CHUNK_ROWS, len(Xc)), None)
                 for a in range(0, len(Xc), CHUNK_ROWS)]
        tasks += [(True, a, b, local) for a, b, local in pieces]
        self._run_blocks(block, tasks)
        return resp, log_norm, filled

    def _validate_input(self, X) -> np.ndarray:
        return validate_data(
            self, X, reset=False, dtype=np.float64, order="C", ensure_all_finite="allow-nan"
        )

    def _sampler(self):
        K, D = self.means_.shape
        # Through the Cholesky factor of each covariance (positive definite after the fit):
        # no eigen-decomposition and no positive-semidefiniteness check with an absolute
        # tolerance, which spuriously warned on data of scale ~1e10 (covariances ~1e20).
        chol = np.linalg.cholesky(G.full_covars(self.covariances_, self.covariance_type, K, D))
        return lambda k, n, rs: self.means_[k] + rs.standard_normal(size=(n, D)) @ chol[k].T

    def _n_parameters(self) -> int:
        K, D = self.means_.shape
        cov = {
            "full": K * D * (D + 1) / 2, "diag": K * D, "tied": D * (D + 1) / 2, "spherical": K,
        }[self.covariance_type]
        return int(cov + K * D + K - 1)
