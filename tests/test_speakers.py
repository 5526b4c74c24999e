"""Recognition across speakers: per-speaker normalisation, speed perturbation, VTLN.

The audio is synthetic: every "word" is two or three vowel-like segments (harmonic complexes
under a three-formant envelope) between stretches of low noise, and a "speaker" scales the
pitch and every formant by one factor (a vocal tract that much shorter), so the warp a
speaker needs is known.
"""

import numpy as np
import pytest

from emx.speech import Recognizer
from emx.speech.features import cmvn, features, speed_perturb
from emx.speech.recognizer import DEFAULT_FEATURES, VTLN_GRID

SR = 8000
# formant triples (Hz) of each word's segments
WORDS = {
    "a": [(300, 900, 2500), (700, 1200, 2600)],
    "b": [(500, 1500, 2300), (300, 2200, 3000)],
    "c": [(700, 1100, 2500), (400, 800, 2400), (600, 1700, 2600)],
}


def _segment(formants, scale, seconds, rng, f0=120.0):
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    f0 = f0 * scale * (1 + 0.03 * rng.standard_normal())
    for k in range(1, int(0.45 * SR / f0)):
        f = k * f0
        amp = 0.01 + sum(np.exp(-0.5 * ((f - F * scale) / (0.08 * F * scale)) ** 2)
                         for F in formants)
        x += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return 0.1 * x * ramp


def speak(word, scale, rng):
    """One utterance of ``word`` by the speaker of formant scale ``scale``."""
    parts = [0.002 * rng.standard_normal(int(rng.uniform(0.08, 0.15) * SR))]
    for formants in WORDS[word]:
        parts.append(_segment(formants, scale, rng.uniform(0.12, 0.2), rng))
    parts.append(0.002 * rng.standard_normal(int(rng.uniform(0.08, 0.15) * SR)))
    x = np.concatenate(parts)
    return x + 0.001 * rng.standard_normal(len(x))


def corpus(n, scale, seed):
    rng = np.random.default_rng(seed)
    labels = [str(w) for w in rng.choice(list(WORDS), n)]
    return [(speak(w, scale, rng), SR) for w in labels], labels


SMALL = dict(n_states=4, n_mix=1, silence_states=1, n_iter=4, var_floor=0.1)


@pytest.fixture(scope="module")
def trained():
    X, y = corpus(45, 1.0, 0)
    return Recognizer(**SMALL).fit(X, y), X, y


# --- per-speaker normalisation -------------------------------------------------------------
def test_speaker_features_are_normalised_over_the_speakers_utterances(trained):
    rec, X, _ = trained
    cfg = rec.feature_config_
    speakers = ["p", "q", "p", None, "q", "p"]
    got = rec._batch(X[:6], speakers=speakers)
    raw = [features(x, cfg, normalise=False) for x in X[:6]]
    p = cmvn([raw[i] for i in (0, 2, 5)], cfg)
    q = cmvn([raw[i] for i in (1, 4)], cfg)
    want = [p[0], q[0], p[1], features(X[3], cfg), q[1], p[2]]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    # not what per-utterance normalisation gives (the test would pass vacuously otherwise)
    assert not np.allclose(got[0], features(X[0], cfg))
    # no speakers: per utterance, as before
    for a, x in zip(rec._batch(X[:3]), X[:3], strict=True):
        np.testing.assert_array_equal(a, features(x, cfg))


def test_speakers_in_every_entry_point(trained):
    rec, X, y = trained
    Xt, yt = corpus(12, 1.0, 1)
    spk = ["s"] * 12
    d = rec.decision_function(Xt, speakers=spk)
    feats = rec._batch(Xt, speakers=spk)
    with pytest.warns(UserWarning, match="not normalised"):  # per speaker, not utterance
        np.testing.assert_array_equal(d, rec.decision_function(feats))
    np.testing.assert_array_equal(rec.predict(Xt, speakers=spk), rec.classes_[d.argmax(1)])
    assert rec.score(Xt, yt, speakers=spk) == np.mean(rec.predict(Xt, speakers=spk) == yt)
    assert rec.evaluate(Xt, yt, speakers=spk)["accuracy"] == rec.score(Xt, yt, speakers=spk)
    fitted = Recognizer(**SMALL).fit(X, y, speakers=["t"] * len(X))
    assert fitted.score(Xt, yt, speakers=spk) >= 0.9


@pytest.mark.parametrize("speakers, match", [
    (["a"], "1 speakers"),
    ("ab", "string"),
    ([["a"], ["b"]], "hashable"),
])
def test_bad_speakers(trained, speakers, match):
    rec, X, _ = trained
    with pytest.raises(ValueError, match=match):
        rec.predict(X[:2], speakers=speakers)


# --- speed perturbation --------------------------------------------------------------------
def test_augment_adds_speed_perturbed_copies_of_audio_only(trained):
    _, X, y = trained
    rec = Recognizer(augment=(0.9, 1.1), **SMALL)
    rec._pin_front_end(rec._audio_rates(X[:2]))
    arr = features(X[2], DEFAULT_FEATURES)
    feats, labels = rec._load([X[0], X[1], arr], [y[0], y[1], y[2]])
    assert len(feats) == 7 and labels == [(y[0],)] * 3 + [(y[1],)] * 3 + [(y[2],)]
    cfg = rec.feature_config_
    np.testing.assert_array_equal(feats[0], features(X[0], cfg))
    for j, f in ((1, 0.9), (2, 1.1)):
        want = features((speed_perturb(X[0][0], SR, f), SR), cfg)
        np.testing.assert_array_equal(feats[j], want)
    assert len(feats[1]) > len(feats[0]) > len(feats[2])  # slower, then faster
    np.testing.assert_array_equal(feats[6], arr)
    fitted = rec.fit(X, y)
    assert fitted.history_[0]["loglik"] < 0 and len(fitted.classes_) == 3


@pytest.mark.parametrize("augment", [(1.0,), (0.2,), (0.9, 0.9), "0.9", (True,), 0.9])
def test_bad_augment(augment):
    X, y = corpus(6, 1.0, 2)
    with pytest.raises(ValueError, match="augment"):
        Recognizer(augment=augment, **SMALL).fit(X, y)


# --- VTLN ----------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.9, 1.12])
def test_estimate_warp_recovers_a_speakers_frequency_scale(trained, scale):
    rec, _, _ = trained
    Xs, ys = corpus(12, scale, 3)
    step = VTLN_GRID[1] - VTLN_GRID[0]
    assert abs(rec.estimate_warp(Xs, ys) - scale) <= step + 1e-9
    assert abs(rec.estimate_warp(Xs) - scale) <= step + 1e-9   # unsupervised
    Xn, yn = corpus(12, 1.0, 4)
    assert abs(rec.estimate_warp(Xn, yn) - 1.0) <= step + 1e-9


def test_vtln_model_recognises_a_warped_speaker(trained):
    rec, X, y = trained
    speakers = ["u"] * len(X)
    vt = Recognizer(vtln=True, **SMALL).fit(X, y, speakers=speakers)
    assert set(vt.training_warps_) == {("u", 1.0)}
    assert abs(vt.training_warps_[("u", 1.0)] - 1.0) <= 0.04
    Xs, ys = corpus(24, 1.15, 5)
    plain = rec.score(Xs, ys)
    assert plain < 0.8  # the warped voice is hard for the plain model
    assert vt.score(Xs, ys, speakers=["v"] * len(Xs)) >= 0.95  # one warp for the speaker
    assert vt.score(Xs, ys) >= 0.95  # a warp per utterance
    # without speakers, training warps every utterance on its own
    per_utt = Recognizer(vtln=True, **SMALL).fit(X[:20], y[:20])
    assert len(per_utt.training_warps_) == 20


def test_estimate_warp_takes_audio_only(trained):
    rec, X, y = trained
    with pytest.raises(ValueError, match="audio"):
        rec.estimate_warp([features(X[0], rec.feature_config_)])
    with pytest.raises(ValueError, match="transcripts"):
        rec.estimate_warp(X[:2], y[:1])


def test_adapt_takes_speakers_and_defaults_to_map(trained):
    rec, X, y = trained
    Xs, ys = corpus(10, 1.1, 6)
    spk = ["w"] * len(Xs)
    new = rec.adapt(Xs, ys, speakers=spk, n_iter=1)
    assert new.adaptation_method_ == "map"
    units = [(rec._unit(w),) for w in ys]
    start = new.adaptation_history_[0]["loglik"]
    want = rec._transcript_scores(rec._batch(Xs, speakers=spk), units).sum()
    assert start == pytest.approx(want, rel=1e-9)
    per_utt = rec._transcript_scores(rec._batch(Xs), units).sum()
    assert abs(start - per_utt) > 1e-3 * abs(per_utt)


def test_sat_puts_two_speakers_in_one_space():
    from _synthetic_speech import _isolated

    A0, b0 = np.diag([1.3, 0.8, 1.1, 0.9]), np.array([0.5, -0.3, 0.2, 0.1])
    X1, y1 = _isolated(40, 0)
    X2, y2 = _isolated(40, 1)
    X2 = [x @ A0.T + b0 for x in X2]  # the second speaker: an affine image of the first
    spk = ["a"] * 40 + ["b"] * 40
    params = dict(n_states=3, n_mix=1, silence_states=1, var_floor=0.1)
    sat = Recognizer(sat=True, **params).fit(X1 + X2, y1 + y2, speakers=spk)
    Wa, Wb = sat.speaker_transforms_[("a", 1.0)], sat.speaker_transforms_[("b", 1.0)]
    # speaker b's transform undoes A0 relative to speaker a's: Wb(A0 x + b0) = Wa x
    np.testing.assert_allclose(Wb[:, :4] @ A0, Wa[:, :4], atol=0.1)
    np.testing.assert_allclose(Wb[:, :4] @ b0 + Wb[:, 4], Wa[:, 4], atol=0.15)
    assert np.abs(Wa[:, :4] - Wb[:, :4]).max() > 0.15  # not two identical transforms
    with pytest.raises(ValueError, match="speakers="):
        Recognizer(sat=True, **params).fit(X1, y1)
    with pytest.raises(ValueError, match="speakers="):
        Recognizer(sat=True, **params).fit(X1, y1, speakers=["a"] * 39 + [None])
