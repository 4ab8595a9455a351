"""One-line explanations of a failed connection that name the likely cause.

:func:`explain` turns what went wrong while connecting into the message
``rpcengine`` prints (exit code 4). For the failures a wrong URL causes
it asks the port what it speaks (see :mod:`rpcengine.cli.probe`)::

    tcp://127.0.0.1:8000: this port speaks HTTP/WebSocket; try ws://127.0.0.1:8000/rpc
    ws://127.0.0.1:8000/: no WebSocket at path / (HTTP 404); the server serves /rpc: try ws://127.0.0.1:8000/rpc
    tls://127.0.0.1:7000: this port does not speak TLS; try tcp://127.0.0.1:7000
    no answer from tcp://127.0.0.1:7000 within 2 s: the port accepts connections, but nothing answered
    cannot connect to tcp://127.0.0.1:7000: Connection refused (nothing listens there)
"""

from __future__ import annotations

import ssl

from rpcengine.cli import probe
from rpcengine.cli.urls import Endpoint, format_url
from rpcengine.errors import HandshakeError

__all__ = ["PROBE_TIMEOUT", "NoAnswer", "describe_os_error", "explain"]

#: Longest a single probe may take, in seconds.
PROBE_TIMEOUT = 2.0

#: OpenSSL reasons that mean the peer's answer was not TLS at all.
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}


class NoAnswer(Exception):
    """The server accepted nothing or answered nothing within the command's ``--timeout``."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"no answer within {timeout:g} s")
        self.timeout = timeout


def describe_os_error(exc: BaseException) -> str:
    """Return the readable part of an OSError (``Connection refused`` rather than ``[Errno 111] ...``)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    strerror = getattr(exc, "strerror", None)
    return strerror if isinstance(strerror, str) and strerror else str(exc) or type(exc).__name__


def _ws_url(endpoint: Endpoint, scheme: str, paths: list[str]) -> str:
    """Return the WebSocket URL to suggest: the first path served, else a PATH placeholder."""
    return format_url(scheme, endpoint.host, endpoint.port, paths[0] if paths else "/PATH")


def _what_it_speaks(endpoint: Endpoint, budget: float) -> str | None:
    """Return a hint naming the URL the port would accept instead of ``endpoint``'s, or None (a socket: None)."""
    if endpoint.unix:
        return None
    host, port = endpoint.host, endpoint.port
    tcp_url, tls_url = format_url("tcp", host, port), format_url("tls", host, port)
    if endpoint.scheme != "ws":
        answer = probe.http_answer(host, port, "/.rpcengine-probe", budget)
        if answer is not None:
            suggestion = _ws_url(endpoint, "ws", probe.served_paths(answer))
            if endpoint.tls:
                return f"this port does not speak TLS; it speaks HTTP/WebSocket: try {suggestion}"
            return f"this port speaks HTTP/WebSocket; try {suggestion}"
    if endpoint.scheme != "tcp" and probe.speaks_rpcengine(host, port, budget):
        if endpoint.tls:
            return f"this port does not speak TLS; try {tcp_url}"
        return f"this port speaks rpcengine over TCP, not WebSocket; try {tcp_url}"
    if endpoint.tls:
        return None
    if not probe.speaks_tls(host, port, budget):
        return None
    answer = probe.http_answer(host, port, "/.rpcengine-probe", budget, tls=True)
    if answer is not None:
        return f"this port speaks TLS (HTTPS/WebSocket); try {_ws_url(endpoint, 'wss', probe.served_paths(answer))}"
    return f"this port speaks TLS; try {tls_url}"


def _not_found(endpoint: Endpoint, budget: float) -> str:
    """Explain a WebSocket 404 with the paths the server says it serves."""
    answer = probe.http_answer(endpoint.host, endpoint.port, endpoint.path, budget, tls=endpoint.tls)
    paths = probe.served_paths(answer)
    message = f"{endpoint.url}: no WebSocket at path {endpoint.path} (HTTP 404)"
    if not paths:
        return message
    return f"{message}; the server serves {', '.join(paths)}: try {_ws_url(endpoint, endpoint.scheme, paths)}"


def _tls_failure(endpoint: Endpoint, exc: ssl.SSLError, budget: float) -> str:
    """Explain a failed TLS handshake: a certificate problem, or a port that does not speak TLS."""
    url = endpoint.url
    reason = describe_os_error(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"cannot connect to {url}: {reason} (--cafile FILE trusts a certificate, --insecure skips the check)"
    hint = _what_it_speaks(endpoint, budget)
    if hint is not None:
        return f"{url}: {hint}"
    if isinstance(exc, ssl.SSLEOFError) or exc.reason in _NOT_TLS_REASONS:
        return f"{url}: this port does not speak TLS ({reason})"
    return f"cannot connect to {url}: TLS handshake failed: {reason}"


def explain(endpoint: Endpoint, failure: BaseException, timeout: float) -> str:
    """Return the one-line message for ``failure`` while connecting to ``endpoint``.

    May probe the port (blocking, yielding, at most a few seconds): a failed
    handshake or a silent server asks what the port speaks instead.
    """
    url = endpoint.url
    budget = min(timeout, PROBE_TIMEOUT)
    if isinstance(failure, FileNotFoundError) and endpoint.unix:
        return f"cannot connect to {url}: no such socket file (nothing listens there)"
    if isinstance(failure, ConnectionRefusedError):
        return f"cannot connect to {url}: {describe_os_error(failure)} (nothing listens there)"
    if isinstance(failure, ssl.SSLError):
        return _tls_failure(endpoint, failure, budget)
    if isinstance(failure, HandshakeError) and endpoint.websocket and "HTTP 404" in str(failure):
        return _not_found(endpoint, budget)
    if isinstance(failure, NoAnswer | TimeoutError):
        hint = _what_it_speaks(endpoint, budget)
        if hint is not None:
            return f"{url}: {hint}"
        if endpoint.unix:
            why = "the socket accepts connections, but nothing answered"
        elif probe.accepts_connections(endpoint.host, endpoint.port, budget):
            why = "the port accepts connections, but nothing answered"
        else:
            why = "the connection was not accepted (a firewall? a wrong host?)"
        return f"no answer from {url} within {timeout:g} s: {why}"
    if isinstance(failure, HandshakeError) and "server refused the handshake" in str(failure):
        return f"{url}: {failure}"  # an rpcengine server said no (an authenticate hook, say)
    if isinstance(failure, HandshakeError):
        hint = _what_it_speaks(endpoint, budget)
        if hint is not None:
            return f"{url}: {hint}"
        return f"{url} refused the handshake: {failure}"
    if isinstance(failure, ConnectionError):  # ConnectionLost, ConnectionResetError, ...
        hint = _what_it_speaks(endpoint, budget)
        if hint is not None:
            return f"{url}: {hint}"
        return f"connection to {url} lost: {failure}"
    if isinstance(failure, OSError):
        return f"cannot connect to {url}: {describe_os_error(failure)}"
    return f"cannot connect to {url}: {failure}"
