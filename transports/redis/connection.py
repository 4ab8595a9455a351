"""Redis connections on gevent sockets, without monkey-patching.

redis-py's connection classes open their sockets with the standard
``socket`` module, which blocks the whole hub under gevent unless the
process is monkey-patched. The two classes here open a
:mod:`gevent.socket` instead, so every read and write yields; they use
redis-py's pure-Python RESP parser (hiredis's read would block the hub)
and no retry with ``time.sleep`` (the broker retries itself, with
``gevent.sleep``). :func:`redis_client` builds a ``redis.Redis`` on them
from a ``redis://`` or ``unix://`` URL or a socket path (no ``rediss://``: no TLS to Redis yet).
"""

from __future__ import annotations

import socket as _stdlib_socket
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from gevent import socket as gsocket
from redis._parsers import _RESP2Parser
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["REDIS_ERRORS", "GeventConnection", "GeventUnixConnection", "connection_options", "redis_client", "text_of"]

#: Errors that mean "Redis cannot be reached right now".
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
#: Seconds a connection attempt may take.
DEFAULT_CONNECT_TIMEOUT = 2.0
#: Seconds a command may wait for its answer (a subscriber reads with its own, shorter waits).
DEFAULT_SOCKET_TIMEOUT = 5.0


def _no_retry() -> Retry:
    """A Retry that never retries, so redis-py never calls ``time.sleep``."""
    return Retry(NoBackoff(), 0)


class GeventConnection(redis.Connection):
    """A redis-py TCP connection whose socket is a gevent socket (reads and writes yield to the hub)."""

    def _connect(self) -> Any:
        """Open the socket; raises OSError (or socket.timeout) as redis-py expects."""
        sock = gsocket.create_connection((self.host, self.port), timeout=self.socket_connect_timeout)
        sock.setsockopt(_stdlib_socket.IPPROTO_TCP, _stdlib_socket.TCP_NODELAY, 1)
        if self.socket_keepalive:
            sock.setsockopt(_stdlib_socket.SOL_SOCKET, _stdlib_socket.SO_KEEPALIVE, 1)
        sock.settimeout(self.socket_timeout)
        return sock


class GeventUnixConnection(redis.UnixDomainSocketConnection):
    """A redis-py Unix-socket connection whose socket is a gevent socket."""

    def _connect(self) -> Any:
        """Open the socket; raises OSError as redis-py expects."""
        sock = gsocket.socket(_stdlib_socket.AF_UNIX, _stdlib_socket.SOCK_STREAM)
        sock.settimeout(self.socket_connect_timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.socket_timeout)
        return sock


def connection_options(url: str) -> dict[str, Any]:
    """Return ``ConnectionPool`` keywords for ``url`` on the gevent connection classes.

    ``url`` is ``redis://[user:password@]host[:port][/db]``, ``unix:///path?db=N``
    or a bare socket path (``/run/redis.sock``). Raises ValueError for any
    other scheme (``rediss://`` TLS is not offered by these classes).
    """
    if url.startswith("/"):
        url = "unix://" + url
    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    options: dict[str, Any] = {
        "parser_class": _RESP2Parser,
        "protocol": 2,  # (the parser's protocol: redis-py 8 would otherwise negotiate RESP3 with HELLO 3)
        "retry": _no_retry(),
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
    }
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"a unix:// Redis URL needs a socket path: {url!r}")
        options["connection_class"] = GeventUnixConnection
        options["path"] = unquote(parts.path)
        options["db"] = int(query.get("db", "0"))
    elif parts.scheme == "redis":
        options["connection_class"] = GeventConnection
        options["host"] = parts.hostname or "localhost"
        options["port"] = parts.port or 6379
        path = parts.path.strip("/")
        options["db"] = int(path or query.get("db", "0"))
    else:
        raise ValueError(f"not a Redis URL (redis:// or unix:// or a socket path): {url!r}")
    return options


def redis_client(url: str, **overrides: Any) -> redis.Redis:
    """Return a ``redis.Redis`` for ``url`` whose connections are gevent sockets (see :func:`connection_options`).

    Does not connect yet (the first command does, yielding). ``overrides``
    replace pool keywords (``socket_timeout=...``, ``max_connections=...``).
    """
    options = connection_options(url)
    options.update(overrides)
    pool = redis.ConnectionPool(**options)
    return redis.Redis(connection_pool=pool)


def text_of(value: Any) -> str:
    """Return a key, id or name from Redis (bytes) as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
