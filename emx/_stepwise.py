"""Stepwise (online) EM on emx's additive statistics: the engine of ``partial_fit``.

Stepwise EM (Cappé & Moulines 2009, "On-line expectation-maximization algorithm for latent
data models"; Liang & Klein 2009, "Online EM for unsupervised models") keeps running
sufficient statistics ``s`` on a per-frame basis and, after each chunk of data, moves them
towards the chunk's statistics by a step ``eta``::

    s <- (1 - eta) * s + eta * stats(chunk) / n_frames(chunk)
    eta_t = (t + t0) ** -kappa        (t = 1, 2, ... : the number of earlier steps)

then runs the model's usual M-step on ``s * n_seen`` (``n_seen`` the number of frames seen
so far, so priors weigh as in a batch fit of all the data seen). The first step takes
``eta = 1`` (there is nothing to average with). ``kappa`` in (0.5, 1] gives the
Robbins-Monro conditions of the convergence results; ``kappa = 0`` makes every step 1, so
that ``partial_fit`` on the whole data is one batch EM iteration.

Gaussian statistics are moments about a shift (the component means of the E-step); the
running statistics are moved to the new chunk's shift exactly before they are combined.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from ._stats import AdditiveStats, _is_fixed
from .gaussian import GaussianStats

__all__ = ["StepwiseState", "check_schedule", "step_size"]


def check_schedule(kappa, t0) -> tuple[float, float]:
    """``(kappa, t0)`` as floats, or a ValueError naming the bad one."""
    for name, value in (("kappa", kappa), ("t0", t0)):
        if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                or not np.isfinite(value) or value < 0):
            raise ValueError(f"{name} must be a finite non-negative number, got {value!r}.")
    if kappa > 1:
        raise ValueError(f"kappa must be in [0, 1], got {kappa!r}.")
    if t0 + 1 <= 0 or (t0 + 1) ** -kappa > 1:
        raise ValueError(f"t0 must be such that (1 + t0) ** -kappa <= 1, got t0={t0!r}.")
    return float(kappa), float(t0)


def step_size(t: int, kappa: float, t0: float) -> float:
    """``eta_t = (t + t0) ** -kappa`` for the ``t``-th step after the first (``t >= 1``);
    the first step (``t = 0``) is 1."""
    return 1.0 if t == 0 else float((t + t0) ** -kappa)


def _recenter(gs: GaussianStats, shift: np.ndarray, covariance_type: str) -> GaussianStats:
    """The same moments about ``shift`` instead of ``gs.shift`` (exact algebra)."""
    K, D = gs.sum1.shape
    old = np.broadcast_to(np.asarray(gs.shift, dtype=np.float64).reshape(-1, D), (K, D))
    new = np.broadcast_to(np.asarray(shift, dtype=np.float64).reshape(-1, D), (K, D))
    d = old - new  # (x - new) = (x - old) + d
    post = gs.post[:, None]
    sum1 = gs.sum1 + post * d
    if gs.sum2.ndim == 3:  # full: (K, D, D)
        cross = gs.sum1[:, :, None] * d[:, None, :]
        sum2 = gs.sum2 + cross + cross.transpose(0, 2, 1) + post[:, :, None] * (
            d[:, :, None] * d[:, None, :])
    elif covariance_type == "tied":  # (D, D), summed over components
        cross = np.einsum("ki,kj->ij", gs.sum1, d)
        sum2 = gs.sum2 + cross + cross.T + np.einsum("k,ki,kj->ij", gs.post, d, d)
    else:  # diag / spherical: (K, D)
        sum2 = gs.sum2 + 2.0 * d * gs.sum1 + post * d * d
    return GaussianStats(gs.post.copy(), sum1, sum2, shift)


def _combine(old, new, a: float, b: float, covariance_type: str):
    """``a * old + b * new`` field by field (``old`` None: ``b * new``); fixed fields and
    Gaussian shifts are the new ones."""
    if isinstance(new, GaussianStats) and old is not None:
        old = _recenter(old, new.shift, covariance_type)
    if isinstance(new, AdditiveStats):
        values = {}
        for f in dataclasses.fields(new):
            y = getattr(new, f.name)
            x = None if old is None else getattr(old, f.name)
            if _is_fixed(f) or y is None:
                values[f.name] = y
            else:
                values[f.name] = _combine(x, y, a, b, covariance_type)
        return new._rebuild(values)
    if old is None:
        return b * new
    if a == 0:
        return b * new  # no 0 * inf
    return a * old + b * new


class StepwiseState:
    """Running per-frame statistics of stepwise EM and the step counter.

    Attributes
    ----------
    t : int
        Steps taken.
    n_seen : float
        Frames seen (rows for the mixtures; weighted rows with sample weights).
    stats : running statistics per frame (None before the first step).
    """

    def __init__(self):
        self.t, self.n_seen, self.stats = 0, 0.0, None

    def step(self, chunk_stats, n_frames: float, kappa: float, t0: float,
             covariance_type: str = "diag"):
        """Fold one chunk's summed statistics in; returns the statistics for the M-step
        (the running ones times ``n_seen``) and the step size used."""
        if not n_frames > 0:
            raise ValueError("partial_fit needs at least one frame.")
        eta = step_size(self.t, kappa, t0)
        self.stats = _combine(None if self.t == 0 else self.stats, chunk_stats,
                              1.0 - eta, eta / n_frames, covariance_type)
        self.t += 1
        self.n_seen += n_frames
        return _combine(None, self.stats, 0.0, self.n_seen, covariance_type), eta
