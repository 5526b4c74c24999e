"""The ``emx`` command line (emx.cli): train, recognize, evaluate; labels from file names or a
transcript file; error messages and exit codes. Runs ``main([...])`` in-process.

Most tests use a few synthetic sweeps written to a temporary folder; the ones marked
``needs_fsdd`` train on a small part of the Free Spoken Digit Dataset (takes 5-9 of every
speaker, 3 states, 1 Gaussian) and are skipped when its recordings are absent.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emx.cli import confusion_matrix, format_confusion, main, parse_takes


def _fsdd_dir():
    env = os.environ.get("EMX_FSDD")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"


FSDD = _fsdd_dir()
needs_fsdd = pytest.mark.skipif(
    not (FSDD / "0_george_0.wav").is_file(),
    reason=f"FSDD recordings not found in {FSDD} (set EMX_FSDD to their folder)",
)


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
    assert "accuracy: 100.00%" in out
    assert "S=0, D=0, I=0" in out
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
    assert "2 Gaussian(s) per state, pass 2/2" in err  # --verbose logs every pass
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
