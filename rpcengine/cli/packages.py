"""Check, before a command runs, that ``transports`` and ``dispatchers`` are rpcengine's own.

An unrelated package on the package index is also named ``transports``. When
it shadows rpcengine's from earlier on ``sys.path``, none of rpcengine's
``transports`` modules ever runs (so their own check,
:mod:`transports._ownership`, cannot speak): this check imports each package
and looks for the marker rpcengine's ``__init__.py`` sets, so the command
fails with one line naming the conflicting installation instead of a
traceback about a missing ``transports.tcp``.
"""

from __future__ import annotations

import importlib

from rpcengine.cli.errors import CliError, ExitCode

__all__ = ["PACKAGES", "require_rpcengine_packages"]

#: rpcengine's top-level packages besides ``rpcengine`` itself.
PACKAGES = ("transports", "dispatchers")
_MARKER = "__rpcengine_package__"  # as in transports._ownership.MARKER


def require_rpcengine_packages() -> None:
    """Import ``transports`` and ``dispatchers``; raise :class:`CliError` unless both are rpcengine's.

    Does not yield. The message names where the package found was loaded
    from and the fix (``pip uninstall NAME``, then reinstall rpcengine).
    """
    for name in PACKAGES:
        try:
            package = importlib.import_module(name)
        except ImportError as exc:
            raise CliError(f"cannot import rpcengine's {name!r} package: {exc}", ExitCode.USAGE) from exc
        if getattr(package, _MARKER, False) is not True:
            location = getattr(package, "__file__", None) or ", ".join(getattr(package, "__path__", None) or [])
            known = (
                " (as the unrelated 'transports' package from the package index does)" if name == "transports" else ""
            )
            raise CliError(
                f"the {name!r} package imported from {location or '?'} is not rpcengine's: another installation "
                f"named {name!r} replaced it or comes first on sys.path{known}. "
                f"Fix: pip uninstall {name}, then reinstall rpcengine",
                ExitCode.USAGE,
            )
