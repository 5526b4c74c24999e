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

import importlib as _importlib
import importlib.util as _importlib_util
import os as _os
from typing import TYPE_CHECKING as _TYPE_CHECKING

# The compiled kernels first: a source folder without them fails here, with a remedy. They are
# found, not loaded (loading them imports scipy.linalg); the models load them when imported.
if any(_importlib_util.find_spec(f"{__name__}._core.{_k}") is None
       for _k in ("_gauss", "_hmm", "_missing")):
    raise ImportError(
        "emx's compiled kernels (emx._core._gauss, _hmm, _missing) are missing: Python "
        f"imported emx from {_os.path.dirname(_os.path.abspath(__file__))}, a source folder "
        "that was not built. Build and install emx (`pip install .` in the repository, or "
        "`pip install --no-build-isolation -e .` for development), then import it from "
        "outside the repository's top folder: a REPL, notebook or `python -c` started in "
        "the top folder finds the source folder `emx/` before the installed package."
    )

# The models are imported on first use (``emx.GaussianHMM``, ``from emx import GaussianHMM``):
# they need scikit-learn and scipy, which ``import emx`` alone, ``emx --help`` or
# ``import emx.speech.formats`` do not. Submodules (emx.speech, emx.distributed, ...) likewise.
_LAZY = {
    "BayesianGaussianMixture": "bayesian_mixture",
    "CategoricalHMM": "discrete",
    "ConvergenceMonitor": "_em",
    "EMDecreaseWarning": "_em",
    "EMImputer": "impute",
    "FactorAnalysis": "factor",
    "GMMHMM": "hmm",
    "GaussianHMM": "hmm",
    "GaussianMixture": "mixture",
    "MixtureOfFactorAnalyzers": "factor",
    "MultinomialHMM": "discrete",
    "PoissonHMM": "discrete",
    "VariationalCategoricalHMM": "variational",
    "VariationalGaussianHMM": "variational",
}
_SUBMODULES = ("bayesian_mixture", "cli", "datasets", "discrete", "distributed", "emissions",
               "factor", "gaussian", "hmm", "impute", "mixture", "speech", "variational")

__all__ = [
    "BayesianGaussianMixture",
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
    "VariationalCategoricalHMM",
    "VariationalGaussianHMM",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


if _TYPE_CHECKING:  # for type checkers and IDEs: the names __getattr__ provides
    from ._em import ConvergenceMonitor, EMDecreaseWarning  # noqa: F401
    from .bayesian_mixture import BayesianGaussianMixture  # noqa: F401
    from .discrete import CategoricalHMM, MultinomialHMM, PoissonHMM  # noqa: F401
    from .factor import FactorAnalysis, MixtureOfFactorAnalyzers  # noqa: F401
    from .hmm import GMMHMM, GaussianHMM  # noqa: F401
    from .impute import EMImputer  # noqa: F401
    from .mixture import GaussianMixture  # noqa: F401
    from .variational import VariationalCategoricalHMM, VariationalGaussianHMM  # noqa: F401
