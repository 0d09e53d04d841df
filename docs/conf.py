"""Sphinx configuration of the ginga_ccdcal documentation.

Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``tests/test_docs.py`` does exactly that, so a warning fails the tests).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The package from this checkout, even if another copy is installed, and
# our small extension (CLI help, optional benchmark results).
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(HERE, "_ext"))
# Importing the API must never need a screen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import ginga_ccdcal  # noqa: E402

project = "ginga-ccdcal"
author = "the ginga-ccdcal developers"
copyright = "the ginga-ccdcal developers, BSD 3-clause"
version = release = ginga_ccdcal.__version__

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "ccdcal_docs",
    # Renders notebooks/ccd_lab.ipynb with its outputs (no pandoc needed).
    "myst_nb",
]

# The lab notebook runs at every build, so its outputs always match the
# code; a failing cell fails the build.  Its kernel imports this checkout.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
os.environ["PYTHONPATH"] = os.pathsep.join(
    [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

# `name` in docstrings is a cross-reference to a Python object.
default_role = "py:obj"
nitpicky = False
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
# The screenshots are part of the source tree (docs/screenshots/*.png).
templates_path = []

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
# Members are listed by autodoc; numpydoc's own member tables would
# document every attribute a second time.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"ginga-ccdcal {release}"
html_static_path = []
html_theme_options = {
    "description": "A CCD calibration workbench in the Ginga FITS viewer",
    "fixed_sidebar": True,
}
