"""Sphinx configuration for the rpcengine documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (warnings are
errors). Modules that cannot be imported in this environment (the optional
WebSocket transport) are replaced by a note instead of failing the build.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rpcengine  # noqa: E402

project = "rpcengine"
author = "the rpcengine authors"
copyright = "the rpcengine authors"
release = version = rpcengine.__version__

# viewcode puts a [source] link beside every documented name.
# Links to Python's and gevent's documentation use extlinks, not intersphinx: there is no network
# when the docs are built and tested, so intersphinx could not fetch the other projects' inventories
# (and -W would turn that failure into an error). An extlink is a URL pattern, resolved offline.
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode", "sphinx.ext.extlinks"]
extlinks = {
    "python": ("https://docs.python.org/3/%s", "%s"),
    "gevent": ("https://www.gevent.org/%s", "%s"),
}
exclude_patterns = ["_build"]
templates_path: list[str] = []

html_theme = "furo"
html_title = f"rpcengine {release}"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
add_module_names = False

_AUTOMODULE = re.compile(r"^\.\. automodule:: (?P<name>[\w.]+)[ \t]*$", re.MULTILINE)


def _importable(name: str) -> bool:
    """Return whether module ``name`` imports here."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _skip_missing_modules(app: object, docname: str, source: list[str]) -> None:
    """Replace ``automodule`` of a module that cannot be imported with a note (and its options)."""
    text = source[0]

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if _importable(name):
            return match.group(0)
        return f".. note::\n\n   ``{name}`` cannot be imported in this build, so its reference is missing.\n\n.. "

    source[0] = _AUTOMODULE.sub(replace, text)


def setup(app: object) -> None:
    """Register the hook that keeps optional modules from failing the build."""
    app.connect("source-read", _skip_missing_modules)  # type: ignore[attr-defined]
