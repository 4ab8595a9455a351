"""Peer discovery over UDP: a responder beside a server, and :func:`discover` to find servers on the LAN.

A :class:`DiscoveryResponder` answers discovery probes on a UDP port
(:data:`~rpcengine.discovery.DEFAULT_PORT`, 7399, unless told otherwise)
with its server's name, version, workgroup and listener URLs; nothing
answers unless one is started. :func:`discover` broadcasts one probe and
returns the servers that answered within the timeout. The datagrams, their
bounds and the rate limit are :mod:`rpcengine.discovery`'s; this module
holds the sockets::

    with DiscoveryResponder("counter", ["tcp://0.0.0.0:7000"], workgroup="lab"):
        ...  # serve
    # elsewhere on the LAN
    for server in discover(timeout=1.0, workgroup="lab"):
        print(server.name, server.urls)

Several responders on one machine share the port (``SO_REUSEADDR``): a
broadcast probe reaches each of them, a probe sent to one address only
the last one bound. A URL on every address (``tcp://0.0.0.0:7000``) is
answered with the address the prober reaches this machine at (the source
address of the route back to it).
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import gevent
import gevent.socket

from rpcengine import __version__
from rpcengine.discovery import (
    BROADCAST,
    DEFAULT_MAX_RATE,
    DEFAULT_MAX_SOURCE_RATE,
    DEFAULT_PORT,
    MAX_ANSWER_SIZE,
    MAX_PROBE_SIZE,
    DiscoveredServer,
    Responder,
    encode_probe,
    new_probe,
    parse_answer,
)

__all__ = ["DEFAULT_PORT", "DiscoveredServer", "DiscoveryResponder", "discover"]

log = logging.getLogger(__name__)

#: Answers :func:`discover` collects at most.
MAX_ANSWERS = 1000
#: Datagrams a responder reads in a row before it lets other greenlets run.
_BATCH = 32
#: Seconds :meth:`DiscoveryResponder.stop` waits for its greenlet to end.
_STOP_TIMEOUT = 2.0


def _family(host: str) -> socket.AddressFamily:
    """Return the address family of a numeric host (IPv6 if it has a colon)."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class DiscoveryResponder:
    """Answer discovery probes on UDP ``host``:``port`` for one server, in the background.

    ``urls`` are the server's listener URLs, as it listens (with the real
    port). ``version`` defaults to rpcengine's. At most ``max_rate``
    probes are answered per second, ``max_source_rate`` per sender.
    Raises ValueError at once if the name, workgroup or URLs exceed the
    bounds of an answer (see :mod:`rpcengine.discovery`).
    """

    def __init__(
        self,
        name: str,
        urls: list[str] | tuple[str, ...],
        *,
        workgroup: str | None = None,
        version: str | None = None,
        port: int = DEFAULT_PORT,
        host: str = "0.0.0.0",
        max_rate: int = DEFAULT_MAX_RATE,
        max_source_rate: int = DEFAULT_MAX_SOURCE_RATE,
    ) -> None:
        self.responder = Responder(
            name,
            urls,
            version=__version__ if version is None else version,
            workgroup=workgroup,
            max_rate=max_rate,
            max_source_rate=max_source_rate,
        )
        self._bind = (host, port)
        self._sock: Any = None
        self._greenlet: gevent.Greenlet | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The UDP address answered on (with the real port once started)."""
        if self._sock is None:
            return self._bind
        host, port = self._sock.getsockname()[:2]
        return host, port

    def start(self) -> DiscoveryResponder:
        """Bind the UDP socket and answer probes in the background; return self. Does not block.

        Raises OSError if the port cannot be bound, RuntimeError if already started.
        """
        if self._sock is not None:
            raise RuntimeError("the discovery responder is already started")
        sock = gevent.socket.socket(_family(self._bind[0]), socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # responders on one host share the port
            sock.bind(self._bind)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._greenlet = gevent.spawn(self._run, sock)
        log.info("discovery responder on udp %s:%s", *self.address)
        return self

    def stop(self) -> None:
        """Stop answering and close the socket; blocks (yields) briefly for the greenlet to end."""
        sock, greenlet = self._sock, self._greenlet
        self._sock = self._greenlet = None
        if greenlet is not None:
            greenlet.kill(timeout=_STOP_TIMEOUT)
        if sock is not None:
            sock.close()

    def _run(self, sock: Any) -> None:
        """Read probes and answer them until stopped (runs on its own greenlet)."""
        while True:
            for _ in range(_BATCH):
                try:
                    datagram, sender = sock.recvfrom(MAX_PROBE_SIZE + 1)  # one more: a larger one is seen as such
                except OSError as exc:  # an ICMP error of an earlier answer, a closed socket
                    log.debug("discovery responder: %s", exc)
                    if sock.fileno() < 0:
                        return
                    gevent.sleep(0.01)  # never a busy loop on an error that persists
                    continue
                self._handle(sock, datagram, sender)
            gevent.sleep(0)  # a flood of datagrams is read without blocking: let others run

    def _handle(self, sock: Any, datagram: bytes, sender: Any) -> None:
        """Answer one datagram from ``sender`` if it is a probe to answer."""
        probe = self.responder.accept(datagram, sender[0], time.monotonic())
        if probe is None:
            return
        local = _local_address(sender) if self.responder.has_wildcard else None
        try:
            sock.sendto(self.responder.answer(probe, local), sender)
        except OSError as exc:
            log.debug("discovery responder: cannot answer %s: %s", sender, exc)

    def __enter__(self) -> DiscoveryResponder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _local_address(peer: Any) -> str | None:
    """Return this machine's address on the route to ``peer``, or None (no datagram is sent)."""
    try:
        with socket.socket(_family(peer[0]), socket.SOCK_DGRAM) as probe:
            probe.connect(peer[:2])  # a UDP connect only picks the route and the source address
            address: str = probe.getsockname()[0]
            return address
    except OSError:
        return None


def discover(
    timeout: float = 1.0,
    workgroup: str | None = None,
    *,
    port: int = DEFAULT_PORT,
    address: str = BROADCAST,
    max_answers: int = MAX_ANSWERS,
) -> list[DiscoveredServer]:
    """Send one probe to ``address``:``port`` and return the servers that answered within ``timeout``.

    ``address`` is the limited broadcast by default; a subnet's broadcast
    address (``192.168.1.255``) or one host's address work too. With a
    ``workgroup`` only that workgroup's servers answer (and answers from
    others are dropped). Blocks (yields) for ``timeout`` seconds, or until
    ``max_answers`` servers answered; the result is sorted by name and
    address, each server once. Raises OSError if the probe cannot be sent
    (``Network is unreachable``: no route to the broadcast address; give a
    subnet's), ValueError for a bad workgroup.
    """
    probe = new_probe(workgroup)
    found: dict[tuple[object, ...], DiscoveredServer] = {}
    sock = gevent.socket.socket(_family(address), socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.sendto(encode_probe(probe), (address, port))
        deadline = time.monotonic() + timeout
        while len(found) < max_answers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                datagram, sender = sock.recvfrom(MAX_ANSWER_SIZE + 1)
            except TimeoutError:
                break
            except OSError as exc:  # an ICMP error (port unreachable, for a probe to one host)
                log.debug("discover: %s", exc)
                gevent.sleep(min(0.05, max(remaining, 0)))
                continue
            answer = parse_answer(datagram, probe.nonce)
            if answer is None or (workgroup is not None and answer.workgroup != workgroup):
                continue
            server = DiscoveredServer(answer.name, answer.version, answer.workgroup, answer.urls, sender[0])
            found.setdefault((server.address, server.name, server.urls), server)
    finally:
        sock.close()
    return sorted(found.values(), key=lambda server: (server.name, server.address, server.urls))
