"""MFCC front end (emx.speech.features) on synthetic signals and FSDD recordings."""

import json
import warnings

import numpy as np
import pytest
import soundfile as sf
from _fsdd import FSDD, needs_fsdd
from scipy.signal import resample_poly

from emx.speech.features import FeatureConfig, features, load_audio, mfcc


def tone(seconds=1.0, rate=8000, freq=440.0, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(scale=0.01, size=t.size)
    return 0.5 * np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(2 * np.pi * 3.1 * freq * t) + noise


def relative_error(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(a)


# --- synthetic signals -------------------------------------------------------------------------


def test_tone_shape_finite_and_frame_count():
    x = tone()
    X = features((x, 8000))
    # 200-sample windows every 80 samples, the last one zero-padded
    assert X.shape == (1 + int(np.ceil((8000 - 200) / 80)), 39)
    assert X.dtype == np.float64
    assert np.all(np.isfinite(X))


def test_cmn_zero_means_and_cvn_unit_std():
    x = tone()
    X = features((x, 8000))
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-10)
    raw = features((x, 8000), FeatureConfig(cmn=False))
    assert np.abs(raw.mean(axis=0)).max() > 1
    np.testing.assert_allclose(raw - raw.mean(axis=0), X, atol=1e-10)
    Z = features((x, 8000), FeatureConfig(cvn=True))
    np.testing.assert_allclose(Z.std(axis=0), 1, rtol=1e-8)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-10)


def test_static_columns_match_python_speech_features():
    import python_speech_features as psf

    x = tone()
    X = features((x, 8000), FeatureConfig(deltas=0, cmn=False))
    ref = psf.mfcc(x, 8000, nfft=256, winfunc=np.hamming)
    np.testing.assert_allclose(X, ref)
    D = features((x, 8000), FeatureConfig(cmn=False))
    d1 = psf.delta(ref, 2)
    np.testing.assert_allclose(D, np.hstack([ref, d1, psf.delta(d1, 2)]))


@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_deltas_shape(deltas):
    cfg = FeatureConfig(deltas=deltas, numcep=12)
    assert cfg.n_features == 12 * (1 + deltas)
    assert features((tone(0.3), 8000), cfg).shape[1] == cfg.n_features


def test_hamming_differs_from_rectangular():
    x = tone()
    ham = features((x, 8000), FeatureConfig(window="hamming"))
    rect = features((x, 8000), FeatureConfig(window="rectangular"))
    assert ham.shape == rect.shape
    assert relative_error(ham, rect) > 0.05


def test_cvn_guards_constant_columns():
    # a silent signal gives constant columns: CVN must not divide by zero
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Z = features((np.zeros(4000), 8000), FeatureConfig(cvn=True))
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(Z, 0, atol=1e-6)


@pytest.mark.parametrize("n", [1, 10, 199])
def test_signal_shorter_than_one_window_rejected(n):
    # 200-sample windows at 8 kHz: fewer samples cannot make one frame (they used to be
    # zero-padded into one, which the recogniser then "recognised" as a word)
    with pytest.raises(ValueError, match=f"{n} sample.*shorter than one analysis window"):
        features((tone(1.0)[:n], 8000))
    with pytest.raises(ValueError, match="shorter than one analysis window"):
        mfcc(tone(1.0)[:n], 8000, FeatureConfig(cvn=True))


def test_signal_of_one_window_gives_one_frame():
    X = features((tone(1.0)[:200], 8000))
    assert X.shape == (1, 39) and np.all(np.isfinite(X))
    assert features((tone(1.0)[:201], 8000)).shape == (2, 39)  # the last frame zero-padded


@pytest.mark.parametrize("rate, nfft", [(8000, 256), (16000, 512), (22050, 1024), (44100, 2048)])
def test_nfft_auto_power_of_two(rate, nfft):
    x = tone(0.2, rate=rate)
    auto = mfcc(x, rate)
    assert auto.shape[1] == 39 and np.all(np.isfinite(auto))
    np.testing.assert_array_equal(auto, mfcc(x, rate, FeatureConfig(nfft=nfft)))


def test_nfft_shorter_than_window_rejected():
    with pytest.raises(ValueError, match="nfft=512 is shorter than the window"):
        mfcc(tone(0.2, rate=44100), 44100, FeatureConfig(nfft=512))


def test_highfreq_above_nyquist_rejected():
    with pytest.raises(ValueError, match="Nyquist"):
        mfcc(tone(), 8000, FeatureConfig(highfreq=6000))


def test_tuple_source_resampled_to_config_rate():
    x = tone()
    X = features((x, 8000), FeatureConfig(samplerate=16000))
    assert X.shape == (99, 39)
    up = resample_poly(x, 2, 1)
    np.testing.assert_array_equal(X, features((up, 16000)))


@pytest.mark.parametrize(
    "signal, match",
    [
        (np.array([0.1, np.nan, 0.2] * 100), "NaN"),
        (np.array([0.1, np.inf, 0.2] * 100), "NaN or infinite"),
        (np.zeros(0), "empty"),
        (np.zeros((100, 2)), "1-D"),
        (np.array(["a", "b"]), "real numbers"),
    ],
)
def test_bad_signals(signal, match):
    with pytest.raises(ValueError, match=match):
        features((signal, 8000))
    with pytest.raises(ValueError, match=match):
        mfcc(signal, 8000)


def test_bad_source_and_samplerate():
    with pytest.raises(TypeError, match="path"):
        features(np.zeros(100))
    with pytest.raises(ValueError, match="samplerate"):
        features((np.zeros(100), 0))
    with pytest.raises(ValueError, match="samplerate"):
        mfcc(np.zeros(100), 8000.5)


# --- configuration ------------------------------------------------------------------------------


def test_config_round_trip_json():
    cfg = FeatureConfig(
        samplerate=16000, nfft=1024, highfreq=4000.0, window="rectangular", deltas=1, cvn=True
    )
    d = json.loads(json.dumps(cfg.to_dict()))
    assert FeatureConfig.from_dict(d) == cfg
    assert FeatureConfig.from_dict({}) == FeatureConfig()
    assert FeatureConfig().n_features == 39


def test_config_numpy_values_json_safe():
    cfg = FeatureConfig(samplerate=np.int64(8000), winlen=np.float64(0.02))
    d = cfg.to_dict()
    json.dumps(d)
    assert type(d["samplerate"]) is int and type(d["winlen"]) is float


def test_config_unknown_key():
    with pytest.raises(ValueError, match=r"unknown FeatureConfig key\(s\) \['num_cep'\]"):
        FeatureConfig.from_dict({"num_cep": 13})
    with pytest.raises(TypeError):
        FeatureConfig.from_dict([("numcep", 13)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": "hann"},
        {"deltas": 3},
        {"numcep": 0},
        {"numcep": 30},
        {"winlen": 0},
        {"samplerate": -8000},
        {"highfreq": 0.0},
        {"nfft": 0},
    ],
)
def test_config_invalid_values(kwargs):
    with pytest.raises(ValueError):
        FeatureConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"winlen": 1e300}, "winlen"),
        ({"winlen": 1.5, "winstep": 1.0}, "winlen"),
        ({"winstep": 1e300}, "winstep"),
        ({"winlen": 0.025, "winstep": 1e-6}, "winlen"),  # every sample in 25,000 windows
        ({"nfft": 2**34}, "nfft"),
        ({"nfft": 2**16 + 1}, "nfft"),
        ({"delta_width": 10**12}, "delta_width"),
        ({"delta_width": 11}, "delta_width"),
        ({"samplerate": 10**12}, "samplerate"),
        ({"samplerate": 384_001}, "samplerate"),
        ({"samplerate": 999}, "samplerate"),
        ({"nfilt": 10**9, "numcep": 13}, "nfilt"),
        ({"nfilt": 257}, "nfilt"),
        ({"numcep": 10**9, "nfilt": 10**9}, "numcep"),
        ({"lowfreq": 1e12}, "lowfreq"),
        ({"highfreq": 1e12}, "highfreq"),
        ({"preemph": 1e300}, "preemph"),
        ({"preemph": -0.5}, "preemph"),
        ({"ceplifter": 10**12}, "ceplifter"),
        ({"ceplifter": -1}, "ceplifter"),
        ({"cmn": "yes"}, "cmn"),
    ],
)
def test_config_bounds_name_the_field(kwargs, field):
    # absurd settings (e.g. from a hostile model file) are refused up front, not met later
    # as a MemoryError, decimal.InvalidOperation or minutes of work
    with pytest.raises(ValueError, match=f"^{field} (must|\\()"):
        FeatureConfig(**kwargs)
    with pytest.raises(ValueError, match=f"^{field} (must|\\()"):
        FeatureConfig.from_dict(kwargs)


def test_config_bounds_are_inclusive():
    FeatureConfig(samplerate=384_000, nfft=2**16, nfilt=256, numcep=256, delta_width=10,
                  winlen=1.0, winstep=1 / 32, lowfreq=0.0, highfreq=192_000.0, preemph=1.0,
                  ceplifter=1000)
    FeatureConfig(samplerate=1000, winstep=1.0, winlen=1.0, preemph=0.0, ceplifter=0)
    x = tone(0.2, rate=1000)
    assert mfcc(x, 1000, FeatureConfig(winlen=0.05, winstep=0.02)).shape == (9, 39)


def test_window_longer_than_largest_fft_rejected():
    cfg = FeatureConfig(winlen=1.0, winstep=0.5)  # 1 s at 96 kHz: 96,000 samples
    with pytest.raises(ValueError, match="more than the largest FFT"):
        mfcc(np.ones(96_000), 96_000, cfg)
    assert mfcc(tone(1.0, rate=44100), 44100, cfg).shape == (1, 39)  # 44,100: nfft 2**16


@pytest.mark.parametrize("rate", [100_000_000, 10**12, 999, 384_001])
def test_implausible_sample_rate_rejected(rate):
    x = tone(0.1)
    for call in (lambda: mfcc(x, rate), lambda: features((x, rate)),
                 lambda: features((x, rate), FeatureConfig(samplerate=8000))):
        with pytest.raises(ValueError, match="from 1000 to 384000 Hz"):
            call()


def test_audio_file_at_implausible_rate_or_with_many_channels_rejected(tmp_path):
    fast = tmp_path / "fast.wav"
    sf.write(fast, tone(0.01), 100_000_000)  # 100 MHz
    with pytest.raises(ValueError, match=r"fast\.wav.*100000000 Hz"):
        load_audio(fast)
    with pytest.raises(ValueError, match=r"fast\.wav.*100000000 Hz"):
        features(fast, FeatureConfig(samplerate=8000))
    wide = tmp_path / "wide.wav"
    sf.write(wide, np.zeros((400, 1000)), 8000)
    with pytest.raises(ValueError, match=r"wide\.wav.*1000 channels.*at most 8"):
        load_audio(wide)
    eight = tmp_path / "eight.wav"
    sf.write(eight, np.tile(tone(0.1)[:, None], (1, 8)) * 0.5, 8000)
    x, rate = load_audio(eight)
    np.testing.assert_allclose(x, tone(0.1) * 0.5, atol=1e-4)


@pytest.mark.parametrize("n", [1, 10])
def test_tiny_audio_file_rejected_with_its_name(tmp_path, n):
    path = tmp_path / "tiny.wav"
    sf.write(path, tone(0.1)[:n], 8000)
    with pytest.raises(ValueError, match=r"tiny\.wav.*shorter than one analysis window"):
        features(path)


# --- amplitude -----------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [1e300, 1e-300, 1e150, 1e-200, 2.0**70])
@pytest.mark.parametrize("append_energy", [True, False])
def test_features_of_scaled_signal_differ_only_in_energy(c, append_energy):
    # the power spectrum of a signal at 1e300 overflows (the features were NaN); analysed
    # scaled by a power of two, only column 0 (log energy / c0) moves, by 2 log c
    x = tone(0.3)
    cfg = FeatureConfig(cmn=False, append_energy=append_energy)
    ref = features((x, 8000), cfg)
    scaled = features((c * x, 8000), cfg)
    assert np.all(np.isfinite(scaled))
    shift = 2 * np.log(c) * (1.0 if append_energy else np.sqrt(cfg.nfilt))
    expected = ref.copy()
    expected[:, 0] += shift
    np.testing.assert_allclose(scaled, expected, rtol=1e-9, atol=1e-8 * abs(shift) + 1e-8)
    # with mean normalisation (the default) the features do not depend on the scale
    np.testing.assert_allclose(features((c * x, 8000)), features((x, 8000)), atol=1e-7)


def test_features_near_the_float_maximum_are_finite():
    x = tone(0.3)
    big = x / np.abs(x).max() * np.finfo(np.float64).max
    for cfg in (FeatureConfig(), FeatureConfig(samplerate=16000), FeatureConfig(cvn=True)):
        X = features((big, 8000), cfg)
        assert np.all(np.isfinite(X))
    np.testing.assert_allclose(features((big, 8000)), features((x, 8000)), atol=1e-7)


# --- files ---------------------------------------------------------------------------------------


def test_load_audio_stereo_and_resample(tmp_path):
    left, right = tone(0.5), tone(0.5, freq=300.0, seed=1)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.column_stack([left, right]), 8000, subtype="PCM_24")
    x, rate = load_audio(path)
    assert rate == 8000 and x.ndim == 1 and x.dtype == np.float64
    np.testing.assert_allclose(x, (left + right) / 2, atol=1e-6)
    y, rate2 = load_audio(str(path), samplerate=16000)
    assert rate2 == 16000 and y.shape == (2 * x.size,)
    assert features(path).shape == (1 + int(np.ceil((4000 - 200) / 80)), 39)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(path)
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        features(str(path))


def test_empty_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0), 8000)
    with pytest.raises(ValueError, match=r"empty\.wav.*no samples"):
        features(path)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    with pytest.raises(ValueError, match=r"cannot read audio file .*notes\.wav"):
        load_audio(path)


def test_directory_rejected(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        load_audio(tmp_path)


def test_nan_in_float_wav(tmp_path):
    path = tmp_path / "nan.wav"
    x = tone(0.1)
    x[10] = np.nan
    sf.write(path, x, 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"nan\.wav.*NaN"):
        features(path)


# --- FSDD recordings -----------------------------------------------------------------------------


@needs_fsdd
@pytest.mark.parametrize("name", ["0_george_0.wav", "7_jackson_32.wav", "9_nicolas_49.wav"])
def test_fsdd_file(name):
    X = features(FSDD / name)
    assert X.ndim == 2 and X.shape[1] == 39 and X.shape[0] > 10
    assert np.all(np.isfinite(X))
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-10)
    rect = features(FSDD / name, FeatureConfig(window="rectangular"))
    assert relative_error(X, rect) > 0.05


@needs_fsdd
def test_fsdd_resampled_to_16k_close_to_8k():
    # with the mel filters fixed to 0-4 kHz, analysing the 16 kHz version (nfft 512 instead of
    # 256, same 31.25 Hz bin spacing) gives nearly the same features: rate-dependent gains
    # (pre-emphasis, energy scale) are per-column constants that CMN removes
    path = FSDD / "3_lucas_7.wav"
    cfg8 = FeatureConfig(highfreq=4000.0)
    cfg16 = FeatureConfig(samplerate=16000, highfreq=4000.0)
    a, b = features(path, cfg8), features(path, cfg16)
    assert a.shape == b.shape
    assert relative_error(a, b) < 0.25
    corr = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(a.shape[1])]
    assert np.median(corr) > 0.98 and min(corr) > 0.9
    # a different utterance of the same digit is far away
    other = features(FSDD / "3_lucas_8.wav", cfg8)
    n = min(len(a), len(other))
    assert relative_error(a[:n], other[:n]) > 0.6


@needs_fsdd
def test_fsdd_44k_upsampled():
    X = features(FSDD / "5_jackson_3.wav", FeatureConfig(samplerate=44100))
    assert X.shape[1] == 39 and np.all(np.isfinite(X))
