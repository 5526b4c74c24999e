"""Distributed EM on a LocalCluster equals the serial fit, also when a worker dies."""

import dataclasses
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
import emx._em  # noqa: E402
import emx.distributed as ed  # noqa: E402
from emx import gaussian as G  # noqa: E402
from emx._stats import AdditiveStats  # noqa: E402

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
    np.testing.assert_allclose(dist.pool_.means_, serial.pool_.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dist.stay_, serial.stay_, rtol=1e-8)
    assert dist.words_ == serial.words_
    X2, y2 = _isolated(20, 22)
    assert list(dist.predict(X2)) == list(serial.predict(X2)) == y2


# ------------------------------------------------------------ default initialisation = serial
# Rows stored in order (cluster after cluster, speaker after speaker), one cluster or speaker
# per partition: an initialisation that looks at one partition sees one cluster.
def ordered_clusters(K=4, n_per=250, D=3, seed=10, spread=2.0):
    """Clusters stored one after another (overlapping ones by default: EM then runs every
    iteration the tests ask for, rather than stopping where round-off decides)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, D)) * spread
    return np.concatenate([c + rng.normal(size=(n_per, D)) * (0.5 + 0.2 * k)
                           for k, c in enumerate(centres)]), centres


def assert_same_mixture(dist, serial):
    assert dist.n_iter_ == serial.n_iter_
    np.testing.assert_allclose(dist.lower_bounds_, serial.lower_bounds_, rtol=1e-10)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(dist, name), getattr(serial, name), rtol=1e-10,
                                   atol=1e-12)


@pytest.mark.parametrize("covariance_type, init_params", [
    ("full", "kmeans"), ("diag", "k-means++"), ("tied", "random_from_data"),
    ("spherical", "random"), ("diag", "kmeans"),
])
def test_mixture_default_init_on_ordered_data_equals_serial(client, covariance_type,
                                                           init_params):
    X, _ = ordered_clusters()
    kw = dict(covariance_type=covariance_type, init_params=init_params, random_state=0,
              tol=1e-300, max_iter=15)
    serial = emx.GaussianMixture(4, **kw).fit(X)
    parts = np.array_split(X, 4)
    if covariance_type == "tied":
        parts.insert(2, X[:0])  # an empty partition is skipped
    dist = ed.fit(emx.GaussianMixture(4, **kw), parts, client)
    assert_same_mixture(dist, serial)


def test_mixture_default_init_dask_array_and_initial_parameters_equal_serial(client):
    X, _ = ordered_clusters(K=3, seed=11)
    kw = dict(covariance_type="full", random_state=1, tol=1e-300, max_iter=10)
    serial = emx.GaussianMixture(3, **kw).fit(X)
    dist = ed.fit(emx.GaussianMixture(3, **kw), da.from_array(X, chunks=(250, 3)), client)
    assert_same_mixture(dist, serial)
    # max_iter=0: the initial parameters themselves
    serial0 = emx.GaussianMixture(3, max_iter=0, random_state=1).fit(X)
    dist0 = ed.fit(emx.GaussianMixture(3, max_iter=0, random_state=1), np.array_split(X, 3),
                   client)
    assert dist0.n_iter_ == 0 and dist0.lower_bounds_ == []
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(dist0, name), getattr(serial0, name), rtol=1e-12)
    # a RandomState instance: the same draws from it as the serial fit
    kw2 = dict(kw, init_params="random")
    serial = emx.GaussianMixture(3, **dict(kw2, random_state=np.random.RandomState(4))).fit(X)
    dist = ed.fit(emx.GaussianMixture(3, **dict(kw2, random_state=np.random.RandomState(4))),
                  np.array_split(X, 3), client)
    assert_same_mixture(dist, serial)
    # some initial parameters given, the others from the data: as serial
    kw["means_init"] = X[[0, 300, 600]]
    serial = emx.GaussianMixture(3, **kw).fit(X)
    dist = ed.fit(emx.GaussianMixture(3, **kw), np.array_split(X, 3), client)
    assert_same_mixture(dist, serial)


def test_missing_data_mixture_and_imputer_default_init_on_ordered_data_equal_serial(client):
    X, _ = ordered_clusters(K=3, seed=12)
    X[np.random.default_rng(13).random(X.shape) < 0.15] = np.nan
    X[5] = np.nan  # a row with nothing observed
    X[:250, 0] = np.nan  # a column with no observed value in the first partition
    X = np.concatenate([X[:250], np.full((4, 3), np.nan), X[250:]])
    kw = dict(covariance_type="diag", random_state=2, tol=1e-300, max_iter=10)
    serial = emx.GaussianMixture(3, **kw).fit(X)
    parts = [X[:250], X[250:254], X[254:504], X[504:]]  # the second: nothing observed
    assert_same_mixture(ed.fit(emx.GaussianMixture(3, **kw), parts, client), serial)
    # the imputer, with missing entries coded -1 (its fit codes them as NaN first)
    Xc = np.where(np.isnan(X), -1.0, X)
    ikw = dict(n_components=2, missing_values=-1.0, random_state=3, tol=1e-8, max_iter=20)
    imp_serial = emx.EMImputer(**ikw).fit(Xc)
    imp_dist = ed.fit(emx.EMImputer(**ikw), [Xc[:250], Xc[250:254], Xc[254:]], client)
    np.testing.assert_allclose(imp_dist.loglike_, imp_serial.loglike_, rtol=1e-10)
    np.testing.assert_allclose(imp_dist.means_, imp_serial.means_, rtol=1e-10)
    np.testing.assert_allclose(imp_dist.transform(Xc), imp_serial.transform(Xc), rtol=1e-10)


def speakers_in_order(n_speakers=4, per_speaker=6, seed=14):
    """Sequences of a 3-state left-to-right source, speaker after speaker (each speaker
    shifts all the means)."""
    rng = np.random.default_rng(seed)
    states = np.array([[0.0, 0, 0], [3, 0, 0], [0, 3, 0]])
    seqs = []
    for _ in range(n_speakers):
        offset = rng.normal(size=3) * 2
        for _i in range(per_speaker):
            seg = [m + offset + rng.normal(size=(rng.integers(8, 15), 3)) for m in states]
            seqs.append(np.concatenate(seg))
    return seqs


@pytest.mark.parametrize("cls, kw", [
    ("GaussianHMM", dict(covariance_type="diag")),
    ("GaussianHMM", dict(covariance_type="full")),
    ("GMMHMM", dict(n_mix=2, covariance_type="diag")),
])
def test_hmms_default_init_on_ordered_data_equal_serial(client, cls, kw):
    seqs = speakers_in_order()
    lengths = [len(s) for s in seqs]
    X = np.concatenate(seqs)

    def make():  # GMMHMM: a RandomState instance, drawn from as the serial fit draws
        seed = np.random.RandomState(5) if cls == "GMMHMM" else 5
        return getattr(emx, cls)(3, random_state=seed, n_iter=8, tol=-1e300, **kw)

    serial = make().fit(X, lengths)
    groups = np.array_split(np.arange(len(seqs)), 4)
    parts = [[seqs[i] for i in g] for g in groups[:2]] + [
        (np.concatenate([seqs[i] for i in g]), [lengths[i] for i in g]) for g in groups[2:]]
    dist = ed.fit(make(), parts, client)
    assert dist.monitor_.iter == serial.monitor_.iter == 8
    np.testing.assert_allclose(dist.monitor_.history, serial.monitor_.history, rtol=1e-10)
    for name in serial._fitted_attrs:
        np.testing.assert_allclose(getattr(dist, name), getattr(serial, name), rtol=1e-10,
                                   atol=1e-12)
    if cls == "GMMHMM":
        np.testing.assert_allclose(dist.var_floor_, serial.var_floor_, rtol=1e-12)


def test_factor_analysis_on_ordered_data_equals_serial(client):
    rng = np.random.default_rng(15)
    W = rng.normal(size=(6, 2))
    X = np.concatenate([rng.normal(size=(300, 2)) @ W.T + rng.normal(size=(300, 6)) * 0.3 + m
                        for m in (0.0, 2.0, -1.0)])  # three groups stored one after another
    serial = emx.FactorAnalysis(2, tol=1e-10).fit(X)
    dist = ed.fit(emx.FactorAnalysis(2, tol=1e-10), np.array_split(X, 3), client)
    np.testing.assert_allclose(dist.loglike_, serial.loglike_, rtol=1e-10)
    np.testing.assert_allclose(dist.components_, serial.components_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dist.noise_variance_, serial.noise_variance_, rtol=1e-8)


def test_recognizer_on_ordered_data_equals_serial(client):
    from _synthetic_speech import _isolated

    from emx.speech import Recognizer

    X, y = _isolated(36, 23)
    order = np.argsort(y, kind="stable")  # word after word
    utts, words = [X[i] for i in order], [y[i] for i in order]
    params = dict(n_states=3, n_mix=2, n_iter=3)
    serial = Recognizer(**params).fit(utts, words)
    parts = [(utts[a:b], words[a:b]) for a, b in ((0, 12), (12, 24), (24, 36))]
    dist = ed.fit(Recognizer(**params), parts, client)
    np.testing.assert_allclose([p["loglik"] for p in dist.history_],
                               [p["loglik"] for p in serial.history_], rtol=1e-10)
    np.testing.assert_allclose(dist.pool_.means_, serial.pool_.means_, rtol=1e-8, atol=1e-10)


def test_recognizer_augmented_audio_equals_serial_and_vtln_is_refused(client):
    from test_speakers import SMALL, corpus

    from emx.speech import Recognizer

    X, y = corpus(12, 1.0, 7)
    params = dict(SMALL, n_iter=2, augment=(0.9, 1.1))
    serial = Recognizer(**params).fit(X, y)
    dist = ed.fit(Recognizer(**params), [(X[:6], y[:6]), (X[6:], y[6:])], client)
    assert serial.history_[0]["loglik"] < 0
    np.testing.assert_allclose([p["loglik"] for p in dist.history_],
                               [p["loglik"] for p in serial.history_], rtol=1e-10)
    # the copies count: three times the frames of the recordings alone
    plain = Recognizer(**dict(params, augment=None)).fit(X, y)
    assert dist.history_[0]["loglik"] / plain.history_[0]["loglik"] > 2.5
    for option in ("vtln", "sat"):
        with pytest.raises(ValueError, match="VTLN or SAT"):
            ed.fit(Recognizer(**dict(SMALL, **{option: True})), [(X[:6], y[:6])], client)


# ------------------------------------------------------------ above max_init_rows: a sample
def test_init_sample_is_uniform_over_all_partitions():
    counts, seeds = ed._sample_counts([100, 300, 0, 600], 500, 0)
    assert counts.sum() == 500 and counts[2] == 0 and len(set(seeds.tolist())) == 4
    draws = np.array([ed._sample_counts([100, 300, 600], 200, s)[0] for s in range(300)])
    np.testing.assert_allclose(draws.mean(axis=0), [20, 60, 120], rtol=0.05)
    # beyond numpy's multivariate hypergeometric range (10**9 rows in all)
    big = ed._sample_counts([6 * 10**8, 6 * 10**8, 5], 1000, 1)[0]
    assert big.sum() == 1000 and abs(big[0] - 500) < 100 and big[2] <= 1
    np.testing.assert_array_equal(ed._sample_counts([100, 300], 50, 7)[0],
                                  ed._sample_counts([100, 300], 50, 7)[0])


def test_above_max_init_rows_initialises_from_a_sample_of_all_partitions(client):
    X, centres = ordered_clusters(K=4, seed=16, spread=6.0)
    parts = np.array_split(X, 4)  # one cluster per partition
    kw = dict(covariance_type="full", random_state=0, tol=1e-6, max_iter=100)
    fits = [ed.fit(emx.GaussianMixture(4, **kw), parts, client, max_init_rows=120)
            for _ in range(2)]
    # every cluster found (an initialisation from the first partition merges three of them)
    dist = np.linalg.norm(fits[0].means_[:, None] - centres[None], axis=2)
    assert np.all(dist.min(axis=0) < 0.5)
    np.testing.assert_array_equal(fits[0].means_, fits[1].means_)  # seeded
    serial = emx.GaussianMixture(4, **kw).fit(X)
    np.testing.assert_allclose(fits[0].lower_bound_, serial.lower_bound_, rtol=1e-6)
    seqs = speakers_in_order(n_speakers=2, per_speaker=3)
    hmm = ed.fit(emx.GMMHMM(3, n_mix=2, random_state=0, n_iter=3),
                 [seqs[:3], seqs[3:]], client, max_init_rows=40)
    assert np.all(np.isfinite(hmm.monitor_.history))
    all_var = np.concatenate(seqs).var(axis=0)
    np.testing.assert_allclose(hmm.var_floor_, np.maximum(hmm.min_covar,
                                                          hmm.var_floor * all_var))
    with pytest.raises(ValueError, match="max_init_rows"):
        ed.fit(emx.GaussianMixture(2), parts, client, max_init_rows=0)


# ------------------------------------------------------------ partitions that do not fit
def test_partition_with_wrong_number_of_features_is_named(client):
    good, bad = np.zeros((6, 3)), np.ones((6, 4))
    for model in (emx.GaussianMixture(2), emx.EMImputer(), emx.FactorAnalysis(1)):
        with pytest.raises(ValueError, match="Partition 2 has 4 features, but partition 0 "
                                             "has 3"):
            ed.fit(model, [good, good, bad], client)
    with pytest.raises(ValueError, match=r"Partition 1: the partition has shape \(6,\)"):
        ed.fit(emx.GaussianMixture(2), [good, np.zeros(6)], client)
    with pytest.raises(ValueError, match="Partition 1 has 4 features"):
        ed.fit(emx.GaussianHMM(2), [(good, [6]), (bad, [3, 3])], client)
    with pytest.raises(ValueError, match="Partition 1: sequence 0 has 3 features but "
                                         "sequence 1 has 4"):
        ed.fit(emx.GMMHMM(2), [[good], [good, bad]], client)
    with pytest.raises(ValueError, match=r"Partition 0: is an array: give an HMM partition as "
                                         r"an \(X, lengths\) pair"):
        ed.fit(emx.GaussianHMM(2), [good], client)
    with pytest.raises(ValueError, match="Every partition is empty"):
        ed.fit(emx.GaussianMixture(2), [good[:0]], client)
    # errors found on a worker name the partition (its index in the caller's list)
    with pytest.raises(ValueError, match="Partition 2: lengths sum to 5 but X has 6"):
        ed.fit(emx.GaussianHMM(2), [(good, [6]), [], (good, [2, 3])], client)
    inf = good.copy()
    inf[1, 1] = np.inf
    with pytest.raises(ValueError, match="Partition 3: .*infinity"):
        ed.fit(emx.GaussianMixture(2), [good, good[:0], good, inf], client, max_init_rows=5)


def test_recognizer_partition_with_wrong_number_of_features_is_named(client):
    from _synthetic_speech import _isolated

    from emx.speech import Recognizer

    X, y = _isolated(6, 24)
    wide = [np.hstack([x, x[:, :1]]) for x in X[3:]]
    with pytest.raises(ValueError, match="Partition 1 has utterances with 5 features, but "
                                         "partition 0 has 4"):
        ed.fit(Recognizer(n_states=3, n_mix=1, n_iter=1), [(X[:3], y[:3]), (wide, y[3:])],
               client)


# ------------------------------------------------------------ any model through the protocol
@pytest.mark.parametrize("cls", ["CategoricalHMM", "PoissonHMM"])
def test_discrete_hmms_equal_serial(client, cls):
    """The discrete HMMs get distributed fitting from BaseHMM's protocol methods alone
    (default initialisation included: it runs on all frames gathered in order)."""
    rng = np.random.default_rng(21)
    lengths = [40, 25, 60, 30, 45, 50]
    if cls == "CategoricalHMM":
        X = rng.integers(0, 5, size=(sum(lengths), 1))
    else:
        X = rng.poisson([1.0, 4.0, 9.0], size=(sum(lengths), 3))
    kw = dict(n_iter=8, tol=1e-300, random_state=3)
    serial = getattr(emx, cls)(3, **kw).fit(X, lengths)
    seqs = np.split(X, np.cumsum(lengths)[:-1])
    dist = ed.fit(getattr(emx, cls)(3, **kw), [seqs[:2], seqs[2:3], seqs[3:]], client)
    np.testing.assert_allclose(dist.monitor_.history, serial.monitor_.history, rtol=1e-10)
    for name in serial._fitted_attrs:
        np.testing.assert_allclose(getattr(dist, name), getattr(serial, name), rtol=1e-9,
                                   atol=1e-12)


@dataclasses.dataclass
class _MeanStats(AdditiveStats):
    loglik: float
    n: float
    total: float


class _Mean(emx._em.EMMixin):
    """A model emx does not ship, written only against the EM protocol: the mean of
    1-D data by a (trivial) EM with a known answer."""

    def __init__(self, n_iter=3):
        self.n_iter = n_iter

    def em_describe(self, part):
        return np.shape(part)

    def em_prepare(self, part, *, reset=False):
        return np.asarray(part, dtype=np.float64)

    def em_rows(self, data):
        return data

    def em_join(self, parts):
        return np.concatenate(parts)

    def em_init(self, source, random_state):
        data, complete = source.rows()
        self.mean_ = float(data[0, 0])  # start from the first row of all the data
        self.first_seen_, self.complete_ = data.shape, complete

    def em_estep(self, data, runner):
        d = data[:, 0] - self.mean_
        return _MeanStats(float(-0.5 * d @ d), float(len(data)), float(data[:, 0].sum()))

    def em_mstep(self, stats):
        self.mean_ = stats.total / stats.n

    def em_monitor(self):
        return emx._em.ConvergenceMonitor(1e-300, self.n_iter)

    def em_finish(self, monitor):
        self.history_ = list(monitor.history)


def test_a_new_model_is_fitted_through_the_protocol_alone():
    X = np.random.default_rng(0).normal(3.0, 1.0, size=(300, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                      dashboard_address=None, silence_logs=50) as cluster, \
                distributed.Client(cluster) as c:
            model = ed.fit(_Mean(), [X[:100], X[100:120], X[120:]], c)
            sampled = ed.fit(_Mean(), [X[:100], X[100:]], c, max_init_rows=50)
    assert model.first_seen_ == (300, 1) and model.complete_  # all rows, in order
    assert model.mean_ == pytest.approx(X.mean(), rel=1e-12)
    assert len(model.history_) == 3 and model.history_[1] >= model.history_[0]
    assert sampled.first_seen_ == (50, 1) and not sampled.complete_
