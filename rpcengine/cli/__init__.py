"""The ``rpcengine`` command line: serve an object, call a server, listen to it, run the demo.

::

    rpcengine serve MODULE:OBJECT URL [URL ...]   expose OBJECT's rpc_ methods
    rpcengine call URL METHOD [JSON]              send a request, print the result
    rpcengine notify URL METHOD [JSON]            send a notification
    rpcengine listen URL [--count N] [--duration S]   print notifications as JSON lines
    rpcengine methods URL                         list the methods a server exposes
    rpcengine demo [--keep-running SECONDS]       run the demo

URLs are ``tcp://HOST:PORT``, ``tls://HOST:PORT``, ``ws://HOST:PORT/PATH``
and ``wss://HOST:PORT/PATH``. Every error is reported as one line on
stderr, ``rpcengine: error: ...``, and an exit code from
:class:`~rpcengine.cli.errors.ExitCode`; a remote Error's data is printed
on stderr as one line of JSON instead.

This package is rpcengine's front door: unlike the core it uses
:mod:`transports` and :mod:`dispatchers`, and the core never imports it.
Its modules: :mod:`~rpcengine.cli.errors` (exit codes),
:mod:`~rpcengine.cli.urls`, :mod:`~rpcengine.cli.connect`,
:mod:`~rpcengine.cli.client` (``call``, ``notify``, ``listen``,
``methods``), :mod:`~rpcengine.cli.serve`, :mod:`~rpcengine.cli.signals`,
and the demo: :mod:`~rpcengine.cli.demo` with its service, script and page
server.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from rpcengine import __version__
from rpcengine.cli.connect import describe_os_error
from rpcengine.cli.errors import PROG, CliError, ExitCode, print_error
from rpcengine.cli.packages import require_rpcengine_packages
from rpcengine.errors import (
    ConnectionLost,
    EncodeError,
    ProtocolError,
    RequestException,
    RequestTimeout,
)

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)

_LOG_LEVELS = ("debug", "info", "warning", "error")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``rpcengine: error: ...``."""

    def error(self, message: str) -> NoReturn:
        """Print the error as one line, with a pointer to ``--help``, and exit with code 2."""
        print_error(f"{message} (see '{self.prog} --help')")
        self.exit(ExitCode.USAGE)


def _positive_float(text: str) -> float:
    """argparse type: a number greater than zero."""
    value = _non_negative_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    """argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    """argparse type: an integer greater than zero."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    """Add the options every subcommand takes."""
    parser.add_argument("--log-level", choices=_LOG_LEVELS, default="warning", help="logging level (default: warning)")


def _client_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of the commands that connect to a server."""
    parser.add_argument("url", metavar="URL", help="tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH or wss://...")
    parser.add_argument(
        "--timeout", type=_positive_float, default=30.0, help="seconds to connect, and to wait for the answer (30)"
    )
    parser.add_argument("--cafile", help="trust the certificates in this PEM file (tls:// and wss://)")
    parser.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    _common(parser)


def _add_serve(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    from rpcengine.cli.serve import serve

    parser = subparsers.add_parser("serve", help="expose an object's rpc_ methods", description=serve.__doc__)
    parser.add_argument("target", metavar="MODULE:OBJECT", help="object (or class, instantiated) to expose")
    parser.add_argument("urls", metavar="URL", nargs="+", help="listener: tcp://HOST:PORT, ws://HOST:PORT/PATH, ...")
    parser.add_argument("--certfile", help="PEM certificate chain for tls:// and wss:// listeners")
    parser.add_argument("--keyfile", help="PEM private key (if not in --certfile)")
    parser.add_argument(
        "--unpack-params",
        action="store_true",
        help="handlers take the call's data as arguments (def rpc_add(self, a, b)), checked before the call",
    )
    parser.add_argument(
        "--heartbeat-interval", type=_non_negative_float, help="seconds between heartbeats (default 5; 0: off)"
    )
    parser.add_argument(
        "--heartbeat-timeout", type=_non_negative_float, help="drop a peer silent this long (default 15; 0: off)"
    )
    parser.add_argument("--max-connections", type=_positive_int, help="open connections per listener (default 10000)")
    parser.add_argument("--max-concurrency", type=_positive_int, help="calls handled at once per connection (64)")
    parser.add_argument("--max-message-size", type=_positive_int, help="largest message in bytes (default 1 MiB)")
    parser.add_argument(
        "--stop-timeout", type=_non_negative_float, default=5.0, help="seconds to let calls finish on stop (5)"
    )
    _common(parser)
    parser.set_defaults(run=serve)


def _add_clients(subparsers: Any) -> None:
    """Add the ``call``, ``notify``, ``listen`` and ``methods`` subcommands."""
    from rpcengine.cli import client

    call = subparsers.add_parser("call", help="send a request and print its result as JSON")
    _client_options(call)
    call.add_argument("method", metavar="METHOD")
    call.add_argument("data", metavar="JSON", nargs="?", help="the request data as JSON ('-': read stdin)")
    call.set_defaults(run=client.call)

    notify = subparsers.add_parser("notify", help="send a notification")
    _client_options(notify)
    notify.add_argument("method", metavar="METHOD")
    notify.add_argument("data", metavar="JSON", nargs="?", help="the notification data as JSON ('-': read stdin)")
    notify.set_defaults(run=client.notify)

    listen = subparsers.add_parser("listen", help="print every notification the server sends, one JSON line each")
    _client_options(listen)
    listen.add_argument("--count", type=_positive_int, help="exit after this many notifications")
    listen.add_argument("--duration", type=_positive_float, help="exit after this many seconds")
    listen.set_defaults(run=client.listen)

    methods = subparsers.add_parser("methods", help="list the methods a server exposes (rpcengine.describe)")
    _client_options(methods)
    methods.add_argument("--json", action="store_true", help="print the raw description as JSON")
    methods.set_defaults(run=client.methods)


def _add_demo(subparsers: Any) -> None:
    """Add the ``demo`` subcommand (its module is imported only when it runs)."""
    demo = subparsers.add_parser("demo", help="run a server and a scripted client that show what rpcengine does")
    demo.add_argument(
        "--keep-running",
        type=_non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="keep serving this long after the script, for a browser (default: 0)",
    )
    demo.add_argument(
        "--base-port",
        type=int,
        default=7300,
        metavar="PORT",
        help="try PORT, PORT+1, PORT+2 for TCP, WebSocket and HTTP, else free ports (0: free ports; default 7300)",
    )
    _common(demo)
    demo.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    """Run the demo (imported lazily: it pulls in every transport)."""
    from rpcengine.cli.demo import run_demo

    return run_demo(keep_running=args.keep_running, base_port=args.base_port)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``rpcengine`` command."""
    parser = _Parser(prog=PROG, description="Serve, call and watch rpcengine servers.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve(subparsers)
    _add_clients(subparsers)
    _add_demo(subparsers)
    return parser


def _configure_logging(level: str) -> None:
    """Send log records at ``level`` and above to stderr."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _exit_code(exc: BaseException) -> tuple[int, str | None]:
    """Return the exit code for ``exc`` and the one-line message to print (None: printed already)."""
    if isinstance(exc, CliError):
        return exc.code, exc.message
    if isinstance(exc, RequestException):
        from rpcengine.cli.client import dump_json

        print(dump_json(exc.data), file=sys.stderr, flush=True)
        return ExitCode.REMOTE_ERROR, None
    if isinstance(exc, RequestTimeout):
        return ExitCode.TIMEOUT, f"timeout: {exc}"
    if isinstance(exc, EncodeError):
        return ExitCode.USAGE, f"cannot send: {exc}"
    if isinstance(exc, (ConnectionLost, ProtocolError)):
        return ExitCode.CONNECTION, f"connection lost: {exc}"
    if isinstance(exc, OSError):
        return ExitCode.CONNECTION, f"network error: {describe_os_error(exc)}"
    log.debug("unexpected error", exc_info=exc)
    return ExitCode.INTERNAL, f"unexpected {type(exc).__name__}: {exc} (run with --log-level debug for details)"


def _silence_stdout() -> None:
    """Point stdout at /dev/null after its reader went away, so the exit flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        require_rpcengine_packages()  # first: building the parser imports them
    except CliError as exc:
        print_error(exc.message)
        return exc.code
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE if exc.code else ExitCode.OK
    _configure_logging(args.log_level)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return ExitCode.OK
    except Exception as exc:
        code, message = _exit_code(exc)
        if message is not None:
            print_error(message)
        return code
