"""Where the tests find the Free Spoken Digit Dataset (FSDD).

One variable, ``$EMX_DATA``, as for :func:`emx.datasets.load_fsdd`; the first of these that
holds the recordings (``{digit}_{speaker}_{take}.wav``) is used:

1. with ``$EMX_DATA`` set, where ``load_fsdd()`` finds them: ``$EMX_DATA/fsdd``,
   ``$EMX_DATA/fsdd/recordings``, ``$EMX_DATA`` itself, then the download cache;
2. ``$EMX_FSDD``, the folder of the recordings: the tests' former variable, deprecated (still
   read, with a DeprecationWarning; set ``EMX_DATA`` instead);
3. ``../shared/data/fsdd`` beside the repository (the team's shared copy);
4. the download cache ``~/.cache/emx/fsdd`` (filled by ``load_fsdd(download=True)``).

Tests that need the recordings are marked ``needs_fsdd`` and skipped, with a reason that says
where they looked and how to get the data, when none of these holds them. Several tests
count files and speakers of the 4-speaker release (2,000 recordings; george, jackson, lucas,
nicolas), the one in the shared copy.
"""

import os
import warnings
from pathlib import Path

import pytest

from emx.datasets import load_fsdd

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"


def _has_recordings(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("[0-9]_*_*.wav"))


def _locate() -> tuple[Path | None, list[str]]:
    looked = []
    if os.environ.get("EMX_DATA"):
        try:
            return Path(load_fsdd().root), looked
        except (FileNotFoundError, ValueError):
            looked.append(f"$EMX_DATA={os.environ['EMX_DATA']} (and the cache), as load_fsdd()")
    legacy = os.environ.get("EMX_FSDD")
    if legacy:
        warnings.warn("$EMX_FSDD is deprecated: set EMX_DATA to the folder holding fsdd/ (or "
                      "the recordings themselves), as emx.datasets.load_fsdd reads it",
                      DeprecationWarning, stacklevel=2)
        if _has_recordings(Path(legacy)):
            return Path(legacy), looked
        looked.append(f"$EMX_FSDD={legacy} (deprecated)")
    if _has_recordings(SHARED):
        return SHARED, looked
    looked.append(str(SHARED))
    try:
        return Path(load_fsdd().root), looked
    except (FileNotFoundError, ValueError):
        looked.append("the download cache ~/.cache/emx/fsdd")
    return None, looked


_found, _looked = _locate()
#: The folder of the FSDD recordings (a path that does not exist when none was found).
FSDD = _found if _found is not None else SHARED
needs_fsdd = pytest.mark.skipif(
    not (FSDD / "0_george_0.wav").is_file(),
    reason="FSDD recordings not found (looked in: " + "; ".join(_looked or [str(FSDD)])
    + "). Set EMX_DATA to the folder holding fsdd/ (or the recordings), or fetch them with "
    "python -c 'from emx.datasets import load_fsdd; load_fsdd(download=True)'",
)
