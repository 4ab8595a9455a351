"""Run one fuzz target under atheris (libFuzzer), with the parsers instrumented for coverage.

Usage: ``python run_atheris.py TARGET [libFuzzer options] [corpus dirs]``, TARGET
being ``frames`` or ``messages``. Exits non-zero on a crash (an exception
other than the documented ones, or a broken invariant); see targets.py.
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["rpcengine", "transports", "targets"]):
    from targets import TARGETS

    import rpcengine.codec
    import rpcengine.messages  # noqa: F401
    import transports.framing
    import transports.session.handshake  # noqa: F401


def main() -> None:
    """Pick the target named by the first argument and fuzz it."""
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
