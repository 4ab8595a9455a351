"""The ``rpcengine`` command line: serve an object, call a server, listen to it, run the demo.

::

    rpcengine serve MODULE:OBJECT URL [URL ...]   serve an rpc handler (or --functions MODULE)
    rpcengine call URL METHOD [ARG ...]           send a request, print the result
    rpcengine notify URL METHOD [ARG ...]         send a notification
    rpcengine listen URL [--count N] [--duration S]   print notifications as JSON lines
    rpcengine methods URL [NAME]                  list the methods a server exposes, or show one
    rpcengine discover [--timeout S] [--workgroup W]  list the servers on the LAN that answer discovery
    rpcengine get URL REMOTE LOCAL                download a file (a server run with serve --files ROOT)
    rpcengine put URL LOCAL REMOTE                upload a file (serve --files ROOT --writable)
    rpcengine demo [--keep-running SECONDS]       run the demo
    rpcengine demo --cluster [--broker URL]       two server processes sharing broadcasts through Redis

``serve ... --broker URL`` makes the process one node of a service on a
Redis (``redis://HOST:PORT/DB``, ``unix:///PATH.sock``), ``--queue NAME``
serves a work queue there too, and ``call --broker URL queue:NAME METHOD``
sends to that queue (:mod:`~rpcengine.cli.broker`).

Run bare, ``rpcengine`` prints its help (the command list) and exits with
code 2, as for any missing argument; ``rpcengine --help`` exits with 0.

URLs are ``tcp://HOST:PORT``, ``tls://HOST:PORT``, ``ws://HOST:PORT/PATH``
and ``wss://HOST:PORT/PATH``; the client commands also take
``http://HOST:PORT/PATH/rpc`` (long-poll), and speak JSON-RPC 2.0 with
``--jsonrpc``, to ``jsonrpc+tcp://HOST:PORT``, or to a path ending in
``/jsonrpc`` (``http://HOST:PORT/jsonrpc`` is one POST per call). Every error is reported as one line on
stderr, ``rpcengine: error: ...``, and an exit code from
:class:`~rpcengine.cli.errors.ExitCode`; a remote Error's data is printed
on stderr as one line of JSON instead. Every command takes ``--trace``
(every message sent and received on stderr, :mod:`~rpcengine.cli.trace`)
and ``--log-level``.

This package is rpcengine's front door: unlike the core it uses
:mod:`transports` and :mod:`dispatchers`, and the core never imports it.
Its modules: :mod:`~rpcengine.cli.errors` (exit codes),
:mod:`~rpcengine.cli.helptext` (the ``--help`` texts),
:mod:`~rpcengine.cli.urls`, :mod:`~rpcengine.cli.connect` with
:mod:`~rpcengine.cli.diagnose` and :mod:`~rpcengine.cli.probe` (why a
connection failed), :mod:`~rpcengine.cli.client` (``call``, ``notify``,
``listen``, ``methods``) with :mod:`~rpcengine.cli.arguments`,
:mod:`~rpcengine.cli.output` and :mod:`~rpcengine.cli.describe`,
:mod:`~rpcengine.cli.serve` with :mod:`~rpcengine.cli.handlers` and
:mod:`~rpcengine.cli.watch`, :mod:`~rpcengine.cli.trace`,
:mod:`~rpcengine.cli.signals`, :mod:`~rpcengine.cli.discover`, :mod:`~rpcengine.cli.broker`
(the Redis broker and work queues), and the demo: :mod:`~rpcengine.cli.demo`
with its service, script and page server, and :mod:`~rpcengine.cli.demo_cluster` (two nodes).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from rpcengine import __version__
from rpcengine.cli.diagnose import describe_os_error
from rpcengine.cli.errors import PROG, CliError, ExitCode, print_error
from rpcengine.cli.helptext import DESCRIPTIONS, EPILOGS
from rpcengine.cli.packages import require_rpcengine_packages
from rpcengine.discovery import BROADCAST
from rpcengine.discovery import DEFAULT_PORT as DISCOVERY_PORT
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


class _CommandParser(_Parser):
    """The parser of one command: options may come between its positional arguments.

    ``call URL echo --string 123`` must read 123 as an ARG, which plain
    argparse refuses once an option has ended the run of positionals.
    """

    _intermixing = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """Parse with :meth:`~argparse.ArgumentParser.parse_known_intermixed_args` (which calls back here)."""
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


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
    parser.add_argument(
        "--log-level",
        choices=_LOG_LEVELS,
        default="warning",
        help="logging level on stderr (default: warning; debug shows connections and calls)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="print every message sent (→) and received (←) on stderr, with the time"
    )


def _add_command(subparsers: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` with its plain-text description and examples (see helptext)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=DESCRIPTIONS[name],
        epilog=EPILOGS[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _client_options(parser: argparse.ArgumentParser, timeout_help: str, queue: bool = False) -> None:
    """Add the options of the commands that connect to a server (``queue``: the URL may be queue:NAME too)."""
    parser.add_argument(
        "url",
        metavar="URL",
        help="tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH, wss://..., http://HOST:PORT/PATH/rpc, "
        "jsonrpc+tcp://HOST:PORT or http://HOST:PORT/jsonrpc" + (", or queue:NAME with --broker" if queue else ""),
    )
    parser.add_argument(
        "--jsonrpc",
        action="store_true",
        help="speak JSON-RPC 2.0 (implied by jsonrpc+tcp:// and by a path ending in /jsonrpc)",
    )
    parser.add_argument("--timeout", type=_positive_float, default=30.0, help=timeout_help)
    parser.add_argument("--cafile", help="trust the certificates in this PEM file (tls:// and wss://)")
    parser.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    _common(parser)


def _add_serve(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    from rpcengine.cli.serve import serve

    parser = _add_command(subparsers, "serve", "serve an rpc handler (MODULE:OBJECT, or --functions MODULE)")
    parser.add_argument(
        "target",
        metavar="MODULE:OBJECT",
        nargs="?",
        help="what to serve (with --functions: a MODULE, its functions; with --files: none)",
    )
    parser.add_argument(
        "urls",
        metavar="URL",
        nargs="*",
        help="listener: tcp://HOST:PORT, ws://HOST:PORT/PATH, ... (at least one, unless --queue is given)",
    )
    parser.add_argument(
        "--functions", action="store_true", help="serve the public functions of the module named by the target"
    )
    parser.add_argument("--files", metavar="ROOT", help="serve the directory ROOT: files.list, files.read, ...")
    parser.add_argument("--writable", action="store_true", help="with --files: accept uploads (rpcengine put)")
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
        "--origin",
        action="append",
        metavar="ORIGIN",
        help="a web page origin allowed on ws:// listeners (repeat; '*' allows all; default: same-origin pages only)",
    )
    parser.add_argument(
        "--host",
        action="append",
        dest="hosts",
        metavar="NAME",
        help="a Host name ws:// listeners answer to besides their address (repeat; against DNS rebinding)",
    )
    parser.add_argument(
        "--mushroom",
        metavar="PATH",
        help="serve mushroom clients unchanged on ws:// listeners: their bootstrap at PATH, mushroom's error strings",
    )
    parser.add_argument(
        "--stop-timeout", type=_non_negative_float, default=5.0, help="seconds to let calls finish on stop (5)"
    )
    parser.add_argument("--discovery", action="store_true", help="answer 'rpcengine discover' probes (UDP)")
    parser.add_argument("--name", help="the name discovery answers with (default: MODULE:OBJECT)")
    parser.add_argument("--workgroup", help="answer only probes for this workgroup, or for any")
    parser.add_argument("--discovery-port", type=_port, default=DISCOVERY_PORT, help="UDP port (7399)")
    _broker_options(parser)
    parser.add_argument(
        "--queue",
        action="append",
        dest="queues",
        metavar="NAME",
        help="with --broker: also serve the work queue NAME with the same handler (repeat for several)",
    )
    parser.add_argument(
        "--queue-concurrency", type=_positive_int, default=16, metavar="N", help="queue calls run at once (16)"
    )
    _common(parser)
    parser.set_defaults(run=serve)


def _broker_options(parser: argparse.ArgumentParser, client: bool = False) -> None:
    """Add ``--broker URL`` and ``--broker-prefix`` (see rpcengine.cli.broker)."""
    what = (
        "send to the work queue the URL queue:NAME names, through this Redis"
        if client
        else "join the service on this Redis: broadcasts reach every node's clients, calls any node's"
    )
    parser.add_argument(
        "--broker", metavar="URL", help=f"{what} (redis://HOST:PORT/DB, unix:///PATH.sock or a socket path)"
    )
    parser.add_argument(
        "--broker-prefix",
        default="rpcengine",
        metavar="PREFIX",
        help="the start of the broker's Redis keys and channels (default: rpcengine)",
    )


def _port(text: str) -> int:
    """argparse type: a port number, 0 to 65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {text!r}")
    return value


def _add_discover(subparsers: Any) -> None:
    """Add the ``discover`` subcommand."""
    from rpcengine.cli.discover import run_discover

    parser = _add_command(subparsers, "discover", "list the servers on the LAN that answer discovery probes")
    parser.add_argument("--timeout", type=_positive_float, default=1.0, help="seconds to wait for answers (1)")
    parser.add_argument("--workgroup", help="only the servers of this workgroup (default: every server)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--port", type=_port, default=DISCOVERY_PORT, help="the UDP port probed (7399)")
    parser.add_argument("--address", default=BROADCAST, help="where the probe goes (255.255.255.255)")
    parser.add_argument("--log-level", choices=_LOG_LEVELS, default="warning", help="logging level on stderr")
    parser.set_defaults(run=run_discover)


def _add_clients(subparsers: Any) -> None:
    """Add the ``call``, ``notify``, ``listen`` and ``methods`` subcommands."""
    from rpcengine.cli import client

    answer_timeout = "seconds to connect, and to wait for the answer (30)"
    call = _add_command(subparsers, "call", "send a request and print its result as JSON")
    _client_options(call, answer_timeout, queue=True)
    call.add_argument("method", metavar="METHOD")
    _data_options(call)
    _output_options(call)
    _broker_options(call, client=True)
    call.set_defaults(run=client.call)

    notify = _add_command(subparsers, "notify", "send a notification")
    _client_options(notify, "seconds to connect (30); no answer is waited for", queue=True)
    notify.add_argument("method", metavar="METHOD")
    _data_options(notify)
    _broker_options(notify, client=True)
    notify.set_defaults(run=client.notify)

    listen = _add_command(subparsers, "listen", "print every notification the server sends, one JSON line each")
    _client_options(listen, "seconds to connect (30); --duration bounds the listening")
    listen.add_argument("--count", type=_positive_int, help="exit after this many notifications")
    listen.add_argument("--duration", type=_positive_float, help="exit after this many seconds")
    listen.set_defaults(run=client.listen)

    methods = _add_command(subparsers, "methods", "list the methods a server exposes, or show one in full")
    _client_options(methods, answer_timeout, queue=True)
    methods.add_argument("name", metavar="NAME", nargs="?", help="show this method in full")
    methods.add_argument("--json", action="store_true", help="print the description as JSON")
    _output_options(methods)
    _broker_options(methods, client=True)
    methods.set_defaults(run=client.methods)


def _add_files(subparsers: Any) -> None:
    """Add the ``get`` and ``put`` subcommands (see rpcengine.cli.files)."""
    from rpcengine.cli import files

    for name, summary, first, second in (
        ("get", "download a file from a server started with --files", "remote", "local"),
        ("put", "upload a file to a server started with --files --writable", "local", "remote"),
    ):
        parser = _add_command(subparsers, name, summary)
        _client_options(parser, "seconds to connect, and to wait for each chunk (30)")
        parser.add_argument(first, metavar=first.upper())
        parser.add_argument(second, metavar=second.upper())
        parser.add_argument("--chunk", type=_positive_int, default=64 << 10, help="bytes per chunk (65536)")
        parser.add_argument("--quiet", action="store_true", help="no progress bar (drawn only on a terminal)")
        _output_options(parser)
        parser.set_defaults(run=getattr(files, name))


def _data_options(parser: argparse.ArgumentParser) -> None:
    """Add the positional ARGs of ``call`` and ``notify`` and how to read them."""
    parser.add_argument(
        "data", metavar="ARG", nargs="*", help="the data: one value, or several sent as a list ('-': read stdin)"
    )
    reading = parser.add_mutually_exclusive_group()
    reading.add_argument(
        "--json", dest="mode", action="store_const", const="json", help="every ARG must be JSON (else exit 2)"
    )
    reading.add_argument(
        "--string", dest="mode", action="store_const", const="string", help="send every ARG as a string"
    )
    parser.set_defaults(mode="auto")


def _output_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--pretty`` and ``--compact`` (default: pretty on a terminal, compact when piped)."""
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        "--pretty", dest="pretty", action="store_const", const=True, help="indent the JSON (default on a terminal)"
    )
    layout.add_argument(
        "--compact", dest="pretty", action="store_const", const=False, help="one line of JSON (default when piped)"
    )
    parser.set_defaults(pretty=None)


def _add_demo(subparsers: Any) -> None:
    """Add the ``demo`` subcommand (its module is imported only when it runs)."""
    demo = _add_command(subparsers, "demo", "run a server and scripted clients that show what rpcengine does")
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
    demo.add_argument(
        "--cluster",
        action="store_true",
        help="two server processes sharing one counter through Redis (a private redis-server, or --broker)",
    )
    demo.add_argument(
        "--broker",
        metavar="URL",
        help="with --cluster: use this Redis instead of starting redis-server (redis://HOST:PORT/DB, unix:///PATH)",
    )
    _common(demo)
    demo.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    """Run the demo, or with ``--cluster`` the two-node one (imported lazily: they pull in every transport)."""
    if args.cluster:
        from rpcengine.cli.demo_cluster import run_cluster_demo

        return run_cluster_demo(
            broker_url=args.broker,
            keep_running=args.keep_running,
            base_port=args.base_port,
            trace=args.trace,
            log_level=args.log_level,
        )
    if args.broker is not None:
        raise CliError("--broker goes with --cluster (rpcengine demo --cluster --broker URL)", ExitCode.USAGE)
    from rpcengine.cli.demo import run_demo

    return run_demo(keep_running=args.keep_running, base_port=args.base_port, trace=args.trace)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``rpcengine`` command."""
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTIONS[PROG],
        epilog=EPILOGS[PROG],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True, parser_class=_CommandParser
    )
    _add_serve(subparsers)
    _add_clients(subparsers)
    _add_discover(subparsers)
    _add_files(subparsers)
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
        from rpcengine.cli.output import dump_json

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
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        parser.print_help()  # run bare: the command list, and the usage exit code
        return ExitCode.USAGE
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
