"""MFCC features for speech: audio loading, MFCCs with deltas, per-utterance normalisation.

The cepstra come from ``python_speech_features`` (``mfcc`` and ``delta``); this module adds
a serialisable configuration, sample-rate handling (resampling, an FFT size chosen from the
window length), input checks with messages that name the file, and cepstral mean/variance
normalisation.

Examples
--------
>>> from emx.speech.features import FeatureConfig, features
>>> X = features("0_george_0.wav")                       # doctest: +SKIP
>>> X.shape                                              # doctest: +SKIP
(43, 39)
>>> X = features((signal, 8000), FeatureConfig(deltas=1))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any, Union

import numpy as np
import python_speech_features as psf
import soundfile as sf
from python_speech_features.sigproc import round_half_up
from scipy.signal import resample_poly

__all__ = ["FeatureConfig", "features", "load_audio", "mfcc"]

PathLike = Union[str, "os.PathLike[str]"]

_WINDOWS = ("hamming", "rectangular")

#: Bounds of the front end's settings and of the audio it analyses (see FeatureConfig).
MIN_SAMPLERATE, MAX_SAMPLERATE = 1_000, 384_000
MAX_SECONDS = 1.0  # longest window and step
MAX_OVERLAP = 32  # winlen <= MAX_OVERLAP * winstep
MAX_NFFT = 2**16
MAX_NFILT = 256
MAX_DELTA_WIDTH = 10
MAX_CEPLIFTER = 1000
#: Most channels an audio file may have (they are averaged to mono).
MAX_CHANNELS = 8


def _rectangular(n: int) -> np.ndarray:
    return np.ones(n)


@dataclass
class FeatureConfig:
    """Settings of the MFCC front end.

    Parameters
    ----------
    samplerate : int or None
        Sample rate (Hz) the audio is resampled to before analysis; None keeps the rate of
        each file (or signal).
    winlen : float
        Analysis window length in seconds.
    winstep : float
        Step between successive windows in seconds.
    numcep : int
        Number of cepstral coefficients kept per frame.
    nfilt : int
        Number of mel filters.
    nfft : int or None
        FFT size. None uses the smallest power of two that holds one window (200 samples at
        8 kHz -> 256, 400 at 16 kHz -> 512, 1103 at 44.1 kHz -> 2048), so any sample rate
        works.
    lowfreq : float
        Lowest band edge of the mel filters (Hz).
    highfreq : float or None
        Highest band edge of the mel filters (Hz); None is the Nyquist frequency. Fixing it
        (e.g. to 4000) makes features comparable across sample rates.
    preemph : float
        Pre-emphasis coefficient (0 disables it).
    ceplifter : int
        Cepstral lifter parameter (0 disables liftering).
    append_energy : bool
        Replace the zeroth cepstral coefficient by the log frame energy.
    window : {'hamming', 'rectangular'}
        Analysis window.
    deltas : {0, 1, 2}
        Number of orders of time derivatives appended to the static cepstra.
    delta_width : int
        Half-width N of the regression window of the deltas (frames t-N..t+N).
    cmn : bool
        Cepstral mean normalisation: subtract each column's mean over the utterance.
    cvn : bool
        Cepstral variance normalisation: divide each column by its standard deviation over the
        utterance (columns with zero variance are left unscaled).

    Notes
    -----
    Every setting is checked against bounds generous for speech but small enough that no
    configuration (say, one read from a hostile model file) can make the analysis take
    unbounded memory or time; a value outside them is a ValueError naming the field:

    ==================  ====================================================================
    ``samplerate``      1,000 to 384,000 Hz (the same bounds apply to the rate of any audio
                        analysed: files, ``(signal, samplerate)`` tuples, :func:`mfcc`)
    ``winlen``          above 0, at most 1 s; at most ``MAX_NFFT`` samples at the analysis
                        rate (checked when audio is analysed)
    ``winstep``         above 0, at most 1 s, and ``winlen <= 32 * winstep`` (a sample is in
                        at most 32 windows)
    ``numcep``          1 to ``nfilt``
    ``nfilt``           1 to 256
    ``nfft``            None, or 1 to 65,536 (``2**16``)
    ``lowfreq``         0 to 192,000 Hz (below ``highfreq`` and the Nyquist frequency)
    ``highfreq``        None, or above ``lowfreq`` and at most 192,000 Hz
    ``preemph``         0 to 1
    ``ceplifter``       0 to 1,000
    ``delta_width``     1 to 10
    ==================  ====================================================================
    """

    samplerate: int | None = None
    winlen: float = 0.025
    winstep: float = 0.01
    numcep: int = 13
    nfilt: int = 26
    nfft: int | None = None
    lowfreq: float = 0.0
    highfreq: float | None = None
    preemph: float = 0.97
    ceplifter: int = 22
    append_energy: bool = True
    window: str = "hamming"
    deltas: int = 2
    delta_width: int = 2
    cmn: bool = True
    cvn: bool = False

    def __post_init__(self) -> None:
        if self.samplerate is not None:
            _check_rate(self.samplerate, "samplerate")
        for name in ("winlen", "winstep"):
            value = getattr(self, name)
            if not _is_real(value) or not 0 < value <= MAX_SECONDS:
                raise ValueError(f"{name} must be a positive number of seconds, at most "
                                 f"{MAX_SECONDS:g}, got {value!r}")
        if self.winlen > MAX_OVERLAP * self.winstep:
            raise ValueError(
                f"winlen ({self.winlen} s) must be at most {MAX_OVERLAP} times winstep "
                f"({self.winstep} s): every sample would be analysed in more than "
                f"{MAX_OVERLAP} windows"
            )
        for name, high in (("numcep", MAX_NFILT), ("nfilt", MAX_NFILT),
                           ("delta_width", MAX_DELTA_WIDTH)):
            value = getattr(self, name)
            if not _is_int(value) or not 1 <= value <= high:
                raise ValueError(f"{name} must be an integer from 1 to {high}, got {value!r}")
        if self.numcep > self.nfilt:
            raise ValueError(
                f"numcep ({self.numcep}) cannot exceed the number of filters nfilt ({self.nfilt})"
            )
        if self.nfft is not None and (not _is_int(self.nfft) or not 1 <= self.nfft <= MAX_NFFT):
            raise ValueError(f"nfft must be None or an integer from 1 to {MAX_NFFT} (2**16), "
                             f"got {self.nfft!r}")
        if not _is_real(self.lowfreq) or not 0 <= self.lowfreq <= MAX_SAMPLERATE / 2:
            raise ValueError(f"lowfreq must be a number from 0 to {MAX_SAMPLERATE // 2} Hz, "
                             f"got {self.lowfreq!r}")
        if self.highfreq is not None and (
            not _is_real(self.highfreq) or not self.lowfreq < self.highfreq <= MAX_SAMPLERATE / 2
        ):
            raise ValueError(
                f"highfreq must be None or a number above lowfreq ({self.lowfreq}) and at most "
                f"{MAX_SAMPLERATE // 2} Hz, got {self.highfreq!r}"
            )
        if not _is_real(self.preemph) or not 0 <= self.preemph <= 1:
            raise ValueError(f"preemph must be a number from 0 to 1, got {self.preemph!r}")
        if not _is_int(self.ceplifter) or not 0 <= self.ceplifter <= MAX_CEPLIFTER:
            raise ValueError(f"ceplifter must be an integer from 0 to {MAX_CEPLIFTER}, got "
                             f"{self.ceplifter!r}")
        if self.window not in _WINDOWS:
            raise ValueError(f"window must be one of {_WINDOWS}, got {self.window!r}")
        if self.deltas not in (0, 1, 2) or not _is_int(self.deltas):
            raise ValueError(f"deltas must be 0, 1 or 2, got {self.deltas!r}")
        for name in ("append_energy", "cmn", "cvn"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def n_features(self) -> int:
        """Number of columns of the feature matrix: ``numcep * (1 + deltas)``."""
        return self.numcep * (1 + self.deltas)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict (plain Python ints, floats, str, None).

        Returns
        -------
        dict
            One entry per field; ``FeatureConfig.from_dict(cfg.to_dict()) == cfg``.
        """
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, np.generic):
                value = value.item()
            out[field.name] = value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """Build a configuration from a dict such as one made by :meth:`to_dict`.

        Parameters
        ----------
        d : dict
            Field names to values; missing fields take their defaults.

        Returns
        -------
        FeatureConfig

        Raises
        ------
        ValueError
            If ``d`` has keys that are not fields of FeatureConfig, or invalid values.
        TypeError
            If ``d`` is not a mapping.
        """
        if not isinstance(d, dict):
            raise TypeError(f"FeatureConfig.from_dict expects a dict, got {type(d).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known, key=str)
        if unknown:
            raise ValueError(
                f"unknown FeatureConfig key(s) {unknown}; valid keys are {sorted(known)}"
            )
        return cls(**d)


def _check_rate(rate: Any, what: str = "samplerate") -> int:
    """A sample rate as an int, or ValueError unless it is an integer within the bounds."""
    if not _is_int(rate) or not MIN_SAMPLERATE <= rate <= MAX_SAMPLERATE:
        raise ValueError(f"{what} must be an integer from {MIN_SAMPLERATE} to "
                         f"{MAX_SAMPLERATE} Hz, got {rate!r}")
    return int(rate)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(value)
    )


def _resample(signal: np.ndarray, orig: int, target: int) -> np.ndarray:
    if orig == target:
        return signal
    g = gcd(int(orig), int(target))
    return resample_poly(signal, int(target) // g, int(orig) // g)


def load_audio(path: PathLike, samplerate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as a mono float64 signal.

    Parameters
    ----------
    path : str or os.PathLike
        Any file format libsndfile reads (WAV, FLAC, OGG, AIFF, ...), at a sample rate from
        1,000 to 384,000 Hz with at most ``MAX_CHANNELS`` (8) channels.
    samplerate : int or None
        Rate to resample to (polyphase filtering, ``scipy.signal.resample_poly``); None keeps
        the file's rate.

    Returns
    -------
    signal : ndarray of shape (n_samples,), float64
        Samples scaled to [-1, 1] for integer formats; channels are averaged.
    samplerate : int
        Sample rate of ``signal``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not readable audio, holds no samples, holds NaN/inf samples, has more
        than ``MAX_CHANNELS`` channels or a sample rate outside the bounds (checked from the
        file's header, before its samples are read); the message names the file.
    """
    p = Path(os.fspath(path))
    if samplerate is not None:
        _check_rate(samplerate)
    if not p.exists():
        raise FileNotFoundError(f"audio file not found: '{p}'")
    if p.is_dir():
        raise ValueError(f"'{p}' is a directory, not an audio file")
    try:
        info = sf.info(str(p))
    except (sf.SoundFileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"cannot read audio file '{p}': {exc}") from exc
    if not MIN_SAMPLERATE <= info.samplerate <= MAX_SAMPLERATE:
        raise ValueError(f"audio file '{p}' has a sample rate of {info.samplerate} Hz, outside "
                         f"the {MIN_SAMPLERATE}-{MAX_SAMPLERATE} Hz emx analyses")
    if info.channels > MAX_CHANNELS:
        raise ValueError(f"audio file '{p}' has {info.channels} channels; emx reads at most "
                         f"{MAX_CHANNELS} (averaged to mono)")
    try:
        data, rate = sf.read(str(p), dtype="float64", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"cannot read audio file '{p}': {exc}") from exc
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"audio file '{p}' holds no samples")
    signal = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
    if not np.all(np.isfinite(signal)):
        raise ValueError(f"audio file '{p}' holds NaN or infinite samples")
    rate = int(rate)
    if samplerate is not None and samplerate != rate:
        signal = _resample_scaled(signal, rate, int(samplerate))
        rate = int(samplerate)
    return np.ascontiguousarray(signal, dtype=np.float64), rate


def _check_signal(signal: Any) -> np.ndarray:
    x = np.asarray(signal)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"signal must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if x.ndim != 1:
        raise ValueError(f"signal must be 1-D (mono), got shape {x.shape}")
    if x.size == 0:
        raise ValueError("signal is empty (0 samples)")
    if not np.all(np.isfinite(x)):
        raise ValueError("signal holds NaN or infinite values")
    return x


def _frame_length(config: FeatureConfig, samplerate: int) -> int:
    # python_speech_features rounds the window length in samples half up.
    return int(round_half_up(config.winlen * samplerate))


def _auto_nfft(frame_len: int) -> int:
    return 1 << max(0, (frame_len - 1).bit_length())


# Signals whose peak lies outside [2**-_SAFE_EXP, 2**_SAFE_EXP] are analysed scaled by a power
# of two (exact), their log energies corrected afterwards: the power spectrum of a signal at
# 1e300 would overflow, one at 1e-300 underflow.
_SAFE_EXP = 64


def _scale_exponent(x: np.ndarray) -> int:
    """The power of two ``e`` such that ``x * 2**-e`` has its peak in [0.5, 1), or 0 when the
    peak is already in the safe range (or the signal is zero)."""
    peak = float(np.max(np.abs(x)))
    if peak == 0.0 or 2.0**-_SAFE_EXP <= peak <= 2.0**_SAFE_EXP:
        return 0
    return int(np.frexp(peak)[1])


def _resample_scaled(x: np.ndarray, orig: int, target: int) -> np.ndarray:
    """Resampling that cannot overflow: a signal near the float maximum is filtered scaled
    down by a power of two and scaled back (saturating at the float maximum)."""
    e = _scale_exponent(x)
    y = _resample(np.ldexp(x, -e) if e else x, orig, target)
    if e:
        with np.errstate(over="ignore"):
            y = np.ldexp(y, e)
        big = np.finfo(np.float64).max
        y = np.clip(y, -big, big)
    return y


def _analysis(x: np.ndarray, samplerate: int, config: FeatureConfig) -> tuple[int, int, int]:
    """Check a signal and rate against a configuration: window and step in samples, nfft."""
    samplerate = _check_rate(samplerate)
    frame_len = _frame_length(config, samplerate)
    step = int(round_half_up(config.winstep * samplerate))
    if frame_len < 1 or step < 1:
        raise ValueError(
            f"winlen={config.winlen} s and winstep={config.winstep} s must both be at least one "
            f"sample at {samplerate} Hz"
        )
    if frame_len > MAX_NFFT:
        raise ValueError(
            f"winlen={config.winlen} s is {frame_len} samples at {samplerate} Hz, more than the "
            f"largest FFT ({MAX_NFFT} samples)"
        )
    nfft = _auto_nfft(frame_len) if config.nfft is None else int(config.nfft)
    if nfft < frame_len:
        raise ValueError(
            f"nfft={nfft} is shorter than the window ({frame_len} samples at {samplerate} Hz); "
            "use nfft=None to pick it from the window length"
        )
    if x.size < frame_len:
        raise ValueError(
            f"audio of {x.size} sample(s) ({1000 * x.size / samplerate:.3g} ms at {samplerate} "
            f"Hz) is shorter than one analysis window (winlen={config.winlen} s, {frame_len} "
            "samples)"
        )
    return frame_len, step, nfft


def mfcc(signal: Any, samplerate: int, config: FeatureConfig | None = None) -> np.ndarray:
    """MFCCs of a signal, with deltas and per-utterance normalisation.

    Parameters
    ----------
    signal : array-like of shape (n_samples,)
        Mono audio, at least one analysis window long (``winlen`` seconds); the last frame
        is zero-padded. Any finite amplitude is analysed: the features of ``c * signal``
        differ from those of ``signal`` only in the log energy (column 0, shifted by
        ``2 log|c|``; with ``append_energy=False`` the zeroth cepstrum, by
        ``2 sqrt(nfilt) log|c|``), which mean normalisation removes.
    samplerate : int
        Sample rate of ``signal`` in Hz (1,000 to 384,000). It is the rate of the analysis:
        ``config.samplerate`` is not applied here (use :func:`features` to resample).
    config : FeatureConfig or None
        Settings; None uses the defaults (13 cepstra with c0 replaced by log energy, Hamming
        window, deltas and delta-deltas, mean normalisation: 39 columns).

    Returns
    -------
    ndarray of shape (n_frames, config.n_features), float64
        Columns are the static cepstra, then the first-order deltas, then the second-order
        deltas (deltas of the deltas).

    Raises
    ------
    ValueError
        If the signal is empty, shorter than one window, not 1-D, holds NaN or inf, the
        sample rate is outside the bounds, or the configuration does not fit the sample
        rate (``highfreq`` above Nyquist, ``nfft`` shorter than a window, a window shorter
        than one sample or longer than ``MAX_NFFT`` samples).
    """
    config = FeatureConfig() if config is None else config
    if not isinstance(config, FeatureConfig):
        raise TypeError(f"config must be a FeatureConfig or None, got {type(config).__name__}")
    samplerate = _check_rate(samplerate)
    x = _check_signal(signal)
    _, _, nfft = _analysis(x, samplerate, config)
    nyquist = samplerate / 2
    highfreq = nyquist if config.highfreq is None else float(config.highfreq)
    if highfreq > nyquist:
        raise ValueError(
            f"highfreq={highfreq} Hz is above the Nyquist frequency ({nyquist} Hz) of "
            f"samplerate {samplerate}"
        )
    if config.lowfreq >= highfreq:
        raise ValueError(f"lowfreq={config.lowfreq} Hz must be below highfreq={highfreq} Hz")

    e = _scale_exponent(x)
    if e:
        x = np.ldexp(x, -e)  # exact; the log energies are corrected below
    winfunc = np.hamming if config.window == "hamming" else _rectangular
    static = psf.mfcc(
        x,
        samplerate=samplerate,
        winlen=config.winlen,
        winstep=config.winstep,
        numcep=config.numcep,
        nfilt=config.nfilt,
        nfft=nfft,
        lowfreq=config.lowfreq,
        highfreq=highfreq,
        preemph=config.preemph,
        ceplifter=config.ceplifter,
        appendEnergy=config.append_energy,
        winfunc=winfunc,
    )
    if e:
        # log energy (or, without append_energy, the orthonormal DCT's zeroth cepstrum of
        # the log filterbank energies) of the unscaled signal; the lifter keeps column 0
        shift = 2 * e * math.log(2.0)
        static[:, 0] += shift if config.append_energy else shift * math.sqrt(config.nfilt)
    blocks = [static]
    for _ in range(config.deltas):
        blocks.append(psf.delta(blocks[-1], config.delta_width))
    feats = np.hstack(blocks) if len(blocks) > 1 else static
    feats = np.ascontiguousarray(feats, dtype=np.float64)
    if config.cmn:
        feats -= feats.mean(axis=0)
    if config.cvn:
        std = feats.std(axis=0)
        scale = np.where(std > 1e-10 * max(1.0, float(np.abs(feats).max())), std, 1.0)
        feats /= scale
    return feats


def features(source: PathLike | tuple[Any, int], config: FeatureConfig | None = None) -> np.ndarray:
    """Feature matrix of an audio file or an in-memory signal.

    Parameters
    ----------
    source : str, os.PathLike or tuple (signal, samplerate)
        A path is read with :func:`load_audio`; a tuple gives a 1-D signal and its rate.
        Either way the audio is resampled to ``config.samplerate`` when that is set.
    config : FeatureConfig or None
        Settings (None: defaults, 39 columns).

    Returns
    -------
    ndarray of shape (n_frames, config.n_features), float64

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_audio` and :func:`mfcc`.
    TypeError
        If ``source`` is neither a path nor a (signal, samplerate) tuple.
    """
    config = FeatureConfig() if config is None else config
    if isinstance(source, (str, os.PathLike)):
        signal, rate = load_audio(source, config.samplerate)
        try:
            return mfcc(signal, rate, config)
        except ValueError as exc:
            raise ValueError(f"audio file '{os.fspath(source)}': {exc}") from exc
    if isinstance(source, tuple) and len(source) == 2:
        signal, rate = source
        rate = _check_rate(rate)
        if config.samplerate is not None and config.samplerate != rate:
            signal = _resample_scaled(_check_signal(signal), rate, int(config.samplerate))
            rate = config.samplerate
        return mfcc(signal, rate, config)
    raise TypeError(
        "source must be a path (str or os.PathLike) or a tuple (signal, samplerate), "
        f"got {type(source).__name__}"
    )
