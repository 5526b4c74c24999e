"""Command line for word recognition: ``emx train``, ``emx recognize``, ``emx evaluate``.

Examples
--------
Train on the FSDD training takes (5-49), labels from the file names ``{digit}_{speaker}_{take}``::

    emx train recordings/ -o digits.npz --exclude-takes 0-4

Recognise files, as isolated words and as connected words with their times::

    emx recognize digits.npz recordings/7_jackson_0.wav --connected

Accuracy, error counts and confusion matrix on the test takes::

    emx evaluate digits.npz recordings/ --takes 0-4

Labels can also come from a transcript file, one utterance a line: a path (relative to the
audio folder, or absolute) followed by its word(s); blank lines and lines starting with ``#``
are ignored::

    speaker1/take3.wav yes
    speaker1/take4.wav no

Errors (missing folders or files, unreadable audio or model files) are reported on stderr
with exit status 2.
"""

from __future__ import annotations

import argparse
import fnmatch
import inspect
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .speech import Recognizer, word_errors

__all__ = ["confusion_matrix", "format_confusion", "main", "parse_takes"]

PROG = "emx"

# The command line's training defaults are the Recognizer's.
_DEFAULTS = {name: p.default for name, p in inspect.signature(Recognizer).parameters.items()}


class CLIError(Exception):
    """A user-facing error: printed to stderr, exit status 2."""


# ---------------------------------------------------------------------------- helpers
def parse_takes(text: str) -> set[int]:
    """Parse a take selection such as ``"0-4"``, ``"7"`` or ``"0-4,10,20-22"``.

    Raises
    ------
    ValueError
        If a part is not a non-negative integer or an increasing range ``a-b``.
    """
    takes: set[int] = set()
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
        takes.update(range(a, b + 1))
    return takes


def _takes_arg(text: str) -> set[int]:
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


def _audio_files(folder: Path, pattern: str) -> list[Path]:
    pattern = pattern.lower()
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and fnmatch.fnmatch(p.name.lower(), pattern))


def _read_transcripts(file: Path, folder: Path) -> list[_Item]:
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
        path = Path(fields[0]).expanduser()
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise CLIError(f"{file}:{number}: audio file not found: '{path}'")
        items.append(_Item(path, fields[1:]))
    if not items:
        raise CLIError(f"transcript file '{file}' lists no utterances")
    return items


def _select(folder: str, labels_from: str, pattern: str, include: set[int] | None,
            exclude: set[int] | None) -> list[_Item]:
    """Utterances of ``folder`` with their words, after the take filter."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise CLIError(f"audio folder not found: '{root}'")
    if not root.is_dir():
        raise CLIError(f"not a folder: '{root}'")
    if labels_from == "names":
        files = _audio_files(root, pattern)
        if not files:
            raise CLIError(f"no files matching '{pattern}' in '{root}'")
        unlabelled = [p.name for p in files if _name_label(p) is None]
        if unlabelled:
            raise CLIError(
                f"{len(unlabelled)} file(s) in '{root}' are not named '{{label}}_....' (e.g. "
                f"'{unlabelled[0]}'); rename them, narrow --pattern, or give a transcript file "
                "with --labels-from FILE"
            )
        items = [_Item(p, [_name_label(p)]) for p in files]
    else:
        items = _read_transcripts(Path(labels_from).expanduser(), root)
    if include is None and exclude is None:
        return items
    no_take = [it.path.name for it in items if _name_take(it.path) is None]
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


def _load_model(path: str):
    p = Path(path).expanduser()
    if not p.is_file():
        raise CLIError(f"model file not found: '{p}'" if not p.exists()
                       else f"not a model file: '{p}'")
    try:
        return Recognizer.load(p)
    except (ValueError, OSError) as exc:
        raise CLIError(f"cannot load the model: {exc}") from exc


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


# ---------------------------------------------------------------------------- commands
def _cmd_train(args) -> int:
    items = _select(args.audio_dir, args.labels_from, args.pattern, args.include_takes,
                    args.exclude_takes)
    out = Path(args.output).expanduser()
    if not out.parent.is_dir():
        raise CLIError(f"output folder not found: '{out.parent}'")
    # one word: isolated-word training; several: embedded training on the word string
    labels = [it.words[0] if len(it.words) == 1 else list(it.words) for it in items]
    rec = Recognizer(n_states=args.states, n_mix=args.mix, n_iter=args.iter,
                     verbose=args.verbose)
    start = time.perf_counter()
    try:
        rec.fit([it.path for it in items], labels)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(f"training failed: {exc}") from exc
    seconds = time.perf_counter() - start
    try:
        rec.save(out)
    except OSError as exc:
        raise CLIError(f"cannot write the model to '{out}': {exc}") from exc
    words = rec.words_
    shown = " ".join(words) if len(words) <= 20 else " ".join(words[:20]) + " ..."
    print(f"utterances: {len(items)}")
    print(f"words: {len(words)} ({shown})")
    print(f"model: {args.states} states, {args.mix} Gaussians per state, {args.iter} iterations "
          "per stage")
    print(f"training time: {seconds:.1f} s")
    print(f"saved: {out}")
    return 0


def _cmd_recognize(args) -> int:
    rec = _load_model(args.model)
    status = 0
    for name in args.files:
        path = Path(name).expanduser()
        try:
            if not path.is_file():
                raise FileNotFoundError(f"audio file not found: '{path}'")
            word = rec.predict([path])[0]
            words = rec.recognize(path) if args.connected else None
        except (ValueError, FileNotFoundError) as exc:
            print(f"{PROG} recognize: error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{name}\t{word}")
        if words is not None:
            for w in words:
                print(f"  {w.start:6.2f} {w.end:6.2f}  {w.label}")
    return status


def _cmd_evaluate(args) -> int:
    rec = _load_model(args.model)
    items = _select(args.audio_dir, args.labels_from, args.pattern, args.takes,
                    args.exclude_takes)
    connected = args.connected or any(len(it.words) != 1 for it in items)
    start = time.perf_counter()
    hyps = []
    for it in items:
        try:
            hyps.append([w.label for w in rec.recognize(it.path)] if connected
                        else rec.predict([it.path]))
        except (ValueError, FileNotFoundError) as exc:
            raise CLIError(f"cannot recognise '{it.path}': {exc}") from exc
    seconds = time.perf_counter() - start
    counts = np.zeros(4, dtype=np.int64)
    wrong = []
    for it, hyp in zip(items, hyps, strict=True):
        errors = word_errors(it.words, hyp)
        counts += errors
        if any(errors[:3]):
            wrong.append((it, hyp))
    subs, dels, ins, n = (int(c) for c in counts)
    wer = (subs + dels + ins) / max(n, 1)
    mode = "connected words" if connected else "isolated words"
    print(f"utterances: {len(items)} ({mode}), recognised in {seconds:.1f} s")
    correct = 1 - (subs + dels) / max(n, 1)
    print(f"accuracy: {100 * (1 - wer):.2f}%  (correct {100 * correct:.2f}%)")
    print(f"WER: {100 * wer:.2f}%  (N={n}, S={subs}, D={dels}, I={ins})")
    if not connected:
        matrix, labels = confusion_matrix([it.words[0] for it in items],
                                          [h[0] for h in hyps], labels=rec.words_)
        print("confusion matrix (rows: reference, columns: recognised):")
        print(format_confusion(matrix, labels))
    if args.verbose and wrong:
        print("errors:")
        for it, hyp in wrong:
            print(f"  {it.path}: {' '.join(it.words)} -> {' '.join(hyp) or '(nothing)'}")
    return 0


# ---------------------------------------------------------------------------- parser
def _add_selection(p: argparse.ArgumentParser, include_flags: tuple[str, ...]) -> None:
    p.add_argument("--labels-from", default="names", metavar="names|FILE",
                   help="'names' (default): the label is the part of each file name before "
                        "the first '_' ({label}_..., e.g. 7_jackson_3.wav -> 7); or a "
                        "transcript file of lines 'relative/path.wav label [label ...]' "
                        "(paths relative to AUDIO_DIR; write ./names for a file so named)")
    p.add_argument("--pattern", default="*.wav",
                   help="file name pattern in AUDIO_DIR with --labels-from names "
                        "(default: %(default)s, case-insensitive)")
    group = p.add_mutually_exclusive_group()
    group.add_argument(*include_flags, dest=include_flags[0].lstrip("-").replace("-", "_"),
                       type=_takes_arg, metavar="TAKES",
                       help="only files whose name ends in _{take} with take in TAKES "
                            "(e.g. 0-4 or 0-4,10)")
    group.add_argument("--exclude-takes", type=_takes_arg, metavar="TAKES",
                       help="leave out files whose name ends in _{take} with take in TAKES")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Word recognition with GMM-HMMs (one left-to-right model per word).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a recogniser on a folder of audio files",
                       description="Train one GMM-HMM per word and save the recogniser.")
    p.add_argument("audio_dir", metavar="AUDIO_DIR")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.npz",
                   help="where to save the model")
    _add_selection(p, ("--include-takes", "--takes"))
    p.add_argument("--states", type=_positive_int, default=_DEFAULTS["n_states"],
                   help="states per word model (default: %(default)s)")
    p.add_argument("--mix", type=_positive_int, default=_DEFAULTS["n_mix"],
                   help="Gaussians per state, grown by splitting (default: %(default)s)")
    p.add_argument("--iter", type=_positive_int, default=_DEFAULTS["n_iter"],
                   help="Baum-Welch iterations per training stage (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log each training stage on stderr")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("recognize", aliases=["recognise"], help="recognise audio files",
                       description="Print the best word of each file (isolated-word "
                                   "recognition); with --connected also the words found by "
                                   "connected-word recognition, with start and end times in "
                                   "seconds.")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--connected", action="store_true",
                   help="also print connected-word recognition with times")
    p.set_defaults(func=_cmd_recognize)

    p = sub.add_parser("evaluate", help="accuracy and confusion matrix on labelled audio",
                       description="Recognise every selected file and compare with its label: "
                                   "accuracy, word error counts (HResults alignment) and, for "
                                   "isolated words, the confusion matrix.")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("audio_dir", metavar="AUDIO_DIR")
    _add_selection(p, ("--takes", "--include-takes"))
    p.add_argument("--connected", action="store_true",
                   help="use connected-word recognition (insertions and deletions possible; "
                        "implied when a transcript line has several words)")
    p.add_argument("-v", "--verbose", action="store_true", help="list the misrecognised files")
    p.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv=None) -> int:
    """Run the ``emx`` command line; returns the exit status (0 success, 2 error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error (argparse has printed it)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
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
