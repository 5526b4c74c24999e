"""The one EM loop of emx: convergence monitor, chunked accumulation, restarts.

Every model supplies

* ``_estep(data, runner) -> stats``: accumulate additive sufficient statistics over the data's
  chunks (``stats.loglik`` holds the data log-likelihood under the current parameters);
* ``_log_prior() -> float``: log density of the current parameters under the model's priors
  (0 for plain maximum likelihood), so that EM's objective is ``loglik + log_prior``;
* ``_mstep(stats)``: closed-form update from the summed statistics;
* ``_init_params(data, random_state)`` and ``_fitted_attrs`` for restarts.
"""

from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import reduce
from operator import iadd

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
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


class ChunkRunner:
    """Map a function over data chunks in a thread pool and sum the results in chunk order.

    The sum runs in a fixed order over chunks fixed by the data (not by the number of
    threads), so the result is bit-identical for any ``n_jobs``. BLAS is left alone: the
    kernels' BLAS calls work on blocks of 128 frames, below the size where OpenBLAS threads.
    """

    def __init__(self, n_jobs: int = 1):
        self.n_jobs = n_jobs
        self._stack: ExitStack | None = None
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> ChunkRunner:
        self._stack = ExitStack()
        if self.n_jobs > 1:
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

    def map_sum(self, func, chunks, group: int = 4):
        """Sum of ``func(chunk)`` over the chunks.

        Consecutive chunks are summed in groups of ``group`` inside one task (fewer thread
        hand-offs), then the group sums in order. The grouping is fixed, so the order of the
        additions, and with it the result, does not depend on the number of threads.
        """
        groups = [chunks[i : i + group] for i in range(0, len(chunks), group)]
        # In-place sums: every func(chunk) returns fresh statistics the runner owns.
        return reduce(iadd, self.map(lambda g: reduce(iadd, map(func, g)), groups))


def run_em(model, data, monitor: ConvergenceMonitor, runner: ChunkRunner) -> None:
    """Iterate E-step, record, M-step until ``monitor`` converges or runs out of iterations."""
    for _ in range(monitor.n_iter):
        stats = model._estep(data, runner)
        monitor.report(stats.loglik, model._log_prior())
        model._mstep(stats)
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
