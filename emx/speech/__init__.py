"""Speech: MFCC front end and word recognition with GMM-HMMs."""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING

# The front end is imported now: its function ``features`` shares its name with the module
# emx.speech.features, which a later first import of that module would otherwise put in its
# place. The recogniser (scikit-learn) and the file formats are imported on first use, as in
# emx/__init__.py.
from .features import FeatureConfig, features, load_audio, mfcc

_LAZY = {
    "DEFAULT_FEATURES": "recognizer",
    "HTKHeader": "formats",
    "HTKModel": "formats",
    "MMF": "formats",
    "Recognizer": "recognizer",
    "SILENCE": "recognizer",
    "Word": "recognizer",
    "parm_kind_code": "formats",
    "parm_kind_name": "formats",
    "read_htk": "formats",
    "read_kaldi": "formats",
    "read_mmf": "formats",
    "word_error_rate": "recognizer",
    "word_errors": "recognizer",
    "write_htk": "formats",
    "write_mmf": "formats",
}
_SUBMODULES = ("adapt", "formats", "network", "recognizer")

__all__ = [
    "DEFAULT_FEATURES",
    "FeatureConfig",
    "HTKHeader",
    "HTKModel",
    "MMF",
    "Recognizer",
    "SILENCE",
    "Word",
    "features",
    "load_audio",
    "mfcc",
    "parm_kind_code",
    "parm_kind_name",
    "read_htk",
    "read_kaldi",
    "read_mmf",
    "word_error_rate",
    "word_errors",
    "write_htk",
    "write_mmf",
]


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
    from .formats import (  # noqa: F401
        MMF,
        HTKHeader,
        HTKModel,
        parm_kind_code,
        parm_kind_name,
        read_htk,
        read_kaldi,
        read_mmf,
        write_htk,
        write_mmf,
    )
    from .recognizer import (  # noqa: F401
        DEFAULT_FEATURES,
        SILENCE,
        Recognizer,
        Word,
        word_error_rate,
        word_errors,
    )
