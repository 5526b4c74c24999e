"""The one EM loop of emx: the protocol every model implements, the convergence monitor,
chunked accumulation and restarts.

The protocol (:class:`EMModel`) is what the loop, the threaded runner and
:mod:`emx.distributed` know about a model, and all they know: prepare data, initialise,
E-step to additive statistics, M-step, log prior, fitted attributes. Data live wherever the
engine keeps them (one array in memory for ``fit``, partitions on Dask workers): a model sees
them through a :class:`DataSource`, which can gather rows, sum a function over the
partitions, or transform them in place. A new model gets threads, restarts and distributed
fitting by implementing :class:`EMModel`.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import reduce
from operator import iadd
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
    "DataSource",
    "EMModel",
    "EMMixin",
    "LocalData",
    "ConvergenceMonitor",
    "EMDecreaseWarning",
    "ChunkRunner",
    "run_em",
    "fit_restarts",
    "restart_seeds",
]


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` called from emx that names the first frame
    outside the emx package: the user's line, however deep the call inside emx."""
    frame = sys._getframe(1)  # the caller of this function, which calls warnings.warn
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _PACKAGE_DIR + os.sep
    ):
        frame = frame.f_back
        level += 1
    return level


class EMDecreaseWarning(RuntimeWarning):
    """The EM objective fell by more than round-off between iterations (a bug or a floor)."""


class ConvergenceMonitor:
    """Record the EM objective per iteration and decide convergence.

    Parameters
    ----------
    tol : float
        Convergence threshold on the gain of the objective between iterations.
    n_iter : int
        Maximum number of iterations.
    verbose : bool
        Print one line per iteration to stderr.

    Attributes
    ----------
    history : list of float
        Data log-likelihood under the parameters of each iteration (before its M-step).
    objective : list of float
        ``history`` plus the log prior density of those parameters: the quantity EM never
        decreases (equal to ``history`` for maximum likelihood).
    iter : int
        Number of iterations recorded.
    converged : bool
        Whether the last gain of the objective was non-negative (up to round-off) and below
        ``tol``. A fall larger than round-off warns (``EMDecreaseWarning``) and does not count
        as convergence.
    """

    def __init__(self, tol: float, n_iter: int, verbose: bool = False):
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history: list[float] = []
        self.objective: list[float] = []
        self.iter = 0

    def __repr__(self) -> str:
        return (
            f"ConvergenceMonitor(tol={self.tol}, n_iter={self.n_iter}, iter={self.iter}, "
            f"converged={self.converged}, history={self.history!r})"
        )

    @staticmethod
    def roundoff(value: float) -> float:
        """Largest fall of ``value`` attributed to floating-point round-off."""
        return 1e-8 + 1e-10 * abs(value)

    def report(self, loglik: float, log_prior: float = 0.0) -> None:
        """Record one iteration's log-likelihood and the log prior of its parameters."""
        obj = float(loglik) + float(log_prior)
        if self.objective:
            delta = obj - self.objective[-1]
            if delta < -self.roundoff(obj):
                warnings.warn(
                    f"EM objective decreased from {self.objective[-1]:.10g} to {obj:.10g} "
                    f"(delta {delta:.3g}) at iteration {self.iter + 1}.",
                    EMDecreaseWarning,
                    stacklevel=user_stacklevel(),
                )
        else:
            delta = float("nan")
        if self.verbose:
            print(
                f"{self.iter + 1:>8d} {float(loglik):>20.10f} {delta:>16.10f}", file=sys.stderr
            )
        self.history.append(float(loglik))
        self.objective.append(obj)
        self.iter += 1

    @property
    def converged(self) -> bool:
        if len(self.objective) < 2:
            return False
        delta = self.objective[-1] - self.objective[-2]
        return -self.roundoff(self.objective[-1]) <= delta < self.tol


#: Number of tasks :meth:`ChunkRunner.map_sum` aims at: enough for the threads to share the
#: work evenly (on 2 threads, 33 equal tasks leave one thread idle for 1/33 of the time where
#: 13 leave it idle for 1/13), few enough that hand-offs cost nothing measurable.
TARGET_TASKS = 32


def group_size(n_chunks: int) -> int:
    """Consecutive chunks one task of :meth:`ChunkRunner.map_sum` sums: about
    ``n_chunks / TARGET_TASKS``, at least 1. A function of the number of chunks alone (never
    of the number of threads), so the order of the additions is fixed by the data."""
    return max(1, int(n_chunks) // TARGET_TASKS)


_BLAS: dict = {"controller": None, "n_modules": -1}


def _blas_controller():
    """threadpoolctl's view of the loaded thread pools, scanned again only when a module
    was imported since the last scan (a scan costs ~1.5 ms, a fit of a few ms pays it
    otherwise; a new BLAS comes with an import). The kernels call scipy's BLAS: it is loaded
    before the first scan, so that the limit reaches it (threadpoolctl limits the libraries
    loaded when it scans)."""
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    n = len(sys.modules)
    if _BLAS["controller"] is None or _BLAS["n_modules"] != n:
        _BLAS["controller"], _BLAS["n_modules"] = ThreadpoolController(), n
    return _BLAS["controller"]


class ChunkRunner:
    """Map a function over data chunks in a thread pool and sum the results in chunk order.

    The sum runs in a fixed order over chunks fixed by the data (not by the number of
    threads), so the result is bit-identical for any ``n_jobs``.

    With ``n_jobs > 1``, BLAS is limited to one thread (``threadpoolctl``) while the runner
    is open, so that emx's threads and BLAS's never share the cores: each of emx's threads
    runs whole chunks, and a BLAS call inside a kernel (or the M-step between E-steps) must
    not start threads of its own beside them. With ``n_jobs=1`` BLAS is left as it is.
    """

    def __init__(self, n_jobs: int = 1):
        self.n_jobs = n_jobs
        self._stack: ExitStack | None = None
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> ChunkRunner:
        self._stack = ExitStack()
        if self.n_jobs > 1:
            self._stack.enter_context(_blas_controller().limit(limits=1, user_api="blas"))
            self._pool = self._stack.enter_context(ThreadPoolExecutor(self.n_jobs))
        return self

    def __exit__(self, *exc) -> None:
        assert self._stack is not None
        self._stack.close()
        self._pool = None

    def map(self, func, chunks):
        """Iterator over ``func(chunk)`` in chunk order (computed in the pool when threaded)."""
        if self._pool is None or len(chunks) < 2:
            return map(func, chunks)
        return self._pool.map(func, chunks)

    def map_sum(self, func, chunks, group: int | None = None):
        """Sum of ``func(chunk)`` over the chunks.

        Consecutive chunks are summed in groups of ``group`` inside one task (fewer thread
        hand-offs), then the group sums in order. ``group=None`` (the default) takes
        :func:`group_size` of the number of chunks, so that there are about
        :data:`TARGET_TASKS` tasks to share among the threads. The grouping depends on the
        chunks alone, so the order of the additions, and with it the result, does not depend
        on the number of threads.
        """
        chunks = list(chunks)
        if group is None:
            group = group_size(len(chunks))
        groups = [chunks[i : i + group] for i in range(0, len(chunks), group)]
        # In-place sums: every func(chunk) returns fresh statistics the runner owns.
        return reduce(iadd, self.map(lambda g: reduce(iadd, map(func, g)), groups))


def run_em(model, data, monitor: ConvergenceMonitor, runner: ChunkRunner) -> None:
    """Iterate E-step, record, M-step on in-memory ``data`` until ``monitor`` converges or
    runs out of iterations."""
    iterate(model, lambda: model.em_summed(model.em_estep(data, runner)), monitor)


def iterate(model, estep: Callable[[], Any], monitor: ConvergenceMonitor) -> None:
    """The EM iterations: ``estep()`` returns the statistics of all the data at the current
    parameters (however they were summed); record the objective, maximise, until ``monitor``
    converges or runs out of iterations."""
    for _ in range(monitor.n_iter):
        stats = estep()
        monitor.report(stats.loglik, model.em_log_prior())
        model.em_mstep(stats)
        if monitor.converged:
            break


def restart_seeds(random_state, n_init: int) -> list:
    """One seed per restart: ``random_state`` itself for a single run (so the initialisation
    is the one a single-run peer library would draw), else seeds drawn from it."""
    if n_init == 1:
        return [random_state]
    rng = check_random_state(random_state)
    return [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=n_init)]


def fit_restarts(model, data, *, seeds: list, n_jobs: int, make_monitor):
    """Fit ``model`` once per seed (``model._init_params(data, seed)`` then EM) and keep the
    parameters with the best final objective; sets ``model.monitor_`` to that run's monitor.
    """
    given = {a: getattr(model, a) for a in model._fitted_attrs if hasattr(model, a)}
    best = None
    with ChunkRunner(n_jobs) as runner:
        for seed in seeds:
            # Every restart starts from what the caller set, not from the previous fit.
            for name in model._fitted_attrs:
                if name in given:
                    setattr(model, name, given[name])
                elif hasattr(model, name):
                    delattr(model, name)
            model._init_params(data, seed)
            monitor = make_monitor()
            run_em(model, data, monitor, runner)
            score = monitor.objective[-1] if monitor.objective else -np.inf
            if best is None or score > best[0]:
                best = (score, {a: getattr(model, a) for a in model._fitted_attrs}, monitor)
    assert best is not None
    for name, value in best[1].items():
        setattr(model, name, value)
    model.monitor_ = best[2]
    return model


# ---------------------------------------------------------------------------- protocol
@runtime_checkable
class DataSource(Protocol):
    """The training data as a model's initialisation sees them, wherever they live: one
    array in memory (:class:`LocalData`) or partitions on Dask workers.

    Attributes
    ----------
    n_rows : int
        Rows (frames for the HMMs) over all partitions.
    n_features : int or None
        Columns of every partition (None when the partitions do not say, e.g. audio).
    max_rows : int
        :meth:`rows` gives all the rows up to this many, a sample above.
    index : list of int
        Index of each partition in the caller's list (for error messages).
    """

    n_rows: int
    n_features: int | None
    max_rows: int
    index: list

    def rows(self) -> tuple[Any, bool]:
        """Prepared data (``model.em_prepare(..., reset=True)``) holding all the rows in
        order, and True; or, above ``max_rows`` rows, a seeded uniform sample of
        ``max_rows`` of them (without replacement, in order), and False."""

    def map(self, func: Callable, *args) -> list:
        """``[func(data, *args)]`` for every partition, in order."""

    def reduce(self, func: Callable, *args) -> Any:
        """The sum over partitions of ``func(data, *args)`` (in a fixed order)."""

    def update(self, func: Callable, *args) -> None:
        """Replace every partition's prepared data by ``func(data, *args)``."""


@runtime_checkable
class EMModel(Protocol):
    """What an EM model provides so that any engine can fit it (:func:`iterate` in memory,
    :func:`emx.distributed.fit` on Dask). ``data`` is whatever ``em_prepare`` returns.

    Statistics are additive objects (``+``, ``+=``) with a ``loglik`` attribute: the
    log-likelihood of the data they were taken from, under the current parameters.
    """

    def em_describe(self, part) -> tuple | str:
        """``(n_rows, n_features)`` of a raw partition (a third entry, when present, counts
        its informative rows), or a string saying what is wrong with it."""

    def em_prepare(self, part, *, reset: bool = False) -> Any:
        """Validate a raw partition and prepare it for E-steps (ValueError when bad);
        ``reset=True`` also sets ``n_features_in_`` (the data of a whole fit)."""

    def em_rows(self, data) -> Any:
        """The rows of prepared data as a raw partition (for gathering and sampling: a 2-D
        array, or a tuple whose first entry is one)."""

    def em_join(self, parts: list) -> Any:
        """One raw partition holding the rows of ``parts`` (from :meth:`em_rows`) in order."""

    def em_init(self, source: DataSource, random_state) -> None:
        """Check the hyperparameters and initialise from all the data (``source``)."""

    def em_estep(self, data, runner: ChunkRunner) -> Any:
        """Statistics of prepared data at the current parameters."""

    def em_summed(self, stats) -> Any:
        """Statistics summed over all the data, as the M-step will see them (a model may
        refuse a step here: GaussianMixture's round-off guard)."""

    def em_log_prior(self) -> float:
        """Log density of the current parameters under the model's priors (0 for ML)."""

    def em_mstep(self, stats) -> None:
        """Closed-form update from statistics summed over all the data."""

    def em_run(self, estep: Callable[[], Any]) -> None:
        """All the EM iterations after :meth:`em_init`, ``estep()`` giving the summed
        statistics at the current parameters; sets the fitted attributes."""


class EMMixin:
    """Defaults of the protocol: no refusal, no prior, one monitored run (``em_monitor``,
    ``em_finish``)."""

    def em_summed(self, stats):
        return stats

    def em_log_prior(self) -> float:
        return 0.0

    def em_run(self, estep: Callable[[], Any]) -> None:
        monitor = self.em_monitor()
        if monitor.n_iter > 0:
            iterate(self, lambda: self.em_summed(estep()), monitor)
        self.em_finish(monitor)

    def em_monitor(self) -> ConvergenceMonitor:
        """A fresh monitor with the model's tolerance and iteration limit."""
        raise NotImplementedError

    def em_finish(self, monitor: ConvergenceMonitor) -> None:
        """Set the fitted attributes that describe the run from its monitor."""
        raise NotImplementedError


class LocalData:
    """A :class:`DataSource` over one prepared data object in memory (one partition)."""

    def __init__(self, data, n_rows: int, n_features: int | None = None):
        self.data, self.n_rows, self.n_features = data, n_rows, n_features
        self.max_rows, self.index = n_rows, [0]

    def rows(self):
        return self.data, True

    def map(self, func, *args) -> list:
        return [func(self.data, *args)]

    def reduce(self, func, *args):
        return func(self.data, *args)

    def update(self, func, *args) -> None:
        self.data = func(self.data, *args)


def column_moments(source: DataSource, rows: Callable) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance of every column over all the data of ``source``
    (``rows(data)`` gives a partition's float rows; NaN entries are skipped). Two passes:
    sums, then squared deviations about the mean (no cancellation)."""
    count, total = source.reduce(_column_sums, rows)
    if np.any(count == 0):
        bad = np.flatnonzero(count == 0).tolist()
        raise ValueError(f"Column(s) {bad} have no observed value.")
    mean = total / count
    return mean, source.reduce(_column_scatter, rows, mean) / count


def _column_sums(data, rows):
    X = rows(data)
    observed = ~np.isnan(X)
    return np.stack([observed.sum(axis=0), np.where(observed, X, 0.0).sum(axis=0)])


def _column_scatter(data, rows, mean):
    d = rows(data) - mean
    return np.nansum(d * d, axis=0)
