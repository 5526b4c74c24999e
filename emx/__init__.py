"""emx: the EM algorithm for latent-variable models, on compiled kernels.

Models
------
GaussianHMM
    Hidden Markov model with Gaussian emissions (hmmlearn-compatible names).
GMMHMM
    Hidden Markov model with Gaussian-mixture emissions (hmmlearn-compatible names).
GaussianMixture
    Gaussian mixture (scikit-learn-compatible names), with sample weights.
"""

from ._em import ConvergenceMonitor, EMDecreaseWarning
from .hmm import GMMHMM, GaussianHMM
from .mixture import GaussianMixture

__all__ = ["GaussianHMM", "GMMHMM", "GaussianMixture", "ConvergenceMonitor", "EMDecreaseWarning"]
__version__ = "0.1.0"
