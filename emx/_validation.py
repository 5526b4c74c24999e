"""Input checks shared by every emx model."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils.validation import validate_data

__all__ = ["check_sequences", "check_n_jobs", "check_positive_int", "offsets_from_lengths"]


def _is_sequence_list(X) -> bool:
    return (
        isinstance(X, (list, tuple))
        and len(X) > 0
        and all(isinstance(x, np.ndarray) and x.ndim == 2 for x in X)
    )


def check_sequences(estimator, X, lengths=None, *, reset: bool):
    """Validate observations of one or more sequences.

    Parameters
    ----------
    estimator : BaseEstimator
        The model; ``n_features_in_`` is set (``reset=True``) or checked against.
    X : array-like of shape (n_samples, n_features), or list of such arrays
        Observations. A list of 2-D arrays is taken as one sequence per array.
    lengths : array-like of int, optional
        Lengths of the sequences concatenated in ``X``; ``None`` means one sequence.
    reset : bool
        Whether this call defines ``n_features_in_`` (``fit``) or checks it.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64, C-contiguous
    lengths : ndarray of int64
    offsets : ndarray of intp, shape (n_sequences + 1,)
    """
    if _is_sequence_list(X):
        seq_lengths = [len(x) for x in X]
        if lengths is not None and list(np.asarray(lengths).ravel()) != seq_lengths:
            raise ValueError(
                "lengths was given together with a list of sequences and does not match the "
                f"sequences' lengths {seq_lengths}; pass one or the other."
            )
        if any(n == 0 for n in seq_lengths):
            raise ValueError("Every sequence must contain at least one sample (got an empty one).")
        lengths = seq_lengths
        X = np.concatenate([np.asarray(x, dtype=np.float64) for x in X], axis=0)
    X = validate_data(
        estimator,
        X,
        reset=reset,
        dtype=np.float64,
        order="C",
        ensure_all_finite=True,
        ensure_min_samples=1,
    )
    n = X.shape[0]
    if lengths is None:
        lengths = np.array([n], dtype=np.int64)
    else:
        arr = np.asarray(lengths)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"lengths must be a non-empty 1-D array of ints, got shape {arr.shape}."
            )
        if not (np.issubdtype(arr.dtype, np.integer) or np.all(np.mod(arr, 1) == 0)):
            raise ValueError(f"lengths must hold integers, got {arr!r}.")
        lengths = arr.astype(np.int64)
        if np.any(lengths <= 0):
            bad = np.flatnonzero(lengths <= 0)
            raise ValueError(
                f"lengths must be positive: sequence(s) {bad.tolist()} have length "
                f"{lengths[bad].tolist()}."
            )
        if lengths.sum() != n:
            raise ValueError(f"lengths sum to {int(lengths.sum())} but X has {n} samples.")
    return X, lengths, offsets_from_lengths(lengths)


def offsets_from_lengths(lengths) -> np.ndarray:
    """Start offsets of concatenated sequences, with the total appended."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as int, or raise a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_n_jobs(n_jobs) -> int:
    """Number of worker threads: ``None`` means 1, negative counts back from all cores."""
    import os

    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None, a positive int or a negative int, got {n_jobs!r}.")
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))
    return int(n_jobs)
