"""rpcengine as a mushroom client: :func:`connect_mushroom` against a mushroom server (0.9.17's wire).

It does mushroom's bootstrap (``POST`` the server's URL with
``{"transports": [...], "auth": ...}``), then speaks the transport the
server names: its WebSocket (one message list per text frame, no
handshake object), or its poll transport (:class:`MushroomPollLink`: JSON
arrays; a poll is ``[[0, last received]]``, ``[[0, null]]`` before
anything came). Either way every message received is acknowledged with
``[0, id]`` (a mushroom server keeps each message until it is
acknowledged), and the session sends no heartbeats of its own (a mushroom
server has no use for them) and judges no silence.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from rpcengine.engine import Engine, RpcHandler
from rpcengine.errors import HandshakeError, ProtocolError
from rpcengine.wire import frame_array, heartbeat_array
from transports.http.client import HttpClientConnection, PollClientLink, client_session, run_session
from transports.link import SocketLink
from transports.session.config import SessionConfig

__all__ = ["MushroomPollLink", "connect_mushroom"]


class MushroomPollLink(PollClientLink):
    """mushroom's poll transport, client side: JSON array bodies; sends are answered ``null``."""

    def __init__(self, *args: Any, received_any: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received_any = received_any

    def poll_body(self) -> bytes:
        """Return ``[[0, last received]]`` (``[[0, null]]`` before anything came)."""
        ack = self.last_received() if self.received_any() else None
        return heartbeat_array(self.codec, ack)

    def send_body(self, batch: list[bytes]) -> bytes:
        """Return ``batch`` as one JSON array."""
        return frame_array(batch)


def connect_mushroom(
    url: str,
    rpc_handler: RpcHandler | None = None,
    *,
    transport: str = "ws",
    auth: Any = None,
    connect_timeout: float = 10.0,
    **options: Any,
) -> Engine:
    """Connect to the mushroom server at ``url`` (``http://host:port/``) over ``transport`` (``"ws"`` or ``"poll"``).

    Blocks (yields) for the bootstrap and, for ``ws``, the upgrade.
    ``auth`` goes to the server's authentication. Other keywords are
    :class:`~transports.session.config.SessionConfig` fields. Raises
    ValueError for a URL that is not ``http://`` or a transport mushroom
    does not have, OSError if the server cannot be reached, HandshakeError
    if it refuses (401: authentication) or answers otherwise than mushroom.
    """
    if transport not in ("ws", "poll"):
        raise ValueError(f"mushroom's transports are 'ws' and 'poll', not {transport!r}")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"a mushroom server's URL is http://host:port/path, not {url!r}")
    address = (parts.hostname, parts.port or 80)
    config = SessionConfig().with_options(**options).with_options(heartbeat_interval=None, heartbeat_timeout=None)
    codec = config.make_codec()
    bootstrap = HttpClientConnection(address, parts.netloc)
    try:
        request = codec.encode({"transports": [transport], "auth": auth})
        status, body = bootstrap.post(parts.path or "/", request, connect_timeout)
    finally:
        bootstrap.close()
    if status == 401:
        raise HandshakeError("the mushroom server refused the authentication (401)")
    try:
        answer = codec.decode(body) if status == 200 else None
    except ProtocolError:
        answer = None
    if type(answer) is not dict or answer.get("transport") != transport or type(answer.get("url")) is not str:
        raise HandshakeError(f"not a mushroom bootstrap answer: {status} {body[:200]!r}")
    # Acknowledge every message (a peer keeping one unacknowledged): mushroom keeps each until then.
    session, engine = client_session(config, answer["url"], address, rpc_handler, 1)
    link: SocketLink
    if transport == "ws":
        from transports.websocket.client import open_websocket

        link = open_websocket(answer["url"], config, subprotocols=None, connect_timeout=connect_timeout)
    else:
        poll_url = urlsplit(answer["url"])
        link = MushroomPollLink(
            address,
            parts.netloc,
            poll_url.path,
            "",
            hold=40.0,  # mushroom's poll timeout
            codec=codec,
            last_received=lambda: session.last_received,
            received_any=lambda: session.protocol.received_any,
            retry_for=config.resume_grace or 0.0,
        )
    run_session(session, link)
    return engine
