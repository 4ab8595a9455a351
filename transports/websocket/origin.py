"""Who may open a WebSocket: the Origin and Host checks that keep other sites' pages out.

A browser lets any page open a WebSocket to any address, the user's own
machine included, and tells the server only where the page came from, in
the ``Origin`` header. :class:`OriginPolicy` decides, from the headers of
an upgrade request alone (sans I/O, any object with ``get_all(name)``, so
a plain HTTP layer can use it too), whether to answer it:

- ``Host`` must name this server (:attr:`OriginPolicy.names`, or an IP
  address on a server bound to every address), so that a page of
  ``evil.example`` whose name was made to point at ``127.0.0.1`` (DNS
  rebinding) is refused although its Origin matches its Host: 421. An
  upgrade without a Host header (or with several) is malformed: 400.
- By default a request with an ``Origin`` is accepted only from a page of
  this very server (same scheme, host and port as the request's Host,
  ``ws`` counting as ``http`` and ``wss`` as ``https``): 403 otherwise,
  ``Origin: null`` included. Programs that send no Origin are accepted.
- ``origins=[...]`` lists the allowed Origins instead (exact strings,
  compiled patterns that must match in full, ``None`` for "no Origin
  header"); ``origins="*"`` allows every Origin.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

__all__ = ["ANY", "LOOPBACK_NAMES", "HeaderSource", "OriginPolicy", "OriginRule", "Refusal"]

#: ``origins=ANY`` allows pages of every site; ``hosts=ANY`` accepts every Host.
ANY = "*"
#: The names a server bound to a loopback or a wildcard address answers to.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

#: An allowed Origin: an exact string, a compiled pattern (full match), or None for "no Origin header".
OriginRule = str | re.Pattern[str] | None

_DEFAULT_PORTS = {"http": 80, "https": 443}


class HeaderSource(Protocol):
    """The request headers, as ``websockets.datastructures.Headers`` offers them."""

    def get_all(self, key: str) -> list[str]:
        """Return every value of the header ``key`` (case-insensitive), in order."""
        ...


class Refusal(NamedTuple):
    """Why an upgrade request is refused: the HTTP status to answer with and a one-line reason."""

    status: HTTPStatus
    reason: str


class _BadHeader(ValueError):
    """A Host or Origin header that does not parse as one."""


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Return ``host`` as an IP address, or None if it is a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _authority(value: str, default_port: int) -> tuple[str, int]:
    """Return the host (lowercased; an address in its canonical spelling) and the port of ``host[:port]``.

    IPv6 addresses come in brackets. Raises _BadHeader for anything else.
    """
    try:
        parts = urlsplit("//" + value)
        port = parts.port
    except ValueError:
        raise _BadHeader(value) from None
    host = parts.hostname
    if not host or "@" in parts.netloc or parts.path or parts.query or parts.fragment:
        raise _BadHeader(value)
    address = _address(host)
    return host if address is None else str(address), default_port if port is None else port


class OriginPolicy:
    """Decide whether an upgrade request's Host and Origin headers let it in.

    ``bound`` holds the address the server was asked to listen on and the
    one it got (a name resolves to an address); ``secure`` says whether it
    serves ``wss://``. ``origins`` and ``hosts`` are the server's options
    of the same names (see the module docstring): None for the defaults
    (same-origin pages only; the served names only), :data:`ANY` to allow
    all, or a list. Raises ValueError for a string other than :data:`ANY`.
    """

    def __init__(
        self,
        bound: Sequence[str],
        *,
        secure: bool = False,
        origins: str | Sequence[OriginRule] | None = None,
        hosts: str | Sequence[str] | None = None,
    ) -> None:
        if isinstance(origins, str) and origins != ANY:
            raise ValueError(f"origins must be {ANY!r}, None or a list of origins, not {origins!r}")
        if isinstance(hosts, str) and hosts != ANY:
            raise ValueError(f"hosts must be {ANY!r}, None or a list of names, not {hosts!r}")
        self.secure = secure
        self.origins: str | list[OriginRule] | None = origins if origins is None or origins == ANY else list(origins)
        self.any_host = hosts == ANY
        bound_names = {name.strip("[]").lower() for name in bound}
        addresses = [address for address in map(_address, bound_names) if address is not None]
        #: The server was bound to every address, so any IP address may name it.
        self.wildcard = "" in bound_names or any(address.is_unspecified for address in addresses)
        names = bound_names | {str(address) for address in addresses}  # and the canonical spelling
        if self.wildcard or "localhost" in bound_names or any(address.is_loopback for address in addresses):
            names.update(LOOPBACK_NAMES)
        if not isinstance(hosts, str):
            names.update(name.strip("[]").lower() for name in hosts or ())
        names.discard("")
        #: The host names (and addresses) a Host header may give, lowercased.
        self.names = frozenset(names)

    def check(self, headers: HeaderSource) -> Refusal | None:
        """Return why a request with these headers is refused, or None to accept it. Does not block."""
        scheme = "https" if self.secure else "http"
        hosts = headers.get_all("Host")
        if len(hosts) != 1:
            return Refusal(HTTPStatus.BAD_REQUEST, "no Host header" if not hosts else "several Host headers")
        try:
            host, port = _authority(hosts[0], _DEFAULT_PORTS[scheme])
        except _BadHeader:
            return Refusal(HTTPStatus.BAD_REQUEST, "the Host header is not host[:port]")
        if not self._serves(host):
            return Refusal(HTTPStatus.MISDIRECTED_REQUEST, f"this server does not answer to the name {host!r}")
        origins = headers.get_all("Origin")
        if len(origins) > 1:
            return Refusal(HTTPStatus.BAD_REQUEST, "several Origin headers")
        origin = origins[0] if origins else None
        if self.origins == ANY:
            return None
        if self.origins is None:
            if origin is None or _same_origin(origin, scheme, host, port):
                return None
        elif any(_matches(rule, origin) for rule in self.origins):
            return None
        return Refusal(HTTPStatus.FORBIDDEN, f"pages from origin {origin!r} may not connect")

    def _serves(self, host: str) -> bool:
        """Return whether ``host`` (from a Host header) names this server."""
        if self.any_host or host in self.names:
            return True
        return self.wildcard and _address(host) is not None


def _same_origin(origin: str, scheme: str, host: str, port: int) -> bool:
    """Return whether ``origin`` is ``scheme://host:port`` (default ports implied)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme.lower() != scheme or parts.path or parts.query or parts.fragment:
        return False
    try:
        return _authority(parts.netloc, _DEFAULT_PORTS[scheme]) == (host, port)
    except _BadHeader:
        return False


def _matches(rule: OriginRule, origin: str | None) -> bool:
    """Return whether one ``origins`` entry admits ``origin`` (None: no Origin header)."""
    if isinstance(rule, re.Pattern):
        return origin is not None and rule.fullmatch(origin) is not None
    return rule == origin
