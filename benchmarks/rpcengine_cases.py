"""rpcengine-tcp, rpcengine-tcp+orjson, rpcengine-unix, rpcengine-ws and rpcengine-loopback.

Written against the public API of ``transports.tcp``, ``transports.unix``, ``transports.websocket``,
``transports.memory``, ``rpcengine`` and ``dispatchers``; a system whose
imports fail reports why through :meth:`System.unavailable` and is skipped.
rpcengine-tcp's S and S8 connections live on an ``rpcengine.HubThread`` and
are called through ``Engine.submit`` from plain threads (:class:`HubThreadConn`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gevent.event import Event

from benchmarks.base import CALL_TIMEOUT, THREAD_SCENARIOS, Conn, System, unix_socket_path


class Service:
    """The benchmark service: ``echo`` answers its data, ``hang`` never answers."""

    def rpc_echo(self, request: Any) -> Any:
        """Return the request's data."""
        return request.data

    def rpc_hang(self, request: Any) -> Any:
        """Block forever (for the pending-request measurement)."""
        Event().wait()


def make_handler() -> Any:
    """Return a MethodDispatcher over :class:`Service`."""
    from dispatchers import MethodDispatcher

    return MethodDispatcher(Service())


class EngineConn:
    """A :class:`~benchmarks.base.Conn` over an ``rpcengine.Engine``."""

    def __init__(self, engine: Any, closers: tuple[Callable[[], Any], ...] = ()) -> None:
        self.engine = engine
        self.closers = closers

    def call(self, data: Any, method: str = "echo") -> Any:
        """``engine.request(method, data)``."""
        return self.engine.request(method, data, timeout=CALL_TIMEOUT)

    def close(self) -> None:
        """Close the engine (and anything else attached)."""
        self.engine.close()
        for close in self.closers:
            close()


#: Seconds ``hub.run(connect, ...)`` may take.
HUB_CONNECT_TIMEOUT = 5.0


class HubThreadConn:
    """A :class:`~benchmarks.base.Conn` for plain OS threads: one client Engine on an ``rpcengine.HubThread``.

    The engine is made on the hub thread (``hub.run(connect, ...)``); every
    :meth:`call` is ``engine.submit(method, data).result()`` from the calling
    thread, which must not be the hub's. The hub thread is created by the
    calling process, so it inherits its CPU affinity (the pinned client core).
    """

    def __init__(self, connect: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        from rpcengine import HubThread

        hub = HubThread(name="bench-hub").start()
        try:
            engine = hub.run(connect, *args, timeout=HUB_CONNECT_TIMEOUT, **kwargs)
        except BaseException:
            hub.stop()
            hub.join(10)
            raise
        self.hub, self.engine = hub, engine
        hub.on_stop(engine.close)

    def call(self, data: Any, method: str = "echo") -> Any:
        """``engine.submit(method, data).result()``, with A's call timeout (and a bound on the wait for the future)."""
        return self.engine.submit(method, data, timeout=CALL_TIMEOUT).result(CALL_TIMEOUT + 5)

    def in_hub(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` in a greenlet of the hub thread and return its result (for the counting hooks)."""
        return self.hub.run(func, *args, timeout=30)

    def close(self) -> None:
        """Stop the hub thread (it closes the engine first) and wait for it to end."""
        self.hub.stop()
        if not self.hub.join(10):
            raise RuntimeError("the HubThread did not end within 10 s of stop()")


def _import_error(*modules: str) -> str | None:
    """Return a skip reason if any of ``modules`` cannot be imported, else None."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # an import may fail with more than ImportError
            return f"cannot import {module}: {type(exc).__name__}: {exc}"
    return None


class RpcengineTcp(System):
    """rpcengine over ``transports.tcp`` (default codec, or orjson); S and S8 call it through ``submit``."""

    name = "rpcengine-tcp"
    description = "transports.tcp TcpServer/connect + MethodDispatcher"
    scenarios = ("A", "S", "S8", "B", "Bpool", "C", "C1", "D")
    memory = True
    codec: str | None = None

    def _codec_kwargs(self) -> dict[str, Any]:
        if self.codec == "orjson":
            from rpcengine.codec import OrjsonCodec

            return {"codec": OrjsonCodec()}
        return {}

    def unavailable(self) -> str | None:
        """Skip when transports.tcp, dispatchers or rpcengine (with its codec or HubThread) cannot be imported."""
        modules = ("transports.tcp", "dispatchers", "rpcengine.codec" if self.codec else "rpcengine.hubthread")
        return _import_error(*modules)

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Start a TcpServer on 127.0.0.1, port 0."""
        from transports.tcp import TcpServer

        server = TcpServer(("127.0.0.1", 0), make_handler(), **self._codec_kwargs())
        server.start()
        return server.address[1], lambda: server.stop(timeout=1)

    def connect(self, port: int, scenario: str) -> Conn:
        """``transports.tcp.connect`` returns the Engine; for S and S8 it is made on a HubThread."""
        from transports.tcp import connect

        if scenario in THREAD_SCENARIOS:
            return HubThreadConn(connect, "127.0.0.1", port, **self._codec_kwargs())
        return EngineConn(connect("127.0.0.1", port, **self._codec_kwargs()))


class RpcengineTcpOrjson(RpcengineTcp):
    """rpcengine-tcp with ``codec=OrjsonCodec()`` on both ends."""

    name = "rpcengine-tcp+orjson"
    description = "rpcengine-tcp with codec=OrjsonCodec() on both ends"
    scenarios = ("A", "C", "C1")
    memory = False
    codec = "orjson"


class RpcengineUnix(System):
    """rpcengine over ``transports.unix``: TCP's sessions and framing on a Unix-domain socket."""

    name = "rpcengine-unix"
    description = "transports.unix UnixServer/connect + MethodDispatcher"
    scenarios = ("A", "B", "Bpool", "C", "C1", "D")

    def unavailable(self) -> str | None:
        """Skip when transports.unix or dispatchers cannot be imported."""
        return _import_error("transports.unix", "dispatchers")

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Start a UnixServer on this process's socket path; return its key (the pid) and stopper."""
        from transports.unix import UnixServer

        key = os.getpid()
        server = UnixServer(unix_socket_path(self.name, key), make_handler())
        server.start()
        return key, lambda: server.stop(timeout=1)

    def connect(self, port: int, scenario: str) -> Conn:
        """``transports.unix.connect`` to the server number ``port`` returns the Engine."""
        from transports.unix import connect

        return EngineConn(connect(unix_socket_path(self.name, port)))


class RpcengineWs(System):
    """rpcengine over ``transports.websocket``."""

    name = "rpcengine-ws"
    description = "transports.websocket WebSocketServer/connect + MethodDispatcher"
    memory = True

    def unavailable(self) -> str | None:
        """Skip when transports.websocket or dispatchers cannot be imported."""
        return _import_error("transports.websocket", "dispatchers")

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Start a WebSocketServer with the handler on ``/rpc``."""
        from transports.websocket import WebSocketServer

        server = WebSocketServer(("127.0.0.1", 0), {"/rpc": make_handler()})
        server.start()
        return server.address[1], lambda: server.stop(timeout=1)

    def connect(self, port: int, scenario: str) -> Conn:
        """``transports.websocket.connect`` returns the Engine."""
        from transports.websocket import connect

        return EngineConn(connect(f"ws://127.0.0.1:{port}/rpc"))


class RpcengineLoopback(System):
    """rpcengine over ``transports.memory.pair`` in one process (no sockets, no codec I/O)."""

    name = "rpcengine-loopback"
    description = "transports.memory.pair, both Engines in the client process"
    in_process = True
    memory = True

    def unavailable(self) -> str | None:
        """Skip when transports.memory, rpcengine or dispatchers cannot be imported."""
        return _import_error("transports.memory", "rpcengine", "dispatchers")

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Nothing to start: each connection gets its own server Engine."""
        return 0, lambda: None

    def connect(self, port: int, scenario: str) -> Conn:
        """Make a memory pair with a server Engine on one end and a client Engine on the other."""
        from dispatchers import dummy_rpc_handler
        from rpcengine import Engine
        from transports.memory import pair

        a, b = pair()
        server = Engine(b, make_handler())
        client = Engine(a, dummy_rpc_handler)
        return EngineConn(client, (server.close,))
