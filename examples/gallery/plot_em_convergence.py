"""
EM convergence: a log-likelihood that never falls
=================================================

Every EM iteration first computes the posterior of the hidden variables under the current
parameters (E-step), then re-estimates the parameters from those posteriors (M-step). The
log-likelihood of the data cannot decrease from one iteration to the next: the E-step makes a
lower bound that touches the log-likelihood at the current parameters, and the M-step climbs
that bound. emx records the objective of every iteration, so this is something you can look
at rather than take on trust.

Below, a Gaussian mixture and a Gaussian HMM are fitted from several random starts. Each
curve rises monotonically, but different starts can stop at different local maxima: that is
why ``n_init`` restarts exist.
"""

import matplotlib.pyplot as plt
import numpy as np

from emx import GaussianHMM, GaussianMixture

rng = np.random.default_rng(0)

# %%
# A Gaussian mixture on overlapping clusters
# ------------------------------------------
# Five clusters in two dimensions, two of them overlapping. ``lower_bounds_`` holds the
# average log-likelihood per sample after every iteration.

centres = np.array([[0, 0], [3, 0], [0, 3], [3.5, 3.5], [1.2, 1.0]])
X = np.concatenate([c + 0.6 * rng.standard_normal((300, 2)) for c in centres])

fig, ax1 = plt.subplots(figsize=(7, 4))
for seed in range(6):
    gmm = GaussianMixture(n_components=5, init_params="random", tol=1e-6, max_iter=300,
                          random_state=seed).fit(X)
    bounds = np.asarray(gmm.lower_bounds_)
    ax1.plot(np.arange(1, len(bounds) + 1), bounds, label=f"start {seed}")
    print(f"start {seed}: {len(bounds):3d} iterations, final {bounds[-1]:.4f}, "
          f"smallest step {np.diff(bounds).min():+.2e}")
ax1.set_xscale("log")
ax1.set_xlabel("iteration")
ax1.set_ylabel("log-likelihood per sample")
ax1.set_title("GaussianMixture, six random starts")
ax1.legend(fontsize=8)
fig.tight_layout()

# %%
# A Gaussian HMM on sampled sequences
# -----------------------------------
# ``monitor_.history`` holds the total log-likelihood of every iteration (and
# ``monitor_.objective`` the log-likelihood plus the log prior, the quantity MAP-EM never
# decreases).

fig, ax2 = plt.subplots(figsize=(7, 4))
truth = GaussianHMM(n_components=3, covariance_type="diag")
truth.startprob_ = np.array([0.6, 0.3, 0.1])
truth.transmat_ = np.array([[0.90, 0.08, 0.02], [0.05, 0.90, 0.05], [0.05, 0.15, 0.80]])
truth.means_ = np.array([[0.0, 0.0], [2.0, 1.0], [-1.0, 2.5]])
truth.covars_ = np.full((3, 2), 0.5)
Xs, _ = truth.sample(2000, random_state=1)

for seed in range(4):
    hmm = GaussianHMM(n_components=3, n_iter=200, tol=1e-4, random_state=seed).fit(Xs)
    objective = np.asarray(hmm.monitor_.objective)
    ax2.plot(np.arange(1, len(objective) + 1), objective, marker=".", label=f"start {seed}")
    assert np.all(np.diff(objective) >= -1e-8 * np.abs(objective[1:])), "EM went down"
ax2.set_xlabel("iteration")
ax2.set_ylabel("log-likelihood + log prior")
ax2.set_title("GaussianHMM, four random starts")
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# With ``n_init`` the model keeps the best of several starts by itself:

best = GaussianMixture(n_components=5, init_params="random", tol=1e-6, max_iter=300, n_init=6,
                       random_state=0).fit(X)
print(f"n_init=6 keeps the best start: {best.lower_bound_:.4f}")
