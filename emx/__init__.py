"""emx: the EM algorithm for latent-variable models, on compiled kernels.

Models
------
GaussianHMM
    Hidden Markov model with Gaussian emissions (hmmlearn-compatible names).
GMMHMM
    Hidden Markov model with Gaussian-mixture emissions (hmmlearn-compatible names).
GaussianMixture
    Gaussian mixture (scikit-learn-compatible names), with sample weights and missing data.
FactorAnalysis, MixtureOfFactorAnalyzers
    Factor analysis by EM (with missing data) and mixtures of factor analysers.
EMImputer
    Imputation of missing entries by EM (a Gaussian or Gaussian mixture on incomplete data).
"""

from ._em import ConvergenceMonitor, EMDecreaseWarning
from .factor import FactorAnalysis, MixtureOfFactorAnalyzers
from .hmm import GMMHMM, GaussianHMM
from .impute import EMImputer
from .mixture import GaussianMixture

__all__ = [
    "ConvergenceMonitor",
    "EMDecreaseWarning",
    "EMImputer",
    "FactorAnalysis",
    "MixtureOfFactorAnalyzers",
    "GMMHMM",
    "GaussianHMM",
    "GaussianMixture",
]
__version__ = "0.1.0"
