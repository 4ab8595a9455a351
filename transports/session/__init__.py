"""The session layer every socket transport shares: a sans-I/O core and the gevent code around it.

* :mod:`transports.session.protocol`: :class:`SessionProtocol`, the rules
  (outbox, acknowledgements, deduplication, liveness, resume grace) as a
  state machine with no I/O: messages and the time go in, what to send and
  deliver comes out, and it reports its next deadline;
* :mod:`transports.session.driver`: :class:`Session`, the Engine-facing
  transport that drives the protocol over links with one timer;
* :mod:`transports.session.jsonrpc`: :class:`JsonRpcSession`, the same for
  a peer that speaks JSON-RPC 2.0 (through :mod:`rpcengine.jsonrpc_adapter`);
* :mod:`transports.session.handshake`: the optional handshake objects;
* :mod:`transports.session.config`: :class:`SessionConfig`, every limit and timer;
* :mod:`transports.session.sessions`: :class:`SessionSet`, a server's sessions, with broadcast;
* :mod:`transports.session.server`: :class:`SessionServer`, what every server does per connection;
* :mod:`transports.session.client`: :func:`open_session`, the client side with reconnect and resume.
"""

from transports.session.config import SessionConfig
from transports.session.driver import Session, new_session_id
from transports.session.jsonrpc import JsonRpcSession
from transports.session.protocol import SessionProtocol, TimerAction
from transports.session.sessions import SessionSet

__all__ = [
    "JsonRpcSession",
    "Session",
    "SessionConfig",
    "SessionProtocol",
    "SessionSet",
    "TimerAction",
    "new_session_id",
]
