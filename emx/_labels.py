"""Partially labelled sequences for the HMMs (semi-supervised EM).

A label restricts the hidden state of a frame: an int per frame (``-1`` unknown) or a boolean
mask ``(n_frames, n_components)`` of allowed states. The restriction is applied to the
emission log-likelihoods (``-inf`` outside the allowed states) before they reach the
forward-backward and Viterbi kernels. That is exact: the forward-backward of the masked
log-likelihoods sums ``P(X, path)`` over exactly the paths the labels allow, so its
log-likelihood is ``log P(X, labels)`` (the objective EM maximises, monotone), its posteriors
are ``P(state | X, labels)``, and Viterbi returns the best path among the allowed ones.
"""

from __future__ import annotations

import numpy as np

__all__ = ["label_mask", "apply_mask"]


def label_mask(labels, n_frames: int, n_components: int) -> np.ndarray | None:
    """The boolean mask ``(n_frames, n_components)`` of allowed states given by ``labels``,
    or None when every state is allowed at every frame (no labels, or ``-1`` everywhere).

    ``labels`` is None, an int array-like of shape (n_frames,) (``-1`` for unknown; a list of
    per-sequence arrays is concatenated), or a boolean array-like of shape
    (n_frames, n_components). Anything else is a ValueError naming the problem.
    """
    if labels is None:
        return None
    if isinstance(labels, (list, tuple)) and labels and all(
            np.ndim(x) >= 1 for x in labels):
        labels = np.concatenate([np.asarray(x) for x in labels], axis=0)
    y = np.asarray(labels)
    K = n_components
    if y.dtype == bool:
        if y.shape != (n_frames, K):
            raise ValueError(
                f"A boolean labels mask must have shape (n_frames, n_components) = "
                f"({n_frames}, {K}), got {y.shape}.")
        empty = np.flatnonzero(~y.any(axis=1))
        if len(empty):
            raise ValueError(
                f"labels allows no state at frame {int(empty[0])} ({len(empty)} such "
                "frame(s)): every frame needs at least one allowed state.")
        mask = np.array(y, dtype=bool, order="C")  # a copy: the caller's array is not kept
        return None if mask.all() else mask
    if y.ndim != 1:
        raise ValueError(
            f"labels must be a 1-D int array (one state per frame, -1 for unknown) or a "
            f"boolean mask of shape ({n_frames}, {K}); got an array of shape {y.shape}.")
    if len(y) != n_frames:
        raise ValueError(f"labels has {len(y)} entries but X has {n_frames} frames.")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("labels must be whole numbers (state indices, -1 for unknown).")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers (state indices, -1 for unknown), got "
                         f"dtype {y.dtype}.")
    bad = np.flatnonzero((y < -1) | (y >= K))
    if len(bad):
        raise ValueError(
            f"labels must be in [-1, {K}) (a state index, -1 for unknown): frame "
            f"{int(bad[0])} has {int(y[bad[0]])}.")
    known = y >= 0
    if not known.any():
        return None
    mask = np.ones((n_frames, K), dtype=bool)
    mask[known] = False
    mask[np.flatnonzero(known), y[known]] = True
    return mask


def apply_mask(loglik: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Emission log-likelihoods with ``-inf`` outside the allowed states (a new array; the
    input itself when there is no mask)."""
    if mask is None:
        return loglik
    return np.where(mask, loglik, -np.inf)
