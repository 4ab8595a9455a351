"""Whether the ``transports`` and ``dispatchers`` packages imported are rpcengine's own.

An unrelated package on the package index is also named ``transports``:
installed next to rpcengine it replaces ``transports/__init__.py`` (and
uninstalling it then removes that file), or it shadows rpcengine's package
from earlier on ``sys.path``. rpcengine's ``transports/__init__.py`` and
``dispatchers/__init__.py`` set the attribute :data:`MARKER`; the modules
users import call :func:`require_own_package` once, when they are imported,
and the command line calls :func:`foreign_package` before it runs, so such
an installation fails with a message that names it instead of a
``ModuleNotFoundError`` or ``AttributeError`` later.

This module only looks at modules already imported (``sys.modules``): the
core imports no transport and no dispatcher.
"""

from __future__ import annotations

import sys
from types import ModuleType

__all__ = ["MARKER", "foreign_package", "require_own_package"]

#: The attribute rpcengine's ``transports`` and ``dispatchers`` packages set to ``True``.
MARKER = "__rpcengine_package__"


def foreign_package(name: str, package: ModuleType | None) -> str | None:
    """Return why ``package`` (imported as ``name``) is not rpcengine's, or None if it is (does not yield).

    The message names where the package found was loaded from and the fix
    (``pip uninstall NAME``, then reinstall rpcengine).
    """
    if package is not None and getattr(package, MARKER, False) is True:
        return None
    location = getattr(package, "__file__", None) or ", ".join(getattr(package, "__path__", None) or []) or "?"
    known = " (as the unrelated 'transports' package from the package index does)" if name == "transports" else ""
    return (
        f"the {name!r} package imported from {location} is not rpcengine's: another installation named "
        f"{name!r} replaced it or comes first on sys.path{known}. Fix: pip uninstall {name}, then reinstall rpcengine"
    )


def require_own_package(name: str) -> None:
    """Raise ``ImportError`` (with :func:`foreign_package`'s message) unless the imported ``name`` is rpcengine's."""
    problem = foreign_package(name, sys.modules.get(name))
    if problem is not None:
        raise ImportError(problem, name=name)
