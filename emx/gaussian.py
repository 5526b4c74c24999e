"""The one Gaussian core of emx.

Covariance types, validation, log-densities (through the compiled kernels), additive
sufficient statistics, the closed-form M-step with conjugate priors, variance floors and the
log prior density. Models (GaussianHMM, and later mixtures and factor analysis) call these and
hold no Gaussian arithmetic of their own.

Shapes of the covariance parameter by type (the same for reading and for setting):

* ``'spherical'``: (n_components,)
* ``'diag'``: (n_components, n_features)
* ``'full'``: (n_components, n_features, n_features)
* ``'tied'``: (n_features, n_features)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._core import _gauss, check_ok
from ._stats import AdditiveStats, fixed

__all__ = [
    "COVARIANCE_TYPES",
    "GaussianDensity",
    "GaussianStats",
    "MAX_ABS",
    "check_magnitude",
    "loglik_roundoff",
    "check_covariance_type",
    "resolve_far_rows",
    "validate_covars",
    "covars_from_template",
    "full_covars",
    "data_covariance",
    "precision_cholesky",
    "precisions_from_cholesky",
    "covars_from_precisions",
    "update_means",
    "update_covars",
    "log_prior",
    "map_covars",
    "map_log_prior",
    "floor_covars",
    "estimate_gaussians",
    "expected_loglik",
    "covars_shape",
]

COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
_LOG_2PI = np.log(2.0 * np.pi)
# Weight below which a component is treated as having received no data.
_EMPTY = 1e-10


# Largest magnitude of a data entry the models fit: differences and their squares, summed
# over rows and features, stay far below the float maximum (1.8e308).
MAX_ABS = 1e100


def value_range(X: np.ndarray) -> tuple[float, float, bool]:
    """``(lo, hi, has_nan)`` of the entries of ``X`` (any shape): the smallest and largest
    that are not NaN (``inf``, ``-inf`` when there is none) and whether there is a NaN, in one
    pass over the data (the C kernel reads a contiguous float64 array in place; anything
    else is copied first)."""
    flat = np.ravel(X, order="K")  # a view of contiguous data, in memory order
    if flat.dtype != np.float64 or not flat.flags.c_contiguous:
        flat = np.ascontiguousarray(flat, dtype=np.float64)
    out = np.empty(3)
    check_ok(_gauss.value_range(flat, out))
    return float(out[0]), float(out[1]), bool(out[2])


def check_magnitude(X: np.ndarray, name: str = "X", *, bounds=None) -> None:
    """Raise ValueError when a (non-NaN) entry of ``X`` exceeds ``MAX_ABS`` in magnitude.

    Squares of such data overflow: variances, k-means distances and log-densities would be
    infinite. Small magnitudes need no check (their variances underflow to the floors).
    ``bounds``: ``X``'s ``(lo, hi)`` from :func:`value_range` when the caller has them (no
    second pass over the data).
    """
    if X.size == 0:
        return
    # One pass, no temporary the size of X (np.abs(X) was one: 32 MB for 200,000 x 20).
    lo, hi = value_range(X)[:2] if bounds is None else bounds
    top = max(hi, -lo)
    if top > MAX_ABS:
        raise ValueError(
            f"{name} has an entry of magnitude {top:.3g}; emx fits data whose entries are at "
            f"most {MAX_ABS:.0e} in magnitude (squares and their sums must stay below the "
            f"float maximum, {np.finfo(float).max:.3g}). Rescale {name}, for example by a "
            "power of ten."
        )


def check_covariance_type(covariance_type: str) -> str:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}."
        )
    return covariance_type


def covars_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    return {
        "spherical": (n_components,),
        "diag": (n_components, n_features),
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
    }[covariance_type]


def validate_covars(covars, covariance_type: str, n_components: int, n_features: int):
    """Return ``covars`` as a float64 array of the type's shape, or raise ValueError."""
    check_covariance_type(covariance_type)
    covars = np.ascontiguousarray(covars, dtype=np.float64)
    shape = covars_shape(covariance_type, n_components, n_features)
    if covars.shape != shape:
        raise ValueError(
            f"covars_ for covariance_type={covariance_type!r} must have shape {shape}, "
            f"got {covars.shape}."
        )
    if not np.all(np.isfinite(covars)):
        raise ValueError("covars_ must be finite (it holds NaN or infinity).")
    if covariance_type in ("spherical", "diag"):
        if np.any(covars <= 0):
            raise ValueError(f"{covariance_type!r} covars_ must be positive.")
    else:
        mats = covars[None] if covariance_type == "tied" else covars
        if not np.allclose(mats, np.swapaxes(mats, -1, -2), rtol=1e-10, atol=0):
            raise ValueError(f"{covariance_type!r} covars_ must be symmetric.")
        try:
            np.linalg.cholesky(mats)
        except np.linalg.LinAlgError:
            raise ValueError(f"{covariance_type!r} covars_ must be positive definite.") from None
    return covars


def covars_from_template(cov: np.ndarray, covariance_type: str, n_components: int):
    """Distribute one (n_features, n_features) covariance to every component."""
    if covariance_type == "spherical":
        return np.full(n_components, np.mean(np.diag(cov)))
    if covariance_type == "diag":
        return np.tile(np.diag(cov), (n_components, 1))
    if covariance_type == "full":
        return np.tile(cov, (n_components, 1, 1))
    return cov.copy()


def full_covars(covars, covariance_type: str, n_components: int, n_features: int):
    """Covariances as (n_components, n_features, n_features) matrices."""
    covars = np.asarray(covars)
    if covariance_type == "spherical":
        return covars[:, None, None] * np.eye(n_features)
    if covariance_type == "diag":
        return np.einsum("kd,de->kde", covars, np.eye(n_features))
    if covariance_type == "tied":
        return np.broadcast_to(covars, (n_components, n_features, n_features)).copy()
    return covars.copy()


def data_covariance(X: np.ndarray, shift: np.ndarray | None = None, ddof: int = 1):
    """Covariance matrix of the rows of ``X`` (as ``np.cov(X.T)``), through the moment kernel:
    no copy of ``X`` is made."""
    n, D = X.shape
    if n <= ddof:
        return np.zeros((D, D))
    shift = X.mean(axis=0) if shift is None else shift
    s = GaussianStats.from_weights(X, np.ones((n, 1)), shift, "tied")
    d = s.sum1[0] / n
    return (s.sum2 - n * np.outer(d, d)) / (n - ddof)


def precision_cholesky(covars: np.ndarray, covariance_type: str) -> np.ndarray:
    """Cholesky factors of the precisions, in scikit-learn's form.

    'full' and 'tied': upper-triangular P with P P^T = Sigma^{-1} (P = L^{-T} for
    Sigma = L L^T); 'diag' and 'spherical': 1 / sqrt(variance). Raises ValueError when a
    covariance is not positive definite.
    """
    covars = np.asarray(covars, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        return 1.0 / np.sqrt(covars)
    mats = covars[None] if covariance_type == "tied" else covars
    try:
        chol = np.linalg.cholesky(mats)
    except np.linalg.LinAlgError:
        raise ValueError(f"{covariance_type!r} covariance is not positive definite.") from None
    D = mats.shape[-1]
    prec = np.swapaxes(np.linalg.solve(chol, np.broadcast_to(np.eye(D), mats.shape)), -1, -2)
    return prec[0] if covariance_type == "tied" else prec


def precisions_from_cholesky(prec_chol: np.ndarray, covariance_type: str) -> np.ndarray:
    """Precisions (inverse covariances) from their Cholesky factors."""
    if covariance_type in ("diag", "spherical"):
        return prec_chol**2
    return prec_chol @ np.swapaxes(prec_chol, -1, -2)


def covars_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Covariances from precisions (inverse matrices, or reciprocal variances)."""
    precisions = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        return 1.0 / precisions
    return np.linalg.inv(precisions)


class GaussianDensity:
    """Log-densities of K Gaussians, prepared once per parameter set.

    Parameters
    ----------
    means : ndarray of shape (K, D)
    covars : ndarray
        In the shape of ``covariance_type`` (see module doc); must be valid.
    covariance_type : str
    """

    def __init__(self, means: np.ndarray, covars: np.ndarray, covariance_type: str):
        self.means = np.ascontiguousarray(means, dtype=np.float64)
        K, D = self.means.shape
        self.covariance_type = covariance_type
        covars = np.asarray(covars, dtype=np.float64)
        if covariance_type in ("spherical", "diag"):
            var = np.broadcast_to(covars[:, None] if covariance_type == "spherical" else covars,
                                  (K, D))
            self.precisions = np.ascontiguousarray(1.0 / var)
            self.log_norm = -0.5 * (D * _LOG_2PI + np.log(var).sum(axis=1))
            self.prec_chol = None
        else:
            mats = np.broadcast_to(covars, (K, D, D)) if covariance_type == "tied" else covars
            self.prec_chol = np.ascontiguousarray(precision_cholesky(mats, "full"))
            # log|Sigma|^(-1/2) = sum log diag(P)
            self.log_norm = -0.5 * D * _LOG_2PI + np.log(
                np.diagonal(self.prec_chol, axis1=1, axis2=2)
            ).sum(axis=1)
            self.precisions = None
        self.log_norm = np.ascontiguousarray(self.log_norm, dtype=np.float64)

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def __call__(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Log-density of every row of ``X`` (C-contiguous float64) under every component."""
        if out is None:
            out = np.empty((X.shape[0], self.n_components))
        if self.prec_chol is None:
            check_ok(_gauss.log_density_diag(X, self.means, self.precisions, self.log_norm, out))
        else:
            check_ok(_gauss.log_density_chol(X, self.means, self.prec_chol, self.log_norm, out))
        return out


def resolve_far_rows(X, resp, log_norm, means, covars, covariance_type, log_weights):
    """Responsibilities of rows whose log-density underflowed under every component.

    A row far from every component (say at 1e200 with unit variances) has log-densities below
    -1e308: each one is -inf, and the responsibilities 0/0. Their comparison is still
    defined. With ``u = x / s`` (``s`` a power of two near ``max |x|``, so nothing
    overflows), the squared Mahalanobis distance is
    ``q_k = s**2 a_k - 2 s b_k + c_k`` with ``a_k = u' A_k u``, ``b_k = u' A_k mu_k`` and
    ``c_k = mu_k' A_k mu_k`` (``A_k`` the precision); since ``s`` is astronomically larger
    than every other term, the log-densities ``-q_k / 2 + log w_k + log norm_k`` order as
    ``(a_k, -b_k, c_k - 2 (log w_k + log norm_k))`` do, lexicographically. The row goes to
    the first in that order (exact ties share equally).

    ``resp`` (n, K) and ``log_norm`` (n,) are fixed in place for the rows where ``log_norm``
    is -inf or NaN. Where some log-density is representable after all (the kernel's square
    overflowed, the final value did not) it is computed from the scaled form and used;
    otherwise the log-likelihood stays -inf (the true value is below -1.8e308).
    NaN entries of ``X`` are missing and left out (the observed marginal is compared).
    """
    far = np.flatnonzero(~(log_norm > -np.inf))
    if len(far) == 0:
        return
    K, D = means.shape
    full = full_covars(covars, covariance_type, K, D)
    ok = np.isfinite(log_weights)
    log_norm[far] = -np.inf
    for t in far:
        x = X[t]
        o = ~np.isnan(x)
        keys = []
        logp = np.full(K, -np.inf)
        for k in range(K):
            if not ok[k]:
                continue
            if not o.any():
                keys.append((0.0, 0.0, -2.0 * log_weights[k], k))
                continue
            try:
                L = np.linalg.cholesky(full[k][np.ix_(o, o)])
            except np.linalg.LinAlgError:
                continue
            top = max(float(np.max(np.abs(x[o]))), 1.0)
            s = float(np.ldexp(1.0, np.frexp(top)[1] - 1))  # power of two, |x / s| < 2
            with np.errstate(over="ignore", invalid="ignore"):
                y = np.linalg.solve(L, x[o] / s)
                m = np.linalg.solve(L, means[k, o])
                a, b, c = float(y @ y), float(y @ m), float(m @ m)
            lw = log_weights[k] - np.log(np.diagonal(L)).sum()
            keys.append((a, -b, c - 2.0 * lw, k))
            with np.errstate(over="ignore", invalid="ignore"):
                z = y - m / s
                logp[k] = -0.5 * ((z @ z) * s) * s + lw - 0.5 * o.sum() * _LOG_2PI
        r = np.zeros(K)
        top_lp = np.max(logp)
        if top_lp > -np.inf:  # representable after all (the kernel's square overflowed)
            e = np.exp(logp - top_lp)
            resp[t] = e / e.sum()
            log_norm[t] = top_lp + np.log(e.sum())
            continue
        if keys:
            best = min(keys)[:3]
            winners = [key[3] for key in keys if key[:3] == best]
            r[winners] = 1.0 / len(winners)
        resp[t] = r


@dataclass
class GaussianStats(AdditiveStats):
    """Weighted zeroth, first and second moments of data per component, about ``shift``.

    Attributes
    ----------
    post : (K,) sum of weights.
    sum1 : (K, D) sum of weights * (x - shift_k).
    sum2 : (K, D) for 'diag'/'spherical' (sum of weights * (x - shift_k)**2), (K, D, D) for
        'full', (D, D) for 'tied' (summed over components).
    shift : (K, D) point each component's moments are taken about (its mean from the
        previous iteration, say), or (D,), one point for every component. Moments about a
        point near the component's mean are free of cancellation, however far the component
        sits from the others or from the origin.

    Statistics add only when taken about the same shift (then the sum is exact); adding
    statistics about different shifts raises ValueError.
    """

    post: np.ndarray
    sum1: np.ndarray
    sum2: np.ndarray
    shift: np.ndarray = fixed(error="cannot add Gaussian statistics taken about different shifts")

    @property
    def means(self) -> np.ndarray:
        """Weighted means per component (0/0 gives the shift)."""
        post = self.post[:, None]
        return self.shift + self.sum1 / np.where(post > 0, post, 1.0)

    @classmethod
    def from_weights(
        cls, X: np.ndarray, weights: np.ndarray, shift, covariance_type: str
    ) -> GaussianStats:
        """Moments of the rows of ``X`` (n, D) with per-component weights (n, K).

        ``shift`` is (K, D) (component k's moments about ``shift[k]``), (D,) (one point for
        all), or None: then each component's weighted mean, found by a first pass (two
        passes, every second moment about its own mean). One compiled call per pass (BLAS on
        blocks of frames, no (n, D) temporaries).
        """
        K, D = weights.shape[1], X.shape[1]
        if shift is None:
            base = np.zeros((1, D)) if len(X) == 0 else X[:1]
            first = cls.from_weights(X, weights, np.ascontiguousarray(base[0]), "diag")
            shift = first.means
        shift = np.asarray(shift, dtype=np.float64)
        shift2 = np.ascontiguousarray(shift.reshape(-1, D))
        kind = _MOMENT_KIND[covariance_type]
        post, sum1 = np.zeros(K), np.zeros((K, D))
        sum2 = np.zeros({0: (K, D), 1: (K * D, D), 2: (D, D)}[kind])
        check_ok(_gauss.accumulate_moments(X, weights, shift2, kind, post, sum1, sum2))
        if kind == 1:
            sum2 = sum2.reshape(K, D, D)
        return cls(post, sum1, sum2, shift)


_MOMENT_KIND = {"diag": 0, "spherical": 0, "full": 1, "tied": 2}


def _as_k_by(value, K: int, *tail: int) -> np.ndarray:
    """Broadcast a scalar or per-component prior to shape (K, *tail)."""
    value = np.asarray(value, dtype=np.float64)
    shape = (K, *tail)
    if value.shape == shape or (value.ndim == 0 and K * math.prod(tail) <= 4096):
        # the shape already, or the usual scalar prior on a small shape: a read-only view or
        # filled array (as np.broadcast_to's result, read-only) costs a fraction of
        # broadcast_to's argument handling, and this runs a few dozen times per M-step
        out = value.view() if value.shape == shape else np.full(shape, value)
        out.flags.writeable = False
        return out
    if value.ndim == 1 and value.shape[0] == K and tail and tail != (K,):
        value = value.reshape((K,) + (1,) * len(tail))
    return np.broadcast_to(value, shape)


def weighted_square(weight, diff) -> np.ndarray:
    """``weight * diff**2`` that is exactly 0 where the weight is 0 (no 0 * inf when the
    square overflows): a prior with zero weight contributes nothing."""
    weight = np.asarray(weight, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        out = weight * np.square(diff)
    return np.where(weight != 0, out, 0.0)


def update_means(stats: GaussianStats, old_means, means_prior=0.0, means_weight=0.0, *,
                 extra_count: float = 0.0):
    """MAP means under a normal prior N(means_prior, covariance / means_weight).

    Parameters
    ----------
    stats : GaussianStats
        Moments of K Gaussians.
    old_means : ndarray of shape (K, D) or None
        Previous means: components with no weight and no prior keep them (None: no
        component is kept, e.g. at initialisation).
    means_prior : float or array broadcastable to (K, D)
    means_weight : float or array of shape (K,)
    extra_count : float
        Added to every component's weight in the denominator (scikit-learn adds
        ``10 * eps`` so that an empty component's mean is 0/eps = 0 about the shift rather
        than 0/0); it does not make a component non-empty.

    Returns
    -------
    means : ndarray of shape (K, D)
    """
    K, D = stats.sum1.shape
    w = _as_k_by(means_weight, K, 1)
    mu0 = _as_k_by(means_prior, K, D)
    weight = w + stats.post[:, None]
    denom = weight + extra_count if extra_count else weight
    if extra_count > 0:
        safe = denom
    else:
        safe = np.where(denom > _EMPTY, denom, 1.0)
    means = stats.shift + (w * (mu0 - stats.shift) + stats.sum1) / safe
    if old_means is not None:
        empty = weight[:, 0] <= _EMPTY
        means[empty] = np.asarray(old_means)[empty]
    return means


def _scatter(stats: GaussianStats, means: np.ndarray, covariance_type: str):
    """Weighted scatter sum_t w (x - mean)(...) per component, from moments about the shift."""
    d = means - stats.shift
    post = stats.post
    if covariance_type in ("diag", "spherical"):
        # A sum of squares: a negative value is round-off (or expected statistics of missing
        # entries cancelling), never data; floored at 0 so no variance can go negative.
        return np.maximum(stats.sum2 - 2.0 * d * stats.sum1 + post[:, None] * d * d, 0.0)
    cross = np.einsum("kd,ke->kde", stats.sum1, d)
    outer = np.einsum("k,kd,ke->kde", post, d, d)
    if covariance_type == "full":
        return stats.sum2 - cross - np.swapaxes(cross, 1, 2) + outer
    return stats.sum2 - (cross + np.swapaxes(cross, 1, 2) - outer).sum(axis=0)


def _per(value, n: int, *tail: int) -> np.ndarray:
    """A prior as an array of shape (n, *tail): a scalar, a per-component (n,) vector, any
    array broadcastable to that shape, or an array of that many entries in another shape
    (e.g. (n_components, n_mix, ...) for n = n_components * n_mix)."""
    value = np.asarray(value, dtype=np.float64)
    size = n * int(np.prod(tail, dtype=np.int64))
    if value.size == size and value.shape != (n, *tail) and value.ndim > 1:
        return value.reshape((n, *tail))
    return _as_k_by(value, n, *tail)


def map_covars(
    stats: GaussianStats,
    means: np.ndarray,
    covariance_type: str,
    old_covars=None,
    *,
    scale=0.0,
    count=0.0,
    means_prior=0.0,
    means_weight=0.0,
    group_size: int | None = None,
    reg_covar: float = 0.0,
    min_count: float = 0.0,
    keep_empty: bool = True,
) -> np.ndarray:
    """Covariances from moments in the one canonical form every Gaussian M-step of emx uses.

    For each covariance (one per Gaussian, or one per group of Gaussians for 'tied')::

        Sigma = (scale + sum_g lam_g (m_g - m0_g)(m_g - m0_g)^T + sum_g S_g) / (count + n)
                + reg_covar * I

    with ``S_g`` the scatter of Gaussian g's statistics about ``means[g]``, ``n`` its (the
    group's) weight and ``lam``, ``m0`` the normal prior on the means. ``scale`` and ``count``
    are the prior's: the MAP estimate under the log prior of :func:`map_log_prior`
    (``count = 0``, ``scale = 0`` is maximum likelihood). No floor is applied (see
    :func:`floor_covars`).

    Parameters
    ----------
    stats : GaussianStats
        Moments of the G Gaussians: ``sum2`` of kind 'diag' for 'diag'/'spherical', 'full'
        for 'full', and for 'tied' either 'full' (per Gaussian, summed here by group) or
        'tied' (already summed: one group).
    means : ndarray of shape (G, D)
        The Gaussians' (new) means.
    covariance_type : {'diag', 'spherical', 'full', 'tied'}
    old_covars : ndarray or None
        Previous covariances, in any shape holding the result's entries (e.g.
        (n_components, n_mix, D) for a GMM-HMM's 'diag'); the result takes this shape. Where
        the denominator ``count + n`` is at most 1e-10, or (with ``keep_empty``) ``n`` is,
        the previous value is kept. None: nothing is kept (initialisation).
    scale : float or array
        Prior scale: (G, D) 'diag', (G,) 'spherical' (summed over features), (G, D, D)
        'full', (n_groups, D, D) 'tied'; scalars and per-component vectors broadcast.
    count : float or array
        Prior count: (G, D) or (G,) 'diag', (G,) 'spherical' (in units of samples times
        features: ``D * n`` is the data's), (G,) 'full', (n_groups,) 'tied'.
    means_prior, means_weight : float or array
        ``m0`` (G, D) and ``lam`` (G,).
    group_size : int or None
        'tied': number of consecutive Gaussians sharing one covariance (None: all of them).
    reg_covar : float
        Added to every variance (the diagonal) after the division (scikit-learn).
    min_count : float
        The denominator is at least this (GaussianHMM's 1e-5 for 'diag').
    keep_empty : bool
        Also keep the previous value where ``n`` (not only ``count + n``) is at most 1e-10.

    Returns
    -------
    covars : ndarray
        (G, D) 'diag', (G,) 'spherical', (G, D, D) 'full', (D, D) 'tied' with one group,
        (n_groups, D, D) 'tied' with ``group_size``; or the shape of ``old_covars``.
    """
    check_covariance_type(covariance_type)
    means = np.asarray(means, dtype=np.float64)
    n_g, D = means.shape
    lam = _per(means_weight, n_g)
    diff = means - _per(means_prior, n_g, D)
    post = stats.post
    if covariance_type in ("diag", "spherical"):
        scatter = _scatter(stats, means, "diag")
        prior_m = weighted_square(lam[:, None], diff)
        if covariance_type == "diag":
            num = _per(scale, n_g, D) + prior_m + scatter
            den = _per(count, n_g, D) + post[:, None]
            n = np.broadcast_to(post[:, None], den.shape)
        else:
            num = _per(scale, n_g) + prior_m.sum(axis=1) + scatter.sum(axis=1)
            den = _per(count, n_g) + D * post
            n = post
    else:
        wd = lam[:, None] * diff  # exactly 0 where the weight is 0 (no 0 * inf)
        prior_m = np.einsum("kd,ke->kde", wd, np.where(wd != 0, diff, 0.0))
        if covariance_type == "full":
            num = _per(scale, n_g, D, D) + prior_m + _scatter(stats, means, "full")
            den = _per(count, n_g) + post
            n = post
        else:
            size = n_g if group_size is None else int(group_size)
            if size <= 0 or n_g % size:
                raise ValueError(f"group_size={group_size} does not divide {n_g} Gaussians.")
            n_out = n_g // size
            if stats.sum2.ndim == 2:  # moments already summed over all Gaussians
                if n_out != 1:
                    raise ValueError("'tied' statistics summed over all Gaussians cannot be "
                                     "split into groups: accumulate them as 'full'.")
                scat = _scatter(stats, means, "tied")[None]
            else:
                scat = _scatter(stats, means, "full").reshape(n_out, size, D, D).sum(axis=1)
            num = (_per(scale, n_out, D, D)
                   + prior_m.reshape(n_out, size, D, D).sum(axis=1) + scat)
            n = post.reshape(n_out, size).sum(axis=1)
            den = _per(count, n_out) + n
        den = den[:, None, None]
        n = n[:, None, None]
    if min_count:
        den = np.maximum(den, min_count)
    if old_covars is None:
        keep = np.zeros(np.shape(den), dtype=bool)
        covars = num / np.where(den > 0, den, 1.0)
    else:
        keep = den <= _EMPTY
        if keep_empty:
            keep = keep | (n <= _EMPTY)
        covars = num / np.where(keep, 1.0, den)
    if reg_covar:
        if covariance_type in ("diag", "spherical"):
            covars = covars + reg_covar
        else:
            covars = covars + reg_covar * np.eye(D)
    if old_covars is not None:
        old = np.asarray(old_covars, dtype=np.float64).reshape(covars.shape)
        covars = np.where(np.broadcast_to(keep, covars.shape), old, covars)
        return covars.reshape(np.shape(old_covars))
    if covariance_type == "tied" and group_size is None:
        return covars[0]
    return covars


def floor_covars(covars, covariance_type: str, floor) -> np.ndarray:
    """Variances floored: every variance ('diag', 'spherical') or eigenvalue ('full',
    'tied') at least ``floor``.

    Parameters
    ----------
    covars : ndarray
        Covariances of the type, with any leading shape ((K, M, D) for a GMM-HMM's 'diag'
        say); the result has the same shape.
    covariance_type : {'diag', 'spherical', 'full', 'tied'}
    floor : float or ndarray of shape (n_features,)
        A number: an absolute floor (for 'full'/'tied', eigenvalues are also kept above
        1e-10 times the matrix's largest, so the result is positive definite). A vector: a
        floor per feature (HTK-style, a fraction of each feature's global variance):
        'diag' variances at least their feature's floor, 'spherical' at least the mean
        floor, and 'full'/'tied' eigenvalues at least 1 in units of the floor (of
        ``F^{-1/2} Sigma F^{-1/2}``, ``F = diag(floor)``).
    """
    covars = np.asarray(covars, dtype=np.float64)
    floor = np.asarray(floor, dtype=np.float64)
    if covariance_type == "diag":
        return np.maximum(covars, floor)
    if covariance_type == "spherical":
        return np.maximum(covars, floor.mean() if floor.ndim else floor)
    check_covariance_type(covariance_type)
    shape = covars.shape
    D = shape[-1]
    mats = covars.reshape(-1, D, D)
    if floor.ndim == 0:
        out = _floor_eigenvalues(mats, float(floor))
    else:
        s = 1.0 / np.sqrt(floor)
        out = _floor_eigenvalues(mats * s[:, None] * s[None, :], 1.0) / (s[:, None] * s[None, :])
    return out.reshape(shape)


def _gmmhmm_defaults(covariance_type: str, n_features: int, n_mix: int):
    """hmmlearn GMMHMM's default (covars_prior, covars_weight) for None."""
    D, M = n_features, n_mix
    return {
        "full": (0.0, -(1.0 + D + 1.0)),
        "tied": (0.0, -(M + D + 1.0)),
        "diag": (-1.5, 0.0),
        "spherical": (-(M + 2.0) / 2.0, 0.0),
    }[covariance_type]


def _canonical_prior(covariance_type, n_g, D, covars_prior, covars_weight, convention,
                     n_mix):
    """``(scale, count, group_size, min_count, keep_empty)`` of :func:`map_covars` for a
    covariance prior given in hmmlearn's GaussianHMM or GMMHMM convention."""
    ct = covariance_type
    if convention == "gaussianhmm":
        cp = 0.0 if covars_prior is None else covars_prior
        cw = 0.0 if covars_weight is None else covars_weight
        if ct in ("diag", "spherical"):
            scale = _as_k_by(cp, n_g, D)
            count = np.maximum(_as_k_by(cw, n_g, 1) - 1.0, 0.0)
            if ct == "diag":
                return scale, count, None, 1e-5, True
            return scale.sum(axis=1), D * count[:, 0], None, D * 1e-5, True
        if ct == "full":
            count = np.maximum(_as_k_by(cw, n_g) - D, 0.0)
            return _as_k_by(cp, n_g, D, D), count, None, 0.0, False
        scale = np.broadcast_to(np.asarray(cp, dtype=float), (D, D))[None]
        count = np.array([max(float(np.max(cw)) - D, 0.0)])
        return scale, count, None, 0.0, False
    if convention != "gmmhmm":
        raise ValueError(
            f"convention must be 'gaussianhmm' or 'gmmhmm', got {convention!r}."
        )
    M = 1 if n_mix is None else int(n_mix)
    if n_g % M:
        raise ValueError(f"n_mix={n_mix} does not divide {n_g} Gaussians.")
    default = _gmmhmm_defaults(ct, D, M)
    alpha = default[0] if covars_prior is None else covars_prior
    beta = default[1] if covars_weight is None else covars_weight
    if ct == "diag":
        return 2.0 * _per(beta, n_g, D), 2.0 * _per(alpha, n_g, D) + 3.0, None, 0.0, True
    if ct == "spherical":
        return 2.0 * _per(beta, n_g), D + 2.0 * (_per(alpha, n_g) + 1.0), None, 0.0, True
    if ct == "full":
        psi = np.swapaxes(_per(alpha, n_g, D, D), 1, 2)
        return psi, _per(beta, n_g) + D + 2.0, None, 0.0, True
    K = n_g // M
    psi = np.swapaxes(_per(alpha, K, D, D), 1, 2)
    return psi, _per(beta, K) + M + D + 1.0, M, 0.0, True


def update_covars(
    stats: GaussianStats,
    means: np.ndarray,
    old_covars: np.ndarray,
    covariance_type: str,
    *,
    means_prior=0.0,
    means_weight=0.0,
    covars_prior=0.0,
    covars_weight=0.0,
    min_covar=0.0,
    convention: str = "gaussianhmm",
    n_mix: int | None = None,
):
    """MAP covariances given ``means``, floored at ``min_covar``: hmmlearn's M-steps.

    ``convention='gaussianhmm'`` (the default) is hmmlearn GaussianHMM's: inverse gamma per
    variance ('diag', 'spherical': ``covars_prior`` is twice its scale, ``covars_weight - 1``
    twice its shape plus two) or inverse Wishart ('full', 'tied': ``covars_prior`` its scale
    matrix, ``covars_weight - n_features`` its degrees of freedom plus n_features + 1), with
    the normal prior on the means scaled by the covariance; priors are scalars or per
    component; 'tied' is one covariance for all Gaussians (statistics of kind 'tied').
    Components with no weight keep their previous covariance.

    ``convention='gmmhmm'`` is hmmlearn GMMHMM's, for ``len(means) = n_components * n_mix``
    Gaussians (state-major): priors per Gaussian ((n_components, n_mix, ...) or flattened,
    None for hmmlearn's defaults), 'diag' ``covars_prior`` alpha and ``covars_weight`` beta
    giving ``(lam d^2 + 2 beta + S) / (n + 2 alpha + 3)``; 'spherical'
    ``(sum_d (lam d^2 + S) + 2 beta) / (D (n + 1) + 2 (alpha + 1))``; 'full'
    ``(Psi^T + lam d d^T + S) / (n + nu + D + 2)``; 'tied' one full covariance per state
    (group of ``n_mix`` Gaussians, statistics of kind 'full'), ``(Psi_k^T + sum_m (lam d d^T
    + S_m)) / (n_k + n_mix + nu_k + D + 1)`` with ``covars_prior`` (n_components, D, D) and
    ``covars_weight`` (n_components,). A Gaussian (state) with no weight keeps its previous
    covariance.

    Both are :func:`map_covars` with the prior translated to its canonical (scale, count);
    the matching log prior is :func:`log_prior` with the same arguments.

    Parameters
    ----------
    stats, means, old_covars, covariance_type
        As :func:`map_covars` (the result has ``old_covars``' shape).
    means_prior, means_weight, covars_prior, covars_weight
        The priors, in the convention's form.
    min_covar : float, ndarray of shape (n_features,) or None
        Floor applied last (:func:`floor_covars`): a number is absolute, a vector per
        feature (GMMHMM's ``var_floor_``); None: no floor.
    convention : {'gaussianhmm', 'gmmhmm'}
    n_mix : int or None
        Gaussians per state ('gmmhmm'; 'tied' groups them).

    Returns
    -------
    covars : ndarray, of ``old_covars``' shape
    """
    check_covariance_type(covariance_type)
    n_g, D = np.shape(means)
    scale, count, group, min_count, keep_empty = _canonical_prior(
        covariance_type, n_g, D, covars_prior, covars_weight, convention, n_mix
    )
    covars = map_covars(
        stats, means, covariance_type, old_covars, scale=scale, count=count,
        means_prior=means_prior, means_weight=means_weight, group_size=group,
        min_count=min_count, keep_empty=keep_empty,
    )
    if min_covar is None:
        return covars
    return floor_covars(covars, covariance_type, min_covar)


def estimate_gaussians(
    stats: GaussianStats,
    covariance_type: str,
    *,
    reg_covar: float = 0.0,
    old_means=None,
    old_covars=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood means and covariances with scikit-learn's conventions (the M-step
    of GaussianMixture, and the component moments of a mixture of factor analyzers).

    Every component's weight gets ``10 * eps`` added (an empty component's mean is its
    shift, not 0/0), ``reg_covar`` is added to every variance, and variances are kept
    positive: 'diag'/'spherical' at least the smallest normal float, 'full'/'tied'
    eigenvalues at least 1e-10 times the largest. A component with no weight keeps its
    previous mean and covariance when they are given.

    Parameters
    ----------
    stats : GaussianStats
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    reg_covar : float
    old_means, old_covars : ndarray or None

    Returns
    -------
    means : ndarray of shape (K, D)
    covars : ndarray in the shape of ``covariance_type``
    """
    eps = 10 * np.finfo(float).eps
    K, D = stats.sum1.shape
    means = update_means(stats, old_means, extra_count=eps)
    # The count every component's weight gets, in map_covars' units.
    count = {"spherical": D * eps, "tied": K * eps}.get(covariance_type, eps)
    covars = map_covars(
        stats, means, covariance_type,
        None if covariance_type == "tied" else old_covars,
        count=count, reg_covar=reg_covar,
    )
    floor = np.finfo(float).tiny if covariance_type in ("diag", "spherical") else 0.0
    return means, floor_covars(covars, covariance_type, floor)


def loglik_roundoff(covars: np.ndarray, covariance_type: str) -> float:
    """Round-off of a Gaussian log-density per sample, set by the covariances' conditioning.

    A covariance stored in float64 is its exact value up to a relative perturbation of each
    entry of order ``eps``, which moves an eigenvalue ``lambda_min`` by up to about
    ``eps * lambda_max`` and with it the log-density by about half the relative change (for
    every row); the Cholesky factorisation and the triangular solves of the evaluation add
    errors of the same order, ``n_features`` times. So the log-likelihood of a full or tied
    covariance is defined in float64 only to about ``n_features * eps * cond``: up to 1e-5
    per sample at the eigenvalue floor (condition number 1e10), where a fit of exactly
    repeated parameters gives values differing by ~1e-7 (tests/test_mixture.py compares with
    exact rational arithmetic). Diagonal and spherical variances are stored each to relative
    ``eps``: their round-off does not grow with the conditioning, and 0 is returned.
    """
    if covariance_type in ("diag", "spherical"):
        return 0.0
    covars = np.asarray(covars, dtype=np.float64)
    mats = covars[None] if covariance_type == "tied" else covars
    D = mats.shape[-1]
    ev = np.linalg.eigvalsh(mats)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(ev[:, 0] > 0, ev[:, -1] / ev[:, 0], np.inf)
    return float(D * np.finfo(np.float64).eps * np.max(cond))


def expected_loglik(stats: GaussianStats, means: np.ndarray, covars: np.ndarray,
                    covariance_type: str) -> np.ndarray:
    """Gaussian part of EM's expected complete-data log-likelihood, per component.

    ``-0.5 * (n_k log|Sigma_k| + tr(Sigma_k^-1 S_k(means)))`` (constants dropped), with
    ``S_k`` the scatter of the statistics about ``means``. For 'tied' one value (the sum),
    returned as an array of shape (1,). A covariance that is not positive definite gives
    -inf. The M-step's regularisations and floors are checked against it: a step that lowers
    it could lower the log-likelihood.
    """
    K, D = means.shape
    scatter = _scatter(stats, means, covariance_type)
    post = stats.post
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if covariance_type in ("diag", "spherical"):
            var = np.broadcast_to(covars[:, None] if covariance_type == "spherical" else covars,
                                  (K, D))
            q = -0.5 * (post[:, None] * np.log(var) + scatter / var).sum(axis=1)
            return np.where(np.all(var > 0, axis=1), q, -np.inf)
        mats = covars[None] if covariance_type == "tied" else covars
        scat = scatter[None] if covariance_type == "tied" else scatter
        n = np.array([post.sum()]) if covariance_type == "tied" else post
        out = np.empty(len(mats))
        for k in range(len(mats)):
            try:
                L = np.linalg.cholesky(mats[k])
            except np.linalg.LinAlgError:
                out[k] = -np.inf
                continue
            logdet = 2.0 * np.log(np.diagonal(L)).sum()
            Y = np.linalg.solve(L, scat[k])
            tr = np.trace(np.linalg.solve(L, Y.T))
            out[k] = -0.5 * (n[k] * logdet + tr)
        return out


def _floor_eigenvalues(covars: np.ndarray, floor: float) -> np.ndarray:
    """Symmetrise, and raise eigenvalues below the floor to it (only in matrices that need it).

    The floor is the larger of ``floor`` and 1e-10 times the matrix's largest eigenvalue, so
    a fitted covariance is always positive definite, even when it spans clusters far apart.
    """
    covars = 0.5 * (covars + np.swapaxes(covars, -1, -2))
    mats = covars[None] if covars.ndim == 2 else covars
    evals, evecs = np.linalg.eigh(mats)
    fl = np.full(len(mats), float(floor))
    rel = 1e-10 * np.maximum(evals[:, -1], np.finfo(float).tiny)
    # Never below 1e-10 of the largest eigenvalue either: an absolute floor under the
    # round-off of a matrix spanning far-apart clusters would not make it positive definite.
    fl = np.maximum(fl, rel)
    low = evals[:, 0] < fl
    if np.any(low):
        ev = np.maximum(evals[low], fl[low, None])
        mats = mats.copy()
        rebuilt = np.einsum("kde,ke,kfe->kdf", evecs[low], ev, evecs[low])
        mats[low] = 0.5 * (rebuilt + np.swapaxes(rebuilt, -1, -2))  # exactly symmetric
    return mats[0] if covars.ndim == 2 else mats


def map_log_prior(
    means: np.ndarray,
    covars: np.ndarray,
    covariance_type: str,
    *,
    scale=0.0,
    count=0.0,
    means_prior=0.0,
    means_weight=0.0,
    group_size: int | None = None,
) -> float:
    """Log prior density (up to a constant) whose MAP estimate is :func:`map_covars`.

    ``sum_c [-count_c / 2 log|Sigma_c| - tr(scale_c Sigma_c^{-1}) / 2]
    - sum_g lam_g (m_g - m0_g)^T Sigma_g^{-1} (m_g - m0_g) / 2``, over the covariances c and
    the Gaussians g (for 'diag' per variance, for 'spherical' ``count`` and ``scale`` are
    totals over the features). Arguments as :func:`map_covars`; ``covars`` in any shape
    holding the type's entries ((n_groups, D, D) or (D, D) for 'tied'). Raises
    ``numpy.linalg.LinAlgError`` when a full covariance is not positive definite.
    """
    check_covariance_type(covariance_type)
    means = np.asarray(means, dtype=np.float64)
    covars = np.asarray(covars, dtype=np.float64)
    n_g, D = means.shape
    lam = _per(means_weight, n_g)
    diff = means - _per(means_prior, n_g, D)
    if covariance_type in ("diag", "spherical"):
        ws = weighted_square(lam[:, None], diff)
        if covariance_type == "diag":
            var = covars.reshape(n_g, D)
            return float(np.sum(
                -0.5 * _per(count, n_g, D) * np.log(var) - 0.5 * (_per(scale, n_g, D) + ws) / var
            ))
        var = covars.reshape(n_g)
        return float(np.sum(
            -0.5 * _per(count, n_g) * np.log(var) - 0.5 * (_per(scale, n_g) + ws.sum(axis=1)) / var
        ))
    mats = covars.reshape(-1, D, D)
    n_out = len(mats)
    size = 1 if covariance_type == "full" else n_g // n_out
    if covariance_type == "tied" and group_size is not None and size != group_size:
        raise ValueError(f"{n_out} tied covariances do not match group_size={group_size}.")
    chol = np.linalg.cholesky(mats)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    inv = np.linalg.inv(mats)
    inv_g = np.repeat(inv, size, axis=0) if size > 1 else inv  # one per Gaussian
    wd = lam[:, None] * diff  # exactly 0 where the weight is 0
    quad = np.einsum("kd,kde,ke->k", wd, inv_g, np.where(wd != 0, diff, 0.0))
    a = _per(count, n_out)
    psi = _per(scale, n_out, D, D)
    return float(np.sum(-0.5 * a * logdet - 0.5 * np.einsum("kde,ked->k", psi, inv))
                 - 0.5 * quad.sum())


def log_prior(
    means: np.ndarray,
    covars: np.ndarray,
    covariance_type: str,
    *,
    means_prior=0.0,
    means_weight=0.0,
    covars_prior=0.0,
    covars_weight=0.0,
    convention: str = "gaussianhmm",
    n_mix: int | None = None,
) -> float:
    """Log density (up to a constant) of the parameters under the priors of
    :func:`update_covars` (same arguments and conventions; ``covars`` in any shape holding
    the type's entries).

    The M-step of ``update_means`` then ``update_covars`` maximises the expected complete-data
    log-likelihood plus this term, so EM never decreases ``loglik + log_prior``. With
    ``convention='gmmhmm'`` this is the Gaussian part of hmmlearn GMMHMM's prior (the
    mixture weights' Dirichlet term is the caller's).
    """
    check_covariance_type(covariance_type)
    n_g, D = np.shape(means)
    scale, count, group, _, _ = _canonical_prior(
        covariance_type, n_g, D, covars_prior, covars_weight, convention, n_mix
    )
    return map_log_prior(
        means, covars, covariance_type, scale=scale, count=count, means_prior=means_prior,
        means_weight=means_weight, group_size=group,
    )
