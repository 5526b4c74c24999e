"""
HMM state decoding on sampled data
==================================

Sample a sequence from a known three-state Gaussian HMM, fit a new model to the observations
alone, and decode the hidden states with the Viterbi algorithm. A fitted HMM numbers its
states in whatever order EM found them, so the decoded states are matched to the true ones
(by their means) before they are compared.
"""

import matplotlib.pyplot as plt
import numpy as np

from emx import GaussianHMM

truth = GaussianHMM(n_components=3, covariance_type="full")
truth.startprob_ = np.array([1.0, 0.0, 0.0])
truth.transmat_ = np.array([[0.95, 0.04, 0.01], [0.03, 0.94, 0.03], [0.02, 0.06, 0.92]])
truth.means_ = np.array([[0.0, 0.0], [3.0, 1.0], [1.0, 3.5]])
truth.covars_ = np.array([[[1.0, 0.3], [0.3, 0.6]], [[0.5, -0.2], [-0.2, 0.8]], 0.7 * np.eye(2)])

# Ten sequences of 300 frames each.
lengths = [300] * 10
X, states = truth.sample(sum(lengths), random_state=3)  # one long draw, cut below
model = GaussianHMM(n_components=3, covariance_type="full", n_iter=100, n_init=3,
                    random_state=0).fit(X, lengths)
logprob, decoded = model.decode(X, lengths, algorithm="viterbi")

# Match fitted states to true ones by the nearest mean.
order = np.array([np.argmin(np.linalg.norm(truth.means_ - m, axis=1)) for m in model.means_])
decoded = order[decoded]
print(f"log P(X, best path) = {logprob:.1f}; {np.mean(decoded == states):.1%} of the frames "
      "decoded as the state that emitted them")
print("fitted transition matrix (true state order):")
inverse = np.argsort(order)
print(np.round(model.transmat_[np.ix_(inverse, inverse)], 3))

# %%
# The first 300 frames: observations, true states and decoded states.

t = np.arange(300)
fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5), sharex=True,
                               gridspec_kw=dict(height_ratios=[2, 1]))
ax1.plot(t, X[:300, 0], lw=0.8, label="feature 0")
ax1.plot(t, X[:300, 1], lw=0.8, label="feature 1")
ax1.set_ylabel("observation")
ax1.legend(loc="upper right", fontsize=8)
ax2.step(t, states[:300], where="mid", lw=3, alpha=0.4, label="true")
ax2.step(t, decoded[:300], where="mid", lw=1, color="k", label="Viterbi")
ax2.set_yticks([0, 1, 2])
ax2.set_ylabel("state")
ax2.set_xlabel("frame")
ax2.legend(loc="upper right", fontsize=8)
fig.tight_layout()

# %%
# Posterior state probabilities (``predict_proba``) show where the decoder was unsure.

posteriors = model.predict_proba(X[:300])[:, inverse]
fig, ax = plt.subplots(figsize=(10, 2.5))
ax.stackplot(t, posteriors.T, labels=[f"state {k}" for k in range(3)], alpha=0.8)
ax.set_xlim(0, 299)
ax.set_ylabel("posterior")
ax.set_xlabel("frame")
ax.legend(loc="upper right", fontsize=8, ncol=3)
fig.tight_layout()
plt.show()
