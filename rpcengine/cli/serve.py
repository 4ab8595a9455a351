"""The ``serve`` command: expose an object's ``rpc_`` methods on one or more listeners.

``rpcengine serve MODULE:OBJECT URL...`` imports ``MODULE`` (the current
directory is searched first), takes ``OBJECT`` from it (a dotted path is
allowed) and, if it is a class, instantiates it with no arguments. A
:class:`~dispatchers.MethodDispatcher` serves it on every listener. If the
object has a callable ``on_serve`` attribute, it is called once with the
list of started servers, so the object can broadcast with
``server.sessions.notify(method, data)``. With ``--unpack-params`` the
methods take the call's data as arguments (``def rpc_add(self, a, b)``;
see :mod:`dispatchers.params`).

The command prints one line per listener, ``listening on URL`` with the
real port, then runs until SIGINT or SIGTERM and stops every server
gracefully (see :meth:`transports.tcp.TcpServer.stop`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import sys
from typing import Any

from dispatchers.method import MethodDispatcher
from rpcengine.cli.connect import open_listeners, server_ssl_context
from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.cli.signals import stop_requested
from rpcengine.cli.urls import parse_url

__all__ = ["load_object", "serve", "server_options"]

log = logging.getLogger(__name__)


def load_object(target: str) -> Any:
    """Import ``MODULE:OBJECT`` and return the object, instantiating a class with no arguments.

    Raises CliError (exit 2) if the module or attribute cannot be found or
    the class cannot be instantiated.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise CliError(f"expected MODULE:OBJECT, got {target!r}", ExitCode.USAGE)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import module {module_name!r}: {exc}", ExitCode.USAGE) from None
    except Exception as exc:
        raise CliError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}", ExitCode.USAGE) from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"{module_name!r} has no attribute {attribute!r}", ExitCode.USAGE) from None
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise CliError(f"{target}() raised {type(exc).__name__}: {exc}", ExitCode.USAGE) from None
    return obj


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the server keyword arguments the command line options ask for (0 turns a timer off)."""
    options: dict[str, Any] = {}
    for name in ("heartbeat_interval", "heartbeat_timeout"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value or None
    for name in ("max_connections", "max_concurrency", "max_message_size"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    return options


def serve(args: argparse.Namespace) -> int:
    """Run ``serve``: start the listeners, print their URLs, wait for a signal, stop gracefully."""
    endpoints = [parse_url(url, listening=True) for url in args.urls]
    context = None
    if any(endpoint.tls for endpoint in endpoints):
        context = server_ssl_context(args.certfile, args.keyfile)
    obj = load_object(args.target)
    try:
        dispatcher = MethodDispatcher(obj, unpack_params=args.unpack_params)
    except TypeError as exc:
        raise CliError(f"{args.target}: {exc}", ExitCode.USAGE) from None
    if not dispatcher.names():
        log.warning("%s exposes no rpc_ methods", args.target)
    stop = stop_requested()
    started = open_listeners(endpoints, dispatcher, ssl_context=context, **server_options(args))
    servers = [server for server, _ in started]
    try:
        hook = getattr(obj, "on_serve", None)
        if callable(hook):
            hook(servers)
        for _, real in started:
            for endpoint in real:
                print(f"listening on {endpoint.url}", flush=True)
        stop.wait()
        log.info("stopping")
    finally:
        for server in servers:
            server.stop(args.stop_timeout)
    return ExitCode.OK
