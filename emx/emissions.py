"""Emission models of the HMMs, as objects with one small interface.

An HMM is transitions plus an emission model: ``K`` output distributions, one per state.
:class:`emx.hmm.BaseHMM` owns the transitions, the forward-backward and decoding; everything
that depends on what the observations are (real vectors, symbols, counts) lives in an
:class:`Emission`. The public HMM classes (GaussianHMM, GMMHMM, CategoricalHMM, ...) are thin:
they hold hmmlearn's hyperparameters and fitted attributes and build their emission object with
``_make_emission()``; after initialisation and every M-step, the emission's fitted attributes
(:attr:`Emission.attrs`, hmmlearn's names) are copied back onto the estimator.

Data flow of one EM iteration (:meth:`emx.hmm.BaseHMM._estep`, ``_mstep``)::

    em = hmm._make_emission()                 # built from the estimator's current attributes
    loglik_fn = em.estep_fn()                 # per-E-step preparation (log weights, factors)
    for each chunk X of whole sequences:
        loglik, context = loglik_fn(X)        # (n, K) state log-likelihoods
        post = forward-backward(loglik)       # state posteriors (compiled)
        stats += em.stats(X, post, context)   # additive statistics
    em.mstep(stats, params); hmm <- em.attrs  # closed form, floors, priors
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from . import gaussian as G
from ._core import _gauss, check_ok
from ._validation import broadcast_prior, check_positive_int

__all__ = ["Emission", "GaussianEmission", "GMMEmission"]


class Emission:
    """Interface of an HMM emission model (subclass it; every method below but
    :meth:`far_loglik` and :meth:`validate` must be provided).

    An emission object is built fresh from its HMM's attributes whenever the HMM needs one
    (once per E-step, for initialisation, sampling and scoring) and is cheap to build. Its
    fitted parameters are attributes named as in hmmlearn (``means_``, ``covars_``,
    ``emissionprob_``, ...), listed in :attr:`attrs`; a parameter not yet set is absent
    (``hasattr`` is False) or None.

    Attributes
    ----------
    n_components : int
        Number of states.
    attrs : tuple of str
        Names of the fitted parameters, copied to and from the HMM.
    """

    attrs: tuple[str, ...] = ()
    n_components: int

    # ------------------------------------------------------------------ data, checks
    def validate(self, X: np.ndarray) -> np.ndarray:
        """Check observations (already a finite float64 C-contiguous 2-D array) for this
        emission model, e.g. non-negative integers for counts; return them (possibly
        converted). Raise ValueError naming the problem. Called by fit and by every
        inference method."""
        return X

    def check(self, n_features: int | None) -> int:
        """Validate the current parameters (shapes for ``n_features`` columns of
        observations, finiteness, normalisation) and hyperparameters; convert them to
        C-contiguous float64 in place. Raise ValueError naming the attribute. Return the
        number of columns of observations, taken from the parameters when ``n_features`` is
        None (a model whose parameters were set by hand, not fitted)."""
        raise NotImplementedError

    def n_parameters(self, params: str) -> int:
        """Number of free parameters estimated when ``params`` holds their letters (for
        :meth:`emx.hmm.BaseHMM.aic` / ``bic``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ EM
    def init(self, X: np.ndarray, init_params: str, random_state) -> None:
        """Initialise from all the training frames ``X``: every parameter whose letter is in
        ``init_params``, and every parameter not set yet."""
        raise NotImplementedError

    def estep_fn(self) -> Callable[[np.ndarray], tuple[np.ndarray, Any]]:
        """A function of a chunk of frames returning its ``(n, K)`` state log-likelihoods
        (a new array the caller may overwrite) and a context :meth:`stats` needs (or None).
        Work that depends only on the parameters is done here, once per E-step."""
        raise NotImplementedError

    def stats(self, X: np.ndarray, post: np.ndarray, context) -> Any:
        """Additive sufficient statistics of a chunk given its state posteriors ``post``
        (n, K): an object with ``+`` and ``+=``."""
        raise NotImplementedError

    def mstep(self, stats, params: str) -> None:
        """Update the parameters whose letters are in ``params`` from summed statistics
        (closed form, with priors and floors); a state with no data keeps its parameters."""
        raise NotImplementedError

    def log_prior(self, params: str) -> float:
        """Log density of the current parameters under the priors of those in ``params``
        (the constant-free part EM's objective needs); 0 without priors."""
        return 0.0

    # ------------------------------------------------------------------ inference, sampling
    def far_loglik(self, X: np.ndarray) -> np.ndarray:
        """Relative state log-likelihoods of frames whose log-likelihood underflows to -inf
        in every state (0 for the nearest state, -inf for others). Models that cannot
        underflow that way need not provide it."""
        raise ValueError("Frames far from every state (log-likelihood below -1.8e308).")

    def sample(self, states: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
        """One observation per entry of ``states``, shape (len(states), n_features)."""
        raise NotImplementedError


# ---------------------------------------------------------------------------- Gaussian
class GaussianEmission(Emission):
    """One Gaussian per state (:class:`emx.hmm.GaussianHMM`).

    Parameters are those of GaussianHMM (``covariance_type``, ``min_covar`` and the normal /
    inverse-gamma / inverse-Wishart priors, hmmlearn's conventions); fitted attributes
    ``means_`` (K, D) and ``covars_`` (shape by covariance type).
    """

    attrs = ("means_", "covars_")

    def __init__(self, n_components: int, covariance_type: str = "diag",
                 min_covar: float = 1e-3, means_prior=0, means_weight=0, covars_prior=1e-2,
                 covars_weight=1):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight

    def check(self, n_features: int | None) -> int:
        means = np.ascontiguousarray(self.means_, dtype=np.float64)
        K = self.n_components
        D = n_features if n_features is not None else (
            means.shape[1] if means.ndim == 2 else -1)
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
                broadcast_prior(value, name, shape)
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
        return D

    def init(self, X: np.ndarray, init_params: str, random_state) -> None:
        G.check_magnitude(X)
        K, D = self.n_components, X.shape[1]
        if "m" in init_params or getattr(self, "means_", None) is None:
            km = KMeans(n_clusters=K, random_state=random_state, n_init=10)
            # One thread: scikit-learn's k-means sums in an order that depends on its OpenMP
            # thread count, and the fit must not depend on n_jobs (on a 2-core machine its
            # threaded run was also 4x slower).
            with threadpool_limits(limits=1):
                self.means_ = km.fit(X).cluster_centers_
        if "c" in init_params or getattr(self, "covars_", None) is None:
            cv = G.data_covariance(X, X.mean(axis=0)) + self.min_covar * np.eye(D)
            # positive definite even when clusters far apart put min_covar below round-off
            cv = G.floor_covars(cv, "full", self.min_covar)
            self.covars_ = G.covars_from_template(cv, self.covariance_type, K)

    def estep_fn(self):
        density = G.GaussianDensity(self.means_, self.covars_, self.covariance_type)
        # Moments about each state's current mean (the same array for every chunk, so the
        # statistics add exactly): no cancellation for states far from the others.
        self._shift = np.array(self.means_, dtype=np.float64, order="C")
        return lambda X: (density(X), None)

    def stats(self, X, post, context):
        return G.GaussianStats.from_weights(X, post, self._shift, self.covariance_type)

    def _prior_kwargs(self) -> dict:
        return dict(means_prior=self.means_prior, means_weight=self.means_weight,
                    covars_prior=self.covars_prior, covars_weight=self.covars_weight)

    def mstep(self, stats: G.GaussianStats, params: str) -> None:
        if "m" in params:
            self.means_ = G.update_means(stats, self.means_, self.means_prior, self.means_weight)
        if "c" in params:
            old = self.covars_
            new = G.update_covars(
                stats, self.means_, self.covars_, self.covariance_type,
                min_covar=self.min_covar, **self._prior_kwargs(),
            )
            # Generalised EM: min_covar and the eigenvalue floor are not part of the
            # objective; where they would lower it (expected complete-data log-likelihood
            # plus log prior, with the new means), the previous covariances stay.
            if self._objective(stats, new) < self._objective(stats, old):
                new = old
            self.covars_ = new

    def _objective(self, stats: G.GaussianStats, covars) -> float:
        ct = self.covariance_type
        try:
            q = G.expected_loglik(stats, self.means_, covars, ct).sum()
            prior = G.log_prior(self.means_, covars, ct, **self._prior_kwargs())
        except (np.linalg.LinAlgError, ValueError):
            return -np.inf
        total = float(q + prior)
        return total if np.isfinite(total) else -np.inf

    def log_prior(self, params: str) -> float:
        if "m" not in params and "c" not in params:
            return 0.0
        return G.log_prior(self.means_, self.covars_, self.covariance_type,
                           **self._prior_kwargs())

    def n_parameters(self, params: str) -> int:
        K, D = self.means_.shape
        n = K * D if "m" in params else 0
        if "c" in params:
            n += {"spherical": K, "diag": K * D, "full": K * D * (D + 1) // 2,
                  "tied": D * (D + 1) // 2}[self.covariance_type]
        return n

    def far_loglik(self, X: np.ndarray) -> np.ndarray:
        K = self.n_components
        resp, log_norm = np.zeros((len(X), K)), np.full(len(X), -np.inf)
        G.resolve_far_rows(X, resp, log_norm, self.means_, self.covars_, self.covariance_type,
                           np.zeros(K))
        with np.errstate(divide="ignore"):
            return np.log(resp)

    def sample(self, states: np.ndarray, random_state) -> np.ndarray:
        K, D = self.means_.shape
        covs = G.full_covars(self.covars_, self.covariance_type, K, D)
        chol = np.linalg.cholesky(covs)
        X = random_state.standard_normal((len(states), D))
        for k in range(K):
            idx = states == k
            X[idx] = self.means_[k] + X[idx] @ chol[k].T
        return X


# ---------------------------------------------------------------------------- GMM
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


class GMMEmission(Emission):
    """A mixture of ``n_mix`` Gaussians per state (:class:`emx.hmm.GMMHMM`, and the pool of
    GMM states of :class:`emx.speech.Recognizer`).

    Parameters are those of GMMHMM; fitted attributes ``weights_`` (K, M), ``means_``
    (K, M, D), ``covars_`` ((K, M) 'spherical', (K, M, D) 'diag', (K, M, D, D) 'full',
    (K, D, D) 'tied': one full covariance shared by a state's Gaussians) and ``var_floor_``
    (D,), the variance floor applied after each M-step.

    One density evaluation per chunk: the per-Gaussian log-densities become the
    within-state responsibilities in place (the context handed to :meth:`stats`), and
    their per-state log-sum-exp the state log-likelihoods.
    """

    attrs = ("weights_", "means_", "covars_", "var_floor_")

    def __init__(self, n_components: int, n_mix: int = 1, covariance_type: str = "diag",
                 min_covar: float = 1e-3, weights_prior=1.0, means_prior=0.0,
                 means_weight=0.0, covars_prior=None, covars_weight=None,
                 var_floor: float = 0.01, weight_floor: float = 1e-5):
        self.n_components = n_components
        self.n_mix = n_mix
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.weights_prior = weights_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.var_floor = var_floor
        self.weight_floor = weight_floor

    @property
    def n_features(self) -> int:
        return self.means_.shape[2]

    # ------------------------------------------------------------------ checks and priors
    def check_hyperparameters(self) -> None:
        check_positive_int(self.n_mix, "n_mix")
        G.check_covariance_type(self.covariance_type)
        for name in ("min_covar", "var_floor", "weight_floor"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a non-negative float, got {v!r}.")
        if self.weight_floor * self.n_mix >= 1:
            raise ValueError("weight_floor * n_mix must be below 1.")

    def priors(self) -> dict:
        """Priors broadcast to their shapes, with hmmlearn's defaults for None."""
        K, M, D = self.n_components, self.n_mix, self.n_features
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
            weights_prior=broadcast_prior(self.weights_prior, "weights_prior", (K, M)),
            means_prior=broadcast_prior(self.means_prior, "means_prior", (K, M, D)),
            means_weight=broadcast_prior(self.means_weight, "means_weight", (K, M)),
            covars_prior=broadcast_prior(cp, "covars_prior", shapes[0]),
            covars_weight=broadcast_prior(cw, "covars_weight", shapes[1]),
        )

    def check(self, n_features: int | None) -> int:
        self.check_hyperparameters()
        weights = np.ascontiguousarray(self.weights_, dtype=np.float64)
        means = np.ascontiguousarray(self.means_, dtype=np.float64)
        K, M = self.n_components, self.n_mix
        D = n_features if n_features is not None else (
            means.shape[2] if means.ndim == 3 else -1)
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
        if getattr(self, "var_floor_", None) is None:
            self.var_floor_ = np.full(D, float(self.min_covar))
        return D

    def flat(self):
        """Means (K*M, D) and covariances of the K*M Gaussians, in a GaussianDensity type."""
        K, M, D = self.means_.shape
        ct = self.covariance_type
        means = self.means_.reshape(K * M, D)
        if ct == "tied":
            covars = np.repeat(self.covars_, M, axis=0)
        else:
            covars = self.covars_.reshape(G.covars_shape(ct, K * M, D))
        return means, covars, _FLAT_TYPE[ct]

    def n_parameters(self, params: str) -> int:
        K, M, D = self.means_.shape
        n = K * (M - 1) if "w" in params else 0
        n += K * M * D if "m" in params else 0
        if "c" in params:
            n += {"spherical": K * M, "diag": K * M * D, "full": K * M * D * (D + 1) // 2,
                  "tied": K * D * (D + 1) // 2}[self.covariance_type]
        return n

    # ------------------------------------------------------------------ E-step
    def estep_fn(self):
        means, covars, flat_type = self.flat()
        density = G.GaussianDensity(means, covars, flat_type)
        log_w = np.full(self.weights_.size, -np.inf)
        np.log(self.weights_.ravel(), out=log_w, where=self.weights_.ravel() > 0)
        K = self.n_components
        self._shift = np.array(means, dtype=np.float64, order="C")

        def emission(X):
            resp = density(X)
            loglik = np.empty((X.shape[0], K))
            check_ok(_gauss.responsibilities(resp, log_w, loglik))
            return loglik, resp

        return emission

    def stats(self, X, post, resp):
        """Gaussian statistics of the K*M Gaussians (moments about their means at
        :meth:`estep_fn`); ``resp`` (the context) is overwritten."""
        n, K, M = len(X), self.n_components, self.n_mix
        w = resp.reshape(n, K, M)
        w *= post[:, :, None]  # state posterior x mixture responsibility
        kind = "full" if self.covariance_type == "tied" else self.covariance_type
        return G.GaussianStats.from_weights(X, resp, self._shift, kind)

    def far_loglik(self, X: np.ndarray) -> np.ndarray:
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

    # ------------------------------------------------------------------ M-step
    def mstep(self, gs: G.GaussianStats, params: str) -> None:
        K, M, D = self.means_.shape
        pri = self.priors()
        n_km = gs.post.reshape(K, M)
        if "w" in params:
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
        if "m" in params:
            flat_means = G.update_means(gs, flat_means, mu0, lam)
            self.means_ = flat_means.reshape(K, M, D)
        if "c" in params:
            old = self.covars_
            new = G.update_covars(
                gs, flat_means, old, self.covariance_type, means_prior=mu0,
                means_weight=lam, covars_prior=pri["covars_prior"],
                covars_weight=pri["covars_weight"], min_covar=self.var_floor_,
                convention="gmmhmm", n_mix=M,
            )
            # Generalised EM: the variance floors are not part of the objective; where the
            # floored covariances would lower it (expected complete-data log-likelihood plus
            # log prior, with the new weights and means), the previous ones stay.
            if self._objective(gs, new, params) < self._objective(gs, old, params):
                new = old
            self.covars_ = new

    def _objective(self, gs: G.GaussianStats, covars, params: str) -> float:
        """Gaussian part of EM's objective for ``covars`` with the current weights and means:
        expected complete-data log-likelihood from ``gs`` plus the log prior."""
        K, M, D = self.means_.shape
        ct = self.covariance_type
        if ct == "tied":
            flat = np.repeat(covars, M, axis=0)
            kind = "full"
        else:
            flat = covars.reshape((K * M,) + covars.shape[2:])
            kind = ct
        try:
            prior = self._log_prior(covars, params)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            return -np.inf
        q = G.expected_loglik(gs, self.means_.reshape(K * M, D), flat, kind).sum()
        return float(q + prior) if np.isfinite(q + prior) else -np.inf

    def floor(self, covars):
        """Variances (eigenvalues, in units of the floor) at least ``var_floor_``."""
        return G.floor_covars(covars, self.covariance_type, self.var_floor_)

    def log_prior(self, params: str) -> float:
        """Log prior density of weights, means and covariances matching the M-step."""
        return self._log_prior(self.covars_, params)

    def _log_prior(self, covars, params: str) -> float:
        K, M, D = self.means_.shape
        pri = self.priors()
        lp = 0.0
        if "w" in params:
            a = pri["weights_prior"] - 1.0
            nz = self.weights_ > 0
            lp += float(np.sum(a[nz] * np.log(self.weights_[nz])))
        if "m" not in params and "c" not in params:
            return lp
        return lp + G.log_prior(
            self.means_.reshape(K * M, D), covars, self.covariance_type,
            means_prior=pri["means_prior"].reshape(K * M, D),
            means_weight=pri["means_weight"].reshape(K * M),
            covars_prior=pri["covars_prior"], covars_weight=pri["covars_weight"],
            convention="gmmhmm", n_mix=M,
        )

    # ------------------------------------------------------------------ init, sampling
    def init(self, X: np.ndarray, init_params: str, random_state) -> None:
        G.check_magnitude(X)
        K, M, D = self.n_components, self.n_mix, X.shape[1]
        rs = check_random_state(random_state)
        cv = G.data_covariance(X, X.mean(axis=0)) + self.min_covar * np.eye(D)
        # positive definite even when clusters far apart put min_covar below round-off
        cv = G.floor_covars(cv, "full", self.min_covar)
        n = len(X)
        global_var = (cv.diagonal() - self.min_covar) * (n - 1) / max(n, 1)
        self.var_floor_ = np.maximum(self.min_covar, self.var_floor * global_var)
        if "m" in init_params or getattr(self, "means_", None) is None:
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
        if "w" in init_params or getattr(self, "weights_", None) is None:
            self.weights_ = np.full((K, M), 1.0 / M)
        if "c" in init_params or getattr(self, "covars_", None) is None:
            ct = self.covariance_type
            if ct == "tied":
                self.covars_ = np.tile(cv, (K, 1, 1))
            else:
                flat = G.covars_from_template(cv, ct, K * M)
                self.covars_ = flat.reshape((K, M) + flat.shape[1:])

    def sample(self, states: np.ndarray, random_state) -> np.ndarray:
        K, M, D = self.means_.shape
        means, covars, flat_type = self.flat()
        chol = np.linalg.cholesky(G.full_covars(covars, flat_type, K * M, D))
        comp = np.empty(len(states), dtype=np.intp)
        for k in range(K):
            idx = np.flatnonzero(states == k)
            comp[idx] = k * M + random_state.choice(M, size=len(idx), p=self.weights_[k])
        X = random_state.standard_normal((len(states), D))
        for c in np.unique(comp):
            idx = comp == c
            X[idx] = means[c] + X[idx] @ chol[c].T
        return X

    def split(self, n_mix: int) -> None:
        """Grow every state to ``n_mix`` Gaussians by splitting (HTK's HHEd ``MU``): the
        heaviest Gaussian of each state becomes two with half its weight each, their means
        moved by +-0.2 standard deviations along every feature, until ``n_mix``."""
        n_mix = check_positive_int(n_mix, "n_mix")
        if n_mix < self.n_mix:
            raise ValueError(f"n_mix must be at least the current {self.n_mix}, got {n_mix}.")
        K, _, D = self.means_.shape
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
