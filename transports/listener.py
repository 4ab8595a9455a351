"""Listener: the lifecycle every listening server shares, and the tuning of its sockets.

:class:`Listener` owns a gevent ``StreamServer``: ``start()`` serves in the
background and returns the server, ``serve_forever()`` blocks,
``stop(timeout)`` refuses new connections and then lets the subclass end
what it serves (:meth:`Listener.stop_serving`), and the server is a context
manager. Each accepted connection runs :meth:`Listener.handle_connection`
on its own greenlet. gevent binds a ``(host, port)`` address itself; a
listener that binds its own socket (a Unix-domain one) gives no address and
implements :meth:`Listener.bind`, which :meth:`Listener.start` calls.
:func:`tune_socket` is the one place a connected TCP socket is tuned.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from gevent.server import StreamServer

__all__ = ["DEFAULT_BACKLOG", "Listener", "tune_socket"]

log = logging.getLogger(__name__)

#: Connections the kernel queues for ``accept`` before it refuses more.
DEFAULT_BACKLOG = 1024


def tune_socket(sock: Any) -> None:
    """Turn on TCP_NODELAY (messages are small and answered at once) and keepalive on a connected socket."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


class Listener:
    """Accept connections at ``address`` and serve each on its own greenlet.

    Subclasses implement :meth:`handle_connection` and :meth:`stop_serving`
    and name themselves in :attr:`kind` for the log. ``address`` is what
    gevent binds at :meth:`start`; None means the subclass binds its own
    socket in :meth:`bind`.
    """

    #: What the log calls this server ("TCP server", ...).
    kind = "server"

    def __init__(self, address: Any, *, backlog: int = DEFAULT_BACKLOG) -> None:
        #: False once :meth:`stop` began: new connections are refused.
        self.accepting = True
        #: Connections the kernel queues for ``accept``.
        self.backlog = backlog
        self._server: StreamServer | None = None
        if address is not None:
            self._server = StreamServer(address, self.handle_connection, backlog=backlog)

    @property
    def address(self) -> Any:
        """The address the server listens on (with the real port once started)."""
        assert self._server is not None, "a listener binding its own socket names its address itself"
        return self._server.address

    def bind(self) -> Any:
        """Return a bound, listening socket for :meth:`start` (subclasses that gave no address).

        Raises OSError if it cannot be bound.
        """
        raise NotImplementedError

    def start(self) -> Any:
        """Start listening and accepting in the background; return self. Does not block.

        Raises OSError if the address cannot be bound.
        """
        if self._server is None:
            self._server = StreamServer(self.bind(), self.handle_connection)
        self._server.start()
        log.info("%s listening on %s", self.kind, self.address)
        return self

    def serve_forever(self) -> None:
        """Start (if needed) and block (yielding) until :meth:`stop` is called."""
        if self._server is None or not self._server.started:
            self.start()
        assert self._server is not None
        self._server.serve_forever()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop gracefully: refuse new connections, then :meth:`stop_serving` within ``timeout``.

        Blocks (yields) up to ``timeout`` seconds for in-flight work, then
        briefly for last answers to reach the sockets.
        """
        self.accepting = False
        if self._server is not None:
            self._server.stop(timeout=0)
        self.stop_serving(timeout)

    def handle_connection(self, sock: Any, address: Any) -> None:
        """Serve one accepted connection (runs on its own greenlet; implemented by subclasses)."""
        raise NotImplementedError

    def stop_serving(self, timeout: float | None) -> None:
        """End every connection served, letting in-flight work finish for ``timeout`` (subclasses)."""
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
