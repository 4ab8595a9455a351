"""JSON codecs: turn message lists into UTF-8 bytes and back, strictly.

A codec has ``encode(value) -> bytes`` and ``decode(data) -> value``.
:class:`UjsonCodec` is the default: it encodes with ujson and decodes with
msgspec's JSON decoder. :class:`OrjsonCodec` is a drop-in that does both
with the optional ``orjson`` package (``pip install rpcengine[orjson]``).
Both enforce the same rules:

* encoding emits UTF-8 with ``/`` unescaped and never a raw newline, and
  raises :class:`~rpcengine.errors.EncodeError` for a value JSON cannot
  represent: a set, bytes, NaN or Infinity, a key that is not a str, int,
  float, bool or None, a lone surrogate;
* decoding raises :class:`~rpcengine.errors.MessageTooLarge` above
  ``max_size`` bytes and :class:`~rpcengine.errors.DecodeError` for
  anything RFC 8259 does not allow: invalid UTF-8, a number outside the
  grammar (``-``, ``01``, ``1.``, ``.5``, ``-.5``, ``+1``), ``NaN``,
  ``Infinity``, a number that overflows to infinity (``1e400``), a raw
  control character or a lone surrogate in a string, a trailing comma,
  trailing data; and also for an integer of more than 4,300 digits and for
  nesting deeper than ``max_depth``.

Why two libraries in the default codec: ujson's decoder reads numbers the
grammar forbids (``[-]`` as ``[0]``, ``01`` as ``1``, ``1.`` and ``-.5``)
and raw control characters in strings, and its maintainers keep it so
(ultrajson issue 591); msgspec's decoder refuses all of it, in C, at the
same speed or faster (a third of ujson's time on a 64 KiB list of dicts),
and keeps integers of any size exact, as ujson does (orjson reads integers
beyond 64 bits as floats). ujson stays the encoder: msgspec would write
sets, bytes and other types that this codec refuses.

The parsers leave one rule to check, the depth, and the check costs
nothing on the common case. ujson, msgspec and orjson accept up to about
1,000 levels, enough to make Python's own ``repr`` and ``==`` raise
RecursionError on the result; ``max_depth`` (default 64) keeps decoded
values far from that. A document shorter than ``max_depth`` bytes, or with
fewer brackets, cannot nest deeper; otherwise its depth is read off the
brackets outside strings (one ``bytes.translate``, then peeling the
innermost pairs ``max_depth`` times, in C), and the value is walked only
when a string holds a bracket or an escape.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import TYPE_CHECKING, Any, Protocol, cast

import msgspec
import ujson

from rpcengine.errors import DecodeError, EncodeError, MessageTooLarge

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "Codec",
    "OrjsonCodec",
    "UjsonCodec",
    "default_codec",
]

#: Largest encoded document accepted by default: 1 MiB.
DEFAULT_MAX_SIZE = 1 << 20
#: Deepest nesting of lists and objects accepted by default.
DEFAULT_MAX_DEPTH = 64

#: The strict decoder of the default codec (msgspec; one instance, as its documentation advises).
_strict_decode = msgspec.json.Decoder().decode

_SCALARS = (str, int, float, bool, type(None))
_KEY_TYPES = (str, int, float, bool, type(None))
_CONTAINERS = frozenset({dict, list, tuple})


class Codec(Protocol):
    """What a transport needs of a codec."""

    name: str
    max_size: int

    def encode(self, value: Any) -> bytes:
        """Return ``value`` as UTF-8 JSON bytes; raise EncodeError if it cannot be encoded."""
        ...

    def decode(self, data: bytes) -> Any:
        """Return the value encoded in ``data``; raise DecodeError or MessageTooLarge."""
        ...


def _check_encodable(value: Any) -> None:
    """Raise EncodeError for non-finite floats and unsupported keys anywhere in ``value``."""
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                raise EncodeError(f"{item!r} cannot be encoded as JSON")
        elif kind is dict:
            for key, child in item.items():
                if not isinstance(key, _KEY_TYPES) or (type(key) is float and not math.isfinite(key)):
                    raise EncodeError(f"object key {key!r} cannot be encoded as JSON")
                if type(child) not in _SCALARS or type(child) is float:
                    push(child)
        elif kind is list or kind is tuple:
            for child in item:
                if type(child) not in _SCALARS or type(child) is float:
                    push(child)
        elif not isinstance(item, _SCALARS):
            if isinstance(item, (dict, list, tuple)):
                stack.extend(item.values() if isinstance(item, dict) else item)
            else:
                raise EncodeError(f"a value of type {type(item).__name__} cannot be encoded as JSON")


def _check_keys(value: Any) -> None:
    """Raise EncodeError if any dict in ``value`` has a key JSON cannot represent.

    ujson itself rejects sets, bytes, NaN and lone surrogates, but turns any
    key into a string (a tuple key becomes ``"(1, 2)"``); this walk finds
    such keys. It goes level by level and stays in C for each: ``"".join``
    over every key of the level's dicts checks that all are strings, their
    values and the lists' items are chained into the next level, and a set
    of their types says whether any container is left. No recursion: any
    depth is walked (ujson refuses what is too deep).
    """
    level = [value]
    while level:
        kinds = set(map(type, level))
        if dict not in kinds:
            dicts: list[Any] = []
            others = level
        elif len(kinds) == 1:
            dicts, others = level, []
        else:
            dicts = [item for item in level if type(item) is dict]
            others = [item for item in level if type(item) is not dict]
        if dicts:
            try:
                "".join(chain.from_iterable(dicts))
            except TypeError:
                for item in dicts:
                    for key in item:
                        if not isinstance(key, _KEY_TYPES) or (type(key) is float and not math.isfinite(key)):
                            raise EncodeError(f"object key {key!r} cannot be encoded as JSON") from None
        # The types first, through iterators (no list of every value unless a container is among them).
        if _CONTAINERS.isdisjoint(map(type, chain(chain.from_iterable(map(dict.values, dicts)), *others))):
            return
        children = chain(chain.from_iterable(map(dict.values, dicts)), *others)
        level = [child for child in children if type(child) in _CONTAINERS]


def _check_depth(value: Any, max_depth: int, depth: int = 1) -> None:
    """Raise DecodeError if the list or dict ``value`` nests deeper than ``max_depth``.

    A set of the children's types, built in C, tells whether a container
    needs any Python-level visit at all; recursion is bounded by
    ``max_depth``.
    """
    if depth > max_depth:
        raise DecodeError(f"JSON nests deeper than {max_depth} levels")
    items = value.values() if type(value) is dict else value
    kinds = set(map(type, items))
    if list in kinds or dict in kinds:
        for item in items:
            if type(item) is list or type(item) is dict:
                _check_depth(item, max_depth, depth + 1)


#: For the depth: every byte but brackets and quotes dropped, brackets as ``[`` and ``]``.
_STRUCTURE_FORM = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_BACKSLASH = ord("\\")


def _nests_deeper(data: bytes, max_depth: int) -> bool | None:
    """Return whether valid JSON ``data`` without escapes nests deeper than ``max_depth``; None if unsure.

    Brackets are balanced (the JSON parsed). Outside strings they give the
    depth: each pass drops every innermost pair, so the brackets are gone
    after exactly as many passes as the document is deep. Without escapes
    every string is a pair of quotes; a string holding a bracket leaves a
    quote unpaired, and then the answer is None (walk the value instead).
    """
    structure = data.translate(_STRUCTURE_FORM, _NOT_STRUCTURE)
    if structure.count(b"[") <= max_depth:  # (bytes.count on the whole text costs more than this translate)
        return False
    quotes = structure.count(b'"')
    if quotes:
        if structure.count(b'""') * 2 != quotes:
            return None
        structure = structure.translate(None, b'"')
    for _ in range(max_depth):
        structure = structure.replace(b"[]", b"")
        if not structure:
            return False
    return True


def _limit_depth(data: bytes | str, value: Any, max_depth: int) -> None:
    """Raise DecodeError if ``value``, decoded from ``data``, nests deeper than ``max_depth``.

    Reads the depth off the text when it can (see :func:`_nests_deeper`),
    and walks the value only when a string holds a bracket or an escape.
    """
    if type(data) is str:
        data = data.encode()
    if TYPE_CHECKING:  # mypy cannot narrow through type(); cast() would cost a call per message
        data = cast(bytes, data)
    deeper = _nests_deeper(data, max_depth) if _BACKSLASH not in data else None
    if deeper:
        raise DecodeError(f"JSON nests deeper than {max_depth} levels")
    if deeper is None:
        try:
            _check_depth(value, max_depth)
        except RecursionError:
            raise DecodeError("JSON nests too deep") from None


def _check_size(data: bytes | str, max_size: int) -> None:
    """Raise MessageTooLarge if ``data`` is longer than ``max_size``."""
    if len(data) > max_size:
        raise MessageTooLarge(f"JSON document of {len(data)} bytes exceeds the maximum of {max_size}")


class UjsonCodec:
    """The default codec: ujson encodes, msgspec decodes (strict RFC 8259; see the module's notes).

    The name stays ``ujson`` (and the class name), as the encoder is what
    shapes the bytes a peer receives.
    """

    name = "ujson"

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.max_size = max_size
        self.max_depth = max_depth

    def encode(self, value: Any) -> bytes:
        """Return ``value`` as UTF-8 JSON bytes; raise EncodeError if it cannot be encoded."""
        try:
            if type(value) is list and (len(value) == 4 or (len(value) == 5 and type(value[4]) is int)):
                # A message (a Request may carry its timeout_ms fifth): the items but the data are
                # scalars; look at its data only.
                data = value[3]
                kind = type(data)
                if kind is dict:
                    try:
                        "".join(data)  # every key a str (in C)
                    except TypeError:
                        _check_keys(data)
                    else:
                        if not _CONTAINERS.isdisjoint(map(type, data.values())):
                            _check_keys(data)
                elif (kind is list or kind is tuple) and not _CONTAINERS.isdisjoint(map(type, data)):
                    _check_keys(data)
            elif type(value) in _CONTAINERS:
                _check_keys(value)
        except RecursionError:
            raise EncodeError("value nests too deep to encode") from None
        try:
            # Positional options (keywords cost a microsecond more): ensure_ascii, encode_html_chars,
            # escape_forward_slashes, sort_keys, indent, allow_nan, reject_bytes.
            return ujson.dumps(value, False, False, False, False, 0, False, True).encode()
        except (TypeError, ValueError, OverflowError) as exc:
            raise EncodeError(f"cannot encode as JSON: {exc}") from None

    def decode(self, data: bytes | str) -> Any:
        """Return the value encoded in ``data``; raise DecodeError or MessageTooLarge.

        ``data`` may also be a str, which is checked as its UTF-8 bytes.
        Does not yield.
        """
        if len(data) > self.max_size:
            _check_size(data, self.max_size)
        try:
            value = _strict_decode(data)
        except msgspec.DecodeError as exc:  # (also its ValidationError: a number out of range)
            raise DecodeError(f"invalid JSON: {exc}") from None
        except UnicodeEncodeError:
            raise DecodeError("JSON text holds a lone surrogate") from None
        except RecursionError:
            raise DecodeError("JSON nests too deep") from None
        if len(data) > self.max_depth and (type(value) is list or type(value) is dict):
            _limit_depth(data, value, self.max_depth)
        return value


class OrjsonCodec:
    """A faster codec built on the optional orjson package (same rules as UjsonCodec)."""

    name = "orjson"

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        import orjson  # optional dependency: imported only when this codec is chosen

        self._orjson = orjson
        self.max_size = max_size
        self.max_depth = max_depth

    def encode(self, value: Any) -> bytes:
        """Return ``value`` as UTF-8 JSON bytes; raise EncodeError if it cannot be encoded."""
        try:
            encoded: bytes = self._orjson.dumps(value, option=self._orjson.OPT_NON_STR_KEYS)
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"cannot encode as JSON: {exc}") from None
        # orjson writes NaN and Infinity (values or keys) as null: where a null appears, look.
        if encoded.find(b"null") >= 0:  # (find: `in` with a bytes needle costs a raised and cleared TypeError)
            _check_encodable(value)
        return encoded

    def decode(self, data: bytes | str) -> Any:
        """Return the value encoded in ``data``; raise DecodeError or MessageTooLarge."""
        if len(data) > self.max_size:
            _check_size(data, self.max_size)
        try:
            value = self._orjson.loads(data)
        except (ValueError, TypeError) as exc:
            raise DecodeError(f"invalid JSON: {exc}") from None
        except RecursionError:
            raise DecodeError("JSON nests too deep") from None
        # orjson itself refuses what RFC 8259 does not allow; only the depth is left to check.
        if len(data) > self.max_depth and (type(value) is list or type(value) is dict):
            _limit_depth(data, value, self.max_depth)
        return value


def default_codec() -> UjsonCodec:
    """Return a new instance of the default codec with default limits."""
    return UjsonCodec()
