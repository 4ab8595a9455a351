"""RedisBroker: one node of a service whose servers share sessions' reach through Redis.

A node is one process (one broker object). Servers take it (``broker=``):
their session ids start with the node id, and then

* ``server.sessions.notify(method, data)`` delivers to this node's sessions
  and publishes once; every other node delivers to its own sessions and
  never re-publishes (the result says how many sessions here and how many
  other nodes were reached);
* ``server.sessions.call(session_id, ...)`` reaches a session on any node:
  the request runs on the owning node over that client's connection and the
  answer comes back; a session on a node that is gone fails at once with
  ConnectionLost;
* the node keeps a liveness key refreshed on a timer.

One greenlet owns the node's subscription (the broadcast channel and the
node's own channel). It probes it by publishing to its own channel; when a
probe does not come back in time, or the connection fails, it reconnects and
resubscribes with backoff. While Redis is down, broadcasts are counted as
dropped and logged, and local service goes on. Every payload is JSON
(:mod:`transports.redis.payloads`); garbage is dropped and logged.
Keys and channels: ``docs/reference/broker.rst``.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
from gevent.queue import Full, Queue

from rpcengine.calls import Call
from rpcengine.codec import Codec, default_codec
from rpcengine.engine import Engine
from rpcengine.errors import ConnectionLost, EncodeError, ProtocolError, TooManyPendingRequests
from rpcengine.messages import Error, Message
from rpcengine.wire import error_data
from transports.redis.connection import REDIS_ERRORS, redis_client, text_of
from transports.redis.payloads import (
    BROADCAST,
    GONE,
    MAX_PAYLOAD,
    PROBE,
    SESSION_MESSAGE,
    BadPayload,
    Payload,
    broadcast_payload,
    decode_payload,
    gone_payload,
    probe_payload,
    session_payload,
)
from transports.redis.remote import REMOTE_FEATURES, Relay, RemoteSessionTransport, refuse_calls
from transports.session.sessions import BroadcastResult

if TYPE_CHECKING:
    from transports.session.driver import Session
    from transports.session.sessions import SessionSet

__all__ = ["BrokerStats", "RedisBroker", "node_of"]

log = logging.getLogger(__name__)

#: Default bound on sessions of other nodes this node keeps an engine for.
DEFAULT_MAX_REMOTE_SESSIONS = 10_000


def node_of(session_id: str) -> str:
    """Return the node id a brokered session id starts with ('' for an id without one)."""
    node, dot, _ = session_id.partition(".")
    return node if dot else ""


class _ProbeLost(Exception):
    """The node's probe did not come back on its subscription in time."""


class BrokerStats:
    """Counters of one node's broker traffic (plain ints, read them any time)."""

    def __init__(self) -> None:
        self.broadcasts_published = 0
        self.broadcasts_dropped = 0
        self.broadcasts_received = 0
        self.garbage_dropped = 0
        self.inbox_dropped = 0
        self.reconnects = 0
        self.calls_relayed = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a dict."""
        return dict(vars(self))


class RedisBroker:
    """One node's link to Redis: broadcasts across nodes, calls to sessions on any node, liveness.

    ``url`` is a ``redis://host:port/db`` URL, ``unix:///path.sock`` or a
    socket path; ``prefix`` starts every key and channel, so services can
    share a Redis. ``node_id`` defaults to a random 12-hex-digit id.
    ``liveness_interval``/``liveness_ttl``: how often the node's key
    ``{prefix}:alive:{node}`` is refreshed and when it expires.
    ``probe_interval``/``probe_timeout``: how often the subscription is
    probed and how long a probe may take before it is rebuilt.
    ``reconnect_delay``/``max_reconnect_delay``: the first and longest wait
    between reconnection attempts (doubling, with jitter). ``watch_interval``:
    how often the owners of sessions with calls in flight are checked
    (a node that is gone fails those calls with ConnectionLost).
    ``max_payload``: the largest payload sent or accepted, in bytes.

    :meth:`start` connects nothing at once: the greenlets it starts do, and
    retry while Redis is down. Nothing here monkey-patches; every Redis
    socket is a gevent socket (:mod:`transports.redis.connection`).
    """

    def __init__(
        self,
        url: str,
        prefix: str = "rpcengine",
        *,
        node_id: str | None = None,
        codec: Codec | None = None,
        liveness_interval: float = 1.0,
        liveness_ttl: float = 5.0,
        probe_interval: float = 1.0,
        probe_timeout: float = 2.0,
        reconnect_delay: float = 0.05,
        max_reconnect_delay: float = 1.0,
        watch_interval: float = 0.05,
        max_payload: int = MAX_PAYLOAD,
        inbox_size: int = 10_000,
        max_remote_sessions: int = DEFAULT_MAX_REMOTE_SESSIONS,
    ) -> None:
        if not prefix or any(c in prefix for c in " \r\n"):
            raise ValueError(f"bad broker prefix {prefix!r}")
        self.url = url
        self.prefix = prefix
        self.node_id = node_id or secrets.token_hex(6)
        if "." in self.node_id or not self.node_id:
            raise ValueError("a node id may not be empty or hold '.'")
        self.codec = codec or default_codec()
        self.liveness_interval = liveness_interval
        self.liveness_ttl = liveness_ttl
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.watch_interval = watch_interval
        self.max_payload = max_payload
        self.max_remote_sessions = max_remote_sessions
        #: Commands (publish, liveness, checks); the subscription has a connection of its own from the same pool.
        self.client = redis_client(url, socket_timeout=max(probe_timeout, 0.5), max_connections=256)
        self.stats = BrokerStats()
        #: Whether the subscription is up (the last probe came back).
        self.subscribed = False
        self.broadcast_channel = f"{prefix}:broadcast"
        self.node_channel = self.channel_of(self.node_id)
        self.alive_key = self.alive_key_of(self.node_id)
        self._sets: list[SessionSet] = []
        self._inbox: Queue = Queue(maxsize=inbox_size)
        self._outbox: Queue = Queue()
        self._remote: dict[str, Engine] = {}
        self._relay = Relay(self.local_session, self._queue_answer, self._queue_gone)
        self._greenlets: list[gevent.Greenlet] = []
        self._running = False
        self._subscribed_event = gevent.event.Event()
        self._last_drop_log = 0.0
        self.started_at = time.time()

    # -- naming -----------------------------------------------------------

    def channel_of(self, node: str) -> str:
        """Return the channel ``node`` listens on for calls, answers and its own probes."""
        return f"{self.prefix}:node:{node}"

    def new_session_id(self) -> str:
        """Return a new session id that names this node (``NODE.RANDOM``)."""
        return f"{self.node_id}.{secrets.token_urlsafe(16)}"

    # -- lifecycle --------------------------------------------------------

    def attach(self, sessions: SessionSet) -> None:
        """Serve ``sessions`` (a server's SessionSet) through this node: its ids, broadcasts and calls."""
        if sessions not in self._sets:
            self._sets.append(sessions)
        sessions.broker = self

    def start(self) -> RedisBroker:
        """Start the node's greenlets (subscription, delivery, answers, liveness, watch); return self."""
        if self._running:
            return self
        self._running = True
        loops = (self._subscribe_loop, self._deliver_loop, self._outbox_loop, self._liveness_loop, self._watch_loop)
        for target in loops:
            greenlet = gevent.spawn(target)
            greenlet.name = f"rpcengine-broker-{target.__name__.strip('_')}"
            self._greenlets.append(greenlet)
        return self

    def wait_subscribed(self, timeout: float | None = None) -> bool:
        """Block (yielding) until the subscription is up, at most ``timeout`` s; return whether it is."""
        return bool(self._subscribed_event.wait(timeout))

    def stop(self) -> None:
        """Stop the greenlets, fail calls to remote sessions, remove the liveness key (bounded; yields)."""
        if not self._running:
            return
        self._running = False
        self._relay.cancel_all()
        for engine in list(self._remote.values()):
            engine.transport.close()
        gevent.killall(self._greenlets, timeout=2.0)
        self._greenlets.clear()
        self.subscribed = False
        try:
            self.client.delete(self.alive_key)
        except REDIS_ERRORS as exc:
            log.info("broker stop: liveness key not removed: %s", exc)
        self.client.close()

    def __enter__(self) -> RedisBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- broadcast --------------------------------------------------------

    def notify(self, method: str, data: Any = None, timeout: float | None = None) -> BroadcastResult:
        """Broadcast to every session of every node: publish once, deliver to this node's sessions.

        Yields for the publish and for local flow control (see
        :meth:`SessionSet.notify <transports.session.sessions.SessionSet.notify>`).
        Returns a BroadcastResult: the sessions reached here (the int), and
        ``nodes``, the other nodes the publish reached (``dropped`` True when
        Redis could not be reached: counted, logged, local delivery goes on).
        Raises EncodeError, sending nothing, if ``data`` cannot be encoded or
        the payload is over ``max_payload``.
        """
        payload = broadcast_payload(self.codec, self.node_id, method, data)
        if len(payload) > self.max_payload:
            raise EncodeError(f"broadcast of {len(payload)} bytes is over the broker's {self.max_payload}-byte bound")
        nodes, dropped = 0, False
        try:
            reached = int(self.client.publish(self.broadcast_channel, payload))
            nodes = max(0, reached - (1 if self.subscribed else 0))
            self.stats.broadcasts_published += 1
        except REDIS_ERRORS as exc:
            dropped = True
            self.stats.broadcasts_dropped += 1
            self._log_drop(f"broadcast {method!r} not published (Redis unreachable: {exc})")
        result = self._deliver_locally(method, data, timeout)
        return BroadcastResult(result, closed=result.closed, waited=result.waited, nodes=nodes, dropped=dropped)

    def _deliver_locally(self, method: str, data: Any, timeout: float | None = None) -> BroadcastResult:
        """Deliver a broadcast to this node's sessions (every attached set)."""
        return BroadcastResult.total([sessions.notify_local(method, data, timeout) for sessions in self._sets])

    def _log_drop(self, text: str) -> None:
        """Log a dropped broadcast, at most once a second (with the running count)."""
        now = time.monotonic()
        if now - self._last_drop_log >= 1.0:
            self._last_drop_log = now
            log.warning("%s; %d dropped so far", text, self.stats.broadcasts_dropped)

    # -- calls to sessions on any node -----------------------------------

    def local_session(self, session_id: str) -> Session | None:
        """Return the open session ``session_id`` held by this node, or None."""
        for sessions in self._sets:
            session = sessions.get(session_id)
            if session is not None:
                return session
        return None

    def call(self, session_id: str, method: str, data: Any = None, timeout: float | None = None) -> Call:
        """Call the client of ``session_id`` on whichever node holds it; return the Call handle.

        Yields for the publish. Raises ConnectionLost at once when the
        session is not held here and its node is gone (or the id names no
        node), TooManyPendingRequests, EncodeError; the Call then ends as any
        does (answer, Error, RequestTimeout, cancel, or ConnectionLost when
        the session or its node goes while the call is in flight).
        """
        session = self.local_session(session_id)
        if session is not None and session.engine is not None:
            return session.engine.call(method, data, timeout)
        node = node_of(session_id)
        if not node:
            raise ConnectionLost(f"no session {session_id!r} here, and its id names no node")
        if node == self.node_id:
            raise ConnectionLost("no such session on this node")
        return self._remote_engine(node, session_id).call(method, data, timeout)

    def request(self, session_id: str, method: str, data: Any = None, timeout: float | None = None) -> Any:
        """Call the client of ``session_id`` on any node and wait (yielding) for the answer's data."""
        return self.call(session_id, method, data, timeout).get()

    def _remote_engine(self, node: str, session_id: str) -> Engine:
        """Return the engine that calls ``session_id`` on ``node``, made on first use."""
        engine = self._remote.get(session_id)
        if engine is not None and not engine.closed:
            return engine
        if len(self._remote) >= self.max_remote_sessions:
            idle = next((sid for sid, e in self._remote.items() if not e.pending_count), None)
            if idle is None:
                raise TooManyPendingRequests(f"calls are in flight to {len(self._remote)} remote sessions")
            self._remote.pop(idle).close()
        transport = RemoteSessionTransport(node, session_id, self._publish_session_message)
        engine = Engine(transport, refuse_calls)
        self._remote[session_id] = engine
        engine.on_close(lambda ended: self._forget_remote(session_id, ended))
        return engine

    def _forget_remote(self, session_id: str, engine: Engine) -> None:
        """Drop a closed remote engine from the cache."""
        if self._remote.get(session_id) is engine:
            del self._remote[session_id]

    def _publish_session_message(self, node: str, session_id: str, message: list[Any]) -> int:
        """Publish one message of a call to ``node``; return the subscribers reached (yields)."""
        payload = session_payload(self.codec, self.node_id, session_id, message)
        if len(payload) > self.max_payload:
            raise EncodeError(f"a message of {len(payload)} bytes is over the broker's {self.max_payload}-byte bound")
        try:
            return int(self.client.publish(self.channel_of(node), payload))
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"the broker is unreachable: {exc}") from None

    def _queue_answer(self, node: str, session_id: str, message: list[Any]) -> None:
        """Queue an answer to ``node`` (called in done callbacks: never blocks)."""
        payload = session_payload(self.codec, self.node_id, session_id, message)
        if len(payload) > self.max_payload:
            request_id = message[2]
            text = f"the answer ({len(payload)} bytes) is over the broker's {self.max_payload}-byte bound"
            too_large = Error(0, request_id, error_data("result_too_large", text))
            payload = session_payload(self.codec, self.node_id, session_id, too_large.to_list())
        self._outbox.put((self.channel_of(node), payload))

    def _queue_gone(self, node: str, session_id: str, reason: str) -> None:
        """Queue the news that ``session_id`` is gone to ``node`` (never blocks)."""
        self._outbox.put((self.channel_of(node), gone_payload(self.codec, self.node_id, session_id, reason)))

    # -- greenlets ---------------------------------------------------------

    def _subscribe_loop(self) -> None:
        """Own the subscription: subscribe, read, probe; rebuild it with backoff when it fails."""
        delay = self.reconnect_delay
        while self._running:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.broadcast_channel, self.node_channel)
                self._read_subscription(pubsub)
            except (*REDIS_ERRORS, _ProbeLost) as exc:
                if not self._running:
                    break
                # Warn once per outage; the retries while Redis stays down are debug lines.
                report = log.warning if self.subscribed or self.stats.reconnects == 0 else log.debug
                self.subscribed = False
                self._subscribed_event.clear()
                self.stats.reconnects += 1
                report("broker subscription lost (%s); resubscribing in %.2f s", exc or type(exc).__name__, delay)
            finally:
                _close_quietly(pubsub)
            gevent.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self.max_reconnect_delay)
            if self.subscribed:
                delay = self.reconnect_delay

    def _read_subscription(self, pubsub: Any) -> None:
        """Read the subscription until it fails; probe it every ``probe_interval`` (raises _ProbeLost)."""
        seq = 0
        awaited: int | None = None
        sent_at = 0.0
        next_probe = time.monotonic()
        while self._running:
            now = time.monotonic()
            if awaited is not None and now - sent_at > self.probe_timeout:
                raise _ProbeLost(f"probe {awaited} did not come back within {self.probe_timeout} s")
            if awaited is None and now >= next_probe:
                seq += 1
                awaited, sent_at = seq, now
                self.client.publish(self.node_channel, probe_payload(self.codec, self.node_id, seq))
            wait = max(0.0, (sent_at + self.probe_timeout if awaited is not None else next_probe) - time.monotonic())
            message = pubsub.get_message(timeout=min(wait, self.probe_interval))
            if message is None or message.get("type") != "message":
                continue
            try:
                payload = decode_payload(self.codec, message["data"], self.max_payload)
            except BadPayload as exc:
                self.stats.garbage_dropped += 1
                log.warning("dropped a payload on %s: %s", text_of(message.get("channel")), exc)
                continue
            if payload.type == PROBE:
                if payload.node == self.node_id and payload.seq == awaited:
                    awaited = None
                    next_probe = time.monotonic() + self.probe_interval
                    if not self.subscribed:
                        log.info("broker subscription up (node %s)", self.node_id)
                    self.subscribed = True
                    self._subscribed_event.set()
                continue
            try:
                self._inbox.put_nowait(payload)
            except Full:
                self.stats.inbox_dropped += 1
                log.warning("broker inbox full: dropped a %r payload from node %s", payload.type, payload.node)

    def _deliver_loop(self) -> None:
        """Act on what the subscription received, in order."""
        while self._running:
            payload = self._inbox.get()
            try:
                self._deliver(payload)
            except Exception:
                log.exception("broker delivery of a %r payload from %s failed", payload.type, payload.node)

    def _deliver(self, payload: Payload) -> None:
        """Act on one payload from the subscription."""
        if payload.type == BROADCAST:
            if payload.node == self.node_id:
                return  # our own publication: delivered here already, never again
            self.stats.broadcasts_received += 1
            self._deliver_locally(payload.method, payload.data)
        elif payload.type == SESSION_MESSAGE:
            try:
                message = Message.from_list(payload.message, REMOTE_FEATURES)
            except ProtocolError as exc:
                self.stats.garbage_dropped += 1
                log.warning("dropped a session message from node %s: %s", payload.node, exc)
                return
            engine = self._remote.get(payload.session)
            if engine is not None and message.code in (3, 4):
                transport = engine.transport
                assert isinstance(transport, RemoteSessionTransport)
                transport.received(message)
            elif message.code in (1, 2, 5):
                self.stats.calls_relayed += message.code == 2
                self._relay.handle(payload.node, payload.session, message)
            else:
                log.debug("dropped a %s from node %s: nothing waits for it", type(message).__name__, payload.node)
        elif payload.type == GONE:
            engine = self._remote.get(payload.session)
            if engine is not None:
                _end_remote(engine, payload.reason or "session gone")

    def _outbox_loop(self) -> None:
        """Publish queued answers in order; log (and drop) what Redis does not take."""
        while self._running:
            channel, payload = self._outbox.get()
            try:
                self.client.publish(channel, payload)
            except REDIS_ERRORS as exc:
                log.warning("an answer to %s was lost: Redis unreachable (%s)", channel, exc)

    def _liveness_loop(self) -> None:
        """Refresh the node's liveness key every ``liveness_interval``."""
        info = self.codec.encode(
            {"node": self.node_id, "pid": os.getpid(), "host": socket.gethostname(), "started": self.started_at}
        )
        ttl_ms = int(self.liveness_ttl * 1000)
        while self._running:
            try:
                self.client.set(self.alive_key, info, px=ttl_ms)
            except REDIS_ERRORS as exc:
                log.info("liveness key not refreshed: %s", exc)
            gevent.sleep(self.liveness_interval)

    def _watch_loop(self) -> None:
        """Fail calls in flight to a node that is gone.

        A node is gone when its subscription is gone (seen twice in a row:
        the process ended and its sockets closed), or when its liveness key
        has been missing for ``liveness_ttl`` on top of its own expiry (the
        process is frozen, or its machine vanished with the sockets open,
        which Redis would only notice at its TCP keepalive). The extra
        ``liveness_ttl`` lets live nodes write their keys again after a
        Redis restart lost them.
        """
        missing: dict[str, int] = {}
        absent_since: dict[str, float] = {}
        while self._running:
            gevent.sleep(self.watch_interval)
            nodes = sorted({e.transport.node for e in self._remote.values() if e.pending_count})  # type: ignore[attr-defined]
            if not nodes:
                missing.clear()
                absent_since.clear()
                continue
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.pubsub_numsub(*(self.channel_of(n) for n in nodes))
                    for node in nodes:
                        pipe.exists(self.alive_key_of(node))
                    counts_list, *present = pipe.execute()
            except REDIS_ERRORS:
                continue  # Redis down: the calls end by their timeouts
            counts = dict(counts_list)
            now = time.monotonic()
            for node, exists in zip(nodes, present, strict=True):
                reason = None
                if int(counts.get(self.channel_of(node).encode(), 0)):
                    missing.pop(node, None)
                else:
                    missing[node] = missing.get(node, 0) + 1
                    if missing[node] >= 2:
                        reason = "its subscription is gone"
                if exists:
                    absent_since.pop(node, None)
                elif now - absent_since.setdefault(node, now) >= self.liveness_ttl:
                    reason = "its liveness key expired"
                if reason is not None:
                    missing.pop(node, None)
                    absent_since.pop(node, None)
                    log.warning("node %s is gone (%s): failing the calls in flight to its sessions", node, reason)
                    for engine in [e for e in self._remote.values() if e.transport.node == node]:  # type: ignore[attr-defined]
                        _end_remote(engine, f"node {node} is gone")

    # -- looking ------------------------------------------------------------

    def alive_key_of(self, node: str) -> str:
        """Return the liveness key of ``node`` (``{prefix}:alive:{node}``)."""
        return f"{self.prefix}:alive:{node}"

    def nodes(self) -> list[str]:
        """Return the ids of the nodes whose liveness key is present (yields; raises ConnectionLost)."""
        found = []
        try:
            for key in self.client.scan_iter(match=f"{self.prefix}:alive:*", count=500):
                found.append(text_of(key).rsplit(":", 1)[-1])
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"the broker is unreachable: {exc}") from None
        return sorted(found)

    def __repr__(self) -> str:
        return f"<RedisBroker node={self.node_id} prefix={self.prefix!r} subscribed={self.subscribed}>"


def _end_remote(engine: Engine, reason: str) -> None:
    """End a remote session's engine: its pending calls fail with ConnectionLost(reason)."""
    transport = engine.transport
    if isinstance(transport, RemoteSessionTransport) and not transport.closed:
        transport.lost(reason)


def _close_quietly(pubsub: Any) -> None:
    """Close a PubSub whose connection may already be broken."""
    try:
        pubsub.close()
    except REDIS_ERRORS as exc:
        log.debug("closing the subscription: %s", exc)
