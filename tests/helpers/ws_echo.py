"""A raw WebSocket echo endpoint and client built on our own link and HTTP upgrade code.

The Autobahn TestSuite sends binary frames and arbitrary text, which the
rpcengine protocol refuses; these helpers reuse :class:`WebSocketLink` (and,
for the server, :class:`WebSocketServer`'s upgrade and routing) with the
message handling replaced by an echo, so the suite exercises exactly the
WebSocket layer the transport runs on.
"""

from __future__ import annotations

from typing import Any

from rpcengine.errors import ConnectionLost
from transports.session.client import refuse_calls
from transports.session.config import SessionConfig
from transports.session.server import SessionServer
from transports.websocket import WebSocketLink, WebSocketServer, open_websocket

#: Generous limits: the suite sends messages up to 16 MiB in many fragments (cases 9.*, excluded by default).
MAX_SIZE = 16 << 20
MAX_FRAGMENTS = 1 << 20
CONFIG = SessionConfig(max_message_size=MAX_SIZE, max_buffer=MAX_SIZE, heartbeat_interval=None, heartbeat_timeout=None)


class _Binary(bytes):
    """A payload to send as a binary frame."""


class EchoLink(WebSocketLink):
    """A link that sends every text and binary message back as it came."""

    accepts_binary = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["max_fragments"] = MAX_FRAGMENTS
        super().__init__(*args, **kwargs)
        self.receiver = self._echo

    def _echo(self, payload: bytes) -> None:
        try:
            self.write(payload)
        except ConnectionLost:
            pass

    def binary_received(self, data: bytes) -> None:
        self._echo(_Binary(data))

    def frame_payload(self, payload: bytes) -> None:
        if type(payload) is _Binary:
            self.protocol.send_binary(payload)
        else:
            self.protocol.send_text(payload)


class EchoServer(WebSocketServer):
    """A WebSocketServer whose connections echo instead of carrying sessions."""

    link_class = EchoLink

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(
            address,
            refuse_calls,
            subprotocol=None,
            max_fragments=MAX_FRAGMENTS,
            max_message_size=MAX_SIZE,
            max_buffer=MAX_SIZE,
            heartbeat_interval=None,
            heartbeat_timeout=None,
        )

    def serve_upgraded(self, endpoint: SessionServer, link: WebSocketLink) -> None:
        link.run()


def echo_client(url: str, timeout: float = 30.0) -> None:
    """Connect to ``url`` and echo until the server closes (blocks, yielding)."""
    link = open_websocket(url, CONFIG, subprotocols=None, connect_timeout=timeout, link_class=EchoLink)
    link.run()


def read_one_message(url: str, timeout: float = 30.0) -> bytes:
    """Connect to ``url`` and return the first text message the server sends (then wait for its close)."""
    link = open_websocket(url, CONFIG, subprotocols=None, connect_timeout=timeout)
    messages: list[bytes] = []
    link.receiver = messages.append
    link.run()
    if not messages:
        raise ConnectionLost(f"no message from {url}: {link.close_reason}")
    return messages[0]
