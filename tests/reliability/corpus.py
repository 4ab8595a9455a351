"""A corpus of malformed and edge-case JSON documents, generated (nothing downloaded).

Each entry is ``(label, document)``; a document may contain the placeholder
``ID``, which a test replaces with a fresh message id so that a session
never mistakes it for a duplicate. The corpus covers invalid UTF-8, lone
surrogates, NaN/Infinity/1e400, nesting from 31 to 100,000 levels, huge
integers, duplicate keys, trailing garbage, and near-miss syntax.
"""

from __future__ import annotations

from collections.abc import Iterator

NESTING_DEPTHS = (31, 32, 62, 63, 64, 65, 100, 1000, 1023, 1024, 1025, 10_000, 100_000)


def _request(data: bytes) -> bytes:
    """Return a Request for ``echo`` whose data is the raw JSON text ``data``."""
    return b'[2,ID,"echo",' + data + b"]"


def json_documents() -> Iterator[tuple[str, bytes]]:
    """Yield ``(label, document)`` for every malformed or edge-case JSON document."""
    # Invalid UTF-8, in the method and in the data.
    for label, raw in [
        ("lone continuation byte", b"\x80"),
        ("byte 0xff", b"\xff"),
        ("invalid 2-byte sequence", b"\xc3\x28"),
        ("overlong slash", b"\xc0\xaf"),
        ("overlong NUL", b"\xc0\x80"),
        ("UTF-8 encoded surrogate", b"\xed\xa0\x80"),
        ("UTF-8 encoded low surrogate", b"\xed\xbf\xbf"),
        ("truncated 3-byte sequence", b"\xe2\x82"),
        ("truncated 4-byte sequence", b"\xf0\x9f\x98"),
        ("code point above U+10FFFF", b"\xf4\x90\x80\x80"),
        ("5-byte sequence", b"\xf8\x88\x80\x80\x80"),
    ]:
        yield f"invalid UTF-8 in data: {label}", _request(b'"a' + raw + b'b"')
        yield f"invalid UTF-8 in method: {label}", b'[2,ID,"ec' + raw + b'ho",null]'
        yield f"invalid UTF-8 outside strings: {label}", b"[2,ID," + raw + b"]"
    # Surrogates as escapes.
    for label, escape in [
        ("lone high surrogate", b"\\ud800"),
        ("lone low surrogate", b"\\udc00"),
        ("reversed pair", b"\\udc00\\ud800"),
        ("high surrogate at end", b"x\\ud83d"),
        ("high surrogate then letter", b"\\ud83dx"),
        ("uppercase escape", b"\\uD800"),
        ("valid pair", b"\\ud83d\\ude00"),
        ("escaped NUL", b"\\u0000"),
        ("bad escape", b"\\x41"),
        ("short escape", b"\\u12"),
    ]:
        yield f"string escape: {label}", _request(b'"' + escape + b'"')
        yield f"key escape: {label}", _request(b'{"' + escape + b'":1}')
    # Non-finite and extreme numbers.
    for text in [
        b"NaN",
        b"-NaN",
        b"nan",
        b"Infinity",
        b"-Infinity",
        b"inf",
        b"1e400",
        b"-1e400",
        b"1e309",
        b"1E+999",
        b"0e400",
        b"1e-400",
        b"2.2250738585072014e-308",
        b"1.7976931348623157e308",
        b"1.7976931348623159e308",
        b"-0",
        b"-0.0",
        b"0.1e1",
        b"01",
        b"1.",
        b".5",
        b"+1",
        b"0x10",
        b"1e",
        b"-",
        b"1e+",
        b"--1",
        b"1_000",
    ]:
        yield f"number {text.decode()}", _request(text)
    for label, value in [
        ("2**53", 2**53),
        ("2**63-1", 2**63 - 1),
        ("2**63", 2**63),
        ("2**64-1", 2**64 - 1),
        ("2**64", 2**64),
        ("-2**63", -(2**63)),
        ("-2**63-1", -(2**63) - 1),
        ("10**30", 10**30),
        ("-10**30", -(10**30)),
    ]:
        yield f"integer {label}", _request(str(value).encode())
        yield f"integer {label} as id", b"[2," + str(value).encode() + b',"echo",null]'
    yield "integer of 400 digits", _request(b"9" * 400)
    yield "integer of 5000 digits", _request(b"7" * 5000)
    yield "float of 1000 digits", _request(b"0." + b"3" * 1000)
    yield "exponent of 400 digits", _request(b"1e" + b"1" * 400)
    # Nesting, balanced and not, in lists and in objects.
    for depth in NESTING_DEPTHS:
        yield f"nested lists, {depth} levels", _request(b"[" * depth + b"]" * depth)
        yield f"nested objects, {depth} levels", _request(b'{"a":' * depth + b"1" + b"}" * depth)
        yield f"unclosed lists, {depth} levels", _request(b"[" * depth)
        yield f"nesting as the whole message, {depth} levels", b"[" * depth + b"]" * depth
    yield "mixed nesting 500 levels", _request(b'[{"a":' * 250 + b"1" + b"}]" * 250)
    # Duplicate keys, odd keys and odd objects.
    yield "duplicate keys", _request(b'{"a":1,"a":2}')
    yield "duplicate keys, 1000 times", _request(b"{" + b",".join(b'"k":%d' % i for i in range(1000)) + b"}")
    yield "empty key", _request(b'{"":1}')
    yield "number key", _request(b"{1:2}")
    yield "unquoted key", _request(b"{a:1}")
    yield "single-quoted string", _request(b"'a'")
    yield "missing colon", _request(b'{"a" 1}')
    yield "trailing comma in list", _request(b"[1,2,]")
    yield "trailing comma in object", _request(b'{"a":1,}')
    yield "leading comma", _request(b"[,1]")
    yield "double comma", _request(b"[1,,2]")
    yield "unterminated string", _request(b'"abc')
    yield "raw control character in string", _request(b'"a\x01b"')
    yield "raw tab in string", _request(b'"a\tb"')
    yield "raw DEL in string", _request(b'"a\x7fb"')
    # Literals.
    for text in [b"true", b"false", b"null", b"tru", b"nul", b"True", b"None", b"undefined", b"truex"]:
        yield f"literal {text.decode()}", _request(text)
    # Trailing and leading garbage around a valid message.
    valid = b'[2,ID,"echo","ok"]'
    for label, doc in [
        ("trailing letter", valid + b" x"),
        ("trailing bracket", valid + b"]"),
        ("second message on the same line", valid + b"[1,2]"),
        ("trailing comment", valid + b" // c"),
        ("trailing NUL", valid + b"\x00"),
        ("trailing comma", valid + b","),
        ("leading BOM", b"\xef\xbb\xbf" + valid),
        ("leading NUL", b"\x00" + valid),
        ("leading garbage", b"x" + valid),
        ("leading spaces and tabs", b" \t " + valid),
        ("trailing spaces and tabs", valid + b" \t "),
        ("spaces everywhere", b'[ 2 , ID , "echo" , "ok" ]'),
        ("comment inside", b'[2,ID,/* c */"echo","ok"]'),
        ("only whitespace", b" \t "),
        ("only a NUL", b"\x00"),
        ("a bare string", b'"[2,1,\\"echo\\",null]"'),
        ("a bare number", b"2"),
        ("an object", b'{"rpcengine":1}'),
        ("an object after the handshake", b'{"rpcengine":1,"session":null,"ack":0}'),
        ("HTTP request line", b"GET / HTTP/1.1"),
        ("TLS client hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
    ]:
        yield f"framing: {label}", doc
    # Large strings and many items.
    yield "string of 100,000 bytes", _request(b'"' + b"s" * 100_000 + b'"')
    yield "list of 50,000 items", _request(b"[" + b",".join([b"0"] * 50_000) + b"]")
    yield "string of 100,000 escapes", _request(b'"' + b"\\n" * 50_000 + b'"')
    yield "string of 20,000 emoji", _request(b'"' + "\U0001f600".encode() * 20_000 + b'"')


def oversize_document(max_size: int) -> bytes:
    """Return a Request just over ``max_size`` whatever id replaces ``ID`` (a string padded to fit)."""
    head, tail = b'[2,ID,"echo","', b'"]'
    return head + b"p" * (max_size + 1 - len(head) - len(tail)) + b"p" * 16 + tail


def fill_id(document: bytes, ident: int) -> bytes:
    """Replace the ``ID`` placeholder in ``document`` with ``ident``."""
    return document.replace(b"ID", str(ident).encode(), 1)
