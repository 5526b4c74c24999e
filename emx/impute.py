"""Missing-data imputation by EM: a Gaussian (or Gaussian mixture) fitted to incomplete data."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import describe_rows
from .mixture import GaussianMixture

__all__ = ["EMImputer"]


class EMImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Fill missing entries with their conditional expectation under a Gaussian model fitted
    by EM to the incomplete data.

    With ``n_components=1`` the model is one multivariate normal; with more, a Gaussian mixture
    (Ghahramani and Jordan 1994). The E-step uses each row's observed entries; rows sharing
    a missingness pattern share one factorisation per iteration, and the per-row work is
    compiled. ``transform`` replaces each missing entry by E[x_missing | x_observed] (for a
    mixture, averaged over the components' responsibilities given the observed entries).

    Parameters
    ----------
    n_components : int
        1 for a multivariate normal, more for a Gaussian mixture.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
        Covariance form of the components ('full' is what makes observed entries inform the
        missing ones; 'diag' fills with component means).
    missing_values : float or np.nan
        The placeholder for missing entries.
    max_iter : int
        Maximum EM iterations.
    tol : float
        Stop when the mean observed-data log-likelihood per row gains less than this.
    reg_covar : float
        Added to the diagonal of the covariances.
    n_init : int
        Number of initialisations (mixtures).
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}
        Initialisation of a mixture (on rows with missing entries set to column means).
    random_state : int, RandomState or None
    verbose : int
    n_jobs : int or None
        Threads for the E-step.

    Attributes
    ----------
    mean_, covariance_ : ndarray of shape (n_features,) and (n_features, n_features)
        The fitted normal (``n_components=1``).
    means_, covariances_, weights_ : ndarray
        The fitted mixture (``n_components > 1``).
    loglike_ : list of float
        Observed-data log-likelihood (summed over rows) at every iteration; never decreases.
    n_iter_ : int
    mixture_ : emx.GaussianMixture
        The fitted model.
    n_features_in_ : int

    Notes
    -----
    Rows with every entry missing are left out of the fit and are filled with the mean of the
    model. A column with no observed entry is an error (nothing can be estimated for it).
    Data without missing entries give the ordinary maximum-likelihood fit and ``transform``
    returns them unchanged.

    Examples
    --------
    Two strongly correlated columns: a missing entry is filled from its row's other entry.

    >>> import numpy as np
    >>> from emx import EMImputer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], 500)
    >>> X[0] = [2.0, np.nan]
    >>> filled = EMImputer().fit_transform(X)
    >>> bool(1.5 < filled[0, 1] < 2.0)
    True
    >>> bool(np.isnan(filled).any())
    False
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        missing_values=np.nan,
        max_iter: int = 100,
        tol: float = 1e-4,
        reg_covar: float = 1e-6,
        n_init: int = 1,
        init_params: str = "kmeans",
        random_state=None,
        verbose: int = 0,
        n_jobs: int | None = None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.missing_values = missing_values
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _validate_input(self, X, *, reset: bool) -> np.ndarray:
        """``X`` validated, as a float64 copy with ``missing_values`` coded as NaN."""
        X = validate_data(
            self, X, reset=reset, dtype=np.float64, order="C", ensure_all_finite="allow-nan",
            copy=True,
        )
        mv = self.missing_values
        if not (isinstance(mv, numbers.Real) and np.isnan(mv)):
            X[X == mv] = np.nan
        return X

    def fit(self, X, y=None):
        """Fit the model to incomplete ``X`` by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), with missing entries
        y : ignored

        Returns
        -------
        self
        """
        X = self._validate_input(X, reset=True)
        model = self._mixture().fit(X)
        return self._finish_fit(model, int(np.sum(~np.isnan(X).all(axis=1))))

    def fit_transform(self, X, y=None):
        """Fit the model to incomplete ``X`` by EM and return ``X`` with every missing entry
        replaced by its conditional expectation (``fit(X).transform(X)``, validating ``X``
        once).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), with missing entries
        y : ignored

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
        """
        X = self._validate_input(X, reset=True)
        model = self._mixture().fit(X)
        self._finish_fit(model, int(np.sum(~np.isnan(X).all(axis=1))))
        return model._estimate_resp(X, want_fill=True)[2]

    def _mixture(self) -> GaussianMixture:
        """The (unfitted) mixture this imputer fits."""
        return GaussianMixture(
            self.n_components,
            covariance_type=self.covariance_type,
            tol=self.tol,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            n_init=self.n_init,
            init_params=self.init_params,
            random_state=self.random_state,
            verbose=self.verbose,
            n_jobs=self.n_jobs,
        )

    def _finish_fit(self, model: GaussianMixture, n_used: int):
        """Fitted attributes from the fitted mixture (also used by emx.distributed)."""
        self.mixture_ = model
        self.loglike_ = [lb * n_used for lb in model.lower_bounds_]
        self.n_iter_ = model.n_iter_
        if self.n_components == 1:
            self.mean_ = model.means_[0]
            self.covariance_ = _full_covariances(model)[0]
        else:
            self.means_, self.covariances_, self.weights_ = (
                model.means_, model.covariances_, model.weights_,
            )
        return self

    # ------------------------------------------------------------------ EM protocol
    # (emx._em.EMModel, for emx.distributed: the mixture's, on rows with ``missing_values``
    # coded as NaN.)
    def em_describe(self, part):
        X = np.asarray(part)
        if X.ndim == 2:  # rows with only missing_values are not informative
            try:
                X = self._validate_input(X, reset=True)
            except ValueError as exc:
                return str(exc)
        return describe_rows(X)

    def em_prepare(self, part, *, reset: bool = False):
        return self._mixture().em_prepare(self._validate_input(part, reset=True), reset=reset)

    def em_rows(self, data) -> np.ndarray:
        return self._mixture().em_rows(data)

    def em_join(self, parts: list) -> np.ndarray:
        return np.concatenate(parts)

    def em_init(self, source, random_state) -> None:
        self._fitting = self._mixture()
        self._fitting.em_init(source, random_state)
        self._n_used = int(source.reduce(_n_rows))

    def em_estep(self, data, runner):
        return self._fitting.em_estep(data, runner)

    def em_summed(self, stats):
        return self._fitting.em_summed(stats)

    def em_log_prior(self) -> float:
        return self._fitting.em_log_prior()

    def em_mstep(self, stats) -> None:
        self._fitting.em_mstep(stats)

    def em_run(self, estep) -> None:
        model, n_used = self._fitting, self._n_used
        try:
            model.em_run(estep)  # E-steps reach the mixture through this imputer
        finally:
            del self._fitting, self._n_used
        self.n_features_in_ = model.n_features_in_
        self._finish_fit(model, n_used)

    def transform(self, X) -> np.ndarray:
        """``X`` with every missing entry replaced by its conditional expectation."""
        check_is_fitted(self, "mixture_")
        X = self._validate_input(X, reset=False)
        return self.mixture_._estimate_resp(X, want_fill=True)[2]


def _full_covariances(model: GaussianMixture) -> np.ndarray:
    from .gaussian import full_covars

    K, D = model.means_.shape
    return full_covars(model.covariances_, model.covariance_type, K, D)


def _n_rows(data) -> int:
    return data.n_rows
