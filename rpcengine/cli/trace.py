"""``--trace``: print every message an engine sends and receives, one line each, on stderr.

A line is the local time, the direction (``→`` sent, ``←`` received; ``>``
and ``<`` where stderr cannot encode arrows), the peer, and the message as
JSON, as it goes over the wire::

    12:00:01.250 → tcp://127.0.0.1:7000 [2, 1, "add", [2, 3]]
    12:00:01.252 ← tcp://127.0.0.1:7000 [3, 1, 1, 5]

:meth:`Tracer.attach` wraps one engine: its transport's ``send`` (and
``send_nowait``, which broadcasts use) and its ``handle_message``, on that
instance only. Without ``--trace`` nothing is wrapped, so the hot path is
untouched. The session layer's own frames (the handshake, heartbeats
``[0, n]``, the closing ``[-1]``) are not the engine's and are not shown.

:meth:`Tracer.attach_frames` traces a connection's frames instead, as they
are written and read: for a JSON-RPC 2.0 session, whose frames are
JSON-RPC documents rather than the engine's message lists::

    12:00:01.250 → jsonrpc+tcp://127.0.0.1:7000 {"jsonrpc":"2.0","id":1,"method":"echo","params":[2,3]}
    12:00:01.252 ← jsonrpc+tcp://127.0.0.1:7000 {"jsonrpc":"2.0","id":1,"result":[2,3]}
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from rpcengine.engine import Engine
from rpcengine.messages import Message, Notification, Request

__all__ = ["Tracer", "peer_name"]


def peer_name(address: Any) -> str:
    """Return ``host:port`` for a socket address (IPv6 hosts in brackets), or ``str(address)``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if ":" in str(host):
            host = f"[{host}]"
        return f"{host}:{port}"
    return str(address)


def _arrows(stream: TextIO) -> tuple[str, str]:
    """Return the (sent, received) direction marks that ``stream`` can print."""
    try:
        "→←".encode(getattr(stream, "encoding", None) or "ascii")
    except (LookupError, UnicodeEncodeError):
        return ">", "<"
    return "→", "←"


def _replace(obj: object, name: str, function: Callable[..., Any]) -> None:
    """Shadow the method ``name`` of this one instance with ``function`` (the class is untouched)."""
    setattr(obj, name, function)


class Tracer:
    """Prints the messages of the engines it is attached to (see the module docstring).

    ``clock`` returns the wall-clock time in seconds (``time.time``).
    Printing does not yield to the gevent hub.
    """

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.time) -> None:
        self.stream = stream or sys.stderr
        self.clock = clock
        self.sent_mark, self.received_mark = _arrows(self.stream)
        # The ids of the calls and notifications traced on their way to a handler that has not run yet.
        self._to_handle: set[int] = set()

    def was_traced(self, message: Message) -> bool:
        """Whether ``message``, now reaching its handler, was traced when the engine took it (forgets it)."""
        ident = id(message)
        if ident in self._to_handle:
            self._to_handle.discard(ident)
            return True
        return False

    def timestamp(self) -> str:
        """Return the local time as ``HH:MM:SS.mmm``."""
        now = self.clock()
        return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"

    def line(self, sent: bool, peer: str, text: str) -> None:
        """Print one trace line; a failing stream (closed, say) is ignored."""
        mark = self.sent_mark if sent else self.received_mark
        try:
            print(f"{self.timestamp()} {mark} {peer} {text}", file=self.stream, flush=True)
        except (OSError, ValueError):
            pass

    @staticmethod
    def message_text(transport: Any, message: Message) -> str:
        """Return ``message`` as the JSON text the transport's codec makes of it."""
        layout = message.to_list()
        codec = getattr(transport, "codec", None)
        if codec is not None:
            try:
                return bytes(codec.encode(layout)).decode("utf-8", "replace")
            except Exception:  # the codec refuses it: the send fails too, and says why
                pass
        return json.dumps(layout, ensure_ascii=False, default=repr)

    def attach_frames(self, transport: Any, peer: str) -> None:
        """Trace every frame the link of ``transport`` (a session) writes and reads from now on (does not block)."""
        link = transport.link
        if link is None:
            return
        write = link.write
        receiver = link.receiver

        def traced_write(payload: bytes, block: bool = True) -> None:
            write(payload, block)
            self.line(True, peer, bytes(payload).decode("utf-8", "replace"))

        def traced_receiver(frame: bytes) -> None:
            self.line(False, peer, bytes(frame).decode("utf-8", "replace"))
            receiver(frame)

        _replace(link, "write", traced_write)
        link.receiver = traced_receiver

    def attach(self, engine: Engine, peer: str) -> None:
        """Trace every message ``engine`` sends and receives from now on (does not block)."""
        transport = engine.transport
        send = transport.send
        handle = engine.handle_message

        def traced_send(message: Message, **kwargs: Any) -> None:
            send(message, **kwargs)
            self.line(True, peer, self.message_text(transport, message))

        def traced_handle(message: Message) -> None:
            self.line(False, peer, self.message_text(transport, message))
            kind = type(message)
            if kind is Request or kind is Notification:
                self._to_handle.add(id(message))
            handle(message)

        _replace(transport, "send", traced_send)
        _replace(engine, "handle_message", traced_handle)
        send_nowait = getattr(transport, "send_nowait", None)
        if callable(send_nowait):

            def traced_send_nowait(payload: bytes, *args: Any, **kwargs: Any) -> Any:
                result = send_nowait(payload, *args, **kwargs)
                self.line(True, peer, bytes(payload).decode("utf-8", "replace"))
                return result

            _replace(transport, "send_nowait", traced_send_nowait)
