"""
Distributed EM on a local Dask cluster
======================================

:func:`emx.distributed.fit` runs the E-step on the partitions where they live and adds the
statistics up on the driver; only parameters and statistics travel. With the default
initialisation (the serial one on all rows, for data up to ``max_init_rows`` rows) the
result equals ``model.fit`` on the concatenated partitions, up to round-off.

This example starts a small in-process cluster (``processes=False``: threads, no new Python
processes), fits a Gaussian mixture on a dask array of four blocks and a Gaussian HMM on
lists of sequences in two partitions, and compares both with the serial fits. It needs the
``dask`` extra (``pip install "emx-learn[dask]"``).
"""

import matplotlib.pyplot as plt
import numpy as np

try:
    import dask.array as da
    from dask.distributed import Client, LocalCluster
except ImportError:  # pragma: no cover - the dask extra is not installed
    da = None
    print("dask[distributed] is not installed: this example was skipped "
          "(pip install 'emx-learn[dask]').")

import emx
import emx.distributed

rng = np.random.default_rng(0)
X = np.concatenate([c + rng.standard_normal((5000, 3)) for c in ([0, 0, 0], [4, 0, 1], [0, 4, 2])])
rng.shuffle(X)

if da is not None:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:

        # A Gaussian mixture on a dask array (4 blocks of rows).
        X_dask = da.from_array(X, chunks=(len(X) // 4, 3))
        curve = []
        dist = emx.distributed.fit(
            emx.GaussianMixture(3, covariance_type="full", tol=1e-6, random_state=0),
            X_dask, client, callback=lambda it, loglik: curve.append(loglik))
        serial = emx.GaussianMixture(3, covariance_type="full", tol=1e-6,
                                     random_state=0).fit(X)
        print(f"GaussianMixture: {dist.n_iter_} iterations on the cluster, "
              f"{serial.n_iter_} serially; largest difference of the means "
              f"{np.abs(dist.means_ - serial.means_).max():.1e}")


        # A Gaussian HMM on two partitions of whole sequences.
        truth = emx.GaussianHMM(2, covariance_type="diag")
        truth.startprob_ = np.array([0.5, 0.5])
        truth.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
        truth.means_ = np.array([[0.0], [3.0]])
        truth.covars_ = np.array([[1.0], [0.5]])
        seqs = [truth.sample(200, random_state=s)[0] for s in range(20)]
        hmm_dist = emx.distributed.fit(emx.GaussianHMM(2, n_iter=50, random_state=0),
                                       [seqs[:10], seqs[10:]], client)
        hmm_serial = emx.GaussianHMM(2, n_iter=50, random_state=0).fit(
            np.concatenate(seqs), [200] * 20)
        print("GaussianHMM: largest difference of the transition matrices "
              f"{np.abs(hmm_dist.transmat_ - hmm_serial.transmat_).max():.1e}")


    # The cluster's log-likelihood per E-step follows the serial fit's.
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(1, len(serial.lower_bounds_) + 1), serial.lower_bounds_, lw=6,
            alpha=0.4, label="serial GaussianMixture.fit (lower_bounds_)")
    ax.plot(np.arange(1, len(curve) + 1), curve, "k.", ms=10,
            label="emx.distributed.fit (callback after each E-step)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("log-likelihood per row")
    ax.legend()
    fig.tight_layout()
    plt.show()
