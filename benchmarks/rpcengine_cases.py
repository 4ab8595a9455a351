"""rpcengine-tcp, rpcengine-tcp+orjson, rpcengine-ws and rpcengine-loopback.

Written against the public API of ``transports.tcp``, ``transports.websocket``,
``transports.memory``, ``rpcengine`` and ``dispatchers``; a system whose
imports fail reports why through :meth:`System.unavailable` and is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gevent.event import Event

from benchmarks.base import CALL_TIMEOUT, Conn, System


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
    """rpcengine over ``transports.tcp`` (default codec, or orjson)."""

    name = "rpcengine-tcp"
    description = "transports.tcp TcpServer/connect + MethodDispatcher"
    scenarios = ("A", "B", "Bpool", "C", "C1", "D")
    memory = True
    codec: str | None = None

    def _codec_kwargs(self) -> dict[str, Any]:
        if self.codec == "orjson":
            from rpcengine.codec import OrjsonCodec

            return {"codec": OrjsonCodec()}
        return {}

    def unavailable(self) -> str | None:
        """Skip when transports.tcp or dispatchers cannot be imported."""
        modules = ("transports.tcp", "dispatchers", "rpcengine.codec" if self.codec else "rpcengine")
        return _import_error(*modules)

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Start a TcpServer on 127.0.0.1, port 0."""
        from transports.tcp import TcpServer

        server = TcpServer(("127.0.0.1", 0), make_handler(), **self._codec_kwargs())
        server.start()
        return server.address[1], lambda: server.stop(timeout=1)

    def connect(self, port: int, scenario: str) -> Conn:
        """``transports.tcp.connect`` returns the Engine."""
        from transports.tcp import connect

        return EngineConn(connect("127.0.0.1", port, **self._codec_kwargs()))


class RpcengineTcpOrjson(RpcengineTcp):
    """rpcengine-tcp with ``codec=OrjsonCodec()`` on both ends."""

    name = "rpcengine-tcp+orjson"
    description = "rpcengine-tcp with codec=OrjsonCodec() on both ends"
    scenarios = ("A", "C", "C1")
    memory = False
    codec = "orjson"


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
