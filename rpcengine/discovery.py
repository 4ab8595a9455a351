"""Discovery datagrams: the probe a client broadcasts on the LAN and the answer a server gives (sans-I/O).

A client sends one UDP datagram, a *probe*, holding one JSON object::

    {"rpcengine_discover": 1, "workgroup": "lab", "nonce": "5c0f3e1a9b2d4786"}

Every server whose responder is on and whose workgroup matches answers
the sender, from the discovery port, with one datagram::

    {"rpcengine_discover": 1, "nonce": "5c0f3e1a9b2d4786", "name": "counter",
     "version": "0.1.0", "workgroup": "lab", "urls": ["tcp://10.0.0.2:7000"]}

The answer echoes the nonce, so a client takes only answers to its own
probe. A probe with workgroup ``null`` is answered by every responder; one
with a workgroup only by the responders of that workgroup (compared
exactly). An answer says the server's name, version, workgroup and
listener URLs, never more.

Bounds: a probe is at most :data:`MAX_PROBE_SIZE` bytes, an answer at most
:data:`MAX_ANSWER_SIZE` (one Ethernet frame); a responder answers at most
``max_rate`` probes per second in all and ``max_source_rate`` per sender
address (:class:`RateLimit`), so that it cannot be turned into a flood.
Anything else that arrives (not UTF-8, not JSON, the wrong keys or types,
an answer, too large) is garbage and is ignored: no answer, no error.

* :func:`new_probe`, :func:`encode_probe`, :func:`parse_probe`;
* :func:`encode_answer`, :func:`parse_answer`;
* :class:`Responder`: what a responder answers, datagrams and the time in;
* :class:`RateLimit`: the sliding-window bound on answers;
* :func:`local_urls`: a wildcard listener's URLs with the address a probe reached.

Nothing here does I/O or yields; the sockets are in :mod:`transports.discovery`.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "BROADCAST",
    "DEFAULT_MAX_RATE",
    "DEFAULT_MAX_SOURCE_RATE",
    "DEFAULT_PORT",
    "DISCOVERY_VERSION",
    "MARKER",
    "MAX_ANSWER_SIZE",
    "MAX_NAME_LENGTH",
    "MAX_NONCE_LENGTH",
    "MAX_PROBE_SIZE",
    "MAX_URLS",
    "Answer",
    "DiscoveredServer",
    "Probe",
    "RateLimit",
    "Responder",
    "encode_answer",
    "encode_probe",
    "local_urls",
    "new_probe",
    "parse_answer",
    "parse_probe",
]

#: The UDP port responders listen on unless told otherwise.
DEFAULT_PORT = 7399
#: Where a probe goes unless told otherwise: the limited broadcast address, every host on the local network.
BROADCAST = "255.255.255.255"
#: The key that marks a discovery datagram, and the version of the format (its value).
MARKER = "rpcengine_discover"
DISCOVERY_VERSION = 1
#: The largest probe a responder reads, in bytes; a larger datagram is ignored.
MAX_PROBE_SIZE = 512
#: The largest answer, in bytes: one datagram that fits an Ethernet frame unfragmented.
MAX_ANSWER_SIZE = 1400
#: The longest name and workgroup, in characters.
MAX_NAME_LENGTH = 128
#: The longest nonce a probe may carry, in characters.
MAX_NONCE_LENGTH = 64
#: The most URLs an answer lists.
MAX_URLS = 16
#: Answers per second a responder gives in all, and to one sender address.
DEFAULT_MAX_RATE = 20
DEFAULT_MAX_SOURCE_RATE = 5

#: Hosts that mean "every address" in a listener URL (replaced in answers, see local_urls).
_WILDCARDS = frozenset({"0.0.0.0", "::"})
#: The longest host an answer may put in place of a wildcard (a full IPv6 address).
_LONGEST_HOST = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
#: Sender addresses a RateLimit remembers; the one seen longest ago makes room.
_MAX_SOURCES = 256


@dataclass(frozen=True)
class Probe:
    """A discovery probe: which workgroup is asked for (None: all), and the nonce answers must echo."""

    workgroup: str | None
    nonce: str


@dataclass(frozen=True)
class Answer:
    """What a responder says about its server: the probe's nonce, name, version, workgroup, listener URLs."""

    nonce: str
    name: str
    version: str
    workgroup: str | None
    urls: tuple[str, ...]


@dataclass(frozen=True)
class DiscoveredServer:
    """A server that answered a probe, and the IP address its answer came from."""

    name: str
    version: str
    workgroup: str | None
    urls: tuple[str, ...]
    address: str

    def as_dict(self) -> dict[str, Any]:
        """Return the server as a JSON-ready dict (``urls`` a list)."""
        return {
            "name": self.name,
            "version": self.version,
            "workgroup": self.workgroup,
            "urls": list(self.urls),
            "address": self.address,
        }


def new_probe(workgroup: str | None = None) -> Probe:
    """Return a probe for ``workgroup`` (None: every workgroup) with a fresh random nonce.

    Raises ValueError if the workgroup is not a string of 1 to 128 characters.
    """
    _check_name("workgroup", workgroup, optional=True)
    return Probe(workgroup, secrets.token_hex(8))


def encode_probe(probe: Probe) -> bytes:
    """Return the probe as the datagram to send."""
    return _dump({MARKER: DISCOVERY_VERSION, "workgroup": probe.workgroup, "nonce": probe.nonce})


def parse_probe(datagram: bytes) -> Probe | None:
    """Return the probe in ``datagram``, or None if it is not one (garbage, too large, an answer).

    Keys a later version may add are ignored; a datagram with ``urls`` is
    an answer, never a probe, so two responders cannot be made to answer
    each other.
    """
    document = _load(datagram, MAX_PROBE_SIZE)
    if document is None or "urls" in document or "workgroup" not in document:
        return None
    nonce, workgroup = document.get("nonce"), document["workgroup"]
    if not _is_nonce(nonce) or not (workgroup is None or _is_name(workgroup)):
        return None
    return Probe(workgroup, nonce)


def encode_answer(answer: Answer) -> bytes:
    """Return the answer as the datagram to send; raise ValueError if it exceeds the bounds."""
    _check_answer(answer.name, answer.version, answer.workgroup, answer.urls)
    data = _dump(
        {
            MARKER: DISCOVERY_VERSION,
            "nonce": answer.nonce,
            "name": answer.name,
            "version": answer.version,
            "workgroup": answer.workgroup,
            "urls": list(answer.urls),
        }
    )
    if len(data) > MAX_ANSWER_SIZE:
        raise ValueError(f"the answer takes {len(data)} bytes, more than {MAX_ANSWER_SIZE}: fewer or shorter URLs")
    return data


def parse_answer(datagram: bytes, nonce: str) -> Answer | None:
    """Return the answer in ``datagram`` if it answers the probe with ``nonce``, else None."""
    document = _load(datagram, MAX_ANSWER_SIZE)
    if document is None or document.get("nonce") != nonce:
        return None
    name, version, workgroup, urls = (document.get(key) for key in ("name", "version", "workgroup", "urls"))
    if not (_is_name(name) and _is_name(version) and (workgroup is None or _is_name(workgroup))):
        return None
    if type(urls) is not list or len(urls) > MAX_URLS or not all(_is_url(url) for url in urls):
        return None
    return Answer(nonce, name, version, workgroup, tuple(urls))


def local_urls(urls: tuple[str, ...], host: str | None) -> tuple[str, ...]:
    """Return ``urls`` with a wildcard host (``0.0.0.0``, ``::``) replaced by ``host``.

    ``host`` is this machine's address as the prober reaches it; None
    leaves the URLs as they are.

    >>> local_urls(("tcp://0.0.0.0:7000", "ws://127.0.0.1:8000/rpc"), "10.0.0.2")
    ('tcp://10.0.0.2:7000', 'ws://127.0.0.1:8000/rpc')
    """
    if host is None:
        return urls
    shown = f"[{host}]" if ":" in host else host
    replaced = []
    for url in urls:
        if _is_wildcard(url):
            parts = urlsplit(url)
            url = urlunsplit(parts._replace(netloc=f"{shown}:{parts.port}"))
        replaced.append(url)
    return tuple(replaced)


def _is_wildcard(url: str) -> bool:
    """Whether ``url`` names a listener on every address (host ``0.0.0.0`` or ``[::]``, with a port)."""
    try:
        parts = urlsplit(url)
        return parts.hostname in _WILDCARDS and parts.port is not None
    except ValueError:  # a port that is not a number
        return False


class RateLimit:
    """At most ``max_count`` events in any ``period`` seconds, and ``max_per_source`` from one source.

    A sliding window: the times of the last events are kept (at most
    ``max_count``, and ``max_per_source`` for each of the last 256 sources),
    so no window of ``period`` seconds ever holds more. The time is passed
    in: any monotonic clock.
    """

    def __init__(self, max_count: int, max_per_source: int | None = None, period: float = 1.0) -> None:
        if max_count < 1 or (max_per_source is not None and max_per_source < 1) or period <= 0:
            raise ValueError("a rate limit needs counts of at least 1 and a period above 0")
        self.max_count = max_count
        self.max_per_source = max_count if max_per_source is None else min(max_per_source, max_count)
        self.period = period
        self._times: deque[float] = deque()
        self._sources: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, source: str, now: float) -> bool:
        """Return whether an event from ``source`` at ``now`` is within the limits, and count it if so."""
        horizon = now - self.period
        _expire(self._times, horizon)
        times = self._sources.get(source)
        if times is None:
            times = self._sources[source] = deque()
            while len(self._sources) > _MAX_SOURCES:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
            _expire(times, horizon)
        if len(self._times) >= self.max_count or len(times) >= self.max_per_source:
            return False
        self._times.append(now)
        times.append(now)
        return True


class Responder:
    """What a discovery responder answers: datagrams and the time in, answers out (no I/O).

    Raises ValueError at once if the name, version, workgroup or URLs
    exceed the bounds, or would not fit an answer.
    """

    def __init__(
        self,
        name: str,
        urls: tuple[str, ...] | list[str],
        *,
        version: str,
        workgroup: str | None = None,
        max_rate: int = DEFAULT_MAX_RATE,
        max_source_rate: int = DEFAULT_MAX_SOURCE_RATE,
    ) -> None:
        self.name = name
        self.version = version
        self.workgroup = workgroup
        self.urls = tuple(urls)
        # Checked with the longest host a wildcard may become, so that every answer fits.
        encode_answer(Answer("f" * MAX_NONCE_LENGTH, name, version, workgroup, local_urls(self.urls, _LONGEST_HOST)))
        self.limit = RateLimit(max_rate, max_source_rate)
        #: Probes answered, and datagrams ignored (garbage, another workgroup, over the rate).
        self.answered = 0
        self.ignored = 0

    @property
    def has_wildcard(self) -> bool:
        """Whether a URL listens on every address, so an answer needs the address the probe reached."""
        return any(_is_wildcard(url) for url in self.urls)

    def accept(self, datagram: bytes, source: str, now: float) -> Probe | None:
        """Return the probe in a datagram from ``source`` if it is to be answered, else None (ignored)."""
        probe = parse_probe(datagram)
        if probe is None or (probe.workgroup is not None and probe.workgroup != self.workgroup):
            self.ignored += 1
            return None
        if not self.limit.allow(source, now):
            self.ignored += 1
            return None
        return probe

    def answer(self, probe: Probe, local_host: str | None = None) -> bytes:
        """Return the answer to an accepted ``probe``, a wildcard host replaced by ``local_host``."""
        self.answered += 1
        urls = local_urls(self.urls, local_host)
        return encode_answer(Answer(probe.nonce, self.name, self.version, self.workgroup, urls))


def _expire(times: deque[float], horizon: float) -> None:
    """Drop the times at or before ``horizon`` from the front of ``times``."""
    while times and times[0] <= horizon:
        times.popleft()


def _dump(document: dict[str, Any]) -> bytes:
    """Return ``document`` as compact UTF-8 JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _refuse_constant(name: str) -> None:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not JSON")


def _load(datagram: bytes, limit: int) -> dict[str, Any] | None:
    """Return the discovery object in ``datagram`` (at most ``limit`` bytes), or None."""
    if len(datagram) > limit:
        return None
    try:
        document = json.loads(datagram.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # not UTF-8, not JSON
        return None
    if type(document) is not dict or document.get(MARKER) != DISCOVERY_VERSION:
        return None
    if type(document[MARKER]) is not int:  # true == 1 in Python, not on the wire
        return None
    return document


def _is_name(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a usable name, version or workgroup: 1 to 128 printable characters."""
    return type(value) is str and 0 < len(value) <= MAX_NAME_LENGTH and value.isprintable()


def _is_nonce(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a usable nonce: 1 to 64 printable characters."""
    return type(value) is str and 0 < len(value) <= MAX_NONCE_LENGTH and value.isprintable()


def _is_url(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a plausible URL string of at most 256 characters."""
    return type(value) is str and 0 < len(value) <= 256 and "://" in value and value.isprintable()


def _check_name(what: str, value: object, *, optional: bool = False) -> None:
    """Raise ValueError unless ``value`` is a usable name (or None, if ``optional``)."""
    if value is None and optional:
        return
    if not _is_name(value):
        raise ValueError(f"the {what} must be 1 to {MAX_NAME_LENGTH} printable characters, not {value!r}")


def _check_answer(name: str, version: str, workgroup: str | None, urls: tuple[str, ...]) -> None:
    """Raise ValueError unless the fields of an answer are within the bounds."""
    _check_name("name", name)
    _check_name("version", version)
    _check_name("workgroup", workgroup, optional=True)
    if len(urls) > MAX_URLS:
        raise ValueError(f"an answer lists at most {MAX_URLS} URLs, not {len(urls)}")
    for url in urls:
        if not _is_url(url):
            raise ValueError(f"not a URL of at most 256 characters: {url!r}")
