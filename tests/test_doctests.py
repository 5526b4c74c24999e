"""The Examples sections of emx's docstrings, run as doctests against the installed emx.

``pytest --doctest-modules`` cannot be pointed at the source folder ``emx/`` (it has no
compiled kernels and refuses to import, see test_packaging.py), so the doctests of the
imported modules are collected here with the doctest module, one test per docstring.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import numpy as np
import pytest

MODULES = [
    "emx",
    "emx._em",
    "emx.datasets",
    "emx.discrete",
    "emx.distributed",
    "emx.emissions",
    "emx.factor",
    "emx.gaussian",
    "emx.hmm",
    "emx.impute",
    "emx.mixture",
    "emx.speech",
    "emx.speech.adapt",
    "emx.speech.features",
    "emx.speech.formats",
    "emx.speech.network",
    "emx.speech.recognizer",
]

# Every public estimator and speech entry point has an Examples section with at least one
# example that runs (not all +SKIP).
MUST_RUN = [
    "emx.GaussianHMM",
    "emx.GMMHMM",
    "emx.CategoricalHMM",
    "emx.MultinomialHMM",
    "emx.PoissonHMM",
    "emx.GaussianMixture",
    "emx.FactorAnalysis",
    "emx.MixtureOfFactorAnalyzers",
    "emx.EMImputer",
    "emx.speech.Recognizer",
    "emx.speech.Recognizer.fit",
    "emx.speech.Recognizer.predict",
    "emx.speech.mfcc",
    "emx.speech.features",
    "emx.speech.load_audio",
    "emx.speech.read_htk",
    "emx.speech.write_htk",
    "emx.speech.write_mmf",
    "emx.speech.parm_kind_code",
]
# Documented with examples that need a cluster or files the user has: shown, not run.
MUST_SHOW = ["emx.distributed.fit", "emx.speech.read_kaldi", "emx.speech.read_mmf"]

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module(name):
    # import_module, not attribute access: emx.speech.features is also a function's name
    return importlib.import_module(name)


def _collect():
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = {}
    for name in MODULES:
        for test in finder.find(_module(name), name):
            if test.examples:
                tests.setdefault(test.name, test)
    return tests


TESTS = _collect()


def _resolve(dotted):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = _module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _examples(obj):
    doc = inspect.getdoc(obj) or ""
    assert "Examples\n--------" in doc, "no Examples section"
    return doctest.DocTestParser().get_examples(doc)


@pytest.mark.parametrize("name", MUST_RUN)
def test_has_running_examples(name):
    examples = _examples(_resolve(name))
    running = [e for e in examples if not e.options.get(doctest.SKIP)]
    assert running, f"{name}: every example is skipped"


@pytest.mark.parametrize("name", MUST_SHOW)
def test_has_examples(name):
    assert _examples(_resolve(name)), f"{name}: the Examples section shows no example"


def test_collected():
    """The finder sees the docstrings (a broken collection would pass every test below)."""
    for name in ("emx.hmm.GaussianHMM", "emx.speech.recognizer.Recognizer.fit",
                 "emx.speech.formats.read_htk"):
        assert name in TESTS, sorted(TESTS)


@pytest.mark.parametrize("name", sorted(TESTS))
def test_doctest(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    test = TESTS[name]
    test.globs = dict(test.globs)  # each run starts from the module's namespace
    output = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    with np.printoptions(legacy=False):
        runner.run(test, out=output.append, clear_globs=False)
    assert runner.failures == 0, "".join(output)
