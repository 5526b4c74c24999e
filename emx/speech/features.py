"""MFCC features for speech: audio loading, MFCCs with deltas, cepstral normalisation,
vocal tract length normalisation (VTLN) and speed perturbation.

The cepstra come from ``python_speech_features`` (``mfcc`` and ``delta``); this module adds
a serialisable configuration, sample-rate handling (resampling, an FFT size chosen from the
window length), input checks with messages that name the file, cepstral mean/variance
normalisation (per utterance, or pooled over a speaker's utterances with :func:`cmvn`, over
all frames or over speech frames only), a frequency-warped mel filterbank for VTLN
(:func:`mel_filterbank`, :func:`vtln_warp`) and speed perturbation of waveforms for data
augmentation (:func:`speed_perturb`).

Examples
--------
>>> from emx.speech.features import FeatureConfig, features
>>> X = features("0_george_0.wav")                       # doctest: +SKIP
>>> X.shape                                              # doctest: +SKIP
(43, 39)
>>> X = features((signal, 8000), FeatureConfig(deltas=1))  # doctest: +SKIP
>>> raw = [features(p, normalise=False) for p in paths]   # doctest: +SKIP
>>> per_speaker = cmvn(raw, FeatureConfig(norm_frames="speech"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from pathlib import Path
from typing import Any, Union

import numpy as np
import python_speech_features as psf
import soundfile as sf
from python_speech_features import sigproc
from python_speech_features.base import hz2mel, mel2hz
from python_speech_features.sigproc import round_half_up
from scipy.fft import dct
from scipy.signal import resample_poly

__all__ = [
    "FeatureConfig",
    "cmvn",
    "features",
    "load_audio",
    "mel_filterbank",
    "mfcc",
    "speech_frames",
    "speed_perturb",
    "vtln_warp",
]

PathLike = Union[str, "os.PathLike[str]"]

_WINDOWS = ("hamming", "rectangular")
_NORM_FRAMES = ("all", "speech")

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
#: Bounds of the VTLN warp factor (FeatureConfig.warp) and of the speed perturbation factor.
MIN_WARP, MAX_WARP = 0.5, 2.0
MIN_SPEED, MAX_SPEED = 0.5, 2.0
#: Largest denominator of the rational approximation of a speed factor (speed_perturb).
SPEED_MAX_DENOMINATOR = 100
#: VTLN warp inflection points (see vtln_warp): the upper one at VTLN_UPPER * highfreq
#: (times min(1, 1/warp)), the lower one at VTLN_LOWER * lowfreq (times max(1, 1/warp)).
VTLN_UPPER = 0.85
VTLN_LOWER = 1.5
#: Speech frames (norm_frames="speech"): frames whose column 0 is at least the midpoint of
#: its SPEECH_PERCENTILES percentiles over the utterance.
SPEECH_PERCENTILES = (10.0, 90.0)


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
        Cepstral mean normalisation: subtract each column's mean over the utterance (over the
        frames ``norm_frames`` chooses; :func:`cmvn` pools them over several utterances).
    cvn : bool
        Cepstral variance normalisation: divide each column by its standard deviation over the
        same frames (columns with zero variance are left unscaled).
    warp : float
        Vocal tract length normalisation factor alpha of the mel filterbank (1.0: no warp).
        The filterbank's band edges below an upper cutoff move from ``f`` to ``alpha * f``
        (:func:`vtln_warp`), so ``alpha > 1`` suits a speaker whose formants lie ``alpha``
        times higher than the models' (a shorter vocal tract), ``alpha < 1`` a longer vocal
        tract. At 1.0 the features are those of ``python_speech_features.mfcc``.
    norm_frames : {'all', 'speech'}
        Frames whose statistics ``cmn`` and ``cvn`` use: every frame, or the speech frames
        :func:`speech_frames` picks from column 0 (the log energy, or ``c0`` without
        ``append_energy``); the normalisation is then applied to every frame. 'speech' keeps
        long pauses and noise gaps (connected speech) from skewing the statistics.

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
    ``warp``            0.5 to 2.0 (``MIN_WARP``, ``MAX_WARP``); a warp other than 1 also
                        needs ``lowfreq`` well below ``highfreq`` (checked when audio is
                        analysed, see :func:`vtln_warp`)
    ``norm_frames``     'all' or 'speech'
    ==================  ====================================================================

    Dicts saved before ``warp`` and ``norm_frames`` existed load with their defaults (1.0,
    'all'), which give the features of that time bit for bit.
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
    warp: float = 1.0
    norm_frames: str = "all"

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
        if not _is_real(self.warp) or not MIN_WARP <= self.warp <= MAX_WARP:
            raise ValueError(f"warp must be a number from {MIN_WARP} to {MAX_WARP}, got "
                             f"{self.warp!r}")
        if not isinstance(self.norm_frames, str) or self.norm_frames not in _NORM_FRAMES:
            raise ValueError(f"norm_frames must be one of {_NORM_FRAMES}, got "
                             f"{self.norm_frames!r}")
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


def _resample_ratio(signal: np.ndarray, up: int, down: int) -> np.ndarray:
    return resample_poly(signal, up, down)


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

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, soundfile
    >>> from emx.speech import load_audio
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> soundfile.write(path, 0.1 * np.ones(8000), 8000)
    >>> signal, rate = load_audio(path)
    >>> signal.shape, rate
    ((8000,), 8000)
    >>> load_audio(path, samplerate=16000)[0].shape      # resampled
    (16000,)
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


def _resample_scaled(x: np.ndarray, orig: int, target: int, *,
                     ratio: tuple[int, int] | None = None) -> np.ndarray:
    """Resampling that cannot overflow: a signal near the float maximum is filtered scaled
    down by a power of two and scaled back (saturating at the float maximum). With ``ratio``
    ``(up, down)`` the signal is resampled by ``up / down`` (``orig``, ``target`` unused)."""
    e = _scale_exponent(x)
    xs = np.ldexp(x, -e) if e else x
    y = _resample(xs, orig, target) if ratio is None else _resample_ratio(xs, *ratio)
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


# --- vocal tract length normalisation: a warped mel filterbank -----------------------------------


def _check_warp(warp: Any) -> float:
    if not _is_real(warp) or not MIN_WARP <= warp <= MAX_WARP:
        raise ValueError(f"warp must be a number from {MIN_WARP} to {MAX_WARP}, got {warp!r}")
    return float(warp)


def _check_band(lowfreq: Any, highfreq: Any) -> tuple[float, float]:
    if not _is_real(lowfreq) or lowfreq < 0:
        raise ValueError(f"lowfreq must be a finite number >= 0 Hz, got {lowfreq!r}")
    if not _is_real(highfreq) or not highfreq > lowfreq:
        raise ValueError(f"highfreq must be a finite number above lowfreq ({lowfreq}) Hz, got "
                         f"{highfreq!r}")
    return float(lowfreq), float(highfreq)


def _warp_knots(warp: float, lowfreq: float, highfreq: float) -> tuple[float, float]:
    """The lower and upper inflection points (unwarped Hz) of the VTLN warp."""
    upper = VTLN_UPPER * highfreq * min(1.0, 1.0 / warp)
    lower = VTLN_LOWER * lowfreq * max(1.0, 1.0 / warp)
    if not lower < upper:
        raise ValueError(
            f"warp={warp:g} needs lowfreq ({lowfreq:g} Hz) well below highfreq ({highfreq:g} "
            f"Hz): the warp's lower inflection point ({lower:g} Hz = {VTLN_LOWER:g} * lowfreq"
            f"{' / warp' if warp < 1 else ''}) must lie below its upper one ({upper:g} Hz = "
            f"{VTLN_UPPER:g} * highfreq{' / warp' if warp > 1 else ''})"
        )
    return lower, upper


def vtln_warp(freqs: Any, warp: float, lowfreq: float, highfreq: float) -> np.ndarray:
    """Piecewise-linear vocal tract length warp of frequencies, as applied to the mel filters.

    With ``alpha = warp``, the warp ``F`` is continuous, increasing and piecewise linear:

    * ``F(f) = alpha * f`` between a lower inflection point ``l`` and an upper one ``u``;
    * ``F`` is linear from ``(lowfreq, lowfreq)`` to ``(l, alpha * l)`` and from
      ``(u, alpha * u)`` to ``(highfreq, highfreq)``, so the band edges stay fixed;
    * frequencies at or below ``lowfreq`` and at or above ``highfreq`` are unchanged.

    The upper inflection point is ``u = VTLN_UPPER * highfreq * min(1, 1/alpha)``
    (``VTLN_UPPER = 0.85``), so the scaled part ends at most at 85 % of ``highfreq`` whichever
    way it goes; the lower one is ``l = VTLN_LOWER * lowfreq * max(1, 1/alpha)``
    (``VTLN_LOWER = 1.5``; ``l = 0`` when ``lowfreq`` is 0, and then ``F(f) = alpha * f`` from
    0 to ``u``). Kaldi's warp has the same shape but moves its filters' edges to ``f / alpha``
    in the middle segment: Kaldi's ``vtln_warp_factor`` is the reciprocal of this ``warp``.

    Direction: the filters' band edges move from ``f`` to ``F(f)``. A speaker whose spectrum
    is the models' spectrum stretched by ``alpha`` (formants ``alpha`` times higher: a shorter
    vocal tract, as for children and most women) gives, through filters warped by ``alpha``,
    the filter outputs the models' speaker gives through unwarped ones (up to a constant gain
    that the log energy and mean normalisation absorb). ``alpha < 1`` suits a longer vocal
    tract (formants lower).

    Parameters
    ----------
    freqs : array-like
        Frequencies in Hz (finite).
    warp : float
        The factor alpha, from 0.5 to 2.0.
    lowfreq, highfreq : float
        The band edges (Hz) the warp keeps fixed, ``0 <= lowfreq < highfreq``.

    Returns
    -------
    ndarray of float64, the shape of ``freqs``
        Warped frequencies; at ``warp=1`` equal to ``freqs``.

    Raises
    ------
    ValueError
        If ``warp`` is outside its bounds, the band edges are not ordered, ``freqs`` holds
        NaN or inf, or ``lowfreq`` is too close to ``highfreq`` for the warp's two
        inflection points to be ordered (``l >= u``).
    """
    a = _check_warp(warp)
    lo, hi = _check_band(lowfreq, highfreq)
    f = np.asarray(freqs)
    if f.dtype.kind not in "biuf":
        raise ValueError(f"freqs must be real numbers, got dtype {f.dtype}")
    f = np.array(f, dtype=np.float64)  # a copy: the caller's array is never touched
    if not np.all(np.isfinite(f)):
        raise ValueError("freqs holds NaN or infinite values")
    if a == 1.0:
        return f
    lower, upper = _warp_knots(a, lo, hi)
    out = f.copy()
    mid = (f > lower) & (f < upper)
    out[mid] = a * f[mid]
    top = (f >= upper) & (f < hi)
    out[top] = hi - (hi - f[top]) * ((hi - a * upper) / (hi - upper))
    if lower > lo:
        bottom = (f > lo) & (f <= lower)
        out[bottom] = lo + (f[bottom] - lo) * ((a * lower - lo) / (lower - lo))
    return out


def mel_filterbank(nfilt: int, nfft: int, samplerate: int, lowfreq: float = 0.0,
                   highfreq: float | None = None, warp: float = 1.0) -> np.ndarray:
    """Triangular mel filterbank, optionally warped for vocal tract length normalisation.

    The band edges are ``nfilt + 2`` points evenly spaced in mels from ``lowfreq`` to
    ``highfreq``, rounded down to FFT bins as ``python_speech_features.get_filterbanks`` does
    (bin ``floor((nfft + 1) * f / samplerate)``); filter ``j`` rises linearly from 0 at edge
    ``j`` to 1 at edge ``j + 1`` and falls back towards 0 at edge ``j + 2``, evaluated at the
    FFT bins (left edge included, right edge excluded). At ``warp=1`` the result equals
    ``get_filterbanks`` bit for bit.

    With ``warp != 1`` each edge frequency (the frequency of its bin) moves to
    :func:`vtln_warp` of it, without rounding to a bin again: the triangles keep their
    straight sides between fractional bin positions, so the filterbank, and the features,
    change continuously with the warp factor (a grid search over it sees no steps).

    Parameters
    ----------
    nfilt : int
        Number of filters (1 to 256).
    nfft : int
        FFT size (1 to 65,536); the filters have ``nfft // 2 + 1`` weights.
    samplerate : int
        Sample rate in Hz (1,000 to 384,000).
    lowfreq : float
        Lowest band edge (Hz), at least 0.
    highfreq : float or None
        Highest band edge (Hz), above ``lowfreq`` and at most the Nyquist frequency; None is
        the Nyquist frequency.
    warp : float
        VTLN factor alpha (0.5 to 2.0), see :func:`vtln_warp` for the direction.

    Returns
    -------
    ndarray of shape (nfilt, nfft // 2 + 1), float64
        One filter per row.

    Raises
    ------
    ValueError
        If a setting is outside its bounds (see :func:`vtln_warp` for the warp's).
    """
    samplerate = _check_rate(samplerate)
    if not _is_int(nfilt) or not 1 <= nfilt <= MAX_NFILT:
        raise ValueError(f"nfilt must be an integer from 1 to {MAX_NFILT}, got {nfilt!r}")
    if not _is_int(nfft) or not 1 <= nfft <= MAX_NFFT:
        raise ValueError(f"nfft must be an integer from 1 to {MAX_NFFT}, got {nfft!r}")
    nyquist = samplerate / 2
    highfreq = nyquist if highfreq is None else highfreq
    lowfreq, highfreq = _check_band(lowfreq, highfreq)
    if highfreq > nyquist:
        raise ValueError(f"highfreq={highfreq} Hz is above the Nyquist frequency ({nyquist} Hz) "
                         f"of samplerate {samplerate}")
    warp = _check_warp(warp)
    nfilt, nfft = int(nfilt), int(nfft)
    mels = np.linspace(hz2mel(lowfreq), hz2mel(highfreq), nfilt + 2)
    edges = np.floor((nfft + 1) * mel2hz(mels) / samplerate)  # in FFT bins, as psf
    if warp != 1.0:
        per_hz = (nfft + 1) / samplerate
        edges = vtln_warp(edges / per_hz, warp, lowfreq, highfreq) * per_hz
    i = np.arange(nfft // 2 + 1, dtype=np.float64)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rise = (i - left) / (centre - left)
        fall = (right - i) / (right - centre)
    bank = np.where((i >= left) & (i < centre), rise, 0.0)
    return np.where((i >= centre) & (i < right), fall, bank)


def _static_cepstra(x: np.ndarray, samplerate: int, config: FeatureConfig, nfft: int,
                    highfreq: float) -> np.ndarray:
    """Static cepstra through python_speech_features' steps and :func:`mel_filterbank`.

    The steps of ``python_speech_features.mfcc`` (pre-emphasis, framing, power spectrum,
    filterbank energies floored at the float epsilon, log, orthonormal DCT-II, lifter, log
    frame energy in column 0), with the (possibly warped) filterbank of this module.
    """
    winfunc = np.hamming if config.window == "hamming" else _rectangular
    emphasised = sigproc.preemphasis(x, config.preemph)
    frames = sigproc.framesig(emphasised, config.winlen * samplerate,
                              config.winstep * samplerate, winfunc)
    pspec = sigproc.powspec(frames, nfft)
    eps = np.finfo(np.float64).eps
    energy = pspec.sum(axis=1)
    energy = np.where(energy == 0, eps, energy)
    bank = mel_filterbank(config.nfilt, nfft, samplerate, config.lowfreq, highfreq, config.warp)
    fbank = pspec @ bank.T
    fbank = np.where(fbank == 0, eps, fbank)
    cep = dct(np.log(fbank), type=2, axis=1, norm="ortho")[:, : config.numcep]
    cep = psf.base.lifter(cep, config.ceplifter)
    if config.append_energy:
        cep[:, 0] = np.log(energy)
    return cep


# --- normalisation -------------------------------------------------------------------------------

#: Least fraction of an utterance's frames speech_frames keeps (its loudest).
MIN_SPEECH_FRACTION = 0.1


def _check_features(X: Any, what: str = "X", n_features: int | None = None) -> np.ndarray:
    A = np.asarray(X)
    if A.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be real numbers, got dtype {A.dtype}")
    if A.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (frames, features) array, got shape {A.shape}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"{what} has no frames or no features (shape {A.shape})")
    if n_features is not None and A.shape[1] != n_features:
        raise ValueError(f"{what} has {A.shape[1]} features; the configuration makes "
                         f"{n_features} (numcep * (1 + deltas))")
    A = A.astype(np.float64, copy=False)
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{what} holds NaN or infinite values")
    return A


def speech_frames(X: Any) -> np.ndarray:
    """The frames of an utterance taken as speech, by their energy (column 0).

    A frame is speech when its column 0 (emx's log frame energy; the zeroth cepstrum,
    ``sqrt(nfilt)`` times the mean log filterbank energy, without ``append_energy``) is at
    least the midpoint between the utterance's 10th and 90th percentiles of that column: the
    threshold sits halfway between the quiet (pauses, gaps, background) and the loud (voiced
    speech) ends of the utterance, wherever its recording level lies. The loudest
    ``MIN_SPEECH_FRACTION`` (a tenth, at least one frame) are always kept, so no utterance
    is left without speech frames, silent or not. The rule is unchanged by an affine
    rescaling of column 0 with a positive factor, so it picks the same frames before or
    after mean/variance normalisation.

    Parameters
    ----------
    X : array-like of shape (n_frames, n_features)
        Features of one utterance (finite), column 0 an energy.

    Returns
    -------
    ndarray of shape (n_frames,), bool
        True for the speech frames.

    Raises
    ------
    ValueError
        If ``X`` is not a non-empty 2-D array of finite real numbers.
    """
    A = _check_features(X)
    e = A[:, 0]
    lo, hi = np.percentile(e, SPEECH_PERCENTILES)
    mask = e >= (lo + hi) / 2
    least = max(1, math.ceil(MIN_SPEECH_FRACTION * e.size))
    if np.count_nonzero(mask) < least:
        mask = e >= np.sort(e)[e.size - least]
    return mask


def _normalise(arrays: list[np.ndarray], config: FeatureConfig, inplace: bool = False
               ) -> list[np.ndarray]:
    """cmn/cvn with statistics pooled over the arrays' frames chosen by norm_frames."""
    out = [A if inplace else np.array(A, dtype=np.float64, order="C") for A in arrays]
    if not (config.cmn or config.cvn):
        return out
    if config.norm_frames == "speech":
        parts = [A[speech_frames(A)] for A in arrays]
    else:
        parts = list(arrays)
    pooled = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if config.cmn:
        mean = pooled.mean(axis=0)
        pooled = pooled - mean
        for A in out:
            A -= mean
    if config.cvn:
        std = pooled.std(axis=0)
        scale = np.where(std > 1e-10 * max(1.0, float(np.abs(pooled).max())), std, 1.0)
        for A in out:
            A /= scale
    return out


def cmvn(utterances: Any, config: FeatureConfig | None = None) -> list[np.ndarray]:
    """Cepstral mean/variance normalisation with one set of statistics for several utterances.

    The statistics (a mean per column for ``config.cmn``, a standard deviation per column for
    ``config.cvn``) are pooled over the frames of all the given utterances that
    ``config.norm_frames`` chooses ('all': every frame; 'speech': each utterance's
    :func:`speech_frames`), and applied to every frame of every utterance. Given one
    speaker's utterances this is Kaldi's per-speaker CMVN; given one utterance it is exactly
    the per-utterance normalisation :func:`mfcc` applies (``cmvn([mfcc(x, r, cfg,
    normalise=False)], cfg)[0]`` equals ``mfcc(x, r, cfg)`` bit for bit). With 'all',
    ``cmvn`` of a list equals ``cmvn`` of the list's concatenation, split back.

    Parameters
    ----------
    utterances : list or tuple of array-like of shape (n_frames_i, config.n_features)
        Un-normalised features, e.g. from ``features(..., normalise=False)``; finite.
    config : FeatureConfig or None
        Says what to normalise (``cmn``, ``cvn``) over which frames (``norm_frames``); None
        uses the defaults (mean normalisation over all frames).

    Returns
    -------
    list of ndarray, float64
        New arrays, one per utterance, in order; the inputs are not modified.

    Raises
    ------
    TypeError
        If ``utterances`` is not a list or tuple (a single array: pass ``[X]``), or
        ``config`` not a FeatureConfig.
    ValueError
        If the list is empty, or an utterance is not a non-empty 2-D array of finite real
        numbers with ``config.n_features`` columns.
    """
    config = FeatureConfig() if config is None else config
    if not isinstance(config, FeatureConfig):
        raise TypeError(f"config must be a FeatureConfig or None, got {type(config).__name__}")
    if not isinstance(utterances, (list, tuple)):
        raise TypeError("utterances must be a list (or tuple) of 2-D feature arrays, got "
                        f"{type(utterances).__name__}; for a single utterance pass [X]")
    if len(utterances) == 0:
        raise ValueError("utterances is empty: cmvn needs at least one utterance")
    arrays = [_check_features(X, f"utterance {k}", config.n_features)
              for k, X in enumerate(utterances)]
    return _normalise(arrays, config)


# --- features ------------------------------------------------------------------------------------


def mfcc(signal: Any, samplerate: int, config: FeatureConfig | None = None,
         normalise: bool = True) -> np.ndarray:
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
        window, deltas and delta-deltas, mean normalisation: 39 columns). With
        ``config.warp == 1`` the static cepstra are ``python_speech_features.mfcc``'s; with
        another warp they come from the same steps with the warped :func:`mel_filterbank`.
    normalise : bool
        Apply the configuration's ``cmn``/``cvn`` over this utterance (statistics over the
        frames ``config.norm_frames`` chooses). False returns the cepstra and deltas before
        normalisation, e.g. to normalise a speaker's utterances together with :func:`cmvn`.

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
        than one sample or longer than ``MAX_NFFT`` samples, a warp with ``lowfreq`` too
        close to ``highfreq``).

    Examples
    --------
    >>> import numpy as np
    >>> from emx.speech import mfcc
    >>> t = np.arange(8000) / 8000                      # one second at 8 kHz
    >>> X = mfcc(0.3 * np.sin(2 * np.pi * 440 * t), 8000)
    >>> X.shape                           # 25 ms windows every 10 ms; 13 cepstra + deltas
    (99, 39)
    >>> bool(np.allclose(X.mean(axis=0), 0, atol=1e-8))  # mean-normalised per utterance
    True
    """
    config = FeatureConfig() if config is None else config
    if not isinstance(config, FeatureConfig):
        raise TypeError(f"config must be a FeatureConfig or None, got {type(config).__name__}")
    if not isinstance(normalise, (bool, np.bool_)):
        raise TypeError(f"normalise must be True or False, got {normalise!r}")
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
    if config.warp != 1.0:
        _warp_knots(float(config.warp), float(config.lowfreq), highfreq)

    e = _scale_exponent(x)
    if e:
        x = np.ldexp(x, -e)  # exact; the log energies are corrected below
    if config.warp == 1.0:
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
    else:
        static = _static_cepstra(x, samplerate, config, nfft, highfreq)
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
    if normalise:
        feats = _normalise([feats], config, inplace=True)[0]
    return feats


def features(source: PathLike | tuple[Any, int], config: FeatureConfig | None = None,
             normalise: bool = True) -> np.ndarray:
    """Feature matrix of an audio file or an in-memory signal.

    Parameters
    ----------
    source : str, os.PathLike or tuple (signal, samplerate)
        A path is read with :func:`load_audio`; a tuple gives a 1-D signal and its rate.
        Either way the audio is resampled to ``config.samplerate`` when that is set.
    config : FeatureConfig or None
        Settings (None: defaults, 39 columns).
    normalise : bool
        As in :func:`mfcc`: False returns the features before ``cmn``/``cvn``.

    Returns
    -------
    ndarray of shape (n_frames, config.n_features), float64

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_audio` and :func:`mfcc`.
    TypeError
        If ``source`` is neither a path nor a (signal, samplerate) tuple.

    Examples
    --------
    A waveform in memory, or the path of an audio file:

    >>> import numpy as np
    >>> from emx.speech import FeatureConfig, features
    >>> t = np.arange(4000) / 8000
    >>> features((np.sin(2 * np.pi * 300 * t), 8000)).shape
    (49, 39)
    >>> features((np.sin(2 * np.pi * 300 * t), 8000), FeatureConfig(deltas=0)).shape
    (49, 13)
    >>> X = features("0_george_0.wav")                   # doctest: +SKIP
    """
    config = FeatureConfig() if config is None else config
    if isinstance(source, (str, os.PathLike)):
        signal, rate = load_audio(source, config.samplerate)
        try:
            return mfcc(signal, rate, config, normalise)
        except ValueError as exc:
            raise ValueError(f"audio file '{os.fspath(source)}': {exc}") from exc
    if isinstance(source, tuple) and len(source) == 2:
        signal, rate = source
        rate = _check_rate(rate)
        if config.samplerate is not None and config.samplerate != rate:
            signal = _resample_scaled(_check_signal(signal), rate, int(config.samplerate))
            rate = config.samplerate
        return mfcc(signal, rate, config, normalise)
    raise TypeError(
        "source must be a path (str or os.PathLike) or a tuple (signal, samplerate), "
        f"got {type(source).__name__}"
    )


# --- augmentation --------------------------------------------------------------------------------


def speed_perturb(signal: Any, samplerate: int, factor: float) -> np.ndarray:
    """Speed perturbation of a waveform (data augmentation), as sox's ``speed`` effect.

    The result, played at the same sample rate, is ``factor`` times faster: its duration is
    the signal's divided by ``factor`` and every frequency (pitch and formants alike) is
    multiplied by ``factor``. It is the signal resampled from ``samplerate`` to
    ``samplerate / factor`` by polyphase filtering (``scipy.signal.resample_poly``, with its
    anti-aliasing filter), ``factor`` taken as the nearest fraction ``p / q`` with
    ``q <= SPEED_MAX_DENOMINATOR`` (100): 0.9 and 1.1 are exact (9/10, 11/10), 1.001 is
    applied as 1.

    Parameters
    ----------
    signal : array-like of shape (n_samples,)
        Mono audio, finite; not modified.
    samplerate : int
        Its sample rate (1,000 to 384,000 Hz), which is also the result's.
    factor : float
        Speed factor, from 0.5 to 2.0 (Kaldi's recipes use 0.9 and 1.1).

    Returns
    -------
    ndarray of shape (ceil(n_samples * q / p),), float64
        A new array (a copy when the factor is 1).

    Raises
    ------
    ValueError
        If the signal is empty, not 1-D, or holds NaN or inf, the rate is outside its
        bounds, or ``factor`` is not a number from 0.5 to 2.0.
    """
    _check_rate(samplerate)
    x = _check_signal(signal)
    if not _is_real(factor) or not MIN_SPEED <= factor <= MAX_SPEED:
        raise ValueError(f"factor must be a number from {MIN_SPEED} to {MAX_SPEED}, got "
                         f"{factor!r}")
    ratio = Fraction(float(factor)).limit_denominator(SPEED_MAX_DENOMINATOR)
    if ratio == 1:
        return np.array(x, dtype=np.float64, copy=True)
    y = _resample_scaled(x, 0, 0, ratio=(ratio.denominator, ratio.numerator))
    return np.ascontiguousarray(y, dtype=np.float64)
