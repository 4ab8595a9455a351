"""HTTP on the WebSocket port: plain requests read with h11, one-shot POST calls.

A :class:`~transports.websocket.server.WebSocketServer` reads every
connection's first request with h11. A WebSocket upgrade (any ``GET``) goes
on to the WebSocket protocol as before; ``POST /rpc`` (the twin of each
WebSocket path) handles the message lists in its body and answers with
their answers::

    $ curl -sd '[2,1,"add",[2,3]]' http://127.0.0.1:8765/rpc
    [3,1,1,5]

* :mod:`transports.http.connection`: :class:`HttpConnection`, h11 over a gevent socket, and its limits;
* :mod:`transports.http.calls`: one-shot calls on a plain session;
* :mod:`transports.http.front`: :class:`HttpFront`, routing, CORS, and the hand-over to WebSocket.
"""

from rpcengine.packages import require_own_package
from transports.http.calls import CallResult, CollectingLink, parse_calls, run_calls
from transports.http.connection import DEFAULT_MAX_HEADER_SIZE, HttpConnection, HttpError
from transports.http.front import DEFAULT_CALL_TIMEOUT, JSON_TYPES, HttpFront, twin_path

require_own_package("transports")

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_MAX_HEADER_SIZE",
    "JSON_TYPES",
    "CallResult",
    "CollectingLink",
    "HttpConnection",
    "HttpError",
    "HttpFront",
    "parse_calls",
    "run_calls",
    "twin_path",
]
