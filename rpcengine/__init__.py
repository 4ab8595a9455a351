"""rpcengine: a transport-neutral JSON-RPC engine on gevent.

The public API follows ``mushroom.rpc``: :class:`Engine`, the six message
classes, and the exceptions rooted at :class:`RpcError`. Dispatchers live in
the :mod:`dispatchers` package and transports in :mod:`transports`; the
command line, which uses both, in :mod:`rpcengine.cli` (never imported here).
"""

from rpcengine.codec import Codec, OrjsonCodec, UjsonCodec, default_codec
from rpcengine.engine import Engine, error_data
from rpcengine.errors import (
    ConnectionLost,
    DecodeError,
    EncodeError,
    HandshakeError,
    InvalidMessage,
    MessageRefused,
    MessageTooLarge,
    MethodNotFound,
    OutboxFull,
    ProtocolError,
    RequestException,
    RequestTimeout,
    RpcError,
    TooManyPendingRequests,
)
from rpcengine.messages import Disconnect, Error, Heartbeat, Message, Notification, Request, Response

__version__ = "0.1.0"

__all__ = [
    "Codec",
    "ConnectionLost",
    "DecodeError",
    "Disconnect",
    "EncodeError",
    "Engine",
    "Error",
    "HandshakeError",
    "Heartbeat",
    "InvalidMessage",
    "Message",
    "MessageRefused",
    "MessageTooLarge",
    "MethodNotFound",
    "Notification",
    "OrjsonCodec",
    "OutboxFull",
    "ProtocolError",
    "Request",
    "RequestException",
    "RequestTimeout",
    "Response",
    "RpcError",
    "TooManyPendingRequests",
    "UjsonCodec",
    "__version__",
    "default_codec",
    "error_data",
]
