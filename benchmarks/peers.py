"""Peer RPC libraries for comparison: zerorpc and mprpc (optional installs).

Neither is a dependency of rpcengine: ``pip install -e .[bench]`` installs
zerorpc (and mprpc's build tools); ``python -m benchmarks.build_mprpc``
rebuilds and installs mprpc. :func:`peer_status` says, for each peer,
whether it can be imported and why not; a missing peer is skipped, never
installed at benchmark time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import gevent

from benchmarks.base import CALL_TIMEOUT, Conn, System
from benchmarks.raw_tcp import start_raw_server

#: Why a peer may be missing, and what to do about it.
INSTALL_HINTS = {
    "zerorpc": "pip install zerorpc (or pip install -e .[bench])",
    "mprpc": (
        "mprpc 0.1.17 (the last release, 2018) does not build on Python >= 3.11 as shipped; "
        "run `python -m benchmarks.build_mprpc` to rebuild it from its sdist (see benchmarks/README.md)"
    ),
}


def peer_status(name: str) -> str | None:
    """Return why peer ``name`` cannot be used here, or None if it imports."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # a broken build may raise more than ImportError
        return f"{name} not importable ({type(exc).__name__}: {exc}); {INSTALL_HINTS[name]}"
    return None


class _ZerorpcService:
    """zerorpc exposes every public method."""

    def echo(self, data: Any) -> Any:
        """Return ``data``."""
        return data


class ZerorpcConn:
    """One zerorpc.Client (zmq DEALER socket); concurrent calls are multiplexed on it."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def call(self, data: Any, method: str = "echo") -> Any:
        """``client(method, data)``."""
        return self.client(method, data)

    def close(self) -> None:
        """Close the client."""
        self.client.close()


class Zerorpc(System):
    """zerorpc 0.6 (ZeroMQ + msgpack, gevent)."""

    name = "zerorpc"
    description = "zerorpc Server/Client over zmq tcp://127.0.0.1 (B: 100 greenlets on one Client)"
    scenarios = ("A", "B", "C", "C1")

    def unavailable(self) -> str | None:
        """Skip when zerorpc is not installed."""
        return peer_status("zerorpc")

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Bind a zerorpc.Server to a free loopback port and run it in a greenlet."""
        import zerorpc
        import zmq

        server = zerorpc.Server(_ZerorpcService())
        server.bind("tcp://127.0.0.1:*")
        endpoint = server._events._socket.getsockopt(zmq.LAST_ENDPOINT).decode()
        runner = gevent.spawn(server.run)

        def stop() -> None:
            server.stop()
            runner.kill(timeout=1)
            server.close()

        return int(endpoint.rsplit(":", 1)[1]), stop

    def connect(self, port: int, scenario: str) -> Conn:
        """A zerorpc.Client connected to the server."""
        import zerorpc

        client = zerorpc.Client(timeout=CALL_TIMEOUT)
        client.connect(f"tcp://127.0.0.1:{port}")
        return ZerorpcConn(client)


class MprpcConn:
    """One mprpc.RPCClient: one call in flight at a time (arrays come back as tuples: ``use_list=False``)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def call(self, data: Any, method: str = "echo") -> Any:
        """``client.call(method, data)``."""
        return self.client.call(method, data)

    def close(self) -> None:
        """Close the client."""
        self.client.close()


def _mprpc_server() -> Any:
    """Return an mprpc RPCServer instance with an ``echo`` method."""
    from mprpc import RPCServer

    class EchoServer(RPCServer):  # type: ignore[misc, valid-type]
        def echo(self, data: Any) -> Any:
            return data

    return EchoServer(tcp_no_delay=True)


class Mprpc(System):
    """mprpc (Cython, msgpack-rpc, gevent); it cannot pipeline, so it runs Bpool, not B."""

    name = "mprpc"
    description = "mprpc RPCServer on a gevent StreamServer + RPCClient (no B: one call in flight per connection)"
    scenarios = ("A", "Bpool", "C", "C1")

    def unavailable(self) -> str | None:
        """Skip when mprpc is not installed."""
        return peer_status("mprpc")

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Serve an EchoServer with a gevent StreamServer."""
        return start_raw_server(_mprpc_server())

    def connect(self, port: int, scenario: str) -> Conn:
        """An RPCClient with TCP_NODELAY."""
        from mprpc import RPCClient

        return MprpcConn(RPCClient("127.0.0.1", port, timeout=CALL_TIMEOUT, tcp_no_delay=True))
