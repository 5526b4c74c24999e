"""Speech: MFCC front end and word recognition with GMM-HMMs."""

from .features import FeatureConfig, features, load_audio, mfcc
from .formats import (
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
from .recognizer import (
    DEFAULT_FEATURES,
    SILENCE,
    Recognizer,
    Word,
    word_error_rate,
    word_errors,
)

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
