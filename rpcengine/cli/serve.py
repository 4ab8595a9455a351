"""The ``serve`` command: serve an rpc handler on one or more listeners.

``rpcengine serve MODULE:OBJECT URL...`` imports ``MODULE`` (the current
directory is searched first) and takes ``OBJECT`` from it (a dotted path is
allowed); ``rpcengine serve --functions MODULE URL...`` serves the module's
public functions. :mod:`rpcengine.cli.handlers` says what may be served: an
object with ``rpc_`` methods (a class is instantiated with no arguments),
a :class:`~dispatchers.Registry`, a dispatcher, or any callable taking the
request. If the object (or the module, with ``--functions``) has a callable
``on_serve``, it is called once with the list of started servers, so it
can broadcast with ``server.sessions.notify(method, data)``. With ``--unpack-params``
the methods take the call's data as arguments (``def rpc_add(self, a, b)``;
see :mod:`dispatchers.params`).

Once started, the objects made so far are frozen out of the garbage
collector's full collections (:func:`freeze_startup_heap`), so they do not
pause every connection again and again.

The command prints one line per listener, ``listening on URL`` with the
real port, then runs until SIGINT or SIGTERM and stops every server
gracefully (see :meth:`transports.tcp.TcpServer.stop`). ``--trace`` prints
every message on stderr (:mod:`rpcengine.cli.trace`), ``--log-level debug``
logs connections and calls (:mod:`rpcengine.cli.watch`). With
``--discovery`` it also answers ``rpcengine discover`` on a UDP port, after
the listener lines (:func:`~rpcengine.cli.discover.start_responder`).

With ``--broker URL`` (a Redis: ``redis://HOST:PORT/DB``, ``unix:///PATH``
or a socket path) the process is one node of a service: it starts one
:class:`~transports.redis.RedisBroker` (``--broker-prefix``, default
``rpcengine``) and gives it to every server, so a broadcast made on any node
reaches the clients of every node (one ``server.sessions.notify`` is enough:
the broker delivers to every server of this process), and a call to a
session id reaches it on any node. After the listener lines it prints
``broker node ID on URL (prefix P)``. ``--queue NAME`` (repeatable) also
serves the work queue ``NAME`` with the same handler
(:class:`~transports.redis.QueueWorker`, ``--queue-concurrency`` calls at
once), one line ``serving queue NAME (concurrency N)`` each; with a queue,
no listener URL is needed. On stop the workers finish their running calls
(``--stop-timeout``), then the servers stop, then the broker (see
:mod:`rpcengine.cli.broker`).
"""

from __future__ import annotations

import argparse
import gc
import logging
from typing import Any

from dispatchers.middleware import MushroomErrors, with_middleware
from rpcengine.cli.broker import SUBSCRIBE_WAIT, display_url, start_broker, start_workers
from rpcengine.cli.connect import open_listeners, server_ssl_context
from rpcengine.cli.discover import start_responder
from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.cli.handlers import Served, load_object, rpc_handler_for, serve_functions
from rpcengine.cli.signals import stop_requested
from rpcengine.cli.trace import Tracer
from rpcengine.cli.urls import parse_url
from rpcengine.cli.watch import server_watchers

__all__ = ["load_object", "load_served", "serve", "server_options"]

log = logging.getLogger(__name__)


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
    origins = getattr(args, "origin", None)
    if origins:
        # Programs send no Origin: they keep working (None in the list admits them).
        options["origins"] = "*" if "*" in origins else [*origins, None]
    if getattr(args, "hosts", None):
        options["hosts"] = list(args.hosts)
    if getattr(args, "mushroom", None):
        options["mushroom"] = args.mushroom
    return options


def load_served(args: argparse.Namespace) -> Served:
    """Return what ``args`` ask to serve (``--functions MODULE``, ``MODULE:OBJECT``, ``--files ROOT``).

    Raises CliError (exit 2).
    """
    if getattr(args, "files", None) is not None:
        from rpcengine.cli.files import file_service

        service = file_service(args)
        return Served(service, None, service.names())
    if getattr(args, "writable", False):
        raise CliError("--writable goes with --files ROOT", ExitCode.USAGE)
    if args.target is None:
        raise CliError("serve needs MODULE:OBJECT (or --functions MODULE, or --files ROOT)", ExitCode.USAGE)
    options = {"unpack_params": True} if getattr(args, "unpack_params", False) else {}
    try:
        if args.functions:
            return serve_functions(args.target, **options)
        return rpc_handler_for(load_object(args.target), args.target, **options)
    except TypeError as exc:  # a signature that cannot be checked (see dispatchers.params)
        raise CliError(f"{args.target}: {exc}", ExitCode.USAGE) from None


def _check_broker_options(args: argparse.Namespace) -> list[str]:
    """Return the queue names to serve; raise CliError (exit 2) for broker options that do not fit together."""
    queues = list(getattr(args, "queues", None) or [])
    if queues and getattr(args, "broker", None) is None:
        raise CliError("--queue NAME needs --broker URL (the Redis that holds the queue)", ExitCode.USAGE)
    if not args.urls and not queues:
        target = args.target or ""
        if "://" not in target and not target.lower().startswith("unix:"):
            raise CliError("serve needs a listener URL (or, with --broker URL, a --queue NAME)", ExitCode.USAGE)
        args.urls, args.target = [target], None  # a lone word that is a URL is the listener, not MODULE:OBJECT
    return queues


def serve(args: argparse.Namespace) -> int:
    """Run ``serve``: start the listeners, print their URLs, wait for a signal, stop gracefully (blocks)."""
    if getattr(args, "files", None) is not None and args.target is not None:
        args.urls = [args.target, *args.urls]  # with --files, no MODULE:OBJECT: the first word is a URL
        args.target = None
    queues = _check_broker_options(args)
    endpoints = [parse_url(url, listening=True) for url in args.urls]
    context = None
    if any(endpoint.tls for endpoint in endpoints):
        context = server_ssl_context(args.certfile, args.keyfile)
    served = load_served(args)
    if served.names is not None and not served.names:
        log.warning("%s serves no methods", args.target)
    hooks, middleware = server_watchers(Tracer() if args.trace else None)
    if getattr(args, "mushroom", None):
        middleware = [*middleware, MushroomErrors()]  # client code may compare mushroom's error strings
    handler = with_middleware(served.handler, *middleware) if middleware else served.handler
    stop = stop_requested()
    options = server_options(args)
    if getattr(args, "files", None) is not None:
        from rpcengine.cli.files import TRANSFER_MAX_UNACKED

        options.setdefault("max_unacked", TRANSFER_MAX_UNACKED)
    broker = None
    if getattr(args, "broker", None) is not None:
        broker = start_broker(args.broker, args.broker_prefix)
        options["broker"] = broker
    started: list[tuple[Any, list[Any]]] = []
    workers: list[Any] = []
    responder = None
    try:
        started = open_listeners(endpoints, handler, ssl_context=context, **hooks, **options) if endpoints else []
        servers = [server for server, _ in started]
        if broker is not None:
            workers = start_workers(broker, queues, handler, args.queue_concurrency)
        if served.on_serve is not None:
            served.on_serve(servers)
        freeze_startup_heap()
        for _, real in started:
            for endpoint in real:
                print(f"listening on {endpoint.url}", flush=True)
        if broker is not None:
            _announce_broker(broker, workers)
        responder = start_responder(args, [endpoint.url for _, real in started for endpoint in real])
        stop.wait()
        log.info("stopping")
    finally:
        if responder is not None:
            responder.stop()
        for worker in workers:
            worker.stop(args.stop_timeout)
        for server, _ in started:
            server.stop(args.stop_timeout)
        if broker is not None:
            broker.stop()
        if getattr(args, "files", None) is not None:
            served.handler.close()  # type: ignore[attr-defined]  # a FileService: unfinished uploads removed
    return ExitCode.OK


def freeze_startup_heap() -> None:
    """Take what start-up made (modules, the handler, the listeners) out of the garbage collector's sight.

    Those objects live as long as the process, yet every full collection would walk
    them again, pausing every connection of this process: about 30,000 objects and
    5-10 ms on a small machine, more with a larger application. After a full
    collection they are frozen (``gc.freeze()``); what the calls make is collected
    as before. Does not yield; raises nothing.
    """
    gc.collect()
    gc.freeze()
    log.debug("start-up heap frozen: %d objects", gc.get_freeze_count())


def _announce_broker(broker: Any, workers: list[Any]) -> None:
    """Wait (bounded) for the broker's subscription, then print the node line and one line per queue served."""
    if not broker.wait_subscribed(SUBSCRIBE_WAIT):
        log.warning(
            "the broker's subscription is not up after %g s: broadcasts from other nodes wait for it", SUBSCRIBE_WAIT
        )
    print(f"broker node {broker.node_id} on {display_url(broker.url)} (prefix {broker.prefix})", flush=True)
    for worker in workers:
        name = worker.queue.removeprefix(f"{worker.prefix}:queue:")
        print(f"serving queue {name} (concurrency {worker.concurrency})", flush=True)
