"""mushroom compatibility: mushroom's bootstrap, its poll transport, and its WebSocket URL, on our sessions.

A mushroom client (``mushroom.js`` 0.9.17, or mushroom's Python client)
works unchanged against a server started with ``mushroom=BASE``:

* bootstrap: ``POST BASE`` (or ``BASE/``) with ``{"transports": ["ws",
  "poll"], "auth": ...}`` whatever its content type. The ``auth`` value
  goes to ``authenticate`` first, as ``hello.extra["auth"]`` (a refusal:
  401 with ``WWW-Authenticate: Mushroom``); then a session is made and the
  answer names the first of the client's transports served here:
  ``{"transport": "ws", "url": "ws://HOST/BASE/<sid>/"}`` or
  ``{"transport": "poll", "url": "http://HOST/BASE/<sid>/"}``; none: 501;
  another method: 405;
* poll: ``POST BASE/<sid>/`` with a JSON array of message lists. With a
  heartbeat ``[0, ack]`` (``null``: nothing received yet) it is a poll, as
  in :mod:`transports.http.poll`; without, every message is handled and
  the answer is ``null`` at once. ``[[-1]]`` ends the session (later
  POSTs: 404); an unknown sid: 404;
* WebSocket: an upgrade at ``BASE/<sid>/`` attaches to that session.

These sessions acknowledge every message (mushroom's client empties its
queue only on acknowledgements) and send no heartbeats of their own
(mushroom's client does not expect them). Nothing here blocks except
where a method says so.
"""

from __future__ import annotations

import logging
from typing import Any

from rpcengine.errors import ProtocolError
from rpcengine.messages import Heartbeat
from rpcengine.wire import error_data, frame_array, heartbeat_frame
from transports.http.calls import CallResult
from transports.http.connection import HttpError
from transports.http.poll import PollSessions, poll_config
from transports.session.driver import Session
from transports.session.handshake import PROTOCOL_VERSION, ClientHello
from transports.session.server import SessionServer

__all__ = ["MUSHROOM_TRANSPORTS", "MushroomSessions", "serve_attached"]

log = logging.getLogger(__name__)

#: mushroom's transport names that a server offers, in its order of preference.
MUSHROOM_TRANSPORTS = ("ws", "poll")


class MushroomSessions:
    """mushroom's bootstrap and poll transport at ``base`` for one endpoint; its sessions.

    ``secure`` says whether the server serves ``wss://`` and ``https://``.
    """

    def __init__(self, endpoint: SessionServer, base: str, *, hold: float, secure: bool = False) -> None:
        self.base = "/" + base.strip("/")
        self.secure = secure
        config = poll_config(endpoint.config, hold).with_options(heartbeat_interval=None, heartbeat_timeout=None)
        self.polls = PollSessions(endpoint, hold=hold, config=config)
        self.codec = endpoint.codec

    def route(self, path: str) -> str | None:
        """Return ``"bootstrap"``, the session id named by ``path``, or None if ``path`` is not mushroom's."""
        if path in (self.base, self.base + "/"):
            return "bootstrap"
        head, _, rest = path.partition(self.base + "/")
        if head or not rest.endswith("/") or "/" in rest[:-1] or not rest[:-1]:
            return None
        return rest[:-1]

    def session(self, session_id: str) -> Session | None:
        """Return the open session with this id, or None."""
        session = self.polls.sessions.get(session_id)
        return session if session is not None and not session.closed else None

    def bootstrap(self, body: bytes, *, host: str, peer_address: Any, request: Any, path: str) -> CallResult:
        """Answer mushroom's bootstrap (see the module docstring); raises HttpError 400 for a body that is not one."""
        codec, endpoint = self.codec, self.polls.endpoint
        try:
            value = codec.decode(body)
        except ProtocolError as exc:
            raise HttpError(400, "invalid_json", str(exc)) from None
        if type(value) is not dict or type(value.get("transports")) is not list:
            raise HttpError(400, "invalid_handshake", 'a mushroom bootstrap is {"transports": [...], "auth": ...}')
        hello = ClientHello(PROTOCOL_VERSION, None, 0, {"auth": value.get("auth"), "mushroom": True}, max_unacked=1)
        if not self.polls.authenticated(hello, peer_address):
            return CallResult(401, b"Authentication failed")
        chosen = next((name for name in value["transports"] if name in MUSHROOM_TRANSPORTS), None)
        if chosen is None:
            return CallResult(501, b"No suitable transport found")
        session = self.polls.start(hello, peer_address=peer_address, request=request, path=path)
        if session is None:
            return CallResult(503, codec.encode(error_data("unavailable", endpoint.refusal_reason)))
        scheme = ("wss" if self.secure else "ws") if chosen == "ws" else ("https" if self.secure else "http")
        url = f"{scheme}://{host}{self.base}/{session.session_id}/"
        return CallResult(200, codec.encode({"transport": chosen, "url": url}))

    def exchange(self, session_id: str, body: bytes, *, peer_address: Any, request: Any, path: str) -> CallResult:
        """Answer a POST of mushroom's poll transport; a poll blocks (yielding) up to the hold time."""
        codec = self.codec
        session = self.session(session_id)
        if session is None:
            return CallResult(404, b"Session not found")
        try:
            value = codec.decode(body)
        except ProtocolError as exc:
            raise HttpError(400, "invalid_json", str(exc)) from None
        if type(value) is not list:
            raise HttpError(400, "invalid_message", "a mushroom poll body is an array of message lists")
        first = value[0] if value else None
        if type(first) is list and len(first) == 2 and first[0] == Heartbeat.code:
            ack = first[1] if type(first[1]) is int else 0  # null: nothing received yet
            frames = [codec.encode(item) for item in value[1:]]
            payloads = self.polls.poll(session, ack, frames, peer_address=peer_address, request=request, path=path)
            if not session.closed and session.protocol.received_any:
                # (never an acknowledgement of nothing: mushroom.js refuses an id it never sent)
                payloads.append(heartbeat_frame(codec, session.last_received))
            return CallResult(200, frame_array(payloads))
        self.polls.send(session, [codec.encode(item) for item in value])
        return CallResult(200, b"null")


def serve_attached(endpoint: SessionServer, link: Any) -> None:
    """Serve a WebSocket ``link`` whose ``owner`` is the session it attaches to (blocks, yielding, while it reads)."""
    session = link.owner
    endpoint.links.add(link)
    endpoint.detached.pop(session, None)
    session.attach(link, 0)  # everything not acknowledged yet goes (again) on this connection
    try:
        link.run()
    finally:
        endpoint.links.discard(link)
        if not link.closed:
            link.close("connection ended")
