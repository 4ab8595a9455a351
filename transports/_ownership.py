"""Check that the ``transports`` package imported is rpcengine's own.

An unrelated package on the package index is also named ``transports``:
installed next to rpcengine it replaces ``transports/__init__.py`` (and
uninstalling it then removes that file), or it shadows rpcengine's package
from earlier on ``sys.path``. rpcengine's ``transports/__init__.py`` sets the
marker :data:`MARKER`; the modules users import (:mod:`transports.memory`,
:mod:`transports.tcp`, :mod:`transports.websocket`) call
:func:`require_own_package` once, when they are imported, so such an
installation fails with a message that names it instead of a
``ModuleNotFoundError`` or ``AttributeError`` later.
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
