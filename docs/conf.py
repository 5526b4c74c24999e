"""Sphinx configuration of emx's documentation.

Build (from the repository root, with ``pip install ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Cross-references to numpy, scipy, scikit-learn and Python (intersphinx) need their
inventories. The build never fetches them by default, so it works offline and cannot hang
on the network. Two ways to turn them on:

- ``EMX_DOCS_INTERSPHINX=1``: fetch the inventories from the projects' sites;
- put ``python.inv``, ``numpy.inv``, ``scipy.inv``, ``sklearn.inv`` (the ``objects.inv``
  files of those sites) in ``docs/_inventories/``: each one present is used offline.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent

# ``python -m sphinx`` run from the repository root puts the root first on sys.path, where
# the source folder emx/ (without compiled kernels) would shadow the installed package.
# Import the installed emx: drop the root (and '') from sys.path before importing it.
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != REPO]

import emx  # noqa: E402

project = "emx"
author = "the emx developers"
copyright = "2026, the emx developers"  # noqa: A001
release = emx.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_inventories", "Thumbs.db", ".DS_Store"]
html_theme = "alabaster"
html_theme_options = {
    "description": "EM for latent-variable models on compiled kernels",
    "fixed_sidebar": True,
    "page_width": "1100px",
}
html_static_path: list[str] = []

# ---------------------------------------------------------------- API reference
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "groupwise"
autodoc_typehints = "none"  # numpydoc sections carry the types
numpydoc_show_class_members = False  # the class template lists methods once
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# ---------------------------------------------------------------- intersphinx (optional)
_INVENTORIES = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "scipy": "https://docs.scipy.org/doc/scipy",
    "sklearn": "https://scikit-learn.org/stable",
}
intersphinx_mapping = {}
_online = os.environ.get("EMX_DOCS_INTERSPHINX", "") not in ("", "0")
for _name, _url in _INVENTORIES.items():
    _local = DOCS / "_inventories" / f"{_name}.inv"
    if _local.is_file():
        intersphinx_mapping[_name] = (_url, str(_local))
    elif _online:
        intersphinx_mapping[_name] = (_url, None)
if intersphinx_mapping:
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_timeout = 10

# ---------------------------------------------------------------- gallery
sphinx_gallery_conf = {
    "examples_dirs": [str(REPO / "examples" / "gallery")],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",  # run every plot_*.py
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "sphinx_gallery.sorting.FileNameSortKey",
    "show_memory": False,
    "reset_modules": ("matplotlib",),
}

# Examples print through numpy; keep matplotlib off any display.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")


def _skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's metadata routing and output-container machinery
    (set_fit_request, get_metadata_routing, set_output): their docstrings point into
    scikit-learn's own documentation. get_params, set_params, score... stay."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    if name in ("get_metadata_routing", "set_output"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
