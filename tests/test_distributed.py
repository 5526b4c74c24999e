"""Distributed EM on a LocalCluster equals the serial fit, also when a worker dies."""

import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("dask.distributed")
da = pytest.importorskip("dask.array")

import emx  # noqa: E402
import emx.distributed as ed  # noqa: E402
from emx import gaussian as G  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=50,
        )
        c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def blobs(n=3000, D=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, D)) * 4
    return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, D))


def mixture_init(X, K, covariance_type, seed=1):
    rng = np.random.default_rng(seed)
    cov = np.cov(X[~np.isnan(X).any(axis=1)].T)
    prec = G.covars_from_precisions(G.covars_from_template(cov, covariance_type, K),
                                    covariance_type)
    return dict(weights_init=np.full(K, 1.0 / K),
                means_init=np.nan_to_num(X[rng.choice(len(X), K, replace=False)]),
                precisions_init=prec)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_gaussian_mixture_equals_serial(client, covariance_type):
    X = blobs()
    kw = dict(covariance_type=covariance_type, tol=1e-300, max_iter=12,
              **mixture_init(X, 3, covariance_type))
    serial = emx.GaussianMixture(3, **kw).fit(X)
    dist = ed.fit(emx.GaussianMixture(3, **kw), da.from_array(X, chunks=(700, 4)), client)
    np.testing.assert_allclose(dist.lower_bounds_, serial.lower_bounds_, rtol=1e-10)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(dist, name), getattr(serial, name), rtol=1e-10,
                                   atol=1e-12)


def test_mixture_with_missing_entries_and_imputer_equal_serial(client):
    X = blobs(seed=2)
    X[np.random.default_rng(3).random(X.shape) < 0.2] = np.nan
    parts = np.array_split(X, 4)
    kw = dict(covariance_type="full", tol=1e-300, max_iter=8, **mixture_init(X, 3, "full"))
    serial = emx.GaussianMixture(3, **kw).fit(X)
    dist = ed.fit(emx.GaussianMixture(3, **kw), parts, client)
    np.testing.assert_allclose(dist.lower_bounds_, serial.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(dist.covariances_, serial.covariances_, rtol=1e-10, atol=1e-12)
    imp_serial = emx.EMImputer(tol=1e-8).fit(X)
    imp_dist = ed.fit(emx.EMImputer(tol=1e-8), parts, client)
    np.testing.assert_allclose(imp_dist.loglike_, imp_serial.loglike_, rtol=1e-10)
    np.testing.assert_allclose(imp_dist.covariance_, imp_serial.covariance_, rtol=1e-10)
    np.testing.assert_allclose(imp_dist.transform(X), imp_serial.transform(X), rtol=1e-10)


def hmm_data(seed=4):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(100, 3)) + 3 * (i % 3) for i in range(24)])
    lengths = [150] * 16
    return X, lengths


def hmm_partitions(X, lengths, n_parts=3):
    seqs = np.split(X, np.cumsum(lengths)[:-1])
    groups = np.array_split(np.arange(len(seqs)), n_parts)
    return [(np.concatenate([seqs[i] for i in g]), [lengths[i] for i in g]) for g in groups]


@pytest.mark.parametrize("cls", ["GaussianHMM", "GMMHMM"])
def test_hmms_equal_serial(client, cls):
    X, lengths = hmm_data()
    rng = np.random.default_rng(5)
    K, D = 3, 3
    model = getattr(emx, cls)(K, covariance_type="full", n_iter=10, tol=1e-300,
                              init_params="")
    model.startprob_ = rng.dirichlet(np.ones(K))
    model.transmat_ = rng.dirichlet(np.ones(K), size=K)
    means = X[rng.choice(len(X), K * 2, replace=False)]
    cov = np.cov(X.T)
    if cls == "GMMHMM":
        model.set_params(n_mix=2)
        model.weights_ = np.full((K, 2), 0.5)
        model.means_ = means.reshape(K, 2, D)
        model.covars_ = np.tile(cov, (K, 2, 1, 1))
    else:
        model.means_, model.covars_ = means[:K], np.tile(cov, (K, 1, 1))
    from sklearn.base import clone

    def with_params(m):
        c = clone(m)
        for name in m._fitted_attrs:
            if hasattr(m, name):
                setattr(c, name, np.copy(getattr(m, name)))
        return c

    serial = with_params(model).fit(X, lengths)
    dist = ed.fit(with_params(model), hmm_partitions(X, lengths), client)
    np.testing.assert_allclose(dist.monitor_.history, serial.monitor_.history, rtol=1e-10)
    for name in serial._fitted_attrs:
        np.testing.assert_allclose(getattr(dist, name), getattr(serial, name), rtol=1e-9,
                                   atol=1e-12)


def test_factor_analysis_equals_serial(client):
    rng = np.random.default_rng(6)
    W = rng.normal(size=(8, 2))
    X = rng.normal(size=(2000, 2)) @ W.T + rng.normal(size=(2000, 8)) * 0.5 + 3
    serial = emx.FactorAnalysis(2, tol=1e-8).fit(X)
    dist = ed.fit(emx.FactorAnalysis(2, tol=1e-8), np.array_split(X, 5), client)
    np.testing.assert_allclose(dist.loglike_, serial.loglike_, rtol=1e-10)
    np.testing.assert_allclose(dist.get_covariance(), serial.get_covariance(), rtol=1e-9)


def test_worker_killed_mid_fit_gives_the_serial_result(client):
    X = blobs(n=4000, seed=7)
    kw = dict(covariance_type="full", tol=1e-300, max_iter=10, **mixture_init(X, 3, "full"))
    serial = emx.GaussianMixture(3, **kw).fit(X)
    killed = []

    pids = client.run(os.getpid)

    def kill_one(iteration, loglik):
        if iteration == 3 and not killed:  # SIGKILL one worker process; its nanny restarts it
            victim = sorted(pids)[0]
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(victim)

    dist = ed.fit(emx.GaussianMixture(3, **kw), np.array_split(X, 6), client, callback=kill_one)
    assert killed
    np.testing.assert_allclose(dist.lower_bounds_, serial.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(dist.means_, serial.means_, rtol=1e-10)
    client.wait_for_workers(2, timeout=60)


def test_importing_emx_does_not_import_dask(tmp_path):
    code = "import sys, emx; emx.GaussianMixture(2); assert 'dask' not in sys.modules"
    # from a neutral folder: the repository root would put the source tree first on sys.path
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_unsupported_model_raises(client):
    with pytest.raises(TypeError, match="does not support"):
        ed.fit(object(), [np.zeros((3, 2))], client)


def test_threaded_cluster_equals_serial():
    X = blobs(n=1500, seed=8)
    kw = dict(covariance_type="tied", tol=1e-300, max_iter=6, **mixture_init(X, 3, "tied"))
    serial = emx.GaussianMixture(3, **kw).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                      dashboard_address=None, silence_logs=50) as cluster, \
                distributed.Client(cluster) as c:
            dist = ed.fit(emx.GaussianMixture(3, **kw), np.array_split(X, 3), c)
    np.testing.assert_allclose(dist.lower_bounds_, serial.lower_bounds_, rtol=1e-10)


def test_recognizer_equals_serial(client):
    from _synthetic_speech import _isolated, _strings

    from emx.speech import Recognizer

    X, y = _isolated(40, 20)
    U, refs = _strings(30, 21)
    U[3] = U[3][:4]  # too short for its transcript: left out, with a warning, in both fits
    utts, trans = X + U, y + refs
    params = dict(n_states=3, n_mix=2, n_iter=3, word_insertion_penalty=-5)
    with pytest.warns(UserWarning, match="Left out 1"):
        serial = Recognizer(**params).fit(utts, trans)
    parts = [(utts[i::3], trans[i::3]) for i in range(3)]
    seen = []
    with pytest.warns(UserWarning, match="Left out 1"):
        dist = ed.fit(Recognizer(**params), parts, client,
                      callback=lambda i, ll: seen.append(ll))
    h_s = [p["loglik"] for p in serial.history_]
    h_d = [p["loglik"] for p in dist.history_]
    np.testing.assert_allclose(h_d, h_s, rtol=1e-10)
    assert seen == h_d
    np.testing.assert_allclose(dist.hmm_.means_, serial.hmm_.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dist.stay_, serial.stay_, rtol=1e-8)
    assert dist.words_ == serial.words_
    X2, y2 = _isolated(20, 22)
    assert list(dist.predict(X2)) == list(serial.predict(X2)) == y2
