"""Front end for unseen speakers (emx.speech.features): VTLN-warped mel filterbank, speed
perturbation, and normalisation as its own step (per-speaker CMVN, speech-frame statistics)."""


import numpy as np
import pytest
import python_speech_features as psf
from _fsdd import FSDD, needs_fsdd

from emx.speech.features import (
    FeatureConfig,
    _static_cepstra,
    cmvn,
    features,
    load_audio,
    mel_filterbank,
    mfcc,
    speech_frames,
    speed_perturb,
    vtln_warp,
)

SR = 8000


def tone(seconds=0.5, rate=SR, freq=440.0, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(scale=0.01, size=t.size)
    return 0.5 * np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(2 * np.pi * 3.1 * freq * t) + noise


def voice(scale, seconds=0.5, f0=110.0, glide=0.25):
    """A vowel-like harmonic complex whose spectrum is the reference one stretched by `scale`.

    Harmonic k of the reference sits at k*f0 with the amplitude of a three-formant envelope
    (500, 1400, 2300 Hz) gliding up by `glide` over the utterance (a diphthong, so the frames
    differ); the stretched voice puts the same amplitude at k*f0*scale: pitch and formants
    all `scale` times higher, as for a vocal tract 1/scale times as long.
    """
    t = np.arange(int(seconds * SR)) / SR
    g = 1 + glide * t / seconds
    x = np.zeros_like(t)
    k = 1
    while k * f0 * scale < 0.8 * SR / 2:
        f = k * f0
        amp = 0.02 + sum(np.exp(-0.5 * ((f - F * g) / B) ** 2)
                         for F, B in ((500, 80), (1400, 120), (2300, 160)))
        x += amp * np.sin(2 * np.pi * f * scale * t + 0.3 * k * k)
        k += 1
    return x


# --- configuration -------------------------------------------------------------------------------


def test_new_fields_defaults_round_trip_and_old_dicts_load():
    cfg = FeatureConfig()
    assert cfg.warp == 1.0 and cfg.norm_frames == "all"
    custom = FeatureConfig(warp=1.1, norm_frames="speech", cvn=True)
    assert FeatureConfig.from_dict(custom.to_dict()) == custom
    old = {k: v for k, v in FeatureConfig(cvn=True).to_dict().items()
           if k not in ("warp", "norm_frames")}
    assert FeatureConfig.from_dict(old) == FeatureConfig(cvn=True)
    assert type(FeatureConfig(warp=np.float64(0.9)).to_dict()["warp"]) is float


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"warp": 0.49}, "warp"),
        ({"warp": 2.01}, "warp"),
        ({"warp": 0.0}, "warp"),
        ({"warp": float("nan")}, "warp"),
        ({"warp": True}, "warp"),
        ({"warp": "1.1"}, "warp"),
        ({"norm_frames": "voiced"}, "norm_frames"),
        ({"norm_frames": None}, "norm_frames"),
        ({"norm_frames": ["all"]}, "norm_frames"),
    ],
)
def test_new_fields_bounds_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field} must"):
        FeatureConfig(**kwargs)
    with pytest.raises(ValueError, match=f"^{field} must"):
        FeatureConfig.from_dict(kwargs)


def test_warp_bounds_inclusive():
    x = tone()
    for w in (0.5, 2.0):
        X = mfcc(x, SR, FeatureConfig(warp=w))
        assert X.shape == mfcc(x, SR).shape and np.all(np.isfinite(X))


# --- warp 1: today's features bit for bit --------------------------------------------------------


@pytest.mark.parametrize("cfg", [
    FeatureConfig(),
    FeatureConfig(cvn=True, lowfreq=100.0),
    FeatureConfig(cmn=False, deltas=0),
    FeatureConfig(window="rectangular", append_energy=False, nfilt=40, numcep=20),
])
def test_warp_one_is_python_speech_features_bit_for_bit(cfg):
    x = tone()
    static = psf.mfcc(x, SR, nfft=256, nfilt=cfg.nfilt, numcep=cfg.numcep,
                      lowfreq=cfg.lowfreq, highfreq=4000.0, appendEnergy=cfg.append_energy,
                      winfunc=np.hamming if cfg.window == "hamming" else (lambda n: np.ones(n)))
    blocks = [static]
    for _ in range(cfg.deltas):
        blocks.append(psf.delta(blocks[-1], 2))
    ref = np.hstack(blocks)
    if cfg.cmn:
        ref = ref - ref.mean(axis=0)
    if cfg.cvn:
        ref = ref / ref.std(axis=0)
    X = mfcc(x, SR, cfg)
    np.testing.assert_array_equal(X, ref)
    np.testing.assert_array_equal(features((x, SR), cfg), ref)
    # this module's own pipeline (used for warp != 1) computes the same cepstra at warp 1
    np.testing.assert_allclose(_static_cepstra(x, SR, cfg, 256, 4000.0), static,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nfilt", [1, 10, 26, 80])
@pytest.mark.parametrize("nfft, rate", [(64, 8000), (256, 8000), (512, 16000), (1000, 16000)])
@pytest.mark.parametrize("low, high", [(0, None), (100.0, None), (300, 3000.0)])
def test_filterbank_at_warp_one_is_psf_get_filterbanks(nfilt, nfft, rate, low, high):
    np.testing.assert_array_equal(mel_filterbank(nfilt, nfft, rate, low, high),
                                  psf.get_filterbanks(nfilt, nfft, rate, low, high))


def test_features_continuous_in_the_warp():
    # no step at warp 1 between the psf path and the warped one, and none near it (the warped
    # edges are not rounded to FFT bins again)
    x = tone()
    base = mfcc(x, SR, FeatureConfig(cvn=True, lowfreq=100.0))
    near = mfcc(x, SR, FeatureConfig(cvn=True, lowfreq=100.0, warp=1 + 1e-9))
    np.testing.assert_allclose(near, base, atol=1e-5)
    a = mfcc(x, SR, FeatureConfig(warp=1.1))
    b = mfcc(x, SR, FeatureConfig(warp=1.1 + 1e-9))
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.abs(a - base).max() > 0.1


# --- the warp itself -----------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.5, 0.8, 0.95, 1.05, 1.2, 2.0])
@pytest.mark.parametrize("low, high", [(0.0, 4000.0), (100.0, 4000.0), (300.0, 8000.0)])
def test_vtln_warp_shape(alpha, low, high):
    f = np.linspace(0, high, 2001)
    w = vtln_warp(f, alpha, low, high)
    assert w[0] == f[0] and w[-1] == high
    assert np.isclose(vtln_warp(low, alpha, low, high), low)
    assert np.all(np.diff(w) > 0)  # increasing (and continuous: small steps)
    assert np.max(np.abs(np.diff(w))) < 2.5 * np.max(np.diff(f)) * max(alpha, 1 / alpha) ** 2
    # scaled by alpha in the middle of the band, below 0.85 * high * min(1, 1/alpha)
    upper = 0.85 * high * min(1.0, 1.0 / alpha)
    lower = 1.5 * low * max(1.0, 1.0 / alpha)
    mid = (f > lower) & (f < upper)
    assert mid.sum() > 100
    np.testing.assert_allclose(w[mid], alpha * f[mid], rtol=1e-12)
    inside = (f > low) & (f < high)
    assert np.all(w[inside] > f[inside]) if alpha > 1 else np.all(w[inside] < f[inside])
    np.testing.assert_array_equal(vtln_warp(f, 1.0, low, high), f)


def test_vtln_warp_rejects_bad_input_and_does_not_mutate():
    f = np.array([0.0, 1000.0, 3000.0])
    keep = f.copy()
    vtln_warp(f, 1.2, 0.0, 4000.0)
    np.testing.assert_array_equal(f, keep)
    with pytest.raises(ValueError, match="warp must be"):
        vtln_warp(f, 3.0, 0.0, 4000.0)
    with pytest.raises(ValueError, match="NaN"):
        vtln_warp([np.nan], 1.1, 0.0, 4000.0)
    with pytest.raises(ValueError, match="highfreq"):
        vtln_warp(f, 1.1, 500.0, 400.0)
    # the lower inflection point (1.5 * lowfreq / warp) above the upper (0.85 * highfreq)
    with pytest.raises(ValueError, match="lowfreq .* well below highfreq"):
        vtln_warp(f, 0.8, 2000.0, 4000.0)
    with pytest.raises(ValueError, match="lowfreq .* well below highfreq"):
        mfcc(tone(), SR, FeatureConfig(warp=0.8, lowfreq=2000.0))
    mfcc(tone(), SR, FeatureConfig(lowfreq=2000.0))  # no warp: fine


@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_warped_filters_move_in_the_documented_direction(alpha):
    base = mel_filterbank(26, 512, 16000, 100.0, 8000.0)
    warped = mel_filterbank(26, 512, 16000, 100.0, 8000.0, warp=alpha)
    assert warped.shape == base.shape and np.all(warped >= 0) and np.all(warped <= 1)
    bins = np.arange(base.shape[1])
    centroid = lambda fb: fb @ bins / fb.sum(axis=1)  # noqa: E731
    cb, cw = centroid(base), centroid(warped)
    # every filter moves up for alpha > 1 (towards higher frequencies), down for alpha < 1
    assert np.all(cw > cb) if alpha > 1 else np.all(cw < cb)
    # filters well inside the scaled part of the band move by the factor alpha
    mid = (cb > 10) & (cb * 16000 / 513 < 0.8 * 8000 * min(1, 1 / alpha))
    assert mid.sum() >= 10
    np.testing.assert_allclose(cw[mid] / cb[mid], alpha, rtol=0.03)


@pytest.mark.parametrize("alpha", [0.88, 1.12])
def test_matching_warp_brings_a_stretched_voice_back(alpha):
    # a voice whose spectrum (pitch and formants) is the reference's stretched by alpha, seen
    # through filters warped by alpha, is much closer to the reference (unwarped) than
    # through unwarped filters; over a grid of warps the closest is within one step of alpha
    cfg = FeatureConfig(cvn=True, lowfreq=100.0, deltas=0)
    ref = mfcc(voice(1.0), SR, cfg)
    other = voice(alpha)
    grid = np.round(np.arange(0.80, 1.2001, 0.02), 2)

    def dist(w):
        X = mfcc(other, SR, FeatureConfig(cvn=True, lowfreq=100.0, deltas=0, warp=float(w)))
        return np.linalg.norm(X[:, 1:] - ref[:, 1:])  # cepstra; column 0 is log energy

    d = np.array([dist(w) for w in grid])
    d1, dm = d[grid == 1.0][0], dist(alpha)
    assert dm < 0.7 * d1
    assert dist(1 / alpha) > d1  # the wrong direction is worse than no warp
    assert abs(grid[np.argmin(d)] - alpha) <= 0.02 + 1e-9


# --- speed perturbation --------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.5, 0.9, 1.1, 1.5, 2.0])
def test_speed_perturb_length_and_pitch(factor):
    f = 500.0
    t = np.arange(SR) / SR
    x = np.sin(2 * np.pi * f * t)
    keep = x.copy()
    y = speed_perturb(x, SR, factor)
    np.testing.assert_array_equal(x, keep)
    assert abs(y.size - x.size / factor) <= 1
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    peak = np.argmax(spec) * SR / y.size
    assert abs(peak - f * factor) <= SR / y.size
    # the waveform is the tone at f * factor (away from the filter's edge transients)
    ty = np.arange(y.size)[200:-200] / SR
    basis = np.column_stack([np.sin(2 * np.pi * f * factor * ty),
                             np.cos(2 * np.pi * f * factor * ty)])
    coef = np.linalg.lstsq(basis, y[200:-200], rcond=None)[0]
    assert np.hypot(*coef) == pytest.approx(1.0, abs=1e-2)  # unit amplitude kept
    assert np.sqrt(np.mean((y[200:-200] - basis @ coef) ** 2)) < 1e-2


def test_speed_perturb_factor_one_is_an_equal_copy():
    x = tone()
    y = speed_perturb(x, SR, 1.0)
    np.testing.assert_array_equal(y, x)
    assert y is not x and not np.shares_memory(x, y)
    y[0] = 99.0
    assert x[0] != 99.0
    np.testing.assert_array_equal(speed_perturb(list(x[:300]), SR, 1.0), x[:300])


def test_speed_perturb_huge_amplitude_stays_finite():
    x = tone() / 0.8 * np.finfo(np.float64).max
    y = speed_perturb(x, SR, 1.1)
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("factor", [0.49, 2.01, 0.0, -1.0, np.nan, np.inf, "1.1", True, None])
def test_speed_perturb_bad_factor(factor):
    with pytest.raises(ValueError, match="factor must be a number from 0.5 to 2.0"):
        speed_perturb(tone(), SR, factor)


@pytest.mark.parametrize("signal, rate, match", [
    (np.zeros((10, 2)), SR, "1-D"),
    (np.zeros(0), SR, "empty"),
    (np.array([0.0, np.nan]), SR, "NaN"),
    (np.zeros(100), 10, "samplerate"),
])
def test_speed_perturb_bad_signal(signal, rate, match):
    with pytest.raises(ValueError, match=match):
        speed_perturb(signal, rate, 1.1)


# --- normalisation as its own step ---------------------------------------------------------------


@pytest.mark.parametrize("cfg", [
    FeatureConfig(),
    FeatureConfig(cvn=True, lowfreq=100.0),
    FeatureConfig(cmn=False, cvn=True),
    FeatureConfig(cmn=False),
    FeatureConfig(cvn=True, norm_frames="speech"),
    FeatureConfig(cvn=True, warp=1.1),
])
def test_normalise_false_then_cmvn_is_mfcc(cfg):
    x = np.concatenate([np.zeros(800), tone(0.4), 0.001 * tone(0.3, seed=2)])
    raw = mfcc(x, SR, cfg, normalise=False)
    np.testing.assert_array_equal(features((x, SR), cfg, normalise=False), raw)
    keep = raw.copy()
    (Z,) = cmvn([raw], cfg)
    np.testing.assert_array_equal(raw, keep)
    np.testing.assert_array_equal(Z, mfcc(x, SR, cfg))
    if cfg.cmn or cfg.cvn:
        assert np.abs(Z - raw).max() > 1e-3
    unnorm = FeatureConfig(**{**cfg.to_dict(), "cmn": False, "cvn": False})
    np.testing.assert_array_equal(raw, mfcc(x, SR, unnorm))


def test_cmvn_pools_statistics_over_utterances():
    cfg = FeatureConfig(cvn=True)
    raws = [mfcc(tone(s, freq=f, seed=k), SR, cfg, normalise=False)
            for k, (s, f) in enumerate([(0.3, 300.0), (0.5, 440.0), (0.2, 900.0)])]
    keep = [r.copy() for r in raws]
    out = cmvn(raws, cfg)
    for r, k in zip(raws, keep, strict=True):
        np.testing.assert_array_equal(r, k)
    cat = np.concatenate(raws)
    (whole,) = cmvn([cat], cfg)
    np.testing.assert_array_equal(np.concatenate(out), whole)
    # brute force: one mean and one std over all frames of all utterances
    ref = (cat - cat.mean(axis=0)) / cat.std(axis=0)
    np.testing.assert_allclose(np.concatenate(out), ref, rtol=1e-12, atol=1e-12)
    # not each utterance's own statistics
    assert np.abs(out[0].mean(axis=0)).max() > 0.1
    np.testing.assert_allclose(np.concatenate(out).mean(axis=0), 0, atol=1e-12)
    # tuples work; outputs are fresh C arrays
    out2 = cmvn(tuple(raws), cfg)
    for a, b in zip(out, out2, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.flags.c_contiguous and a.dtype == np.float64


def test_cmvn_speech_statistics_brute_force():
    cfg = FeatureConfig(cvn=True, norm_frames="speech")
    raws = [mfcc(np.concatenate([0.002 * np.random.default_rng(k).standard_normal(2400),
                                 tone(0.3, freq=200.0 * (k + 1), seed=k)]), SR, cfg,
                 normalise=False) for k in range(2)]
    out = cmvn(raws, cfg)
    sel = np.concatenate([r[speech_frames(r)] for r in raws])
    mu, sd = sel.mean(axis=0), (sel - sel.mean(axis=0)).std(axis=0)
    for r, z in zip(raws, out, strict=True):
        np.testing.assert_allclose(z, (r - mu) / sd, rtol=1e-12, atol=1e-12)
    # statistics over speech frames differ from those over all frames
    assert np.abs(np.concatenate(out) - np.concatenate(
        cmvn(raws, FeatureConfig(cvn=True)))).max() > 0.1


def test_cmvn_without_normalisation_returns_copies():
    cfg = FeatureConfig(cmn=False)
    raw = mfcc(tone(), SR, cfg, normalise=False)
    (out,) = cmvn([raw], cfg)
    np.testing.assert_array_equal(out, raw)
    assert not np.shares_memory(out, raw)


@pytest.mark.parametrize("utterances, exc, match", [
    (np.zeros((10, 39)), TypeError, r"list .*pass \[X\]"),
    ("abc", TypeError, "list"),
    ([], ValueError, "empty"),
    ([np.zeros((10, 13))], ValueError, "utterance 0 has 13 features; the configuration makes 39"),
    ([np.zeros((10, 39)), np.zeros(39)], ValueError, "utterance 1 must be a 2-D"),
    ([np.zeros((0, 39))], ValueError, "no frames"),
    ([np.full((5, 39), np.nan)], ValueError, "NaN"),
    ([np.array([["a"] * 39])], ValueError, "real numbers"),
])
def test_cmvn_bad_input(utterances, exc, match):
    with pytest.raises(exc, match=match):
        cmvn(utterances, FeatureConfig())


def test_cmvn_constant_columns_not_divided_by_zero():
    cfg = FeatureConfig(cvn=True, norm_frames="speech")
    X = np.zeros((20, 39))
    (Z,) = cmvn([X], cfg)
    np.testing.assert_array_equal(Z, 0)


def test_speech_frames_rule():
    # 30 quiet frames then 20 loud ones: the threshold is halfway between the 10th and 90th
    # percentiles of column 0; whatever the level, at least a tenth of the frames is kept
    e = np.concatenate([np.full(30, -10.0), np.full(20, 5.0)])
    X = np.column_stack([e, np.zeros_like(e)])
    mask = speech_frames(X)
    np.testing.assert_array_equal(mask, e > 0)
    np.testing.assert_array_equal(speech_frames(np.column_stack([3 * e + 7, e])), mask)
    flat = speech_frames(np.zeros((37, 3)))
    assert flat.all()
    one = speech_frames(np.array([[1.0, 2.0]]))
    assert one.tolist() == [True]
    ramp = np.linspace(0, 1, 100) ** 8  # mostly quiet: 10 % of the frames at least
    assert speech_frames(ramp[:, None]).sum() >= 10
    # five loud frames in a hundred: the 90th percentile lies in the quiet part, so the
    # threshold falls there too; the loud frames are always in
    e2 = np.concatenate([np.linspace(0.0, 0.01, 95), [1.0, 2.0, 3.0, 4.0, 5.0]])
    mask2 = speech_frames(e2[:, None])
    assert mask2[-5:].all() and mask2.sum() >= 10
    with pytest.raises(ValueError, match="2-D"):
        speech_frames(np.zeros(5))


@needs_fsdd
@pytest.mark.parametrize("cvn", [True, False])
def test_speech_frame_statistics_make_connected_speech_like_isolated_words(cvn):
    # two recordings joined by 300 ms gaps of low white noise (std 0.002, as
    # emx.datasets.join_recordings makes them), with a gap before and after: the words'
    # frames, normalised with the connected signal's statistics, against the same words
    # recorded alone and normalised together (cmvn over both recordings: the statistics of
    # the same speech). Measure: mean Euclidean distance over the words' frames (frames whose
    # window and delta context lie inside the word) over the mean norm of the isolated
    # words' frames. Over 100 random FSDD pairs (Recognizer settings cvn=True,
    # lowfreq=100) it is 0.32 with statistics over all frames, 0.18 over speech frames
    # (0.44 -> 0.14 with mean normalisation only); here 6 fixed pairs of different speakers.
    pairs = [("3_george_5", "8_jackson_12"), ("1_jackson_40", "6_lucas_3"),
             ("0_nicolas_8", "9_george_30"), ("5_lucas_21", "2_nicolas_17"),
             ("7_george_44", "4_lucas_9"), ("9_jackson_2", "3_nicolas_33")]
    rng = np.random.default_rng(0)
    ratio = {"all": [], "speech": []}
    for a, b in pairs:
        xa, _ = load_audio(FSDD / f"{a}.wav")
        xb, _ = load_audio(FSDD / f"{b}.wav")
        xa, xb = xa[: xa.size // 80 * 80], xb[: xb.size // 80 * 80]  # whole 10 ms frames
        na, nb = xa.size // 80, xb.size // 80
        gap = [0.002 * rng.standard_normal(2400) for _ in range(3)]  # 300 ms = 30 frames
        joined = np.concatenate([gap[0], xa, gap[1], xb, gap[2]])
        keep = joined.copy()
        ta, tb = np.arange(5, na - 8), np.arange(5, nb - 8)
        for rule in ratio:
            cfg = FeatureConfig(cvn=cvn, lowfreq=100.0, norm_frames=rule)
            C = features((joined, SR), cfg)
            A, B = cmvn([mfcc(xa, SR, cfg, normalise=False),
                         mfcc(xb, SR, cfg, normalise=False)], cfg)
            d = np.concatenate([np.linalg.norm(C[30 + ta] - A[ta], axis=1),
                                np.linalg.norm(C[60 + na + tb] - B[tb], axis=1)])
            ref = np.concatenate([np.linalg.norm(A[ta], axis=1), np.linalg.norm(B[tb], axis=1)])
            ratio[rule].append(d.mean() / ref.mean())
        np.testing.assert_array_equal(joined, keep)
    speech, whole = np.mean(ratio["speech"]), np.mean(ratio["all"])
    # here (all -> speech): 0.29 -> 0.20 with cvn, 0.38 -> 0.19 without; 4 of the 6 pairs
    # closer with cvn, 5 without (92 and 94 of the 100 random pairs)
    assert whole > 0.25
    assert speech < (0.8 if cvn else 0.6) * whole
    assert sum(s < w for s, w in zip(ratio["speech"], ratio["all"], strict=True)) >= 4
