"""Find out what a port speaks, to explain a failed connection: rpcengine over TCP, HTTP, or TLS.

When ``call tcp://...`` meets a WebSocket port, or ``tls://`` a plain one,
the transport sees only a handshake that went wrong. These probes open a
fresh connection of their own, each bounded by a short timeout, and look
at the first answer: :func:`speaks_rpcengine` sends the session handshake,
:func:`http_answer` a ``GET`` request, :func:`speaks_tls` a TLS hello.
Each blocks (yields) at most ``timeout`` seconds and raises nothing: a
probe that learns nothing returns a negative answer.

A :class:`~transports.websocket.WebSocketServer` answers a path it does not
serve with 404 and the paths it does serve, which :func:`served_paths`
reads back.
"""

from __future__ import annotations

import json
import re
import ssl
from dataclasses import dataclass

import gevent
import gevent.socket

from transports.session.handshake import client_hello
from transports.tls import wrap_socket

__all__ = ["HttpAnswer", "accepts_connections", "http_answer", "served_paths", "speaks_rpcengine", "speaks_tls"]

_READ_LIMIT = 16384
_SERVED = re.compile(r"WebSocket paths served: ([^\r\n]*)")


@dataclass(frozen=True)
class HttpAnswer:
    """The status code and body (as text, at most 16 KiB) of an HTTP answer."""

    status: int
    body: str


def _open(host: str, port: int, timeout: float, tls: bool) -> gevent.socket.socket:
    """Connect (and do a TLS handshake without verification if ``tls``); raise OSError."""
    sock = gevent.socket.create_connection((host, port), timeout=timeout)
    if not tls:
        return sock
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return wrap_socket(context, sock, server_side=False, server_hostname=host, timeout=timeout)


def _read(sock: gevent.socket.socket, until: bytes | None) -> bytes:
    """Read until EOF, ``until`` or the read limit; return what came (the socket's timeout applies)."""
    data = b""
    while len(data) < _READ_LIMIT:
        try:
            chunk = sock.recv(_READ_LIMIT - len(data))
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if until is not None and until in data:
            break
    return data


def accepts_connections(host: str, port: int, timeout: float) -> bool:
    """Return whether a TCP connection to ``host:port`` opens within ``timeout``."""
    try:
        with gevent.Timeout(timeout, False):  # type: ignore[arg-type]  # False: silent
            gevent.socket.create_connection((host, port), timeout=timeout).close()
            return True
    except OSError:
        pass
    return False


def http_answer(host: str, port: int, path: str, timeout: float, *, tls: bool = False) -> HttpAnswer | None:
    """Send ``GET path`` (no upgrade) and return the HTTP answer, or None if the port does not answer HTTP."""
    data = b""
    try:
        with gevent.Timeout(timeout, False):  # type: ignore[arg-type]
            sock = _open(host, port, timeout, tls)
            try:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
                data = _read(sock, None)
            finally:
                sock.close()
    except (OSError, ValueError):
        pass
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    if match is None:
        return None
    body = data.partition(b"\r\n\r\n")[2]
    return HttpAnswer(int(match.group(1)), body.decode("utf-8", "replace"))


def served_paths(answer: HttpAnswer | None) -> list[str]:
    """Return the WebSocket paths an rpcengine server's 404 answer lists (empty if it lists none)."""
    if answer is None:
        return []
    match = _SERVED.search(answer.body)
    if match is None:
        return []
    return [path for path in (part.strip() for part in match.group(1).split(",")) if path.startswith("/")]


def speaks_rpcengine(host: str, port: int, timeout: float, *, tls: bool = False) -> bool:
    """Return whether the port answers the session handshake as an rpcengine TCP server does."""
    line = b""
    try:
        with gevent.Timeout(timeout, False):  # type: ignore[arg-type]
            sock = _open(host, port, timeout, tls)
            try:
                sock.sendall(json.dumps(client_hello(None, 0)).encode() + b"\n")
                line = _read(sock, b"\n").partition(b"\n")[0]
            finally:
                sock.close()
    except (OSError, ValueError):
        return False
    try:
        answer = json.loads(line)
    except ValueError:
        return False
    return isinstance(answer, dict) and "rpcengine" in answer


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Return whether the port completes a TLS handshake (the certificate is not checked)."""
    try:
        with gevent.Timeout(timeout, False):  # type: ignore[arg-type]
            _open(host, port, timeout, True).close()
            return True
    except (OSError, ValueError):
        pass
    return False
