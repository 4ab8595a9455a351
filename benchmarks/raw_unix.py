"""raw-unix: raw-tcp on a Unix-domain socket, the limit ``rpcengine-unix`` is measured against.

The same echo server (:func:`benchmarks.raw_tcp.handle_echo`: length-prefixed
ujson, the answers of one read in one ``sendall``) and the same clients
(inline, pipelined with a batching writer for B), on a gevent
``StreamServer`` listening on a socket file in the temporary folder
(:func:`benchmarks.base.unix_socket_path`) instead of 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from gevent import socket
from gevent.server import StreamServer

from benchmarks.base import CALL_TIMEOUT, unix_socket_path
from benchmarks.raw_tcp import RawTcp, handle_echo

#: Connections the kernel queues on a listening socket (D opens 1,000 at once).
_BACKLOG = 4096


def listen_unix(path: str) -> socket.socket:
    """Return a gevent socket listening on ``path`` (a file left by an earlier run is removed first)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(_BACKLOG)
    return sock


def open_unix_socket(key: int) -> socket.socket:
    """Connect a gevent socket to raw-unix's server number ``key``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CALL_TIMEOUT)
    sock.connect(unix_socket_path(RawUnix.name, key))
    return sock


class RawUnix(RawTcp):
    """The raw Unix-domain socket limit; scenario B uses the batching writer, as raw-tcp's."""

    name = "raw-unix"
    description = "raw-tcp on a Unix-domain socket: gevent StreamServer + socket, length-prefixed ujson"
    memory = False
    opener = staticmethod(open_unix_socket)

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Start the raw echo server on this process's socket path; return its key and stopper."""
        key = os.getpid()
        path = unix_socket_path(self.name, key)
        server = StreamServer(listen_unix(path), handle_echo)
        server.start()

        def stop() -> None:
            server.stop(timeout=1)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

        return key, stop
