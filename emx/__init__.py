"""emx: the EM algorithm for latent-variable models, on compiled kernels.

Models
------
GaussianHMM
    Hidden Markov model with Gaussian emissions (hmmlearn-compatible names).
GMMHMM
    Hidden Markov model with Gaussian-mixture emissions (hmmlearn-compatible names).
CategoricalHMM, MultinomialHMM, PoissonHMM
    Hidden Markov models with discrete emissions (hmmlearn-compatible names).
GaussianMixture
    Gaussian mixture (scikit-learn-compatible names), with sample weights and missing data.
FactorAnalysis, MixtureOfFactorAnalyzers
    Factor analysis by EM (with missing data) and mixtures of factor analysers.
EMImputer
    Imputation of missing entries by EM (a Gaussian or Gaussian mixture on incomplete data).
"""

try:  # the compiled kernels first: a source folder without them fails here, with a remedy
    from ._core import _gauss, _hmm, _missing  # noqa: F401
except ImportError as _exc:
    import os as _os

    raise ImportError(
        "emx's compiled kernels (emx._core._gauss, _hmm, _missing) are missing: Python "
        f"imported emx from {_os.path.dirname(_os.path.abspath(__file__))}, a source folder "
        "that was not built. Build and install emx (`pip install .` in the repository, or "
        "`pip install --no-build-isolation -e .` for development), then import it from "
        "outside the repository's top folder: a REPL, notebook or `python -c` started in "
        "the top folder finds the source folder `emx/` before the installed package."
    ) from _exc

from ._em import ConvergenceMonitor, EMDecreaseWarning
from .discrete import CategoricalHMM, MultinomialHMM, PoissonHMM
from .factor import FactorAnalysis, MixtureOfFactorAnalyzers
from .hmm import GMMHMM, GaussianHMM
from .impute import EMImputer
from .mixture import GaussianMixture

__all__ = [
    "CategoricalHMM",
    "ConvergenceMonitor",
    "EMDecreaseWarning",
    "EMImputer",
    "FactorAnalysis",
    "MixtureOfFactorAnalyzers",
    "MultinomialHMM",
    "GMMHMM",
    "GaussianHMM",
    "GaussianMixture",
    "PoissonHMM",
]
__version__ = "0.1.0"
