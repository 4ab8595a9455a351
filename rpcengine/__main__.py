"""Entry point of ``python -m rpcengine`` and of the ``rpcengine`` console script.

The core :mod:`rpcengine` package never imports :mod:`transports` or
:mod:`dispatchers` at import time: dependencies point from them to it. This
module is the one exception, and a lazy one: :func:`main` imports
:mod:`transports.cli` only when the command runs, so ``import rpcengine``
(and even ``import rpcengine.__main__``) still loads neither package.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rpcengine`` command line with ``argv`` (default: ``sys.argv[1:]``); return its exit code."""
    from transports.cli import main as cli_main  # lazy: see the module docstring

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
