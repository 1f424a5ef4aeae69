"""Sphinx configuration of spherefer's API reference: built from the docstrings (``python -m sphinx -W
-b html docs/api docs/api/_build``; ``tests/test_docs.py`` builds it with warnings as errors)."""

import spherefer

project = "spherefer"
author = "the spherefer developers"
release = version = spherefer.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = ["ray"]
default_role = "py:obj"
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings = ["ref.python"]  # a short name that several modules define resolves to the first
