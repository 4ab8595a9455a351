"""WebSocket transport: one JSON message per text frame, over ``ws://`` or ``wss://``.

The same six message lists as on every transport, one per text frame; the
optional session handshake is a JSON object as the first frame, as over
TCP. The server shares its sessions, broadcast, hooks, limits, heartbeats
and resume with :class:`~transports.tcp.TcpServer` (both are built on
:class:`~transports.session.server.SessionServer`)::

    from dispatchers import MethodDispatcher
    from transports.websocket import WebSocketServer, connect

    server = WebSocketServer(("127.0.0.1", 8765), MethodDispatcher(Service())).start()
    client = connect("ws://127.0.0.1:8765/")
    client.request("echo", "hi", timeout=5)
    server.sessions.notify("news", {"headline": "..."})   # broadcast

The WebSocket protocol is ``websockets``' sans-I/O core driven over gevent
sockets. Binary frames are refused with close code 1003, text that is not
UTF-8 with 1007, a message over ``max_message_size`` (or in more than
``max_fragments`` frames) with 1009, a protocol error with 1002.

* :mod:`transports.websocket.protocol`: what they share around ``websockets``' sans-I/O core;
* :mod:`transports.websocket.link`: :class:`WebSocketLink`, one connection;
* :mod:`transports.websocket.server`: :class:`WebSocketServer`, several paths on one port;
* :mod:`transports.websocket.origin`: which pages and Host names may connect (same-origin by default);
* :mod:`transports.websocket.client`: :func:`connect` and the lower-level :func:`open_websocket`.
"""

from rpcengine.packages import require_own_package
from transports.websocket.client import connect, open_websocket, parse_url
from transports.websocket.link import DEFAULT_CLOSE_TIMEOUT, WebSocketLink
from transports.websocket.protocol import DEFAULT_MAX_FRAGMENTS, SUBPROTOCOL, close_code_for
from transports.websocket.server import STATIC_PATH, SessionGroup, WebSocketServer

require_own_package("transports")  # fails at once, naming it, if 'transports' is another installation

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_FRAGMENTS",
    "STATIC_PATH",
    "SUBPROTOCOL",
    "SessionGroup",
    "WebSocketLink",
    "WebSocketServer",
    "close_code_for",
    "connect",
    "open_websocket",
    "parse_url",
]
