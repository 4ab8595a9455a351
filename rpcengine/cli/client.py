"""The client commands of the command line: ``call``, ``notify``, ``listen`` and ``methods``.

Each takes the parsed arguments, connects (see :mod:`rpcengine.cli.connect`),
does its work, closes the connection and returns an exit code; failures are
raised for :func:`rpcengine.cli.main` to report in one line. ``--trace``
prints every message on stderr (:mod:`rpcengine.cli.trace`); ``--log-level
debug`` logs the connection and each call.

``--jsonrpc`` (or a ``jsonrpc+tcp://`` URL, or a path ending in
``/jsonrpc``) speaks JSON-RPC 2.0 instead: over TCP and WebSocket on a
connection (``--trace`` shows the JSON-RPC documents), over ``http://`` one
POST per call (:mod:`rpcengine.cli.jsonrpc_http`; ``listen`` needs a
connection).

``call --broker URL queue:NAME METHOD`` (and ``notify``) sends to the work
queue ``NAME`` on that Redis instead, for any worker of a ``serve --broker
URL --queue NAME`` to answer (:mod:`rpcengine.cli.broker`); the call's
``--timeout`` travels with it as its deadline.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from gevent.event import Event

from dispatchers.introspection import DESCRIBE_METHOD
from rpcengine.cli.arguments import Values, clip, params_hints, parse_values, quoting_hints
from rpcengine.cli.broker import QUEUE_SCHEME, open_queue
from rpcengine.cli.connect import client_ssl_context, connect
from rpcengine.cli.describe import format_method, format_summary
from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.cli.output import dump_json, wants_pretty
from rpcengine.cli.signals import stop_requested
from rpcengine.cli.trace import Tracer
from rpcengine.cli.urls import Endpoint, parse_url
from rpcengine.engine import Engine
from rpcengine.errors import ConnectionLost, MethodNotFound, RequestException, RequestTimeout
from rpcengine.messages import Notification

__all__ = [
    "call",
    "close_flushed",
    "dump_json",
    "ignore_notifications",
    "listen",
    "methods",
    "notify",
    "parse_arguments",
]

log = logging.getLogger(__name__)


def parse_arguments(args: argparse.Namespace) -> Values:
    """Return the positional values of ``call`` or ``notify`` read as ``--json``/``--string`` ask."""
    return parse_values(args.data, args.mode)


def ignore_notifications(message: Any) -> None:
    """Rpc handler of the one-shot commands: broadcasts are ignored, requests refused."""
    if type(message) is not Notification:
        raise MethodNotFound(message.method)


def close_flushed(engine: Engine, timeout: float = 2.0) -> None:
    """Wait (yielding, at most ``timeout``) until queued messages reach the socket, then close.

    Links hand queued bytes to the socket from a hub callback, so a
    notification sent right before ``close()`` would otherwise be dropped.
    """
    link = getattr(engine.transport, "link", None)
    flush = getattr(link, "flush_quietly", None)
    if callable(flush):
        flush(timeout)
    engine.close()
    log.debug("connection closed")


def _is_queue(args: argparse.Namespace) -> bool:
    """Whether ``args`` send to a work queue (``--broker``, or a ``queue:NAME`` URL, for a command that takes them)."""
    if not hasattr(args, "broker"):
        return False  # listen, get, put: queue:NAME is then a bad URL like any other
    return args.broker is not None or args.url.startswith(QUEUE_SCHEME)


def _endpoint(args: argparse.Namespace) -> Endpoint:
    """Return the endpoint ``args.url`` names, speaking JSON-RPC 2.0 if ``--jsonrpc`` asks."""
    endpoint = parse_url(args.url)
    return endpoint.as_jsonrpc() if getattr(args, "jsonrpc", False) else endpoint


def _open(args: argparse.Namespace, rpc_handler: Any = ignore_notifications, **options: Any) -> Engine:
    """Parse ``args.url`` and connect to it with the TLS, timeout and trace options of ``args``.

    A JSON-RPC ``http://`` endpoint gets an :class:`~rpcengine.cli.jsonrpc_http.HttpCaller`
    instead (it makes the same calls, one POST each); ``queue:NAME`` (with
    ``--broker``) an Engine on that work queue.
    """
    if _is_queue(args):
        engine, name = open_queue(args)
        if args.trace:
            Tracer().attach(engine, f"{QUEUE_SCHEME}{name}")
        return engine
    endpoint = _endpoint(args)
    if endpoint.jsonrpc and endpoint.http:
        from rpcengine.cli.jsonrpc_http import HttpCaller

        return HttpCaller(endpoint, Tracer() if args.trace else None, args.timeout)  # type: ignore[return-value]
    context = client_ssl_context(args.cafile, args.insecure) if endpoint.tls else None
    if not args.trace:
        return connect(endpoint, rpc_handler, timeout=args.timeout, ssl_context=context, **options)
    tracer = Tracer()
    attached = False

    def traced_early(message: Any) -> Any:
        # A call or broadcast the engine took before the tracer was attached (during the handshake)
        # is traced here, even when its handler runs after the attachment.
        if not tracer.was_traced(message) and message.engine is not None and not (attached and endpoint.jsonrpc):
            tracer.line(False, endpoint.url, tracer.message_text(message.engine.transport, message))
        return rpc_handler(message)

    engine = connect(endpoint, traced_early, timeout=args.timeout, ssl_context=context, **options)
    if endpoint.jsonrpc:
        tracer.attach_frames(engine.transport, endpoint.url)  # the JSON-RPC documents, not native lists
    else:
        tracer.attach(engine, endpoint.url)
    attached = True
    return engine


def _print_remote_error(data: Any, hints: list[str]) -> int:
    """Print an Error answer's data as one line of JSON on stderr, then any hints; return exit code 1."""
    print(dump_json(data), file=sys.stderr, flush=True)
    for hint in hints:
        print(hint, file=sys.stderr, flush=True)
    return ExitCode.REMOTE_ERROR


def call(args: argparse.Namespace) -> int:
    """``call URL METHOD [ARG ...]``: send one request and print its result as JSON (blocks)."""
    values = parse_arguments(args)
    queue = _is_queue(args)
    engine = _open(args)
    log.debug("calling %s with %s", args.method, clip(dump_json(values.data), 200))
    try:
        result = engine.request(args.method, values.data, timeout=args.timeout)
    except RequestException as exc:
        log.debug("%s answered with an Error", args.method)
        hints = params_hints(values, exc.data) if not queue and _endpoint(args).jsonrpc else []
        return _print_remote_error(exc.data, hints or quoting_hints(values, exc.data))
    except RequestTimeout as exc:
        if not queue:
            raise
        raise CliError(
            f"timeout: {exc} from {args.url} (is a worker serving it? 'rpcengine serve MODULE:OBJECT "
            f"--broker URL --queue {args.url.removeprefix(QUEUE_SCHEME)}')",
            ExitCode.TIMEOUT,
        ) from None
    finally:
        close_flushed(engine)
    log.debug("%s answered", args.method)
    print(dump_json(result, wants_pretty(args.pretty)), flush=True)
    return ExitCode.OK


def notify(args: argparse.Namespace) -> int:
    """``notify URL METHOD [ARG ...]``: send one notification; nothing comes back."""
    values = parse_arguments(args)
    engine = _open(args)
    log.debug("notifying %s with %s", args.method, clip(dump_json(values.data), 200))
    try:
        engine.notify(args.method, values.data)
    finally:
        close_flushed(engine)
    return ExitCode.OK


def methods(args: argparse.Namespace) -> int:
    """``methods URL [NAME]``: list the methods a server exposes, or show one in full."""
    engine = _open(args)
    try:
        described = engine.request(DESCRIBE_METHOD, None, timeout=args.timeout)
    finally:
        close_flushed(engine)
    if not isinstance(described, list):
        raise CliError(f"unexpected answer to {DESCRIBE_METHOD}: {clip(dump_json(described))}", ExitCode.REMOTE_ERROR)
    entries = [entry for entry in described if isinstance(entry, dict)]
    if args.name is not None:
        found = [entry for entry in entries if entry.get("name") == args.name]
        if not found:
            names = ", ".join(str(entry.get("name")) for entry in entries) or "none"
            raise CliError(f"{args.url} has no method {args.name!r}; it has: {names}", ExitCode.REMOTE_ERROR)
        entries = found
    if args.json:
        chosen: Any = entries[0] if args.name is not None else described
        print(dump_json(chosen, wants_pretty(args.pretty)), flush=True)
        return ExitCode.OK
    lines = format_method(entries[0]) if args.name is not None else format_summary(entries)
    print("\n".join(lines), flush=True)
    return ExitCode.OK


class _Printer:
    """Rpc handler of ``listen``: prints notifications as JSON lines, refuses requests."""

    def __init__(self, count: int | None, done: Event) -> None:
        self.count = count
        self.printed = 0
        self.done = done

    def __call__(self, message: Any) -> Any:
        if type(message) is not Notification:
            raise MethodNotFound(message.method)
        if self.done.is_set():
            return None
        try:
            print(dump_json({"method": message.method, "data": message.data}), flush=True)
        except BrokenPipeError:
            self.done.set()  # stdout was closed (piped into head, say): nothing more to do
            return None
        self.printed += 1
        if self.count is not None and self.printed >= self.count:
            self.done.set()
        return None


def listen(args: argparse.Namespace) -> int:
    """``listen URL``: print every notification the server sends, one JSON line each (blocks).

    Ends with exit code 0 after ``--count`` notifications, after
    ``--duration`` seconds, or on Ctrl-C/SIGTERM; with 4 if the connection
    is lost first.
    """
    endpoint = _endpoint(args)
    if endpoint.jsonrpc and endpoint.http:
        raise CliError(
            f"{endpoint.url}: listen needs a connection; JSON-RPC over HTTP is one POST per call "
            "(use ws://HOST:PORT/jsonrpc or jsonrpc+tcp://HOST:PORT)",
            ExitCode.USAGE,
        )
    done = stop_requested()
    printer = _Printer(args.count, done)
    engine = _open(args, printer, max_concurrency=1)
    lost: list[str] = []

    def closed(_engine: Engine) -> None:
        if not done.is_set():
            lost.append(getattr(engine.transport, "close_reason", "") or "connection closed")
            done.set()

    engine.on_close(closed)
    try:
        done.wait(args.duration)
        done.set()
    finally:
        close_flushed(engine)
    if lost:
        raise ConnectionLost(lost[0])
    return ExitCode.OK
