"""The Redis broker on the command line: ``serve --broker URL [--queue NAME]`` and ``call --broker URL queue:NAME``.

``serve ... --broker URL`` makes the process one node of a service
(:class:`transports.redis.RedisBroker`): every server it starts takes the
broker, so a broadcast made on any node reaches the clients of every node,
and a call to a session id reaches that client on whichever node holds it.
``--queue NAME`` also runs a :class:`~transports.redis.QueueWorker` for the
served handler: the node takes its share of the calls sent to the work
queue ``NAME``. ``call --broker URL queue:NAME METHOD`` (and ``notify``)
sends through :func:`~transports.redis.connect_queue`; ``--timeout`` travels
with the call as its deadline.

The broker URL is ``redis://HOST:PORT/DB``, ``unix:///PATH.sock`` (``?db=N``)
or a bare socket path. Redis is checked with a PING before anything
starts, so an unreachable broker is one line, exit 4, rather than a node
that retries in the background. The broker needs redis-py (the
``rpcengine[redis]`` extra); without it the command says so (exit 2).

>>> queue_name("queue:work")
'work'
>>> queue_name("tcp://127.0.0.1:7000") is None
True
>>> display_url("redis://me:secret@10.0.0.5:6379/0")
'redis://me:***@10.0.0.5:6379/0'
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gevent

from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.engine import Engine, RpcHandler

__all__ = [
    "DEFAULT_PREFIX",
    "QUEUE_SCHEME",
    "SUBSCRIBE_WAIT",
    "broker_client",
    "check_queue_name",
    "check_reachable",
    "describe_redis_error",
    "display_url",
    "load_redis_transport",
    "open_queue",
    "queue_name",
    "start_broker",
    "start_workers",
]

log = logging.getLogger(__name__)

#: What starts a client's URL that names a work queue: ``queue:NAME``.
QUEUE_SCHEME = "queue:"
#: The default ``--broker-prefix``: the start of every key and channel the broker uses.
DEFAULT_PREFIX = "rpcengine"
#: Seconds ``serve`` waits for the broker's subscription before it prints the node line anyway.
SUBSCRIBE_WAIT = 5.0
#: Seconds the PING that checks the broker may take.
PING_TIMEOUT = 5.0

_CONNECT_ERROR = re.compile(r"^Error -?\d+ connecting to .*?\. (.+?)\.?$")


def load_redis_transport() -> ModuleType:
    """Return :mod:`transports.redis`; raise CliError (exit 2) if redis-py is missing."""
    try:
        import transports.redis as module
    except ImportError as exc:
        raise CliError(
            f"the broker needs redis-py ({exc}); install it: pip install 'rpcengine[redis]'", ExitCode.USAGE
        ) from None
    return module


def display_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for output and logs)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def queue_name(text: str) -> str | None:
    """Return NAME for a ``queue:NAME`` URL, None for any other URL; raise CliError (exit 2) for a bad name."""
    if not text.startswith(QUEUE_SCHEME):
        return None
    name = text[len(QUEUE_SCHEME) :]
    check_queue_name(name, text)
    return name


def check_queue_name(name: str, given: str | None = None) -> str:
    """Return ``name`` if it can name a queue (not empty, no whitespace); raise CliError (exit 2) otherwise."""
    if not name or any(char.isspace() for char in name) or name.startswith("/"):
        raise CliError(
            f"bad queue name {given or name!r}: write queue:NAME, a NAME without spaces (as in queue:work)",
            ExitCode.USAGE,
        )
    return name


def describe_redis_error(exc: BaseException) -> str:
    """Return why Redis could not be used, in a few words (``Connection refused``, ``No such file or directory``)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    match = _CONNECT_ERROR.match(text)
    return match.group(1) if match else text.rstrip(".")


def check_reachable(client: Any, url: str, timeout: float = PING_TIMEOUT) -> None:
    """PING the Redis of ``client`` (yields, at most ``timeout`` s); raise CliError (exit 4) if it does not answer."""
    import redis

    try:
        with gevent.Timeout(timeout):
            client.ping()
    except gevent.Timeout:
        reason = f"no answer within {timeout:g} s"
    except (redis.RedisError, OSError) as exc:
        reason = describe_redis_error(exc)
    else:
        return
    raise CliError(
        f"cannot reach the broker at {display_url(url)}: {reason} (is redis-server running there?)", ExitCode.CONNECTION
    )


def broker_client(url: str) -> Any:
    """Return a gevent ``redis.Redis`` for ``url`` (connects on first use); raise CliError (exit 2) for a bad URL."""
    redis_transport = load_redis_transport()
    try:
        return redis_transport.redis_client(url, max_connections=64)
    except ValueError as exc:
        raise CliError(f"bad broker URL {display_url(url)!r}: {exc}", ExitCode.USAGE) from None


def start_broker(url: str, prefix: str = DEFAULT_PREFIX) -> Any:
    """Make, check (PING) and start a :class:`~transports.redis.RedisBroker`; return it (yields).

    Raises CliError: exit 2 for a bad URL or prefix, or without redis-py;
    exit 4 if Redis does not answer. The subscription comes up in the
    background (:meth:`~transports.redis.RedisBroker.wait_subscribed`).
    """
    redis_transport = load_redis_transport()
    broker_client(url).close()  # the URL's own error first (nothing connects yet)
    try:
        broker = redis_transport.RedisBroker(url, prefix)
    except ValueError as exc:
        raise CliError(f"bad --broker-prefix {prefix!r}: {exc}", ExitCode.USAGE) from None
    check_reachable(broker.client, url)
    return broker.start()


def start_workers(broker: Any, names: Sequence[str], rpc_handler: RpcHandler, concurrency: int) -> list[Any]:
    """Start one :class:`~transports.redis.QueueWorker` per queue name for ``rpc_handler``; return them (yields).

    Raises CliError (exit 4) if Redis stops answering meanwhile; the workers
    started already are stopped first.
    """
    from rpcengine.errors import ConnectionLost

    redis_transport = load_redis_transport()
    workers: list[Any] = []
    try:
        for name in dict.fromkeys(names):  # a name given twice is one worker
            check_queue_name(name)
            worker = redis_transport.QueueWorker(broker, name, rpc_handler, concurrency=concurrency)
            try:
                worker.start()
            except ConnectionLost as exc:
                raise CliError(f"cannot serve queue {name!r}: {exc}", ExitCode.CONNECTION) from None
            workers.append(worker)
    except BaseException:
        for worker in workers:
            worker.stop(0)
        raise
    return workers


def open_queue(args: argparse.Namespace) -> tuple[Engine, str]:
    """Return an Engine whose calls go to the queue ``args.url`` names (``queue:NAME``) through ``args.broker``.

    Checks Redis with a PING first (bounded by ``args.timeout``). Raises
    CliError: exit 2 if the URL is not ``queue:NAME``, if ``--broker`` is
    missing or ``--jsonrpc`` is given; exit 4 if Redis does not answer.
    Returns the engine and the queue's name.
    """
    name = queue_name(args.url)
    broker_url = getattr(args, "broker", None)
    if broker_url is None:
        raise CliError(
            f"{args.url} is a work queue: give the Redis its workers read with --broker URL "
            "(as in --broker redis://127.0.0.1:6379/0)",
            ExitCode.USAGE,
        )
    if name is None:
        raise CliError(
            f"with --broker the URL names a work queue, queue:NAME (one 'serve --broker URL --queue NAME' "
            f"serves); got {args.url!r}",
            ExitCode.USAGE,
        )
    if getattr(args, "jsonrpc", False):
        raise CliError("--jsonrpc does not go with a work queue (queue:NAME)", ExitCode.USAGE)
    redis_transport = load_redis_transport()
    client = broker_client(broker_url)
    check_reachable(client, broker_url, min(args.timeout, PING_TIMEOUT))
    prefix = getattr(args, "broker_prefix", None) or DEFAULT_PREFIX
    engine: Engine = redis_transport.connect_queue(client, name, prefix=prefix)
    log.debug("sending to queue %s through %s (prefix %s)", name, display_url(broker_url), prefix)
    return engine, name
