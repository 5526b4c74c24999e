"""Threads: BLAS limited to one thread while ``n_jobs > 1`` runs, the chunk grouping of
``ChunkRunner.map_sum`` fixed by the data alone (bit-identical sums for any thread count),
and enough tasks for the threads to share."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import emx
from emx._em import TARGET_TASKS, ChunkRunner, group_size


def _blas_threads() -> set:
    return {i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"}


@pytest.fixture
def two_blas_threads():
    """BLAS set to 2 threads around the test (skipped where BLAS cannot have 2)."""
    import scipy.linalg.cython_blas  # noqa: F401  (the kernels' BLAS, loaded before the limit)

    with threadpool_limits(limits=2, user_api="blas"):
        if _blas_threads() != {2}:
            pytest.skip(f"BLAS threads cannot be set to 2 here ({_blas_threads()})")
        yield


def _record_blas_in_estep(monkeypatch, cls) -> list:
    seen = []
    estep = cls.em_estep

    def em_estep(self, data, runner):
        seen.append(_blas_threads())
        return estep(self, data, runner)

    monkeypatch.setattr(cls, "em_estep", em_estep)
    return seen


@pytest.mark.parametrize("n_jobs, expected", [(1, {2}), (2, {1})])
def test_gmm_fit_runs_estep_under_one_blas_thread_when_threaded(
        monkeypatch, two_blas_threads, n_jobs, expected):
    # The README's claim: n_jobs > 1 limits BLAS to one thread for the fit; n_jobs=1 leaves
    # BLAS alone. Checked during every E-step, and restored afterwards.
    seen = _record_blas_in_estep(monkeypatch, emx.GaussianMixture)
    X = np.random.default_rng(0).normal(size=(300, 3))
    emx.GaussianMixture(2, covariance_type="full", max_iter=3, random_state=0,
                        n_jobs=n_jobs).fit(X)
    assert seen and all(s == expected for s in seen), seen
    assert _blas_threads() == {2}


def test_hmm_fit_runs_estep_under_one_blas_thread_when_threaded(monkeypatch, two_blas_threads):
    seen = _record_blas_in_estep(monkeypatch, emx.GaussianHMM)
    X = np.random.default_rng(1).normal(size=(400, 2))
    emx.GaussianHMM(3, n_iter=3, random_state=0, n_jobs=2).fit(X, [100] * 4)
    assert seen and all(s == {1} for s in seen), seen
    assert _blas_threads() == {2}


def test_runner_limit_restored_after_an_error(two_blas_threads):
    with pytest.raises(RuntimeError), ChunkRunner(2):
        assert _blas_threads() == {1}
        raise RuntimeError("boom")
    assert _blas_threads() == {2}


# ---------------------------------------------------------------------------- map_sum
@dataclass
class _Sum:
    """A float sum whose value shows the order of the additions (floats do not associate)."""

    value: float

    def __iadd__(self, other):
        self.value = self.value + other.value
        return self


def _terms(n: int) -> list:
    # 1 then terms below its half-ulp: added to 1 one at a time they vanish, added to each
    # other first they count. Any other association order gives another float.
    return [1.0] + [1e-16 * (1 + k % 3) for k in range(n - 1)]


def _expected(terms: list) -> float:
    g = group_size(len(terms))
    total = None
    for a in range(0, len(terms), g):
        part = terms[a]
        for x in terms[a + 1 : a + g]:
            part = part + x
        total = part if total is None else total + part
    return total


@pytest.mark.parametrize("n", [1, 2, 7, 31, 32, 33, 64, 100, 257])
def test_map_sum_order_fixed_by_the_chunks_alone(n):
    terms = _terms(n)
    want = _expected(terms)
    for n_jobs in (1, 2, 3, 4):
        with ChunkRunner(n_jobs) as runner:
            got = runner.map_sum(lambda i: _Sum(terms[i]), range(n)).value
        assert got == want, (n, n_jobs)


def test_map_sum_order_matters_in_this_test():
    # The check above can fail: summing the same terms one by one gives another float.
    terms = _terms(257)
    assert group_size(257) > 1
    assert sum(terms[1:], terms[0]) != _expected(terms)


@pytest.mark.parametrize("n", [1, 3, 13, 32, 49, 50, 64, 200, 1000])
def test_map_sum_gives_the_threads_enough_tasks(n):
    # At least min(n, TARGET_TASKS) tasks, so that 2 threads do not wait long on the last.
    tasks = []
    lock = threading.Lock()

    def func(i):
        with lock:
            tasks.append(i)
        return _Sum(1.0)

    with ChunkRunner(2) as runner:
        assert runner.map_sum(func, range(n)).value == n
    g = group_size(n)
    n_tasks = -(-n // g)
    assert n_tasks >= min(n, TARGET_TASKS)
    assert sorted(tasks) == list(range(n))


def test_group_size_from_the_number_of_chunks():
    # group_size takes the number of chunks and nothing else.
    assert [group_size(n) for n in (0, 1, 31, 32, 63, 64, 65, 1000)] == [
        1, 1, 1, 1, 1, 2, 2, 1000 // TARGET_TASKS]


# ---------------------------------------------------------------------------- inference
def _incomplete_rows(n=9000, D=4, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)) @ rng.normal(size=(D, D)) + rng.normal(size=D)
    X[rng.random(X.shape) < 0.25] = np.nan
    X[5] = np.nan  # a row with nothing observed
    return X


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_threaded_inference_with_missing_entries_is_exact(covariance_type):
    # More than CHUNK_ROWS rows of each kind: several blocks, run in the threads of n_jobs.
    X = _incomplete_rows()
    gm = emx.GaussianMixture(3, covariance_type=covariance_type, max_iter=5,
                             random_state=0).fit(X)
    out = {}
    for n_jobs in (1, 2):
        gm.set_params(n_jobs=n_jobs)
        out[n_jobs] = (gm.score_samples(X), gm.predict_proba(X))
    for a, b in zip(out[1], out[2], strict=True):
        np.testing.assert_array_equal(a, b)
    # Row by row (each its own block and pattern): the same values.
    rows = [0, 5, 4100, 8999] + list(range(17, 40))
    one = np.array([gm.score_samples(X[i : i + 1])[0] for i in rows])
    np.testing.assert_allclose(out[2][0][rows], one, rtol=1e-12, atol=0)
    assert abs(out[2][0][5]) < 1e-12  # nothing observed: log-likelihood 0


def test_threaded_imputation_is_exact():
    X = _incomplete_rows(seed=4)
    filled = {}
    for n_jobs in (1, 2):
        imp = emx.EMImputer(n_jobs=n_jobs, max_iter=5)
        filled[n_jobs] = imp.fit_transform(X)
    np.testing.assert_array_equal(filled[1], filled[2])
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(filled[2][observed], X[observed])
    rows = [0, 1, 2, 4100, 8999]
    one = np.vstack([imp.transform(X[i : i + 1]) for i in rows])
    np.testing.assert_allclose(filled[2][rows], one, rtol=1e-12, atol=1e-12)


def test_imputer_fit_transform_is_fit_then_transform():
    X = _incomplete_rows(n=500, seed=5)
    X[np.isnan(X)] = -1.0  # a missing_values code other than NaN
    X0 = X.copy()
    a = emx.EMImputer(missing_values=-1.0, max_iter=5, n_jobs=2).fit_transform(X)
    imp = emx.EMImputer(missing_values=-1.0, max_iter=5, n_jobs=2).fit(X)
    np.testing.assert_array_equal(a, imp.transform(X))
    np.testing.assert_array_equal(X, X0)  # the caller's array is not touched
    assert not np.any(a == -1.0)


def test_blas_controller_rescanned_after_an_import(monkeypatch):
    # A BLAS loaded by a later import must be limited too: the cached scan is renewed.
    import sys
    import types

    from emx import _em

    first = _em._blas_controller()
    assert _em._blas_controller() is first
    monkeypatch.setitem(sys.modules, "_emx_test_new_module", types.ModuleType("x"))
    assert _em._blas_controller() is not first
