"""Transports carry an Engine's messages: in memory, over TCP or a Unix socket, over WebSocket.

* :mod:`transports.memory`: the in-memory loopback pair for tests;
* :mod:`transports.tcp`: one JSON message per line over TCP (and TLS);
* :mod:`transports.unix`: the same over a Unix-domain socket, with the peer's credentials;
* :mod:`transports.websocket`: one JSON message per text frame;
* :mod:`transports.base`: the base class for writing a new transport.
"""

# Marks this package as rpcengine's own (see rpcengine.packages); set before the imports below, which check it.
__rpcengine_package__ = True

from transports.base import Transport
from transports.memory import MemoryTransport, pair

__all__ = ["MemoryTransport", "Transport", "pair"]
