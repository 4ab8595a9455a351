"""Entry point of ``python -m rpcengine``: runs the command line of :mod:`rpcengine.cli`.

The core :mod:`rpcengine` package never imports :mod:`transports` or
:mod:`dispatchers`: dependencies point from them to it. Only its front door
:mod:`rpcengine.cli` uses them, and :func:`main` imports it only when the
command runs, so ``import rpcengine`` (and even ``import rpcengine.__main__``)
loads neither package nor the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rpcengine`` command line with ``argv`` (default: ``sys.argv[1:]``); return its exit code."""
    from rpcengine.cli import main as cli_main  # lazy: see the module docstring

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
