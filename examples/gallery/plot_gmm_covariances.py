"""
Gaussian mixtures: the four covariance types
============================================

A Gaussian mixture's covariance type sets how many parameters each component has:

* ``'full'``: each component has its own covariance matrix (any ellipse);
* ``'tied'``: all components share one covariance matrix (same ellipse, moved);
* ``'diag'``: each component has its own variances, no correlations (axis-aligned ellipses);
* ``'spherical'``: one variance per component (circles).

The same data, four fits, with the ellipses at one and two standard deviations. The
Bayesian information criterion (``bic``, lower is better) weighs the fit against the number
of parameters.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

from emx import GaussianMixture

rng = np.random.default_rng(1)
X = np.concatenate([
    rng.multivariate_normal([0, 0], [[2.0, 1.5], [1.5, 1.6]], 400),
    rng.multivariate_normal([5, 1], [[0.6, -0.4], [-0.4, 0.9]], 300),
    rng.multivariate_normal([2, 5], [[1.5, 0.0], [0.0, 0.2]], 300),
])


def covariance_matrices(gmm):
    """The (K, 2, 2) covariance matrices of a fitted mixture, whatever its type."""
    K, cov = gmm.n_components, gmm.covariances_
    if gmm.covariance_type == "full":
        return cov
    if gmm.covariance_type == "tied":
        return np.broadcast_to(cov, (K, 2, 2))
    if gmm.covariance_type == "diag":
        return np.array([np.diag(c) for c in cov])
    return np.array([c * np.eye(2) for c in cov])  # spherical


fig, axes = plt.subplots(2, 2, figsize=(9, 8), sharex=True, sharey=True)
for ax, cov_type in zip(axes.ravel(), ["full", "tied", "diag", "spherical"], strict=True):
    gmm = GaussianMixture(n_components=3, covariance_type=cov_type, random_state=0).fit(X)
    labels = gmm.predict(X)
    ax.scatter(X[:, 0], X[:, 1], c=[f"C{k}" for k in labels], s=4, alpha=0.4)
    for k, (mean, cov) in enumerate(zip(gmm.means_, covariance_matrices(gmm), strict=True)):
        values, vectors = np.linalg.eigh(cov)
        angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
        for n_std in (1, 2):
            width, height = 2 * n_std * np.sqrt(values[::-1])
            ax.add_patch(Ellipse(mean, width, height, angle=angle, fill=False,
                                 color=f"C{k}", lw=2 if n_std == 1 else 1))
    ax.set_title(f"{cov_type}: BIC {gmm.bic(X):.0f}, {gmm.n_iter_} iterations")
    print(f"{cov_type:>9}: log-likelihood per sample {gmm.score(X):.4f}, BIC {gmm.bic(X):.1f}")
fig.tight_layout()
plt.show()
