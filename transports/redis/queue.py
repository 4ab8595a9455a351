"""A load-balanced work queue on Redis Streams: callers' Engines on one side, workers on the other.

* :func:`connect_queue` returns an Engine whose transport is a named queue:
  each Request (or Notification) is one entry of the stream
  ``{prefix}:queue:{name}``, with the caller's reply stream and, when the
  call has a timeout, its absolute deadline. Answers come back on the
  caller's own stream ``{prefix}:reply:{client}``.
* :class:`QueueWorker` reads the queue in the consumer group ``workers``
  (each entry goes to one worker), runs it with an rpc handler, and
  acknowledges it in the same transaction that sends the answer. So the
  delivery is **at least once**: a worker that dies between running an
  entry and answering it leaves it pending, and another worker claims it
  after ``claim_idle`` seconds and runs it again (idempotency is the
  caller's concern). Entries past their deadline are answered
  ``deadline_exceeded`` without running; entries delivered
  ``max_deliveries`` times go to the dead-letter stream
  ``{prefix}:queue:{name}:dead`` (their caller is answered ``dead_letter``).

Notifications are acknowledged when taken (at most once). Every Redis
socket is a gevent socket; nothing blocks the hub.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import gevent
import gevent.event
import redis

from rpcengine.codec import Codec, default_codec
from rpcengine.engine import DEFAULT_MAX_PENDING, Engine, RpcHandler
from rpcengine.errors import ConnectionLost, EncodeError, MethodNotFound, ProtocolError
from rpcengine.features import DEADLINE
from rpcengine.messages import Error, Message, Notification, Request, Response
from rpcengine.wire import error_data
from transports.base import Transport
from transports.redis.connection import REDIS_ERRORS, redis_client, text_of

__all__ = ["GROUP", "QueueClientTransport", "QueueStats", "QueueWorker", "connect_queue", "queue_key"]

log = logging.getLogger(__name__)

#: The consumer group every worker of a queue reads in.
GROUP = "workers"
#: Bound on each stream's length (approximate trimming): the queue, a reply stream, the dead letters.
DEFAULT_MAX_QUEUE = 1_000_000
_MAX_REPLIES = 100_000
_MAX_DEAD = 100_000
#: Seconds a reply stream lives after its last answer (a caller that is gone leaves nothing for long).
REPLY_TTL = 300


#: What a queue's stream key ends with to name its dead letters.
DEAD_SUFFIX = ":dead"


def queue_key(prefix: str, name: str) -> str:
    """Return the stream key of queue ``name``.

    Raises ValueError for an empty name and for one ending in ``:dead``,
    which would share a stream with another queue's dead letters.
    """
    if not name or name.endswith(DEAD_SUFFIX):
        raise ValueError(f"a queue name must be non-empty and must not end in {DEAD_SUFFIX!r}: {name!r}")
    return f"{prefix}:queue:{name}"


def _client_of(target: Any) -> tuple[redis.Redis, str]:
    """Return (a gevent redis client, its prefix) for a URL, a RedisBroker or a redis client."""
    if isinstance(target, str):
        return redis_client(target, max_connections=256), ""
    if isinstance(target, redis.Redis):
        return target, ""  # not getattr(target, "client"): that is redis.Redis.client(), a method
    client = getattr(target, "client", target)
    return client, getattr(target, "prefix", "")


class QueueClientTransport(Transport):
    """The caller's side of a queue: Requests become stream entries, answers come from a reply stream.

    Takes the ``deadline`` feature: a call's timeout travels as its absolute
    deadline (wall clock, milliseconds), so a worker does not run what its
    caller stopped waiting for. Cancel is not carried: an entry taken by a
    worker runs (its answer is then dropped as unknown).
    """

    features = frozenset({DEADLINE})

    def __init__(
        self, client: redis.Redis, prefix: str, queue: str, codec: Codec, *, max_queue: int = DEFAULT_MAX_QUEUE
    ) -> None:
        super().__init__()
        self.client = client
        self.codec = codec
        self.queue = queue_key(prefix, queue)
        self.max_queue = max_queue
        self.client_id = secrets.token_hex(8)
        self.reply_key = f"{prefix}:reply:{self.client_id}"
        self._reader: gevent.Greenlet | None = None

    def start(self) -> None:
        """Start reading the reply stream (on a greenlet)."""
        self._reader = gevent.spawn(self._read_replies)
        self._reader.name = "rpcengine-queue-replies"

    def send(self, message: Message, **kwargs: Any) -> None:
        """Add a Request or Notification to the queue (yields); raise ConnectionLost if Redis cannot be reached."""
        self.check_open()
        fields: dict[Any, Any]
        if isinstance(message, Request):
            body = Request(message.message_id, message.method, message.data).to_list()  # the deadline goes in "d"
            fields = {"m": self.codec.encode(body), "r": self.reply_key}
            if message.timeout_ms is not None:
                fields["d"] = str(int(time.time() * 1000) + message.timeout_ms)
        elif isinstance(message, Notification):
            fields = {"m": self.codec.encode(message.to_list())}
        else:
            log.debug("queue transport: %s not carried", type(message).__name__)
            return
        try:
            self.client.xadd(self.queue, fields, maxlen=self.max_queue, approximate=True)
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"the queue's Redis is unreachable: {exc}") from None

    def _read_replies(self) -> None:
        """Read answers from the reply stream and hand them to the engine; retry while Redis is down."""
        last = "0-0"
        delay = 0.05
        while not self.closed:
            try:
                found: Any = self.client.xread({self.reply_key: last}, count=500, block=1000)
                delay = 0.05
            except REDIS_ERRORS as exc:
                log.warning("queue replies: Redis unreachable (%s); retrying in %.2f s", exc, delay)
                gevent.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            for _key, entries in found or ():
                ids = []
                for entry_id, fields in entries:
                    last = entry_id
                    ids.append(entry_id)
                    self._take_reply(fields)
                try:
                    self.client.xdel(self.reply_key, *ids)
                except REDIS_ERRORS as exc:
                    log.info("queue replies not trimmed: %s", exc)

    def _take_reply(self, fields: dict[bytes, bytes]) -> None:
        """Hand one answer to the engine; drop (and log) one that is not an answer."""
        try:
            message = Message.from_list(self.codec.decode(fields[b"m"]))
        except (KeyError, ProtocolError, ValueError) as exc:
            log.warning("dropped a reply on %s: %s", self.reply_key, exc)
            return
        if not isinstance(message, Response | Error):
            log.warning("dropped a %s on reply stream %s", type(message).__name__, self.reply_key)
            return
        self.deliver(message)

    def close(self) -> None:
        """Stop reading answers and remove the reply stream; pending calls fail with ConnectionLost."""
        if self.closed:
            return
        self.lost("queue client closed")
        if self._reader is not None:
            self._reader.kill(block=False)
        try:
            self.client.delete(self.reply_key)
        except REDIS_ERRORS as exc:
            log.info("reply stream %s not removed: %s", self.reply_key, exc)

    def __repr__(self) -> str:
        return f"<QueueClientTransport {self.queue} closed={self.closed}>"


def connect_queue(
    target: Any,
    queue: str,
    *,
    prefix: str | None = None,
    default_timeout: float | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
    max_queue: int = DEFAULT_MAX_QUEUE,
) -> Engine:
    """Return an Engine whose calls go to the workers of ``queue`` (does not block).

    ``target`` is a Redis URL (``redis://``, ``unix://`` or a socket path), a
    :class:`~transports.redis.RedisBroker` (its connections and prefix), or
    a ``redis.Redis``. ``prefix`` defaults to the broker's, else
    ``"rpcengine"``. Calls with a timeout carry their deadline; a worker
    answers ``deadline_exceeded`` (RequestTimeout here) instead of running
    one that is late. ``engine.close()`` stops reading answers.
    """
    client, own_prefix = _client_of(target)
    prefix = prefix or own_prefix or "rpcengine"
    transport = QueueClientTransport(client, prefix, queue, default_codec(), max_queue=max_queue)
    engine = Engine(transport, _no_calls, default_timeout=default_timeout, max_pending=max_pending)
    transport.start()
    return engine


def _no_calls(request: Request | Notification) -> Any:
    """A queue's caller takes no calls."""
    raise MethodNotFound(request.method)


class QueueStats:
    """Counters of one worker (plain ints)."""

    def __init__(self) -> None:
        self.taken = 0
        self.answered = 0
        self.claimed = 0
        self.expired = 0
        self.dead_lettered = 0
        self.answer_failures = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a dict."""
        return dict(vars(self))


class _WorkerTransport(Transport):
    """The worker Engine's transport: numbers taken entries, turns answers into replies and acks."""

    features = frozenset({DEADLINE})

    def __init__(self, worker: QueueWorker) -> None:
        super().__init__()
        self.worker = worker

    def send(self, message: Message, **kwargs: Any) -> None:
        """Send an answer to its caller and acknowledge the entry, in one transaction (yields)."""
        if isinstance(message, Response | Error):
            self.worker._answer(message)
        else:
            log.debug("queue worker: %s not carried", type(message).__name__)

    def close(self) -> None:
        """End the worker's engine."""
        if not self.closed:
            self.lost("queue worker stopped")


class QueueWorker:
    """One worker of a queue: takes entries in the consumer group, runs them with ``rpc_handler``, answers.

    ``target``: a Redis URL, a RedisBroker or a redis client (as for
    :func:`connect_queue`). ``consumer`` names this worker in the group
    (default: a random name). ``concurrency``: entries run at once (and
    the most this worker holds unanswered). ``claim_idle``: seconds an entry
    may stay unanswered with another worker before this one claims it
    (checked every ``claim_interval``, default a fifth of it).
    ``max_deliveries``: deliveries after which an entry goes to the
    dead-letter stream instead of running again. ``block``: seconds one read
    waits for entries.
    """

    def __init__(
        self,
        target: Any,
        queue: str,
        rpc_handler: RpcHandler,
        *,
        prefix: str | None = None,
        consumer: str | None = None,
        concurrency: int = 16,
        claim_idle: float = 30.0,
        claim_interval: float | None = None,
        max_deliveries: int = 5,
        block: float = 1.0,
    ) -> None:
        if concurrency < 1 or max_deliveries < 1 or claim_idle <= 0:
            raise ValueError("concurrency and max_deliveries must be at least 1, claim_idle positive")
        self.client, own_prefix = _client_of(target)
        self.prefix = prefix or own_prefix or "rpcengine"
        self.queue = queue_key(self.prefix, queue)
        self.dead_key = self.queue + DEAD_SUFFIX
        self.consumer = consumer or f"worker-{secrets.token_hex(4)}"
        self.concurrency = concurrency
        self.claim_idle = claim_idle
        self.claim_interval = claim_interval if claim_interval is not None else claim_idle / 5
        self.max_deliveries = max_deliveries
        self.block = block
        self.codec = default_codec()
        self.stats = QueueStats()
        self.transport = _WorkerTransport(self)
        self.engine = Engine(self.transport, rpc_handler, max_concurrency=concurrency)
        self._in_flight: dict[int, tuple[str, str, int]] = {}
        self._room = gevent.event.Event()
        self._room.set()
        self._next_id = 0
        self._running = False
        self._greenlets: list[gevent.Greenlet] = []

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> QueueWorker:
        """Create the group if needed (yields; raises ConnectionLost if Redis is down) and start taking entries."""
        try:
            self.client.xgroup_create(self.queue, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except REDIS_ERRORS as exc:
            raise ConnectionLost(f"the queue's Redis is unreachable: {exc}") from None
        self._running = True
        for target in (self._read_loop, self._claim_loop):
            greenlet = gevent.spawn(target)
            greenlet.name = f"rpcengine-queue-{target.__name__.strip('_')}"
            self._greenlets.append(greenlet)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking entries, let running ones finish (up to ``timeout``), then end (yields).

        Entries still unanswered stay pending in the group: another worker claims them.
        """
        if not self._running:
            return
        self._running = False
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self.engine.join_handlers(timeout)
        gevent.killall(self._greenlets, timeout=2.0)
        self._greenlets.clear()
        self.engine.close()

    def __enter__(self) -> QueueWorker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def in_flight(self) -> int:
        """Entries taken and not yet answered."""
        return len(self._in_flight)

    # -- taking -------------------------------------------------------------

    def _free(self) -> int:
        """How many more entries this worker may take now."""
        return self.concurrency - len(self._in_flight)

    def _read_loop(self) -> None:
        """Take new entries as room allows; retry with backoff while Redis is down."""
        delay = 0.05
        while self._running:
            if self._free() <= 0:
                self._room.clear()
                self._room.wait(1.0)
                continue
            try:
                found: Any = self.client.xreadgroup(
                    GROUP, self.consumer, {self.queue: ">"}, count=self._free(), block=int(self.block * 1000)
                )
                delay = 0.05
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream was deleted: make it again
                    log.warning("queue %s lost its group: recreating it", self.queue)
                    self._recreate_group()
                    continue
                raise
            except REDIS_ERRORS as exc:
                log.warning("queue %s: Redis unreachable (%s); retrying in %.2f s", self.queue, exc, delay)
                gevent.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            for _key, entries in found or ():
                for entry_id, fields in entries:
                    self._take(text_of(entry_id), fields, 1)

    def _recreate_group(self) -> None:
        """Create the group again (after the stream was deleted)."""
        try:
            self.client.xgroup_create(self.queue, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                log.warning("queue %s: group not recreated: %s", self.queue, exc)
        except REDIS_ERRORS as exc:
            log.warning("queue %s: group not recreated: %s", self.queue, exc)
            gevent.sleep(0.5)

    def _claim_loop(self) -> None:
        """Claim entries other workers left unanswered for ``claim_idle``; dead-letter the over-delivered."""
        idle_ms = int(self.claim_idle * 1000)
        while self._running:
            gevent.sleep(self.claim_interval)
            room = self._free()
            if room <= 0:
                continue
            try:
                pending: Any = self.client.xpending_range(self.queue, GROUP, "-", "+", room, idle=idle_ms)
            except REDIS_ERRORS as exc:
                log.info("queue %s: pending entries not checked: %s", self.queue, exc)
                continue
            except redis.ResponseError as exc:
                log.info("queue %s: pending entries not checked: %s", self.queue, exc)
                continue
            for item in pending:
                entry_id = text_of(item["message_id"])
                deliveries = int(item["times_delivered"])
                try:
                    claimed: Any = self.client.xclaim(self.queue, GROUP, self.consumer, idle_ms, [entry_id])
                except (*REDIS_ERRORS, redis.ResponseError) as exc:
                    log.info("queue %s: entry %s not claimed: %s", self.queue, entry_id, exc)
                    continue
                for claimed_id, fields in claimed:
                    if fields is None:  # deleted from the stream meanwhile
                        self.client.xack(self.queue, GROUP, claimed_id)
                        continue
                    self.stats.claimed += 1
                    log.info("queue %s: claimed entry %s (delivery %d)", self.queue, entry_id, deliveries + 1)
                    self._take(text_of(claimed_id), fields, deliveries + 1)

    def _take(self, entry_id: str, fields: dict[bytes, bytes], deliveries: int) -> None:
        """Run one entry (blocks, yielding, while every handler slot is busy)."""
        self.stats.taken += 1
        try:
            body = self.codec.decode(fields[b"m"])
            message = Message.from_list(body)
            reply_key = text_of(fields[b"r"]) if b"r" in fields else ""
            deadline = int(fields[b"d"]) if b"d" in fields else None
        except (KeyError, ProtocolError, ValueError) as exc:
            self._dead_letter(entry_id, fields, deliveries, f"invalid entry: {exc}", "", None)
            return
        if isinstance(message, Notification):
            self._ack(entry_id)
            self.engine.handle_message(message)
            return
        if not isinstance(message, Request) or not reply_key:
            self._dead_letter(entry_id, fields, deliveries, "not a request with a reply stream", reply_key, None)
            return
        if deliveries > self.max_deliveries:
            self._dead_letter(
                entry_id, fields, deliveries, f"delivered {deliveries} times", reply_key, message.message_id
            )
            return
        if deadline is not None:
            remaining = deadline - int(time.time() * 1000)
            if remaining <= 0:
                self.stats.expired += 1
                late = Error(0, message.message_id, error_data("deadline_exceeded", "the caller's deadline passed"))
                self._send_reply(entry_id, reply_key, late.to_list())
                return
            request = Request(self._number(), message.method, message.data)
            request.timeout_ms = remaining
            # Parsed as the wire would give it, so the engine interrupts the handler at the caller's deadline.
            request = Request.from_list(request.to_list(), self.transport.features)
        else:
            request = Request(self._number(), message.method, message.data)
        self._in_flight[request.message_id] = (entry_id, reply_key, message.message_id)
        self.engine.handle_message(request)

    def _number(self) -> int:
        """Return a fresh local id for a taken entry (callers' ids may collide)."""
        self._next_id += 1
        return self._next_id

    # -- answering ------------------------------------------------------------

    def _answer(self, message: Response | Error) -> None:
        """Reply to the caller of the entry ``message`` answers, and acknowledge it (yields)."""
        taken = self._in_flight.pop(message.request_message_id, None)
        if taken is None:
            log.debug("queue worker: answer to unknown id %d dropped", message.request_message_id)
            return
        entry_id, reply_key, caller_id = taken
        self._send_reply(entry_id, reply_key, type(message)(0, caller_id, message.data).to_list())
        self._room.set()

    def _send_reply(self, entry_id: str, reply_key: str, answer: list[Any]) -> None:
        """XADD the answer to the caller's stream and XACK the entry, atomically (MULTI/EXEC)."""
        try:
            encoded = self.codec.encode(answer)
        except EncodeError as exc:
            encoded = self.codec.encode(Error(0, answer[2], error_data("unencodable_result", str(exc))).to_list())
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.xadd(reply_key, {"m": encoded}, maxlen=_MAX_REPLIES, approximate=True)
            pipe.expire(reply_key, REPLY_TTL)
            pipe.xack(self.queue, GROUP, entry_id)
            pipe.execute()
            self.stats.answered += 1
        except (*REDIS_ERRORS, redis.ResponseError) as exc:
            # Unacknowledged, the entry stays pending: another worker claims it (at least once).
            self.stats.answer_failures += 1
            log.warning("queue %s: answer to %s not sent (%s); it will be claimed again", self.queue, entry_id, exc)

    def _ack(self, entry_id: str) -> None:
        """Acknowledge an entry that needs no answer."""
        try:
            self.client.xack(self.queue, GROUP, entry_id)
        except REDIS_ERRORS as exc:
            log.warning("queue %s: entry %s not acknowledged: %s", self.queue, entry_id, exc)

    def _dead_letter(
        self,
        entry_id: str,
        fields: dict[bytes, bytes],
        deliveries: int,
        reason: str,
        reply_key: str,
        caller_id: int | None,
    ) -> None:
        """Move an entry to the dead-letter stream (with why), acknowledge it, tell its caller."""
        self.stats.dead_lettered += 1
        log.warning("queue %s: entry %s dead-lettered: %s", self.queue, entry_id, reason)
        record: dict[Any, Any] = {key: value for key, value in fields.items() if isinstance(key, bytes)}
        record[b"entry"] = entry_id.encode()
        record[b"reason"] = reason.encode()
        record[b"deliveries"] = str(deliveries).encode()
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.xadd(self.dead_key, record, maxlen=_MAX_DEAD, approximate=True)
            pipe.xack(self.queue, GROUP, entry_id)
            if reply_key and caller_id is not None:
                answer = self.codec.encode(Error(0, caller_id, error_data("dead_letter", reason)).to_list())
                pipe.xadd(reply_key, {"m": answer}, maxlen=_MAX_REPLIES, approximate=True)
                pipe.expire(reply_key, REPLY_TTL)
            pipe.execute()
        except (*REDIS_ERRORS, redis.ResponseError) as exc:
            log.warning("queue %s: entry %s not dead-lettered: %s", self.queue, entry_id, exc)
