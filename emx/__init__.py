"""emx: the EM algorithm for latent-variable models, on compiled kernels.

Models
------
GaussianHMM
    Hidden Markov model with Gaussian emissions (hmmlearn-compatible names).
"""

from ._em import ConvergenceMonitor, EMDecreaseWarning
from .hmm import GaussianHMM

__all__ = ["GaussianHMM", "ConvergenceMonitor", "EMDecreaseWarning"]
__version__ = "0.1.0"
