"""Streaming EM (issue 14, section 3): partial_fit (stepwise EM)."""

import warnings

import numpy as np
import pytest

from emx import GMMHMM, CategoricalHMM, GaussianHMM, GaussianMixture
from emx import gaussian as G
from emx._stepwise import _recenter, check_schedule, step_size


def _blobs(n=600, D=3, K=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6, size=(K, D))
    z = rng.integers(K, size=n)
    return centers[z] + rng.normal(size=(n, D))


@pytest.mark.parametrize("ct", ["diag", "full", "spherical", "tied"])
def test_recenter_is_exact(ct):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3)) + 5
    W = rng.random((50, 4))
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) + 5
    moved = _recenter(G.GaussianStats.from_weights(X, W, a, ct), b, ct)
    direct = G.GaussianStats.from_weights(X, W, b, ct)
    np.testing.assert_allclose(moved.sum1, direct.sum1, atol=1e-10)
    np.testing.assert_allclose(moved.sum2, direct.sum2, atol=1e-9)
    assert moved.shift is b


@pytest.mark.parametrize("ct", ["diag", "full", "spherical", "tied"])
def test_mixture_kappa0_is_batch_em(ct):
    X = _blobs()
    kw = dict(n_components=3, covariance_type=ct, random_state=0, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = [GaussianMixture(max_iter=i, **kw).fit(X) for i in (1, 2, 3)]
    m = GaussianMixture(**kw)
    for ref in batch:
        m.partial_fit(X, kappa=0)
        np.testing.assert_allclose(m.weights_, ref.weights_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(m.covariances_, ref.covariances_, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("make", [
    lambda: GaussianHMM(3, covariance_type="full", n_iter=1, random_state=0),
    lambda: GaussianHMM(3, covariance_type="tied", n_iter=1, random_state=0),
    lambda: GMMHMM(2, n_mix=2, n_iter=1, random_state=0),
])
def test_hmm_first_step_is_batch_em(make):
    X = _blobs(n=500)
    lengths = [200, 300]
    ref = make().fit(X, lengths)
    m = make().partial_fit(X, lengths, kappa=0)
    for name in ref._fitted_attrs:
        np.testing.assert_allclose(getattr(m, name), getattr(ref, name), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def test_hmm_kappa0_repeated_is_batch_em_without_priors():
    X = _blobs(n=500)
    lengths = [200, 300]
    kw = dict(n_components=3, covars_prior=0.0, random_state=0, tol=-np.inf)
    m = GaussianHMM(**kw)
    for i in (1, 2, 3):
        ref = GaussianHMM(n_iter=i, **kw).fit(X, lengths)
        m.partial_fit(X, lengths, kappa=0)
        for name in ref._fitted_attrs:
            np.testing.assert_allclose(getattr(m, name), getattr(ref, name), rtol=1e-9,
                                       atol=1e-12, err_msg=name)


def test_categorical_first_step_is_batch_em():
    rng = np.random.default_rng(0)
    X = rng.integers(4, size=(300, 1))
    ref = CategoricalHMM(2, n_iter=1, random_state=0).fit(X, [100, 200])
    m = CategoricalHMM(2, random_state=0).partial_fit(X, [100, 200], kappa=0)
    np.testing.assert_allclose(m.emissionprob_, ref.emissionprob_, rtol=1e-12)
    np.testing.assert_allclose(m.transmat_, ref.transmat_, rtol=1e-12)


def test_stepwise_reaches_batch_optimum():
    X = _blobs(n=20000, seed=3)
    batch = GaussianMixture(3, random_state=0).fit(X)
    target = batch.score(X)
    m = GaussianMixture(3, random_state=0)
    chunks = np.array_split(np.random.default_rng(0).permutation(X), 40)
    for _ in range(2):
        for c in chunks:
            m.partial_fit(c)
    assert abs(m.score(X) - target) < 1e-3 * abs(target)
    # the HMM from the batch fit's initialisation (k-means on all the data)
    h = GaussianHMM(3, random_state=0, n_iter=0).fit(X)
    for _ in range(2):
        for c in chunks:
            # kappa=0.5 forgets the statistics of the broad initial covariances faster
            h.partial_fit(c, [len(c)], kappa=0.5)
    hb = GaussianHMM(3, random_state=0, n_iter=50).fit(X)
    assert abs(h.score(X) - hb.score(X)) < 2e-3 * abs(hb.score(X))


def test_schedule_checks():
    assert step_size(0, 0.7, 2.0) == 1.0
    assert step_size(3, 0.7, 2.0) == pytest.approx(5 ** -0.7)
    for bad in (dict(kappa=-0.1, t0=2), dict(kappa=1.5, t0=2), dict(kappa=0.7, t0=np.nan),
                dict(kappa=True, t0=2)):
        with pytest.raises(ValueError):
            check_schedule(**bad)
    with pytest.raises(ValueError, match="kappa"):
        GaussianMixture(2).partial_fit(_blobs(), kappa=2)


# ---------------------------------------------------------------- out-of-core fit
def _two_blobs(n=6000, D=3, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(size=(n // 2, D)), rng.normal(size=(n // 2, D)) + 4])


@pytest.mark.parametrize("ct", ["diag", "full"])
def test_mixture_chunked_fit_equals_in_memory(ct, tmp_path):
    X = _two_blobs()
    kw = dict(n_components=3, covariance_type=ct, random_state=0)
    ref = GaussianMixture(**kw).fit(X)
    chunks = np.array_split(X, 7)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64,
                                   shape=X.shape)
    mm[:] = X
    mm.flush()
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert isinstance(mm, np.memmap)
    for data in (chunks, lambda: iter(chunks), mm):
        m = GaussianMixture(**kw).fit(data)
        assert m.n_iter_ == ref.n_iter_
        assert abs(m.lower_bound_ - ref.lower_bound_) < 1e-10 * abs(ref.lower_bound_)
        for name in ("weights_", "means_", "covariances_"):
            np.testing.assert_allclose(getattr(m, name), getattr(ref, name), rtol=1e-10,
                                       atol=1e-10, err_msg=name)


def test_hmm_chunked_fit_equals_in_memory(tmp_path):
    X = _two_blobs()
    lengths = [700, 1300, 1000, 500, 2500]
    kw = dict(n_components=3, n_iter=15, random_state=0)
    ref = GaussianHMM(**kw).fit(X, lengths)
    offs = np.concatenate([[0], np.cumsum(lengths)])
    pairs = [(X[offs[0]:offs[2]], lengths[:2]), (X[offs[2]:offs[3]], lengths[2:3]),
             (X[offs[3]:], lengths[3:])]
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    for data, ln in ((pairs, None), (lambda: iter(pairs), None), (mm, lengths)):
        m = GaussianHMM(**kw).fit(data, ln)
        np.testing.assert_allclose(m.monitor_.history, ref.monitor_.history, rtol=1e-10)
        for name in ref._fitted_attrs:
            np.testing.assert_allclose(getattr(m, name), getattr(ref, name), rtol=1e-10,
                                       atol=1e-10, err_msg=name)


def test_chunked_fit_memory_bounded_by_chunk(tmp_path, monkeypatch):
    import tracemalloc

    import emx._chunked

    n, D = 400_000, 4
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64,
                                   shape=(n, D))
    for a in range(0, n, 50_000):
        mm[a:a + 50_000] = rng.normal(size=(50_000, D)) + (a // 50_000 % 2) * 5
    mm.flush()
    del mm
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    monkeypatch.setattr(emx._chunked, "MEMMAP_CHUNK_ROWS", 10_000)
    init = dict(weights_init=[0.5, 0.5], means_init=np.array([[0.0] * D, [5.0] * D]),
                precisions_init=np.ones((2, D)))
    m = GaussianMixture(2, covariance_type="diag", max_iter=3, random_state=0, **init)
    tracemalloc.start()
    try:
        m.fit(mm)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    data_bytes = n * D * 8  # 12.8 MB
    chunk_bytes = 10_000 * D * 8  # 0.32 MB
    # ~3 chunks of temporaries (measured 1.0 MB), against 12.8 MB of data
    assert peak < 5 * chunk_bytes <= data_bytes / 8, peak
    assert m.n_iter_ >= 2  # every iteration re-read the memmap chunk by chunk
    np.testing.assert_allclose(np.sort(m.means_[:, 0]), [0, 5], atol=0.05)


def test_chunked_errors():
    X = _two_blobs()
    with pytest.raises(ValueError, match="not an iterator"):
        GaussianMixture(2).fit(iter(np.array_split(X, 3)))
    with pytest.raises(ValueError, match="Chunk 1 has 2 features, but chunk 0 has 3"):
        GaussianMixture(2).fit([X[:100], X[100:200, :2]])
    with pytest.raises(ValueError, match="n_init=1"):
        GaussianMixture(2, n_init=2).fit(np.array_split(X, 3))
    with pytest.raises(ValueError, match="labels are not supported"):
        GaussianHMM(2).fit([(X, [len(X)])], labels=np.zeros(len(X), int))


def test_partial_fit_with_labels_and_after_fit():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 5])
    Z = np.repeat([0, 1], 100)
    m = GaussianHMM(2, covars_prior=0.0, random_state=0).partial_fit(X, labels=Z, kappa=0)
    np.testing.assert_allclose(m.means_, [X[:100].mean(axis=0), X[100:].mean(axis=0)],
                               atol=1e-12)
    np.testing.assert_allclose(m.transmat_, [[99 / 100, 1 / 100], [0, 1]], atol=1e-12)
    # a fitted model continues from its parameters (no re-initialisation)
    f = GaussianMixture(2, random_state=0).fit(X)
    before = f.means_.copy()
    f.partial_fit(X[::4])  # the first step has eta = 1: this chunk's statistics alone
    assert not np.array_equal(f.means_, before)
    assert np.abs(f.means_ - before).max() < 0.5


def test_hmm_chunked_fit_with_given_parameters_reads_no_rows_for_init():
    import tracemalloc

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 5))
    m = GaussianHMM(3, n_iter=0, random_state=0).fit(X[:5000])
    ref = GaussianHMM(3, init_params="", n_iter=2, random_state=0)
    h = GaussianHMM(3, init_params="", n_iter=2, random_state=0)
    for a in m._fitted_attrs:
        setattr(ref, a, getattr(m, a))
        setattr(h, a, getattr(m, a))
    ref.fit(X, [10_000] * 10)
    pairs = [(X[i:i + 10_000], [10_000]) for i in range(0, len(X), 10_000)]
    tracemalloc.start()
    try:
        h.fit(pairs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 2, peak  # the rows were not gathered (4 MB of data)
    np.testing.assert_allclose(h.means_, ref.means_, rtol=1e-10)
