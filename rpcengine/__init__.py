"""rpcengine: a transport-neutral JSON-RPC engine on gevent.

The public API follows ``mushroom.rpc``: :class:`Engine`, the six message
classes, and the exceptions rooted at :class:`RpcError`. Dispatchers live in
the :mod:`dispatchers` package and transports in :mod:`transports`; the
command line, which uses both, in :mod:`rpcengine.cli` (never imported here).
"""

from rpcengine.calls import Call
from rpcengine.codec import Codec, OrjsonCodec, UjsonCodec, default_codec
from rpcengine.engine import Engine, current_deadline, error_data
from rpcengine.errors import (
    ConnectionLost,
    DecodeError,
    EncodeError,
    HandlerInterrupted,
    HandshakeError,
    InvalidMessage,
    MessageRefused,
    MessageTooLarge,
    MethodNotFound,
    OutboxFull,
    ProtocolError,
    RequestCancelled,
    RequestException,
    RequestTimeout,
    RpcError,
    TooManyPendingRequests,
    WrongThread,
)
from rpcengine.features import ALL_FEATURES, CANCEL, DEADLINE, STREAM
from rpcengine.hubthread import HubThread
from rpcengine.messages import (
    Cancel,
    Disconnect,
    Error,
    Heartbeat,
    Message,
    Notification,
    Request,
    Response,
    StreamCredit,
    StreamItem,
)
from rpcengine.streams import Stream

__version__ = "0.1.0"

__all__ = [
    "ALL_FEATURES",
    "CANCEL",
    "DEADLINE",
    "STREAM",
    "Call",
    "Cancel",
    "Codec",
    "ConnectionLost",
    "DecodeError",
    "Disconnect",
    "EncodeError",
    "Engine",
    "Error",
    "HandlerInterrupted",
    "HandshakeError",
    "Heartbeat",
    "HubThread",
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
    "RequestCancelled",
    "RequestException",
    "RequestTimeout",
    "Response",
    "RpcError",
    "Stream",
    "StreamCredit",
    "StreamItem",
    "TooManyPendingRequests",
    "UjsonCodec",
    "WrongThread",
    "__version__",
    "current_deadline",
    "default_codec",
    "error_data",
]
