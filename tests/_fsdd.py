"""Where the tests find FSDD (the shared recordings beside the repository, or $EMX_FSDD)."""

import os
from pathlib import Path

import pytest


def _fsdd_dir() -> Path:
    env = os.environ.get("EMX_FSDD")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"


FSDD = _fsdd_dir()
needs_fsdd = pytest.mark.skipif(
    not (FSDD / "0_george_0.wav").is_file(),
    reason=f"FSDD recordings not found in {FSDD} (set EMX_FSDD to their folder)",
)
