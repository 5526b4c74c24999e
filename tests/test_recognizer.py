"""speech.Recognizer on the Free Spoken Digit Dataset, scoring and persistence."""

import os
from pathlib import Path

import numpy as np
import pytest

from emx.speech import Recognizer, word_errors

FSDD = Path(os.environ.get("EMX_FSDD", Path(__file__).resolve().parents[2] / "shared" / "data"
                           / "fsdd"))


def fsdd():
    files = sorted(FSDD.glob("*_*_*.wav")) if FSDD.is_dir() else []
    if not files:
        pytest.skip(f"FSDD recordings not found in {FSDD} (set EMX_FSDD)")
    meta = [f.stem.split("_") for f in files]
    return ([str(f) for f in files], [m[0] for m in meta], [m[1] for m in meta],
            np.array([int(m[2]) for m in meta]))


@pytest.fixture(scope="module")
def official():
    paths, labels, _, takes = fsdd()
    train = np.flatnonzero(takes >= 5)
    test = np.flatnonzero(takes < 5)
    rec = Recognizer().fit([paths[i] for i in train], [labels[i] for i in train])
    return rec, [paths[i] for i in test], [labels[i] for i in test]


def test_official_split_accuracy(official):
    rec, test_paths, test_labels = official
    result = rec.score(test_paths, test_labels)
    assert result["n_words"] == 200
    assert result["accuracy"] >= 0.99, result


def test_scores_and_probabilities(official):
    rec, test_paths, test_labels = official
    scores = rec.decision_function(test_paths[:20])
    proba = rec.predict_proba(test_paths[:20])
    assert scores.shape == proba.shape == (20, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert [rec.words_[i] for i in scores.argmax(axis=1)] == rec.predict(test_paths[:20])


def test_save_and_load_round_trip(official, tmp_path):
    rec, test_paths, _ = official
    path = tmp_path / "digits.npz"
    rec.save(path)
    again = Recognizer.load(path)
    np.testing.assert_allclose(again.decision_function(test_paths[:10]),
                               rec.decision_function(test_paths[:10]), rtol=1e-12)
    assert again.feature_config == rec._config and again.n_states == rec.n_states
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a valid emx recognizer"):
        Recognizer.load(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.arange(3))
    with pytest.raises(ValueError, match="not a valid emx recognizer"):
        Recognizer.load(foreign)


def test_connected_words_from_joined_recordings(official):
    rec, test_paths, test_labels = official
    from emx.speech import load_audio, mfcc

    rng = np.random.default_rng(0)
    utts, refs = [], []
    for _ in range(10):
        idx = rng.choice(len(test_paths), 3)
        signal = np.concatenate([load_audio(test_paths[i])[0] for i in idx])
        utts.append(mfcc(signal, 8000, rec._config))
        refs.append([test_labels[i] for i in idx])
    result = rec.score(utts, refs)
    words = rec.recognize(utts[0])
    assert result["accuracy"] >= 0.9, result
    assert words[0].start == 0.0 and all(w.end > w.start for w in words)
    assert all(a.end == b.start for a, b in zip(words, words[1:], strict=False))


def test_word_errors_count_like_hresults():
    assert word_errors("1 2 3".split(), "1 2 3".split()) == (0, 0, 0, 3)
    assert word_errors("1 2 3".split(), "1 3".split()) == (0, 1, 0, 3)
    assert word_errors("1 2 3".split(), "1 2 2 3".split()) == (0, 0, 1, 3)
    assert word_errors("1 2 3".split(), "1 5 3".split()) == (1, 0, 0, 3)
    assert word_errors([], ["4"]) == (0, 0, 1, 0)


def test_bad_training_input():
    X = np.random.default_rng(0).normal(size=(30, 5))
    with pytest.raises(ValueError, match="transcripts"):
        Recognizer().fit([X, X], ["a"])
    with pytest.raises(ValueError, match="shorter than"):
        Recognizer(n_states=5).fit([X[:3], X], ["a", "a"])
    with pytest.raises(ValueError, match="NaN"):
        Recognizer().fit([np.full((10, 5), np.nan)], ["a"])
    with pytest.raises(ValueError, match="not fitted"):
        Recognizer().predict([X])
    with pytest.raises(ValueError, match="different feature dimensions"):
        Recognizer(n_states=2).fit([X, X[:, :3]], ["a", "b"])
