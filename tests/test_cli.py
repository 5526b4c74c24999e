"""The ``emx`` command line (emx.cli): train, recognize, evaluate; labels from file names,
folders or a transcript file; front-end and model options pinned in the saved model;
grammars, insertion penalty, scores, the several-words warning; error messages and exit
codes; help texts. Runs ``main([...])`` in-process.

Most tests use a few synthetic sweeps written to a temporary folder; the ones marked
``needs_fsdd`` train on a small part of the Free Spoken Digit Dataset (takes 5-9 of every
speaker, 3 states, 1 Gaussian) and are skipped when its recordings are absent.
"""

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _fsdd import FSDD, needs_fsdd

from emx.cli import build_parser, confusion_matrix, format_confusion, main, parse_takes
from emx.speech import DEFAULT_FEATURES, Recognizer


# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Rising ('up') and falling ('down') frequency sweeps, takes 0-5, 0.4 s at 8 kHz."""
    folder = tmp_path_factory.mktemp("sweeps")
    rng = np.random.default_rng(0)
    rate = 8000
    t = np.arange(int(0.4 * rate)) / rate
    for take in range(6):
        for word, (f0, f1) in {"up": (300, 2500), "down": (2500, 300)}.items():
            freq = f0 + (f1 - f0) * t / t[-1] * (1 + 0.05 * rng.standard_normal())
            x = 0.5 * np.sin(2 * np.pi * np.cumsum(freq) / rate)
            x += 0.01 * rng.standard_normal(len(t))
            sf.write(folder / f"{word}_syn_{take}.wav", x, rate)
    return folder


@pytest.fixture(scope="module")
def sweep_model(sweeps, tmp_path_factory):
    model = tmp_path_factory.mktemp("model") / "sweeps.npz"
    assert main(["train", str(sweeps), "-o", str(model), "--states", "2", "--mix", "1",
                 "--exclude-takes", "0-1"]) == 0
    return model


@pytest.fixture(scope="module")
def fsdd_model(tmp_path_factory):
    model = tmp_path_factory.mktemp("fsdd") / "digits.npz"
    rc = main(["train", str(FSDD), "-o", str(model), "--takes", "5-9", "--states", "3",
               "--mix", "1"])
    return rc, model


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# --- helpers ----------------------------------------------------------------------------------
def test_parse_takes():
    assert parse_takes("0-4") == {0, 1, 2, 3, 4}
    assert parse_takes("7") == {7}
    assert parse_takes("0-1, 10,12-13") == {0, 1, 10, 12, 13}
    for bad in ("", "a", "4-2", "-3", "1-", "1,,2"):
        with pytest.raises(ValueError):
            parse_takes(bad)


def test_parse_takes_keeps_ranges_without_expanding_them():
    takes = parse_takes("0-100000000000")  # a set of these would take all memory
    assert takes.ranges == ((0, 100_000_000_000),)
    assert 0 in takes and 100_000_000_000 in takes and np.int64(7) in takes
    assert 100_000_000_001 not in takes and -1 not in takes and "3" not in takes
    assert None not in takes and True not in takes
    merged = parse_takes("20, 5-9,0-4,7-12")
    assert merged.ranges == ((0, 12), (20, 20))
    assert list(merged) == list(range(13)) + [20]
    assert merged == parse_takes("0-12,20") and merged != parse_takes("0-12")
    assert merged == set(range(13)) | {20} and merged != {0}
    assert parse_takes("3-3") == {3} and hash(parse_takes("1-2")) == hash(parse_takes("1,2"))
    assert repr(merged) == "Takes('0-12,20')"


def test_train_and_evaluate_with_a_huge_take_range(sweeps, sweep_model, tmp_path, capsys):
    rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "m.npz", "--states", "2",
                        "--mix", "1", "--takes", "2-100000000000", "-q")
    assert rc == 0 and "utterances: 8" in out, err
    rc, out, err = _run(capsys, "evaluate", sweep_model, sweeps, "--exclude-takes",
                        "2-100000000000")
    assert rc == 0 and "utterances: 4" in out, err


def _one_line_error(err, command, *words):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"emx {command}: error: "), err
    for w in words:
        assert w in lines[0], (w, err)


def test_model_whose_states_stay_forever_is_refused(sweeps, sweep_model, tmp_path, capsys):
    # stay_ == 1: the state is never left, so its word could never be recognised
    with np.load(sweep_model) as z:
        arrays = {k: z[k] for k in z.files}
    for stay in (np.ones_like(arrays["stay_"]), np.where(np.arange(len(arrays["stay_"])) == 1,
                                                         1.0, arrays["stay_"])):
        model = tmp_path / "forever.npz"
        np.savez(model, **dict(arrays, stay_=stay))
        for argv in (["recognize", model, sweeps / "up_syn_0.wav"],
                     ["evaluate", model, sweeps]):
            rc, out, err = _run(capsys, *argv)
            assert rc == 2 and out == ""
            _one_line_error(err, argv[0], "cannot load the model", "stay_", "never be left")


def test_reserved_silence_label_is_refused(sweeps, sweep_model, tmp_path, capsys):
    transcript = tmp_path / "t.txt"
    transcript.write_text("up_syn_0.wav up\ndown_syn_0.wav <sil> down\n")
    for argv in (["evaluate", sweep_model, sweeps],
                 ["train", sweeps, "-o", tmp_path / "m.npz"]):
        rc, out, err = _run(capsys, *argv, "--labels-from", transcript)
        assert rc == 2 and out == ""
        _one_line_error(err, argv[0], f"{transcript}:2", "<sil>", "reserved")
    assert not (tmp_path / "m.npz").exists()
    words = tmp_path / "words"
    for label in ("up", "<sil>"):
        (words / label).mkdir(parents=True)
        shutil.copy(sweeps / "up_syn_0.wav", words / label / "a_0.wav")
    rc, out, err = _run(capsys, "evaluate", sweep_model, words, "--labels-from", "folders")
    assert rc == 2
    _one_line_error(err, "evaluate", "<sil>", "reserved")


def _bad_audio(folder, kind):
    rng = np.random.default_rng(0)
    if kind in (1, 10):
        sf.write(folder / "up_bad_9.wav", 0.1 * rng.standard_normal(kind), 8000)
        return "shorter than one analysis window"
    if kind == "channels":
        sf.write(folder / "up_bad_9.wav", np.zeros((800, 1000)), 8000)
        return "1000 channels"
    sf.write(folder / "up_bad_9.wav", 0.1 * rng.standard_normal(800), 100_000_000)
    return "100000000 Hz"


@pytest.mark.parametrize("kind", [1, 10, "channels", "rate"])
def test_implausible_audio_exits_2(sweeps, sweep_model, tmp_path, capsys, kind):
    folder = tmp_path / "audio"
    shutil.copytree(sweeps, folder)
    message = _bad_audio(folder, kind)
    bad = folder / "up_bad_9.wav"
    rc, out, err = _run(capsys, "recognize", sweep_model, bad)
    assert rc == 2 and out == ""  # a 10-sample file is no longer "recognised" as a word
    _one_line_error(err, "recognize", "up_bad_9.wav", message)
    rc, out, err = _run(capsys, "recognize", sweep_model, bad, "--connected")
    assert rc == 2 and out == ""
    _one_line_error(err, "recognize", "up_bad_9.wav", message)
    rc, out, err = _run(capsys, "evaluate", sweep_model, folder)
    assert rc == 2 and out == ""
    _one_line_error(err, "evaluate", "up_bad_9.wav", message)
    rc, out, err = _run(capsys, "train", folder, "-o", tmp_path / "m.npz", "--states", "2",
                        "--mix", "1", "-q")
    assert rc == 2 and out == "" and not (tmp_path / "m.npz").exists()
    _one_line_error(err, "train", "up_bad_9.wav", message)


def test_confusion_matrix_and_format():
    counts, labels = confusion_matrix(["a", "a", "b", "c"], ["a", "b", "b", "a"],
                                      labels=["b", "a"])
    assert labels == ["b", "a", "c"]  # given order, then the others sorted
    np.testing.assert_array_equal(counts, [[1, 0, 0], [1, 1, 0], [0, 1, 0]])
    lines = format_confusion(counts, labels).splitlines()
    assert lines[0].split() == ["ref\\hyp", "b", "a", "c", "n", "%corr"]
    assert lines[1].split() == ["b", "1", "0", "0", "1", "100.0"]
    assert lines[2].split() == ["a", "1", "1", "0", "2", "50.0"]
    assert lines[3].split() == ["c", "0", "1", "0", "1", "0.0"]
    assert len({len(line) for line in lines}) == 1  # aligned columns


# --- synthetic sweeps -------------------------------------------------------------------------
def test_train_evaluate_recognize_sweeps(sweeps, sweep_model, capsys):
    assert sweep_model.is_file()
    rc, out, err = _run(capsys, "evaluate", sweep_model, sweeps, "--takes", "0-1")
    assert rc == 0, err
    assert "utterances: 4 (isolated words)" in out
    assert "accuracy: 100.00%  (4 of 4 correct)" in out
    assert "WER" not in out  # isolated words: accuracy and the confusion matrix
    rc, out, err = _run(capsys, "recognize", sweep_model, sweeps / "up_syn_0.wav",
                        sweeps / "down_syn_1.wav")
    assert rc == 0, err
    assert out.splitlines() == [f"{sweeps / 'up_syn_0.wav'}\tup",
                                f"{sweeps / 'down_syn_1.wav'}\tdown"]


def test_train_prints_summary(sweeps, tmp_path, capsys):
    rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "m.npz", "--states", "2",
                        "--mix", "2", "--iter", "2", "--include-takes", "2-5", "--verbose")
    assert rc == 0, err
    assert "utterances: 8" in out
    assert "words: 2 (down up)" in out
    assert "training time:" in out
    # --verbose logs every Baum-Welch pass (1 and 2 Gaussians, 2 passes each)
    passes = [line for line in err.splitlines() if "pass" in line and "/frame" in line]
    assert len(passes) == 4 and "2 Gaussian(s) per state, pass 2/2" in passes[-1]
    assert (tmp_path / "m.npz").is_file()


def test_transcript_labels(sweeps, tmp_path, capsys):
    # relative and absolute paths, comments, blank lines; labels unrelated to the file names
    lines = ["# sweeps", ""]
    for take in range(2, 6):
        lines.append(f"up_syn_{take}.wav rising")
        lines.append(f"{sweeps / f'down_syn_{take}.wav'}  falling")
    transcript = tmp_path / "train.txt"
    transcript.write_text("\n".join(lines) + "\n")
    model = tmp_path / "m.npz"
    rc, out, err = _run(capsys, "train", sweeps, "-o", model, "--labels-from", transcript,
                        "--states", "2", "--mix", "1")
    assert rc == 0, err
    assert "utterances: 8" in out and "words: 2 (falling rising)" in out

    test = tmp_path / "test.txt"
    test.write_text("up_syn_0.wav rising\ndown_syn_0.wav falling\n")
    rc, out, err = _run(capsys, "evaluate", model, sweeps, "--labels-from", test)
    assert rc == 0, err
    assert "accuracy: 100.00%" in out
    header = next(line for line in out.splitlines() if line.startswith("ref\\hyp"))
    assert header.split()[1:3] == ["falling", "rising"]

    # several words on a line: connected-word scoring, no confusion matrix
    test.write_text("up_syn_0.wav rising rising\n")
    rc, out, err = _run(capsys, "evaluate", model, sweeps, "--labels-from", test)
    assert rc == 0, err
    assert "(connected words)" in out and "N=2" in out and "confusion" not in out

    # several words on a line in training: embedded training on the word string
    rc, out, err = _run(capsys, "train", sweeps, "-o", model, "--labels-from", test,
                        "--states", "3")
    assert rc == 0, err
    assert "utterances: 1" in out and "words: 1 (rising)" in out


def test_recognize_connected_prints_times(sweeps, sweep_model, capsys):
    rc, out, err = _run(capsys, "recognize", sweep_model, sweeps / "up_syn_0.wav",
                        "--connected")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].endswith("\tup")
    start, end, label = lines[1].split()
    assert 0.0 <= float(start) < 0.1 and 0.3 < float(end) <= 0.41 and label in ("up", "down")


# --- errors -----------------------------------------------------------------------------------
def test_missing_audio_dir(tmp_path, capsys):
    rc, out, err = _run(capsys, "train", tmp_path / "nope", "-o", tmp_path / "m.npz")
    assert rc == 2
    assert "audio folder not found" in err and str(tmp_path / "nope") in err
    assert not (tmp_path / "m.npz").exists()


def test_no_matching_files(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    rc, out, err = _run(capsys, "train", tmp_path, "-o", tmp_path / "m.npz")
    assert rc == 2 and "no files matching '*.wav'" in err


def test_unlabelled_file_names(sweeps, tmp_path, capsys):
    sf.write(tmp_path / "noise.wav", np.zeros(800), 8000)
    rc, out, err = _run(capsys, "train", tmp_path, "-o", tmp_path / "m.npz")
    assert rc == 2 and "noise.wav" in err and "--labels-from" in err


def test_take_selection_errors(sweeps, tmp_path, capsys):
    rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "m.npz", "--takes", "40-49")
    assert rc == 2 and "no files" in err and "takes" in err
    rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "m.npz", "--takes", "4-2")
    assert rc == 2 and "bad take range" in err  # argparse usage error
    rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "m.npz", "--takes", "1",
                        "--exclude-takes", "2")
    assert rc == 2 and "not allowed with" in err
    sf.write(tmp_path / "a_b.wav", np.zeros(800), 8000)  # label, but no take number
    rc, out, err = _run(capsys, "train", tmp_path, "-o", tmp_path / "m.npz", "--takes", "1")
    assert rc == 2 and "no take number" in err


def test_missing_output_folder(sweeps, tmp_path, capsys):
    rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "no" / "m.npz")
    assert rc == 2 and "output folder not found" in err


def test_unreadable_audio_in_training(tmp_path, capsys):
    (tmp_path / "a_x_0.wav").write_bytes(b"not audio at all")
    rc, out, err = _run(capsys, "train", tmp_path, "-o", tmp_path / "m.npz")
    assert rc == 2 and "training failed" in err and "a_x_0.wav" in err


def test_missing_transcript(sweeps, tmp_path, capsys):
    rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "m.npz", "--labels-from",
                        tmp_path / "none.txt")
    assert rc == 2 and "transcript file not found" in err
    bad = tmp_path / "t.txt"
    bad.write_text("missing.wav yes\n")
    rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "m.npz", "--labels-from", bad)
    assert rc == 2 and f"{bad}:1" in err and "missing.wav" in err


@pytest.mark.parametrize("content", [b"garbage, not a model", None])
def test_corrupt_model(sweeps, tmp_path, capsys, content):
    model = tmp_path / "m.npz"
    if content is None:
        np.savez(model, a=np.zeros(3))  # a valid npz, but not a recogniser
    else:
        model.write_bytes(content)
    for argv in (["recognize", model, sweeps / "up_syn_0.wav"], ["evaluate", model, sweeps]):
        rc, out, err = _run(capsys, *argv)
        assert rc == 2 and "cannot load the model" in err and out == ""


def test_missing_model(sweeps, tmp_path, capsys):
    rc, out, err = _run(capsys, "recognize", tmp_path / "none.npz", sweeps / "up_syn_0.wav")
    assert rc == 2 and "model file not found" in err


def test_recognize_missing_file_continues(sweeps, sweep_model, tmp_path, capsys):
    rc, out, err = _run(capsys, "recognize", sweep_model, tmp_path / "gone.wav",
                        sweeps / "up_syn_0.wav")
    assert rc == 2
    assert "gone.wav" in err
    assert out.strip().endswith("\tup")  # the readable file is still recognised


def test_usage(capsys):
    rc, out, err = _run(capsys)
    assert rc == 2 and "train" in err and "evaluate" in err
    rc, out, err = _run(capsys, "--help")
    assert rc == 0 and "recognize" in out
    rc, out, err = _run(capsys, "train")
    assert rc == 2 and "required" in err


def test_python_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "emx.cli", "recognize", str(tmp_path / "x.npz"),
                           "y.wav"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "model file not found" in proc.stderr


# --- FSDD -------------------------------------------------------------------------------------
@needs_fsdd
def test_fsdd_train(fsdd_model):
    rc, model = fsdd_model
    assert rc == 0 and model.is_file()


@needs_fsdd
def test_fsdd_evaluate(fsdd_model, capsys):
    rc, model = fsdd_model
    assert rc == 0
    rc, out, err = _run(capsys, "evaluate", model, FSDD, "--takes", "0-1")
    assert rc == 0, err
    n = len(list(FSDD.glob("*_[01].wav")))
    assert f"utterances: {n} (isolated words)" in out
    accuracy = float(out.split("accuracy: ")[1].split("%")[0])
    assert accuracy > 80.0
    lines = out.splitlines()
    start = lines.index("confusion matrix (rows: reference, columns: recognised):") + 1
    rows = lines[start + 1:start + 11]
    assert [r.split()[0] for r in rows] == [str(d) for d in range(10)]
    counts = np.array([[int(c) for c in r.split()[1:11]] for r in rows])
    assert counts.sum() == n
    assert np.trace(counts) / n * 100 == pytest.approx(accuracy, abs=0.01)


@needs_fsdd
def test_fsdd_recognize(fsdd_model, capsys):
    rc, model = fsdd_model
    assert rc == 0
    wav = FSDD / "7_jackson_0.wav"
    rc, out, err = _run(capsys, "recognize", model, wav, "--connected")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{wav}\t7"
    assert len(lines) >= 2 and all(len(line.split()) == 3 for line in lines[1:])


@needs_fsdd
def test_fsdd_scores_match_the_model(fsdd_model, capsys):
    rc, model = fsdd_model
    assert rc == 0
    wav = FSDD / "3_jackson_0.wav"
    rc, out, err = _run(capsys, "recognize", model, wav, "--scores")
    assert rc == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    rec = Recognizer.load(model)
    assert rows["word"] == [str(w) for w in rec.classes_] == [str(d) for d in range(10)]
    loglik = np.array([float(v) for v in rows["loglik"]])
    posterior = np.array([float(v) for v in rows["posterior"]])
    assert len(loglik) == len(posterior) == 10  # one number per word
    np.testing.assert_allclose(loglik, rec.decision_function([wav])[0], atol=0.006)
    np.testing.assert_allclose(posterior, rec.predict_proba([wav])[0], rtol=1e-3, atol=1e-12)
    assert out.splitlines()[0] == f"{wav}\t{rec.classes_[loglik.argmax()]}"


@pytest.fixture(scope="module")
def three_digits(tmp_path_factory):
    """FSDD '3 8 1' (jackson, take 0: not in the training takes) joined with 0.3 s pauses."""
    rng = np.random.default_rng(1)
    parts = [1e-4 * rng.standard_normal(2400)]
    for digit in (3, 8, 1):
        x, rate = sf.read(FSDD / f"{digit}_jackson_0.wav")
        parts += [x, 1e-4 * rng.standard_normal(int(0.3 * rate))]
    path = tmp_path_factory.mktemp("joined") / "three.wav"
    sf.write(path, np.concatenate(parts), rate)
    return path


@needs_fsdd
def test_fsdd_several_words_warning(fsdd_model, three_digits, capsys):
    rc, model = fsdd_model
    assert rc == 0
    rc, out, err = _run(capsys, "recognize", model, three_digits)
    assert rc == 0, err  # a warning, not an error
    assert len(out.splitlines()) == 1 and out.startswith(f"{three_digits}\t")
    assert f"warning: {three_digits} sounds like " in err and "use --connected" in err
    n = int(err.split("sounds like ")[1].split()[0])
    found = err.split("(")[1].split(")")[0].split()
    assert n >= 2 and len(found) == n
    # the same words as connected recognition finds
    rc, out, err2 = _run(capsys, "recognize", model, three_digits, "--connected")
    assert rc == 0 and err2 == ""
    assert out.splitlines()[0] == f"{three_digits}\t{' '.join(found)}"
    assert [line.split()[2] for line in out.splitlines()[1:]] == found
    # a single word draws no warning
    rc, out, err = _run(capsys, "recognize", model, FSDD / "3_jackson_0.wav")
    assert rc == 0 and err == ""


@needs_fsdd
def test_fsdd_insertion_penalty(fsdd_model, three_digits, capsys):
    rc, model = fsdd_model
    assert rc == 0

    def words(*extra):
        rc, out, err = _run(capsys, "recognize", model, three_digits, "--connected", *extra)
        assert rc == 0, err
        return out.splitlines()[0].split("\t")[1].split()

    default, few, many = words(), words("--insertion-penalty", "-10000"), words(
        "--insertion-penalty", "20")
    assert len(few) == 1
    assert len(many) > len(default) >= 2
    assert words("--insertion-penalty", str(Recognizer.load(model).word_insertion_penalty)) \
        == default
    # evaluate: the penalty is reported and changes the insertions
    transcript = three_digits.parent / "three.txt"
    transcript.write_text(f"{three_digits.name} 3 8 1\n")
    counts = []
    for penalty in ("-10000", "20"):
        rc, out, err = _run(capsys, "evaluate", model, three_digits.parent, "--labels-from",
                            transcript, "--insertion-penalty", penalty)
        assert rc == 0, err
        assert f"insertion penalty: {float(penalty):g}" in out
        counts.append(out.split("WER: ")[1])
    assert "D=2, I=0" in counts[0]  # one word for three
    assert int(counts[1].split("I=")[1].split(")")[0]) > 0


@needs_fsdd
def test_fsdd_grammar_json_and_text(fsdd_model, three_digits, tmp_path, capsys):
    rc, model = fsdd_model
    assert rc == 0
    rc, out, err = _run(capsys, "recognize", model, three_digits, "--connected")
    free = out.splitlines()[0].split("\t")[1]
    assert free != "3 8 1"  # this small model misses the 8: the grammar must supply it
    text = tmp_path / "pairs.txt"
    text.write_text("# digits 3 8 1, in that order\n<s>: 3   # the start\n3: 8\n\n8: 1\n"
                    "1: </s>\n")
    js = tmp_path / "pairs.json"
    js.write_text(json.dumps({"<s>": ["3"], "3": ["8"], "8": [1], "1": ["</s>"]}))
    for grammar in (text, js):
        # --grammar implies --connected: words and times
        rc, out, err = _run(capsys, "recognize", model, three_digits, "--grammar", grammar)
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0] == f"{three_digits}\t3 8 1"
        assert [line.split()[2] for line in lines[1:]] == ["3", "8", "1"]
        transcript = tmp_path / "three.txt"
        transcript.write_text(f"{three_digits} 3 8 1\n")
        rc, out, err = _run(capsys, "evaluate", model, tmp_path, "--labels-from", transcript,
                            "--grammar", grammar)
        assert rc == 0, err
        assert f"grammar: {grammar}" in out and "S=0, D=0, I=0" in out


# --- grammar, scores, errors, folders (synthetic sweeps) ------------------------------------
def test_grammar_forces_words(sweeps, sweep_model, tmp_path, capsys):
    up = sweeps / "up_syn_0.wav"
    forced = {"<s>": ["down"], "down": ["</s>"]}
    (tmp_path / "down.json").write_text(json.dumps(forced))
    (tmp_path / "down.txt").write_text("<s>: down  # only 'down'\ndown: </s>\n")
    for grammar in ("down.json", "down.txt"):
        rc, out, err = _run(capsys, "recognize", sweep_model, up, "--grammar",
                            tmp_path / grammar)
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0] == f"{up}\tdown" and len(lines) == 2 and lines[1].split()[2] == "down"
        # evaluate with the grammar: every file is 'down', half of them wrong
        rc, out, err = _run(capsys, "evaluate", sweep_model, sweeps, "--takes", "0-1",
                            "--grammar", tmp_path / grammar, "--errors")
        assert rc == 0, err
        assert "(connected words)" in out and "word accuracy: 50.00%" in out
        assert "N=4, S=2, D=0, I=0" in out
        assert "  up_syn_0.wav: up -> down" in out and "down_syn_0.wav:" not in out
    (tmp_path / "up.txt").write_text("<s>: up\nup: </s>\n")
    rc, out, err = _run(capsys, "recognize", sweep_model, up, "--grammar", tmp_path / "up.txt")
    assert rc == 0 and out.splitlines()[0] == f"{up}\tup"


@pytest.mark.parametrize("content, message", [
    ("<s>: up\nup: sideways </s>\n", "bad.txt:2: 'sideways' is not a word of the model"),
    ("<s>: up\nleft: up\n", "bad.txt:2: 'left' is not a word of the model"),
    ("<s> up\n", "bad.txt:1: expected 'word: follower"),
    ("up:\n", "'up' lists no followers"),
    ("# nothing\n", "has no entries"),
    ('{"<s>": ["up"],\n "up": "down"}', "the entry 'up' must be a list of words"),
    ('{"<s>": ["up"],\n "up": ["down"', "bad.txt:2: invalid JSON"),
    (None, "grammar file not found"),
])
def test_grammar_errors(sweeps, sweep_model, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.txt"
    if content is not None:
        bad.write_text(content)
    for argv in (["recognize", sweep_model, sweeps / "up_syn_0.wav"],
                 ["evaluate", sweep_model, sweeps]):
        rc, out, err = _run(capsys, *argv, "--grammar", bad)
        assert rc == 2 and message in err and out == ""


def test_scores(sweeps, sweep_model, capsys):
    files = [sweeps / "up_syn_0.wav", sweeps / "down_syn_0.wav"]
    rc, out, err = _run(capsys, "recognize", sweep_model, *files, "--scores")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 8  # per file: the word, then 'word', 'loglik', 'posterior' rows
    for k, (path, word) in enumerate(zip(files, ("up", "down"), strict=True)):
        head, words, loglik, posterior = lines[4 * k:4 * k + 4]
        assert head == f"{path}\t{word}"
        assert words.split() == ["word", "down", "up"]  # the order of classes_
        assert loglik.split()[0] == "loglik" and posterior.split()[0] == "posterior"
        ll = [float(v) for v in loglik.split()[1:]]
        p = [float(v) for v in posterior.split()[1:]]
        assert len(ll) == len(p) == 2  # one number per word
        assert ["down", "up"][int(np.argmax(ll))] == word
        assert sum(p) == pytest.approx(1.0, abs=1e-3) and max(p) > 0.5


def test_insertion_penalty_changes_connected_words(sweeps, sweep_model, capsys):
    up = sweeps / "up_syn_0.wav"
    counts = []
    for penalty in ("-10000", "0", "200"):
        rc, out, err = _run(capsys, "recognize", sweep_model, up, "--connected",
                            "--insertion-penalty", penalty)
        assert rc == 0, err
        counts.append(len(out.splitlines()) - 1)
    assert counts[0] == 1 and counts[2] > counts[0]


def test_evaluate_errors_lists_misrecognised(sweeps, sweep_model, tmp_path, capsys):
    transcript = tmp_path / "wrong.txt"  # up_syn_0 labelled 'down': one error
    transcript.write_text("up_syn_0.wav down\ndown_syn_0.wav down\nup_syn_1.wav up\n")
    for flag in ("--errors", "-v", "--verbose"):
        rc, out, err = _run(capsys, "evaluate", sweep_model, sweeps, "--labels-from",
                            transcript, flag)
        assert rc == 0, err
        assert "accuracy: 66.67%  (2 of 3 correct)" in out
        lines = out.splitlines()
        assert lines[lines.index("errors: 1 file(s)") + 1:] == ["  up_syn_0.wav: down -> up"]
    rc, out, err = _run(capsys, "evaluate", sweep_model, sweeps, "--labels-from", transcript)
    assert rc == 0 and "errors" not in out and "up_syn_0" not in out
    # a reference word the model does not know: a warning, and counted as an error
    transcript.write_text("up_syn_0.wav sideways\nup_syn_1.wav up\n")
    rc, out, err = _run(capsys, "evaluate", sweep_model, sweeps, "--labels-from", transcript,
                        "--errors")
    assert rc == 0 and "does not know the word(s) sideways" in err
    assert "  up_syn_0.wav: sideways -> up" in out


@pytest.fixture(scope="module")
def word_tree(sweeps, tmp_path_factory):
    """The sweeps as one folder per word, at two depths, with names that hold no label:
    tree/up/s2.wav, tree/extra/down/s5.wav ...; plus a hidden folder of non-audio."""
    root = tmp_path_factory.mktemp("tree")
    for take in range(6):
        for word in ("up", "down"):
            folder = root / word if take % 2 else root / "extra" / word
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(sweeps / f"{word}_syn_{take}.wav", folder / f"s{take}.wav")
    (root / ".cache" / "up").mkdir(parents=True)
    (root / ".cache" / "up" / "s3.wav").write_bytes(b"not audio")  # skipped
    return root


def test_labels_from_folders_recursive(word_tree, tmp_path, capsys):
    model = tmp_path / "tree.npz"
    rc, out, err = _run(capsys, "train", word_tree, "-o", model, "--labels-from", "folders",
                        "--states", "2", "--mix", "1", "--iter", "2", "--pattern", "s[2-5].wav")
    assert rc == 0, err
    assert "utterances: 8" in out and "words: 2 (down up)" in out  # both depths, not .cache
    assert list(Recognizer.load(model).classes_) == ["down", "up"]
    # a 'down' sweep filed under up/: one error, shown relative to AUDIO_DIR
    test = tmp_path / "test"
    for word, take in (("up", 0), ("down", 0), ("up", 1)):
        (test / "a" / word).mkdir(parents=True, exist_ok=True)
        shutil.copy(word_tree / "extra" / word / "s0.wav", test / "a" / word / f"t{take}.wav")
    shutil.copy(word_tree / "extra" / "down" / "s0.wav", test / "a" / "up" / "odd.wav")
    rc, out, err = _run(capsys, "evaluate", model, test, "--labels-from", "folders", "--errors")
    assert rc == 0, err
    assert "utterances: 4 (isolated words)" in out
    assert "(3 of 4 correct)" in out
    assert out.splitlines()[-1] == f"  {Path('a', 'up', 'odd.wav')}: up -> down"
    # files directly in AUDIO_DIR have no word folder
    shutil.copy(word_tree / "up" / "s1.wav", test / "loose.wav")
    rc, out, err = _run(capsys, "evaluate", model, test, "--labels-from", "folders")
    assert rc == 2 and "loose.wav" in err and "word folder" in err


def test_labels_from_names_recursive(sweeps, tmp_path, capsys):
    for take in range(6):  # the sweeps spread over nested folders, sorted by path
        folder = tmp_path / "data" / f"speaker{take % 2}" / ("deep" if take > 3 else "")
        folder.mkdir(parents=True, exist_ok=True)
        for word in ("up", "down"):
            shutil.copy(sweeps / f"{word}_syn_{take}.wav", folder)
    rc, out, err = _run(capsys, "train", tmp_path / "data", "-o", tmp_path / "m.npz",
                        "--states", "2", "--mix", "1", "--iter", "2", "--exclude-takes", "0")
    assert rc == 0, err
    assert "utterances: 10" in out and "words: 2 (down up)" in out
    # an unlabelled file deep in the tree is named relative to AUDIO_DIR
    sf.write(tmp_path / "data" / "speaker1" / "deep" / "noise.wav", np.zeros(800), 8000)
    rc, out, err = _run(capsys, "train", tmp_path / "data", "-o", tmp_path / "m.npz")
    assert rc == 2 and f"'{Path('speaker1', 'deep', 'noise.wav')}'" in err
    assert "--labels-from folders" in err


def test_labels_from_file_named_like_a_mode(sweeps, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("folders").write_text("".join(f"{w}_syn_{t}.wav {w}\n" for w in ("up", "down")
                                       for t in range(2, 6)))
    rc, out, err = _run(capsys, "train", sweeps, "-o", "m.npz", "--labels-from", "./folders",
                        "--states", "2", "--mix", "1", "--iter", "1")
    assert rc == 0, err
    assert "utterances: 8" in out


def test_recognize_folder(sweeps, sweep_model, capsys):
    rc, out, err = _run(capsys, "recognize", sweep_model, sweeps, "--pattern", "UP_*")
    assert rc == 0, err
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [
        str(sweeps / f"up_syn_{t}.wav") for t in range(6)]
    assert all(line.endswith("\tup") for line in lines)
    rc, out, err = _run(capsys, "recognize", sweep_model, sweeps, "--pattern", "*.flac")
    assert rc == 2 and "no files matching '*.flac'" in err
    # options between the files
    rc, out, err = _run(capsys, "recognize", sweep_model, sweeps / "up_syn_0.wav", "--scores",
                        sweeps / "down_syn_0.wav")
    assert rc == 0, err
    assert [line.split("\t")[1] for line in out.splitlines() if "\t" in line] == ["up", "down"]
    assert len(out.splitlines()) == 8


# --- train options ----------------------------------------------------------------------------
def test_train_options_pinned_in_model(sweeps, tmp_path, capsys):
    model = tmp_path / "m.npz"
    rc, out, err = _run(
        capsys, "train", sweeps, "-o", model, "--takes", "2-5", "--covariance-type", "full",
        "--states", "3", "--mix", "1", "--iter", "2", "--samplerate", "16000", "--no-cvn",
        "--no-cmn", "--lowfreq", "50", "--highfreq", "3500", "--numcep", "10", "--no-silence",
        "--var-floor", "0.05", "--insertion-penalty", "-25", "--jobs", "2",
    )
    assert rc == 0, err
    rec = Recognizer.load(model)
    cfg = rec.feature_config_
    assert (cfg.samplerate, cfg.cmn, cfg.cvn, cfg.lowfreq, cfg.highfreq, cfg.numcep) == (
        16000, False, False, 50.0, 3500.0, 10)
    assert (cfg.deltas, cfg.winlen) == (DEFAULT_FEATURES.deltas, DEFAULT_FEATURES.winlen)
    assert rec.n_features_in_ == 30
    assert (rec.covariance_type, rec.n_states, rec.n_mix, rec.n_iter, rec.silence) == (
        "full", 3, 1, 2, False)
    assert rec.var_floor == 0.05 and rec.word_insertion_penalty == -25.0
    assert rec.pool_.covars_.shape[-2:] == (30, 30)
    assert "features: 30 per frame (10 cepstra" in out and "16000 Hz audio" in out
    assert "50-3500 Hz" in out and "no normalisation" in out
    # the model resamples 8 kHz audio to its 16 kHz
    rc, out, err = _run(capsys, "recognize", model, sweeps / "up_syn_0.wav")
    assert rc == 0 and out.endswith("\tup\n")


def test_train_defaults_pinned_in_model(sweep_model):
    rec = Recognizer.load(sweep_model)
    cfg = rec.feature_config_
    assert cfg.samplerate == 8000  # the rate of the training audio
    for name in ("cmn", "cvn", "lowfreq", "highfreq", "numcep", "deltas"):
        assert getattr(cfg, name) == getattr(DEFAULT_FEATURES, name)
    defaults = Recognizer()
    assert (rec.covariance_type, rec.silence, rec.var_floor, rec.word_insertion_penalty) == (
        defaults.covariance_type, defaults.silence, defaults.var_floor,
        defaults.word_insertion_penalty)
    assert rec.n_states == 2 and rec.n_mix == 1


def test_train_states_auto(sweeps, tmp_path, capsys):
    model = tmp_path / "m.npz"
    rc, out, err = _run(capsys, "train", sweeps, "-o", model, "--states", "auto",
                        "--frames-per-state", "10", "--mix", "1", "--iter", "1")
    assert rc == 0, err
    rec = Recognizer.load(model)
    assert rec.n_states == "auto" and rec.frames_per_state == 10.0
    assert set(rec.word_states_) <= {3, 4, 5}  # 0.4 s: about 40 frames, 10 per state
    assert "states per word (auto)" in out


def test_train_verbosity(sweeps, tmp_path, capsys, monkeypatch):
    argv = ["train", sweeps, "-o", tmp_path / "m.npz", "--states", "2", "--mix", "1",
            "--iter", "3", "--takes", "2-5"]
    rc, out, err = _run(capsys, *argv)  # stderr is not a terminal: quiet
    assert rc == 0 and err == ""
    rc, out, err = _run(capsys, *argv, "--verbose")
    assert rc == 0 and len([line for line in err.splitlines() if "pass" in line]) == 3
    assert "log-likelihood" in err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: verbose
    rc, out, err = _run(capsys, *argv)
    assert rc == 0 and len([line for line in err.splitlines() if "pass" in line]) == 3
    rc, out, err = _run(capsys, *argv, "--quiet")
    assert rc == 0 and err == ""
    rc, out, err = _run(capsys, *argv, "-q", "-v")
    assert rc == 2 and "not allowed with" in err


@pytest.mark.parametrize("options, message", [
    (["--lowfreq", "3000", "--highfreq", "2000"], "invalid front end"),
    (["--samplerate", "8000", "--highfreq", "5000"], "Nyquist"),
    (["--numcep", "40"], "numcep"),
    (["--states", "many"], "positive integer or 'auto'"),
    (["--jobs", "0"], "--jobs"),
    (["--covariance-type", "spherical"], "invalid choice"),
    (["--var-floor", "-1"], "at least 0"),
    (["--insertion-penalty", "nan"], "expected a number"),
])
def test_train_bad_options(sweeps, tmp_path, capsys, options, message):
    rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "m.npz", *options)
    assert rc == 2 and message in err
    assert not (tmp_path / "m.npz").exists()


# --- version and help -------------------------------------------------------------------------
def test_version(capsys):
    rc, out, err = _run(capsys, "--version")
    assert rc == 0
    assert out == f"emx {importlib.metadata.version('emx-learn')}\n"


_OPTIONS = {
    "train": ["-o", "--output", "--labels-from", "--pattern", "--takes", "--include-takes",
              "--exclude-takes", "--covariance-type", "--states", "--frames-per-state",
              "--mix", "--iter", "--samplerate", "--cmn", "--no-cmn", "--cvn", "--no-cvn",
              "--lowfreq", "--highfreq", "--numcep", "--silence", "--no-silence",
              "--var-floor", "--jobs", "--insertion-penalty", "-v", "--verbose", "-q",
              "--quiet", "--augment", "--vtln", "--no-vtln"],
    "recognize": ["--connected", "--grammar", "--insertion-penalty", "--scores", "--pattern"],
    "evaluate": ["--labels-from", "--pattern", "--takes", "--include-takes", "--exclude-takes",
                 "--connected", "--grammar", "--insertion-penalty", "--errors", "-v",
                 "--verbose"],
}


@pytest.mark.parametrize("command", sorted(_OPTIONS))
def test_help_mentions_every_option(command, capsys):
    rc, out, err = _run(capsys, command, "--help")
    assert rc == 0
    for option in _OPTIONS[command]:
        assert f"{option} " in out or f"{option}," in out or f"{option}\n" in out, option
    assert "examples:" in out and f"emx {command} " in out
    # every argument has a help text, and the parser has no option the list above misses
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = sub.choices[command]._actions
    assert all(a.help for a in actions)
    listed = {o for a in actions for o in a.option_strings} - {"-h", "--help"}
    assert listed == set(_OPTIONS[command])


def test_module_docstring_has_examples():
    import emx.cli

    doc = emx.cli.__doc__
    for example in ("emx train ", "emx recognize ", "emx evaluate ", "--labels-from folders",
                    "--grammar", "--scores", "--errors"):
        assert example in doc


def test_train_augment_and_vtln(sweeps, tmp_path, capsys):
    model = tmp_path / "m.npz"
    rc, out, err = _run(capsys, "train", sweeps, "-o", model, "--states", "2", "--mix", "1",
                        "--iter", "2", "--augment", "0.9", "1.1", "--vtln", "--verbose")
    assert rc == 0, err
    assert "VTLN: warps of 36 speakers" in err  # 12 utterances x 3 speeds, one warp each
    assert "features: 36 utterances" in err
    rec = Recognizer.load(model)
    assert list(rec.augment) == [0.9, 1.1] and rec.vtln is True
    rc, out, err = _run(capsys, "evaluate", model, sweeps)
    assert rc == 0, err
    rc, out, err = _run(capsys, "train", sweeps, "-o", model, "--augment", "1.0")
    assert rc == 2 and "augment" in err


# --- progress on a terminal -------------------------------------------------------------------
def test_train_defaults_are_the_recognizers():
    # the command line writes its defaults out (so that --help need not import the recogniser)
    import inspect

    from emx import cli

    signature = {n: p.default for n, p in inspect.signature(Recognizer).parameters.items()}
    assert cli._DEFAULTS == {name: signature[name] for name in cli._DEFAULTS}
    assert cli._FRONT_END_DEFAULTS == {name: getattr(DEFAULT_FEATURES, name)
                                       for name in cli._FRONT_END_DEFAULTS}
    assert set(cli._FRONT_END_DEFAULTS) == set(cli._FRONT_END)


def _synthetic_fit(verbose="unset"):
    from _synthetic_speech import _isolated

    X, labels = _isolated(12, seed=3)
    kw = {} if verbose == "unset" else {"verbose": verbose}
    return Recognizer(n_states=3, n_mix=2, n_iter=2, silence=False, **kw).fit(X, labels)


@pytest.mark.parametrize("tty", [True, False])
def test_recognizer_default_progress_is_one_line_on_a_terminal_only(monkeypatch, capsys, tty):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    assert Recognizer().verbose is None
    _synthetic_fit()
    out, err = capsys.readouterr()
    assert out == ""
    if not tty:  # a pipe, a file, a notebook: quiet
        assert err == ""
        return
    # one status line rewritten in place (\r, clear to the end of the line), ended once
    updates = err.split("\r")[1:]
    assert err.startswith("\r") and err.endswith("\n") and err.count("\n") == 1
    assert all(u.endswith("\x1b[K") for u in updates[:-1]) and updates[-1].endswith("\x1b[K\n")
    assert updates[0].startswith("features of 12 utterances")
    passes = [u for u in updates if "pass" in u]
    assert [p.split(":")[0] for p in passes] == [
        "1 Gaussian(s) per state, pass 1/2", "1 Gaussian(s) per state, pass 2/2",
        "2 Gaussian(s) per state, pass 1/2", "2 Gaussian(s) per state, pass 2/2"]
    assert updates[-1].startswith("trained 3 words in ")


@pytest.mark.parametrize("tty", [True, False])
def test_recognizer_verbose_false_is_quiet_and_true_logs_lines(monkeypatch, capsys, tty):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    _synthetic_fit(verbose=False)
    assert capsys.readouterr() == ("", "")
    _synthetic_fit(verbose=True)  # a line per phase and pass, terminal or not
    out, err = capsys.readouterr()
    assert out == "" and "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert len([line for line in lines if "pass" in line and "/frame" in line]) == 4
    assert lines[-1].startswith("trained 3 words in ")


def test_recognizer_progress_without_isatty_is_quiet(monkeypatch, capsys):
    # a replacement stderr without isatty (some IDE consoles) counts as not a terminal
    class Sink:
        def __init__(self):
            self.text = []

        def write(self, s):
            self.text.append(s)

        def flush(self):
            pass

    sink = Sink()
    monkeypatch.setattr(sys, "stderr", sink)
    _synthetic_fit()
    assert sink.text == []


@pytest.mark.parametrize("tty", [True, False])
def test_train_logs_passes_on_a_terminal_only(sweeps, tmp_path, monkeypatch, capsys, tty):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "m.npz", "--states", "2",
                        "--mix", "1", "--iter", "2", "--include-takes", "2-5")
    assert rc == 0 and "utterances: 8" in out, err
    passes = [line for line in err.splitlines() if "pass" in line and "/frame" in line]
    assert len(passes) == (2 if tty else 0)
    assert ("training on 8 utterances of 2 words" in err) == tty
    if tty:  # -q silences it on a terminal too
        rc, out, err = _run(capsys, "train", sweeps, "-o", tmp_path / "m.npz", "--states", "2",
                            "--mix", "1", "--iter", "2", "--include-takes", "2-5", "-q")
        assert rc == 0 and err == ""
