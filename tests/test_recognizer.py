"""speech.Recognizer on the Free Spoken Digit Dataset, scoring and persistence."""

import numpy as np
import pytest
from _fsdd import FSDD
from _synthetic_speech import _isolated, _speak, _strings

from emx.speech import SILENCE, Recognizer, word_errors


def fsdd():
    files = sorted(FSDD.glob("*_*_*.wav")) if FSDD.is_dir() else []
    if not files:
        pytest.skip(f"FSDD recordings not found in {FSDD} (set EMX_DATA; see tests/_fsdd.py)")
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
    result = rec.evaluate(test_paths, test_labels)
    assert result["n_words"] == 200
    assert result["accuracy"] >= 0.99, result
    assert rec.score(test_paths, test_labels) == pytest.approx(result["accuracy"])


def test_scores_and_probabilities(official):
    rec, test_paths, test_labels = official
    scores = rec.decision_function(test_paths[:20])
    proba = rec.predict_proba(test_paths[:20])
    assert scores.shape == proba.shape == (20, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert [rec.words_[i] for i in scores.argmax(axis=1)] == list(rec.predict(test_paths[:20]))


def test_save_and_load_round_trip(official, tmp_path):
    rec, test_paths, _ = official
    path = tmp_path / "digits.npz"
    rec.save(path)
    again = Recognizer.load(path)
    np.testing.assert_allclose(again.decision_function(test_paths[:10]),
                               rec.decision_function(test_paths[:10]), rtol=1e-12)
    assert again.feature_config_ == rec.feature_config_ and again.n_states == rec.n_states
    assert again.feature_config_.samplerate == 8000 and again.get_params() == rec.get_params()
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
    from emx.datasets import join_recordings
    from emx.speech import mfcc

    signals, refs, rate = join_recordings(test_paths, test_labels, 12, n_words=(3, 5),
                                          random_state=0)
    utts = [mfcc(s, rate, rec.feature_config_) for s in signals]
    result = rec.evaluate(utts, refs)
    assert result["accuracy"] >= 0.9, result
    words = rec.recognize(utts[0])
    assert words[0].start >= 0
    assert all(w.end > w.start for w in words)
    assert all(a.end <= b.start for a, b in zip(words, words[1:], strict=False))


def test_word_errors_count_like_hresults():
    assert word_errors("1 2 3".split(), "1 2 3".split()) == (0, 0, 0, 3)
    assert word_errors("1 2 3".split(), "1 3".split()) == (0, 1, 0, 3)
    assert word_errors("1 2 3".split(), "1 2 2 3".split()) == (0, 0, 1, 3)
    assert word_errors("1 2 3".split(), "1 5 3".split()) == (1, 0, 0, 3)
    assert word_errors([], ["4"]) == (0, 0, 1, 0)


# ---------------------------------------------------------------------------- synthetic words
@pytest.fixture(scope="module")
def synthetic():
    X, y = _isolated(90, 0)
    return Recognizer(n_states=3, n_mix=2, n_iter=4, word_insertion_penalty=-5).fit(X, y)


def test_synthetic_isolated_and_connected(synthetic):
    X, y = _isolated(60, 1)
    assert list(synthetic.predict(X)) == y
    U, refs = _strings(20, 2)
    assert [[w.label for w in synthetic.recognize(u)] for u in U] == refs
    assert synthetic.silence_skip_ < 0.5  # silence is usually there, and was learnt so


def test_embedded_training_from_unsegmented_strings():
    # HERest: the models are learnt from word strings without any boundaries
    U, refs = _strings(120, 3)
    rec = Recognizer(n_states=3, n_mix=1, n_iter=6, word_insertion_penalty=-5).fit(U, refs)
    X, y = _isolated(30, 4)
    assert list(rec.predict(X)) == y
    U2, refs2 = _strings(15, 5)
    assert rec.evaluate(U2, refs2)["accuracy"] == 1.0


def test_training_likelihood_never_decreases(synthetic):
    h = synthetic.history_
    assert len(h) == 2 * synthetic.n_iter  # 1 then 2 Gaussians per state
    for m in (1, 2):
        ll = np.array([x["loglik"] for x in h if x["n_mix"] == m])
        assert np.all(np.diff(ll) >= -1e-8 * np.abs(ll[1:])), ll
        assert ll[-1] > ll[0]
    assert synthetic.pool_.n_mix == 2 and np.all(np.isfinite(synthetic.pool_.means_))


def _log_gmm(rec, X):
    """(T, n_pool) state log-likelihoods by scipy, per Gaussian."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    h = rec.pool_
    S, M = h.weights_.shape
    out = np.empty((len(X), S))
    for s in range(S):
        comp = [np.log(h.weights_[s, m]) + multivariate_normal(h.means_[s, m],
                                                                np.diag(h.covars_[s, m])).logpdf(X)
                for m in range(M)]
        out[:, s] = logsumexp(comp, axis=0)
    return out


def test_isolated_score_matches_log_space_reference(synthetic):
    from scipy.special import logsumexp

    rec = synthetic
    X, _ = _isolated(3, 6)
    q = rec.silence_skip_
    stay = rec.stay_
    scores = rec.decision_function(X)
    off = rec.unit_offsets_
    for i, x in enumerate(X):
        b = _log_gmm(rec, x)
        for w in range(len(rec.words_)):
            # the network [sil] w [sil] by hand: state list and log transitions
            sil = list(range(off[-2], off[-1]))
            word = list(range(off[w], off[w + 1]))
            states = sil + word + sil
            L = len(states)
            A = np.full((L, L), -np.inf)
            for k in range(L):
                A[k, k] = np.log(stay[states[k]])
            leave = np.log1p(-stay[states])
            ns, nw = len(sil), len(word)
            for k in list(range(ns - 1)) + list(range(ns, ns + nw - 1)) + list(
                    range(ns + nw, L - 1)):
                A[k, k + 1] = leave[k]
            A[ns - 1, ns] = leave[ns - 1]  # silence -> word
            A[ns + nw - 1, ns + nw] = leave[ns + nw - 1] + np.log1p(-q)  # word -> silence
            start = np.full(L, -np.inf)
            start[0], start[ns] = np.log1p(-q), np.log(q)
            final = np.full(L, -np.inf)
            final[ns + nw - 1] = leave[ns + nw - 1] + np.log(q)
            final[L - 1] = leave[L - 1]
            alpha = start + b[0, states]
            for t in range(1, len(x)):
                alpha = logsumexp(alpha[:, None] + A, axis=0) + b[t, states]
            ref = logsumexp(alpha + final)
            assert scores[i, w] == pytest.approx(ref, rel=1e-10)


def test_align_gives_the_transcript_with_silences(synthetic):
    U, refs = _strings(5, 7)
    for u, ref in zip(U, refs, strict=True):
        segments, states = synthetic.align(u, ref, return_states=True)
        assert [s.label for s in segments if s.label != SILENCE] == ref
        assert segments[0].start == 0 and segments[-1].end == pytest.approx(0.01 * len(u))
        assert all(a.end == b.start for a, b in zip(segments, segments[1:], strict=False))
        assert len(states) == len(u) and states.min() == 0 and states.max() == 2
    with pytest.raises(ValueError, match="not in the model"):
        synthetic.align(U[0], ["a", "zebra"])


def test_grammar_restricts_the_word_sequence(synthetic):
    rng = np.random.default_rng(8)
    u = _speak(["a", "b", "c"], rng)
    assert [w.label for w in synthetic.recognize(u)] == ["a", "b", "c"]
    # only "a" may start, only "b" may follow it, and the utterance may end after "b"
    g = {"<s>": ["a"], "a": ["b"], "b": ["</s>"], "c": []}
    assert [w.label for w in synthetic.recognize(u, grammar=g)] == ["a", "b"]
    assert synthetic.evaluate([u], [["a", "b", "c"]], grammar=g)["deletions"] == 1
    with pytest.raises(ValueError, match="unknown word"):
        synthetic.recognize(u, grammar={"a": ["zebra"]})
    with pytest.raises(ValueError, match="not a word"):
        synthetic.recognize(u, grammar={"zebra": ["a"]})


def test_auto_states_follow_word_duration():
    rng = np.random.default_rng(9)
    X = [rng.normal(size=(n, 4)) for n in [20] * 5 + [40] * 5]
    y = ["short"] * 5 + ["long"] * 5
    rec = Recognizer(n_states="auto", frames_per_state=5, n_mix=1, n_iter=1, silence=False)
    rec.fit(X, y)
    assert dict(zip(rec.words_, rec.word_states_.tolist(), strict=True)) == {"long": 8,
                                                                               "short": 4}


def test_synthetic_save_load(synthetic, tmp_path):
    path = tmp_path / "syn.npz"
    synthetic.save(path)
    again = Recognizer.load(path)
    X, _ = _isolated(5, 10)
    np.testing.assert_array_equal(again.decision_function(X), synthetic.decision_function(X))
    np.testing.assert_array_equal(again.word_states_, synthetic.word_states_)


def test_bad_training_input():
    X = np.random.default_rng(0).normal(size=(30, 5))
    with pytest.raises(ValueError, match="transcripts"):
        Recognizer().fit([X, X], ["a"])
    with pytest.warns(UserWarning, match="Left out 1 training utterance"):
        rec = Recognizer(n_states=5, n_mix=1, n_iter=1).fit([X[:3], X], ["a", "a"])
    assert rec.words_ == ["a"]
    with pytest.raises(ValueError, match="shorter than"), pytest.warns(UserWarning):
        Recognizer(n_states=5).fit([X[:3], X], ["b", "a"])
    with pytest.raises(ValueError, match="NaN"):
        Recognizer().fit([np.full((10, 5), np.nan)], ["a"])
    with pytest.raises(ValueError, match="not fitted"):
        Recognizer().predict([X])
    with pytest.raises(ValueError, match="different feature dimensions"):
        Recognizer(n_states=2).fit([X, X[:, :3]], ["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        Recognizer().fit([X], [[]])
    with pytest.raises(ValueError, match="reserved"):
        Recognizer().fit([X], [["a", SILENCE]])
    with pytest.raises(ValueError, match="covariance_type"):
        Recognizer(covariance_type="tied").fit([X], ["a"])
    with pytest.raises(ValueError, match="n_states"):
        Recognizer(n_states=0).fit([X], ["a"])
    rec = Recognizer(n_states=2, n_mix=1, n_iter=1).fit([X], ["a"])
    with pytest.raises(ValueError, match="5"):
        rec.predict([X[:, :3]])


@pytest.mark.parametrize("silence", [False, True])
def test_chain_network_is_a_distribution_over_paths(silence):
    # Summed over every utterance length, the probability of all paths through a transcript's
    # network is one: entries, exits, optional silences and ends are consistent.
    from emx.speech.network import chain

    rng = np.random.default_rng(11)
    offsets = np.array([0, 2, 5, 8])  # words 0 and 1, silence unit 2
    stay = rng.uniform(0.2, 0.8, 8)
    net = chain([0, 1, 0], offsets, stay, 2 if silence else None, skip=0.3)
    p = net.startprob
    A = net.transmat
    final = np.exp(net.log_final)
    total = 0.0
    for _ in range(400):
        total += p @ final
        p = p @ A
    assert total == pytest.approx(1.0, abs=1e-12)
    assert len(net.first) == (7 if silence else 3)


def test_threads_give_identical_models():
    U, refs = _strings(40, 12)
    X, y = _isolated(30, 13)
    fits = [Recognizer(n_states=3, n_mix=2, n_iter=2, n_jobs=j).fit(U + X, refs + y)
            for j in (1, 2)]
    assert fits[0].history_ == fits[1].history_
    np.testing.assert_array_equal(fits[0].pool_.means_, fits[1].pool_.means_)
    np.testing.assert_array_equal(fits[0].stay_, fits[1].stay_)


def test_full_covariances(tmp_path):
    X, y = _isolated(60, 14)
    rec = Recognizer(n_states=3, n_mix=2, n_iter=3, covariance_type="full",
                     word_insertion_penalty=-5).fit(X, y)
    assert rec.pool_.covars_.shape == (3 * 3 + 3, 2, 4, 4)
    X2, y2 = _isolated(30, 15)
    assert list(rec.predict(X2)) == y2
    U, refs = _strings(8, 16)
    assert rec.evaluate(U, refs)["accuracy"] == 1.0
    rec.save(tmp_path / "full.npz")
    np.testing.assert_array_equal(Recognizer.load(tmp_path / "full.npz").decision_function(X2),
                                  rec.decision_function(X2))


# ---------------------------------------------------------------------------- no silent garbage
def test_batch_with_short_utterances_equals_one_by_one(synthetic):
    X, _ = _isolated(12, 30)
    rng = np.random.default_rng(31)
    # 3 frames: shorter than every 3-state word plus nothing (silence is optional), so
    # scorable; 2 frames: too short for every word; the word models have 3 states each
    X[2] = X[2][:3]
    X[7] = X[7][:3]
    batch = synthetic.decision_function(X)
    one = np.vstack([synthetic.decision_function([x]) for x in X])
    np.testing.assert_array_equal(batch, one)
    assert np.all(np.isfinite(batch))
    # a word with more states than an utterance has frames scores -inf, the rest is unaffected
    rec = Recognizer(n_states="auto", frames_per_state=2, n_mix=1, n_iter=2, silence=False)
    long = [np.vstack([x, x]) for x in X[:6] if len(x) > 3]
    rec.fit(long + [X[2], X[7]] * 3, ["long"] * len(long) + ["short"] * 6)
    k = int(rec.word_states_[rec.words_.index("long")])
    assert k > 4 >= int(rec.word_states_[rec.words_.index("short")])
    test = [long[0], X[2][:k - 1], long[1], rng.normal(size=(3, 4)), long[2]]
    with pytest.warns(UserWarning, match="2 of 5 utterance") as record:
        batch = rec.decision_function(test)
    assert len(record) == 1
    with pytest.warns(UserWarning):
        one = np.vstack([rec.decision_function([x]) for x in test])
    np.testing.assert_array_equal(batch, one)
    col = rec.words_.index("long")
    assert np.isneginf(batch[[1, 3], col]).all() and np.isfinite(batch[[0, 2, 4]]).all()
    assert np.isfinite(batch[:, 1 - col]).all()
    with pytest.warns(UserWarning):
        assert list(rec.predict(test)[[1, 3]]) == ["short", "short"]
    with pytest.raises(ValueError, match=r"cannot be scored by any word, e.g. utterance 1 "
                                         r"of 1 frames"):
        rec.decision_function([long[0], X[2][:1]])


def test_integer_labels_keep_their_type_and_order(tmp_path):
    X, y = _isolated(60, 32)
    code = {"a": 10, "b": 5, "c": 0}
    yi = np.array([code[w] for w in y])
    rec = Recognizer(n_states=3, n_mix=1, n_iter=3).fit(X, yi)
    assert rec.classes_.dtype.kind == "i" and rec.classes_.tolist() == [0, 5, 10]
    X2, y2 = _isolated(30, 33)
    y2i = np.array([code[w] for w in y2])
    pred = rec.predict(X2)
    assert pred.dtype.kind == "i" and np.mean(pred == y2i) == 1.0
    assert rec.score(X2, y2i) == 1.0
    assert rec.score(X2, [str(v) for v in y2i]) == 1.0  # the labels as text find the same words
    proba = rec.predict_proba(X2)
    np.testing.assert_array_equal(rec.classes_[proba.argmax(axis=1)], pred)
    assert [w.label for w in rec.recognize(X2[0])] == [int(y2i[0])]
    rec.save(tmp_path / "ints.npz")
    again = Recognizer.load(tmp_path / "ints.npz")
    assert again.classes_.tolist() == [0, 5, 10] and again.predict(X2).dtype.kind == "i"
    with pytest.raises(ValueError, match="all strings or all numbers"):
        Recognizer(n_states=3, n_mix=1, n_iter=1).fit(X[:4], [1, "a", 1, "a"])
    with pytest.raises(ValueError, match="string or a finite number"):
        Recognizer(n_states=3, n_mix=1, n_iter=1).fit(X[:2], [1.0, float("nan")])


def test_estimator_api_clone_repr_and_grid_search():
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import GridSearchCV, cross_val_score

    from emx.speech import FeatureConfig

    rec = Recognizer(n_states=3, n_mix=1, n_iter=2, feature_config=FeatureConfig(cvn=True))
    assert is_classifier(rec)
    assert repr(rec).startswith("Recognizer(") and "n_states=3" in repr(rec)
    twin = clone(rec)
    assert twin.get_params()["n_states"] == 3 and twin.feature_config == rec.feature_config
    assert twin.feature_config is not rec.feature_config
    assert rec.set_params(n_mix=2) is rec and rec.n_mix == 2
    X, y = _isolated(60, 34)
    scores = cross_val_score(Recognizer(n_states=3, n_mix=1, n_iter=2), X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores >= 0.95)
    grid = GridSearchCV(Recognizer(n_iter=2, n_mix=1), {"n_states": [2, 3]}, cv=2).fit(X, y)
    assert grid.best_score_ >= 0.95 and len(grid.cv_results_["mean_test_score"]) == 2
    best = grid.best_estimator_
    assert best.n_states == grid.best_params_["n_states"]
    assert np.all(best.word_states_ == best.n_states)
    assert list(grid.predict(X[:5])) == y[:5]
    with pytest.raises(ValueError, match="use evaluate"):
        grid.best_estimator_.score(X[:2], [["a", "b"], "c"])


def test_silence_on_features_whose_first_column_is_not_energy():
    # Column 0 is reversed: highest in silence. Initialising silence from the lowest
    # column 0 would start it on speech (it then learns to be skipped, skip ~ 0.9); the
    # utterance edges find the real silence, which is there 70% of the time.
    flip = np.array([-1.0, 1.0, 1.0, 1.0])
    X, y = _isolated(90, 0)
    rec = Recognizer(n_states=3, n_mix=2, n_iter=4, word_insertion_penalty=-5)
    rec.fit([x * flip for x in X], y)
    assert rec.feature_config_ is None
    assert rec.silence_skip_ < 0.5
    X2, y2 = _isolated(40, 35)
    assert list(rec.predict([x * flip for x in X2])) == y2
    U, refs = _strings(15, 36)
    assert rec.evaluate([u * flip for u in U], refs)["accuracy"] == 1.0
    with pytest.raises(ValueError, match="feature arrays without a front end"):
        rec.predict([np.zeros(800)], samplerate=8000)


def test_array_and_waveform_input_errors(synthetic):
    X, _ = _isolated(2, 37)
    with pytest.raises(ValueError, match="list of utterances"):
        synthetic.predict(X[0])
    with pytest.raises(ValueError, match="list of utterances"):
        synthetic.predict("0_george_0.wav")
    with pytest.raises(ValueError, match="list of utterances"):
        synthetic.predict((np.zeros(800), 8000))
    with pytest.raises(ValueError, match="samplerate"):
        synthetic.predict([np.zeros(100)])
    with pytest.raises(ValueError, match="dtype"):
        synthetic.predict([np.array(["a", "b"])])
    with pytest.raises(ValueError, match="not in the model"):
        synthetic.align(X[0], ["zebra"])
    before = [x.copy() for x in X]
    synthetic.decision_function(X)
    for a, b in zip(before, X, strict=True):
        np.testing.assert_array_equal(a, b)


def test_old_format_files_still_load(synthetic, tmp_path):
    import json

    path = tmp_path / "v3.npz"
    synthetic.save(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays["header"]))
    header["version"] = 2
    del header["feature_config_"]
    header["feature_config"] = {"cvn": True, "lowfreq": 100.0}  # what 0.1 wrote for arrays
    for name in ("n_jobs", "verbose"):
        del header["params"][name]
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "v2.npz", **arrays)
    old = Recognizer.load(tmp_path / "v2.npz")  # 4 features: no front end of emx's
    assert old.feature_config_ is None and old.words_ == synthetic.words_
    header["feature_config"] = {"cvn": True, "numcep": 2, "deltas": 1}
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "v2.npz", **arrays)
    with pytest.warns(UserWarning, match="sample rate"):
        old = Recognizer.load(tmp_path / "v2.npz")
    assert old.feature_config_.samplerate is None and old.feature_config_.n_features == 4
    X, _ = _isolated(4, 38)
    with pytest.warns(UserWarning, match="not normalised"):  # the arrays are not CVN'd
        np.testing.assert_array_equal(old.decision_function(X),
                                      synthetic.decision_function(X))
    header["version"] = 99
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "v99.npz", **arrays)
    with pytest.raises(ValueError, match="version 99"):
        Recognizer.load(tmp_path / "v99.npz")


# ---------------------------------------------------------------------------- the front end
def test_model_pins_its_front_end(official, tmp_path):
    from emx.speech import DEFAULT_FEATURES, features

    rec, test_paths, _ = official
    assert rec.feature_config is None  # the parameter stays as given
    assert rec.feature_config_.samplerate == 8000
    assert rec.feature_config_.cvn == DEFAULT_FEATURES.cvn
    p = test_paths[3]
    np.testing.assert_array_equal(rec.features(p), features(p, rec.feature_config_))
    assert [w.label for w in rec.recognize(rec.features(p))] == \
        [w.label for w in rec.recognize(p)]
    with pytest.warns(UserWarning, match="not normalised as the model's front end"):
        # emx's default FeatureConfig() is not the model's: far from every model, so the
        # scaled forward pass underflows; the log-space pass still scores every word
        scores = rec.decision_function([features(p)])
    assert np.all(np.isfinite(scores))
    for call in (lambda X: rec.recognize(X), lambda X: rec.align(X, "7")):
        with pytest.warns(UserWarning, match="not normalised"):
            call(features(p))
    with pytest.raises(ValueError, match="39"):
        rec.predict([rec.features(p)[:, :13]])


def _resampled(paths, rate):
    from emx.speech import load_audio

    return [load_audio(p, rate)[0] for p in paths]


def test_other_sample_rates_are_resampled(official, tmp_path):
    import soundfile as sf

    rec, test_paths, test_labels = official
    base = rec.score(test_paths, test_labels)
    for rate in (16000, 44100):
        signals = _resampled(test_paths, rate)
        assert abs(rec.score(signals, test_labels, samplerate=rate) - base) <= 0.01
        assert abs(rec.score([(s, rate) for s in signals], test_labels) - base) <= 0.01
    # files at another rate, and every entry point with a waveform
    signals = _resampled(test_paths[:10], 16000)
    files = []
    for i, s in enumerate(signals):
        files.append(tmp_path / f"u{i}.wav")
        sf.write(files[-1], s, 16000)
    np.testing.assert_array_equal(rec.predict(files), rec.predict(test_paths[:10]))
    np.testing.assert_array_equal(rec.predict(signals, samplerate=16000),
                                  rec.predict(test_paths[:10]))
    words = rec.recognize(signals[0], samplerate=16000)
    assert [w.label for w in words] == [w.label for w in rec.recognize(test_paths[0])]
    seg = rec.align(signals[0], test_labels[0], samplerate=16000)
    assert [s.label for s in seg if s.label != SILENCE] == [test_labels[0]]
    assert rec.evaluate(signals, test_labels[:10], samplerate=16000)["n_words"] == 10
    # training on audio at mixed rates resamples to the most common one, with a warning
    mixed = test_paths[:20] + files[:2]
    with pytest.warns(UserWarning, match=r"sample rates \[8000, 16000\]"):
        small = Recognizer(n_states=4, n_mix=1, n_iter=1).fit(mixed, test_labels[:20]
                                                              + test_labels[:2])
    assert small.feature_config_.samplerate == 8000


def test_cross_val_score_on_paths():
    from sklearn.model_selection import cross_val_score

    paths, labels, speakers, takes = fsdd()
    keep = [i for i in range(len(paths)) if speakers[i] == "jackson" and takes[i] < 12]
    scores = cross_val_score(Recognizer(n_mix=1, n_iter=3), [paths[i] for i in keep],
                             [int(labels[i]) for i in keep], cv=3)
    assert scores.shape == (3,) and scores.mean() >= 0.9, scores


# ---------------------------------------------------------------------------- hostile files
def _members(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    import json

    return json.loads(str(arrays.pop("header"))), arrays


def _write(path, header, arrays):
    import json

    np.savez(path, header=np.array(json.dumps(header)), **arrays)
    return path


@pytest.fixture(scope="module")
def saved(synthetic, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "syn.npz"
    synthetic.save(path)
    return _members(path)


@pytest.mark.parametrize("change, message", [
    (dict(n_mix=10**18), "n_mix must be at most 1024"),
    (dict(n_states=10**12), "n_states must be at most 10000"),
    (dict(silence_states=10**9), "silence_states must be at most 10000"),
    (dict(n_iter=10**15), "n_iter must be at most"),
    (dict(n_mix=3), "weights_ has shape"),  # the arrays hold 2 Gaussians per state
    (dict(n_states=4), "n_states=4"),
    (dict(silence_states=2), "silence model 3 states"),
    (dict(silence="yes"), "silence must be True or False"),
    (dict(word_insertion_penalty="-5"), "word_insertion_penalty must be a finite number"),
])
def test_load_refuses_absurd_parameters(saved, tmp_path, change, message):
    header, arrays = saved
    header = dict(header, params=dict(header["params"], **change))
    with pytest.raises(ValueError, match=message):
        Recognizer.load(_write(tmp_path / "bad.npz", header, arrays))


@pytest.mark.parametrize("config, field", [
    (dict(winlen=1e300), "winlen"),
    (dict(nfft=2**34), "nfft"),
    (dict(delta_width=10**12), "delta_width"),
    (dict(samplerate=10**12), "samplerate"),
    (dict(nfilt=10**9), "nfilt"),
    (dict(numcep=10**9, nfilt=10**9, deltas=0), "numcep"),
    (dict(highfreq=1e300), "highfreq"),
])
def test_load_refuses_absurd_front_ends(saved, tmp_path, config, field):
    # the synthetic model takes 4 features: numcep 2 with deltas makes a front end of 4
    header, arrays = saved
    for key in ("feature_config", "feature_config_"):
        bad = dict(header, **{key: dict(dict(numcep=2, deltas=1), **config)})
        with pytest.raises(ValueError, match=f"not a valid emx recognizer.*{field}"):
            Recognizer.load(_write(tmp_path / "bad.npz", bad, arrays))
    ok = dict(header, feature_config_=dict(numcep=2, deltas=1, samplerate=8000))
    assert Recognizer.load(_write(tmp_path / "ok.npz", ok, arrays)).feature_config_.numcep == 2


def test_load_refuses_absurd_arrays_and_topology(saved, tmp_path):
    header, arrays = saved
    S = len(arrays["stay_"])

    def refused(message, header=header, **change):
        with pytest.raises(ValueError, match=message):
            Recognizer.load(_write(tmp_path / "bad.npz", header, dict(arrays, **change)))

    # states that stay forever: their word could never be recognised
    refused(r"stay_ .*\[0, 1\).*never be left", stay_=np.ones(S))
    one = arrays["stay_"].copy()
    one[4] = 1.0
    refused(r"state 4 has 1\.0", stay_=one)
    refused(r"stay_", stay_=np.full(S, np.nan))
    refused(r"stay_ has shape", stay_=np.full(S + 1, 0.5))
    refused(r"stay_ has dtype", stay_=arrays["stay_"].astype(np.complex128))
    offsets = arrays["unit_offsets_"].copy()
    offsets[1:] += 10**6  # a unit of a million states
    refused(r"unit_offsets_ must start at 0", unit_offsets_=offsets)
    refused(r"unit_offsets_ must start at 0", unit_offsets_=arrays["unit_offsets_"] + 1)
    refused(r"weights_ rows must sum to 1", weights_=np.full_like(arrays["weights_"], 0.2))
    refused(r"covars_", covars_=-arrays["covars_"])
    refused(r"means_ has shape", means_=arrays["means_"][:, :, :3])
    refused(r"var_floor_", var_floor_=np.full(4, -1.0))
    del_means = {k: v for k, v in arrays.items() if k != "means_"}
    with pytest.raises(ValueError, match=r"missing member 'means_'"):
        Recognizer.load(_write(tmp_path / "bad.npz", header, del_means))
    refused(r"n_features must be an integer from 1 to 10000",
            header=dict(header, n_features=10**12))
    refused(r"silence_skip", header=dict(header, silence_skip=1.0))
    refused(r"words must be a non-empty sorted list",
            header=dict(header, words=header["words"][::-1]))
    refused(r"header is not a JSON object", header=[1, 2])


def _npy_header(shape, dtype="<f8"):
    """The bytes of a version 1.0 .npy header declaring ``shape``."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _zip_with(path, members):
    """A .npz whose members are given as bytes, or as callables writing to a stream."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, content in members.items():
            with z.open(name + ".npy", "w", force_zip64=True) as fh:
                if callable(content):
                    content(fh)
                else:
                    fh.write(content)
    return path


def _npy_bytes(a):
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_load_checks_declared_sizes_before_decompressing(synthetic, saved, tmp_path):
    import json
    import tracemalloc

    header, arrays = saved
    members = {"header": _npy_bytes(np.array(json.dumps(header)))}
    members.update({k: _npy_bytes(v) for k, v in arrays.items()})
    path = _zip_with(tmp_path / "copy.npz", members)
    np.testing.assert_array_equal(Recognizer.load(path).pool_.means_, synthetic.pool_.means_)

    # weights_ whose header declares 10**9 entries, with a few bytes of data
    bad = dict(members, weights_=_npy_header((10**9,)) + bytes(64))
    with pytest.raises(ValueError, match=r"weights_ has shape \(1000000000,\)"):
        Recognizer.load(_zip_with(tmp_path / "huge_shape.npz", bad))

    # the right header, then 64 MiB of zeros more than it declares: refused from the zip
    # directory's size before anything is decompressed
    def padded(fh):
        fh.write(members["weights_"])
        for _ in range(64):
            fh.write(bytes(2**20))

    with pytest.raises(ValueError, match=r"weights_ declares \d+ bytes for \d+ bytes"):
        Recognizer.load(_zip_with(tmp_path / "padded.npz", dict(members, weights_=padded)))

    # an extra member of 256 MiB of zeros (compressed to a few hundred kB) is never read
    def zeros(fh):
        fh.write(_npy_header((2**25,)))
        for _ in range(256):
            fh.write(bytes(2**20))

    path = _zip_with(tmp_path / "extra.npz", dict(members, extra=zeros))
    assert path.stat().st_size < 2**21
    tracemalloc.start()
    try:
        rec = Recognizer.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**24, peak
    np.testing.assert_array_equal(rec.pool_.means_, synthetic.pool_.means_)


def test_load_reads_only_the_expected_members(saved, tmp_path, monkeypatch):
    import zipfile

    header, arrays = saved
    path = _write(tmp_path / "extra.npz", header, dict(arrays, extra=np.zeros(10)))
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    Recognizer.load(path)
    assert sorted(opened) == sorted(f"{k}.npy" for k in ["header", *arrays])


def test_pool_is_an_emission_model_without_transitions(synthetic):
    # the pool is the states' GMMs only: no (unused) S x S transition matrix to store
    from emx.emissions import GMMEmission

    assert isinstance(synthetic.pool_, GMMEmission)
    assert not hasattr(synthetic.pool_, "transmat_")
    assert synthetic.pool_.means_.shape[0] == len(synthetic.stay_)


# ---------------------------------------------------------------------------- layouts, audio
def test_features_in_any_layout_are_accepted(synthetic):
    # e.g. librosa.feature.mfcc(...).T is Fortran ordered; slices are strided
    X, y = _isolated(12, 40)
    fortran = [np.asfortranarray(x) for x in X]
    strided = [np.repeat(x, 2, axis=1)[:, ::2] for x in X]
    reversed_rows = [np.ascontiguousarray(x[::-1])[::-1] for x in X]
    f32 = [x.astype(np.float32) for x in X]
    expected = synthetic.decision_function(X)
    for batch in (fortran, strided, reversed_rows):
        np.testing.assert_array_equal(synthetic.decision_function(batch), expected)
        assert list(synthetic.predict(batch)) == list(synthetic.predict(X))
    assert synthetic.predict(f32).tolist() == synthetic.predict(X).tolist()
    assert synthetic.recognize(fortran[0]) == synthetic.recognize(X[0])
    assert synthetic.align(strided[1], y[1]) == synthetic.align(X[1], y[1])
    feats = synthetic.features(fortran[2])
    assert feats.flags.c_contiguous and feats is not fortran[2]
    np.testing.assert_array_equal(feats, X[2])
    assert fortran[2].flags.f_contiguous  # the caller's array is untouched
    # training on Fortran-ordered or strided features gives the same model
    Xt, yt = _isolated(45, 0)
    params = dict(n_states=3, n_mix=2, n_iter=2, word_insertion_penalty=-5)
    ref = Recognizer(**params).fit(Xt, yt)
    for layout in (np.asfortranarray, lambda x: np.repeat(x, 3, axis=1)[:, 1::3]):
        other = Recognizer(**params).fit([layout(x) for x in Xt], yt)
        np.testing.assert_array_equal(other.pool_.means_, ref.pool_.means_)
        np.testing.assert_array_equal(other.stay_, ref.stay_)


@pytest.fixture(scope="module")
def with_front_end():
    # features of a front end giving 4 columns (2 cepstra and their deltas): the model then
    # takes audio too
    from emx.speech import FeatureConfig

    X, y = _isolated(45, 0)
    return Recognizer(n_states=3, n_mix=1, n_iter=2, word_insertion_penalty=-5,
                      feature_config=FeatureConfig(numcep=2, deltas=1)).fit(X, y)


@pytest.mark.parametrize("n", [1, 10])
def test_audio_too_short_for_one_frame_is_not_a_word(with_front_end, tmp_path, n):
    import soundfile as sf

    rec = with_front_end
    x = 0.1 * np.random.default_rng(0).standard_normal(n)
    path = tmp_path / "tiny.wav"
    sf.write(path, x, 8000)
    for call in (lambda: rec.predict([path]), lambda: rec.predict([(x, 8000)]),
                 lambda: rec.predict([x], samplerate=8000), lambda: rec.recognize(path),
                 lambda: rec.decision_function([path]), lambda: rec.align(path, "a")):
        with pytest.raises(ValueError, match="shorter than one analysis window"):
            call()
    long = 0.1 * np.random.default_rng(0).standard_normal(800)
    assert rec.predict([(long, 8000)])[0] in rec.classes_  # audio is taken at all


def test_audio_at_implausible_rate_or_with_many_channels(with_front_end, tmp_path):
    import soundfile as sf

    rec = with_front_end
    x = 0.1 * np.random.default_rng(0).standard_normal(800)
    with pytest.raises(ValueError, match="from 1000 to 384000 Hz"):
        rec.predict([(x, 100_000_000)])
    with pytest.raises(ValueError, match="from 1000 to 384000 Hz"):
        rec.predict([x], samplerate=100_000_000)
    sf.write(tmp_path / "fast.wav", x, 100_000_000)
    with pytest.raises(ValueError, match="100000000 Hz"):
        rec.predict([tmp_path / "fast.wav"])
    sf.write(tmp_path / "wide.wav", np.zeros((800, 1000)), 8000)
    with pytest.raises(ValueError, match="1000 channels"):
        rec.predict([tmp_path / "wide.wav"])
    with pytest.raises(ValueError, match="from 1000 to 384000 Hz"):
        Recognizer(n_states=2, n_mix=1, n_iter=1).fit([(x, 10**12)], ["a"])


def test_fit_refuses_absurd_sizes():
    X, y = _isolated(6, 41)
    with pytest.raises(ValueError, match="at most 10000"):
        Recognizer(n_states=2, n_mix=1, n_iter=1).fit([np.zeros((5, 10_001))], ["a"])
    for params, message in [(dict(n_mix=10**18), "n_mix must be at most 1024"),
                            (dict(n_states=10**12), "n_states must be at most 10000"),
                            (dict(silence_states=10**9), "silence_states must be at most"),
                            (dict(n_iter=10**9), "n_iter must be at most 100000")]:
        with pytest.raises(ValueError, match=message):
            Recognizer(**params).fit(X, y)


def test_a_far_word_leaves_the_other_words_variances_exact():
    # Every Gaussian's second moments are taken about its own mean: moving word "a" far
    # away (1e8 in one feature) must not change the other words' models. About one global
    # shift (the data mean, 3e7 away) their variances lost about 0.1 to cancellation.
    X, y = _isolated(60, 40)
    fits = []
    for offset in (1e3, 1e8):
        moved = [x + np.array([0.0, offset, 0.0, 0.0]) if w == "a" else x
                 for x, w in zip(X, y, strict=True)]
        fits.append(Recognizer(n_states=3, n_mix=1, n_iter=2, silence=False,
                               var_floor=0.0).fit(moved, y))
    near, far = fits
    others = np.r_[near.unit_offsets_[1]:near.unit_offsets_[3]]  # states of "b" and "c"
    np.testing.assert_allclose(far.pool_.covars_[others], near.pool_.covars_[others], rtol=1e-9)
    np.testing.assert_allclose(far.pool_.means_[others], near.pool_.means_[others], rtol=1e-12)


def test_warnings_name_the_callers_line():
    # predict -> decision_function -> the batch check: the warning points here, not in emx
    from emx.speech import FeatureConfig

    X, _ = _isolated(3, 41)
    rec = Recognizer(n_states=3, n_mix=1, n_iter=1).fit(X, ["a", "b", "c"])
    rec.feature_config_ = FeatureConfig(numcep=2, deltas=1, cvn=True)  # declares CVN'd input
    with pytest.warns(UserWarning, match="not normalised") as record:
        rec.predict(X)
    assert [r.filename for r in record] == [__file__]
