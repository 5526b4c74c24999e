"""Input checks shared by every emx model."""

from __future__ import annotations

import numbers
import operator

import numpy as np
from sklearn.utils.validation import validate_data

from .gaussian import value_range

__all__ = [
    "broadcast_prior",
    "describe_rows",
    "check_lengths",
    "check_n_jobs",
    "check_positive_int",
    "check_sequences",
    "offsets_from_lengths",
]


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
        if any(n == 0 for n in seq_lengths):
            raise ValueError("Every sequence must contain at least one sample (got an empty one).")
        if lengths is not None:
            try:
                given = check_lengths(lengths, sum(seq_lengths)).tolist()
            except ValueError as exc:
                raise ValueError(
                    "lengths was given together with a list of sequences and does not match "
                    f"the sequences' lengths {_preview(seq_lengths)}: {exc}"
                ) from None
            if given != seq_lengths:
                raise ValueError(
                    "lengths was given together with a list of sequences and does not match "
                    f"the sequences' lengths {_preview(seq_lengths)}; pass one or the other."
                )
        lengths = seq_lengths
        X = np.concatenate([np.asarray(x, dtype=np.float64) for x in X], axis=0)
    checks = dict(reset=reset, dtype=np.float64, order="C", ensure_min_samples=1)
    X = validate_data(estimator, X, ensure_all_finite=False, **checks)
    # Finiteness in one pass of emx's kernel (scikit-learn's check is a pass of its own);
    # when it fails, scikit-learn's check again, for its error message.
    lo, hi, has_nan = value_range(X)
    if has_nan or hi == np.inf or lo == -np.inf:
        validate_data(estimator, X, ensure_all_finite=True, **checks)
        raise ValueError("Input X contains NaN or infinity.")  # not reached
    n = X.shape[0]
    lengths = np.array([n], dtype=np.int64) if lengths is None else check_lengths(lengths, n)
    return X, lengths, offsets_from_lengths(lengths)


def _preview(values, limit: int = 8) -> str:
    """A short printable list (long ones are cut: an error message stays one line)."""
    values = list(values)
    if len(values) <= limit:
        return repr(values)
    return repr(values[:limit])[:-1] + f", ... ({len(values)} values)]"


def check_lengths(lengths, n_samples: int) -> np.ndarray:
    """Validate sequence lengths against the number of samples, in exact integer arithmetic.

    Every length must be an integer (a Python or numpy integer: not a float, even an integral
    one, nor a bool) in ``[1, n_samples]``, and the lengths must sum to ``n_samples``. The
    checks are exact: no value is converted to a fixed-width integer before it is known to be
    in range, and the sum cannot wrap around (int64 lengths whose sum overflows to
    ``n_samples`` are refused), so the offsets built from the result are always in bounds.

    Parameters
    ----------
    lengths : array-like of int, shape (n_sequences,)
    n_samples : int
        The number of rows of the concatenated observations.

    Returns
    -------
    lengths : ndarray of int64, shape (n_sequences,)

    Raises
    ------
    ValueError
        Naming ``lengths`` and the offending values.
    """
    n_samples = operator.index(n_samples)
    if isinstance(lengths, (str, bytes)):
        raise ValueError(f"lengths must be a 1-D array of ints, got {type(lengths).__name__}.")
    fast = None
    if isinstance(lengths, (list, tuple)) and lengths:
        # The common case in one pass at C speed: every element a Python int (not a bool:
        # bool is a type of its own) or all of one numpy integer type; the ints must then
        # fit in int64 (else the exact path below).
        types = set(map(type, lengths))
        if types == {int} or (len(types) == 1 and issubclass(next(iter(types)), np.integer)):
            try:
                fast = np.array(lengths, dtype=np.int64 if types == {int} else None)
            except OverflowError:
                fast = None
    if fast is not None:
        arr = fast
    elif isinstance(lengths, (list, tuple)):
        # Element by element: np.asarray would turn ints beyond int64 into floats and a bool
        # among ints into an int. Exact Python ints go on to the object-array path below.
        for v in lengths:
            if isinstance(v, (list, tuple, np.ndarray)) and np.ndim(v) > 0:
                raise ValueError(
                    f"lengths must be a non-empty 1-D array of ints, got a nested {lengths!r:.80}."
                )
        arr = np.empty(len(lengths), dtype=object)
        for i, v in enumerate(lengths):
            arr[i] = v
    else:
        try:
            arr = np.asarray(lengths)
        except (TypeError, ValueError) as exc:  # ragged nesting and the like
            raise ValueError(f"lengths must be a 1-D array of ints: {exc}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"lengths must be a non-empty 1-D array of ints, got shape {arr.shape}.")
    kind = arr.dtype.kind
    if kind == "b":
        raise ValueError(f"lengths must hold integers, got the booleans {_preview(arr.tolist())}.")
    if kind == "O":
        # Python ints of any size (or mixtures), checked one by one in exact arithmetic; once
        # they are known to lie in [1, n_samples] they fit in int64 and go on as an int array.
        values = []
        for v in arr.tolist():
            if isinstance(v, (bool, np.bool_)):
                raise ValueError(f"lengths must hold integers, got the boolean {v}.")
            if not isinstance(v, numbers.Integral):
                what = "floating-point value" if isinstance(v, numbers.Real) else type(v).__name__
                shown = v if isinstance(v, numbers.Real) else repr(v)
                raise ValueError(f"lengths must hold integers, got the {what} {shown}.")
            values.append(operator.index(v))
        bad = [i for i, v in enumerate(values) if not 1 <= v <= n_samples]
        if bad:
            _raise_range(bad, [values[i] for i in bad], n_samples)
        arr, kind = np.array(values, dtype=np.int64), "i"
    if kind not in "iu":
        what = "floating-point values" if kind == "f" else f"values of dtype {arr.dtype}"
        raise ValueError(
            f"lengths must hold integers, got {what} {_preview(arr.tolist())}"
            + (" (pass an integer array, e.g. lengths.astype(int))." if kind == "f" else ".")
        )
    # Range first (in the array's own dtype, which holds every element exactly), then a
    # cumulative sum that cannot wrap: all lengths are in [1, n_samples] and the sum is
    # refused as soon as a partial sum passes n_samples (which is at most 2 n_samples).
    bad = np.flatnonzero((arr < 1) | (arr > n_samples))
    if bad.size:
        _raise_range(bad.tolist(), arr[bad].tolist(), n_samples)
    values = arr.astype(np.int64)
    if values.size > n_samples:
        raise ValueError(
            f"lengths has {values.size} sequences of at least one sample each, but X has "
            f"only {n_samples} samples."
        )
    partial = np.cumsum(values)
    over = np.flatnonzero(partial > n_samples)
    if over.size:
        raise ValueError(
            f"lengths sum to more than the {n_samples} samples of X (the first "
            f"{over[0] + 1} sequences already hold {int(partial[over[0]])})."
        )
    if int(partial[-1]) != n_samples:
        raise ValueError(f"lengths sum to {int(partial[-1])} but X has {n_samples} samples.")
    return values


def _raise_range(bad, values, n_samples: int):
    if any(v < 1 for v in values):
        raise ValueError(
            f"lengths must be positive: sequence(s) {_preview(list(bad))} have length "
            f"{_preview(values)}."
        )
    raise ValueError(
        f"lengths must not exceed the {n_samples} samples of X: sequence(s) "
        f"{_preview(list(bad))} have length {_preview(values)}."
    )


def offsets_from_lengths(lengths) -> np.ndarray:
    """Start offsets of concatenated sequences, with the total appended.

    ``lengths`` must be non-negative integers (as returned by :func:`check_lengths`); a sum
    that would wrap around raises a ValueError instead of producing offsets that are out of
    bounds.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or (lengths.size and lengths.dtype.kind not in "iu"):
        raise ValueError(f"lengths must be a 1-D array of ints, got {_preview(lengths.tolist())}.")
    if lengths.size and (lengths.min() < 0 or lengths.max() > np.iinfo(np.intp).max):
        raise ValueError("lengths must be non-negative integers that fit in an array index.")
    lengths = lengths.astype(np.intp, copy=False)
    offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
    np.cumsum(lengths, out=offsets[1:])
    # Each length is below 2**63, so the first partial sum that wraps around is negative.
    if offsets.size and offsets.min() < 0:
        raise ValueError("lengths sum beyond the largest array index.")
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


def broadcast_prior(value, name: str, shape: tuple) -> np.ndarray:
    """``value`` broadcast to ``shape`` (read-only view), or a ValueError naming ``name``."""
    arr = np.asarray(value, dtype=np.float64)
    try:
        out = np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(
            f"{name} must be a scalar or an array that broadcasts to shape {shape}, got "
            f"shape {arr.shape}."
        ) from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite.")
    return out


def describe_rows(part):
    """``(n_rows, n_features, n_informative_rows)`` of a partition of rows (NaN-coded), or
    what is wrong with it: the EM protocol's ``em_describe`` for row models."""
    X = np.asarray(part)
    if X.ndim != 2:
        return f"the partition has shape {X.shape}, not (n_rows, n_features)"
    if not np.issubdtype(X.dtype, np.floating):
        return X.shape
    # rows with nothing observed carry no information: a partition of only those is skipped
    return X.shape[0], X.shape[1], int(np.sum(~np.isnan(X).all(axis=1)))
