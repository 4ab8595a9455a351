"""Settings shared by every session-based transport (TCP and WebSocket), with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from rpcengine.codec import DEFAULT_MAX_SIZE, Codec, default_codec
from rpcengine.engine import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_PENDING
from rpcengine.features import ALL_FEATURES

__all__ = ["SessionConfig"]


@dataclass(frozen=True)
class SessionConfig:
    """Limits and timers of a session; the same names are keyword arguments of servers and ``connect``.

    Times are in seconds; ``None`` turns the feature off.
    """

    #: Send ``[0, last_message_id]`` this often on a handshaken session.
    heartbeat_interval: float | None = 5.0
    #: Declare the peer dead after this long without a frame from it.
    heartbeat_timeout: float | None = 15.0
    #: Keep a session whose connection dropped this long, waiting for a resume.
    resume_grace: float | None = 30.0
    #: Sent messages kept for resend until acknowledged; more makes the sender wait.
    max_unacked: int = 10_000
    #: How long a sender waits for room in a full outbox before OutboxFull.
    outbox_timeout: float = 30.0
    #: How long a broadcast waits for one peer's acknowledgements before closing it as a slow consumer.
    broadcast_timeout: float = 5.0
    #: Bytes queued for one socket before writers wait (and a broadcast drops the session).
    max_buffer: int = 4 << 20
    #: Largest frame (line or WebSocket message) accepted, in bytes.
    max_message_size: int = DEFAULT_MAX_SIZE
    #: Inbound requests and notifications handled at once per connection.
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    #: Requests a side may have pending at once.
    max_pending: int = DEFAULT_MAX_PENDING
    #: Timeout of ``engine.request`` calls that give none.
    default_timeout: float | None = None
    #: A frame (line or WebSocket message) once begun must be complete within this long (``None``: no limit).
    frame_timeout: float | None = 30.0
    #: A plain session (no handshake, so no heartbeats) with no message for this long is closed (``None``: never).
    idle_timeout: float | None = 300.0
    #: How long a closing connection (Disconnect or a framing error from the peer) waits for in-flight work.
    drain_timeout: float = 5.0
    #: Deadline for the handshake (and, for WebSocket, the HTTP upgrade).
    handshake_timeout: float = 10.0
    #: Protocol features offered in the handshake (:mod:`rpcengine.features`); ``frozenset()`` offers none.
    features: frozenset[str] = ALL_FEATURES
    #: The JSON codec; ``None`` means a UjsonCodec limited to ``max_message_size``.
    codec: Codec | None = field(default=None, compare=False)

    def make_codec(self) -> Codec:
        """Return the configured codec, or the default one sized to ``max_message_size``."""
        if self.codec is not None:
            return self.codec
        # Codecs keep no state between calls: every session of this configuration shares one.
        codec = self.__dict__.get("_default_codec")
        if codec is None:
            codec = default_codec()
            codec.max_size = self.max_message_size
            object.__setattr__(self, "_default_codec", codec)  # a cache on a frozen dataclass
        return codec

    @property
    def ack_every(self) -> int:
        """Acknowledge after this many received messages, well before the peer's outbox fills.

        A session acknowledges more often for a peer that announced a smaller
        ``max_unacked`` in its handshake (see ``Session.peer_outbox_bound``).
        """
        return max(1, min(1024, self.max_unacked // 4))

    def with_options(self, **options: Any) -> SessionConfig:
        """Return a copy with ``options`` changed; raise TypeError for an unknown name."""
        return replace(self, **options)
