"""Listener and server URLs of the command line: ``tcp://``, ``tls://``, ``ws://``, ``wss://``, ``http://``, ``unix:``,
``jsonrpc+tcp://``.

>>> parse_url("tcp://127.0.0.1:7000")
Endpoint(scheme='tcp', host='127.0.0.1', port=7000, path='', jsonrpc=False)
>>> parse_url("ws://[::1]:8000/rpc").url
'ws://[::1]:8000/rpc'
>>> parse_url("tcp://127.0.0.1:0", listening=True).port
0
>>> parse_url("unix:///run/app.sock")
Endpoint(scheme='unix', host='', port=0, path='/run/app.sock', jsonrpc=False)
>>> parse_url("unix:@app").url
'unix:@app'

A TCP URL has no path; a WebSocket URL's path defaults to ``/``; an
``http://`` URL (a client only: a long-poll session to a WebSocket
server's HTTP twin, as ``http://127.0.0.1:8765/rpc``) defaults to ``/rpc``. Port 0
(pick a free port) is allowed only for listeners. A Unix-domain socket is
``unix:///absolute/path``, ``unix:relative/path`` or ``unix:@name`` (a Linux
abstract name); its path is the Endpoint's ``path``, it has no host or port.
Anything else raises
:class:`~rpcengine.cli.errors.CliError` with exit code 2.

A client speaks JSON-RPC 2.0 (``Endpoint.jsonrpc``) to ``jsonrpc+tcp://``
and ``jsonrpc+tls://`` URLs (TCP and TLS, no path), to a ``ws://``,
``wss://`` or ``http://`` URL whose path ends in ``/jsonrpc`` (an
``http://`` one is a POST per call), and to any URL given with
``--jsonrpc`` (:meth:`Endpoint.as_jsonrpc`)::

    >>> parse_url("jsonrpc+tcp://127.0.0.1:7000").jsonrpc
    True
    >>> parse_url("http://127.0.0.1:8000/rpc").as_jsonrpc().path
    '/jsonrpc'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from rpcengine.cli.errors import CliError, ExitCode

__all__ = ["JSONRPC_PATH", "JSONRPC_SCHEMES", "SCHEMES", "Endpoint", "format_url", "parse_url"]

#: Supported schemes, and whether each uses TLS.
SCHEMES = {
    "tcp": False,
    "tls": True,
    "ws": False,
    "wss": True,
    "http": False,
    "jsonrpc+tcp": False,
    "jsonrpc+tls": True,
    "unix": False,
}

#: The schemes of JSON-RPC 2.0 over TCP and TLS (clients only: serve answers JSON-RPC on tcp:// and tls://).
JSONRPC_SCHEMES = ("jsonrpc+tcp", "jsonrpc+tls")

#: The last part of a path that speaks JSON-RPC 2.0 (a WebSocket path's twin, ``/jsonrpc`` for ``/``).
JSONRPC_PATH = "/jsonrpc"


@dataclass(frozen=True)
class Endpoint:
    """A parsed URL: where to listen or connect, and with which transport."""

    scheme: str
    host: str
    port: int
    path: str = ""
    #: Whether a client speaks JSON-RPC 2.0 here rather than rpcengine's own protocol.
    jsonrpc: bool = False

    @property
    def tls(self) -> bool:
        """Whether the scheme runs over TLS (``tls://`` or ``wss://``)."""
        return SCHEMES[self.scheme]

    @property
    def websocket(self) -> bool:
        """Whether the scheme is a WebSocket one (``ws://`` or ``wss://``)."""
        return self.scheme in ("ws", "wss")

    @property
    def http(self) -> bool:
        """Whether the scheme is ``http://`` (a long-poll session on a WebSocket server's port, or JSON-RPC POSTs)."""
        return self.scheme == "http"

    @property
    def unix(self) -> bool:
        """Whether the scheme is ``unix:`` (a Unix-domain socket at :attr:`path`)."""
        return self.scheme == "unix"

    @property
    def url(self) -> str:
        """The endpoint written back as a URL."""
        if self.unix:
            return f"unix://{self.path}" if self.path.startswith("/") else f"unix:{self.path}"
        return format_url(self.scheme, self.host, self.port, self.path)

    def with_port(self, port: int) -> Endpoint:
        """Return a copy with another port (the real one of a port-0 listener)."""
        return replace(self, port=port)

    def as_jsonrpc(self) -> Endpoint:
        """Return the endpoint a client speaks JSON-RPC 2.0 to (``--jsonrpc``).

        An ``http://`` path that does not end in ``/jsonrpc`` becomes its
        JSON-RPC twin: ``/rpc`` -> ``/jsonrpc``, ``/p/rpc`` -> ``/p/jsonrpc``,
        ``/p`` -> ``/p/jsonrpc``. Other paths stay (a ``ws://`` client offers
        the ``jsonrpc`` subprotocol, which any path of an rpcengine server takes).
        """
        path = self.path
        if self.http and not path.endswith(JSONRPC_PATH):
            path = path.removesuffix("/rpc").rstrip("/") + JSONRPC_PATH
        return replace(self, path=path, jsonrpc=True)


def format_url(scheme: str, host: str, port: int, path: str = "") -> str:
    """Return ``scheme://host:port/path``, with an IPv6 host in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


def parse_url(text: str, *, listening: bool = False) -> Endpoint:
    """Parse ``text`` into an Endpoint; raise CliError (exit 2) if it is not a usable URL.

    With ``listening`` true the port may be 0 (any free port).
    """
    if text[:5].lower() == "unix:":
        return _parse_unix_url(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise CliError(f"bad URL {text!r}: {exc}", ExitCode.USAGE) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{name}://" for name in SCHEMES)
        raise CliError(f"bad URL {text!r}: the scheme must be one of {known}", ExitCode.USAGE)
    if not parts.hostname:
        raise CliError(f"bad URL {text!r}: it names no host", ExitCode.USAGE)
    if port is None or (port == 0 and not listening):
        raise CliError(f"bad URL {text!r}: it needs a port, as in {scheme}://127.0.0.1:7000", ExitCode.USAGE)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise CliError(f"bad URL {text!r}: no user, query or fragment allowed", ExitCode.USAGE)
    path = parts.path
    if scheme == "http" and listening:
        raise CliError(
            f"bad URL {text!r}: listen on a ws:// URL, which answers HTTP too (POST /rpc, long-poll)", ExitCode.USAGE
        )
    if scheme in JSONRPC_SCHEMES and listening:
        plain = scheme.removeprefix("jsonrpc+")
        raise CliError(f"bad URL {text!r}: listen on a {plain}:// URL, which answers JSON-RPC 2.0 too", ExitCode.USAGE)
    if scheme == "http" and path in ("", "/"):
        path = "/rpc"
    if scheme in ("tcp", "tls", *JSONRPC_SCHEMES):
        if path not in ("", "/"):
            raise CliError(f"bad URL {text!r}: a {scheme}:// URL has no path", ExitCode.USAGE)
        path = ""
    elif not path:
        path = "/"
    jsonrpc = scheme in JSONRPC_SCHEMES or (not listening and path.endswith(JSONRPC_PATH))
    return Endpoint(scheme, parts.hostname, port, path, jsonrpc)


def _parse_unix_url(text: str) -> Endpoint:
    """Parse ``unix:///path``, ``unix:path`` or ``unix:@name``; raise CliError (exit 2) if it is not usable."""
    from transports.unix import socket_address  # the transport's own rule for the path's length

    path = text[5:]
    if path.startswith("//"):
        host, slash, rest = path[2:].partition("/")
        if host:
            raise CliError(
                f"bad URL {text!r}: a unix:// URL names no host; write unix:///PATH or unix:@NAME", ExitCode.USAGE
            )
        path = slash + rest
    if path in ("", "@", "/"):
        raise CliError(f"bad URL {text!r}: it names no socket, as in unix:///tmp/app.sock", ExitCode.USAGE)
    if "?" in path or "#" in path:
        raise CliError(f"bad URL {text!r}: no query or fragment allowed", ExitCode.USAGE)
    try:
        socket_address(path)
    except ValueError as exc:
        raise CliError(f"bad URL {text!r}: {exc}", ExitCode.USAGE) from None
    return Endpoint("unix", "", 0, path)
