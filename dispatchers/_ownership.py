"""Check that the ``dispatchers`` package imported is rpcengine's own.

The same check as :mod:`transports._ownership` (each package carries its
own copy, since neither may import the other): rpcengine's
``dispatchers/__init__.py`` sets the marker :data:`MARKER`, and
:mod:`dispatchers.method` calls :func:`require_own_package` when it is
imported, so a package of the same name installed over it, or shadowing it,
fails with a message that names that installation.
"""

from __future__ import annotations

import sys

__all__ = ["MARKER", "require_own_package"]

#: The attribute rpcengine's ``transports`` and ``dispatchers`` packages set to ``True``.
MARKER = "__rpcengine_package__"


def require_own_package(name: str) -> None:
    """Raise ``ImportError`` unless the imported package ``name`` is rpcengine's (does not yield).

    The message names where the package found was loaded from and the fix
    (``pip uninstall NAME``, then reinstall rpcengine).
    """
    package = sys.modules.get(name)
    if package is not None and getattr(package, MARKER, False) is True:
        return
    location = getattr(package, "__file__", None) or ", ".join(getattr(package, "__path__", None) or []) or "?"
    known = " (as the unrelated 'transports' package from the package index does)" if name == "transports" else ""
    raise ImportError(
        f"the {name!r} package imported from {location} is not rpcengine's: another installation named "
        f"{name!r} replaced it or comes first on sys.path{known}. Fix: pip uninstall {name}, then reinstall rpcengine",
        name=name,
        path=location,
    )
