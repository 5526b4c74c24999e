"""Variational Bayesian Gaussian mixture with scikit-learn's API.

The variational posterior over the parameters (Dirichlet or stick-breaking Beta weights,
Normal-Wishart components) is updated from the same additive Gaussian statistics as
:class:`emx.GaussianMixture`, and the E-step runs on the same compiled log-density and
responsibility kernels: the expected log weights and expected log determinants go where the
log weights went.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, digamma, gammaln, xlogy
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data
from threadpoolctl import threadpool_limits

from . import gaussian as G
from ._em import ChunkRunner, ConvergenceMonitor, LocalData, column_moments
from ._stats import AdditiveStats
from ._validation import check_n_jobs, check_positive_int, describe_rows
from .mixture import BaseMixture, GaussianMixture, _row_chunks

__all__ = ["BayesianGaussianMixture", "VBMixtureStats"]

_INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
_EPS10 = 10 * np.finfo(float).eps


@dataclass
class VBMixtureStats(AdditiveStats):
    """Additive statistics of a variational E-step.

    Attributes
    ----------
    log_norm_sum : float
        Sum over rows of the log normaliser of the unnormalised responsibilities.
    entropy : float
        Entropy of the responsibilities, ``-sum r log r``.
    count : float
        Number of rows.
    gaussian : emx.gaussian.GaussianStats
        Responsibility-weighted moments.
    """

    log_norm_sum: float
    entropy: float
    count: float
    gaussian: G.GaussianStats

    @property
    def loglik(self) -> float:
        """The lower bound once the summed statistics were seen by ``em_summed`` (the
        objective EM monitors), else the sum of the rows' log normalisers."""
        return self.__dict__.get("bound", self.log_norm_sum)


@dataclass
class _Data:
    X: np.ndarray
    chunks: list


def _ones_moments(data: _Data, shift) -> G.GaussianStats:
    return G.GaussianStats.from_weights(data.X, np.ones((len(data.X), 1)), shift, "tied")


class BayesianGaussianMixture(BaseMixture):
    """Variational Bayesian estimation of a Gaussian mixture.

    The same parameters, fitted attributes and lower bound as
    ``sklearn.mixture.BayesianGaussianMixture`` (the same settings and ``random_state`` give
    the same initialisation and the same fit to round-off), on emx's compiled kernels, with
    ``n_jobs`` threads (results do not depend on it) and :func:`emx.distributed.fit`.

    The monitored objective is the variational lower bound (ELBO) after each update of the
    parameters' posterior, in scikit-learn's convention: up to additive constants that
    depend only on the priors and the number of rows. It never decreases while the
    updates are the exact variational ones; ``reg_covar`` added to the empirical covariances
    makes them approximate, which matters only when it dominates them (constant data, a
    component on one point): there the bound can fall (scikit-learn's too), and emx warns
    (``EMDecreaseWarning``) and does not count a fall as convergence.

    Parameters
    ----------
    n_components : int
        Upper bound on the number of components; unused ones get weights near 0.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    tol : float
        Stop when the lower bound gains less than this.
    reg_covar : float
        Added to the diagonal of the components' empirical covariances.
    max_iter : int
    n_init : int
        Initialisations; the one with the highest final lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}
        Initial responsibilities, drawn as scikit-learn draws them.
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}
        Stick-breaking (truncated Dirichlet process) or Dirichlet prior on the weights.
    weight_concentration_prior : float, optional
        Concentration of the weight prior (default ``1 / n_components``).
    mean_precision_prior : float, optional
        Precision scale of the means' prior (default 1).
    mean_prior : array-like of shape (n_features,), optional
        Mean of the means' prior (default the mean of X).
    degrees_of_freedom_prior : float, optional
        Wishart degrees of freedom, > n_features - 1 (default n_features).
    covariance_prior : float or array-like, optional
        Prior of the covariances: (n_features, n_features) for 'full' and 'tied',
        (n_features,) 'diag', a float 'spherical' (default from the data covariance).
    random_state : int, RandomState or None
    warm_start : bool
        Start the next fit from the current posterior (then ``n_init`` is 1).
    verbose : int
    verbose_interval : int
        Accepted for scikit-learn compatibility.
    n_jobs : int or None
        Threads for the E-step.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
        Posterior expectations, as scikit-learn's.
    weight_concentration_ : ndarray or tuple of two ndarrays
        Dirichlet parameters, or the Beta parameters of the sticks.
    mean_precision_, degrees_of_freedom_ : ndarray
    weight_concentration_prior_, mean_precision_prior_, mean_prior_,
    degrees_of_freedom_prior_, covariance_prior_ : the priors used.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
    lower_bounds_ : list of float
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from emx import BayesianGaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(8, 1, (200, 2))])
    >>> bgm = BayesianGaussianMixture(n_components=6, random_state=0, max_iter=500).fit(X)
    >>> int((bgm.weights_ > 0.05).sum())
    2
    """

    _fitted_attrs = ("weights_", "means_", "covariances_", "weight_concentration_",
                     "mean_precision_", "degrees_of_freedom_")

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
        weight_concentration_prior_type: str = "dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
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
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ checks
    def _check_hyperparameters(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.max_iter, "max_iter", minimum=0)
        check_positive_int(self.n_init, "n_init")
        check_n_jobs(self.n_jobs)
        G.check_covariance_type(self.covariance_type)
        if self.init_params not in _INIT_PARAMS:
            raise ValueError(
                f"init_params must be one of {_INIT_PARAMS}, got {self.init_params!r}.")
        if self.weight_concentration_prior_type not in _PRIOR_TYPES:
            raise ValueError(
                f"weight_concentration_prior_type must be one of {_PRIOR_TYPES}, got "
                f"{self.weight_concentration_prior_type!r}.")
        if not (np.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be a non-negative float, got {self.tol!r}.")
        if not (np.isfinite(self.reg_covar) and self.reg_covar >= 0):
            raise ValueError(f"reg_covar must be a non-negative float, got {self.reg_covar!r}.")
        for name in ("weight_concentration_prior", "mean_precision_prior"):
            v = getattr(self, name)
            if v is not None and not (np.isscalar(v) and np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive float, got {v!r}.")

    def _resolve_priors(self, n: int, mean: np.ndarray, scatter: np.ndarray) -> None:
        """The priors' values (``*_prior_`` attributes): given ones checked, missing ones
        from the data (``mean`` and the (D, D) ``scatter`` about it of ``n`` rows)."""
        D = len(mean)
        K, ct = self.n_components, self.covariance_type
        self.weight_concentration_prior_ = (
            1.0 / K if self.weight_concentration_prior is None
            else float(self.weight_concentration_prior))
        self.mean_precision_prior_ = (
            1.0 if self.mean_precision_prior is None else float(self.mean_precision_prior))
        if self.mean_prior is None:
            self.mean_prior_ = mean.copy()
        else:
            m0 = np.asarray(self.mean_prior, dtype=np.float64)
            if m0.shape != (D,):
                raise ValueError(f"mean_prior should have the shape ({D},), but got {m0.shape}.")
            if not np.all(np.isfinite(m0)):
                raise ValueError("mean_prior must be finite.")
            self.mean_prior_ = m0.copy()
        nu = self.degrees_of_freedom_prior
        if nu is None:
            self.degrees_of_freedom_prior_ = float(D)
        elif np.isscalar(nu) and np.isfinite(nu) and nu > D - 1.0:
            self.degrees_of_freedom_prior_ = float(nu)
        else:
            raise ValueError(
                f"degrees_of_freedom_prior should be greater than {D - 1}, but got {nu!r}.")
        cp = self.covariance_prior
        if cp is None:
            cov = scatter / (n - 1) if n > 1 else np.zeros((D, D))
            self.covariance_prior_ = {
                "full": cov, "tied": cov, "diag": np.diag(cov).copy(),
                "spherical": float(np.diag(cov).mean()),
            }[ct]
            return
        cp = np.asarray(cp, dtype=np.float64)
        if ct in ("full", "tied"):
            if cp.shape != (D, D):
                raise ValueError(f"'{ct}' covariance_prior should have the shape ({D}, {D}), "
                                 f"but got {cp.shape}.")
            if not (np.all(np.isfinite(cp)) and np.allclose(cp, cp.T)):
                raise ValueError(f"'{ct}' covariance_prior should be symmetric and finite.")
            try:
                np.linalg.cholesky(cp)
            except np.linalg.LinAlgError:
                raise ValueError(
                    f"'{ct}' covariance_prior should be positive-definite.") from None
            self.covariance_prior_ = cp.copy()
        elif ct == "diag":
            if cp.shape != (D,):
                raise ValueError(f"'diag' covariance_prior should have the shape ({D},), but "
                                 f"got {cp.shape}.")
            if not (np.all(np.isfinite(cp)) and np.all(cp > 0)):
                raise ValueError("'diag' covariance_prior should be positive.")
            self.covariance_prior_ = cp.copy()
        else:
            if cp.ndim != 0 or not (np.isfinite(cp) and cp > 0):
                raise ValueError(
                    f"'spherical' covariance_prior should be a positive float, got {cp!r}.")
            self.covariance_prior_ = float(cp)

    # ------------------------------------------------------------------ variational updates
    def _update(self, gs: G.GaussianStats) -> dict:
        """The parameters' variational posterior from responsibility-weighted moments."""
        ct, K = self.covariance_type, len(gs.post)
        D = gs.sum1.shape[1]
        nk = gs.post + _EPS10
        xk = gs.shift + gs.sum1 / nk[:, None]
        scatter = G._scatter(gs, xk, ct)
        reg = self.reg_covar
        if ct == "full":
            sk = scatter / nk[:, None, None] + reg * np.eye(D)
        elif ct == "tied":
            sk = scatter / nk.sum() + reg * np.eye(D)
        elif ct == "diag":
            sk = scatter / nk[:, None] + reg
        else:
            sk = scatter.mean(axis=1) / nk + reg
        a0 = self.weight_concentration_prior_
        if self.weight_concentration_prior_type == "dirichlet_process":
            tail = np.concatenate([np.cumsum(nk[::-1])[-2::-1], [0.0]])
            conc = (1.0 + nk, a0 + tail)
        else:
            conc = a0 + nk
        b0, m0 = self.mean_precision_prior_, self.mean_prior_
        beta = b0 + nk
        means = (b0 * m0 + nk[:, None] * xk) / beta[:, None]
        nu0, W0inv = self.degrees_of_freedom_prior_, self.covariance_prior_
        diff = xk - m0
        shrink = b0 / beta  # weight of the prior mean's offset in the scatter
        if ct == "full":
            nu = nu0 + nk
            covs = (W0inv + nk[:, None, None] * sk
                    + (nk * shrink)[:, None, None] * np.einsum("kd,ke->kde", diff, diff))
            covs /= nu[:, None, None]
        elif ct == "tied":
            nu = nu0 + nk.sum() / K
            covs = (W0inv + sk * nk.sum() / K
                    + ((nk * shrink)[:, None] * diff).T @ diff / K) / nu
        elif ct == "diag":
            nu = nu0 + nk
            covs = W0inv + nk[:, None] * (sk + shrink[:, None] * diff**2)
            covs /= nu[:, None]
        else:
            nu = nu0 + nk
            covs = (W0inv + nk * (sk + shrink * np.mean(diff**2, axis=1))) / nu
        return {"weight_concentration_": conc, "mean_precision_": beta, "means_": means,
                "degrees_of_freedom_": nu, "covariances_": covs}

    def _expected_log_weights(self, conc) -> np.ndarray:
        if self.weight_concentration_prior_type == "dirichlet_process":
            a, b = conc
            dsum = digamma(a + b)
            before = np.concatenate([[0.0], np.cumsum(digamma(b) - dsum)[:-1]])
            return digamma(a) - dsum + before
        return digamma(conc) - digamma(np.sum(conc))

    def _log_weights(self) -> np.ndarray:
        """Per-component terms added to the Gaussian log-densities (with ``covariances_``)
        in the E-step: E[log pi_k] + 1/2 (E[log |Lambda_k|] - log |nu_k W_k|) - D / (2
        beta_k), the expected log parameters in place of the log parameters."""
        D = self.means_.shape[1]
        nu = np.asarray(self.degrees_of_freedom_, dtype=np.float64)
        log_lambda = D * np.log(2.0) + np.sum(
            digamma(0.5 * (nu - np.arange(D)[:, None])), axis=0)
        c = (self._expected_log_weights(self.weight_concentration_)
             + 0.5 * (log_lambda - D * np.log(nu)) - 0.5 * D / self.mean_precision_)
        return np.ascontiguousarray(np.broadcast_to(c, (self.n_components,)), dtype=np.float64)

    def _bound(self, params: dict, entropy: float) -> float:
        """Lower bound at the posterior ``params``, for the responsibilities of entropy
        ``entropy`` that gave them (constants of the priors and n left out, as
        scikit-learn's)."""
        ct, K = self.covariance_type, self.n_components
        D = params["means_"].shape[1]
        nu = params["degrees_of_freedom_"]
        chol = G.precision_cholesky(params["covariances_"], ct)
        if ct == "full":
            log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        elif ct == "tied":
            log_det = np.log(np.diag(chol)).sum()
        elif ct == "diag":
            log_det = np.log(chol).sum(axis=1)
        else:
            log_det = D * np.log(chol)
        log_det = log_det - 0.5 * D * np.log(nu)
        nu_arr = np.atleast_1d(nu)
        log_wishart = -(np.atleast_1d(nu * log_det) + nu_arr * D * 0.5 * np.log(2.0)
                        + np.sum(gammaln(0.5 * (nu_arr - np.arange(D)[:, None])), axis=0))
        log_wishart = K * float(log_wishart[0]) if ct == "tied" else float(log_wishart.sum())
        conc = params["weight_concentration_"]
        if self.weight_concentration_prior_type == "dirichlet_process":
            log_norm_weight = -float(np.sum(betaln(conc[0], conc[1])))
        else:
            log_norm_weight = float(gammaln(np.sum(conc)) - np.sum(gammaln(conc)))
        return float(entropy - log_wishart - log_norm_weight
                     - 0.5 * D * np.sum(np.log(params["mean_precision_"])))

    def _set_params(self, params: dict) -> None:
        for name, value in params.items():
            setattr(self, name, value)
        conc = self.weight_concentration_
        if self.weight_concentration_prior_type == "dirichlet_process":
            a, b = conc
            stick = a / (a + b)
            w = stick * np.concatenate([[1.0], np.cumprod(b / (a + b))[:-1]])
        else:
            w = np.asarray(conc, dtype=np.float64)
        self.weights_ = w / w.sum()

    # ------------------------------------------------------------------ data
    def _prepare(self, X, *, reset: bool) -> _Data:
        X = validate_data(self, X, reset=reset, dtype=np.float64, order="C",
                          ensure_min_samples=2 if reset else 1)
        G.check_magnitude(X)
        return _Data(X, _row_chunks(len(X)))

    def _validate_input(self, X) -> np.ndarray:
        return validate_data(self, X, reset=False, dtype=np.float64, order="C")

    def _density(self):
        return G.GaussianDensity(self.means_, self.covariances_, self.covariance_type)

    def _far_args(self):
        return self.means_, self.covariances_, self.covariance_type

    _sampler = GaussianMixture._sampler
    _n_parameters = GaussianMixture._n_parameters

    # ------------------------------------------------------------------ initialisation
    def _initial_resp(self, X: np.ndarray, rs) -> np.ndarray:
        """Initial responsibilities, drawn from ``rs`` as scikit-learn draws them."""
        n, K = len(X), self.n_components
        resp = np.zeros((n, K))
        if self.init_params == "kmeans":
            with threadpool_limits(limits=1):  # repeatable for any thread count
                labels = KMeans(n_clusters=K, n_init=1, random_state=rs).fit(X).labels_
            resp[np.arange(n), labels] = 1
        elif self.init_params == "random":
            resp = rs.uniform(size=(n, K))
            resp /= resp.sum(axis=1)[:, None]
        elif self.init_params == "random_from_data":
            if n < K:
                raise ValueError(f"init_params='random_from_data' needs n_samples >= "
                                 f"n_components={K}, got {n}.")
            resp[rs.choice(n, size=K, replace=False), np.arange(K)] = 1
        else:
            _, idx = kmeans_plusplus(X, K, random_state=rs)
            resp[idx, np.arange(K)] = 1
        return resp

    def _init_params(self, data: _Data, random_state) -> None:
        """Posterior from the initial responsibilities (unless a warm start continues)."""
        self._reset_accept()
        if self.warm_start and hasattr(self, "converged_"):
            return
        resp = self._initial_resp(data.X, random_state)
        gs = G.GaussianStats.from_weights(data.X, resp, None, self.covariance_type)
        self._set_params(self._update(gs))

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Estimate the variational posterior of the parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        self._check_hyperparameters()
        warm = self.warm_start and hasattr(self, "converged_")
        data = self._prepare(X, reset=not warm)
        n = len(data.X)
        if n < self.n_components:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{self.n_components}, n_samples = {n}")
        if not warm:
            self._priors_from(LocalData(data, n, data.X.shape[1]))
        rs = check_random_state(self.random_state)
        if self.max_iter == 0:
            self._init_params(data, rs)
            self.converged_, self.n_iter_ = False, 0
            self.lower_bound_, self.lower_bounds_ = -np.inf, []
            self._set_derived()
            return self
        n_init = 1 if warm else self.n_init
        self._fit_em(data, [rs] * n_init, check_n_jobs(self.n_jobs))
        return self

    def fit_predict(self, X, y=None):
        """Fit, then return the most likely component of every row of ``X``."""
        return self.fit(X).predict(X)

    def _priors_from(self, source) -> None:
        n = source.n_rows
        mean = column_moments(source, lambda d: d.X)[0]
        scatter = source.reduce(_ones_moments, mean).sum2
        self._resolve_priors(n, mean, scatter)

    def _set_derived(self) -> None:
        self.precisions_cholesky_ = G.precision_cholesky(self.covariances_, self.covariance_type)
        self.precisions_ = G.precisions_from_cholesky(
            self.precisions_cholesky_, self.covariance_type)

    # ------------------------------------------------------------------ EM protocol
    def em_monitor(self) -> ConvergenceMonitor:
        monitor = super().em_monitor()
        previous = self.__dict__.get("lower_bound_", -np.inf)
        if self.warm_start and hasattr(self, "converged_") and np.isfinite(previous):
            # A warm start continues the previous fit (as scikit-learn measures it).
            monitor.history.append(float(previous))
            monitor.objective.append(float(previous))
        return monitor

    def em_describe(self, part):
        return describe_rows(part)

    def em_prepare(self, part, *, reset: bool = False) -> _Data:
        return self._prepare(np.asarray(part), reset=reset)

    def em_rows(self, data: _Data) -> np.ndarray:
        return data.X

    def em_join(self, parts: list) -> np.ndarray:
        return np.concatenate(parts)

    def em_init(self, source, random_state) -> None:
        """Priors from all the rows of ``source`` (reduced), then the initial posterior from
        all the rows (a uniform sample above ``source.max_rows``)."""
        self._check_hyperparameters()
        self._reset_accept()
        warm = self.warm_start and hasattr(self, "converged_")
        D = source.n_features
        if warm:
            if D != self.n_features_in_:
                raise ValueError(f"X has {D} features, but {type(self).__name__} is "
                                 f"expecting {self.n_features_in_} features as input.")
            return
        self.n_features_in_ = D
        if source.n_rows < self.n_components:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{self.n_components}, n_samples = {source.n_rows}")
        self._priors_from(source)
        data = source.rows()[0]
        self._init_params(data, check_random_state(random_state))

    def em_estep(self, data: _Data, runner: ChunkRunner) -> VBMixtureStats:
        dens, log_w = self._density(), self._log_weights()
        kind = self.covariance_type
        shift = np.array(self.means_, dtype=np.float64, order="C")

        def accumulate(i):
            a, b = data.chunks[i]
            X = data.X[a:b]
            resp, log_norm = self._responsibilities(dens, log_w, X)
            entropy = -float(np.sum(xlogy(resp, resp)))
            gs = G.GaussianStats.from_weights(X, resp, shift, kind)
            return VBMixtureStats(float(log_norm.sum()), entropy, float(len(X)), gs)

        return runner.map_sum(accumulate, list(range(len(data.chunks))))

    def em_summed(self, stats: VBMixtureStats) -> VBMixtureStats:
        """The summed statistics with the lower bound after the update they give (the
        monitored objective)."""
        stats.bound = self._bound(self._update(stats.gaussian), stats.entropy)
        return stats

    def em_mstep(self, stats: VBMixtureStats) -> None:
        self._set_params(self._update(stats.gaussian))

    def _refused_fall(self, fall, loglik, last) -> bool:
        return False

    def em_finish(self, monitor: ConvergenceMonitor) -> None:
        if monitor.n_iter == 0:
            self.converged_, self.n_iter_ = False, 0
            self.lower_bound_, self.lower_bounds_ = -np.inf, []
            self._set_derived()
            return
        super().em_finish(monitor)
