"""FSDD loader (emx.datasets): the shared recordings, folder lookup, download from a local zip."""

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _fsdd import FSDD, needs_fsdd

import emx.datasets as ds
from emx.datasets import download_fsdd, fsdd_split, load_fsdd

SPEAKERS = ("alice", "bob")
TAKES = range(7)


def _wav_bytes(tmp_path, seed):
    path = tmp_path / f"tone{seed}.wav"
    x = np.random.default_rng(seed).normal(scale=0.1, size=400)
    sf.write(path, x, 8000, subtype="PCM_16")
    return path.read_bytes()


def fake_recordings(folder, tmp_path):
    folder.mkdir(parents=True, exist_ok=True)
    data = _wav_bytes(tmp_path, 0)
    for d in range(10):
        for s in SPEAKERS:
            for t in TAKES:
                (folder / f"{d}_{s}_{t}.wav").write_bytes(data)
    (folder / "README.md").write_text("not a recording")
    (folder / "x_alice_0.wav").write_bytes(data)
    return folder


def fake_archive(tmp_path, with_recordings=True):
    """A zip shaped like GitHub's archive of the FSDD repository."""
    path = tmp_path / "master.zip"
    data = _wav_bytes(tmp_path, 1)
    top = "free-spoken-digit-dataset-master"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}/README.md", "FSDD")
        zf.writestr(f"{top}/acquire_data/0_alice_0.wav", data)  # not under recordings/
        zf.writestr(f"{top}/recordings/../../1_evil_0.wav", data)  # path traversal: ignored
        zf.writestr(f"{top}/recordings/notes.txt", "ignored")
        if with_recordings:
            zf.writestr(f"{top}/recordings/", "")
            for d in range(10):
                for s in SPEAKERS:
                    for t in TAKES:
                        zf.writestr(f"{top}/recordings/{d}_{s}_{t}.wav", data)
    return path


N_FAKE = 10 * len(SPEAKERS) * len(TAKES)


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No $EMX_DATA, and a home folder inside tmp_path (so ~/.cache is never touched)."""
    monkeypatch.delenv("EMX_DATA", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    return home


# --- the shared recordings -----------------------------------------------------------------------


@needs_fsdd
def test_load_shared_fsdd():
    b = load_fsdd(FSDD)
    assert len(b.paths) == 2000
    assert b.paths == sorted(b.paths)
    assert all(Path(p).is_absolute() and p.endswith(".wav") for p in b.paths)
    assert sorted(set(b.speakers)) == ["george", "jackson", "lucas", "nicolas"]
    assert sorted(set(b.labels)) == [str(d) for d in range(10)]
    assert b.takes.dtype.kind == "i" and b.takes.min() == 0 and b.takes.max() == 49
    assert len(b.labels) == len(b.speakers) == len(b.takes) == 2000
    name = Path(b.paths[123]).name
    assert name == f"{b.labels[123]}_{b.speakers[123]}_{b.takes[123]}.wav"


@needs_fsdd
def test_official_split_sizes():
    b = load_fsdd(FSDD)
    train, test = fsdd_split(b)
    assert len(train) == 1800 and len(test) == 200
    assert np.intersect1d(train, test).size == 0
    assert np.all(b.takes[test] < 5) and np.all(b.takes[train] >= 5)
    # every digit and speaker appears in both parts
    for part in (train, test):
        assert set(b.labels[part]) == set(b.labels) and set(b.speakers[part]) == set(b.speakers)


@needs_fsdd
def test_emx_data_env_folder(monkeypatch, no_env):
    monkeypatch.setenv("EMX_DATA", str(FSDD))  # $EMX_DATA itself holds the wav files
    b = load_fsdd(cache_dir=no_env / "cache")
    assert len(b.paths) == 2000 and b.root == str(FSDD.resolve())


# --- folder lookup ------------------------------------------------------------------------------


def test_split_custom_takes(tmp_path):
    b = load_fsdd(fake_recordings(tmp_path / "rec", tmp_path))
    assert len(b.paths) == N_FAKE  # README.md and x_alice_0.wav ignored
    train, test = fsdd_split(b, test_takes=[0, 6])
    assert len(test) == 2 * 10 * len(SPEAKERS) and len(train) == N_FAKE - len(test)
    train, test = fsdd_split(b)
    assert len(test) == 5 * 10 * len(SPEAKERS)


def test_env_fsdd_subfolder_first(monkeypatch, no_env, tmp_path):
    data = tmp_path / "data"
    fake_recordings(data / "fsdd", tmp_path)
    (data / "0_other_0.wav").write_bytes(b"")  # $EMX_DATA/fsdd wins over $EMX_DATA
    monkeypatch.setenv("EMX_DATA", str(data))
    b = load_fsdd(cache_dir=tmp_path / "cache")
    assert len(b.paths) == N_FAKE
    assert b.root == str((data / "fsdd").resolve())


def test_cache_dir_used(no_env, tmp_path):
    cache = fake_recordings(tmp_path / "cache", tmp_path)
    b = load_fsdd(cache_dir=cache)
    assert len(b.paths) == N_FAKE and b.root == str(cache.resolve())


def test_default_cache_location(no_env, tmp_path):
    cache = fake_recordings(no_env / ".cache" / "emx" / "fsdd", tmp_path)
    assert load_fsdd().root == str(cache.resolve())


def test_repository_clone_path(tmp_path):
    clone = tmp_path / "free-spoken-digit-dataset"
    fake_recordings(clone / "recordings", tmp_path)
    b = load_fsdd(clone)
    assert len(b.paths) == N_FAKE
    assert b.root == str((clone / "recordings").resolve())


def test_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_fsdd(tmp_path / "nowhere")
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no files named \{digit\}_\{speaker\}_\{take\}\.wav"):
        load_fsdd(tmp_path)


def test_absent_error_message(monkeypatch, no_env, tmp_path):
    empty = tmp_path / "empty_data"
    empty.mkdir()
    monkeypatch.setenv("EMX_DATA", str(empty))
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError) as err:
        load_fsdd(cache_dir=cache)
    msg = str(err.value)
    assert str(empty / "fsdd") in msg and str(cache) in msg
    assert "download=True" in msg and "EMX_DATA" in msg and "path=" in msg
    assert not cache.exists()


def test_absent_error_default_cache(no_env):
    with pytest.raises(FileNotFoundError, match=r"EMX_DATA is not set") as err:
        load_fsdd()
    assert str(no_env / ".cache" / "emx" / "fsdd") in str(err.value)


def test_absent_error_names_a_missing_data_folder(monkeypatch, no_env, tmp_path):
    monkeypatch.setenv("EMX_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"EMX_DATA is '.*nowhere', which is not a folder"):
        load_fsdd(cache_dir=tmp_path / "cache")


def test_tests_find_fsdd_through_emx_data(monkeypatch, no_env, tmp_path):
    """tests/_fsdd.py reads $EMX_DATA as load_fsdd does; $EMX_FSDD only as a deprecated
    fallback."""
    import _fsdd

    data = tmp_path / "data"
    fake_recordings(data / "fsdd", tmp_path)
    legacy = fake_recordings(tmp_path / "legacy", tmp_path)
    monkeypatch.setenv("EMX_DATA", str(data))
    monkeypatch.setenv("EMX_FSDD", str(legacy))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # EMX_DATA wins: EMX_FSDD is not even looked at
        assert _fsdd._locate()[0] == (data / "fsdd").resolve()
    monkeypatch.delenv("EMX_DATA")
    with pytest.warns(DeprecationWarning, match="EMX_FSDD is deprecated.*EMX_DATA"):
        assert _fsdd._locate()[0] == legacy


# --- download -----------------------------------------------------------------------------------


def test_download_from_file_url(monkeypatch, no_env, tmp_path):
    archive = fake_archive(tmp_path)
    monkeypatch.setattr(ds, "FSDD_URL", archive.as_uri())
    cache = tmp_path / "cache" / "fsdd"
    b = load_fsdd(download=True, cache_dir=cache)
    assert b.root == str(cache.resolve())
    assert len(b.paths) == N_FAKE
    assert sorted(p.name for p in cache.iterdir()) == sorted(Path(p).name for p in b.paths)
    assert sorted(set(b.speakers)) == list(SPEAKERS)
    assert not (tmp_path / "1_evil_0.wav").exists() and not (cache.parent / "1_evil_0.wav").exists()
    assert [p.name for p in cache.parent.iterdir()] == ["fsdd"]  # no temporary leftovers
    x, rate = sf.read(b.paths[0])
    assert rate == 8000 and x.shape == (400,)
    train, test = fsdd_split(b)
    assert len(test) == 5 * 10 * len(SPEAKERS)
    # second call: found in the cache, nothing fetched
    monkeypatch.setattr(ds, "FSDD_URL", (tmp_path / "gone.zip").as_uri())
    assert load_fsdd(download=True, cache_dir=cache).paths == b.paths


def test_download_into_existing_empty_folder(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    assert download_fsdd(cache, url=fake_archive(tmp_path).as_uri()) == cache
    assert len(list(cache.glob("*.wav"))) == N_FAKE


def test_download_refuses_folder_with_other_files(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "keep.txt").write_text("mine")
    with pytest.raises(OSError, match="holds other files"):
        download_fsdd(cache, url=fake_archive(tmp_path).as_uri())
    assert [p.name for p in cache.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "master.zip", "tone1.wav"]


def test_download_archive_without_recordings(tmp_path):
    cache = tmp_path / "dl" / "fsdd"
    url = fake_archive(tmp_path, with_recordings=False).as_uri()
    with pytest.raises(ValueError, match="holds no recordings"):
        download_fsdd(cache, url=url)
    assert not cache.exists() and list((tmp_path / "dl").iterdir()) == []


def test_download_not_a_zip(tmp_path):
    bogus = tmp_path / "page.html"
    bogus.write_text("<html>rate limited</html>")
    cache = tmp_path / "dl" / "fsdd"
    with pytest.raises(ValueError, match="not a zip archive"):
        download_fsdd(cache, url=bogus.as_uri())
    assert not cache.exists() and list((tmp_path / "dl").iterdir()) == []


def test_download_unreachable(tmp_path):
    cache = tmp_path / "dl" / "fsdd"
    with pytest.raises(OSError, match="could not download FSDD"):
        download_fsdd(cache, url=(tmp_path / "missing.zip").as_uri())
    assert not cache.exists() and list((tmp_path / "dl").iterdir()) == []


def test_url_constant():
    assert ds.FSDD_URL == (
        "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"
    )


def test_join_recordings(tmp_path):
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i, n in enumerate([800, 1200, 1600]):
        p = tmp_path / f"{i}_x_0.wav"
        sf.write(p, 0.5 * np.sin(np.arange(n) * (i + 1) / 5), 8000, subtype="PCM_16")
        paths.append(str(p))
        labels.append(str(i))
    signals, refs, rate = ds.join_recordings(paths, labels, 20, n_words=(2, 4),
                                             gap=(0.05, 0.1), noise=0.01, random_state=rng)
    assert rate == 8000 and len(signals) == len(refs) == 20
    lengths = {"0": 800, "1": 1200, "2": 1600}
    for x, ref in zip(signals, refs, strict=True):
        assert 2 <= len(ref) <= 4
        speech = sum(lengths[w] for w in ref)
        gaps = len(x) - speech  # one gap before, between and after the words
        assert 400 * (len(ref) + 1) <= gaps <= 800 * (len(ref) + 1)
        assert np.std(x[:300]) == pytest.approx(0.01, rel=0.3)  # the leading gap is noise
    again, refs2, _ = ds.join_recordings(paths, labels, 20, n_words=(2, 4), gap=(0.05, 0.1),
                                         noise=0.01, random_state=np.random.default_rng(0))
    assert refs2 == refs and all(np.array_equal(a, b) for a, b in zip(again, signals,
                                                                      strict=True))
    with pytest.raises(ValueError, match="n_words"):
        ds.join_recordings(paths, labels, 1, n_words=(0, 2))
    with pytest.raises(ValueError, match="equal length"):
        ds.join_recordings(paths, labels[:2], 1)


def test_join_recordings_refuses_absurd_arguments(tmp_path):
    p = tmp_path / "0_x_0.wav"
    sf.write(p, 0.1 * np.ones(800), 8000, subtype="PCM_16")
    for kwargs, message in [
        (dict(gap=(0.0, 1e300)), "gap"),  # int(1e300 * rate) samples of noise
        (dict(gap=(0.0, np.inf)), "gap"),
        (dict(gap=(np.nan, 0.1)), "gap"),
        (dict(noise=np.inf), "noise"),
        (dict(noise=-1.0), "noise"),
        (dict(n_words=(1, 10**12)), "n_words"),
        (dict(n_words=(1.5, 2)), "n_words"),
    ]:
        with pytest.raises(ValueError, match=message):
            ds.join_recordings([str(p)], ["0"], 1, **kwargs)
    for n in (-1, 2.5, True):
        with pytest.raises(ValueError, match="n_utterances"):
            ds.join_recordings([str(p)], ["0"], n)
    signals, refs, rate = ds.join_recordings([str(p)], ["0"], 2, n_words=(1, 1),
                                             gap=(60.0, 60.0))
    assert rate == 8000 and len(signals[0]) == 800 + 2 * 60 * 8000


def test_split_takes_a_huge_range_without_expanding_it(tmp_path):
    b = load_fsdd(fake_recordings(tmp_path / "rec", tmp_path))
    train, test = fsdd_split(b, test_takes=range(2, 10**15))
    assert set(b.takes[test]) == set(range(2, 7)) and set(b.takes[train]) == {0, 1}
    again = fsdd_split(b, test_takes=[2, 3, 4, 5, 6])
    np.testing.assert_array_equal(again[1], test)


def test_download_refuses_a_recording_declaring_a_huge_size(tmp_path):
    # a member of 64 MiB of zeros (a few kB compressed) named like a recording: refused from
    # the zip directory, before it is decompressed into the cache
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("fsdd-master/recordings/0_evil_0.wav", "w", force_zip64=True) as fh:
            for _ in range(64):
                fh.write(bytes(2**20))
    assert path.stat().st_size < 2**20
    cache = tmp_path / "dl" / "fsdd"
    with pytest.raises(ValueError, match="0_evil_0.wav' declares 67108864 bytes"):
        download_fsdd(cache, url=path.as_uri())
    assert not cache.exists() and list((tmp_path / "dl").iterdir()) == []
