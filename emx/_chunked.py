"""Out-of-core EM: data read chunk by chunk at every E-step (a :class:`emx._em.DataSource`).

``GaussianMixture.fit`` and the HMMs' ``fit`` accept, besides arrays in memory:

* a list of chunks (2-D arrays of rows for GaussianMixture; ``(X, lengths)`` pairs of whole
  sequences for the HMMs), or a callable returning a fresh iterable of them at every call
  (chunks read from files, say);
* a ``numpy.memmap`` (for the HMMs with ``lengths``), read in blocks of
  :data:`MEMMAP_CHUNK_ROWS` rows (whole sequences for the HMMs).

Each E-step prepares one chunk at a time, takes its statistics and drops it, so memory is
bounded by the chunk size (plus the model). The fit is the one of the concatenated data in
memory (to round-off: the statistics are summed chunk by chunk), default initialisation
included, as long as the data hold at most ``max_init_rows`` rows; above, the
initialisation that needs rows (k-means and the like) runs on a seeded uniform sample of that
many rows, as in :func:`emx.distributed.fit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from sklearn.utils import check_random_state

from ._em import ChunkRunner
from ._validation import check_n_jobs

__all__ = ["ChunkedData", "fit_chunks", "is_chunked", "MEMMAP_CHUNK_ROWS",
           "DEFAULT_MAX_INIT_ROWS"]

#: Rows of a numpy.memmap read per chunk.
MEMMAP_CHUNK_ROWS = 65536
#: Rows up to which initialisation gathers all the data (then the fit equals the in-memory
#: one); above, a uniform sample of this many rows.
DEFAULT_MAX_INIT_ROWS = 2_000_000


def is_chunked(X, *, sequences: bool) -> bool:
    """Whether ``X`` is chunked data: a memmap, a callable, or a list of chunks (2-D arrays
    for row models, ``(X, lengths)`` tuples for sequence models)."""
    if isinstance(X, np.memmap) or callable(X):
        return True
    if isinstance(X, Iterator):
        return True  # refused with a clear message by ChunkedData
    if isinstance(X, list) and X:
        if sequences:
            return all(isinstance(c, tuple) for c in X)
        return all(isinstance(c, np.ndarray) and c.ndim == 2 for c in X)
    return False


def _memmap_chunks(X, lengths, rows: int) -> Callable:
    """A callable over blocks of a memmap: row blocks, or ``(X, lengths)`` pairs of whole
    sequences when ``lengths`` is given."""
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got a memmap of shape {X.shape}.")
    if lengths is None:
        def blocks():
            for a in range(0, len(X), rows):
                yield X[a:a + rows]
        return blocks
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or np.any(lengths < 1) or lengths.sum() != len(X):
        raise ValueError(f"lengths must be positive and sum to the {len(X)} rows of X.")
    ends = np.cumsum(lengths)

    def pairs():
        s, a = 0, 0
        while s < len(lengths):
            e = max(s + 1, int(np.searchsorted(ends, a + rows, side="right")))
            b = int(ends[e - 1])
            yield X[a:b], lengths[s:e]
            s, a = e, b
    return pairs


class ChunkedData:
    """A :class:`emx._em.DataSource` over chunks re-read at every pass.

    Parameters
    ----------
    model : an EM model (:class:`emx._em.EMModel`)
    chunks : list of raw partitions, or a callable returning a fresh iterable of them
    max_rows : int
        Rows up to which :meth:`rows` gathers everything (a sample above).
    """

    def __init__(self, model, chunks, max_rows: int = DEFAULT_MAX_INIT_ROWS):
        if isinstance(chunks, Iterator):
            raise ValueError(
                "Chunked data are read once per EM iteration: pass a list of chunks or a "
                "callable returning a fresh iterable of them, not an iterator or generator.")
        self.model, self.max_rows = model, int(max_rows)
        self._chunks = chunks if callable(chunks) else (lambda: iter(chunks))
        self._transforms: list = []
        sizes, n_features, first = [], None, None
        for i, part in enumerate(self._chunks()):
            d = model.em_describe(part)
            if isinstance(d, str):
                raise ValueError(f"Chunk {i}: {d}.")
            sizes.append(int(d[0]))
            if d[0] == 0:
                continue
            if n_features is None:
                n_features, first = d[1], i
            elif d[1] != n_features:
                raise ValueError(
                    f"Chunk {i} has {d[1]} features, but chunk {first} has {n_features}: "
                    "every chunk must have the same number of features.")
        if not sizes or sum(sizes) == 0:
            raise ValueError("No data: every chunk is empty.")
        self.sizes = sizes
        self.n_rows, self.n_features = int(sum(sizes)), n_features
        self.index = [i for i, n in enumerate(sizes) if n > 0]

    def _prepared(self):
        """The chunks prepared one at a time, with the transforms of :meth:`update`."""
        for i, part in enumerate(self._chunks()):
            if self.sizes[i] == 0:
                continue
            try:
                data = self.model.em_prepare(part)
                for func, args in self._transforms:
                    data = func(data, *args)
            except ValueError as exc:
                raise ValueError(f"Chunk {i}: {exc}") from None
            yield data

    def rows(self):
        model = self.model
        if self.n_rows <= self.max_rows:
            parts = [model.em_rows(d) for d in self._prepared()]
            return model.em_prepare(model.em_join(parts), reset=True), True
        rs = check_random_state(getattr(model, "random_state", None))
        gen = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
        used = [n for n in self.sizes if n > 0]
        counts = gen.multivariate_hypergeometric(np.asarray(used, dtype=np.int64),
                                                 self.max_rows)
        sample = []
        for data, k in zip(self._prepared(), counts, strict=True):
            rows = model.em_rows(data)
            X = rows[0] if isinstance(rows, tuple) else rows
            if k > 0:
                sample.append(X[np.sort(gen.choice(len(X), size=int(k), replace=False))])
        return model.em_prepare(np.concatenate(sample), reset=True), False

    def map(self, func, *args) -> list:
        return [func(d, *args) for d in self._prepared()]

    def reduce(self, func, *args):
        total = None
        for d in self._prepared():
            value = func(d, *args)
            if total is None:
                total = value
            else:
                total += value  # in place: every func(d) returns fresh statistics
        return total

    def update(self, func, *args) -> None:
        self._transforms.append((func, args))


def fit_chunks(model, chunks, *, max_init_rows: int = DEFAULT_MAX_INIT_ROWS):
    """Fit ``model`` by EM over chunked data (see the module docstring); returns it."""
    if getattr(model, "n_init", 1) != 1:
        raise ValueError("A fit on chunked data runs one initialisation (n_init=1).")
    source = ChunkedData(model, chunks, max_init_rows)
    model.em_init(source, getattr(model, "random_state", None))
    with ChunkRunner(check_n_jobs(getattr(model, "n_jobs", None))) as runner:
        model.em_run(lambda: source.reduce(model.em_estep, runner))
    return model
