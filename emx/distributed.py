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

Dask is an optional dependency (``pip install "emx[dask]"``); ``import emx`` does not import it.
The random initialisations (k-means etc.) run on the driver on the first partition; give
initial parameters to start exactly where a serial fit starts.
"""

from __future__ import annotations

import operator
from functools import reduce

import numpy as np
from sklearn.utils import check_random_state

from ._em import ChunkRunner, ConvergenceMonitor, run_em
from .factor import FactorAnalysis, FactorStats, _FAData, _noise_floor
from .gaussian import GaussianStats
from .hmm import GMMHMM, BaseHMM
from .impute import EMImputer
from .mixture import GaussianMixture

__all__ = ["fit"]


# ---------------------------------------------------------------- tasks (run on workers)
def _identity(part):
    return part


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


def _prepare(model, part, shift):
    """The model's prepared data for one partition, moments taken about the global shift."""
    if isinstance(model, BaseHMM):
        X, lengths = _hmm_part(part)
        data = model._validate(X, lengths, reset=False)
    else:
        data = model._validate_rows(np.asarray(part), None, reset=False)
    data.shift = shift
    return data


def _estep(model, data):
    with ChunkRunner(1) as runner:
        return model._estep(data, runner)


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


def _rec_estep(rec, groups, shift):
    return reduce(operator.iadd, (rec._estep(g, shift) for g in groups))


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

    def __init__(self, model, client, prepared):
        self.model, self.client, self.prepared = model, client, prepared

    def _estep(self, data, runner):
        # The model (its parameters: small) travels with each task; the data stay put.
        futures = [self.client.submit(_estep, self.model, p, pure=False) for p in self.prepared]
        return _tree_sum(self.client, futures)

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


def fit(model, partitions, client, *, callback=None):
    """Fit an emx EM model on partitioned data with a ``dask.distributed.Client``.

    Parameters
    ----------
    model : GaussianMixture, EMImputer, GaussianHMM, GMMHMM, FactorAnalysis or
        speech.Recognizer
        The estimator; its hyperparameters are used as in ``model.fit``.
    partitions : dask array, or list of partitions
        Row models: a dask array (blocks of rows) or a list of 2-D arrays. HMMs: a list of
        ``(X, lengths)`` pairs or of lists of 2-D sequences (sequences are never split).
        Recognizer: a list of ``(utterances, transcripts)`` pairs as ``Recognizer.fit``
        takes them (audio paths are read, and their features computed, on the workers).
    client : dask.distributed.Client
    callback : callable, optional
        ``callback(iteration, loglik)`` after every E-step (progress, tests).

    Returns
    -------
    model
        Fitted, with the same attributes as after ``model.fit``.
    """
    if isinstance(model, EMImputer):
        parts = _submit_parts(client, partitions)
        mixture = model._mixture()
        _fit_rows(mixture, client, parts, callback)
        n_used = int(sum(client.gather(
            [client.submit(lambda p: int(np.sum(~np.isnan(np.asarray(p)).all(axis=1))), p)
             for p in parts]
        )))
        model.n_features_in_ = mixture.n_features_in_
        return model._finish_fit(mixture, n_used)
    if isinstance(model, FactorAnalysis):
        return _fit_fa(model, client, _submit_parts(client, partitions))
    if isinstance(model, GaussianMixture):
        _fit_rows(model, client, _submit_parts(client, partitions), callback)
        return model
    if isinstance(model, BaseHMM):
        return _fit_hmm(model, client, _submit_parts(client, partitions), callback)
    from .speech.recognizer import Recognizer

    if isinstance(model, Recognizer):
        return _fit_recognizer(model, client, _submit_parts(client, partitions), callback)
    raise TypeError(f"emx.distributed.fit does not support {type(model).__name__}.")


def _monitored_em(model, client, prepared, monitor, callback):
    proxy = _Distributed(model, client, prepared)
    if callback is not None:
        inner = proxy._estep

        def estep(data, runner):
            stats = inner(data, runner)
            callback(monitor.iter, stats.loglik)
            return stats

        proxy._estep = estep
    run_em(proxy, None, monitor, None)
    return monitor


def _n_features(client, model, parts) -> int:
    first = client.submit(
        lambda m, p: (_hmm_rows(p) if isinstance(m, BaseHMM) else np.asarray(p)).shape[1],
        model, parts[0],
    )
    return int(first.result())


def _fit_rows(model: GaussianMixture, client, parts, callback) -> None:
    model._check_hyperparameters()
    if model.n_init != 1:
        raise ValueError("emx.distributed fits one initialisation (n_init=1).")
    model.n_features_in_ = _n_features(client, model, parts)
    shift, _, _ = _global_moments(client, model, parts)
    prepared = [client.submit(_prepare, model, p, shift, pure=False) for p in parts]
    if model.n_components == 1:
        # One component: the initial fit is the moments of all rows (missing entries at the
        # column means), as in a serial fit: reduce them rather than sample.
        gs = _tree_sum(client, [client.submit(_filled_moments, model, p, pure=False)
                                for p in prepared])
        weights, means, covars = model._estimate(gs, None, None)
        given = model._check_initial(model.n_features_in_)
        model.weights_, model.means_, model.covariances_ = (
            g if g is not None else d for g, d in zip(given, (weights, means, covars),
                                                      strict=True)
        )
    else:
        model._init_params(prepared[0].result(), check_random_state(model.random_state))
    monitor = ConvergenceMonitor(model.tol, model.max_iter, bool(model.verbose))
    _monitored_em(model, client, prepared, monitor, callback)
    model._finish_fit(monitor)


def _fit_hmm(model: BaseHMM, client, parts, callback):
    model._check_hyperparameters()
    if model.n_init != 1:
        raise ValueError("emx.distributed fits one initialisation (n_init=1).")
    model.n_features_in_ = _n_features(client, model, parts)
    shift, var, n = _global_moments(client, model, parts)
    if n < model.n_components:
        raise ValueError(f"Cannot fit {model.n_components} states to {n} samples.")
    prepared = [client.submit(_prepare, model, p, shift, pure=False) for p in parts]
    sample = prepared[0].result()
    model._init_params(sample, model.random_state)
    if isinstance(model, GMMHMM):  # floors from all the data, not the sample
        model.var_floor_ = np.maximum(model.min_covar, model.var_floor * var)
    monitor = ConvergenceMonitor(model.tol, model.n_iter, model.verbose)
    model.monitor_ = _monitored_em(model, client, prepared, monitor, callback)
    return model


def _fit_fa(model: FactorAnalysis, client, parts):
    model.n_features_in_ = _n_features(client, model, parts)
    shift, var, _ = _global_moments(client, model, parts)
    stats = _tree_sum(client, [client.submit(_fa_moments, p, shift, pure=False) for p in parts])
    cov = stats.covariance()
    return model._fit_prepared(_FAData(shift, _noise_floor(np.diag(cov).copy()), cov,
                                       stats=stats))


def _fit_recognizer(rec, client, parts, callback):
    """Recognizer training with every phase reduced over the partitions (see its ``fit``)."""
    rec._check_hyperparameters()
    # one front end everywhere: the sample rate of the audio of all partitions
    rec._pin_front_end(_tree_sum(client, [client.submit(lambda p: rec._audio_rates(p[0]), p,
                                                        pure=False) for p in parts]))
    loaded = [client.submit(_rec_load, rec, p, pure=False) for p in parts]
    rec._setup(_tree_sum(client, [client.submit(_rec_summary, x, pure=False) for x in loaded]))
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
    shift = first.total / first.n
    iteration = [0]

    def estep():
        stats = _tree_sum(client, [client.submit(_rec_estep, rec, g, shift, pure=False)
                                   for g in groups])
        if callback is not None:
            callback(iteration[0], stats.loglik)
        iteration[0] += 1
        return stats

    rec._train(estep, first.n)
    return rec
