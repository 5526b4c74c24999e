"""Speech file formats: HTK parameter files, Kaldi feature archives, HTK model files (MMF).

Features computed elsewhere can be used by emx, and emx's models by other toolkits:

- :func:`read_htk` / :func:`write_htk`: HTK parameter files (``.mfc``, ``.htk``, ``.plp``...):
  a 12-byte big-endian header (``nSamples`` int32, ``sampPeriod`` int32 in 100 ns units,
  ``sampSize`` int16 bytes per frame, ``parmKind`` int16), then the frames as big-endian
  float32. Compressed (``_C``) and checksummed (``_K``) files and the 16-bit kinds
  (``WAVEFORM``, ``IREFC``, ``DISCRETE``) are refused with a ValueError that says how to
  convert them (HTK's ``HCopy`` with ``SAVECOMPRESSED = F`` and ``SAVEWITHCRC = F``).
- :func:`read_kaldi`: a Kaldi feature archive (``.ark``) or script file (``.scp``), through the
  optional package ``kaldiio`` (``pip install "emx-learn[kaldi]"``).
- :func:`write_mmf` / :func:`read_mmf`: a trained :class:`~emx.speech.Recognizer`'s word (and
  silence) models as an HTK master macro file in text form: one ``~o`` global options macro
  and one ``~h`` macro per model, each with its emitting states' Gaussian mixtures and its
  transition matrix, non-emitting entry and exit states included as HTK has them;
  :func:`read_mmf` reads those and HTK's own (shared ``~s ~m ~u ~v ~i ~t`` macros included)
  into arrays.

The file layouts follow the HTK book (chapters 5 and 7) and Kaldi's documentation; the code is
emx's own.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from emx.speech import read_htk, write_htk
>>> X = np.arange(6.0).reshape(3, 2)
>>> path = os.path.join(tempfile.mkdtemp(), "utt.mfc")
>>> write_htk(path, X, samp_period=100_000, parm_kind="USER")
>>> read_htk(path)
array([[0., 1.],
       [2., 3.],
       [4., 5.]])
>>> read_htk(path, return_header=True)[1].kind
'USER'
"""

from __future__ import annotations

import math
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

__all__ = [
    "HTKHeader",
    "HTKModel",
    "MMF",
    "parm_kind_code",
    "parm_kind_name",
    "read_htk",
    "read_kaldi",
    "read_mmf",
    "write_htk",
    "write_mmf",
]

# ---------------------------------------------------------------------------- parameter kinds
# Base kinds (the low 6 bits of parmKind) and qualifier bits, as the HTK book lists them.
_BASE_KINDS = ("WAVEFORM", "LPC", "LPREFC", "LPCEPSTRA", "LPDELCEP", "IREFC", "MFCC", "FBANK",
               "MELSPEC", "USER", "DISCRETE", "PLP")
_QUALIFIERS = {"E": 0o100, "N": 0o200, "D": 0o400, "A": 0o1000, "C": 0o2000, "Z": 0o4000,
               "K": 0o10000, "0": 0o20000, "V": 0o40000, "T": 0o100000}
_SHORT_KINDS = ("WAVEFORM", "IREFC", "DISCRETE")  # stored as 16-bit integers, not float32
_HEADER = struct.Struct(">iihh")  # nSamples, sampPeriod, sampSize, parmKind; big-endian
_MAX_SAMP_SIZE = 2**15 - 1


def parm_kind_code(kind: str | int) -> int:
    """The 16-bit ``parmKind`` code of an HTK parameter kind name such as ``'MFCC_E_D_A'``.

    Parameters
    ----------
    kind : str or int
        A base kind (``WAVEFORM``, ``LPC``, ``LPREFC``, ``LPCEPSTRA``, ``LPDELCEP``,
        ``IREFC``, ``MFCC``, ``FBANK``, ``MELSPEC``, ``USER``, ``DISCRETE``, ``PLP``) followed
        by any of the qualifiers ``_E _N _D _A _C _Z _K _0 _V _T`` (``_O`` is read as
        ``_0``), case-insensitive; an int is checked and returned.

    Returns
    -------
    int

    Examples
    --------
    >>> parm_kind_code("MFCC_E_D_A")
    838
    >>> parm_kind_name(838)
    'MFCC_E_D_A'
    """
    if isinstance(kind, (int, np.integer)) and not isinstance(kind, bool):
        parm_kind_name(int(kind))  # checks it
        return int(kind)
    if not isinstance(kind, str):
        raise TypeError(f"parameter kind must be a name such as 'MFCC_E_D_A' or an int, "
                        f"got {type(kind).__name__}")
    parts = kind.strip().upper().split("_")
    if parts[0] not in _BASE_KINDS:
        raise ValueError(f"unknown HTK parameter kind {kind!r}: the base kind must be one of "
                         f"{', '.join(_BASE_KINDS)}")
    code = _BASE_KINDS.index(parts[0])
    for q in parts[1:]:
        q = "0" if q == "O" else q
        if q not in _QUALIFIERS:
            raise ValueError(f"unknown qualifier _{q} in HTK parameter kind {kind!r} (known: "
                             f"{' '.join('_' + k for k in _QUALIFIERS)})")
        code |= _QUALIFIERS[q]
    return code


def parm_kind_name(code: int) -> str:
    """The name of an HTK ``parmKind`` code, e.g. ``838 -> 'MFCC_E_D_A'`` (see
    :func:`parm_kind_code`)."""
    code = int(code)
    if not 0 <= code < 2**16:
        raise ValueError(f"HTK parameter kind code {code} is not a 16-bit value")
    base = code & 0o77
    if base >= len(_BASE_KINDS):
        raise ValueError(f"HTK parameter kind code {code}: base kind {base} is unknown "
                         f"(0 to {len(_BASE_KINDS) - 1})")
    rest = code & ~0o77
    name = _BASE_KINDS[base]
    for q, bit in _QUALIFIERS.items():
        if rest & bit:
            name += "_" + q
            rest &= ~bit
    if rest:
        raise ValueError(f"HTK parameter kind code {code} sets unknown qualifier bits {rest:#o}")
    return name


# ---------------------------------------------------------------------------- HTK parameter files
class HTKHeader(NamedTuple):
    """The header of an HTK parameter file.

    Attributes
    ----------
    n_samples : int
        Frames in the file.
    samp_period : int
        Frame period in units of 100 ns (100000 is 10 ms).
    samp_size : int
        Bytes per frame (4 per feature).
    parm_kind : int
        The parameter kind code; ``kind`` is its name.
    kind : str
    """

    n_samples: int
    samp_period: int
    samp_size: int
    parm_kind: int
    kind: str

    @property
    def frame_period(self) -> float:
        """Frame period in seconds."""
        return self.samp_period * 1e-7


def _refuse_kind(code: int, where: str) -> str:
    """The kind's name, or a ValueError if emx cannot read or write it as float frames."""
    name = parm_kind_name(code)
    if code & _QUALIFIERS["C"]:
        raise ValueError(f"{where}: parameter kind {name} is compressed (_C), which emx does "
                         "not read; convert the file with HTK's HCopy and SAVECOMPRESSED = F")
    if code & _QUALIFIERS["K"]:
        raise ValueError(f"{where}: parameter kind {name} carries a CRC checksum (_K), which "
                         "emx does not read; convert the file with HTK's HCopy and "
                         "SAVEWITHCRC = F")
    base = name.split("_")[0]
    if base in _SHORT_KINDS:
        raise ValueError(f"{where}: parameter kind {name} holds 16-bit integers, not float "
                         "features; emx reads and writes the float kinds only")
    return name


def read_htk(path: str | os.PathLike[str], *, return_header: bool = False):
    """Read an HTK parameter file as a feature matrix.

    Parameters
    ----------
    path : str or os.PathLike
        An HTK-format parameter file (``.mfc``, ``.htk``, ``.plp``, ``.fbank``...): a 12-byte
        big-endian header and big-endian float32 frames.
    return_header : bool
        Also return the header (:class:`HTKHeader`: frame count, period, size and kind).

    Returns
    -------
    X : ndarray of shape (n_frames, n_features), float64
    header : HTKHeader, only with ``return_header=True``

    Raises
    ------
    ValueError
        Naming the file: shorter than its header, a header with impossible fields, a size
        that does not match the header (truncated or with trailing bytes), a compressed
        (``_C``), checksummed (``_K``) or 16-bit kind, or frames holding NaN or inf.

    Notes
    -----
    emx's own front end puts the log energy in column 0; HTK puts it after the cepstra.
    The columns are returned in the file's order.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from emx.speech import read_htk, write_htk
    >>> path = os.path.join(tempfile.mkdtemp(), "utt.mfc")
    >>> write_htk(path, np.ones((20, 13)), samp_period=100_000, parm_kind="MFCC_E")
    >>> X, header = read_htk(path, return_header=True)
    >>> X.shape, header.kind, header.samp_period
    ((20, 13), 'MFCC_E', 100000)
    """
    where = f"HTK file '{os.fspath(path)}'"
    with open(path, "rb") as fh:
        head = fh.read(_HEADER.size)
        if len(head) < _HEADER.size:
            raise ValueError(f"{where}: {len(head)} bytes, shorter than the 12-byte header of "
                             "an HTK parameter file")
        n, period, size, kind = _HEADER.unpack(head)
        code = kind & 0xFFFF  # parmKind is unsigned in effect (_T is bit 15)
        if n < 0:
            raise ValueError(f"{where}: header gives a negative frame count ({n}); not an HTK "
                             "parameter file, or not big-endian")
        if period <= 0:
            raise ValueError(f"{where}: header gives a sample period of {period} (must be "
                             "positive, in 100 ns units); not an HTK parameter file?")
        if size <= 0 or size % 4:
            raise ValueError(f"{where}: header gives {size} bytes per frame (must be a positive "
                             "multiple of 4 for float32 features)")
        try:
            name = _refuse_kind(code, where)
        except ValueError as exc:
            if str(exc).startswith(where):
                raise
            raise ValueError(f"{where}: {exc}") from None
        expected = n * size
        data = fh.read(expected + 1)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(f"{where}: {what}: the header declares {n} frames of {size} bytes "
                         f"({expected + _HEADER.size} bytes in all), the file holds "
                         f"{'at least ' if len(data) > expected else ''}"
                         f"{len(data) + _HEADER.size}")
    X = np.frombuffer(data, dtype=">f4").reshape(n, size // 4).astype(np.float64)
    if not np.isfinite(X).all():
        frame = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"{where}: frame {frame} holds NaN or inf")
    if return_header:
        return X, HTKHeader(n, period, size, code, name)
    return X


def write_htk(path: str | os.PathLike[str], X, *, samp_period: int = 100_000,
              parm_kind: str | int = "USER") -> None:
    """Write a feature matrix as an HTK parameter file (big-endian header and float32 frames).

    Parameters
    ----------
    path : str or os.PathLike
    X : array-like of shape (n_frames, n_features)
        Finite values within float32's range; at most 8191 features (HTK's frame size is a
        16-bit byte count).
    samp_period : int
        Frame period in units of 100 ns (default 100000: 10 ms, the step of emx's front end).
    parm_kind : str or int
        The parameter kind recorded in the header (see :func:`parm_kind_code`). The default,
        ``'USER'``, makes no claim on what the columns are; HTK tools compare it with the
        kind a model expects. Compressed, checksummed and 16-bit kinds are refused.

    Raises
    ------
    ValueError
        ``X`` not 2-D, empty in features, non-finite or beyond float32's range; a frame
        period that is not a positive 32-bit int; an unwritable parameter kind.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from emx.speech import read_htk, write_htk
    >>> path = os.path.join(tempfile.mkdtemp(), "utt.htk")
    >>> X = np.arange(6.0).reshape(3, 2)
    >>> write_htk(path, X, samp_period=100_000)         # 10 ms frames, kind USER
    >>> bool(np.array_equal(read_htk(path), X))
    True
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_frames, n_features), got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    n, d = X.shape
    if d == 0 or 4 * d > _MAX_SAMP_SIZE:
        raise ValueError(f"an HTK frame holds 1 to {_MAX_SAMP_SIZE // 4} features, X has {d}")
    if n > 2**31 - 1:
        raise ValueError(f"an HTK file holds at most {2**31 - 1} frames, X has {n}")
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or inf")
    big = max(float(X.max(initial=0)), -float(X.min(initial=0)))  # no |X| copy
    if big > float(np.finfo(np.float32).max):
        raise ValueError(f"X holds {big:g}, beyond float32's range (HTK stores float32)")
    if isinstance(samp_period, bool) or not isinstance(samp_period, (int, np.integer)) or not (
            0 < samp_period < 2**31):
        raise ValueError(f"samp_period must be a positive int in 100 ns units (100000 is "
                         f"10 ms), got {samp_period!r}")
    code = parm_kind_code(parm_kind)
    _refuse_kind(code, "write_htk")
    header = _HEADER.pack(n, int(samp_period), 4 * d, code - 2**16 if code >= 2**15 else code)
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(np.ascontiguousarray(X, dtype=">f4").tobytes())


# ---------------------------------------------------------------------------- Kaldi
def _distribution() -> str:
    """The name emx is installed under (for install hints), 'emx-learn' if it cannot be told."""
    try:
        from importlib.metadata import distributions

        for dist in distributions():  # the one whose console script is emx's
            if any(ep.value.startswith("emx.cli") for ep in dist.entry_points):
                return dist.metadata["Name"]
    except Exception:  # a hint only: never let it mask the ImportError
        pass
    return "emx-learn"


def _kaldiio():
    try:
        import kaldiio
    except ImportError as exc:
        dist = _distribution()
        raise ImportError(
            f"reading Kaldi archives needs the optional package kaldiio: install the 'kaldi' "
            f"extra (pip install \"{dist}[kaldi]\") or kaldiio itself (pip install kaldiio)"
        ) from exc
    return kaldiio


def read_kaldi(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the feature matrices of a Kaldi archive (``.ark``) or script file (``.scp``).

    Needs the optional package ``kaldiio`` (``pip install "emx-learn[kaldi]"``).

    Parameters
    ----------
    path : str or os.PathLike
        A binary or text archive of matrices (``.ark``, e.g. ``copy-feats`` output, Kaldi's
        compressed matrices included) or a script file (``.scp``) whose lines are
        ``utterance-id ark-path:offset``. The kind is taken from a ``scp:`` or ``ark:`` prefix
        if given, else from the extension (anything but ``.scp`` is read as an archive).

    Returns
    -------
    dict of str to ndarray of shape (n_frames, n_features), float64
        The utterances in file order.

    Raises
    ------
    ImportError
        kaldiio is not installed (the message names the extra).
    ValueError
        Naming the file: an unreadable archive, an entry that is not a 2-D matrix (a vector,
        audio), or one holding NaN or inf.

    Examples
    --------
    >>> feats = read_kaldi("data/train/feats.scp")          # doctest: +SKIP
    >>> rec.fit(list(feats.values()), labels)               # doctest: +SKIP
    """
    kaldiio = _kaldiio()
    spec = os.fspath(path)
    kind = None
    for prefix in ("scp:", "ark:"):
        if spec.startswith(prefix):
            kind, spec = prefix[:3], spec[len(prefix):]
    if kind is None:
        kind = "scp" if spec.lower().endswith(".scp") else "ark"
    where = f"Kaldi {kind} file '{spec}'"
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"{where} not found")
    out: dict[str, np.ndarray] = {}
    try:
        if kind == "scp":
            table = kaldiio.load_scp(spec)
            with warnings.catch_warnings():  # kaldiio warns before raising; we raise below
                warnings.filterwarnings("ignore", "An error happen", UserWarning)
                for key in table:
                    out[str(key)] = _kaldi_matrix(table[key], key, where)
        else:
            with open(spec, "rb") as fh:  # closed however the reading ends
                for key, value in kaldiio.load_ark(fh):
                    out[str(key)] = _kaldi_matrix(value, key, where)
    except (ValueError, OSError, EOFError, KeyError, TypeError, IndexError, struct.error,
            RuntimeError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(where):
            raise  # ours, already naming the file
        raise ValueError(f"{where} could not be read: {type(exc).__name__}: {exc}") from exc
    return out


def _kaldi_matrix(value, key, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{where}: entry {key!r} is a {type(value).__name__}, not a feature "
                         "matrix (audio archives are not read here)")
    if value.ndim != 2 or value.dtype.kind not in "iuf":
        raise ValueError(f"{where}: entry {key!r} has shape {value.shape} and dtype "
                         f"{value.dtype}; a feature matrix is 2-D and real")
    X = np.array(value, dtype=np.float64, order="C")
    if not np.isfinite(X).all():
        raise ValueError(f"{where}: entry {key!r} holds NaN or inf")
    return X


# ---------------------------------------------------------------------------- HTK MMF
@dataclass
class HTKModel:
    """One HMM of an MMF: ``n`` emitting states, each a mixture of ``M`` Gaussians.

    Attributes
    ----------
    name : str
    weights : ndarray of shape (n, M)
        Mixture weights (a state with fewer than ``M`` mixtures in the file has zero weights,
        zero means and unit variances in the missing places).
    means : ndarray of shape (n, M, D)
    covars : ndarray of shape (n, M, D) ('diag') or (n, M, D, D) ('full')
    transp : ndarray of shape (n + 2, n + 2)
        HTK's transition matrix: state 0 the non-emitting entry, ``n + 1`` the non-emitting
        exit, rows of the emitting states summing to 1.
    """

    name: str
    weights: np.ndarray
    means: np.ndarray
    covars: np.ndarray
    transp: np.ndarray

    @property
    def n_states(self) -> int:
        """Emitting states."""
        return self.weights.shape[0]


@dataclass
class MMF:
    """The content of an HTK master macro file as :func:`read_mmf` reads it.

    Attributes
    ----------
    vecsize : int
    parm_kind : str
        The parameter kind name (e.g. ``'USER'``, ``'MFCC_E_D_A'``).
    covariance_type : {'diag', 'full'}
    hmms : dict of str to HTKModel
        The ``~h`` macros in file order.
    """

    vecsize: int
    parm_kind: str
    covariance_type: str
    hmms: dict[str, HTKModel] = field(default_factory=dict)


_NAME_OK = re.compile(r"^[!-~]+$")  # printable ASCII without blanks


def _check_name(name: str) -> str:
    if not _NAME_OK.match(name) or '"' in name or "\\" in name:
        raise ValueError(f"model name {name!r} cannot be written to an MMF: names must be "
                         "printable ASCII without blanks, quotes or backslashes")
    return name


def write_mmf(recognizer, path: str | os.PathLike[str], *, parm_kind: str | int = "USER",
              silence_name: str = "sil", precision: int = 8) -> None:
    """Export a trained :class:`~emx.speech.Recognizer`'s models to an HTK MMF (text).

    The file holds a ``~o`` macro (``<STREAMINFO>``, ``<VECSIZE>``, ``<NULLD>``, the
    parameter kind and ``<DIAGC>`` or ``<FULLC>``) and one ``~h`` macro per word, named by
    its label, then one for the silence model if the recogniser has one. A model of ``n``
    states is written as HTK has it: ``<NUMSTATES> n + 2`` with emitting states 2 to
    ``n + 1``, each with ``<NUMMIXES>``, and per Gaussian ``<MIXTURE> m weight``, ``<MEAN>``,
    ``<VARIANCE>`` (diagonal) or ``<INVCOVAR>`` (full: the upper triangle of the inverse
    covariance, row by row, as HTK stores it) and ``<GCONST>``; then ``<TRANSP>``, built from
    the left-to-right topology: the entry state goes to the first emitting state, every
    emitting state loops with probability ``stay_`` and otherwise moves to the next state,
    the last one to the exit state.

    What the MMF cannot hold is left out: the front end (``feature_config_``), the
    probability of skipping an optional silence (``silence_skip_``), the word insertion
    penalty and any grammar belong to the recognition network (HTK's dictionary, word
    network and ``HVite -p``), not to the models.

    Parameters
    ----------
    recognizer : emx.speech.Recognizer
        A fitted recogniser (``covariance_type`` 'diag' or 'full'). Its word labels become
        the model names (as ``str(label)``), so they must be printable ASCII without blanks,
        quotes or backslashes, and distinct from ``silence_name``.
    path : str or os.PathLike
    parm_kind : str or int
        Parameter kind written in ``~o``. The default ``'USER'`` makes no claim on the
        columns; pass e.g. ``'MFCC_E_D_A'`` only if the features fed to HTK (see
        :func:`write_htk`) are written with that kind. emx's front end puts the energy in
        column 0 where HTK's puts it last, so models trained on emx features expect emx's
        column order whatever the kind says.
    silence_name : str
        Name of the silence model's macro.
    precision : int
        Digits after the point of every number (``%.{precision}e``); 8 keeps float32 exact,
        16 float64.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The recogniser is not fitted.
    ValueError
        A label that cannot be a macro name or equals ``silence_name``, a covariance type
        other than 'diag' or 'full', or a non-positive ``precision``.

    Examples
    --------
    >>> import numpy as np
    >>> from emx.speech import Recognizer
    >>> rng = np.random.default_rng(0)
    >>> def utterance(word):  # made-up 3-d features: quiet, two segments, quiet
    ...     middle = {"a": [[2, 2, 0], [2, -2, 0]], "b": [[2, 0, 2], [2, 0, -2]]}[word]
    ...     parts = [[-2, 0, 0], *middle, [-2, 0, 0]]
    ...     return np.concatenate([rng.normal(m, 0.5, (8, 3)) for m in parts])
    >>> rec = Recognizer(n_states=2, n_mix=1).fit([utterance(w) for w in "abab"], list("abab"))
    >>> import os, tempfile
    >>> from emx.speech import read_mmf, write_mmf
    >>> path = os.path.join(tempfile.mkdtemp(), "hmmdefs")
    >>> write_mmf(rec, path)
    >>> mmf = read_mmf(path)
    >>> sorted(mmf.hmms), mmf.vecsize, mmf.covariance_type
    (['a', 'b', 'sil'], 3, 'diag')
    >>> mmf.hmms["a"].means.shape                         # states, mixtures, features
    (2, 1, 3)
    """
    from sklearn.exceptions import NotFittedError

    if not hasattr(recognizer, "pool_"):
        raise NotFittedError("write_mmf needs a fitted Recognizer; call fit first")
    if isinstance(precision, bool) or not isinstance(precision, (int, np.integer)) or not (
            1 <= precision <= 20):
        raise ValueError(f"precision must be an int from 1 to 20, got {precision!r}")
    pool = recognizer.pool_
    ct = recognizer.covariance_type
    if ct not in ("diag", "full"):
        raise ValueError(f"write_mmf writes 'diag' and 'full' covariances, the recogniser has "
                         f"{ct!r}")
    code = parm_kind_code(parm_kind)
    kind = parm_kind_name(code)
    weights, means, covars = (np.asarray(pool.weights_), np.asarray(pool.means_),
                              np.asarray(pool.covars_))
    stay = np.asarray(recognizer.stay_, dtype=np.float64)
    offsets = np.asarray(recognizer.unit_offsets_)
    D = means.shape[2]
    names = [_check_name(str(w)) for w in recognizer.words_]
    if recognizer.silence:
        names.append(_check_name(silence_name))
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"model names must be distinct: {dup} "
                         f"{'(the silence model is ' + repr(silence_name) + ')'}")
    if len(names) != len(offsets) - 1:
        raise ValueError(f"the recogniser has {len(offsets) - 1} models in unit_offsets_ but "
                         f"{len(names)} names (words_ and silence)")

    fmt = f"{{:.{int(precision)}e}}"

    def vec(values) -> str:
        return " " + " ".join(fmt.format(float(v)) for v in values)

    lines = ["~o", f"<STREAMINFO> 1 {D}",
             f"<VECSIZE> {D}<NULLD><{kind}><{'DIAGC' if ct == 'diag' else 'FULLC'}>"]
    log2pi = D * math.log(2.0 * math.pi)
    for u, name in enumerate(names):
        a, b = int(offsets[u]), int(offsets[u + 1])
        n = b - a
        lines += [f'~h "{name}"', "<BEGINHMM>", f"<NUMSTATES> {n + 2}"]
        for i, s in enumerate(range(a, b)):
            M = weights.shape[1]
            lines += [f"<STATE> {i + 2}", f"<NUMMIXES> {M}"]
            for m in range(M):
                lines.append(f"<MIXTURE> {m + 1} {fmt.format(float(weights[s, m]))}")
                lines += [f"<MEAN> {D}", vec(means[s, m])]
                if ct == "diag":
                    var = covars[s, m]
                    lines += [f"<VARIANCE> {D}", vec(var)]
                    gconst = log2pi + float(np.sum(np.log(var)))
                else:
                    cov = covars[s, m]
                    inv = np.linalg.inv(cov)
                    inv = (inv + inv.T) / 2.0
                    lines.append(f"<INVCOVAR> {D}")
                    lines += [vec(inv[r, r:]) for r in range(D)]
                    gconst = log2pi + float(np.linalg.slogdet(cov)[1])
                lines.append(f"<GCONST> {fmt.format(gconst)}")
        T = np.zeros((n + 2, n + 2))
        T[0, 1] = 1.0
        for i, s in enumerate(range(a, b)):
            T[i + 1, i + 1] = stay[s]
            T[i + 1, i + 2] = 1.0 - stay[s]
        lines.append(f"<TRANSP> {n + 2}")
        lines += [vec(row) for row in T]
        lines.append("<ENDHMM>")
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


_TOKEN = re.compile(r'\s*(?:(<[^<>\s]*>)|(~[A-Za-z])|("(?:[^"\\]|\\.)*")|([^\s<>"~]+))')


class _Tokens:
    """The tokens of an MMF text, with the line of each for error messages."""

    def __init__(self, text: str, where: str):
        self.where = where
        self.items: list[tuple[str, str, int]] = []  # (kind, text, position)
        pos, end = 0, len(text)
        while True:
            while pos < end and text[pos].isspace():
                pos += 1
            if pos >= end:
                break
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                self.text = text
                raise self.error(f"unexpected character {text[pos]!r}", pos)
            kind = "key" if m.group(1) else "macro" if m.group(2) else (
                "string" if m.group(3) else "word")
            token = m.group(m.lastindex)
            self.items.append((kind, token.upper() if kind == "key" else token, m.start(
                m.lastindex)))
            pos = m.end()
        self.text = text
        self.i = 0

    def error(self, message: str, pos: int | None = None) -> ValueError:
        if pos is None:
            pos = self.items[self.i][2] if self.i < len(self.items) else len(self.text)
        line = self.text.count("\n", 0, pos) + 1
        return ValueError(f"{self.where}, line {line}: {message}")

    def peek(self):
        return self.items[self.i] if self.i < len(self.items) else ("end", "", len(self.text))

    def next(self):
        item = self.peek()
        if item[0] == "end":
            raise self.error("unexpected end of file")
        self.i += 1
        return item

    def expect_key(self, key: str) -> None:
        kind, token, _ = self.peek()
        if kind != "key" or token != key:
            raise self.error(f"expected {key}, found {token or 'end of file'}")
        self.i += 1

    def integer(self, what: str, low: int = 1, high: int = 10**6) -> int:
        kind, token, pos = self.peek()
        try:
            value = int(token) if kind == "word" else None
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise self.error(f"{what} must be an integer from {low} to {high}, found "
                             f"{token or 'end of file'!r}")
        self.i += 1
        return value

    def numbers(self, count: int, what: str) -> np.ndarray:
        if self.i + count > len(self.items):
            raise self.error(f"{what}: {count} numbers declared, the file ends first")
        chunk = self.items[self.i:self.i + count]
        try:
            if any(k != "word" for k, _, _ in chunk):
                raise ValueError
            values = np.array([float(t) for _, t, _ in chunk])
        except ValueError:
            bad = next((t for k, t, _ in chunk if k != "word" or not _is_float(t)), "?")
            raise self.error(f"{what}: {count} numbers declared, found {bad!r} among them"
                             ) from None
        if not np.isfinite(values).all():
            raise self.error(f"{what} holds NaN or inf")
        self.i += count
        return values


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


_COV_KEYS = {"<DIAGC>": "diag", "<INVDIAGC>": "diag", "<FULLC>": "full"}


def _read_options(tok: _Tokens, opts: dict) -> None:
    """Global options (in ~o or at the start of an HMM): <STREAMINFO>, <VECSIZE>, kinds."""
    while True:
        kind, token, _ = tok.peek()
        if kind != "key":
            return
        if token == "<STREAMINFO>":
            tok.next()
            streams = tok.integer("<STREAMINFO> stream count")
            if streams != 1:
                raise tok.error(f"{streams} streams: emx reads single-stream models only")
            opts["streamsize"] = tok.integer("<STREAMINFO> stream size")
        elif token == "<VECSIZE>":
            tok.next()
            opts["vecsize"] = tok.integer("<VECSIZE>", 1, 10**5)
        elif token in _COV_KEYS:
            tok.next()
            opts["covariance_type"] = _COV_KEYS[token]
        elif token in ("<NULLD>", "<POISSOND>", "<GAMMAD>", "<GEND>"):
            tok.next()
            if token != "<NULLD>":
                raise tok.error(f"duration model {token} is not supported (only <NULLD>)")
        elif token[1:-1] and token[1:-1].split("_")[0] in _BASE_KINDS:
            tok.next()
            opts["parm_kind"] = parm_kind_name(parm_kind_code(token[1:-1]))
        elif token in ("<LLTC>", "<XFORMC>"):
            raise tok.error(f"covariance kind {token} is not supported (<DIAGC> or <FULLC>)")
        else:
            return


def read_mmf(path: str | os.PathLike[str]) -> MMF:
    """Read an HTK MMF in text form, such as :func:`write_mmf` or HTK's tools write.

    Reads the ``~o`` options macro and the ``~h`` HMM definitions with their states, mixtures,
    means, variances (``<VARIANCE>``) or inverse covariances (``<INVCOVAR>``, returned as
    covariances) and ``<TRANSP>``, written inline or through shared macros defined earlier
    in the file: ``~s`` (state), ``~m`` (Gaussian), ``~u`` (mean), ``~v`` (variance, e.g.
    HCompV's ``varFloor1``, read and not used), ``~i`` (inverse covariance) and ``~t``
    (transition matrix); a shared macro is copied into every model that uses it.
    ``<GCONST>`` values are skipped (they follow from the variances). Other macros (tied
    mixtures, regression trees, transforms, stream weights, durations), several streams and
    binary MMFs are refused with a ValueError; convert such files with HTK's ``HHEd`` first.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MMF
        ``vecsize``, ``parm_kind``, ``covariance_type`` and ``hmms`` (name -> HTKModel).

    Raises
    ------
    ValueError
        Naming the file and line: malformed or unsupported content, a macro used before it
        is defined, sizes that disagree with ``<VECSIZE>``, weights, variances or
        transition rows out of range.

    Examples
    --------
    >>> mmf = read_mmf("hmm0/hmmdefs")                    # doctest: +SKIP
    >>> mmf.hmms["sil"].transp                            # doctest: +SKIP

    A round trip through :func:`write_mmf` is shown there.
    """
    where = f"MMF '{os.fspath(path)}'"
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not a text MMF (binary MMFs are not read; write one in "
                         "text with HHEd without -B)") from None
    tok = _Tokens(text, where)
    opts: dict = {"parm_kind": "USER", "covariance_type": "diag"}
    macros: dict[str, dict] = {letter: {} for letter in _SHARED}
    hmms: dict[str, HTKModel] = {}
    while tok.peek()[0] != "end":
        kind, token, _ = tok.next()
        if kind != "macro":
            raise tok.error(f"expected a macro (~o, ~h or a shared one), found {token!r}")
        letter = token[1].lower()
        if letter == "o":
            _read_options(tok, opts)
            continue
        if letter != "h" and letter not in _SHARED:
            raise tok.error(f"macro {token} is not supported (emx reads ~o, ~h and the shared "
                            f"macros {' '.join('~' + c for c in _SHARED)})")
        name = _macro_name(tok, token)
        table = hmms if letter == "h" else macros[letter]
        if name in table:
            raise tok.error(f"macro ~{letter} {name!r} is defined twice")
        if letter != "t" and "vecsize" not in opts:
            raise tok.error(f"macro ~{letter} {name!r} comes before <VECSIZE> (~o)")
        ctx = _Context(tok, opts.get("vecsize", 0), opts["covariance_type"] == "full", macros)
        if letter == "h":
            table[name] = _read_hmm(ctx, name, opts)
        else:
            table[name] = _SHARED[letter](ctx, f"macro ~{letter} {name!r}")
    if "vecsize" not in opts:
        raise ValueError(f"{where}: no <VECSIZE> given")
    return MMF(opts["vecsize"], opts["parm_kind"], opts["covariance_type"], hmms)


@dataclass
class _Context:
    tok: _Tokens
    D: int
    full: bool
    macros: dict

    def shared(self, letter: str, where: str):
        """The shared macro ``~letter "name"`` at the cursor, if there is one, else None."""
        kind, token, _ = self.tok.peek()
        if kind != "macro" or token.lower() != "~" + letter:
            return None
        self.tok.next()
        name = _macro_name(self.tok, token)
        try:
            return self.macros[letter][name]
        except KeyError:
            raise self.tok.error(f"{where}: macro ~{letter} {name!r} is used before it is "
                                 "defined") from None


def _macro_name(tok: _Tokens, macro: str) -> str:
    kind, name, _ = tok.next()
    if kind not in ("string", "word"):
        raise tok.error(f"{macro} needs a name, found {name!r}")
    return name[1:-1].replace('\\"', '"') if kind == "string" else name


def _read_hmm(ctx: _Context, name: str, opts: dict) -> HTKModel:
    tok = ctx.tok
    tok.expect_key("<BEGINHMM>")
    _read_options(tok, opts)
    if "vecsize" not in opts:
        raise tok.error(f"model {name!r}: no <VECSIZE> before it")
    ctx.D, ctx.full = opts["vecsize"], opts["covariance_type"] == "full"
    D, full = ctx.D, ctx.full
    tok.expect_key("<NUMSTATES>")
    N = tok.integer("<NUMSTATES>", 3, 10**5)
    n = N - 2
    states: dict[int, dict[int, tuple]] = {}
    while tok.peek()[:2] == ("key", "<STATE>"):
        tok.next()
        s = tok.integer("<STATE> index", 2, N - 1)
        if s in states:
            raise tok.error(f"model {name!r}: state {s} is defined twice")
        where = f"model {name!r}, state {s}"
        shared = ctx.shared("s", where)
        states[s] = shared if shared is not None else _read_state(ctx, where)
    if sorted(states) != list(range(2, N)):
        missing = sorted(set(range(2, N)) - set(states))
        raise tok.error(f"model {name!r}: emitting states {missing} are not defined")
    T = ctx.shared("t", f"model {name!r}")
    if T is None:
        kind, token, _ = tok.peek()
        if (kind, token) != ("key", "<TRANSP>"):
            raise tok.error(f"model {name!r}: expected <TRANSP>, found {token!r}")
        T = _read_transp(ctx, f"model {name!r}", N)
    if len(T) != N:
        raise tok.error(f"model {name!r}: <TRANSP> {len(T)} for <NUMSTATES> {N}")
    tok.expect_key("<ENDHMM>")
    M = max(max(mix) for mix in states.values())
    weights = np.zeros((n, M))
    means = np.zeros((n, M, D))
    covars = np.tile(np.eye(D), (n, M, 1, 1)) if full else np.ones((n, M, D))
    for s, mix in states.items():
        for m, (w, mu, cov) in mix.items():
            if mu.shape != (D,) or cov.shape != ((D, D) if full else (D,)):
                raise tok.error(f"model {name!r}, state {s}: a shared Gaussian of size "
                                f"{mu.shape[0]} or covariance kind other than the model's")
            weights[s - 2, m - 1], means[s - 2, m - 1], covars[s - 2, m - 1] = w, mu, cov
    return HTKModel(name, weights, means, covars, T.copy())


def _read_transp(ctx: _Context, where: str, expected: int | None = None) -> np.ndarray:
    tok = ctx.tok
    tok.expect_key("<TRANSP>")
    N = tok.integer("<TRANSP> size", 3, 10**5)
    if expected is not None and N != expected:
        raise tok.error(f"{where}: <TRANSP> {N} for <NUMSTATES> {expected}")
    T = tok.numbers(N * N, "<TRANSP>").reshape(N, N)
    if (T < 0).any() or (T > 1).any():
        raise tok.error(f"{where}: transition probabilities outside [0, 1]")
    sums = T[:-1].sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3) or T[-1].any():
        raise tok.error(f"{where}: transition rows 1 to {N - 1} must sum to 1 and the exit "
                        f"row must be zero (sums {np.round(sums, 6).tolist()})")
    return T


def _read_state(ctx: _Context, where: str) -> dict[int, tuple]:
    tok = ctx.tok
    M = 1
    if tok.peek()[:2] == ("key", "<NUMMIXES>"):
        tok.next()
        M = tok.integer("<NUMMIXES>", 1, 10**5)
    mix: dict[int, tuple] = {}
    while True:
        kind, token, _ = tok.peek()
        if (kind, token) == ("key", "<MIXTURE>"):
            tok.next()
            m = tok.integer("<MIXTURE> index", 1, M)
            w = float(tok.numbers(1, "<MIXTURE> weight")[0])
            if not 0.0 <= w <= 1.0:
                raise tok.error(f"{where}: mixture weight {w} outside [0, 1]")
        elif not mix and M == 1 and ((kind, token) == ("key", "<MEAN>") or (
                kind == "macro" and token.lower() in ("~m", "~u"))):
            m, w = 1, 1.0  # a single Gaussian written without <MIXTURE>
        else:
            break
        if m in mix:
            raise tok.error(f"{where}: mixture {m} is defined twice")
        mix[m] = (w, *_read_gaussian(ctx, f"{where}, mixture {m}"))
    if not mix:
        raise tok.error(f"{where}: no Gaussian (expected <MIXTURE> or <MEAN>), found "
                        f"{tok.peek()[1]!r}")
    total = sum(w for w, _, _ in mix.values())
    if not math.isclose(total, 1.0, abs_tol=1e-3):
        raise tok.error(f"{where}: mixture weights sum to {total:.6g}, not 1")
    return mix


def _read_gaussian(ctx: _Context, where: str) -> tuple[np.ndarray, np.ndarray]:
    shared = ctx.shared("m", where)
    if shared is not None:
        return shared
    tok, full = ctx.tok, ctx.full
    mean = ctx.shared("u", where)
    if mean is None:
        tok.expect_key("<MEAN>")
        mean = _read_vector(ctx, "<MEAN>", where)
    if full:
        cov = ctx.shared("i", where)
        if cov is None and (ctx.tok.peek()[1].lower() == "~v"
                            or tok.peek()[:2] == ("key", "<VARIANCE>")):
            raise tok.error(f"{where}: <VARIANCE> in a <FULLC> model")
        if cov is None:
            tok.expect_key("<INVCOVAR>")
            cov = _read_invcovar(ctx, where)
    else:
        cov = ctx.shared("v", where)
        if cov is None and (ctx.tok.peek()[1].lower() == "~i"
                            or tok.peek()[:2] == ("key", "<INVCOVAR>")):
            raise tok.error(f"{where}: <INVCOVAR> in a model without <FULLC>")
        if cov is None:
            tok.expect_key("<VARIANCE>")
            cov = _read_variance(ctx, where)
    if tok.peek()[:2] == ("key", "<GCONST>"):
        tok.next()
        tok.numbers(1, "<GCONST>")
    return mean, cov


def _read_vector(ctx: _Context, key: str, where: str) -> np.ndarray:
    if ctx.tok.integer(f"{key} size", 1, 10**5) != ctx.D:
        raise ctx.tok.error(f"{where}: {key} size differs from <VECSIZE> {ctx.D}")
    return ctx.tok.numbers(ctx.D, key)


def _read_variance(ctx: _Context, where: str) -> np.ndarray:
    var = _read_vector(ctx, "<VARIANCE>", where)
    if (var <= 0).any():
        raise ctx.tok.error(f"{where}: variances must be positive")
    return var


def _read_invcovar(ctx: _Context, where: str) -> np.ndarray:
    tok, D = ctx.tok, ctx.D
    if tok.integer("<INVCOVAR> size", 1, 10**5) != D:
        raise tok.error(f"{where}: <INVCOVAR> size differs from <VECSIZE> {D}")
    upper = tok.numbers(D * (D + 1) // 2, "<INVCOVAR>")
    inv = np.zeros((D, D))
    inv[np.triu_indices(D)] = upper
    inv = inv + np.triu(inv, 1).T
    try:
        np.linalg.cholesky(inv)
    except np.linalg.LinAlgError:
        raise tok.error(f"{where}: <INVCOVAR> is not positive definite") from None
    cov = np.linalg.inv(inv)
    return (cov + cov.T) / 2.0


def _define(key: str, reader):
    """A shared macro's body: ``key`` then what ``reader`` reads."""
    def read(ctx: _Context, where: str):
        ctx.tok.expect_key(key)
        return reader(ctx, where)
    return read


def _define_mean(ctx: _Context, where: str) -> np.ndarray:
    ctx.tok.expect_key("<MEAN>")
    return _read_vector(ctx, "<MEAN>", where)


def _define_gaussian(ctx: _Context, where: str):
    kind, token, _ = ctx.tok.peek()
    if (kind, token) != ("key", "<MEAN>") and not (kind == "macro" and token.lower() == "~u"):
        raise ctx.tok.error(f"{where}: expected <MEAN>, found {token!r}")
    return _read_gaussian(ctx, where)


def _define_state(ctx: _Context, where: str):
    return _read_state(ctx, where)


def _define_transp(ctx: _Context, where: str) -> np.ndarray:
    if ctx.tok.peek()[:2] != ("key", "<TRANSP>"):
        raise ctx.tok.error(f"{where}: expected <TRANSP>, found {ctx.tok.peek()[1]!r}")
    return _read_transp(ctx, where)


# The shared macros read_mmf resolves, with the reader of each one's definition.
_SHARED = {
    "u": _define_mean,
    "v": _define("<VARIANCE>", _read_variance),
    "i": _define("<INVCOVAR>", _read_invcovar),
    "m": _define_gaussian,
    "s": _define_state,
    "t": _define_transp,
}
