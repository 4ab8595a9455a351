"""The client commands of the command line: ``call``, ``notify``, ``listen`` and ``methods``.

Each takes the parsed arguments, connects (see :mod:`rpcengine.cli.connect`),
does its work, closes the connection and returns an exit code; failures are
raised for :func:`rpcengine.cli.main` to report in one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gevent.event import Event

from dispatchers.introspection import DESCRIBE_METHOD
from rpcengine.cli.connect import client_ssl_context, connect
from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.cli.signals import stop_requested
from rpcengine.cli.urls import Endpoint, parse_url
from rpcengine.engine import Engine
from rpcengine.errors import ConnectionLost, MethodNotFound
from rpcengine.messages import Notification

__all__ = [
    "call",
    "close_flushed",
    "dump_json",
    "ignore_notifications",
    "listen",
    "methods",
    "notify",
    "parse_json_argument",
]


def parse_json_argument(text: str | None) -> Any:
    """Return the value of a JSON command line argument (``None`` when absent, stdin for ``-``).

    Raises CliError (exit 2) for text that is not JSON; NaN and Infinity are
    refused as the wire protocol refuses them.
    """
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed in JSON")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except ValueError as exc:
        raise CliError(f"invalid JSON argument {_clip(text)!r}: {exc}", ExitCode.USAGE) from None


def dump_json(value: Any) -> str:
    """Return ``value`` as one line of JSON (non-ASCII characters kept as they are)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _clip(text: str, limit: int = 40) -> str:
    """Return ``text`` shortened to ``limit`` characters for an error message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _open(args: argparse.Namespace, rpc_handler: Any = ignore_notifications, **options: Any) -> Engine:
    """Parse ``args.url`` and connect to it with the TLS and timeout options of ``args``."""
    endpoint: Endpoint = parse_url(args.url)
    context = client_ssl_context(args.cafile, args.insecure) if endpoint.tls else None
    return connect(endpoint, rpc_handler, timeout=args.timeout, ssl_context=context, **options)


def call(args: argparse.Namespace) -> int:
    """``call URL METHOD [JSON]``: send one request and print its result as JSON."""
    data = parse_json_argument(args.data)
    engine = _open(args)
    try:
        result = engine.request(args.method, data, timeout=args.timeout)
    finally:
        close_flushed(engine)
    print(dump_json(result), flush=True)
    return ExitCode.OK


def notify(args: argparse.Namespace) -> int:
    """``notify URL METHOD [JSON]``: send one notification; nothing comes back."""
    data = parse_json_argument(args.data)
    engine = _open(args)
    try:
        engine.notify(args.method, data)
    finally:
        close_flushed(engine)
    return ExitCode.OK


def methods(args: argparse.Namespace) -> int:
    """``methods URL``: list the methods a server exposes, with signatures and docstrings."""
    engine = _open(args)
    try:
        described = engine.request(DESCRIBE_METHOD, None, timeout=args.timeout)
    finally:
        close_flushed(engine)
    if args.json:
        print(dump_json(described), flush=True)
        return ExitCode.OK
    if not isinstance(described, list):
        raise CliError(f"unexpected answer to {DESCRIBE_METHOD}: {_clip(dump_json(described))}", ExitCode.REMOTE_ERROR)
    for entry in described:
        if not isinstance(entry, dict):
            continue
        print(f"{entry.get('name', '?')}{entry.get('signature', '')}")
        if entry.get("doc"):
            print(f"    {' '.join(str(entry['doc']).split())}")
    sys.stdout.flush()
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
    """``listen URL``: print every notification the server sends, one JSON line each.

    Ends with exit code 0 after ``--count`` notifications, after
    ``--duration`` seconds, or on Ctrl-C/SIGTERM; with 4 if the connection
    is lost first.
    """
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
