"""Datasets: the Free Spoken Digit Dataset (FSDD).

FSDD holds short 8 kHz mono WAV recordings of the spoken digits 0-9, named
``{digit}_{speaker}_{take}.wav``. The official split keeps takes 0-4 of every digit and
speaker for testing and the rest for training (:func:`fsdd_split`). The number of speakers
depends on the release: older snapshots have 4 (2,000 files), newer ones 6 (3,000 files).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils import Bunch

__all__ = ["FSDD_URL", "download_fsdd", "fsdd_split", "join_recordings", "load_fsdd"]

#: Archive of the FSDD GitHub repository (the recordings are in its ``recordings/`` folder).
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"

#: Largest recording extracted from a downloaded archive (FSDD's are 3-40 kB); a member
#: declaring more is refused before it is decompressed.
MAX_RECORDING_BYTES = 2**24

_FSDD_NAME = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[A-Za-z0-9-]+)_(?P<take>[0-9]+)\.wav$")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "emx" / "fsdd"


def _matching_files(folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    return [p for p in entries if _FSDD_NAME.match(p.name) and p.is_file()]


def _candidates(cache_dir: Path) -> list[Path]:
    folders = []
    data_home = os.environ.get("EMX_DATA")
    if data_home:
        home = Path(data_home).expanduser()
        folders += [home / "fsdd", home / "fsdd" / "recordings", home]
    folders.append(cache_dir)
    return folders


def download_fsdd(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the FSDD recordings into a cache folder.

    Does nothing if ``cache_dir`` already holds recordings. Otherwise the archive is fetched
    to a temporary file, its ``recordings/*.wav`` members are written to a temporary folder
    beside the cache, and that folder is renamed to the cache folder once complete, so an
    interrupted download never leaves a partial cache.

    Parameters
    ----------
    cache_dir : str, os.PathLike or None
        Folder that will hold the WAV files (created with its parents); None is
        ``~/.cache/emx/fsdd``.
    url : str or None
        Zip archive to fetch (any URL ``urllib.request`` opens, including ``file://``); None
        is :data:`FSDD_URL`, the GitHub archive of Jakobovski/free-spoken-digit-dataset.
    timeout : float
        Seconds to wait on the connection.

    Returns
    -------
    pathlib.Path
        The cache folder.

    Raises
    ------
    OSError
        If the archive cannot be fetched, or the cache folder exists and holds other files.
    ValueError
        If the archive is not a zip file, holds no ``recordings/{digit}_{speaker}_{take}.wav``,
        or declares a recording larger than ``MAX_RECORDING_BYTES`` (16 MiB; checked before
        it is decompressed).
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
    url = FSDD_URL if url is None else url
    if _matching_files(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)

    fd, archive_name = tempfile.mkstemp(prefix=".fsdd-", suffix=".zip", dir=target.parent)
    archive = Path(archive_name)
    staging = Path(tempfile.mkdtemp(prefix=".fsdd-", dir=target.parent))
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                shutil.copyfileobj(resp, out)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise OSError(
                f"could not download FSDD from {url}: {exc}. Without internet access, clone or "
                "unzip https://github.com/Jakobovski/free-spoken-digit-dataset elsewhere and "
                "pass its recordings folder as load_fsdd(path=...)"
            ) from exc
        try:
            n = _extract_recordings(archive, staging)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"the file downloaded from {url} is not a zip archive") from exc
        if n == 0:
            raise ValueError(
                f"the archive from {url} holds no recordings/{{digit}}_{{speaker}}_{{take}}.wav"
            )
        _install(staging, target)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract_recordings(archive: Path, dest: Path) -> int:
    n = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            parts = info.filename.replace("\\", "/").split("/")
            if info.is_dir() or len(parts) < 2 or parts[-2] != "recordings":
                continue
            name = parts[-1]
            if not _FSDD_NAME.match(name):
                continue
            if info.file_size > MAX_RECORDING_BYTES:
                raise ValueError(f"archive member '{info.filename}' declares {info.file_size} "
                                 f"bytes; FSDD recordings are at most {MAX_RECORDING_BYTES}")
            # only the validated base name is used, so members cannot escape ``dest``
            with zf.open(info) as src, open(dest / name, "wb") as out:
                shutil.copyfileobj(src, out)
            n += 1
    return n


def _install(staging: Path, target: Path) -> None:
    if target.exists():
        if _matching_files(target):
            return  # a concurrent download finished first
        if any(target.iterdir()):
            raise OSError(
                f"cannot install FSDD into '{target}': the folder exists and holds other files; "
                "remove it or choose another cache_dir"
            )
        target.rmdir()
    try:
        staging.rename(target)
    except OSError:
        if not _matching_files(target):  # not a concurrent download that won the race
            raise


def load_fsdd(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Bunch:
    """Locate the Free Spoken Digit Dataset and list its recordings.

    Parameters
    ----------
    path : str, os.PathLike or None
        Folder holding the ``{digit}_{speaker}_{take}.wav`` files (or a clone of the FSDD
        repository, whose ``recordings/`` folder is then used). None searches, in order,
        ``$EMX_DATA/fsdd`` (or its ``recordings/`` folder), ``$EMX_DATA`` itself, and the
        cache folder. Returns as soon as a folder holds matching files. ``EMX_DATA`` is the
        one environment variable emx reads for data: the tests and examples find FSDD
        through it too.
    download : bool
        With ``path=None``, download the recordings into the cache folder when none of the
        places holds them (see :func:`download_fsdd`).
    cache_dir : str, os.PathLike or None
        Folder holding the downloaded WAV files; None is ``~/.cache/emx/fsdd``.

    Returns
    -------
    sklearn.utils.Bunch
        With the fields ``paths`` (list of str: absolute paths of the recordings, sorted),
        ``labels`` (ndarray of str: the digit spoken, ``"0"`` to ``"9"``), ``speakers``
        (ndarray of str), ``takes`` (ndarray of int) and ``root`` (str: the folder the
        recordings were found in).

    Raises
    ------
    FileNotFoundError
        If no folder holds the recordings (the message lists where it looked and how to get
        the data), or ``path`` does not exist.
    ValueError
        If ``path`` exists but holds no file named ``{digit}_{speaker}_{take}.wav``.
    """
    if path is not None:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"FSDD folder not found: '{root}'")
        files = _matching_files(root)
        if not files and _matching_files(root / "recordings"):
            root = root / "recordings"
            files = _matching_files(root)
        if not files:
            raise ValueError(
                f"no files named {{digit}}_{{speaker}}_{{take}}.wav (e.g. 0_george_0.wav) in "
                f"'{root}'"
            )
    else:
        cache = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
        looked = _candidates(cache)
        root, files = None, []
        for folder in looked:
            files = _matching_files(folder)
            if files:
                root = folder
                break
        if root is None:
            if not download:
                places = "\n".join(f"  - {p}" for p in looked)
                data_home = os.environ.get("EMX_DATA")
                if not data_home:
                    env = " ($EMX_DATA is not set)"
                elif not Path(data_home).expanduser().is_dir():
                    env = f" ($EMX_DATA is '{data_home}', which is not a folder)"
                else:
                    env = ""
                raise FileNotFoundError(
                    f"FSDD recordings not found{env}. Looked in:\n{places}\n"
                    "Get them with load_fsdd(download=True) (fetches "
                    f"{FSDD_URL}), or put the recordings/*.wav files of "
                    "https://github.com/Jakobovski/free-spoken-digit-dataset in $EMX_DATA/fsdd, "
                    "or pass their folder as load_fsdd(path=...)."
                )
            root = download_fsdd(cache)
            files = _matching_files(root)

    root = root.resolve()
    parsed = sorted((p.name, _FSDD_NAME.match(p.name)) for p in files)
    paths = [str(root / name) for name, _ in parsed]
    labels = [m["digit"] for _, m in parsed]
    speakers = [m["speaker"] for _, m in parsed]
    takes = [int(m["take"]) for _, m in parsed]
    return Bunch(
        paths=paths,
        labels=np.asarray(labels, dtype=str),
        speakers=np.asarray(speakers, dtype=str),
        takes=np.asarray(takes, dtype=np.int64),
        root=str(root),
    )


def fsdd_split(bunch: Any, test_takes: Iterable[int] = range(5)) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the official FSDD train/test split.

    Parameters
    ----------
    bunch : sklearn.utils.Bunch or mapping
        Output of :func:`load_fsdd` (only ``takes`` is used).
    test_takes : iterable of int
        Takes held out for testing; the official split uses takes 0-4. A ``range`` (step 1)
        is tested by its bounds, never expanded.

    Returns
    -------
    train, test : ndarray of int
        Increasing indices into ``bunch.paths`` (and the other per-file fields).
    """
    takes = np.asarray(bunch["takes"])
    if isinstance(test_takes, range) and test_takes.step == 1:  # never materialised
        is_test = (takes >= test_takes.start) & (takes < test_takes.stop)
    else:
        is_test = np.isin(takes, np.fromiter(test_takes, dtype=np.int64))
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


_MAX_JOINED_WORDS = 1000
_MAX_GAP_SECONDS = 60.0


def join_recordings(
    paths,
    labels,
    n_utterances: int,
    *,
    n_words: tuple[int, int] = (3, 7),
    gap: tuple[float, float] = (0.05, 0.3),
    noise: float = 0.002,
    edges: bool = True,
    random_state=None,
) -> tuple[list[np.ndarray], list[list[str]], int]:
    """Connected-word utterances made by joining isolated recordings with noisy gaps.

    Each utterance strings together recordings drawn at random (with replacement), separated
    by gaps of white Gaussian noise (by default 50-300 ms at a standard deviation of 0.002,
    about 30 dB below FSDD's speech); with ``edges`` a gap also precedes and follows the words.

    Parameters
    ----------
    paths, labels : sequences
        Recordings (all at one sample rate) and the word each holds.
    n_utterances : int
    n_words : (low, high)
        Words per utterance, drawn uniformly from ``low..high`` inclusive (at most 1,000).
    gap : (low, high)
        Gap lengths in seconds, drawn uniformly (at most 60 s).
    noise : float
        Standard deviation of the gap noise (signals in [-1, 1]), finite.
    edges : bool
        Also put a gap before the first and after the last word.
    random_state : int, Generator or None

    Returns
    -------
    signals : list of ndarray
    transcripts : list of list of str
    samplerate : int
    """
    from .speech.features import load_audio

    paths, labels = list(paths), [str(x) for x in labels]
    if len(paths) != len(labels) or not paths:
        raise ValueError("paths and labels must be non-empty and of equal length.")
    if not isinstance(n_utterances, (int, np.integer)) or isinstance(n_utterances, bool) \
            or n_utterances < 0:
        raise ValueError(f"n_utterances must be a non-negative integer, got {n_utterances!r}.")
    lo, hi = n_words
    if not (all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in n_words)
            and 1 <= lo <= hi <= _MAX_JOINED_WORDS):
        raise ValueError(f"n_words must be (low, high), integers with 1 <= low <= high <= "
                         f"{_MAX_JOINED_WORDS}, got {n_words}.")
    if not (np.all(np.isfinite(gap)) and 0 <= gap[0] <= gap[1] <= _MAX_GAP_SECONDS):
        raise ValueError(f"gap must be (low, high) in seconds with 0 <= low <= high <= "
                         f"{_MAX_GAP_SECONDS:g}, got {gap}.")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}.")
    rng = np.random.default_rng(random_state)
    cache: dict[int, np.ndarray] = {}
    rate = None
    signals, transcripts = [], []
    for _ in range(n_utterances):
        idx = rng.integers(len(paths), size=rng.integers(lo, hi + 1))
        parts = []
        for k, i in enumerate(idx):
            if i not in cache:
                x, r = load_audio(paths[i])
                if rate is not None and r != rate:
                    raise ValueError(f"{paths[i]} has sample rate {r}, others {rate}.")
                rate, cache[i] = r, x
            if k > 0 or edges:
                parts.append(noise * rng.standard_normal(int(rng.uniform(*gap) * rate)))
            parts.append(cache[i])
        if edges:
            parts.append(noise * rng.standard_normal(int(rng.uniform(*gap) * rate)))
        signals.append(np.concatenate(parts))
        transcripts.append([labels[i] for i in idx])
    return signals, transcripts, int(rate) if rate is not None else 0
