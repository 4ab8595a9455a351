"""Check, before a command runs, that ``transports`` and ``dispatchers`` are rpcengine's own.

An unrelated package on the package index is also named ``transports``. When
it shadows rpcengine's from earlier on ``sys.path``, none of rpcengine's
``transports`` modules ever runs (so their own check,
:func:`rpcengine.packages.require_own_package`, cannot speak): this check imports each package
and looks for the marker rpcengine's ``__init__.py`` sets, so the command
fails with one line naming the conflicting installation instead of a
traceback about a missing ``transports.tcp``.
"""

from __future__ import annotations

import importlib

from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.packages import foreign_package

__all__ = ["PACKAGES", "require_rpcengine_packages"]

#: rpcengine's top-level packages besides ``rpcengine`` itself.
PACKAGES = ("transports", "dispatchers")


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
        problem = foreign_package(name, package)
        if problem is not None:
            raise CliError(problem, ExitCode.USAGE)
