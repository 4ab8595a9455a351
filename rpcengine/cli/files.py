"""The file commands: ``serve --files ROOT [--writable]``, ``get URL REMOTE LOCAL`` and ``put URL LOCAL REMOTE``.

``serve --files`` serves the directory with a
:class:`~dispatchers.files.FileService` (read-only unless ``--writable``);
``get`` and ``put`` move one file with :func:`~dispatchers.files.get_file`
and :func:`~dispatchers.files.put_file`, print the result (path, size,
SHA-256) as JSON on stdout, and draw a progress bar on stderr when stderr
is a terminal. A refusal (``not_found``, ``path_refused``, ...) is printed
as the Error's data on stderr, exit code 1; a local file that cannot be
read or written is a usage error (exit 2).

Both sides ask for frequent acknowledgements (``max_unacked`` of
:data:`TRANSFER_MAX_UNACKED`), so that the messages kept for resend stay a
few megabytes however large the file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, TextIO

from dispatchers.files import FileService, get_file, put_file
from rpcengine.cli.client import _endpoint, _open, close_flushed
from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.cli.output import dump_json, wants_pretty

__all__ = ["TRANSFER_MAX_UNACKED", "ProgressBar", "file_service", "get", "put"]

#: ``max_unacked`` of a file server and of ``get``/``put``: the peer acknowledges every 64 messages.
TRANSFER_MAX_UNACKED = 256

_MIB = 1 << 20


def file_service(args: argparse.Namespace) -> FileService:
    """Return the FileService ``serve --files ROOT [--writable]`` asks for; raise CliError (exit 2)."""
    try:
        return FileService(args.files, writable=args.writable)
    except (OSError, ValueError) as exc:
        raise CliError(f"--files {args.files}: {exc}", ExitCode.USAGE) from None


class ProgressBar:
    """A one-line progress bar redrawn in place on ``stream`` (a terminal), at most ``rate`` times a second."""

    def __init__(self, label: str, stream: TextIO, rate: float = 10.0) -> None:
        self.label = label
        self.stream = stream
        self.interval = 1.0 / rate
        self.started = time.monotonic()
        self._drawn = 0.0
        self._shown = False

    def __call__(self, done: int, total: int | None) -> None:
        """Redraw for ``done`` of ``total`` bytes (a progress callback); skipped if drawn a moment ago."""
        now = time.monotonic()
        if now - self._drawn < self.interval and (total is None or done < total):
            return
        self._drawn = now
        elapsed = max(now - self.started, 1e-6)
        speed = done / elapsed / _MIB
        if total:
            fraction = min(1.0, done / total)
            bar = "#" * int(fraction * 30)
            amount = f"{done / _MIB:.1f}/{total / _MIB:.1f} MiB"
            text = f"{self.label} [{bar:<30}] {fraction:4.0%} {amount} {speed:.1f} MiB/s"
        else:
            text = f"{self.label} {done / _MIB:.1f} MiB {speed:.1f} MiB/s"
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        """End the line, if anything was drawn."""
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


def _progress(label: str, quiet: bool) -> ProgressBar | None:
    """Return a progress bar on stderr if it is a terminal (and not ``quiet``), else None."""
    if quiet:
        return None
    try:
        if not sys.stderr.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return ProgressBar(label, sys.stderr)


def _transfer(args: argparse.Namespace, label: str, run: Any) -> int:
    """Connect, run ``run(engine, progress)``, print its result; close the connection (blocks)."""
    endpoint = _endpoint(args)
    if endpoint.jsonrpc:
        raise CliError(f"{endpoint.url}: get and put speak rpcengine's protocol, not JSON-RPC", ExitCode.USAGE)
    engine = _open(args, max_unacked=TRANSFER_MAX_UNACKED)
    bar = _progress(label, args.quiet)
    try:
        result = run(engine, bar)
    finally:
        if bar is not None:
            bar.finish()
        close_flushed(engine)
    print(dump_json(result, wants_pretty(args.pretty)), flush=True)
    return ExitCode.OK


def get(args: argparse.Namespace) -> int:
    """``get URL REMOTE LOCAL``: download the server's REMOTE to LOCAL, checked by SHA-256 (blocks)."""
    directory = os.path.dirname(os.path.abspath(args.local))
    if os.path.isdir(args.local) or not os.path.isdir(directory):
        raise CliError(f"{args.local}: not a file in an existing directory", ExitCode.USAGE)

    def run(engine: Any, progress: ProgressBar | None) -> Any:
        return get_file(engine, args.remote, args.local, progress, chunk=args.chunk, timeout=args.timeout)

    try:
        return _transfer(args, f"get {args.remote}", run)
    except OSError as exc:
        if getattr(exc, "filename", None) is None:
            raise
        raise CliError(f"{args.local}: {exc.strerror}", ExitCode.USAGE) from None


def put(args: argparse.Namespace) -> int:
    """``put URL LOCAL REMOTE``: upload LOCAL to the server's REMOTE, checked by SHA-256 (blocks)."""
    if not os.path.isfile(args.local):  # first: opening a FIFO would block
        raise CliError(f"{args.local}: not a regular file", ExitCode.USAGE)
    try:
        with open(args.local, "rb"):
            pass
    except OSError as exc:
        raise CliError(f"{args.local}: {exc.strerror}", ExitCode.USAGE) from None

    def run(engine: Any, progress: ProgressBar | None) -> Any:
        return put_file(engine, args.local, args.remote, progress, chunk=args.chunk, timeout=args.timeout)

    return _transfer(args, f"put {args.remote}", run)
