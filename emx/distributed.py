"""Distributed EM on Dask: map the E-step over partitions, tree-reduce the statistics, run the
M-step on the driver.

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

Dask is an optional dependency (``pip install "emx[dask]"``); ``import emx`` does not import it.
"""

from __future__ import annotations

import dataclasses
import operator
from functools import reduce

import numpy as np
from sklearn.utils import check_random_state

from ._em import ChunkRunner, ConvergenceMonitor, run_em
from .factor import FactorAnalysis, FactorStats, _FAData, _noise_floor
from .gaussian import GaussianStats
from .hmm import GMMHMM, BaseHMM
from .impute import EMImputer
from .mixture import GaussianMixture, _row_chunks, _weighted_nanmean

__all__ = ["fit", "DEFAULT_MAX_INIT_ROWS"]

#: Rows (frames for the HMMs) up to which the default initialisation runs on all the data,
#: gathered to the driver, and the fit equals the serial one; above, on a uniform sample of
#: this many rows. At 20 features, 2,000,000 rows are 320 MB on the driver.
DEFAULT_MAX_INIT_ROWS = 2_000_000


# ---------------------------------------------------------------- tasks (run on workers)
def _identity(part):
    return part


def _describe(model, part):
    """``(n_rows, n_features)`` of a partition, or a string saying what is wrong with it."""
    try:
        if isinstance(model, BaseHMM):
            if isinstance(part, np.ndarray):
                return ("is an array: give an HMM partition as an (X, lengths) pair or a list "
                        "of 2-D sequences")
            if isinstance(part, tuple):
                if len(part) != 2:
                    return "must be an (X, lengths) pair or a list of 2-D sequences"
                X = np.asarray(part[0])
                what = "X"
            else:
                seqs = [np.asarray(x) for x in part]
                if not seqs:
                    return (0, None)
                bad = [i for i, x in enumerate(seqs) if x.ndim != 2]
                if bad:
                    return (f"sequence {bad[0]} has shape {seqs[bad[0]].shape}, not "
                            "(n_frames, n_features)")
                dims = [x.shape[1] for x in seqs]
                if len(set(dims)) > 1:
                    other = next(i for i, d in enumerate(dims) if d != dims[0])
                    return (f"sequence 0 has {dims[0]} features but sequence {other} has "
                            f"{dims[other]}")
                return (sum(len(x) for x in seqs), dims[0])
        else:
            X = np.asarray(part)
            what = "the partition"
    except Exception as exc:  # ragged lists and the like: numpy's words, with ours around
        return f"cannot be read as an array ({exc})"
    if X.ndim != 2:
        return f"{what} has shape {X.shape}, not (n_rows, n_features)"
    if isinstance(model, BaseHMM) or not np.issubdtype(X.dtype, np.floating):
        return X.shape
    # rows with nothing observed carry no information: a partition of only those is skipped
    return X.shape[0], X.shape[1], int(np.sum(~np.isnan(X).all(axis=1)))


def _raw_rows(model, part):
    """A row model's partition as float64 rows (NaN-coded for EMImputer)."""
    return np.asarray(part, dtype=np.float64)


def _sample(model, part, k, seed):
    """``k`` rows (frames) of a partition drawn uniformly without replacement, in order."""
    X = _hmm_rows(part) if isinstance(model, BaseHMM) else np.asarray(part, dtype=np.float64)
    idx = np.sort(np.random.default_rng(seed).choice(len(X), size=k, replace=False))
    return X[idx]


def _imputer_rows(imputer, part):
    """An EMImputer partition with its ``missing_values`` coded as NaN (as its fit does)."""
    return imputer._prepare(part, reset=True)


def _row_sums(model, part):
    """Observed-entry counts and sums of a partition (for the global shift)."""
    X = _hmm_rows(part) if isinstance(model, BaseHMM) else np.asarray(part, dtype=np.float64)
    observed = ~np.isnan(X)
    return np.stack([observed.sum(axis=0), np.where(observed, X, 0.0).sum(axis=0)])


def _row_scatter(model, part, mean):
    """Sum of squared deviations about ``mean`` per column (observed entries)."""
    X = _hmm_rows(part) if isinstance(model, BaseHMM) else np.asarray(part, dtype=np.float64)
    d = X - mean
    return np.nansum(d * d, axis=0)


def _hmm_rows(part):
    X, _ = _hmm_part(part)
    return np.asarray(X, dtype=np.float64)


def _hmm_part(part):
    if isinstance(part, tuple):
        return part
    return np.concatenate([np.asarray(x, dtype=np.float64) for x in part]), [len(x) for x in part]


def _prepare(model, part, shift, index):
    """The model's prepared data for one partition (number ``index`` in the caller's list),
    moments taken about the global shift."""
    try:
        data = _validated(model, part)
    except ValueError as exc:
        raise ValueError(f"Partition {index}: {exc}") from None
    data.shift = shift
    return data


def _validated(model, part):
    if isinstance(model, BaseHMM):
        X, lengths = _hmm_part(part)
        data = model._validate(X, lengths, reset=False)
    else:
        X = np.asarray(part)
        if X.ndim == 2 and X.size and X.dtype.kind == "f" and np.isnan(X).all(axis=0).any():
            # A column with no observed value in this partition, observed in others (the
            # driver checked the whole data): validate with one complete row appended (the
            # last of the complete rows), then drop it.
            data = model._validate_rows(np.vstack([X, np.zeros((1, X.shape[1]))]), None,
                                        reset=False)
            data.X = data.X[:-1]
            data.chunks = _row_chunks(len(data.X))
        else:
            data = model._validate_rows(X, None, reset=False)
    return data


def _with_shift(data, shift):
    """The prepared data with moments about ``shift`` (the arrays are shared, not copied)."""
    return dataclasses.replace(data, shift=shift)


def _sequences(data):
    return data.X, data.lengths


def _estep(model, data, index):
    with ChunkRunner(1) as runner:
        try:
            return model._estep(data, runner)
        except ValueError as exc:  # e.g. a sequence of probability zero: say where it is
            raise ValueError(f"Partition {index}: {exc}") from None


def _filled_moments(model, data):
    X, w = data.filled()
    resp = np.ones((len(X), 1)) if w is None else w[:, None].copy()
    return GaussianStats.from_weights(X, resp, data.shift, model.covariance_type)


def _fa_moments(part, shift):
    X = np.asarray(part, dtype=np.float64)
    if np.isnan(X).any():
        raise ValueError("emx.distributed fits FactorAnalysis on complete data only.")
    gs = GaussianStats.from_weights(X, np.ones((len(X), 1)), shift, "tied")
    return FactorStats(float(len(X)), gs.sum1[0], gs.sum2, shift)


def _rec_load(rec, part):
    utterances, transcripts = part
    loaded = rec._load(utterances, transcripts)
    if not loaded[0]:
        raise ValueError("emx.distributed: a Recognizer partition holds no utterances.")
    return loaded


def _rec_summary(loaded):
    from .speech.recognizer import _Summary

    return _Summary.of(*loaded)


def _rec_moments(rec, selected, centres):
    return rec._init_moments(selected[0], selected[1], centres)


def _rec_estep(rec, groups):
    return reduce(operator.iadd, (rec._estep(g) for g in groups))


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


class _Distributed:
    """The model seen by the EM loop: its E-step runs on the partitions' workers."""

    def __init__(self, model, client, prepared, index):
        self.model, self.client, self.prepared, self.index = model, client, prepared, index

    def _estep(self, data, runner):
        # The model (its parameters: small) travels with each task; the data stay put.
        futures = [self.client.submit(_estep, self.model, p, i, pure=False)
                   for p, i in zip(self.prepared, self.index, strict=True)]
        stats = _tree_sum(self.client, futures)
        # the serial fit's refusal of round-off falls (GaussianMixture), on the summed stats
        accept = getattr(self.model, "_accept", None)
        return accept(stats) if accept is not None else stats

    def _log_prior(self) -> float:
        return self.model._log_prior()

    def _mstep(self, stats) -> None:
        self.model._mstep(stats)


def _global_moments(client, model, parts):
    """Mean (over observed entries) and population variance of all rows."""
    sums = _tree_sum(client, [client.submit(_row_sums, model, p, pure=False) for p in parts])
    count, total = sums
    if np.any(count == 0):
        bad = np.flatnonzero(count == 0).tolist()
        raise ValueError(f"Column(s) {bad} have no observed value.")
    mean = total / count
    scatter = _tree_sum(
        client, [client.submit(_row_scatter, model, p, mean, pure=False) for p in parts]
    )
    return mean, scatter / count, int(count.max())


def _check_partitions(client, model, parts, index=None):
    """Drop empty partitions (and, for row models, those without an observed value) and check
    the others: 2-D, all with the same number of features.

    Returns the kept partitions, their numbers of rows (frames for the HMMs), the number of
    features and the kept partitions' indices in the caller's list (``index`` maps ``parts``
    to that list); a bad partition is a ValueError naming its index.
    """
    index = list(range(len(parts))) if index is None else index
    described = client.gather([client.submit(_describe, model, p, pure=False) for p in parts])
    n_features = first = None
    for i, d in enumerate(described):
        if isinstance(d, str):
            raise ValueError(f"Partition {index[i]}: {d}.")
        if d[0] == 0 or d[-1] == 0:
            continue
        if n_features is None:
            n_features, first = d[1], index[i]
        elif d[1] != n_features:
            raise ValueError(
                f"Partition {index[i]} has {d[1]} features, but partition {first} has "
                f"{n_features}: "
                "every partition must have the same number of features."
            )
    keep = [i for i, d in enumerate(described) if d[0] > 0 and d[-1] > 0]
    if not keep:
        raise ValueError("Every partition is empty (or has no row with an observed value).")
    return ([parts[i] for i in keep], [int(described[i][0]) for i in keep], int(n_features),
            [index[i] for i in keep])


def _prepare_all(client, model, parts, index) -> list:
    """Futures of the partitions validated and prepared on their workers (where they stay);
    the first invalid partition's error (naming it) is raised here."""
    from dask.distributed import wait

    prepared = [client.submit(_prepare, model, p, None, i, pure=False)
                for p, i in zip(parts, index, strict=True)]
    wait(prepared)
    for f in prepared:
        if f.status == "error":
            f.result()  # raises the worker's error
    return prepared


def _shifted(client, prepared, shift) -> list:
    return [client.submit(_with_shift, d, shift, pure=False) for d in prepared]


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


def _draw_sample(client, model, parts, sizes, n_sample: int, random_state) -> np.ndarray:
    """A seeded uniform sample of ``n_sample`` rows (frames) across all partitions, in
    partition order."""
    counts, seeds = _sample_counts(sizes, n_sample, random_state)
    futures = [client.submit(_sample, model, p, int(k), int(s), pure=False)
               for p, k, s in zip(parts, counts, seeds, strict=True) if k > 0]
    return np.concatenate(client.gather(futures))


def fit(model, partitions, client, *, callback=None, max_init_rows=DEFAULT_MAX_INIT_ROWS):
    """Fit an emx EM model on partitioned data with a ``dask.distributed.Client``.

    The result is the one of ``model.fit`` on the partitions' rows concatenated in partition
    order (to round-off: the statistics are summed in another order), default initialisation
    included, as long as the data hold at most ``max_init_rows`` rows (frames for the HMMs).

    Parameters
    ----------
    model : GaussianMixture, EMImputer, GaussianHMM, GMMHMM, FactorAnalysis or
        speech.Recognizer
        The estimator; its hyperparameters are used as in ``model.fit`` (``n_init=1`` only).
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
        GaussianMixture, EMImputer and the HMMs: when the data hold at most this many rows
        (frames), the initialisation runs on all of them, gathered to the driver in
        partition order, exactly as ``model.fit`` runs it (same k-means, same draws from
        ``random_state``); above, on a uniform sample of this many rows drawn without
        replacement across all partitions (seeded from ``random_state``), so the fit starts,
        and may end, elsewhere than the serial one. Not used when the initial parameters are
        all given (nothing is gathered then), nor by FactorAnalysis and the Recognizer,
        whose initialisations are reduced over all partitions at any size.

    Returns
    -------
    model
        Fitted, with the same attributes as after ``model.fit``.
    """
    if isinstance(max_init_rows, bool) or not isinstance(max_init_rows, (int, np.integer)) \
            or max_init_rows < 1:
        raise ValueError(f"max_init_rows must be a positive int, got {max_init_rows!r}.")
    max_init_rows = int(max_init_rows)
    if isinstance(model, EMImputer):
        parts, _, _, index = _check_partitions(client, model,
                                               _submit_parts(client, partitions))
        parts = [client.submit(_imputer_rows, model, p, pure=False) for p in parts]
        mixture = model._mixture()
        _fit_rows(mixture, client, parts, callback, max_init_rows, index)
        n_used = int(sum(client.gather(
            [client.submit(lambda p: int(np.sum(~np.isnan(np.asarray(p)).all(axis=1))), p)
             for p in parts]
        )))
        model.n_features_in_ = mixture.n_features_in_
        return model._finish_fit(mixture, n_used)
    if isinstance(model, FactorAnalysis):
        return _fit_fa(model, client, _submit_parts(client, partitions))
    if isinstance(model, GaussianMixture):
        _fit_rows(model, client, _submit_parts(client, partitions), callback, max_init_rows)
        return model
    if isinstance(model, BaseHMM):
        return _fit_hmm(model, client, _submit_parts(client, partitions), callback,
                        max_init_rows)
    from .speech.recognizer import Recognizer

    if isinstance(model, Recognizer):
        return _fit_recognizer(model, client, _submit_parts(client, partitions), callback)
    raise TypeError(f"emx.distributed.fit does not support {type(model).__name__}.")


def _monitored_em(model, client, prepared, index, monitor, callback):
    proxy = _Distributed(model, client, prepared, index)
    if callback is not None:
        inner = proxy._estep

        def estep(data, runner):
            stats = inner(data, runner)
            callback(monitor.iter, stats.loglik)
            return stats

        proxy._estep = estep
    run_em(proxy, None, monitor, None)
    return monitor


def _fit_rows(model: GaussianMixture, client, parts, callback, max_init_rows: int,
              index=None) -> None:
    model._check_hyperparameters()
    if model.n_init != 1:
        raise ValueError("emx.distributed fits one initialisation (n_init=1).")
    model.__dict__.pop("_accepted", None)  # no step accepted yet, as in model.fit
    parts, sizes, D, index = _check_partitions(client, model, parts, index)
    K = model.n_components
    warm = model.warm_start and hasattr(model, "converged_")
    if warm and D != model.n_features_in_:
        raise ValueError(f"X has {D} features, but {type(model).__name__} is expecting "
                         f"{model.n_features_in_} features as input.")
    needs_data = not warm and any(g is None for g in model._check_initial(D))
    rs = check_random_state(model.random_state)  # as model.fit draws it
    if not warm:
        model.n_features_in_ = D
    prepared = _prepare_all(client, model, parts, index)
    if needs_data and sum(sizes) <= max_init_rows:
        # The serial initialisation: all rows, in partition order, prepared as model.fit
        # prepares them (the same shift, the same rows for k-means, the same draws).
        X = np.concatenate(client.gather(
            [client.submit(_raw_rows, model, p, pure=False) for p in parts]))
        data = model._validate_rows(X, None, reset=True)
        del X
        if data.n_rows < K:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{K}, n_samples = {data.n_rows}")
        data.shift = shift = _weighted_nanmean(data)
    else:
        if sum(sizes) < K:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                             f"{K}, n_samples = {sum(sizes)}")
        shift, _, _ = _global_moments(client, model, parts)
        data = None
    prepared = _shifted(client, prepared, shift)
    if data is not None:
        model._init_params(data, rs)
    elif not needs_data:  # every initial parameter given (or a warm start): rows unused
        model._init_params(model._validate_rows(np.zeros((1, D)), None, reset=False), rs)
    elif K == 1:
        # One component: the initial fit is the moments of all rows (missing entries at the
        # column means), as in a serial fit: reduce them rather than sample.
        gs = _tree_sum(client, [client.submit(_filled_moments, model, p, pure=False)
                                for p in prepared])
        weights, means, covars = model._estimate(gs, None, None)
        given = model._check_initial(D)
        model.weights_, model.means_, model.covariances_ = (
            g if g is not None else d for g, d in zip(given, (weights, means, covars),
                                                      strict=True)
        )
    else:  # too many rows for the driver: a uniform sample of them
        sample = _draw_sample(client, model, parts, sizes, max_init_rows, rs)
        sample = sample[~np.isnan(sample).all(axis=1)]
        sample = np.where(np.isnan(sample), shift, sample)  # as _Rows.filled() fills
        data = model._validate_rows(sample, None, reset=False)
        data.shift = shift
        model._init_params(data, rs)
    if model.max_iter == 0:  # as model.fit: the initial parameters, no EM
        model.converged_, model.n_iter_ = False, 0
        model.lower_bound_, model.lower_bounds_ = -np.inf, []
        model._set_derived()
        return
    monitor = ConvergenceMonitor(model.tol, model.max_iter, bool(model.verbose))
    _monitored_em(model, client, prepared, index, monitor, callback)
    model._finish_fit(monitor)


def _fit_hmm(model: BaseHMM, client, parts, callback, max_init_rows: int):
    model._check_hyperparameters()
    if model.n_init != 1:
        raise ValueError("emx.distributed fits one initialisation (n_init=1).")
    parts, sizes, D, index = _check_partitions(client, model, parts)
    model.n_features_in_ = D
    K, n = model.n_components, sum(sizes)
    if n < K:
        raise ValueError(f"Cannot fit {K} states to {n} samples: need at least as many "
                         "samples as states.")
    prepared = _prepare_all(client, model, parts, index)
    if n <= max_init_rows:
        # The serial initialisation: all sequences, in partition order, as model.fit sees them.
        got = client.gather([client.submit(_sequences, d, pure=False) for d in prepared])
        data = model._validate(np.concatenate([g[0] for g in got]),
                               np.concatenate([g[1] for g in got]), reset=True)
        del got
        data.shift = shift = data.X.mean(axis=0)
        prepared = _shifted(client, prepared, shift)
        model._init_params(data, model.random_state)
        del data
    else:  # too many frames for the driver: a uniform sample of them
        shift, var, _ = _global_moments(client, model, parts)
        prepared = _shifted(client, prepared, shift)
        sample = _draw_sample(client, model, parts, sizes, max_init_rows, model.random_state)
        data = model._validate(sample, None, reset=False)
        data.shift = shift
        model._init_params(data, model.random_state)
        if isinstance(model, GMMHMM):  # floors from all the data, not the sample
            model.var_floor_ = np.maximum(model.min_covar, model.var_floor * var)
    monitor = ConvergenceMonitor(model.tol, model.n_iter, model.verbose)
    model.monitor_ = _monitored_em(model, client, prepared, index, monitor, callback)
    return model


def _fit_fa(model: FactorAnalysis, client, parts):
    parts, _, model.n_features_in_, _ = _check_partitions(client, model, parts)
    shift, var, _ = _global_moments(client, model, parts)
    stats = _tree_sum(client, [client.submit(_fa_moments, p, shift, pure=False) for p in parts])
    cov = stats.covariance()
    return model._fit_prepared(_FAData(shift, _noise_floor(np.diag(cov).copy()), cov,
                                       stats=stats))


def _fit_recognizer(rec, client, parts, callback):
    """Recognizer training with every phase reduced over the partitions (see its ``fit``)."""
    rec._check_hyperparameters()
    if rec.vtln or rec.sat:
        raise ValueError("emx.distributed trains a Recognizer without VTLN or SAT (vtln=True "
                         "and sat=True train again on warped or transformed features): fit "
                         "it serially, or set them False.")
    # one front end everywhere: the sample rate of the audio of all partitions
    rec._pin_front_end(_tree_sum(client, [client.submit(lambda p: rec._audio_rates(p[0]), p,
                                                        pure=False) for p in parts]))
    loaded = [client.submit(_rec_load, rec, p, pure=False) for p in parts]
    summaries = [client.submit(_rec_summary, x, pure=False) for x in loaded]
    dims = client.gather([client.submit(lambda s: s.dims, s, pure=False) for s in summaries])
    for i, d in enumerate(dims):
        if d != dims[0] and len(d) == 1 and len(dims[0]) == 1:
            raise ValueError(
                f"Partition {i} has utterances with {next(iter(d))} features, but partition "
                f"0 has {next(iter(dims[0]))}: every partition must have the same number of "
                "features."
            )
        if len(d) > 1:
            raise ValueError(f"Partition {i} has utterances with different feature "
                             f"dimensions: {sorted(d)}.")
    rec._setup(_tree_sum(client, summaries))
    selected = [client.submit(lambda r, x: r._select(*x), rec, x, pure=False) for x in loaded]
    rec._check_selection(_tree_sum(client, [client.submit(operator.itemgetter(2), x)
                                            for x in selected]))

    def moments(centres):
        return _tree_sum(client, [client.submit(_rec_moments, rec, x, centres, pure=False)
                                  for x in selected])

    first = moments(None)
    rec._initialise(first, moments(rec._centres(first)))
    groups = [client.submit(lambda r, x: r._groups(x[0], x[1]), rec, x, pure=False)
              for x in selected]
    iteration = [0]

    def estep():
        stats = _tree_sum(client, [client.submit(_rec_estep, rec, g, pure=False)
                                   for g in groups])
        if callback is not None:
            callback(iteration[0], stats.loglik)
        iteration[0] += 1
        return stats

    rec._train(estep, first.n)
    return rec
