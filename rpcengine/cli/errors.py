"""Exit codes of the ``rpcengine`` command line and the one-line error it prints.

=====  ==========================================================
code   meaning
=====  ==========================================================
0      success (also when stdout is closed early, as by ``| head``)
1      the server answered with an Error (its data is printed on
       stderr as one line of JSON)
2      usage: bad arguments, a bad URL, an invalid JSON argument
3      timeout: no answer within ``--timeout`` seconds (``discover``:
       no server answered)
4      connection failure: refused, lost, handshake refused, or a
       listener that cannot be opened
5      an unexpected error inside the command line tool itself
130    interrupted by Ctrl-C
=====  ==========================================================
"""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import TextIO

__all__ = ["CliError", "ExitCode", "print_error"]

PROG = "rpcengine"


class ExitCode(IntEnum):
    """The process exit status of every ``rpcengine`` command."""

    OK = 0
    REMOTE_ERROR = 1
    USAGE = 2
    TIMEOUT = 3
    CONNECTION = 4
    INTERNAL = 5
    INTERRUPTED = 130


class CliError(Exception):
    """An error that ends a command with ``code`` after printing ``message`` as one line."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def print_error(message: str, stream: TextIO | None = None) -> None:
    """Print ``rpcengine: error: <message>`` as exactly one line on stderr."""
    line = " ".join(str(message).split()) or "unknown error"
    print(f"{PROG}: error: {line}", file=stream or sys.stderr, flush=True)
