"""Speech: MFCC front end and word recognition with GMM-HMMs."""

from .features import FeatureConfig, features, load_audio, mfcc
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
    "Recognizer",
    "SILENCE",
    "Word",
    "features",
    "load_audio",
    "mfcc",
    "word_error_rate",
    "word_errors",
]
