"""What ``import emx`` and ``emx --help`` import: only what they need.

Each check runs in a fresh interpreter from a neutral folder (the repository root would put
the source tree first on sys.path) and lists the heavy modules found in ``sys.modules``.
"""

import subprocess
import sys

import pytest

# scikit-learn (and through it scipy.stats), scipy's compiled submodules, the audio libraries
HEAVY = ("sklearn", "sklearn.base", "sklearn.cluster", "scipy.linalg", "scipy.stats",
         "scipy.sparse", "scipy.signal", "soundfile", "python_speech_features", "dask")

_REPORT = "import sys; print(' '.join(m for m in {heavy!r} if m in sys.modules))"


def _imported(tmp_path, code: str, heavy=HEAVY) -> list[str]:
    run = subprocess.run([sys.executable, "-c", code + "\n" + _REPORT.format(heavy=heavy)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def test_import_emx_imports_no_heavy_module(tmp_path):
    assert _imported(tmp_path, "import emx") == []
    # numpy neither: the package's namespace is filled on first use
    assert _imported(tmp_path, "import emx", ("numpy",)) == []


def test_help_screens_import_no_heavy_module(tmp_path):
    code = ("import contextlib, io\n"
            "from emx.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    for argv in (['--help'], ['train', '--help'], ['recognize', '--help'],\n"
            "                 ['evaluate', '--help'], ['--version']):\n"
            "        assert main(argv) == 0, argv\n"
            "assert 'usage: emx' in out.getvalue()")
    assert _imported(tmp_path, code, HEAVY + ("numpy", "importlib.metadata")) == [
        "importlib.metadata"]  # --version only, when asked for
    code_help = code.replace("['--version']", "['train', '-h']")
    assert _imported(tmp_path, code_help, HEAVY + ("numpy", "importlib.metadata")) == []


def test_reading_htk_files_does_not_import_the_recogniser(tmp_path):
    assert _imported(tmp_path, "from emx.speech import read_htk, write_mmf",
                     ("sklearn", "emx.speech.recognizer", "emx.hmm")) == []


@pytest.mark.parametrize("name", ["GaussianHMM", "GMMHMM", "GaussianMixture", "EMImputer",
                                  "FactorAnalysis", "MixtureOfFactorAnalyzers",
                                  "CategoricalHMM", "ConvergenceMonitor", "EMDecreaseWarning"])
def test_public_names_are_there_on_first_use(name):
    import emx

    assert name in emx.__all__ and name in dir(emx)
    value = getattr(emx, name)
    assert value.__name__ == name and value.__module__.startswith("emx.")
    exec(f"from emx import {name} as imported", globals(), scope := {})
    assert scope["imported"] is value


def test_every_public_name_resolves():
    import emx
    import emx.speech

    for module in (emx, emx.speech):
        for name in module.__all__:
            assert getattr(module, name) is not None, name
        with pytest.raises(AttributeError, match="no attribute 'nothing'"):
            module.nothing  # noqa: B018
    assert emx.speech.Recognizer.__module__ == "emx.speech.recognizer"
    assert emx.distributed.__name__ == "emx.distributed"


def test_speech_features_stays_the_function_after_its_module_is_imported(tmp_path):
    # emx.speech.features is both a function (the public name) and a module; importing the
    # recogniser (which imports the module) must not put the module in the function's place
    code = ("import emx.speech.recognizer, emx.speech\n"
            "from emx.speech import features\n"
            "assert callable(features) and emx.speech.features is features\n")
    assert _imported(tmp_path, code, ()) == []
