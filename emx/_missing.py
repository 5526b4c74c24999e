"""Missing data (NaN) for Gaussian models: rows grouped by missingness pattern, and the
observed-marginal log-density and conditional moments of one Gaussian per pattern.

For a Gaussian N(mu, S) and a row with observed entries o and missing entries m:

* the observed marginal is N(mu_o, S_oo) (its log-density is the row's log-likelihood);
* x_m | x_o ~ N(mu_m + B (x_o - mu_o), C) with B = S_mo S_oo^{-1}, C = S_mm - B S_om.

EM then uses the expected complete-data statistics: E[x] (the row with x_m filled in) and
E[x x^T] = E[x] E[x]^T + C on the missing block. All rows of one pattern share B and C, so an
iteration costs one factorisation per pattern, not per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Pattern", "missing_patterns", "pattern_runs", "split_runs", "ConditionalGaussian"]

_LOG_2PI = np.log(2.0 * np.pi)


@dataclass
class Pattern:
    """Rows sharing one missingness pattern.

    Attributes
    ----------
    observed : (D,) bool mask of the observed columns.
    rows : (n_p,) indices of the rows.
    """

    observed: np.ndarray
    rows: np.ndarray

    @property
    def missing(self) -> np.ndarray:
        return ~self.observed


def missing_patterns(X: np.ndarray) -> list[Pattern]:
    """Group the rows of ``X`` by which entries are NaN, as :class:`Pattern` objects (the
    runs of :func:`pattern_runs`, the one grouping routine).

    Rows with every entry missing form a pattern with no observed column; callers decide
    what to do with them (they carry no information about the parameters).
    """
    if len(X) == 0:
        return []
    order, starts = pattern_runs(X)
    return [
        Pattern(~np.isnan(X[order[a]]), order[a:b])
        for a, b in zip(starts[:-1], starts[1:], strict=True)
    ]


def pattern_runs(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``X`` ordered by missingness pattern, and where each pattern's run starts.

    Returns
    -------
    order : (n,) intp, row indices grouped by pattern
    starts : (n_patterns + 1,) intp, offsets into ``order`` (last = n)
    """
    nan = np.isnan(X)
    if X.shape[1] <= 62:  # one integer key per row: a 1-D sort
        key = nan.astype(np.int64) @ (np.int64(1) << np.arange(X.shape[1], dtype=np.int64))
    else:
        _, key = np.unique(np.packbits(nan, axis=1), axis=0, return_inverse=True)
        key = key.ravel()
    order = np.argsort(key, kind="stable").astype(np.intp)
    starts = np.flatnonzero(np.diff(key[order])) + 1
    return order, np.concatenate([[0], starts, [len(X)]]).astype(np.intp)


def split_runs(order: np.ndarray, starts: np.ndarray, size: int) -> list:
    """Cut ``order`` into pieces of at most ``size`` rows, each with its local run starts (a
    pattern cut in two is simply factorised once per piece)."""
    pieces = []
    for a in range(0, len(order), size):
        b = min(a + size, len(order))
        inner = starts[(starts > a) & (starts < b)] - a
        local = np.concatenate([[0], inner, [b - a]]).astype(np.intp)
        pieces.append((np.ascontiguousarray(order[a:b]), local))
    return pieces


class ConditionalGaussian:
    """Observed marginal and conditional of N(mean, cov) for one missingness pattern.

    Parameters
    ----------
    mean : (D,)
    cov : (D, D), positive definite
    observed : (D,) bool
    """

    def __init__(self, mean: np.ndarray, cov: np.ndarray, observed: np.ndarray):
        o, m = observed, ~observed
        self.observed, self.missing = o, m
        self.mean = mean
        n_obs = int(o.sum())
        if n_obs:
            S_oo = cov[np.ix_(o, o)]
            L = np.linalg.cholesky(S_oo)
            self._L = L
            self._log_norm = -0.5 * (n_obs * _LOG_2PI) - np.log(np.diagonal(L)).sum()
            # B = S_mo S_oo^{-1}, by two triangular solves
            S_om = cov[np.ix_(o, m)]
            tmp = np.linalg.solve(L, S_om)
            self.B = np.linalg.solve(L.T, tmp).T
            self.C = cov[np.ix_(m, m)] - tmp.T @ tmp
        else:
            self._L = None
            self._log_norm = 0.0
            self.B = np.zeros((int(m.sum()), 0))
            self.C = cov[np.ix_(m, m)].copy()

    def log_density(self, X_rows: np.ndarray) -> np.ndarray:
        """Log-density of the observed entries of each row (0 when nothing is observed)."""
        if self._L is None:
            return np.zeros(len(X_rows))
        diff = X_rows[:, self.observed] - self.mean[self.observed]
        y = np.linalg.solve(self._L, diff.T)
        return self._log_norm - 0.5 * np.einsum("ij,ij->j", y, y)

    def fill(self, X_rows: np.ndarray) -> np.ndarray:
        """Rows with their missing entries replaced by the conditional expectation."""
        out = X_rows.copy()
        if self.missing.any():
            diff = X_rows[:, self.observed] - self.mean[self.observed]
            out[:, self.missing] = self.mean[self.missing] + diff @ self.B.T
        return out
