"""The JSON codecs: strict decoding, clear encoding errors, identical rules for ujson and orjson."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcengine import DecodeError, EncodeError, MessageTooLarge
from rpcengine.codec import DEFAULT_MAX_DEPTH, OrjsonCodec, UjsonCodec

CODECS = [UjsonCodec]
try:
    import orjson  # noqa: F401

    CODECS.append(OrjsonCodec)
except ImportError:  # pragma: no cover - orjson is in the test extra
    pass

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), children, max_size=5)
    ),
    max_leaves=30,
)


@pytest.fixture(params=CODECS, ids=lambda c: c.name)
def codec(request: pytest.FixtureRequest) -> UjsonCodec:
    return request.param()


@given(json_values)
def test_round_trip(value: object) -> None:
    for cls in CODECS:
        codec = cls()
        data = codec.encode(value)
        assert isinstance(data, bytes)
        assert b"\n" not in data, "the encoder never emits a raw newline"
        decoded = codec.decode(data)
        if not (isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63):
            assert decoded == value or (isinstance(value, float) and math.isclose(decoded, value))


def test_encoding_details(codec: UjsonCodec) -> None:
    assert codec.encode(["a/b", "é", "\n"]) == '["a/b","é","\\n"]'.encode()
    assert codec.encode({"k": (1, 2)}) == b'{"k":[1,2]}'


@pytest.mark.parametrize(
    "value",
    [{1, 2}, b"bytes", float("nan"), float("inf"), [1, {"a": [float("-inf")]}], {(1, 2): 3}, object(), "\ud800"],
    ids=["set", "bytes", "nan", "inf", "nested-inf", "tuple-key", "object", "lone-surrogate"],
)
def test_unencodable_values_raise_encode_error(codec: UjsonCodec, value: object) -> None:
    with pytest.raises(EncodeError):
        codec.encode(value)
    assert issubclass(EncodeError, ValueError)


@pytest.mark.parametrize(
    "data",
    [
        b"NaN",
        b"[Infinity]",
        b"-Infinity",
        b"[1e400]",
        b'"\\ud800"',
        b'{"\\udc00": 1}',
        b'"\xed\xa0\x80"',
        b"\xff",
        b'"\xc3"',
        b"[1,2]x",
        b"[1,",
        b"",
        b"{'a': 1}",
    ],
)
def test_invalid_documents_raise_decode_error(codec: UjsonCodec, data: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(data)


@pytest.mark.parametrize("depth", [31, 63, 64, 65, 100, 1023, 1024, 1025, 100_000])
def test_nesting_limit(codec: UjsonCodec, depth: int) -> None:
    data = b"[" * depth + b"]" * depth
    if depth <= DEFAULT_MAX_DEPTH:
        value = codec.decode(data)
        assert repr(value).count("[") == depth
    else:
        with pytest.raises(DecodeError):
            codec.decode(data)


def test_nesting_limit_counts_objects_too(codec: UjsonCodec) -> None:
    data = b'{"a":' * 65 + b"1" + b"}" * 65
    with pytest.raises(DecodeError):
        codec.decode(data)
    wide = b"[" + b",".join([b"[1]"] * 500) + b"]"
    assert len(codec.decode(wide)) == 500


def test_size_limit() -> None:
    for cls in CODECS:
        codec = cls(max_size=100)
        codec.decode(b'"' + b"x" * 98 + b'"')
        with pytest.raises(MessageTooLarge):
            codec.decode(b'"' + b"x" * 99 + b'"')


def test_edge_values_accepted(codec: UjsonCodec) -> None:
    assert codec.decode(b'{"a":1,"a":2}') == {"a": 2}
    assert codec.decode(b"1.5e300") == 1.5e300
    assert codec.decode(b'"e123 NaN Infinity"') == "e123 NaN Infinity"
    assert codec.decode(b'"\\ud83d\\ude00"') == "\U0001f600"


# -- the text pre-checks decide when to look; they must never wave a bad document through ----------

FILLER = b'{"name":"item-00001 with e, E, 0e and [brackets]","v":1.5},'  # letters and digits that look like numbers


def padded(inner: bytes) -> bytes:
    """``inner`` inside a message-sized list among many harmless dicts."""
    return b"[3,1,1,[" + FILLER * 200 + inner + b"]]"


@pytest.mark.parametrize(
    "inner",
    [b"1e400", b"1E400", b"-1e+400", b"1.e400", b"NaN", b"-Infinity", b"9" * 309 + b".0", b'{"k":[1e999]}'],
    ids=["e", "E", "signed", "dot-e", "nan", "-inf", "309-digits", "nested"],
)
def test_an_infinite_number_among_harmless_text_is_refused(codec: UjsonCodec, inner: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(padded(inner))


def test_large_finite_numbers_and_number_like_strings_pass(codec: UjsonCodec) -> None:
    value = codec.decode(padded(b'1.7e308,"1e400","NaN Infinity",' + b"1" * 309 + b".0"))
    assert value[3][-4] == 1.7e308 and value[3][-3] == "1e400" and value[3][-1] == float("1" * 309)


def nested(depth: int, string: bytes = b'"x"') -> bytes:
    """Objects and lists alternating, ``depth`` levels deep, each level also holding ``string``."""
    return b'{"a":[' * (depth // 2) + string + b"]}" * (depth // 2)


@pytest.mark.parametrize("depth", [64, 66])
def test_depth_read_from_the_text_counts_both_bracket_kinds(codec: UjsonCodec, depth: int) -> None:
    data = padded(nested(depth - 2))  # inside the message list and its data list
    assert data.count(b"[") + data.count(b"{") > DEFAULT_MAX_DEPTH
    if depth <= DEFAULT_MAX_DEPTH:
        codec.decode(data)
    else:
        with pytest.raises(DecodeError):
            codec.decode(data)


@pytest.mark.parametrize("string", [b'"]]]]"', b'"]["', b'"[]"', b'"}{"', b'"\\"]"'], ids=str)
def test_brackets_inside_strings_cannot_hide_depth(codec: UjsonCodec, string: bytes) -> None:
    # Closing brackets in strings would make a naive bracket count think the document is shallow.
    deep = b"[" * 70 + b",".join([string] * 70) + b"]" * 70
    with pytest.raises(DecodeError):
        codec.decode(deep)
    shallow = b"[" * 10 + b",".join([string] * 70) + b"]" * 10
    assert len(codec.decode(shallow)[0][0][0][0][0][0][0][0][0]) == 70


@pytest.mark.parametrize(
    "message",
    [
        [3, 1, 1, {(1, 2): 1}],
        [3, 1, 1, {"ok": {"inner": {(1, 2): 1}}}],
        [3, 1, 1, [{"ok": 1}, {frozenset(): 1}]],
        [3, 1, 1, ({"ok": [{object(): 1}]},)],
        [2, 1, "m", {"a": [1.5, float("nan")]}],
        [2, 1, "m", {float("inf"): 1}],
    ],
    ids=["key", "nested-key", "key-in-list", "key-in-tuple", "nan-value", "inf-key"],
)
def test_message_fast_path_still_refuses_bad_keys_and_numbers(codec: UjsonCodec, message: list[object]) -> None:
    with pytest.raises(EncodeError):
        codec.encode(message)


def test_message_fast_path_encodes_what_is_valid(codec: UjsonCodec) -> None:
    message = [3, 1, 1, {"n": None, 1: "int key", "list": [1.5, None, {"a": True}]}]
    assert codec.decode(codec.encode(message)) == [
        3,
        1,
        1,
        {"n": None, "1": "int key", "list": [1.5, None, {"a": True}]},
    ]


# -- RFC 8259 exactly: what ujson's own decoder would let through is refused --------------------------

#: Numbers outside the grammar that ujson reads (as 0, 1, 1.0, 100000.0, -0.5, ...), and others it refuses too.
OFF_GRAMMAR_NUMBERS = [b"-", b"01", b"00", b"-01", b"1.", b"0.", b"1.e5", b"-.5", b".5", b"+1", b"1e", b"1.5e", b"0x10"]


@pytest.mark.parametrize("number", OFF_GRAMMAR_NUMBERS, ids=lambda n: n.decode())
def test_numbers_outside_the_grammar_are_refused(codec: UjsonCodec, number: bytes) -> None:
    for document in (number, b"[" + number + b"]", b'[2,1,"echo",' + number + b"]", b'{"a":' + number + b"}"):
        with pytest.raises(DecodeError):
            codec.decode(document)
    with pytest.raises(DecodeError):  # also far into a long document full of number-like strings
        codec.decode(padded(number))


@pytest.mark.parametrize(
    "text", [b"0", b"-0", b"0.5", b"-0.0", b"1e05", b"1E+5", b"1e-5", b"10", b"105", b"1.05", b"0e1", b"-0.0e-0"]
)
def test_numbers_inside_the_grammar_pass(codec: UjsonCodec, text: bytes) -> None:
    assert codec.decode(b"[" + text + b"]") == [json.loads(text)]
    assert codec.decode(padded(text))[3][-1] == json.loads(text)


#: Characters numbers are made of, and their neighbours in a document.
NUMBER_ALPHABET = "-+.0123456789eE"


def strict_number(text: str) -> object:
    """Return what the standard library's strict decoder reads from ``text``, or None if it refuses it."""
    try:
        value = json.loads(text, parse_constant=lambda name: None)
    except ValueError:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@given(st.text(alphabet=NUMBER_ALPHABET, min_size=1, max_size=12))
def test_a_number_is_accepted_exactly_when_the_grammar_allows_it(text: str) -> None:
    expected = strict_number(text)
    for cls in CODECS:
        for document in (f"[{text}]", f'{{"k":[1,{text}]}}'):
            if expected is None:
                with pytest.raises(DecodeError):
                    cls().decode(document.encode())
            else:
                value = cls().decode(document.encode())
                assert (value[0] if isinstance(value, list) else value["k"][1]) == expected, (cls.name, document)


@pytest.mark.parametrize("char", [0, 1, 9, 10, 13, 31], ids=lambda c: f"U+{c:04X}")
def test_raw_control_characters_in_strings_are_refused(codec: UjsonCodec, char: int) -> None:
    with pytest.raises(DecodeError):
        codec.decode(b'["a' + bytes([char]) + b'b"]')
    with pytest.raises(DecodeError):
        codec.decode(b'{"a' + bytes([char]) + b'b":1}')
    assert codec.decode(b'["a\\u%04xb"]' % char) == ["a" + chr(char) + "b"]  # escaped, it is fine


def test_other_syntax_outside_the_grammar_is_refused(codec: UjsonCodec) -> None:
    for document in [b"[1,]", b'{"a":1,}', b"[,1]", b"\xef\xbb\xbf[1]", b"[1]\x00", b"{a:1}", b"['a']", b"[1 2]"]:
        with pytest.raises(DecodeError):
            codec.decode(document)


def test_integers_stay_exact_up_to_the_digit_limit() -> None:
    codec = UjsonCodec()
    assert codec.decode(b"[18446744073709551616]") == [2**64]
    assert codec.decode(b"[-" + b"9" * 4000 + b"]") == [-int("9" * 4000)]
    with pytest.raises(DecodeError):  # Python's own limit on str -> int conversion
        codec.decode(b"[" + b"9" * 4301 + b"]")


def test_a_str_document_is_read_as_its_utf8(codec: UjsonCodec) -> None:
    assert codec.decode('["é",1]') == ["é", 1]
    for document in ['["\ud800"]', "[01]", '["a\x01"]']:
        with pytest.raises(DecodeError):
            codec.decode(document)
