"""Command line for word recognition: ``emx train``, ``emx recognize``, ``emx evaluate``.

Examples
--------
Train on the FSDD training takes (5-49); labels come from the file names
``{digit}_{speaker}_{take}.wav``, and folders are searched recursively::

    emx train recordings/ -o digits.npz --exclude-takes 0-4

The same with full covariances, 16 kHz analysis and no variance normalisation::

    emx train recordings/ -o digits.npz --exclude-takes 0-4 --covariance-type full \\
        --samplerate 16000 --no-cvn --states auto --mix 4 --jobs 2

A dataset laid out as one folder per word (``yes/0a7c2a8d.wav``, ``no/0b09edd3.wav``)::

    emx train speech_commands/ -o commands.npz --labels-from folders

Recognise files (or every ``*.wav`` under a folder) as isolated words, with every word's
log-likelihood and posterior::

    emx recognize digits.npz recordings/7_jackson_0.wav --scores

Connected words with their times, optionally restricted by a word-pair grammar::

    emx recognize digits.npz phone_number.wav --connected --insertion-penalty -40
    emx recognize digits.npz phone_number.wav --grammar pairs.txt

Accuracy, error counts, confusion matrix and the misrecognised files on the test takes::

    emx evaluate digits.npz recordings/ --takes 0-4 --errors

Labels can also come from a transcript file, one utterance a line: a path (relative to the
audio folder, or absolute) followed by its word(s); blank lines and lines starting with ``#``
are ignored::

    speaker1/take3.wav yes
    speaker1/take4.wav no
    speaker2/numbers.wav one two three

A word-pair grammar (``--grammar``) lists the words that may follow each word, ``<s>`` being
the start of the utterance and ``</s>`` its end; words without an entry may be followed by
any word. Either a JSON object::

    {"<s>": ["1", "2"], "1": ["2", "</s>"], "2": ["1", "</s>"]}

or text, one entry a line, ``#`` starting a comment::

    <s>: 1 2      # an utterance starts with 1 or 2
    1: 2 </s>
    2: 1 </s>

Errors (missing folders or files, unreadable audio, model or grammar files) are reported on
stderr with exit status 2. Audio must be sampled at 1,000 to 384,000 Hz, have at most 8
channels (averaged to mono) and last at least one analysis window (25 ms); ``<sil>`` is
reserved for the silence model and cannot be a label; model files are checked (sizes,
bounds, consistency) before anything large is read.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import fnmatch
import json
import math
import numbers
import os
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# emx.speech (scikit-learn, the audio libraries) is imported by the commands that use it, not
# by `emx --help` or a usage error.

__all__ = ["Takes", "confusion_matrix", "format_confusion", "main", "parse_takes"]

PROG = "emx"

# The command line's training defaults: the Recognizer's and its front end's (DEFAULT_FEATURES),
# written out so that the help screens need not import them; tests/test_cli.py checks that they
# are the Recognizer's.
_DEFAULTS = {"covariance_type": "diag", "n_states": 10, "frames_per_state": 4.0, "n_mix": 8,
             "silence": True, "word_insertion_penalty": -60.0, "n_iter": 5, "var_floor": 1.0,
             "n_jobs": None, "vtln": False}
_FRONT_END_DEFAULTS = {"samplerate": None, "numcep": 13, "lowfreq": 100.0, "highfreq": None,
                       "cmn": True, "cvn": True}

# Front-end options of `emx train` (FeatureConfig fields).
_FRONT_END = ("samplerate", "cmn", "cvn", "lowfreq", "highfreq", "numcep")


class CLIError(Exception):
    """A user-facing error: printed to stderr, exit status 2."""


def _version() -> str:
    import importlib.metadata

    try:  # emx is distributed as emx-learn (the name emx on PyPI is another project)
        return importlib.metadata.version("emx-learn")
    except importlib.metadata.PackageNotFoundError:
        package = sys.modules.get(__package__ or "emx")
        return str(getattr(package, "__version__", "unknown"))


class _Version(argparse.Action):
    """``--version``: looks the version up (importlib.metadata) only when asked for it."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{PROG} {_version()}")
        parser.exit()


# ---------------------------------------------------------------------------- argument types
class Takes:
    """A selection of take numbers held as sorted, disjoint ranges (``parse_takes``).

    ``take in takes`` is a binary search over the ranges, so ``0-100000000000`` costs as
    little as ``0-4``. Iterating yields the numbers in order; a ``Takes`` equals another, or
    a set of ints, holding the same numbers.
    """

    __slots__ = ("ranges", "_starts")

    def __init__(self, ranges) -> None:
        merged: list[tuple[int, int]] = []
        for a, b in sorted((int(a), int(b)) for a, b in ranges):
            if b < a:
                raise ValueError(f"empty range {a}-{b}")
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self.ranges: tuple[tuple[int, int], ...] = tuple(merged)
        self._starts = [a for a, _ in merged]

    @classmethod
    def of(cls, numbers) -> Takes:
        """The selection holding exactly ``numbers`` (ints)."""
        return cls((n, n) for n in numbers)

    def __contains__(self, take) -> bool:
        if isinstance(take, bool) or not isinstance(take, numbers.Integral):
            return False
        i = bisect.bisect_right(self._starts, take) - 1
        return i >= 0 and take <= self.ranges[i][1]

    def __iter__(self):
        for a, b in self.ranges:
            yield from range(a, b + 1)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __eq__(self, other) -> bool:
        if isinstance(other, Takes):
            return self.ranges == other.ranges
        if isinstance(other, (set, frozenset)):
            if not all(isinstance(n, int) and not isinstance(n, bool) for n in other):
                return False
            return self.ranges == Takes.of(other).ranges
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.ranges)

    def __repr__(self) -> str:
        text = ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.ranges)
        return f"Takes({text!r})"


def parse_takes(text: str) -> Takes:
    """Parse a take selection such as ``"0-4"``, ``"7"`` or ``"0-4,10,20-22"``.

    Returns
    -------
    Takes
        The selected numbers as ranges (never expanded: ``"0-100000000000"`` is one range);
        ``n in parse_takes(text)`` tests membership, and the result equals the set of the
        numbers (``parse_takes("0-2,5") == {0, 1, 2, 5}``).

    Raises
    ------
    ValueError
        If a part is not a non-negative integer or an increasing range ``a-b``.
    """
    ranges = []
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValueError(f"empty take selection {text!r}")
    for part in parts:
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(
                f"bad take selection {text!r}: expected numbers and ranges like '0-4,7'"
            ) from None
        if a < 0 or b < a:
            raise ValueError(f"bad take range {part!r} in {text!r}: expected a-b with 0 <= a <= b")
        ranges.append((a, b))
    return Takes(ranges)


def _takes_arg(text: str) -> Takes:
    try:
        return parse_takes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _states_arg(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'auto', got {text!r}") from None


def _jobs_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of threads, or -1 for all cores, got {text!r}")
    return value


def _number(low: float | None = None, strict: bool = False):
    """An argparse type: a finite float, at least (or with ``strict``, above) ``low``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
        if low is not None and (value <= low if strict else value < low):
            bound = f"above {low:g}" if strict else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}")
        return value

    return parse


class _OnOff(argparse.BooleanOptionalAction):
    """``--flag/--no-flag``; the help text states the default itself (Python 3.10 would
    append '(default: True)' to it)."""

    def __init__(self, *args, help=None, **kwargs):
        super().__init__(*args, help=help, **kwargs)
        self.help = help


# ---------------------------------------------------------------------------- audio and labels
def _name_label(path: Path) -> str | None:
    """Label from a file name ``{label}_...``: the part of the stem before the first '_'."""
    label, sep, _ = path.stem.partition("_")
    return label if sep and label else None


def _name_take(path: Path) -> int | None:
    """Take number from a file name ``..._{take}.ext`` (the last '_' field, if a number)."""
    head, sep, last = path.stem.rpartition("_")
    return int(last) if sep and head and last.isdigit() else None


@dataclass
class _Item:
    path: Path
    words: list[str]
    shown: str  # the path as shown to users: relative to the audio folder where possible


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _audio_files(folder: Path, pattern: str) -> list[Path]:
    """Files under ``folder`` (recursively, hidden files and folders skipped) whose name
    matches ``pattern`` (case-insensitive), sorted."""
    pattern = pattern.lower()
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if fnmatch.fnmatch(p.name.lower(), pattern) and p.is_file():
            found.append(p)
    return sorted(found)


def _read_transcripts(file: Path, folder: Path) -> list[_Item]:
    from .speech.recognizer import SILENCE

    if not file.is_file():
        raise CLIError(f"transcript file not found: '{file}'")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read transcript file '{file}': {exc}") from exc
    items = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2:
            raise CLIError(f"{file}:{number}: expected 'path label [label ...]', got {line!r}")
        if SILENCE in fields[1:]:
            raise CLIError(f"{file}:{number}: the label {SILENCE} is reserved for the silence "
                           "model")
        path = Path(fields[0]).expanduser()
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise CLIError(f"{file}:{number}: audio file not found: '{path}'")
        items.append(_Item(path, fields[1:], _shown(path, folder)))
    if not items:
        raise CLIError(f"transcript file '{file}' lists no utterances")
    return items


def _select(folder: str, labels_from: str, pattern: str, include: Takes | None,
            exclude: Takes | None) -> list[_Item]:
    """Utterances under ``folder`` with their words, after the take filter."""
    from .speech.recognizer import SILENCE

    root = Path(folder).expanduser()
    if not root.exists():
        raise CLIError(f"audio folder not found: '{root}'")
    if not root.is_dir():
        raise CLIError(f"not a folder: '{root}'")
    if labels_from in ("names", "folders"):
        files = _audio_files(root, pattern)
        if not files:
            raise CLIError(f"no files matching '{pattern}' in '{root}' or its subfolders")
        if labels_from == "names":
            labels = [_name_label(p) for p in files]
            unlabelled = [_shown(p, root) for p, w in zip(files, labels, strict=True) if w is None]
            if unlabelled:
                raise CLIError(
                    f"{len(unlabelled)} file(s) in '{root}' are not named '{{label}}_....' "
                    f"(e.g. '{unlabelled[0]}'); rename them, narrow --pattern, use "
                    "--labels-from folders (one folder per word) or give a transcript file "
                    "with --labels-from FILE"
                )
        else:
            loose = [_shown(p, root) for p in files if p.parent == root]
            if loose:
                raise CLIError(
                    f"{len(loose)} file(s) lie directly in '{root}', not in a word folder "
                    f"(e.g. '{loose[0]}'); with --labels-from folders every file's label is "
                    "the name of its folder (AUDIO_DIR/word/file.wav)"
                )
            labels = [p.parent.name for p in files]
        items = [_Item(p, [w], _shown(p, root)) for p, w in zip(files, labels, strict=True)]
        reserved = [it.shown for it in items if it.words == [SILENCE]]
        if reserved:
            raise CLIError(f"{len(reserved)} file(s) are labelled {SILENCE}, which is reserved "
                           f"for the silence model (e.g. '{reserved[0]}')")
    else:
        items = _read_transcripts(Path(labels_from).expanduser(), root)
    if include is None and exclude is None:
        return items
    no_take = [it.shown for it in items if _name_take(it.path) is None]
    if no_take:
        raise CLIError(
            f"cannot select by take: {len(no_take)} file(s) have no take number at the end of "
            f"their name ('..._{{take}}.wav'), e.g. '{no_take[0]}'"
        )
    if include is not None:
        kept = [it for it in items if _name_take(it.path) in include]
    else:
        kept = [it for it in items if _name_take(it.path) not in exclude]
    if not kept:
        raise CLIError(f"no files in '{root}' are left after selecting takes")
    return kept


def _expand(name: str, pattern: str) -> list[tuple[Path, str]]:
    """The audio files of a FILE argument of ``recognize``: the file itself, or the files
    under a folder, each with the name to print."""
    path = Path(name).expanduser()
    if path.is_dir():
        files = _audio_files(path, pattern)
        if not files:
            raise CLIError(f"no files matching '{pattern}' in '{path}' or its subfolders")
        return [(p, str(Path(name) / p.relative_to(path))) for p in files]
    if not path.exists():
        raise CLIError(f"audio file not found: '{path}'")
    return [(path, name)]


# ---------------------------------------------------------------------------- models, grammars
def _load_model(path: str, insertion_penalty: float | None = None):
    from .speech import Recognizer

    p = Path(path).expanduser()
    if not p.is_file():
        raise CLIError(f"model file not found: '{p}'" if not p.exists()
                       else f"not a model file: '{p}'")
    try:
        rec = Recognizer.load(p)
    except (ValueError, OSError) as exc:
        raise CLIError(f"cannot load the model: {exc}") from exc
    if insertion_penalty is not None:
        rec.set_params(word_insertion_penalty=insertion_penalty)
    return rec


def _read_grammar(path, words=None) -> dict:
    """Read a word-pair grammar file for :meth:`Recognizer.recognize`.

    Parameters
    ----------
    path : str or Path
        A JSON object ``{"<s>": ["1", "2"], "1": ["2", "</s>"]}`` or a text file with one
        entry a line, ``word: follower follower ...``, where ``#`` starts a comment. An entry
        given twice in the text form lists the followers of both lines.
    words : sequence of labels, optional
        The model's words (``rec.classes_``). Given, every word of the grammar must be one of
        them (or ``<s>`` as a key, ``</s>`` as a follower), and the grammar's strings are
        mapped to the labels (which need not be strings).

    Returns
    -------
    dict mapping a word (or '<s>') to the list of words that may follow it (or '</s>').

    Raises
    ------
    CLIError
        If the file is missing or unreadable, malformed, or names unknown words; the message
        names the file (and the line, in the text form).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise CLIError(f"grammar file not found: '{p}'")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read grammar file '{p}': {exc}") from exc
    entries: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CLIError(f"{p}:{exc.lineno}: invalid JSON in grammar file: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise CLIError(f"grammar file '{p}': expected a JSON object")
        for key, followers in data.items():
            if not isinstance(followers, list) or not all(
                    isinstance(f, (str, int)) and not isinstance(f, bool) for f in followers):
                raise CLIError(f"grammar file '{p}': the entry {key!r} must be a list of "
                               f"words, got {followers!r}")
            entries[key] = [str(f) for f in followers]
            where[key] = f"{p}: entry {key!r}"
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0]
            if not line.strip():
                continue
            key, sep, rest = line.partition(":")
            key = key.strip()
            if not sep or len(key.split()) != 1:
                raise CLIError(f"{p}:{number}: expected 'word: follower follower ...', got "
                               f"{line.strip()!r}")
            entries.setdefault(key, []).extend(rest.split())
            where.setdefault(key, f"{p}:{number}")
    if not entries:
        raise CLIError(f"grammar file '{p}' has no entries")
    for key, followers in entries.items():
        if not followers:
            raise CLIError(f"{where[key]}: '{key}' lists no followers (use </s> for the end "
                           "of the utterance)")
    if words is None:
        return entries
    label = {str(w): w for w in words}
    known = " ".join(list(label)[:20]) + (" ..." if len(label) > 20 else "")
    label["<s>"], label["</s>"] = "<s>", "</s>"
    grammar = {}
    for key, followers in entries.items():
        if key not in label or key == "</s>":
            raise CLIError(f"{where[key]}: '{key}' is not a word of the model or <s> "
                           f"(words: {known})")
        bad = [f for f in followers if f not in label or f == "<s>"]
        if bad:
            raise CLIError(f"{where[key]}: {', '.join(repr(f) for f in bad)} "
                           f"{'is' if len(bad) == 1 else 'are'} not a word of the model or "
                           f"</s> (words: {known})")
        grammar[label[key]] = [label[f] for f in followers]
    return grammar


# ---------------------------------------------------------------------------- reports
def confusion_matrix(references, hypotheses, labels=None) -> tuple[np.ndarray, list[str]]:
    """Counts of (reference, hypothesis) pairs of isolated words.

    Parameters
    ----------
    references, hypotheses : sequences of labels, the same length
    labels : list of str, optional
        Order of the rows and columns; labels met in the data but missing here are appended
        in sorted order.

    Returns
    -------
    counts : ndarray of int, (n_labels, n_labels)
        ``counts[i, j]``: utterances of word ``labels[i]`` recognised as ``labels[j]``.
    labels : list of str
    """
    import numpy as np

    refs, hyps = [str(r) for r in references], [str(h) for h in hypotheses]
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    order = [str(w) for w in labels] if labels is not None else []
    order += sorted(set(refs + hyps) - set(order))
    index = {w: i for i, w in enumerate(order)}
    counts = np.zeros((len(order), len(order)), dtype=np.int64)
    for r, h in zip(refs, hyps, strict=True):
        counts[index[r], index[h]] += 1
    return counts, order


def format_confusion(counts: np.ndarray, labels: list[str]) -> str:
    """The confusion matrix as aligned text: rows reference, columns hypothesis, then the
    number of utterances and the percentage correct of each reference word."""
    import numpy as np

    counts = np.asarray(counts)
    width = max(max(len(w) for w in labels), len(str(int(counts.max(initial=0)))), 1) + 1
    lead = max(max(len(w) for w in labels), len("ref\\hyp"))
    lines = ["ref\\hyp".ljust(lead) + "".join(w.rjust(width) for w in labels)
             + "     n  %corr"]
    for i, w in enumerate(labels):
        n = int(counts[i].sum())
        corr = f"{100 * counts[i, i] / n:6.1f}" if n else "     -"
        lines.append(w.ljust(lead) + "".join(str(int(c)).rjust(width) for c in counts[i])
                     + f"{n:6d} {corr}")
    return "\n".join(lines)


def _format_scores(words, loglik, posterior) -> list[str]:
    """Three aligned lines: the words, their log-likelihoods and their posteriors."""
    cells = [[str(w) for w in words], [f"{v:.2f}" for v in loglik],
             [f"{v:.4g}" for v in posterior]]
    width = max(len(c) for row in cells for c in row) + 2
    return [f"  {head:<10}" + "".join(c.rjust(width) for c in row)
            for head, row in zip(("word", "loglik", "posterior"), cells, strict=True)]


def _describe_features(cfg) -> str:
    deltas = {0: "", 1: " + deltas", 2: " + deltas + delta-deltas"}[cfg.deltas]
    high = cfg.highfreq if cfg.highfreq is not None else (
        cfg.samplerate / 2 if cfg.samplerate else None)
    band = f"{cfg.lowfreq:g}-{high:g} Hz" if high is not None else f"from {cfg.lowfreq:g} Hz"
    norm = [name for name, on in (("CMN", cfg.cmn), ("CVN", cfg.cvn)) if on]
    rate = f"{cfg.samplerate} Hz audio" if cfg.samplerate else "audio at its own rate"
    return (f"{cfg.n_features} per frame ({cfg.numcep} cepstra{deltas}), filterbank {band}, "
            f"{'+'.join(norm) or 'no normalisation'}, {rate}")


# ---------------------------------------------------------------------------- commands
def _feature_config(args):
    from .speech import DEFAULT_FEATURES

    changed = {name: getattr(args, name) for name in _FRONT_END
               if getattr(args, name) != getattr(DEFAULT_FEATURES, name)}
    try:
        return dataclasses.replace(DEFAULT_FEATURES, **changed)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"invalid front end: {exc}") from exc


def _cmd_train(args) -> int:
    import numpy as np

    from .speech import Recognizer

    config = _feature_config(args)
    if (args.samplerate is not None and config.highfreq is not None
            and config.highfreq > args.samplerate / 2):
        raise CLIError(f"--highfreq {config.highfreq:g} is above the Nyquist frequency of "
                       f"--samplerate {args.samplerate} ({args.samplerate / 2:g} Hz)")
    items = _select(args.audio_dir, args.labels_from, args.pattern, args.takes,
                    args.exclude_takes)
    out = Path(args.output).expanduser()
    if not out.parent.is_dir():
        raise CLIError(f"output folder not found: '{out.parent}'")
    verbose = sys.stderr.isatty() if args.verbose is None else args.verbose
    # one word: isolated-word training; several: embedded training on the word string
    labels = [it.words[0] if len(it.words) == 1 else list(it.words) for it in items]
    rec = Recognizer(
        n_states=args.states, n_mix=args.mix, frames_per_state=args.frames_per_state,
        covariance_type=args.covariance_type, n_iter=args.iter, var_floor=args.var_floor,
        silence=args.silence, feature_config=config,
        word_insertion_penalty=args.insertion_penalty, n_jobs=args.jobs, verbose=verbose,
        augment=None if args.augment is None else tuple(args.augment), vtln=args.vtln,
    )
    if verbose:
        n_words = len({w for it in items for w in it.words})
        print(f"training on {len(items)} utterances of {n_words} words", file=sys.stderr)
    start = time.perf_counter()
    try:
        rec.fit([it.path for it in items], labels)
    except (ValueError, OSError) as exc:
        raise CLIError(f"training failed: {exc}") from exc
    seconds = time.perf_counter() - start
    try:
        rec.save(out)
    except OSError as exc:
        raise CLIError(f"cannot write the model to '{out}': {exc}") from exc
    words = [str(w) for w in rec.classes_]
    shown = " ".join(words) if len(words) <= 20 else " ".join(words[:20]) + " ..."
    states = np.asarray(getattr(rec, "word_states_", [args.states]))
    states = (f"{states.min()}" if states.min() == states.max()
              else f"{states.min()}-{states.max()}")
    print(f"utterances: {len(items)}")
    print(f"words: {len(words)} ({shown})")
    print(f"model: {states} states per word{' (auto)' if args.states == 'auto' else ''}, "
          f"{args.mix} Gaussian(s) per state, {args.covariance_type} covariances, "
          f"{'with' if args.silence else 'no'} silence model, {args.iter} iterations per stage")
    print(f"features: {_describe_features(rec.feature_config_)}")
    print(f"training time: {seconds:.1f} s")
    print(f"saved: {out}")
    return 0


def _cmd_recognize(args) -> int:
    rec = _load_model(args.model, args.insertion_penalty)
    grammar = _read_grammar(args.grammar, rec.classes_) if args.grammar else None
    connected = args.connected or grammar is not None
    status = 0
    for name in args.files:
        try:
            files = _expand(name, args.pattern)
        except CLIError as exc:
            print(f"{PROG} recognize: error: {exc}", file=sys.stderr)
            status = 2
            continue
        for path, shown in files:
            try:
                if connected:
                    words = rec.recognize(path, grammar=grammar)
                else:
                    label = rec.predict([path])[0]
                if args.scores:
                    loglik = rec.decision_function([path])[0]
                    posterior = rec.predict_proba([path])[0]
            except (ValueError, OSError) as exc:
                print(f"{PROG} recognize: error: {exc}", file=sys.stderr)
                status = 2
                continue
            if connected:
                print(f"{shown}\t{' '.join(str(w.label) for w in words) or '(nothing)'}")
                for w in words:
                    print(f"  {w.start:6.2f} {w.end:6.2f}  {w.label}")
            else:
                print(f"{shown}\t{label}")
                try:  # only for the warning: does the file hold several words?
                    words = rec.recognize(path)
                except ValueError:
                    words = []
            if args.scores:
                for line in _format_scores(rec.classes_, loglik, posterior):
                    print(line)
            if not connected and len(words) >= 2:
                sys.stdout.flush()
                print(f"{PROG} recognize: warning: {shown} sounds like {len(words)} words "
                      f"({' '.join(str(w.label) for w in words)}); use --connected",
                      file=sys.stderr)
    return status


def _cmd_evaluate(args) -> int:
    import numpy as np

    from .speech import word_errors

    rec = _load_model(args.model, args.insertion_penalty)
    grammar = _read_grammar(args.grammar, rec.classes_) if args.grammar else None
    items = _select(args.audio_dir, args.labels_from, args.pattern, args.takes,
                    args.exclude_takes)
    connected = (args.connected or grammar is not None
                 or any(len(it.words) != 1 for it in items))
    known = {str(w) for w in rec.classes_}
    unknown = sorted({w for it in items for w in it.words} - known)
    if unknown:
        print(f"{PROG} evaluate: warning: the model does not know the word(s) "
              f"{' '.join(unknown)}: they are always errors", file=sys.stderr)
    start = time.perf_counter()
    hyps = []
    for it in items:
        try:
            if connected:
                hyps.append([str(w.label) for w in rec.recognize(it.path, grammar=grammar)])
            else:
                hyps.append([str(rec.predict([it.path])[0])])
        except (ValueError, OSError) as exc:
            raise CLIError(f"cannot recognise '{it.shown}': {exc}") from exc
    seconds = time.perf_counter() - start
    counts = np.zeros(4, dtype=np.int64)
    wrong = []
    for it, hyp in zip(items, hyps, strict=True):
        errors = word_errors(it.words, hyp)
        counts += errors
        if any(errors[:3]):
            wrong.append((it, hyp))
    subs, dels, ins, n = (int(c) for c in counts)
    mode = "connected words" if connected else "isolated words"
    print(f"utterances: {len(items)} ({mode}), recognised in {seconds:.1f} s")
    if connected:
        wer = (subs + dels + ins) / max(n, 1)
        correct = 1 - (subs + dels) / max(n, 1)
        print(f"insertion penalty: {rec.word_insertion_penalty:g}"
              + (f", grammar: {args.grammar}" if grammar is not None else ""))
        print(f"word accuracy: {100 * (1 - wer):.2f}%  (correct {100 * correct:.2f}%)")
        print(f"WER: {100 * wer:.2f}%  (N={n}, S={subs}, D={dels}, I={ins})")
    else:
        right = len(items) - len(wrong)
        print(f"accuracy: {100 * right / len(items):.2f}%  ({right} of {len(items)} correct)")
        matrix, labels = confusion_matrix([it.words[0] for it in items],
                                          [h[0] for h in hyps], labels=rec.classes_)
        print("confusion matrix (rows: reference, columns: recognised):")
        print(format_confusion(matrix, labels))
    if args.errors:
        print(f"errors: {len(wrong)} file(s)")
        for it, hyp in wrong:
            print(f"  {it.shown}: {' '.join(it.words)} -> {' '.join(hyp) or '(nothing)'}")
    return 0


# ---------------------------------------------------------------------------- parser
class _CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: options may come between positional arguments
    (``emx recognize MODEL a.wav --scores b.wav``), as ``parse_intermixed_args`` allows."""

    _intermixed = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixed:  # parse_known_intermixed_args calls back here
            return super().parse_known_args(args, namespace)
        self._intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed = False


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=30)


def _wrap(text: str) -> str:
    """A description wrapped to 88 columns (the formatter keeps the epilogs' line breaks)."""
    return textwrap.fill(" ".join(text.split()), 88)


def _add_selection(p: argparse.ArgumentParser, include_flags: tuple[str, ...]) -> None:
    g = p.add_argument_group("audio and labels")
    g.add_argument("--labels-from", default="names", metavar="names|folders|FILE",
                   help="where labels come from. 'names' (default): the part of each file "
                        "name before the first '_' (7_jackson_3.wav -> 7). 'folders': the "
                        "name of the file's folder, one folder per word (yes/0a7c.wav -> yes). "
                        "FILE: a transcript file of lines 'path label [label ...]', paths "
                        "relative to AUDIO_DIR (write ./names for a file so named)")
    g.add_argument("--pattern", default="*.wav", metavar="GLOB",
                   help="names of the audio files searched for in AUDIO_DIR and its "
                        "subfolders, case-insensitive; hidden files and folders are skipped "
                        "(default: %(default)s; not used with a transcript file)")
    takes = g.add_mutually_exclusive_group()
    takes.add_argument(*include_flags, dest="takes", type=_takes_arg, metavar="TAKES",
                       help="only files whose name ends in _{take} with take in TAKES "
                            "(e.g. 0-4 or 0-4,10)")
    takes.add_argument("--exclude-takes", type=_takes_arg, metavar="TAKES",
                       help="leave out files whose name ends in _{take} with take in TAKES")


def _add_decoding(p: argparse.ArgumentParser, connected_help: str) -> argparse._ArgumentGroup:
    g = p.add_argument_group("recognition")
    g.add_argument("--connected", action="store_true", help=connected_help)
    g.add_argument("--grammar", metavar="FILE",
                   help="word-pair grammar for connected recognition (implies --connected): "
                        "a JSON object {\"<s>\": [\"1\", \"2\"], \"1\": [\"2\", \"</s>\"]} or "
                        "text lines 'word: follower follower ...' ('#' starts a comment); "
                        "<s> is the start, </s> the end; words without an entry may be "
                        "followed by any word")
    g.add_argument("--insertion-penalty", type=_number(), metavar="X",
                   help="log-probability added per word in connected recognition, instead "
                        "of the model's (more negative: fewer words, e.g. -100; less: more)")
    return g


_TRAIN_EPILOG = """\
examples:
  emx train recordings/ -o digits.npz --exclude-takes 0-4
  emx train recordings/ -o digits.npz --covariance-type full --samplerate 16000 \\
      --no-cvn --states auto --mix 4 --jobs 2
  emx train speech_commands/ -o commands.npz --labels-from folders
  emx train corpus/ -o words.npz --labels-from transcripts.txt

A transcript file holds one utterance a line, 'path word [word ...]'; a line with several
words trains the word models on the whole string (no time boundaries needed).
"""

_RECOGNIZE_EPILOG = """\
examples:
  emx recognize digits.npz 7_jackson_0.wav 3_theo_12.wav
  emx recognize digits.npz recordings/ --pattern '7_*' --scores
  emx recognize digits.npz number.wav --connected --insertion-penalty -40
  emx recognize digits.npz number.wav --grammar pairs.json

Output: one line per file, 'FILE<tab>WORD' (with --connected, the words found), then with
--connected one line per word, 'start end word' (seconds), and with --scores the
log-likelihood and posterior of every word of the model.

A grammar in text form, one entry a line:
  <s>: 1 2       # the first word is 1 or 2
  1: 2 </s>      # 1 is followed by 2 or ends the utterance
  2: 1 </s>
"""

_EVALUATE_EPILOG = """\
examples:
  emx evaluate digits.npz recordings/ --takes 0-4
  emx evaluate digits.npz recordings/ --takes 0-4 --errors
  emx evaluate commands.npz speech_commands_test/ --labels-from folders
  emx evaluate digits.npz numbers/ --labels-from numbers.txt --insertion-penalty -40
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_Formatter,
        description="Word recognition with GMM-HMMs (one left-to-right model per word).",
        epilog="examples:\n"
               "  emx train recordings/ -o digits.npz --exclude-takes 0-4\n"
               "  emx recognize digits.npz recordings/7_jackson_0.wav\n"
               "  emx evaluate digits.npz recordings/ --takes 0-4 --errors\n\n"
               "Run 'emx COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action=_Version,
                        help="print the version of emx and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)

    # -- train
    p = sub.add_parser(
        "train", help="train a recogniser on a folder of audio files",
        formatter_class=_Formatter, epilog=_TRAIN_EPILOG,
        description=_wrap(
            "Train one GMM-HMM per word (and a silence model) on the audio files under "
            "AUDIO_DIR, searched recursively, and save the recogniser. The front end settings "
            "and the sample rate are saved with the model."),
    )
    p.add_argument("audio_dir", metavar="AUDIO_DIR",
                   help="folder of training audio (searched recursively)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.npz",
                   help="where to save the model")
    _add_selection(p, ("--include-takes", "--takes"))

    g = p.add_argument_group("model")
    g.add_argument("--covariance-type", choices=("diag", "full"),
                   default=_DEFAULTS["covariance_type"],
                   help="covariance of each Gaussian (default: %(default)s)")
    g.add_argument("--states", type=_states_arg, default=_DEFAULTS["n_states"],
                   metavar="N|auto",
                   help="states per word model, or 'auto': from each word's mean duration "
                        "(see --frames-per-state) (default: %(default)s)")
    g.add_argument("--frames-per-state", type=_number(1.0), metavar="F",
                   default=_DEFAULTS["frames_per_state"],
                   help="with --states auto: mean frames per state (default: %(default)s)")
    g.add_argument("--mix", type=_positive_int, default=_DEFAULTS["n_mix"], metavar="M",
                   help="Gaussians per state, grown by splitting (default: %(default)s)")
    g.add_argument("--silence", action=_OnOff, default=_DEFAULTS["silence"],
                   help="train a silence model, optional before, between and after words "
                        f"(default: {'on' if _DEFAULTS['silence'] else 'off'})")
    g.add_argument("--insertion-penalty", type=_number(), metavar="X",
                   default=_DEFAULTS["word_insertion_penalty"],
                   help="log-probability added per word in connected recognition, saved with "
                        "the model (default: %(default)s)")

    g = p.add_argument_group("training")
    g.add_argument("--iter", type=_positive_int, default=_DEFAULTS["n_iter"], metavar="N",
                   help="Baum-Welch passes after the initialisation and after each split "
                        "(default: %(default)s)")
    g.add_argument("--var-floor", type=_number(0.0), default=_DEFAULTS["var_floor"],
                   metavar="F",
                   help="variance floor, as a fraction of the global variance of the "
                        "training features (default: %(default)s)")
    g.add_argument("--jobs", type=_jobs_arg, default=_DEFAULTS["n_jobs"], metavar="N",
                   help="threads for training; -1 for all cores (default: 1)")
    g.add_argument("--augment", type=_number(0.5), nargs="+", default=None, metavar="F",
                   help="also train on the audio played F times as fast, for each F (speed "
                        "perturbation, e.g. 0.9 1.1; default: off)")
    g.add_argument("--vtln", action=_OnOff, default=_DEFAULTS["vtln"],
                   help="vocal tract length normalisation: a warp factor per utterance in "
                        "training and recognition (default: off)")
    verbosity = g.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", dest="verbose", action="store_true",
                           help="log every Baum-Welch pass (log-likelihood per frame, "
                                "seconds) on stderr (the default when stderr is a terminal)")
    verbosity.add_argument("-q", "--quiet", dest="verbose", action="store_false",
                           help="no progress log (the default when stderr is not a terminal)")

    fe = argparse.Namespace(**_FRONT_END_DEFAULTS)
    g = p.add_argument_group("front end (MFCC; saved with the model)")
    g.add_argument("--samplerate", type=_positive_int, default=fe.samplerate, metavar="HZ",
                   help="resample all audio to HZ, in training and recognition (default: the "
                        "rate of the training audio, which the model then keeps)")
    g.add_argument("--numcep", type=_positive_int, default=fe.numcep, metavar="N",
                   help="cepstral coefficients per frame, before the deltas "
                        "(default: %(default)s)")
    g.add_argument("--lowfreq", type=_number(0.0), default=fe.lowfreq, metavar="HZ",
                   help="lowest edge of the mel filterbank (default: %(default)g)")
    g.add_argument("--highfreq", type=_number(0.0, strict=True), default=fe.highfreq,
                   metavar="HZ",
                   help="highest edge of the mel filterbank (default: "
                        + (f"{fe.highfreq:g}" if fe.highfreq is not None
                           else "half the sample rate") + ")")
    g.add_argument("--cmn", action=_OnOff, default=fe.cmn,
                   help="cepstral mean normalisation per utterance "
                        f"(default: {'on' if fe.cmn else 'off'})")
    g.add_argument("--cvn", action=_OnOff, default=fe.cvn,
                   help="cepstral variance normalisation per utterance "
                        f"(default: {'on' if fe.cvn else 'off'})")
    p.set_defaults(func=_cmd_train, verbose=None)

    # -- recognize
    p = sub.add_parser(
        "recognize", aliases=["recognise"], help="recognise audio files",
        formatter_class=_Formatter, epilog=_RECOGNIZE_EPILOG,
        description=_wrap(
            "Print the best word of each file (isolated-word recognition), or with --connected "
            "the words found by connected-word recognition with their start and end times in "
            "seconds. A file that sounds like several words without --connected draws a "
            "warning on stderr."),
    )
    p.add_argument("model", metavar="MODEL.npz", help="a model saved by 'emx train'")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="audio files, or folders searched recursively for --pattern")
    p.add_argument("--pattern", default="*.wav", metavar="GLOB",
                   help="names of the files searched for in FILE folders, case-insensitive "
                        "(default: %(default)s)")
    g = _add_decoding(p, "connected-word recognition: print the words found with their "
                         "start and end times in seconds")
    g.add_argument("--scores", action="store_true",
                   help="also print every word's log-likelihood and posterior probability "
                        "for the file (as an isolated word)")
    p.set_defaults(func=_cmd_recognize)

    # -- evaluate
    p = sub.add_parser(
        "evaluate", help="accuracy and confusion matrix on labelled audio",
        formatter_class=_Formatter, epilog=_EVALUATE_EPILOG,
        description=_wrap(
            "Recognise every selected file under AUDIO_DIR and compare with its label: "
            "accuracy and the confusion matrix for isolated words; word accuracy and WER with "
            "substitutions, deletions and insertions (HResults alignment) for connected "
            "words."),
    )
    p.add_argument("model", metavar="MODEL.npz", help="a model saved by 'emx train'")
    p.add_argument("audio_dir", metavar="AUDIO_DIR",
                   help="folder of labelled test audio (searched recursively)")
    _add_selection(p, ("--takes", "--include-takes"))
    g = _add_decoding(p, "score connected-word recognition (word accuracy and WER; implied "
                         "by --grammar and when a transcript line has several words)")
    g.add_argument("--errors", "-v", "--verbose", dest="errors", action="store_true",
                   help="list the misrecognised files: reference -> recognised")
    p.set_defaults(func=_cmd_evaluate)
    return parser


def _show_warning(command: str):
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{PROG} {command}: warning: {message}", file=sys.stderr)
    return show


def main(argv=None) -> int:
    """Run the ``emx`` command line; returns the exit status (0 success, 2 error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse has printed it)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning(args.command)
            return args.func(args)
    except CLIError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which has exited
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
