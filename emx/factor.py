"""Factor analysis and mixtures of factor analyzers, fitted by EM.

Factor analysis models a row ``x`` (D features) as ``x = mean + W z + e`` with k latent factors
``z ~ N(0, I)`` and independent noise ``e ~ N(0, Psi)``, ``Psi`` diagonal: ``x`` is Gaussian
with covariance ``W W^T + Psi``. ``components_`` holds ``W^T`` (k, D) as in scikit-learn.

EM (Rubin and Thayer 1982) alternates

* E-step: the posterior of the factors, ``z | x ~ N(beta (x - mean), M^{-1})`` with
  ``M = I + W^T Psi^{-1} W`` and ``beta = M^{-1} W^T Psi^{-1}``, all taken from the SVD of
  the noise-scaled loadings ``Psi^{-1/2} W`` (D x k) rather than from ``M``, whose condition
  number is that SVD's squared (1e14 with noise at its floor: the normal equations lost
  every digit);
* M-step, from the data covariance ``S`` (D x D) about the mean:
  ``Ezz = I - beta W + beta S beta^T``, ``W* = S beta^T Ezz^{-1}``,
  ``Psi' = diag(S - W* beta S)``, and with parameter expansion (PX-EM, Liu, Rubin and Wu
  1998) ``W' = W* chol(Ezz)``: still EM (the likelihood never decreases), in about ten times
  fewer iterations than Rubin and Thayer's ``W' = W*`` on typical data.

For complete data ``S`` is computed once, so an iteration costs O(D^2 k) whatever the number of
rows. With missing entries (NaN), rows are grouped by missingness pattern and the E-step also
takes the expectation over the missing entries given the observed ones: the M-step then runs
on the expected mean and covariance. Every step is an EM step, so the log-likelihood of the
observed entries never decreases; a step that would lower it by round-off (noise at its
floor) is refused, and EM stops there (monotone by construction).

A mixture of factor analyzers (Ghahramani and Hinton 1996) has K such models with weights;
its E-step adds the component responsibilities, and each component's M-step is the one above
on its responsibility-weighted covariance.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from . import gaussian as G
from ._em import ChunkRunner, ConvergenceMonitor, column_moments, run_em, user_stacklevel
from ._missing import missing_patterns
from ._stats import AdditiveStats, fixed
from ._validation import check_n_jobs, check_positive_int, describe_rows
from .mixture import (
    BaseMixture,
    MixtureStats,
    MonotoneSteps,
    _row_chunks,
    _Rows,
    mixture_weights,
)

__all__ = ["FactorAnalysis", "MixtureOfFactorAnalyzers", "FactorStats", "orthomax"]

_LOG_2PI = np.log(2.0 * np.pi)
# Rows per chunk for row-wise work (E-step with missing entries, scoring, mixtures).
CHUNK_ROWS = 4096
# Noise variances are floored at this fraction of the column's variance.
_REL_NOISE_FLOOR = 1e-12
# Initial loadings: directions whose scaled eigenvalue is at most 1 (no variance left for a
# factor) start with this small squared loading instead of 0, a fixed point EM cannot leave.
_INIT_LOADING = 1e-3
_ROTATIONS = {"varimax": 1.0, "quartimax": 0.0}


# ============================================================================ shared algebra
def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (
        np.isfinite(tol) and tol >= 0
    ):
        raise ValueError(f"tol must be a non-negative float, got {tol!r}.")
    return float(tol)


def _init_loadings(S: np.ndarray, psi: np.ndarray, n_factors: int) -> np.ndarray:
    """Loadings that maximise the likelihood of covariance ``S`` for fixed noise ``psi``.

    With ``C = Psi^{-1/2} S Psi^{-1/2} = U diag(lam) U^T`` (eigenvalues in decreasing order),
    the maximiser is ``W = Psi^{1/2} U_k diag(sqrt(max(lam_k - 1, 0)))``. Directions with
    ``lam <= 1`` get a small positive loading instead of 0, from which EM can still move.

    Parameters
    ----------
    S : ndarray of shape (D, D)
        Covariance of the data.
    psi : ndarray of shape (D,)
        Positive noise variances.
    n_factors : int

    Returns
    -------
    W : ndarray of shape (D, n_factors)
    """
    s = np.sqrt(psi)
    lam, U = np.linalg.eigh(S / np.outer(s, s))
    lam, U = lam[::-1][:n_factors], U[:, ::-1][:, :n_factors]
    return s[:, None] * U * np.sqrt(np.maximum(lam - 1.0, _INIT_LOADING))


def _scaled_svd(W: np.ndarray, psi: np.ndarray):
    """``(sd, U, s, Qt)``: ``sd = sqrt(psi)`` and the thin SVD ``Psi^{-1/2} W = U diag(s) Qt``.

    Every posterior quantity is taken from it rather than from ``M = I + W^T Psi^{-1} W``,
    whose condition number (the square of the scaled loadings') reaches 1e14 when noise
    variances sit at their floor: ``M^{-1} = Qt^T diag(1 / (1 + s^2)) Qt`` and
    ``log det M = sum log(1 + s^2)`` hold to round-off whatever the condition.
    """
    sd = np.sqrt(psi)
    D, k = W.shape
    if k == 0:
        return sd, np.zeros((D, 0)), np.zeros(0), np.zeros((0, 0))
    U, sv, Qt = np.linalg.svd(W / sd[:, None], full_matrices=False)
    return sd, U, sv, Qt


def _posterior_operator(W: np.ndarray, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(beta, M^{-1})`` with ``M = I + W^T Psi^{-1} W`` and ``beta = M^{-1} W^T Psi^{-1}``
    (from the SVD of the scaled loadings: no normal equations)."""
    sd, U, sv, Qt = _scaled_svd(W, psi)
    d = 1.0 / (1.0 + sv * sv)
    beta = (Qt.T * (sv * d)) @ (U.T / sd)
    Minv = (Qt.T * d) @ Qt
    return beta, 0.5 * (Minv + Minv.T)


def _fa_mstep(
    W: np.ndarray, psi: np.ndarray, S: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One parameter-expanded EM update of ``(W, psi)`` for data covariance ``S``.

    The E-step and the regression M-step are Rubin and Thayer's: ``W* = S beta^T Ezz^{-1}``,
    ``psi' = diag(S - W* beta S)``. Parameter expansion (PX-EM, Liu, Rubin and Wu 1998) also
    fits the factors' covariance, which is ``Ezz``, and folds it back into the loadings:
    ``W' = W* chol(Ezz)``. This is EM in the expanded model, so the likelihood never
    decreases, and it needs far fewer iterations than the plain update ``W' = W*``.
    ``W*`` maximises the expected complete-data log-likelihood over the loadings whatever
    the noise, so flooring ``psi'`` gives the maximiser under the floor: still EM.

    Returns the new loadings and the unfloored noise variances. O(D^2 k).
    """
    beta, Minv = _posterior_operator(W, psi)
    SB = S @ beta.T  # (D, k): sum over rows of (x - mean) E[z]^T / n
    Ezz = Minv + beta @ SB  # = M^{-1} + beta S beta^T: positive definite
    Ezz = 0.5 * (Ezz + Ezz.T)
    W_star = np.linalg.solve(Ezz, SB.T).T
    psi_new = np.diag(S) - np.einsum("dk,dk->d", W_star, SB)
    return W_star @ np.linalg.cholesky(Ezz), psi_new


def _gaussian_loglik(W: np.ndarray, psi: np.ndarray, scatter: np.ndarray, n: float) -> float:
    """Total log-likelihood of ``n`` rows whose scatter matrix about the model mean is
    ``scatter``, under N(mean, W W^T + Psi). O(D^2 k), in the coordinates scaled by the
    noise (``C = Psi^{1/2} (I + U diag(s^2) U^T) Psi^{1/2}``, see :func:`_scaled_svd`)."""
    D = W.shape[0]
    sd, U, sv, _ = _scaled_svd(W, psi)
    logdet = np.log(psi).sum() + np.log1p(sv * sv).sum()
    St = scatter / np.outer(sd, sd)
    shrink = sv * sv / (1.0 + sv * sv)
    trace = np.trace(St) - shrink @ np.einsum("dj,de,ej->j", U, St, U)
    return float(-0.5 * (n * D * _LOG_2PI + n * logdet + trace))


def orthomax(
    loadings: np.ndarray, gamma: float, tol: float = 1e-10, max_iter: int = 1000
) -> np.ndarray:
    """Orthogonal rotation of ``loadings`` (D, k) maximising the orthomax criterion.

    The criterion is ``sum_j [ sum_d L_dj^4 - (gamma / D) (sum_d L_dj^2)^2 ]`` for the rotated
    loadings ``L = loadings R``: ``gamma = 1`` is varimax, ``gamma = 0`` quartimax. Each
    iteration replaces ``R`` by the orthogonal polar factor of the criterion's gradient
    (from an SVD), which never decreases the criterion; iterations stop when the sum of the
    gradient's singular values grows by less than ``tol`` (relative).

    Parameters
    ----------
    loadings : ndarray of shape (n_features, n_factors)
    gamma : float
    tol : float
    max_iter : int

    Returns
    -------
    rotated : ndarray of shape (n_features, n_factors)
        ``loadings @ R`` with ``R`` orthogonal.
    """
    D, k = loadings.shape
    R = np.eye(k)
    if k < 2:
        return loadings.copy()
    previous = None
    for _ in range(max_iter):
        L = loadings @ R
        L2 = L * L
        grad = loadings.T @ (L2 * L - (gamma / D) * L * L2.sum(axis=0))
        U, s, Vt = np.linalg.svd(grad)
        R = U @ Vt
        value = s.sum()
        if previous is not None and value <= previous * (1.0 + tol):
            break
        previous = value
    return loadings @ R


def _canonical_loadings(W: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """``W`` rotated so that ``W^T Psi^{-1} W`` is diagonal, decreasing (scikit-learn's
    orientation), each column's largest-magnitude entry made positive."""
    if W.shape[1] == 0:
        return W.copy()
    V = W / np.sqrt(psi)[:, None]
    _, Q = np.linalg.eigh(V.T @ V)
    W = W @ Q[:, ::-1]
    big = np.abs(W).argmax(axis=0)
    signs = np.sign(W[big, np.arange(W.shape[1])])
    signs[signs == 0] = 1.0
    return W * signs


# ============================================================================ statistics
@dataclass
class FactorStats(AdditiveStats):
    """Additive statistics of a factor-analysis E-step: (expected) moments of the rows.

    Attributes
    ----------
    count : float
        Number of rows.
    sum1 : ndarray of shape (n_features,)
        Sum over rows of ``E[x] - shift``.
    sum2 : ndarray of shape (n_features, n_features)
        Sum over rows of ``E[(x - shift)(x - shift)^T]`` (expectations over missing entries
        given the observed ones; the rows themselves when complete).
    shift : ndarray of shape (n_features,)
        Fixed point the moments are taken about.
    loglik : float
        Log-likelihood of the observed entries under the E-step's parameters.
    """

    count: float
    sum1: np.ndarray
    sum2: np.ndarray
    shift: np.ndarray = fixed()
    loglik: float = 0.0

    def mean(self) -> np.ndarray:
        """Mean of the (expected) rows."""
        return self.shift + self.sum1 / self.count

    def scatter(self, about: np.ndarray) -> np.ndarray:
        """Sum over rows of ``E[(x - about)(x - about)^T]``."""
        d = about - self.shift
        cross = np.outer(self.sum1, d)
        return self.sum2 - cross - cross.T + self.count * np.outer(d, d)

    def covariance(self) -> np.ndarray:
        """Covariance of the (expected) rows about their mean (divided by ``count``)."""
        d = self.sum1 / self.count
        return self.sum2 / self.count - np.outer(d, d)


# ============================================================================ patterns
class _PatternPosterior:
    """Posterior of the factors given the observed entries, for each missingness pattern.

    For pattern p with observed columns o: ``M_p = I + W_o^T Psi_o^{-1} W_o`` (k x k), so
    ``z | x_o ~ N(M_p^{-1} W_o^T Psi_o^{-1} (x_o - mean_o), M_p^{-1})``, and the observed
    marginal N(mean_o, W_o W_o^T + Psi_o) has ``log det = log det M_p + sum_o log psi``.
    All patterns are handled at once (no Python loop over patterns).

    Everything is computed from the singular value decomposition of the scaled loadings
    ``V_o = Psi_o^{-1/2} W_o = U diag(s) Q^T``: ``log det M_p = sum log(1 + s^2)``,
    ``M_p^{-1} = Q diag(1 / (1 + s^2)) Q^T`` and ``E[z | x_o] = Q diag(s / (1 + s^2)) U^T r``
    for the scaled residual ``r = Psi_o^{-1/2} (x_o - mean_o)``; the quadratic form is
    ``|r - V_o E[z]|^2 + |E[z]|^2`` (a sum of squares, no cancellation). Forming ``M_p``
    (normal equations) squares the condition number: with noise variances at their floor,
    ``M_p`` reaches 1e14 and the log-likelihood computed from it was wrong by up to 1e5
    (issue 16).
    """

    def __init__(
        self, W: np.ndarray, psi: np.ndarray, mean: np.ndarray, observed: np.ndarray
    ) -> None:
        self.W, self.psi, self.mean = W, psi, mean
        self.observed = observed
        P, D = observed.shape
        k = W.shape[1]
        obs = observed.astype(np.float64)
        self.sd = np.sqrt(psi)
        self.V = W / self.sd[:, None]
        if k:
            U, sv, Qt = np.linalg.svd(obs[:, :, None] * self.V, full_matrices=False)
        else:
            U, sv, Qt = np.zeros((P, D, 0)), np.zeros((P, 0)), np.zeros((P, 0, 0))
        d = 1.0 / (1.0 + sv * sv)
        Q = np.swapaxes(Qt, 1, 2)
        # M^{-1} = F F^T with F = Q diag(1 / sqrt(1 + s^2))
        self.factor = Q * np.sqrt(d)[:, None, :]
        self.Minv = (Q * d[:, None, :]) @ Qt
        # E[z | x_o] = B_p r: (P, k, D)
        self.B = (Q * (sv * d)[:, None, :]) @ np.swapaxes(U, 1, 2)
        self.logdet = np.log1p(sv * sv).sum(axis=1) + obs @ np.log(psi)
        self.n_obs = obs.sum(axis=1)

    def rows(
        self, X: np.ndarray, pid: np.ndarray, complete: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For rows ``X`` of patterns ``pid``: (residuals with missing entries 0, E[z|x_o],
        observed-marginal log-densities)."""
        if complete:
            R = X - self.mean
        else:
            R = np.where(self.observed[pid], X - self.mean, 0.0)
        # Rows with huge residuals are scaled by a power of two (exact) so that the squares
        # cannot overflow.
        top = np.max(np.abs(R), axis=1) if R.shape[1] else np.zeros(len(R))
        big = top > 1e100
        if np.any(big):
            scale = np.ones(len(R))
            scale[big] = 2.0 ** np.floor(np.log2(top[big]))
            R = R / scale[:, None]
        r = R / self.sd
        n, D = R.shape
        k = self.W.shape[1]
        if len(self.B) == 1:
            Z = r @ self.B[0].T
        else:
            Z = np.empty((n, k))
            step = max(1, (1 << 20) // max(k * D, 1))
            for a in range(0, n, step):
                Z[a : a + step] = np.einsum(
                    "nkd,nd->nk", self.B[pid[a : a + step]], r[a : a + step]
                )
        fit = Z @ self.V.T
        resid = r - fit if complete else np.where(self.observed[pid], r - fit, 0.0)
        quad = np.einsum("nd,nd->n", resid, resid) + np.einsum("nk,nk->n", Z, Z)
        if np.any(big):
            with np.errstate(over="ignore"):
                quad = quad * scale * scale  # inf when not representable
                R, Z = R * scale[:, None], Z * scale[:, None]
        ll = -0.5 * (self.n_obs[pid] * _LOG_2PI + self.logdet[pid] + quad)
        return R, Z, ll


def _group_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(observed masks (P, D), pattern of each row (n,), complete?) for the rows of ``X``."""
    n, D = X.shape
    if not np.isnan(X).any():
        return np.ones((1, D), dtype=bool), np.zeros(n, dtype=np.intp), True
    patterns = missing_patterns(X)
    pid = np.empty(n, dtype=np.intp)
    for i, p in enumerate(patterns):
        pid[p.rows] = i
    return np.array([p.observed for p in patterns]), pid, False


@dataclass
class _FAData:
    """What the E-step needs: fixed moments (complete data), or the rows and their
    missingness patterns."""

    shift: np.ndarray
    floor: np.ndarray
    init_cov: np.ndarray  # covariance the initial loadings are taken from
    stats: FactorStats | None = None  # complete data: moments computed once
    X: np.ndarray | None = None  # rows with missing entries (none entirely missing)
    pid: np.ndarray | None = None
    observed: np.ndarray | None = None  # (P, D) bool
    counts: np.ndarray | None = None  # rows per pattern
    chunks: list | None = None


# ============================================================================ FactorAnalysis
class FactorAnalysis(MonotoneSteps, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                     BaseEstimator):
    """Factor analysis fitted by EM (Rubin and Thayer 1982), with missing values.

    Same parameters, attributes and methods as ``sklearn.decomposition.FactorAnalysis``
    (its SVD options are accepted and unused), converging to the same maximum of the
    likelihood. EM runs on the data covariance, computed once, so an iteration costs
    O(n_features^2 n_components) independently of the number of rows. The M-step is
    parameter-expanded (PX-EM, Liu, Rubin and Wu 1998): Rubin and Thayer's update followed by
    folding the factors' fitted covariance into the loadings, which keeps EM's monotonicity
    and converges much faster.

    Missing entries (NaN) are handled by EM: rows are grouped by missingness pattern, and the
    E-step takes expectations over the missing entries given the observed ones. Rows with
    every entry missing carry no information and are skipped (they count in neither
    ``loglike_`` nor the estimates); a column with no observed entry raises ValueError.

    Parameters
    ----------
    n_components : int or None
        Number of factors k (None: n_features).
    tol : float
        Stop when the total log-likelihood gains less than this in one iteration.
    copy : bool
        Accepted for scikit-learn compatibility; ``X`` is never modified.
    max_iter : int
        Maximum number of EM iterations.
    noise_variance_init : array-like of shape (n_features,), optional
        Initial noise variances (default: the variances of the columns). The initial
        loadings then maximise the likelihood for these noise variances (an eigenvalue
        decomposition of the scaled data covariance).
    svd_method : {'randomized', 'lapack'}
        Accepted (and validated) for scikit-learn compatibility, so that ``set_params`` and
        grid searches written for scikit-learn run; unused: EM here works on the data
        covariance, with no SVD of the data, and gives the same maximum either way.
    iterated_power : int
        Accepted for scikit-learn compatibility (a non-negative integer); unused, as
        ``svd_method``.
    rotation : {None, 'varimax', 'quartimax'}
        Orthogonal rotation applied to ``components_`` after the fit (it changes neither the
        covariance nor the likelihood).
    random_state : int, RandomState or None
        Accepted for scikit-learn compatibility; the initialisation is deterministic.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Loadings ``W^T``. Without rotation, oriented as scikit-learn's (rows orthogonal in the
        metric ``Psi^{-1}``, in decreasing order), each row's largest entry positive.
    noise_variance_ : ndarray of shape (n_features,)
    mean_ : ndarray of shape (n_features,)
    loglike_ : list of float
        Total log-likelihood of the (observed entries of the) data at every iteration,
        under that iteration's parameters (before its M-step); never decreasing. The
        fitted parameters are those of the last iteration, so ``loglike_[-1]`` equals
        ``score_samples(X).sum()`` (as in scikit-learn).
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names.

    Notes
    -----
    Noise variances are floored at 1e-12 times the column's variance (a Heywood case ends at
    the floor).

    Examples
    --------
    Five correlated columns driven by two factors:

    >>> import numpy as np
    >>> from emx import FactorAnalysis
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(5, 2))
    >>> X = rng.normal(size=(500, 2)) @ W.T + 0.1 * rng.normal(size=(500, 5))
    >>> fa = FactorAnalysis(n_components=2, random_state=0).fit(X)
    >>> fa.components_.shape, fa.transform(X).shape
    ((2, 5), (500, 2))
    >>> bool(np.all(fa.noise_variance_ < 0.05))
    True
    """

    def __init__(
        self,
        n_components: int | None = None,
        *,
        tol: float = 1e-2,
        copy: bool = True,
        max_iter: int = 1000,
        noise_variance_init=None,
        svd_method: str = "randomized",
        iterated_power: int = 3,
        rotation: str | None = None,
        random_state=0,
    ):
        self.n_components = n_components
        self.tol = tol
        self.copy = copy
        self.max_iter = max_iter
        self.noise_variance_init = noise_variance_init
        self.svd_method = svd_method
        self.iterated_power = iterated_power
        self.rotation = rotation
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ checks
    def _check_hyperparameters(self, D: int) -> int:
        k = D if self.n_components is None else self.n_components
        check_positive_int(k, "n_components", minimum=0)
        if k > D:
            raise ValueError(
                f"n_components={k} must be at most n_features={D} (or None)."
            )
        check_positive_int(self.max_iter, "max_iter")
        _check_tol(self.tol)
        if self.svd_method not in ("lapack", "randomized"):
            raise ValueError(
                f"svd_method must be 'lapack' or 'randomized', got {self.svd_method!r}."
            )
        check_positive_int(self.iterated_power, "iterated_power", minimum=0)
        if self.rotation is not None and self.rotation not in _ROTATIONS:
            raise ValueError(
                f"rotation must be None, 'varimax' or 'quartimax', got {self.rotation!r}."
            )
        return k

    def _check_noise_init(self, D: int) -> np.ndarray | None:
        if self.noise_variance_init is None:
            return None
        psi = np.asarray(self.noise_variance_init, dtype=np.float64)
        if psi.shape != (D,):
            raise ValueError(
                f"noise_variance_init must have shape ({D},) (one per feature), got {psi.shape}."
            )
        if not np.all(np.isfinite(psi)) or np.any(psi <= 0):
            raise ValueError("noise_variance_init must be finite and positive.")
        return psi.copy()

    def _prepare(self, X: np.ndarray) -> _FAData:
        """What EM needs from ``X`` (moments, or rows grouped by missingness pattern)."""
        n, D = X.shape
        missing = np.isnan(X)
        if not missing.any():
            shift = X.mean(axis=0)
            gs = G.GaussianStats.from_weights(X, np.ones((n, 1)), shift, "tied")
            stats = FactorStats(float(n), gs.sum1[0], gs.sum2, shift)
            var = np.diag(stats.covariance()).copy()
            return _FAData(shift, _noise_floor(var), stats.covariance(), stats=stats)
        empty_cols = np.flatnonzero(missing.all(axis=0))
        if empty_cols.size:
            raise ValueError(
                f"Column(s) {empty_cols.tolist()} of X have no observed value (all NaN): "
                "FactorAnalysis cannot estimate them. Drop these columns first."
            )
        keep = ~missing.all(axis=1)  # rows with nothing observed carry no information
        X = np.ascontiguousarray(X[keep]) if not keep.all() else X
        observed, pid, _ = _group_rows(X)
        # Rows in pattern order: each chunk then touches few patterns.
        order = np.argsort(pid, kind="stable")
        X, pid = np.ascontiguousarray(X[order]), pid[order]
        shift = np.nanmean(X, axis=0)
        var = np.nanvar(X, axis=0)
        filled = np.where(np.isnan(X), shift, X)
        S0 = np.cov(filled, rowvar=False, bias=True).reshape(D, D)
        S0[np.diag_indices(D)] = var
        n = X.shape[0]
        data = _FAData(
            shift, _noise_floor(var), S0, X=X, pid=pid, observed=observed,
            counts=np.bincount(pid, minlength=len(observed)).astype(np.float64),
            chunks=[(a, min(a + CHUNK_ROWS, n)) for a in range(0, n, CHUNK_ROWS)],
        )
        return data

    # ------------------------------------------------------------------ EM parts
    _fitted_attrs = ("mean_", "_W", "noise_variance_")

    def _init_params(self, data: _FAData, random_state=None) -> None:
        """Noise from ``noise_variance_init`` (or the column variances), then the loadings
        that maximise the likelihood for that noise (deterministic: no random draw)."""
        D = len(data.shift)
        psi = self._check_noise_init(D)
        if psi is None:
            psi = np.maximum(np.diag(data.init_cov), data.floor)
        else:
            # A start outside the data's scale (1e-300, 1e300) is brought into the range
            # where noise precisions and Woodbury products stay representable: between the
            # noise floor and the column's variance (a larger noise is never the optimum).
            psi = np.clip(psi, data.floor, np.maximum(np.diag(data.init_cov), data.floor))
        self._reset_accept()  # no step accepted yet (see em_summed)
        self.mean_ = data.shift.copy()
        self._W = _init_loadings(data.init_cov, psi, self._n_factors)
        self.noise_variance_ = psi

    def _refused_fall(self, fall: float, loglik: float, last: dict) -> bool:
        # Monotone by construction (MonotoneSteps.em_summed): a step whose log-likelihood
        # (the value the monitor records) is below the last accepted one is not taken. In
        # exact arithmetic the floored PX-EM step never lowers the likelihood (see
        # _fa_mstep), so this only catches round-off at the noise floor (and a non-finite
        # value).
        return not fall <= 0

    def em_estep(self, data: _FAData, runner: ChunkRunner) -> FactorStats:
        W, psi, mu = self._W, self.noise_variance_, self.mean_
        if data.stats is not None:
            s = data.stats
            ll = _gaussian_loglik(W, psi, s.scatter(mu), s.count)
            return FactorStats(s.count, s.sum1, s.sum2, s.shift, ll)
        post = _PatternPosterior(W, psi, mu, data.observed)
        shift = data.shift

        def accumulate(i):
            a, b = data.chunks[i]
            X, pid = data.X[a:b], data.pid[a:b]
            _, Z, ll = post.rows(X, pid, complete=False)
            E = np.where(np.isnan(X), mu + Z @ W.T, X) - shift
            return FactorStats(float(b - a), E.sum(axis=0), E.T @ E, shift, float(ll.sum()))

        stats = runner.map_sum(accumulate, range(len(data.chunks)))
        stats.sum2 += _missing_block_covariance(post, data.counts)
        return stats

    def em_log_prior(self) -> float:
        return 0.0

    def em_mstep(self, stats: FactorStats) -> None:
        if self._step_refused():
            return  # the step from these statistics was refused: the parameters stay
        mean = stats.mean()
        S = stats.scatter(mean) / stats.count
        W, psi = _fa_mstep(self._W, self.noise_variance_, S)
        # W* maximises the expected complete-data log-likelihood whatever the noise, so the
        # floored noise is the maximiser under the floor: an EM step (never lowers the
        # likelihood; em_summed refuses a step that does so by round-off).
        psi = G.floor_covars(psi, "diag", self._floor)  # the noise is a diagonal covariance
        self.mean_, self._W = mean, W
        self.noise_variance_ = psi

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Fit the factor analysis model by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; NaN marks missing entries.
        y : ignored

        Returns
        -------
        self : FactorAnalysis
        """
        X = validate_data(self, X, dtype=np.float64, order="C", ensure_all_finite="allow-nan")
        G.check_magnitude(X)
        self._check_hyperparameters(X.shape[1])
        return self._fit_prepared(self._prepare(X))

    def _fit_prepared(self, data: _FAData):
        """EM from prepared data (also used by emx.distributed)."""
        self._n_factors = self._check_hyperparameters(len(data.shift))
        self._floor = data.floor  # read by em_mstep
        try:
            self._init_params(data)
            monitor = ConvergenceMonitor(self.tol, self.max_iter)
            with ChunkRunner(1) as runner:
                run_em(self, data, monitor, runner)
            # The parameters loglike_[-1] was computed at: those of the last E-step (as
            # scikit-learn, whose last iteration evaluates the likelihood and stops before
            # updating the noise). The last M-step's update is dropped; at convergence it
            # changes the likelihood by less than tol.
            last = self.__dict__.get("_accepted")
            if last is not None:
                for name, value in last[1].items():
                    setattr(self, name, value)
        finally:
            del self._floor, self._n_factors
            self._reset_accept()
        if not monitor.converged:
            warnings.warn(
                "FactorAnalysis did not converge. You might want to increase the number of "
                "iterations (max_iter) or tol.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )
        W = _canonical_loadings(self._W, self.noise_variance_)
        del self._W
        if self.rotation is not None:
            W = orthomax(W, _ROTATIONS[self.rotation])
        self.components_ = np.ascontiguousarray(W.T)
        self.loglike_ = list(monitor.history)
        self.n_iter_ = monitor.iter
        return self

    # ------------------------------------------------------------------ inference
    def _checked(self, X) -> np.ndarray:
        check_is_fitted(self, "components_")
        return validate_data(
            self, X, reset=False, dtype=np.float64, order="C", ensure_all_finite="allow-nan"
        )

    def _rowwise(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(E[z | observed entries], observed-marginal log-density) of every row."""
        W = self.components_.T
        observed, pid, complete = _group_rows(X)
        post = _PatternPosterior(W, self.noise_variance_, self.mean_, observed)
        k = W.shape[1]
        step = max(64, min(CHUNK_ROWS, (1 << 20) // max(k * k, 1)))
        Z = np.empty((X.shape[0], k))
        ll = np.empty(X.shape[0])
        for a in range(0, X.shape[0], step):
            _, Z[a : a + step], ll[a : a + step] = post.rows(
                X[a : a + step], pid[a : a + step], complete
            )
        return Z, ll

    # ------------------------------------------------------------------ EM protocol
    # (emx._em.EMModel, for emx.distributed: a partition is a 2-D array of complete rows.
    # Complete data enter factor analysis through their first two moments only, so the
    # initialisation reduces them over the partitions and runs EM on them; no E-step over
    # the partitions is left to do.)
    def em_describe(self, part):
        return describe_rows(part)

    def em_prepare(self, part, *, reset: bool = False) -> np.ndarray:
        X = np.asarray(part, dtype=np.float64)
        if np.isnan(X).any():
            raise ValueError("emx.distributed fits FactorAnalysis on complete data only.")
        return X

    def em_rows(self, data: np.ndarray) -> np.ndarray:
        return data

    def em_join(self, parts: list) -> np.ndarray:
        return np.concatenate(parts)

    def em_init(self, source, random_state=None) -> None:
        """The whole fit from moments reduced over the partitions."""
        self.n_features_in_ = source.n_features
        shift = column_moments(source, np.asarray)[0]
        stats = source.reduce(_moments_about, shift)
        cov = stats.covariance()
        self._fit_prepared(_FAData(shift, _noise_floor(np.diag(cov).copy()), cov,
                                   stats=stats))

    def em_run(self, estep) -> None:
        """Nothing: :meth:`em_init` fitted the model from the data's moments."""

    def transform(self, X) -> np.ndarray:
        """Expected factors given each row, ``E[z | x]`` (given the observed entries when
        some are NaN; a row with nothing observed gets the prior mean 0).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
        """
        return self._rowwise(self._checked(X))[0]

    def score_samples(self, X) -> np.ndarray:
        """Log-likelihood of each row (of its observed entries when some are NaN; 0 for a
        row with nothing observed).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ll : ndarray of shape (n_samples,)
        """
        return self._rowwise(self._checked(X))[1]

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of the rows of ``X`` (see :meth:`score_samples`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        float
        """
        return float(np.mean(self.score_samples(X)))

    def get_covariance(self) -> np.ndarray:
        """Model covariance ``components_.T @ components_ + diag(noise_variance_)``.

        Returns
        -------
        cov : ndarray of shape (n_features, n_features)
        """
        check_is_fitted(self, "components_")
        cov = self.components_.T @ self.components_
        cov[np.diag_indices_from(cov)] += self.noise_variance_
        return cov

    def get_precision(self) -> np.ndarray:
        """Inverse of :meth:`get_covariance` (through the Woodbury identity).

        Returns
        -------
        precision : ndarray of shape (n_features, n_features)
        """
        check_is_fitted(self, "components_")
        W, psi = self.components_.T, self.noise_variance_
        Wp = W / psi[:, None]
        M = np.eye(W.shape[1]) + W.T @ Wp
        prec = -Wp @ np.linalg.solve(M, Wp.T)
        prec[np.diag_indices_from(prec)] += 1.0 / psi
        return 0.5 * (prec + prec.T)

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]


def _noise_floor(var: np.ndarray) -> np.ndarray:
    """Per-column floor on noise variances: a tiny fraction of the column's variance (of the
    largest variance, or 1, for constant columns)."""
    top = float(var.max()) if var.size and var.max() > 0 else 1.0
    return _REL_NOISE_FLOOR * np.where(var > 0, var, top)


def _missing_block_covariance(post: _PatternPosterior, counts: np.ndarray) -> np.ndarray:
    """Sum over rows of the conditional covariance of the missing entries given the observed
    ones, ``W_m M_p^{-1} W_m^T + Psi_m`` on the missing block (0 elsewhere)."""
    W, psi = post.W, post.psi
    D, k = W.shape
    miss = ~post.observed
    has = np.flatnonzero(miss.any(axis=1))
    out = np.zeros((D, D))
    if k:
        # sum_p n_p G_p G_p^T with G_p = diag(m_p) W F_p (F_p F_p^T = M_p^{-1}): one
        # (D, P k) product
        step = max(1, (1 << 22) // (D * k))  # patterns per block of (D, step, k) temporaries
        for a in range(0, len(has), step):
            idx = has[a : a + step]
            chol = post.factor[idx] * np.sqrt(counts[idx])[:, None, None]
            chol = np.ascontiguousarray(np.swapaxes(chol, 0, 1)).reshape(k, -1)
            Gm = (W @ chol).reshape(D, len(idx), k)  # one BLAS product: W chol_p for all p
            Gm *= miss[idx].T[:, :, None]
            Gm = Gm.reshape(D, -1)
            out += Gm @ Gm.T
    out[np.diag_indices(D)] += psi * (counts @ miss)
    return 0.5 * (out + out.T)


# ============================================================================ mixture
def _component_moments(gs: G.GaussianStats, old_means):
    """Each component's mean and (maximum-likelihood, unfloored) covariance about it, with
    scikit-learn's 10 * eps added to the weights (the Gaussian core's
    :func:`emx.gaussian.update_means` and :func:`emx.gaussian.map_covars`). An empty
    component keeps its previous mean (when given); its covariance is not used."""
    eps = 10 * np.finfo(float).eps
    means = G.update_means(gs, old_means, extra_count=eps)
    return means, G.map_covars(gs, means, "full", count=eps)


_NOISE_TYPES = ("shared", "per_component")


class MixtureOfFactorAnalyzers(BaseMixture):
    """Mixture of factor analyzers fitted by EM (Ghahramani and Hinton 1996).

    Component k generates ``x = means_[k] + W_k z + e`` with ``z ~ N(0, I)`` (``n_factors``
    factors) and diagonal noise ``e ~ N(0, Psi)``, ``Psi`` shared by all components
    (``noise_type='shared'``, as in Ghahramani and Hinton) or one per component: a Gaussian
    mixture whose covariances are ``W_k W_k^T + Psi`` (n_features * n_factors loadings instead
    of n_features^2 / 2 covariances per component).

    EM: the E-step computes responsibilities and per-component weighted moments (compiled
    kernels, chunks of rows); the M-step sets weights and means in closed form, then makes
    one factor-analysis EM update (parameter-expanded, as in :class:`FactorAnalysis`) of each
    component's loadings and noise from its weighted covariance about the new mean (a
    generalised EM step: the log-likelihood never decreases).

    Parameters
    ----------
    n_components : int
        Number of mixture components.
    n_factors : int
        Number of factors per component (at most n_features).
    noise_type : {'shared', 'per_component'}
        One diagonal noise covariance for all components, or one each.
    tol : float
        Stop when the mean log-likelihood per row gains less than this.
    reg_covar : float
        Floor on the noise variances (which are also kept above 1e-12 times the column's
        variance).
    max_iter : int
        Maximum EM iterations per initialisation.
    n_init : int
        Number of k-means initialisations; the best final log-likelihood is kept.
    random_state : int, RandomState or None
        Seed of the k-means initialisation and of :meth:`sample`.
    verbose : int
        Print per-iteration progress to stderr when > 0.
    n_jobs : int or None
        Threads for the E-step (None: 1, -1: all cores); results do not depend on it.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    components_ : ndarray of shape (n_components, n_factors, n_features)
        Loadings ``W_k^T`` of each component.
    noise_variance_ : ndarray of shape (n_features,) ('shared') or (n_components, n_features)
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per row at the last iteration of the best initialisation.
    lower_bounds_ : list of float
        The same at every iteration of the best initialisation (never decreasing).
    n_features_in_ : int

    Examples
    --------
    Two clusters, each spread along one direction:

    >>> import numpy as np
    >>> from emx import MixtureOfFactorAnalyzers
    >>> rng = np.random.default_rng(0)
    >>> line = rng.normal(size=(300, 1)) @ rng.normal(size=(1, 4))
    >>> X = np.concatenate([line, line[::-1] + 10]) + 0.1 * rng.normal(size=(600, 4))
    >>> mfa = MixtureOfFactorAnalyzers(n_components=2, n_factors=1, random_state=0).fit(X)
    >>> np.round(np.sort(mfa.weights_), 2)
    array([0.5, 0.5])
    >>> labels = mfa.predict(X)
    >>> bool(labels[0] != labels[-1])
    True
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        n_factors: int = 1,
        noise_type: str = "shared",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        random_state=None,
        verbose: int = 0,
        n_jobs: int | None = None,
    ):
        self.n_components = n_components
        self.n_factors = n_factors
        self.noise_type = noise_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    _fitted_attrs = ("weights_", "means_", "components_", "noise_variance_")

    # ------------------------------------------------------------------ checks
    def _check_hyperparameters(self, D: int) -> None:
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.n_factors, "n_factors", minimum=0)
        if self.n_factors > D:
            raise ValueError(f"n_factors={self.n_factors} must be at most n_features={D}.")
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.n_init, "n_init")
        check_n_jobs(self.n_jobs)
        _check_tol(self.tol)
        if self.noise_type not in _NOISE_TYPES:
            raise ValueError(
                f"noise_type must be one of {_NOISE_TYPES}, got {self.noise_type!r}."
            )
        r = self.reg_covar
        if isinstance(r, bool) or not isinstance(r, numbers.Real) or not (
            np.isfinite(r) and r >= 0
        ):
            raise ValueError(f"reg_covar must be a non-negative float, got {r!r}.")

    def _validate(self, X, *, reset: bool) -> np.ndarray:
        X = validate_data(
            self, X, reset=reset, dtype=np.float64, order="C", ensure_all_finite="allow-nan",
            ensure_min_samples=2 if reset else 1,
        )
        if np.isnan(X).any():
            raise ValueError(
                "Input X contains NaN: MixtureOfFactorAnalyzers does not support missing "
                "values (FactorAnalysis does)."
            )
        return X

    # ------------------------------------------------------------------ parameters
    def _psi_per_component(self) -> np.ndarray:
        K = self.means_.shape[0]
        psi = self.noise_variance_
        return np.broadcast_to(psi, (K, psi.shape[-1])) if psi.ndim == 1 else psi

    def get_covariance(self) -> np.ndarray:
        """Covariance of every component, ``W_k W_k^T + Psi_k``.

        Returns
        -------
        covariances : ndarray of shape (n_components, n_features, n_features)
        """
        check_is_fitted(self, "means_")
        C = self.components_
        covs = np.swapaxes(C, 1, 2) @ C
        idx = np.arange(C.shape[2])
        covs[:, idx, idx] += self._psi_per_component()
        return covs

    def _density(self):
        """Log-density of rows under every component (n, K), through the SVD of each
        component's noise-scaled loadings (see :class:`_PatternPosterior`, prepared once):
        exact to round-off however ill-conditioned ``W W^T + Psi`` is. A Cholesky
        factorisation of the covariance at condition 2.5e10 put errors of 4e-7 per row into
        the bound, more than the monitor's round-off (issue 16, finding 7)."""
        psi = self._psi_per_component()
        D = self.means_.shape[1]
        every = np.ones((1, D), dtype=bool)
        posts = [_PatternPosterior(self.components_[k].T, psi[k], self.means_[k], every)
                 for k in range(len(self.weights_))]

        def log_densities(X: np.ndarray) -> np.ndarray:
            pid = np.zeros(len(X), dtype=np.intp)
            out = np.empty((len(X), len(posts)))
            for k, post in enumerate(posts):
                out[:, k] = post.rows(X, pid, complete=True)[2]
            return out

        return log_densities

    def _far_args(self):
        # Rows far from every component (log-densities below -1e308): the nearest one.
        return self.means_, self.get_covariance(), "full"

    # ------------------------------------------------------------------ EM parts
    def _refused_fall(self, fall: float, loglik: float, last: dict) -> bool:
        # Monotone by construction, as FactorAnalysis.em_summed: a step whose log-likelihood
        # falls below the last accepted one (round-off: the M-step is a generalised EM
        # step) is not taken; the previous parameters and statistics come back.
        return not fall <= 0

    def em_estep(self, data: _Rows, runner: ChunkRunner) -> MixtureStats:
        dens, log_w = self._density(), self._log_weights()
        # Moments about each component's current mean: no cancellation (one shared array,
        # so chunk statistics add exactly).
        shift = np.array(self.means_, dtype=np.float64, order="C")

        def accumulate(i):
            X, _ = data.chunk(i)
            resp, log_norm = self._responsibilities(dens, log_w, X)
            gs = G.GaussianStats.from_weights(X, resp, shift, "full")
            return MixtureStats(float(log_norm.sum()), float(len(X)), gs)

        return runner.map_sum(accumulate, range(len(data.chunks)))

    def em_mstep(self, stats: MixtureStats) -> None:
        if self._step_refused():
            return  # the step from these statistics was refused: the parameters stay
        gs = stats.gaussian
        K, D = gs.sum1.shape
        nk = gs.post + 10 * np.finfo(float).eps
        weights = mixture_weights(gs.post)
        means, S = _component_moments(gs, self.means_)
        empty = gs.post <= G._EMPTY
        psi_old = self._psi_per_component()
        W_new = np.empty((K, D, self.n_factors))
        psi_new = np.empty((K, D))
        for k in range(K):
            if empty[k]:
                W_new[k], psi_new[k] = self.components_[k].T, psi_old[k]
            else:
                W_new[k], psi_new[k] = _fa_mstep(self.components_[k].T, psi_old[k], S[k])
        if self.noise_type == "shared":
            # Pooled over components: the noise maximising the summed expected likelihood.
            psi = G.floor_covars((nk @ psi_new) / nk.sum(), "diag", self._floor)
        else:
            psi = G.floor_covars(psi_new, "diag", self._floor)
        W_old = np.swapaxes(self.components_, 1, 2)
        keep = self._worse_than_before(gs, means, W_new, psi, W_old, self.noise_variance_)
        if np.any(keep):
            # Generalised EM: where the floored update lowers the expected complete-data
            # log-likelihood, the previous loadings and noise stay (with the new means).
            W_new[keep] = W_old[keep]
            if psi.ndim == 1:
                psi = self.noise_variance_
            else:
                psi = psi.copy()
                psi[keep] = self.noise_variance_[keep]
        self.weights_, self.means_ = weights, means
        self.components_ = np.ascontiguousarray(np.swapaxes(W_new, 1, 2))
        self.noise_variance_ = psi

    def _worse_than_before(self, gs, means, W_new, psi_new, W_old, psi_old) -> np.ndarray:
        """Components whose new (W, psi) give a lower expected complete-data
        log-likelihood than the previous ones (all of them, when the noise is shared)."""
        K, D = means.shape

        def covs(W, psi):
            C = W @ np.swapaxes(W, 1, 2)
            C[:, np.arange(D), np.arange(D)] += np.broadcast_to(psi, (K, D))
            return C

        q_new = G.expected_loglik(gs, means, covs(W_new, psi_new), "full")
        q_old = G.expected_loglik(gs, means, covs(W_old, psi_old), "full")
        if psi_new.ndim == 1:  # shared noise couples the components
            worse = q_new.sum() < q_old.sum() - 1e-12 * abs(q_old.sum())
            return np.full(K, bool(worse))
        return q_new < q_old - 1e-12 * np.abs(q_old)

    def _init_params(self, data: _Rows, random_state) -> None:
        X = data.X
        n, D = X.shape
        K, q = self.n_components, self.n_factors
        self._reset_accept()  # no step accepted yet (see em_summed)
        rs = check_random_state(random_state)
        with threadpool_limits(limits=1):  # repeatable for any thread count
            labels = KMeans(n_clusters=K, n_init=1, random_state=rs).fit(X).labels_
        resp = np.zeros((n, K))
        resp[np.arange(n), labels] = 1.0
        gs = G.GaussianStats.from_weights(X, resp, None, "full")
        nk = gs.post + 10 * np.finfo(float).eps
        means, S = _component_moments(gs, None)
        var = np.var(X, axis=0)
        # Small clusters have degenerate covariances: keep noise above a share of the data's.
        low = np.maximum(1e-3 * var, self.reg_covar)
        low = np.where(low > 0, low, 1.0)
        # Never below the M-step's floor: a start under it would make the first M-step's
        # flooring lower the likelihood.
        low = np.maximum(low, getattr(self, "_floor", 0.0))
        diag = np.diagonal(S, axis1=1, axis2=2)
        if self.noise_type == "shared":
            psi = np.maximum((nk @ diag) / nk.sum(), low)
            psis = np.broadcast_to(psi, (K, D))
        else:
            psi = psis = np.maximum(diag, low)
        W = np.stack([_init_loadings(S[k], psis[k], q) for k in range(K)])
        self.weights_ = nk / nk.sum()
        self.means_ = means
        self.components_ = np.ascontiguousarray(np.swapaxes(W, 1, 2))
        self.noise_variance_ = np.array(psi)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Estimate the parameters by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : MixtureOfFactorAnalyzers
        """
        X = self._validate(X, reset=True)
        G.check_magnitude(X)
        n, D = X.shape
        self._check_hyperparameters(D)
        if n < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {n}"
            )
        data = _Rows(X, None, X.mean(axis=0), _row_chunks(n))
        rs = check_random_state(self.random_state)
        # Noise floor: reg_covar, and never below a tiny fraction of the column's variance
        # (so that every component covariance stays positive definite with reg_covar=0).
        self._floor = np.maximum(self.reg_covar, _noise_floor(np.var(X, axis=0)))
        try:
            self._fit_em(data, [rs] * self.n_init, check_n_jobs(self.n_jobs))
        finally:
            del self._floor
        return self

    # ------------------------------------------------------------------ inference
    def _validate_input(self, X) -> np.ndarray:
        return self._validate(X, reset=False)

    def _sampler(self):
        psi = self._psi_per_component()
        q, D = self.components_.shape[1], self.means_.shape[1]

        def draw(k, n, rs):
            z = rs.standard_normal((n, q))
            e = rs.standard_normal((n, D)) * np.sqrt(psi[k])
            return self.means_[k] + z @ self.components_[k] + e

        return draw

    def _n_parameters(self) -> int:
        """Free parameters: weights, means, loadings up to rotation (D q - q (q - 1) / 2 per
        component) and noise variances."""
        K, D = self.means_.shape
        q = self.components_.shape[1]
        noise = D if self.noise_variance_.ndim == 1 else K * D
        return int(K - 1 + K * D + K * (D * q - q * (q - 1) // 2) + noise)


def _moments_about(X: np.ndarray, shift: np.ndarray) -> FactorStats:
    """First and second moments of complete rows about ``shift``."""
    gs = G.GaussianStats.from_weights(X, np.ones((len(X), 1)), shift, "tied")
    return FactorStats(float(len(X)), gs.sum1[0], gs.sum2, shift)
