"""Fit a Gaussian HMM to sequences sampled from a known model and decode them.

Run:  python examples/gaussian_hmm.py
"""

import time

import numpy as np

from emx import GaussianHMM

# A 3-state left-to-right-ish model in 2-D, used to generate 50 training sequences.
truth = GaussianHMM(n_components=3, covariance_type="full", random_state=0)
truth.startprob_ = np.array([0.8, 0.2, 0.0])
truth.transmat_ = np.array([[0.90, 0.10, 0.00], [0.00, 0.90, 0.10], [0.05, 0.00, 0.95]])
truth.means_ = np.array([[0.0, 0.0], [4.0, 1.0], [0.0, 5.0]])
truth.covars_ = np.array([np.eye(2), [[1.0, 0.6], [0.6, 1.0]], 0.5 * np.eye(2)])

rng = np.random.default_rng(1)
sizes = rng.integers(100, 400, 50)
sequences = [truth.sample(int(n), random_state=i)[0] for i, n in enumerate(sizes)]
X, lengths = np.concatenate(sequences), [len(s) for s in sequences]

model = GaussianHMM(
    n_components=3, covariance_type="full", n_iter=200, tol=1e-4, n_init=3, random_state=0
)
start = time.perf_counter()
model.fit(X, lengths)
elapsed = time.perf_counter() - start

print(f"{len(lengths)} sequences, {len(X)} frames: fitted in {elapsed:.2f} s, "
      f"{model.monitor_.iter} iterations, converged={model.monitor_.converged}")
print("log-likelihood per iteration (first 5):", np.round(model.monitor_.history[:5], 2))
print("fitted means (order of the states is arbitrary):\n", np.round(model.means_, 2))
print("fitted transition matrix:\n", np.round(model.transmat_, 3))
print(f"log-likelihood: fitted {model.score(X, lengths):.1f}, "
      f"true model {truth.score(X, lengths):.1f}")
logprob, states = model.decode(sequences[0])
print("Viterbi path of the first sequence (first 40 frames):", "".join(map(str, states[:40])))
