"""The package as a user meets it: the licence file, importing from a source folder."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_license_file_is_the_bsd_3_clause_pyproject_declares():
    assert 'license = { text = "BSD-3-Clause" }' in (ROOT / "pyproject.toml").read_text()
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Neither the name of the copyright holder" in text  # clause 3


@pytest.mark.skipif(not (ROOT / "emx" / "__init__.py").is_file(),
                    reason="the emx source folder is not beside the tests")
def test_importing_an_unbuilt_source_folder_says_what_to_do(tmp_path):
    # a source folder without the compiled kernels, first on sys.path (as the repository's
    # top folder is for a REPL or `python -c` started there); -S keeps site-packages (and an
    # editable install's import hook) out of the way
    shutil.copytree(ROOT / "emx", tmp_path / "emx",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    run = subprocess.run([sys.executable, "-S", "-c", "import emx"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "ImportError: emx's compiled kernels" in run.stderr
    assert str(tmp_path / "emx") in run.stderr
    assert "pip install" in run.stderr and "outside the repository's top folder" in run.stderr
