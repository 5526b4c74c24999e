"""Distributed EM on Dask: map the E-step over partitions, tree-reduce the statistics, run the
M-step on the driver.

The driver knows models only through the EM protocol (:class:`emx._em.EMModel`): it asks a
model to describe and prepare each partition (on the workers, where the prepared data stay),
hands the model a :class:`emx._em.DataSource` over the partitions for its initialisation
(gather all rows or a uniform sample of them, sum a function over the partitions, transform
them in place), then lets the model run its EM iterations with an E-step that maps
``model.em_estep`` over the partitions and tree-sums the statistics. Any model that
implements the protocol can be fitted here; none is special-cased.

Usage::

    from dask.distributed import Client
    import emx.distributed

    client = Client()                                   # or a cluster's address
    emx.distributed.fit(emx.GaussianMixture(16), X_dask, client)        # rows: a dask array
    emx.distributed.fit(emx.GaussianHMM(5), [(X1, lengths1), (X2, lengths2)], client)

Partitions are a dask array (blocks of rows) or a list of numpy arrays (row models), and a
list of ``(X, lengths)`` pairs or of lists of 2-D sequences (HMMs: whole sequences per
partition). They are prepared (validated, cut into chunks) once on the workers and stay there;
each iteration ships only the model's parameters, and the partitions' additive statistics are
summed pairwise in a fixed tree, so the result does not depend on which worker did what. The
tasks keep their lineage (a partition given as numpy data is embedded in the task that prepares
it): when a worker dies mid-fit, Dask recomputes what it held and the fit ends where a fit
without the failure would.

The default initialisation is the serial one, on the whole data: the rows of all partitions
(in partition order, which is the order of ``model.fit`` on their concatenation) are gathered
to the driver and the model's own initialisation (k-means etc., same ``random_state``) runs on
them, so the fit equals ``model.fit`` of the concatenated data (to round-off) whatever order the
rows are stored in. Above ``max_init_rows`` rows (default ``DEFAULT_MAX_INIT_ROWS``, 2,000,000;
frames for the HMMs) the initialisation runs on a seeded uniform sample of that many rows drawn
across all partitions instead: the fit is then no longer the serial one. FactorAnalysis and the
Recognizer initialise from statistics reduced over all partitions, at any size.

Dask is an optional dependency (``pip install "emx-learn[dask]"``); ``import emx`` does not
import it.
"""

from __future__ import annotations

import operator

import numpy as np
from sklearn.utils import check_random_state

from ._em import ChunkRunner, DataSource

__all__ = ["fit", "DEFAULT_MAX_INIT_ROWS"]

#: Rows (frames for the HMMs) up to which the default initialisation runs on all the data,
#: gathered to the driver, and the fit equals the serial one; above, on a uniform sample of
#: this many rows. At 20 features, 2,000,000 rows are 320 MB on the driver.
DEFAULT_MAX_INIT_ROWS = 2_000_000


# ---------------------------------------------------------------- tasks (run on workers)
def _identity(part):
    return part


def _named(index, func, *args):
    """``func(*args)``, a ValueError naming partition ``index`` (in the caller's list)."""
    try:
        return func(*args)
    except ValueError as exc:
        raise ValueError(f"Partition {index}: {exc}") from None


def _describe(model, part):
    try:
        return model.em_describe(part)
    except Exception as exc:  # ragged lists and the like: numpy's words, with ours around
        return f"cannot be read as an array ({exc})"


def _estep(model, data, index):
    with ChunkRunner(1) as runner:
        return _named(index, model.em_estep, data, runner)


def _sample(model, data, k, seed):
    """``k`` rows of a partition's prepared data, drawn uniformly without replacement, in
    order (a raw partition of one sequence for the HMMs)."""
    rows = model.em_rows(data)
    X = rows[0] if isinstance(rows, tuple) else rows
    idx = np.sort(np.random.default_rng(seed).choice(len(X), size=k, replace=False))
    return X[idx]


# ---------------------------------------------------------------- driver
def _tree_sum(client, futures):
    """Sum futures pairwise in index order (a fixed tree), return the value."""
    while len(futures) > 1:
        futures = [
            client.submit(operator.add, futures[i], futures[i + 1], pure=False)
            if i + 1 < len(futures) else futures[i]
            for i in range(0, len(futures), 2)
        ]
    return futures[0].result()


def _submit_parts(client, partitions) -> list:
    """Futures of the partitions, each recomputable (lineage kept)."""
    if hasattr(partitions, "to_delayed"):  # a dask array: blocks of rows
        blocks = partitions.rechunk({1: partitions.shape[1]}).to_delayed().ravel().tolist()
        return client.compute(blocks)
    parts = list(partitions)
    if not parts:
        raise ValueError("No partitions given.")
    return [client.submit(_identity, p, pure=False) for p in parts]


def _check_partitions(client, model, parts):
    """Drop empty partitions (and those without an informative row) and check the others:
    all with the same number of features.

    Returns the kept partitions, their numbers of rows, the number of features (None when
    the model's partitions do not say) and the kept partitions' indices in the caller's list;
    a bad partition is a ValueError naming its index.
    """
    described = client.gather([client.submit(_describe, model, p, pure=False) for p in parts])
    n_features = first = None

    def used(d) -> bool:  # rows, and informative ones when the model counts them
        return d[0] > 0 and (len(d) < 3 or d[2] > 0)

    for i, d in enumerate(described):
        if isinstance(d, str):
            raise ValueError(f"Partition {i}: {d}.")
        if not used(d):
            continue
        if n_features is None:
            n_features, first = d[1], i
        elif d[1] != n_features:
            raise ValueError(
                f"Partition {i} has {d[1]} features, but partition {first} has "
                f"{n_features}: every partition must have the same number of features."
            )
    keep = [i for i, d in enumerate(described) if used(d)]
    if not keep:
        raise ValueError("Every partition is empty (or has no row with an observed value).")
    return [parts[i] for i in keep], [int(described[i][0]) for i in keep], n_features, keep


def _sample_counts(sizes, n_sample: int, random_state):
    """Rows to draw from each partition for a uniform sample (without replacement) of
    ``n_sample`` of all the rows, and one seed per partition for drawing them."""
    rs = check_random_state(random_state)
    gen = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if total < 10**9:  # numpy's multivariate hypergeometric draw stops there
        counts = gen.multivariate_hypergeometric(sizes, n_sample)
    else:  # indices drawn by Floyd's algorithm (n_sample << total): O(n_sample) memory
        idx = gen.choice(total, size=n_sample, replace=False)
        counts = np.bincount(np.searchsorted(np.cumsum(sizes), idx, side="right"),
                             minlength=len(sizes))
    return counts, gen.integers(np.iinfo(np.int64).max, size=len(sizes))


class _Partitions(DataSource):
    """The partitions' prepared data on the workers, as a :class:`emx._em.DataSource`."""

    def __init__(self, client, model, parts, sizes, n_features, index, max_rows: int):
        from dask.distributed import wait

        self.client, self.model, self.index = client, model, index
        self.n_rows, self.n_features, self.max_rows = int(sum(sizes)), n_features, max_rows
        self.sizes = sizes
        self.data = [client.submit(_named, i, model.em_prepare, p, pure=False)
                     for p, i in zip(parts, index, strict=True)]
        wait(self.data)
        for f in self.data:
            if f.status == "error":
                f.result()  # raises the worker's error (naming the partition)

    def rows(self):
        model, client = self.model, self.client
        if self.n_rows <= self.max_rows:
            # all rows, in partition order, prepared as model.fit prepares them
            parts = client.gather([client.submit(model.em_rows, d, pure=False)
                                   for d in self.data])
            return model.em_prepare(model.em_join(parts), reset=True), True
        counts, seeds = _sample_counts(self.sizes, self.max_rows,
                                       getattr(model, "random_state", None))
        futures = [client.submit(_sample, model, d, int(k), int(s), pure=False)
                   for d, k, s in zip(self.data, counts, seeds, strict=True) if k > 0]
        return model.em_prepare(np.concatenate(client.gather(futures)), reset=True), False

    def map(self, func, *args) -> list:
        return self.client.gather([self.client.submit(_named, i, func, d, *args, pure=False)
                                   for d, i in zip(self.data, self.index, strict=True)])

    def reduce(self, func, *args):
        return _tree_sum(self.client, [self.client.submit(_named, i, func, d, *args,
                                                          pure=False)
                                       for d, i in zip(self.data, self.index, strict=True)])

    def update(self, func, *args) -> None:
        from dask.distributed import wait

        self.data = [self.client.submit(_named, i, func, d, *args, pure=False)
                     for d, i in zip(self.data, self.index, strict=True)]
        wait(self.data)
        for f in self.data:
            if f.status == "error":
                f.result()

    def estep(self):
        """Statistics of all partitions at the model's current parameters (the model, its
        parameters being small, travels with each task; the data stay put)."""
        return _tree_sum(self.client, [
            self.client.submit(_estep, self.model, d, i, pure=False)
            for d, i in zip(self.data, self.index, strict=True)
        ])


def fit(model, partitions, client, *, callback=None, max_init_rows=DEFAULT_MAX_INIT_ROWS):
    """Fit an emx EM model on partitioned data with a ``dask.distributed.Client``.

    The result is the one of ``model.fit`` on the partitions' rows concatenated in partition
    order (to round-off: the statistics are summed in another order), default initialisation
    included, as long as the data hold at most ``max_init_rows`` rows (frames for the HMMs).

    Parameters
    ----------
    model : an emx model implementing the EM protocol (:class:`emx._em.EMModel`)
        GaussianMixture, EMImputer, FactorAnalysis, the HMMs (GaussianHMM, GMMHMM,
        CategoricalHMM, MultinomialHMM, PoissonHMM) or speech.Recognizer. Its
        hyperparameters are used as in ``model.fit`` (``n_init=1`` only).
    partitions : dask array, or list of partitions
        Row models: a dask array (blocks of rows) or a list of 2-D arrays. HMMs: a list of
        ``(X, lengths)`` pairs or of lists of 2-D sequences (sequences are never split).
        Recognizer: a list of ``(utterances, transcripts)`` pairs as ``Recognizer.fit``
        takes them (audio paths are read, and their features computed, on the workers).
        Empty partitions are skipped; partitions with different numbers of features are a
        ValueError naming the partition.
    client : dask.distributed.Client
    callback : callable, optional
        ``callback(iteration, loglik)`` after every E-step (progress, tests).
    max_init_rows : int, default DEFAULT_MAX_INIT_ROWS (2,000,000)
        When the data hold at most this many rows (frames), an initialisation that needs
        the data (k-means and the like) runs on all of them, gathered to the driver in
        partition order, exactly as ``model.fit`` runs it (same draws from
        ``random_state``); above, on a uniform sample of this many rows drawn without
        replacement across all partitions (seeded from ``random_state``), so the fit starts,
        and may end, elsewhere than the serial one. Initialisations from statistics reduced
        over the partitions (FactorAnalysis, the Recognizer) do not use it.

    Returns
    -------
    model
        Fitted, with the same attributes as after ``model.fit``.

    Examples
    --------
    On a local cluster (``pip install "emx-learn[dask]"``); the fit equals the serial one:

    >>> import dask.array as da                                        # doctest: +SKIP
    >>> from dask.distributed import Client, LocalCluster              # doctest: +SKIP
    >>> import emx, emx.distributed                                    # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=2, processes=False))    # doctest: +SKIP
    >>> X = da.from_array(X_numpy, chunks=(10_000, X_numpy.shape[1]))  # doctest: +SKIP
    >>> gmm = emx.distributed.fit(emx.GaussianMixture(3), X, client)   # doctest: +SKIP
    >>> hmm = emx.distributed.fit(emx.GaussianHMM(2), [(X1, lengths1), (X2, lengths2)],
    ...                           client)                              # doctest: +SKIP
    """
    if isinstance(max_init_rows, bool) or not isinstance(max_init_rows, (int, np.integer)) \
            or max_init_rows < 1:
        raise ValueError(f"max_init_rows must be a positive int, got {max_init_rows!r}.")
    if not all(hasattr(model, m) for m in ("em_prepare", "em_init", "em_estep", "em_run")):
        raise TypeError(f"emx.distributed.fit does not support {type(model).__name__}: it "
                        "does not implement the EM protocol (emx._em.EMModel).")
    if getattr(model, "n_init", 1) != 1:
        raise ValueError("emx.distributed fits one initialisation (n_init=1).")
    parts, sizes, n_features, index = _check_partitions(
        client, model, _submit_parts(client, partitions))
    source = _Partitions(client, model, parts, sizes, n_features, index, int(max_init_rows))
    model.em_init(source, getattr(model, "random_state", None))
    iteration = [0]

    def estep():
        stats = source.estep()
        if callback is not None:
            callback(iteration[0], stats.loglik)
        iteration[0] += 1
        return stats

    model.em_run(estep)
    return model
