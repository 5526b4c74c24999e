"""Discrete-emission HMMs: symbols (CategoricalHMM), counts over a fixed number of trials
(MultinomialHMM) and unbounded counts (PoissonHMM).

Names, defaults, priors and initialisation follow hmmlearn 0.3.3, so code can switch by
changing an import; the transitions, forward-backward, decoding and EM loop are
:class:`emx.hmm.BaseHMM`'s (compiled scaled kernels, threads with ``n_jobs``, restarts with
``n_init``). Each class is thin: it holds the hyperparameters and builds its emission object
(:class:`CategoricalEmission`, :class:`MultinomialEmission`, :class:`PoissonEmission`),
which does the work:

* CategoricalHMM: a frame is one symbol ``s`` in ``[0, n_features)``; its state
  log-likelihoods are row ``s`` of ``log(emissionprob_).T`` (a gather) and the E-step's
  statistics are the state posteriors summed per symbol (a weighted bincount), both in the
  compiled kernels of ``src/_discrete.pyx``.
* MultinomialHMM: a frame is a vector of counts summing to ``n_trials``;
  ``log P(x | k) = log n! - sum_d log x_d! + sum_d x_d log p_kd``.
* PoissonHMM: a frame is a vector of independent Poisson counts with rates ``lambdas_``.

Observations are integers held in any numeric array (a float array of whole numbers is
accepted, as a column of symbols or a matrix of counts); negative values, fractions,
symbols outside ``[0, n_features)`` and multinomial rows that do not sum to ``n_trials`` are
refused with a ValueError naming the first offending entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state

from ._core import _discrete, check_ok
from ._em import column_moments
from ._stats import AdditiveStats
from ._validation import check_positive_int
from .emissions import Emission
from .hmm import BaseHMM

__all__ = [
    "CategoricalEmission",
    "CategoricalHMM",
    "DiscreteStats",
    "MultinomialEmission",
    "MultinomialHMM",
    "PoissonEmission",
    "PoissonHMM",
]

# Counts and symbols are exact in float64 up to 2**53; symbols also index arrays.
_MAX_COUNT = 2.0**53
_MAX_SYMBOLS = 2**31 - 1
# A state whose expected occupancy is below this keeps its Poisson rates (no data).
_EMPTY = 1e-10


@dataclass
class DiscreteStats(AdditiveStats):
    """Additive sufficient statistics of a discrete emission model.

    Attributes
    ----------
    post : ndarray of shape (n_components,)
        Expected number of frames in each state.
    obs : ndarray of shape (n_components, n_symbols or n_features)
        Posterior-weighted symbol counts (categorical) or sums of the count vectors
        (multinomial, Poisson) per state.
    """

    post: np.ndarray
    obs: np.ndarray


# ---------------------------------------------------------------------------- helpers
def _first_bad(mask: np.ndarray) -> tuple:
    """(row, column) of the first True entry of a 2-D mask."""
    i, j = np.unravel_index(int(np.argmax(mask)), mask.shape)
    return int(i), int(j)


def _check_whole_numbers(X: np.ndarray, what: str) -> None:
    """Raise a ValueError naming the first entry of ``X`` (finite float64, 2-D) that is not a
    non-negative whole number."""
    neg = X < 0
    if neg.any():
        i, j = _first_bad(neg)
        raise ValueError(
            f"{what} must be non-negative integers; X[{i}, {j}] = {float(X[i, j]):.17g}."
        )
    frac = np.floor(X) != X
    if frac.any():
        i, j = _first_bad(frac)
        raise ValueError(
            f"{what} must be integers; X[{i}, {j}] = {float(X[i, j]):.17g}."
        )
    if X.size and X.max() > _MAX_COUNT:
        i, j = _first_bad(X > _MAX_COUNT)
        raise ValueError(
            f"{what} must be at most 2**53 (exact in float64); X[{i}, {j}] = "
            f"{float(X[i, j]):.17g}."
        )


def _safe_log(p: np.ndarray) -> np.ndarray:
    """log with exact zeros mapped to -inf, without a warning."""
    out = np.full(p.shape, -np.inf)
    np.log(p, out=out, where=p > 0)
    return out


def _check_stochastic(value, name: str, n_rows: int, n_cols: int | None) -> np.ndarray:
    """``value`` as a C-contiguous float64 (n_rows, n_cols) array of probability rows
    (n_cols taken from the array when None), or a ValueError naming ``name``."""
    if value is None:
        raise NotFittedError(f"{name} is not set: fit the model or set {name}.")
    p = np.atleast_2d(np.asarray(value, dtype=np.float64))
    want = f"({n_rows}, {'n_features' if n_cols is None else n_cols})"
    if p.ndim != 2 or p.shape[0] != n_rows or p.shape[1] < 1 or (
            n_cols is not None and p.shape[1] != n_cols):
        raise ValueError(f"{name} must have shape {want}, got {p.shape}.")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} must be finite and non-negative.")
    rows = p.sum(axis=1)
    bad = np.flatnonzero(~np.isclose(rows, 1.0, rtol=0, atol=1e-6))
    if bad.size:
        raise ValueError(
            f"{name} rows must sum to 1 (rows {bad.tolist()} sum to {rows[bad].tolist()})."
        )
    return np.ascontiguousarray(p)


def _broadcast(value, name: str, K: int, F: int, *, non_negative: bool = False) -> np.ndarray:
    """A prior as a (K, F) array: a scalar, one value per state ((K,) or (K, 1)), or anything
    that broadcasts to (K, F); finite (and non-negative when asked), else a ValueError."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == K:
        arr = arr[:, None]  # one value per state, as hmmlearn documents
    try:
        out = np.broadcast_to(arr, (K, F))
    except ValueError:
        raise ValueError(
            f"{name} must be a scalar, one value per state ({K},) or an array that "
            f"broadcasts to shape ({K}, {F}), got shape {arr.shape}."
        ) from None
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be finite.")
    if non_negative and np.any(out < 0):
        raise ValueError(f"{name} must be non-negative.")
    return out


def _dirichlet_rows(counts: np.ndarray, prior: np.ndarray, old: np.ndarray) -> np.ndarray:
    """MAP rows of probabilities under Dirichlet(prior) given expected ``counts``: entries
    below zero (priors < 1) clip to zero; a row with no mass keeps its previous values."""
    c = np.maximum(prior - 1.0 + counts, 0.0)
    total = c.sum(axis=1, keepdims=True)
    ok = total[:, 0] > 0
    new = np.array(old, dtype=np.float64)
    new[ok] = c[ok] / total[ok]
    return new


def _dirichlet_log_prior(p: np.ndarray, prior: np.ndarray) -> float:
    """Log Dirichlet density of rows ``p`` up to a constant (zero entries skipped: they are
    the clipped ones of :func:`_dirichlet_rows`)."""
    nz = p > 0
    return float(np.sum((prior - 1.0)[nz] * np.log(p[nz])))


def _log_terms(p: np.ndarray):
    """``(W, Z)``: ``W`` (F, K) = log p.T with the log of exact zeros replaced by 0, and ``Z``
    (F, K) float marks of the zeros (None when there are none), so that a count vector's
    ``sum_d x_d log p_kd`` is ``X @ W``, -inf where ``(X > 0) @ Z`` is positive."""
    zero = p == 0
    W = np.ascontiguousarray(np.where(zero, 0.0, _safe_log(p)).T)
    Z = np.ascontiguousarray(zero.T, dtype=np.float64) if zero.any() else None
    return W, Z


def _count_loglik(X: np.ndarray, W: np.ndarray, Z, const: np.ndarray) -> np.ndarray:
    """``X @ W + const[:, None]``, -inf where a positive count meets a zero parameter."""
    ll = X @ W
    ll += const[:, None]
    if Z is not None:
        ll[((X > 0) @ Z) > 0] = -np.inf
    return ll


def _log_factorial(X: np.ndarray) -> np.ndarray:
    """``log(x!)`` of every entry of ``X`` (non-negative whole numbers): gammaln(x + 1), from
    a table of its values (a gather) when the table is smaller than ``X``."""
    top = float(X.max()) if X.size else 0.0
    if top >= max(256, X.size):
        return gammaln(X + 1.0)
    table = gammaln(np.arange(int(top) + 2, dtype=np.float64))  # table[k + 1] = log(k!)
    return table[1:][X.astype(np.intp)]


def _check_n_features_hyper(n_features) -> int | None:
    if n_features is None:
        return None
    n = check_positive_int(n_features, "n_features")
    if n > _MAX_SYMBOLS:
        raise ValueError(f"n_features must be at most {_MAX_SYMBOLS}, got {n}.")
    return n


# ---------------------------------------------------------------------------- emissions
class CategoricalEmission(Emission):
    """One categorical distribution over ``n_features`` symbols per state.

    Parameters
    ----------
    n_components : int
        Number of states.
    n_features : int or None
        Number of symbols; None: one more than the largest symbol of the training data.
    emissionprob_prior : float or array
        Dirichlet concentration for each state's row of ``emissionprob_`` (1: no prior).

    Attributes
    ----------
    emissionprob_ : ndarray of shape (n_components, n_features)
        ``emissionprob_[k, s]`` = P(symbol s | state k).
    """

    attrs = ("emissionprob_",)

    def __init__(self, n_components: int, n_features: int | None = None,
                 emissionprob_prior=1.0):
        self.n_components = n_components
        self.n_features = n_features
        self.emissionprob_prior = emissionprob_prior

    def check_hyperparameters(self) -> None:
        """Raise a ValueError naming a bad hyperparameter."""
        _check_n_features_hyper(self.n_features)

    def validate(self, X: np.ndarray) -> np.ndarray:
        self.check_hyperparameters()
        if X.shape[1] != 1:
            raise ValueError(
                "CategoricalHMM takes one column of symbols, X of shape (n_samples, 1); got "
                f"{X.shape[1]} columns (sklearn.preprocessing.LabelEncoder maps labels to "
                "symbols 0, 1, ...)."
            )
        _check_whole_numbers(X, "Symbols")
        if self.n_features is not None and X.size and X.max() >= self.n_features:
            s = int(X.max())
            raise ValueError(
                f"X holds symbol {s}, but n_features={self.n_features} allows symbols 0 to "
                f"{self.n_features - 1}."
            )
        if X.size and X.max() >= _MAX_SYMBOLS:
            raise ValueError(
                f"Symbols must be below {_MAX_SYMBOLS}; X holds {float(X.max()):.17g}."
            )
        return X

    def check(self, n_features: int | None) -> int:
        self.check_hyperparameters()
        if n_features is not None and n_features != 1:
            raise ValueError(
                f"CategoricalHMM takes one column of symbols, got n_features_in_={n_features}."
            )
        self.emissionprob_ = _check_stochastic(
            getattr(self, "emissionprob_", None), "emissionprob_", self.n_components,
            self.n_features,
        )
        self._prior()
        return 1

    def _prior(self) -> np.ndarray:
        return _broadcast(self.emissionprob_prior, "emissionprob_prior",
                          *self.emissionprob_.shape)

    def n_parameters(self, params: str) -> int:
        K, M = self.emissionprob_.shape
        return K * (M - 1) if "e" in params else 0

    def init(self, X: np.ndarray, init_params: str, random_state) -> None:
        if "e" in init_params or getattr(self, "emissionprob_", None) is None:
            M = self.n_features if self.n_features is not None else int(X.max()) + 1
            rs = check_random_state(random_state)
            p = rs.rand(self.n_components, M)  # hmmlearn's draw
            self.emissionprob_ = p / p.sum(axis=1, keepdims=True)

    def estep_fn(self):
        p = self.emissionprob_
        M = p.shape[1]
        log_table = np.ascontiguousarray(_safe_log(p).T)  # (M, K): one row per symbol

        def loglik(X):
            symbols = X[:, 0].astype(np.intp)
            if symbols.size and symbols.max() >= M:
                raise ValueError(
                    f"X holds symbol {int(symbols.max())}, but emissionprob_ has {M} columns "
                    f"(symbols 0 to {M - 1})."
                )
            ll = np.empty((len(symbols), self.n_components))
            check_ok(_discrete.categorical_loglik(symbols, log_table, ll))
            return ll, symbols

        return loglik

    def stats(self, X: np.ndarray, post: np.ndarray, context) -> DiscreteStats:
        symbols = context if context is not None else X[:, 0].astype(np.intp)
        counts = np.empty_like(self.emissionprob_)
        post = np.ascontiguousarray(post, dtype=np.float64)
        check_ok(_discrete.categorical_counts(symbols, post, counts))
        return DiscreteStats(counts.sum(axis=1), counts)  # the M-step needs only counts

    def mstep(self, stats: DiscreteStats, params: str) -> None:
        if "e" in params:
            self.emissionprob_ = _dirichlet_rows(stats.obs, self._prior(), self.emissionprob_)

    def log_prior(self, params: str) -> float:
        if "e" not in params:
            return 0.0
        return _dirichlet_log_prior(self.emissionprob_, self._prior())

    def far_loglik(self, X: np.ndarray) -> np.ndarray:
        # A symbol no state emits: every state equally (im)possible; the frame's sequence
        # gets log-likelihood -inf.
        return np.zeros((len(X), self.n_components))

    def sample(self, states: np.ndarray, random_state) -> np.ndarray:
        p = self.emissionprob_
        cdf = np.cumsum(p, axis=1)
        u = random_state.random_sample(len(states)) * cdf[states, -1]
        out = np.empty(len(states), dtype=np.int64)
        for k in np.unique(states):
            idx = states == k
            out[idx] = np.searchsorted(cdf[k], u[idx], side="right")
        np.minimum(out, p.shape[1] - 1, out=out)
        return out[:, None]


class MultinomialEmission(Emission):
    """One multinomial distribution over ``n_features`` outcomes per state.

    Parameters
    ----------
    n_components : int
        Number of states.
    n_trials : int, array of int or None
        Number of trials: every row of X must sum to it (an array: one value per row of the
        X it is used with). None: any row total (each row's own).
    emissionprob_prior : float or array
        Dirichlet concentration for each state's row of ``emissionprob_`` (1: no prior; an
        emx addition, hmmlearn's MultinomialHMM has none).

    Attributes
    ----------
    emissionprob_ : ndarray of shape (n_components, n_features)
        Outcome probabilities of each state.
    """

    attrs = ("emissionprob_",)

    def __init__(self, n_components: int, n_trials=None, emissionprob_prior=1.0):
        self.n_components = n_components
        self.n_trials = n_trials
        self.emissionprob_prior = emissionprob_prior

    def check_hyperparameters(self) -> None:
        """Raise a ValueError naming a bad hyperparameter."""
        self._trials()

    def _trials(self):
        """n_trials as None, an int or a 1-D int64 array."""
        n = self.n_trials
        if n is None:
            return None
        arr = np.asarray(n)
        if arr.dtype.kind not in "iuf" or arr.ndim > 1 or arr.size == 0 or not np.all(
                np.isfinite(arr)) or np.any(arr < 0) or np.any(np.floor(arr) != arr):
            raise ValueError(
                f"n_trials must be None, a non-negative int or a 1-D array of them, got {n!r}."
            )
        return int(arr) if arr.ndim == 0 else arr.astype(np.int64)

    def validate(self, X: np.ndarray) -> np.ndarray:
        n = self._trials()
        _check_whole_numbers(X, "Counts")
        if n is None:
            return X
        totals = X.sum(axis=1)
        if np.ndim(n) == 1 and len(n) != len(X):
            raise ValueError(
                f"n_trials has {len(n)} values, but X has {len(X)} rows (one value per row, "
                "or a single int)."
            )
        bad = np.flatnonzero(totals != n)
        if bad.size:
            i = int(bad[0])
            want = n if np.ndim(n) == 0 else int(n[i])
            raise ValueError(
                f"Every row of X must sum to n_trials; row {i} sums to {totals[i]:.17g}, not "
                f"{want}."
            )
        return X

    def check(self, n_features: int | None) -> int:
        self.check_hyperparameters()
        self.emissionprob_ = _check_stochastic(
            getattr(self, "emissionprob_", None), "emissionprob_", self.n_components, n_features
        )
        self._prior()
        return self.emissionprob_.shape[1]

    def _prior(self) -> np.ndarray:
        return _broadcast(self.emissionprob_prior, "emissionprob_prior",
                          *self.emissionprob_.shape)

    def n_parameters(self, params: str) -> int:
        K, D = self.emissionprob_.shape
        return K * (D - 1) if "e" in params else 0

    def init(self, X: np.ndarray, init_params: str, random_state) -> None:
        if "e" in init_params or getattr(self, "emissionprob_", None) is None:
            rs = check_random_state(random_state)
            p = rs.rand(self.n_components, X.shape[1])  # hmmlearn's draw
            self.emissionprob_ = p / p.sum(axis=1, keepdims=True)

    def estep_fn(self):
        W, Z = _log_terms(self.emissionprob_)

        def loglik(X):
            const = _log_factorial(X.sum(axis=1)) - _log_factorial(X).sum(axis=1)
            return _count_loglik(X, W, Z, const), None

        return loglik

    def stats(self, X: np.ndarray, post: np.ndarray, context) -> DiscreteStats:
        return DiscreteStats(np.ones(len(X)) @ post, post.T @ X)

    def mstep(self, stats: DiscreteStats, params: str) -> None:
        if "e" in params:
            self.emissionprob_ = _dirichlet_rows(stats.obs, self._prior(), self.emissionprob_)

    def log_prior(self, params: str) -> float:
        if "e" not in params:
            return 0.0
        return _dirichlet_log_prior(self.emissionprob_, self._prior())

    def far_loglik(self, X: np.ndarray) -> np.ndarray:
        return np.zeros((len(X), self.n_components))

    def sample(self, states: np.ndarray, random_state) -> np.ndarray:
        n = self._trials()
        if n is not None and np.ndim(n) == 1:
            values = np.unique(n)
            n = int(values[0]) if len(values) == 1 else None
        if n is None:
            raise ValueError("Sampling a MultinomialHMM needs a single n_trials (an int).")
        p = self.emissionprob_
        out = np.empty((len(states), p.shape[1]), dtype=np.int64)
        for k in np.unique(states):
            idx = np.flatnonzero(states == k)
            row = p[k] / p[k].sum()
            out[idx] = random_state.multinomial(n, row, size=len(idx))
        return out


class PoissonEmission(Emission):
    """Independent Poisson counts per feature, one rate per state and feature.

    Parameters
    ----------
    n_components : int
        Number of states.
    lambdas_prior, lambdas_weight : float or array
        ``alpha`` and ``beta`` of hmmlearn's gamma prior on each rate (scalar, one value per
        state, or (n_components, n_features)); both non-negative. The M-step is hmmlearn's
        ``(alpha + sum_t gamma_tk x_t) / (beta + sum_t gamma_tk)``, the maximum of EM's
        objective with the log prior ``alpha log(lambda) - beta lambda`` (a Gamma(alpha + 1,
        beta) density), which is what the monitor's objective adds.

    Attributes
    ----------
    lambdas_ : ndarray of shape (n_components, n_features)
        Rates.
    """

    attrs = ("lambdas_",)

    def __init__(self, n_components: int, lambdas_prior=0.0, lambdas_weight=0.0,
                 data_moments: tuple | None = None):
        self.n_components = n_components
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight
        # (mean, variance) of all the counts, when init sees only a sample of the frames
        self.data_moments = data_moments

    def validate(self, X: np.ndarray) -> np.ndarray:
        _check_whole_numbers(X, "Counts")
        return X

    def check(self, n_features: int | None) -> int:
        lam = getattr(self, "lambdas_", None)
        if lam is None:
            raise NotFittedError("lambdas_ is not set: fit the model or set lambdas_.")
        lam = np.atleast_2d(np.asarray(lam, dtype=np.float64))
        K = self.n_components
        if lam.ndim != 2 or lam.shape[0] != K or lam.shape[1] < 1 or (
                n_features is not None and lam.shape[1] != n_features):
            want = f"({K}, {'n_features' if n_features is None else n_features})"
            raise ValueError(f"lambdas_ must have shape {want}, got {lam.shape}.")
        if not np.all(np.isfinite(lam)) or np.any(lam < 0):
            raise ValueError("lambdas_ must be finite and non-negative.")
        self.lambdas_ = np.ascontiguousarray(lam)
        self._priors()
        return lam.shape[1]

    def _priors(self):
        K, D = self.lambdas_.shape
        return (_broadcast(self.lambdas_prior, "lambdas_prior", K, D, non_negative=True),
                _broadcast(self.lambdas_weight, "lambdas_weight", K, D, non_negative=True))

    def n_parameters(self, params: str) -> int:
        return self.lambdas_.size if "l" in params else 0

    def init(self, X: np.ndarray, init_params: str, random_state) -> None:
        if "l" in init_params or getattr(self, "lambdas_", None) is None:
            shape = (self.n_components, X.shape[1])
            if self.data_moments is not None:
                mean, var = self.data_moments
            else:
                mean, var = float(X.mean()), float(X.var())
            if mean > 0 and var > 0:
                # hmmlearn's draw: a gamma with the data's mean and variance (all features).
                rs = check_random_state(random_state)
                self.lambdas_ = rs.gamma(shape=mean**2 / var, scale=var / mean, size=shape)
            else:  # constant data: every rate at its value (all zeros: a small rate, which
                # keeps a gamma prior's log density finite; EM takes it to its MAP value)
                self.lambdas_ = np.full(shape, mean if mean > 0 else 1e-3)

    def estep_fn(self):
        lam = self.lambdas_
        W, Z = _log_terms(lam)
        total = lam.sum(axis=1)

        def loglik(X):
            ll = _count_loglik(X, W, Z, -_log_factorial(X).sum(axis=1))
            ll -= total
            return ll, None

        return loglik

    def stats(self, X: np.ndarray, post: np.ndarray, context) -> DiscreteStats:
        return DiscreteStats(np.ones(len(X)) @ post, post.T @ X)

    def mstep(self, stats: DiscreteStats, params: str) -> None:
        if "l" in params:
            alpha, beta = self._priors()
            n = stats.post[:, None]
            ok = stats.post > _EMPTY
            den = np.where(ok[:, None], beta + n, 1.0)  # > 0 where used
            self.lambdas_ = np.where(ok[:, None], (alpha + stats.obs) / den, self.lambdas_)

    def log_prior(self, params: str) -> float:
        if "l" not in params:
            return 0.0
        alpha, beta = self._priors()
        lam = self.lambdas_
        with np.errstate(divide="ignore"):
            a_log = np.where(alpha > 0, alpha * np.log(np.where(alpha > 0, lam, 1.0)), 0.0)
        return float(np.sum(a_log - beta * lam))

    def far_loglik(self, X: np.ndarray) -> np.ndarray:
        return np.zeros((len(X), self.n_components))

    def sample(self, states: np.ndarray, random_state) -> np.ndarray:
        return random_state.poisson(self.lambdas_[states]).astype(np.int64)


# ---------------------------------------------------------------------------- HMMs


class CategoricalHMM(BaseHMM):
    """Hidden Markov model with categorical (symbol) emissions, trained by (MAP-)EM.

    A drop-in for ``hmmlearn.hmm.CategoricalHMM`` (same parameters, defaults, attributes,
    Dirichlet priors and initial draw) on compiled kernels. ``X`` is one column of integer
    symbols, shape (n_samples, 1).

    Parameters
    ----------
    n_components : int
        Number of states.
    startprob_prior, transmat_prior : float or array
        Dirichlet concentrations for ``startprob_`` and each row of ``transmat_``.
    emissionprob_prior : float or array of shape (n_components, n_features)
        Dirichlet concentration for each row of ``emissionprob_``. Below 1 the density has
        no maximum (it is unbounded at 0): an entry whose expected count falls below
        ``1 - prior`` becomes 0 (hmmlearn's rule), and ``monitor_.objective``, which counts
        the log prior of the non-zero entries, can then fall (EMDecreaseWarning).
    n_features : int or None
        Number of symbols. None: one more than the largest symbol in the training data (the
        parameter itself stays None, as scikit-learn requires; the fitted number of symbols
        is ``emissionprob_.shape[1]``).
    params, init_params : str
        Letters of the parameters updated by EM / initialised by :meth:`fit`: 's' startprob,
        't' transmat, 'e' emissionprob.
    algorithm : {'viterbi', 'map'}
        Decoder used by :meth:`decode` and :meth:`predict`.
    random_state : int, RandomState or None
        Seed for initialisation and sampling (an int draws hmmlearn's initial parameters).
    n_iter : int
        Maximum number of EM iterations.
    tol : float
        Stop when the objective gains less than this.
    verbose : bool
        Print per-iteration progress to stderr.
    implementation : {'log', 'scaling'}
        Accepted for compatibility with hmmlearn (whose default for discrete HMMs is 'log');
        emx always runs its scaled kernels, which subtract each frame's maximum and are as
        robust as log-space ones.
    n_init : int
        Number of initialisations; the fit with the best final objective is kept.
    n_jobs : int or None
        Threads for the E-step (None: 1, -1: all cores). Results do not depend on it.

    Attributes
    ----------
    startprob_ : ndarray of shape (n_components,)
    transmat_ : ndarray of shape (n_components, n_components)
    emissionprob_ : ndarray of shape (n_components, n_symbols)
        ``emissionprob_[k, s]`` = P(symbol s | state k).
    monitor_ : ConvergenceMonitor
        ``history`` holds the log-likelihood per iteration, ``objective`` adds the log prior.
    n_features_in_ : int
        Columns of X (1).

    Examples
    --------
    Runs of 20 symbols, alternately mostly 0 and mostly 2:

    >>> import numpy as np
    >>> from emx import CategoricalHMM
    >>> rng = np.random.default_rng(0)
    >>> a = rng.choice(3, size=(5, 20), p=[0.6, 0.3, 0.1])
    >>> b = rng.choice(3, size=(5, 20), p=[0.1, 0.2, 0.7])
    >>> X = np.concatenate([a, b], axis=1).reshape(-1, 1)   # one column of symbols
    >>> model = CategoricalHMM(n_components=2, n_iter=100, n_init=3, random_state=0).fit(X)
    >>> model.emissionprob_.shape
    (2, 3)
    >>> bool(np.allclose(model.emissionprob_.sum(axis=1), 1))
    True
    >>> states = model.predict(X)
    >>> bool((states[:15] == states[0]).all() and (states[25:35] != states[0]).all())
    True
    """

    _emission_attrs = ("emissionprob_",)

    def __init__(
        self,
        n_components: int = 1,
        startprob_prior=1.0,
        transmat_prior=1.0,
        *,
        emissionprob_prior=1.0,
        n_features: int | None = None,
        algorithm: str = "viterbi",
        random_state=None,
        n_iter: int = 10,
        tol: float = 1e-2,
        verbose: bool = False,
        params: str = "ste",
        init_params: str = "ste",
        implementation: str = "log",
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
        self.emissionprob_prior = emissionprob_prior
        self.n_features = n_features

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        self._new_emission().check_hyperparameters()

    def _new_emission(self) -> CategoricalEmission:
        # While initialising from a sample of the data (emx.distributed above max_init_rows),
        # the number of symbols comes from all the data (em_init), not from the sample.
        n = self.n_features if self.n_features is not None else self.__dict__.get(
            "_init_n_symbols")
        return CategoricalEmission(self.n_components, n, self.emissionprob_prior)

    def em_init(self, source, random_state) -> bool:
        """Initialise from ``source`` (the EM protocol); with ``n_features=None`` the number
        of symbols is one more than the largest symbol in all the data, even when the
        initial draw sees only a sample of the frames."""
        if self.n_features is None and source.n_rows > source.max_rows:
            self.__dict__["_init_n_symbols"] = int(max(source.map(_max_symbol))) + 1
        try:
            return super().em_init(source, random_state)
        finally:
            self.__dict__.pop("_init_n_symbols", None)


def _max_symbol(data) -> float:
    """Largest symbol of a prepared partition (BaseHMM's prepared data hold ``X``)."""
    return float(data.X.max())


def _frames(data) -> np.ndarray:
    """The frames of a prepared partition."""
    return data.X


class _CountFeatures:
    """hmmlearn's ``n_features`` attribute of MultinomialHMM and PoissonHMM: the number of
    count columns, ``n_features_in_`` under hmmlearn's name."""

    @property
    def n_features(self) -> int:
        """Number of count columns of X; an AttributeError before it is known."""
        try:
            return self.n_features_in_
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__} has no n_features yet: fit the model or set its "
                f"{self._emission_attrs[0]}."
            ) from None

    @n_features.setter
    def n_features(self, value) -> None:
        self.n_features_in_ = check_positive_int(value, "n_features")


class MultinomialHMM(_CountFeatures, BaseHMM):
    """Hidden Markov model with multinomial emissions, trained by (MAP-)EM.

    A drop-in for ``hmmlearn.hmm.MultinomialHMM`` (hmmlearn >= 0.2.8 semantics: each frame
    is a vector of counts over ``n_features`` outcomes from ``n_trials`` trials). For one
    symbol per frame use :class:`CategoricalHMM`.

    Parameters
    ----------
    n_components : int
        Number of states.
    n_trials : int, array of int or None
        Number of trials: every row of X must sum to it (an array holds one value per row of
        the X it is used with). None: each row's own total (the parameter stays None; sampling
        then needs it set).
    startprob_prior, transmat_prior : float or array
        Dirichlet concentrations for ``startprob_`` and each row of ``transmat_``.
    params, init_params : str
        Letters of the parameters updated by EM / initialised by :meth:`fit`: 's' startprob,
        't' transmat, 'e' emissionprob.
    algorithm : {'viterbi', 'map'}
        Decoder used by :meth:`decode` and :meth:`predict`.
    random_state : int, RandomState or None
        Seed for initialisation and sampling (an int draws hmmlearn's initial parameters).
    n_iter : int
        Maximum number of EM iterations.
    tol : float
        Stop when the objective gains less than this.
    verbose : bool
        Print per-iteration progress to stderr.
    implementation : {'log', 'scaling'}
        Accepted for compatibility with hmmlearn (whose default for discrete HMMs is 'log');
        emx always runs its scaled kernels, which subtract each frame's maximum and are as
        robust as log-space ones.
    n_init : int
        Number of initialisations; the fit with the best final objective is kept.
    n_jobs : int or None
        Threads for the E-step (None: 1, -1: all cores). Results do not depend on it.

    emissionprob_prior : float or array of shape (n_components, n_features)
        Dirichlet concentration for each row of ``emissionprob_`` (an emx addition; the
        default 1 is hmmlearn's maximum-likelihood update; below 1 as in CategoricalHMM).

    Attributes
    ----------
    startprob_ : ndarray of shape (n_components,)
    transmat_ : ndarray of shape (n_components, n_components)
    emissionprob_ : ndarray of shape (n_components, n_features)
    monitor_ : ConvergenceMonitor
    n_features_in_ : int
    n_features : int
        ``n_features_in_`` under hmmlearn's name.

    Examples
    --------
    Rows of counts over three outcomes, 10 trials each:

    >>> import numpy as np
    >>> from emx import MultinomialHMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.multinomial(10, [0.7, 0.2, 0.1], 30),
    ...                     rng.multinomial(10, [0.1, 0.2, 0.7], 30)])
    >>> model = MultinomialHMM(n_components=2, n_trials=10, n_iter=50, random_state=0).fit(X)
    >>> probs = model.emissionprob_[np.argsort(model.emissionprob_[:, 0])]
    >>> bool(np.allclose(probs, [[0.1, 0.2, 0.7], [0.7, 0.2, 0.1]], atol=0.1))
    True
    """

    _emission_attrs = ("emissionprob_",)

    def __init__(
        self,
        n_components: int = 1,
        n_trials=None,
        startprob_prior=1.0,
        transmat_prior=1.0,
        algorithm: str = "viterbi",
        random_state=None,
        n_iter: int = 10,
        tol: float = 1e-2,
        verbose: bool = False,
        params: str = "ste",
        init_params: str = "ste",
        implementation: str = "log",
        n_init: int = 1,
        n_jobs: int | None = None,
        emissionprob_prior=1.0,
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
        self.n_trials = n_trials
        self.emissionprob_prior = emissionprob_prior

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        self._new_emission().check_hyperparameters()

    def _new_emission(self) -> MultinomialEmission:
        return MultinomialEmission(self.n_components, self.n_trials, self.emissionprob_prior)


class PoissonHMM(_CountFeatures, BaseHMM):
    """Hidden Markov model with Poisson emissions, trained by (MAP-)EM.

    A drop-in for ``hmmlearn.hmm.PoissonHMM``: each frame is a vector of non-negative
    integer counts, independent Poisson given the state.

    Parameters
    ----------
    n_components : int
        Number of states.
    startprob_prior, transmat_prior : float or array
        Dirichlet concentrations for ``startprob_`` and each row of ``transmat_``.
    lambdas_prior, lambdas_weight : float or array
        ``alpha`` and ``beta`` of the gamma prior on the rates (a scalar, one value per
        state, or shape (n_components, n_features)); non-negative. The M-step is
        ``(alpha + sum_t gamma_tk x_t) / (beta + sum_t gamma_tk)`` per state (hmmlearn's
        formula, except that hmmlearn divides by the total number of frames for every state,
        not the state's expected count); the defaults (0, 0) are maximum likelihood.
    params, init_params : str
        Letters of the parameters updated by EM / initialised by :meth:`fit`: 's' startprob,
        't' transmat, 'l' lambdas.
    algorithm : {'viterbi', 'map'}
        Decoder used by :meth:`decode` and :meth:`predict`.
    random_state : int, RandomState or None
        Seed for initialisation and sampling (an int draws hmmlearn's initial parameters).
    n_iter : int
        Maximum number of EM iterations.
    tol : float
        Stop when the objective gains less than this.
    verbose : bool
        Print per-iteration progress to stderr.
    implementation : {'log', 'scaling'}
        Accepted for compatibility with hmmlearn (whose default for discrete HMMs is 'log');
        emx always runs its scaled kernels, which subtract each frame's maximum and are as
        robust as log-space ones.
    n_init : int
        Number of initialisations; the fit with the best final objective is kept.
    n_jobs : int or None
        Threads for the E-step (None: 1, -1: all cores). Results do not depend on it.

    Attributes
    ----------
    startprob_ : ndarray of shape (n_components,)
    transmat_ : ndarray of shape (n_components, n_components)
    lambdas_ : ndarray of shape (n_components, n_features)
        Poisson rate of each feature in each state.
    monitor_ : ConvergenceMonitor
    n_features_in_ : int
    n_features : int
        ``n_features_in_`` under hmmlearn's name.

    Examples
    --------
    >>> import numpy as np
    >>> from emx import PoissonHMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.poisson([1, 8], (40, 2)), rng.poisson([8, 1], (40, 2))])
    >>> model = PoissonHMM(n_components=2, n_iter=50, random_state=0).fit(X)
    >>> rates = model.lambdas_[np.argsort(model.lambdas_[:, 0])]
    >>> bool(np.allclose(rates, [[1, 8], [8, 1]], atol=1))
    True
    """

    _emission_attrs = ("lambdas_",)

    def __init__(
        self,
        n_components: int = 1,
        startprob_prior=1.0,
        transmat_prior=1.0,
        lambdas_prior=0.0,
        lambdas_weight=0.0,
        algorithm: str = "viterbi",
        random_state=None,
        n_iter: int = 10,
        tol: float = 1e-2,
        verbose: bool = False,
        params: str = "stl",
        init_params: str = "stl",
        implementation: str = "log",
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
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight

    def _new_emission(self) -> PoissonEmission:
        return PoissonEmission(self.n_components, self.lambdas_prior, self.lambdas_weight,
                               self.__dict__.get("_init_moments"))

    def em_init(self, source, random_state) -> bool:
        """Initialise from ``source`` (the EM protocol); the initial rates are drawn from the
        mean and variance of all the counts, even when the draw sees only a sample of the
        frames (so emx.distributed starts where the serial fit does)."""
        if source.n_rows > source.max_rows:
            mean_d, var_d = column_moments(source, _frames)
            mean = float(mean_d.mean())  # every column has n_rows entries
            var = float(np.mean(var_d + (mean_d - mean) ** 2))
            self.__dict__["_init_moments"] = (mean, var)
        try:
            return super().em_init(source, random_state)
        finally:
            self.__dict__.pop("_init_moments", None)
