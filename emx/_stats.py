"""Additive sufficient statistics: ``+`` and ``+=`` derived from a dataclass's fields.

Every EM model in emx sums statistics over chunks of data (threads, Dask workers); the
statistics are dataclasses whose fields add one by one. :class:`AdditiveStats` writes that
addition once::

    @dataclass
    class MyStats(AdditiveStats):
        loglik: float
        counts: np.ndarray
        shift: np.ndarray = fixed()       # not added: both operands must hold the same value
        extra: np.ndarray | None = None   # None + None = None

Field rules (the same for ``+`` and ``+=``):

* numbers and numpy arrays are added (``+=`` adds arrays in place when the sum has the
  array's shape and dtype and the array is writeable; otherwise the field is rebound to the
  sum);
* nested statistics (any object with ``+``/``+=``, e.g. another :class:`AdditiveStats`) are
  added recursively with their own rules;
* sets are united;
* ``None + None`` is None; None with a value raises ValueError (a partial statistic would be
  silently dropped otherwise);
* fields declared with :func:`fixed` are not added: they must be the same object or equal
  (``np.array_equal``) in both operands, else ValueError, and the result keeps the left one.

``sum(list_of_stats)`` works (``0 + stats`` is a copy of ``stats``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["AdditiveStats", "fixed"]

_FIXED = "emx_fixed"


def fixed(*, error: str | None = None, **kwargs) -> Any:
    """A dataclass field that is not added: both operands must hold equal values.

    Parameters
    ----------
    error : str, optional
        Message of the ValueError raised when the operands' values differ (default: one
        naming the class and the field).
    **kwargs
        Passed on to :func:`dataclasses.field` (``default=...``, say).
    """
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata[_FIXED] = error or True
    return dataclasses.field(metadata=metadata, **kwargs)


def _is_fixed(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get(_FIXED, False))


def _same(a, b) -> bool:
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def _check_none(cls_name: str, name: str, a, b) -> bool:
    """True when both are None; ValueError when only one is."""
    if a is None and b is None:
        return True
    if a is None or b is None:
        raise ValueError(
            f"cannot add {cls_name} statistics: field {name!r} is None in one operand and "
            "not in the other."
        )
    return False


def _add(a, b):
    if isinstance(a, (set, frozenset)):
        return a | b
    return a + b


def _iadd(a, b):
    if isinstance(a, np.ndarray):
        if (type(b) is np.ndarray and b.shape == a.shape and b.dtype == a.dtype
                and a.flags.writeable):  # the usual case, without the general checks below
            a += b
            return a
        b_arr = np.asarray(b)
        if (a.flags.writeable and np.result_type(a, b_arr) == a.dtype
                and np.broadcast_shapes(a.shape, b_arr.shape) == a.shape):
            a += b_arr
            return a
        return a + b_arr
    if isinstance(a, (set, frozenset)):
        return a | b
    a += b  # numbers rebind; nested statistics add in place and return themselves
    return a


def _fields(obj) -> tuple:
    """``dataclasses.fields`` of ``obj``'s class with their fixed flags, looked up once per
    class (the statistics of every chunk are added: this runs in every addition)."""
    cls = type(obj)
    out = cls.__dict__.get("_emx_fields")
    if out is None:
        out = tuple((f, _is_fixed(f)) for f in dataclasses.fields(cls))
        cls._emx_fields = out
    return out


class AdditiveStats:
    """Mixin giving a dataclass ``__add__``, ``__iadd__`` and ``__radd__`` (with 0) from its
    fields; see the module docstring for the rules. ``__add__`` never modifies its operands;
    ``__iadd__`` modifies the left operand's arrays in place and returns it."""

    def _check_addable(self, other) -> None:
        """Raise ValueError unless ``self + other`` is defined (recursively into nested
        statistics), before anything is changed."""
        name = type(self).__name__
        for f, is_fixed in _fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if is_fixed:
                if not _same(a, b):
                    msg = f.metadata[_FIXED]
                    raise ValueError(msg if isinstance(msg, str) else (
                        f"cannot add {name} statistics with different {f.name!r} (statistics "
                        "add only when taken about the same fixed values)."
                    ))
            elif not _check_none(name, f.name, a, b) and isinstance(a, AdditiveStats):
                if type(b) is not type(a):
                    raise ValueError(
                        f"cannot add {name} statistics: field {f.name!r} holds "
                        f"{type(a).__name__} and {type(b).__name__}."
                    )
                a._check_addable(b)

    def __add__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        self._check_addable(other)
        values = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if _is_fixed(f) or a is None:
                values[f.name] = a
            else:
                values[f.name] = _add(a, b)
        return self._rebuild(values)

    def __radd__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # sum() starts from 0
            return self._rebuild({
                f.name: _copy(getattr(self, f.name), _is_fixed(f))
                for f in dataclasses.fields(self)
            })
        return NotImplemented

    def __iadd__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        # Every field is checked before any is changed: a failed += leaves self unchanged.
        self._check_addable(other)
        for f, is_fixed in _fields(self):
            a = getattr(self, f.name)
            if is_fixed or a is None:
                continue
            setattr(self, f.name, _iadd(a, getattr(other, f.name)))
        return self

    def _rebuild(self, values: dict):
        init = {f.name: values[f.name] for f in dataclasses.fields(self) if f.init}
        out = type(self)(**init)
        for f in dataclasses.fields(self):
            if not f.init:
                setattr(out, f.name, values[f.name])
        return out


def _copy(value, is_fixed: bool):
    if is_fixed or value is None:
        return value
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, AdditiveStats):
        return 0 + value
    if isinstance(value, (set, frozenset)):
        return type(value)(value)
    return value
