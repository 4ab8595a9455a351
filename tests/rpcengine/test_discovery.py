"""The discovery datagrams (sans-I/O): their format, bounds, garbage ignored, the workgroup filter, the rate limit."""

from __future__ import annotations

import json

import pytest

from rpcengine.discovery import (
    MAX_ANSWER_SIZE,
    MAX_PROBE_SIZE,
    MAX_URLS,
    Answer,
    Probe,
    RateLimit,
    Responder,
    encode_answer,
    encode_probe,
    local_urls,
    new_probe,
    parse_answer,
    parse_probe,
)


def test_a_probe_is_the_documented_json_object() -> None:
    probe = new_probe("lab")
    assert json.loads(encode_probe(probe)) == {"rpcengine_discover": 1, "workgroup": "lab", "nonce": probe.nonce}
    assert parse_probe(encode_probe(probe)) == probe
    assert json.loads(encode_probe(new_probe()))["workgroup"] is None
    assert new_probe().nonce != new_probe().nonce and len(new_probe().nonce) == 16


def test_an_answer_echoes_the_nonce_and_says_name_version_workgroup_urls_only() -> None:
    responder = Responder("alpha", ["tcp://10.0.0.2:7000"], version="1.2", workgroup="lab")
    probe = new_probe("lab")
    datagram = responder.answer(responder.accept(encode_probe(probe), "10.0.0.1", 0.0) or probe)
    assert json.loads(datagram) == {
        "rpcengine_discover": 1,
        "nonce": probe.nonce,
        "name": "alpha",
        "version": "1.2",
        "workgroup": "lab",
        "urls": ["tcp://10.0.0.2:7000"],
    }
    assert parse_answer(datagram, probe.nonce) == Answer(probe.nonce, "alpha", "1.2", "lab", ("tcp://10.0.0.2:7000",))
    assert parse_answer(datagram, "another nonce") is None
    assert parse_probe(datagram) is None, "an answer is never taken for a probe (no ping-pong between responders)"


GARBAGE = [
    b"",
    b"\xff\xfe\x00",
    b"hello",
    b"[]",
    b"null",
    b'"rpcengine_discover"',
    b'{"rpcengine_discover": 2, "workgroup": null, "nonce": "n"}',
    b'{"rpcengine_discover": true, "workgroup": null, "nonce": "n"}',
    b'{"rpcengine_discover": 1.0, "workgroup": null, "nonce": "n"}',
    b'{"rpcengine_discover": "1", "workgroup": null, "nonce": "n"}',
    b'{"workgroup": null, "nonce": "n"}',
    b'{"rpcengine_discover": 1, "workgroup": null}',
    b'{"rpcengine_discover": 1, "nonce": "n"}',
    b'{"rpcengine_discover": 1, "workgroup": null, "nonce": 5}',
    b'{"rpcengine_discover": 1, "workgroup": null, "nonce": ""}',
    b'{"rpcengine_discover": 1, "workgroup": null, "nonce": "' + b"n" * 65 + b'"}',
    b'{"rpcengine_discover": 1, "workgroup": 7, "nonce": "n"}',
    b'{"rpcengine_discover": 1, "workgroup": "", "nonce": "n"}',
    b'{"rpcengine_discover": 1, "workgroup": "a\\nb", "nonce": "n"}',
    b'{"rpcengine_discover": 1, "workgroup": null, "nonce": "n", "urls": []}',
    b'{"rpcengine_discover": 1, "workgroup": null, "nonce": NaN}',
    b'{"rpcengine_discover": 1, "workgroup": null, "nonce": "n"',
    b"[" * 400 + b"]" * 400,
    b'{"rpcengine_discover": 1, "workgroup": null, "nonce": "n"} trailing',
]


@pytest.mark.parametrize("datagram", GARBAGE)
def test_garbage_is_not_a_probe(datagram: bytes) -> None:
    assert parse_probe(datagram) is None
    responder = Responder("alpha", ["tcp://10.0.0.2:7000"], version="1")
    assert responder.accept(datagram, "10.0.0.1", 0.0) is None
    assert (responder.ignored, responder.answered) == (1, 0)


def test_keys_a_later_version_adds_are_ignored() -> None:
    assert parse_probe(b'{"rpcengine_discover": 1, "workgroup": null, "nonce": "n", "hops": 1}') == Probe(None, "n")


def test_a_probe_over_the_size_bound_is_ignored_even_if_valid() -> None:
    probe = encode_probe(Probe(None, "n"))
    padded = probe[:-1] + b" " * (MAX_PROBE_SIZE - len(probe)) + b"}"
    assert len(padded) == MAX_PROBE_SIZE and parse_probe(padded) == Probe(None, "n")
    oversize = probe[:-1] + b" " * (MAX_PROBE_SIZE + 1 - len(probe)) + b"}"
    assert len(oversize) == MAX_PROBE_SIZE + 1 and parse_probe(oversize) is None


def test_an_answer_over_the_size_bound_is_refused_on_both_sides() -> None:
    urls = [f"tcp://host-{index:02}.{'x' * 200}.example:7000" for index in range(MAX_URLS)]
    with pytest.raises(ValueError, match="bytes"):
        Responder("alpha", urls, version="1")
    with pytest.raises(ValueError, match="at most"):
        Responder("alpha", ["tcp://h:1"] * (MAX_URLS + 1), version="1")
    with pytest.raises(ValueError, match="name"):
        Responder("a" * 129, ["tcp://h:1"], version="1")
    with pytest.raises(ValueError, match="workgroup"):
        new_probe("")
    big = json.dumps({"rpcengine_discover": 1, "nonce": "n", "name": "a", "version": "1", "workgroup": None,
                      "urls": ["tcp://h:1"], "pad": "x" * MAX_ANSWER_SIZE}).encode()  # fmt: skip
    assert parse_answer(big, "n") is None


def test_an_answer_that_fits_with_a_wildcard_fits_with_any_address() -> None:
    responder = Responder("alpha", ["tcp://0.0.0.0:7000"] * MAX_URLS, version="1")
    datagram = responder.answer(Probe(None, "n" * 64), "fe80:aaaa:bbbb:cccc:dddd:eeee:ffff:1111")
    assert len(datagram) <= MAX_ANSWER_SIZE


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"name": 5}, "a name that is not a string"),
        ({"version": ""}, "an empty version"),
        ({"workgroup": ["lab"]}, "a workgroup that is not a string"),
        ({"urls": "tcp://h:1"}, "urls that are not a list"),
        ({"urls": ["not a url"]}, "a url without a scheme"),
        ({"urls": ["tcp://h:1"] * (MAX_URLS + 1)}, "too many urls"),
    ],
)
def test_a_malformed_answer_is_dropped(answer: dict[str, object], why: str) -> None:
    document = {"rpcengine_discover": 1, "nonce": "n", "name": "a", "version": "1", "workgroup": None,
                "urls": ["tcp://h:1"], **answer}  # fmt: skip
    assert parse_answer(json.dumps(document).encode(), "n") is None, why


@pytest.mark.parametrize(
    ("ours", "asked", "answered"),
    [("lab", None, True), ("lab", "lab", True), ("lab", "other", False), ("lab", "LAB", False),
     (None, None, True), (None, "lab", False)],
)  # fmt: skip
def test_the_workgroup_filter(ours: str | None, asked: str | None, answered: bool) -> None:
    responder = Responder("alpha", ["tcp://10.0.0.2:7000"], version="1", workgroup=ours)
    assert (responder.accept(encode_probe(new_probe(asked)), "10.0.0.1", 0.0) is not None) is answered


def test_a_wildcard_listener_is_answered_with_the_address_the_probe_reached() -> None:
    urls = ("tcp://0.0.0.0:7000", "ws://[::]:8000/rpc", "tcp://127.0.0.1:7001", "ws://10.1.1.1:80/")
    assert local_urls(urls, "10.0.0.2") == (
        "tcp://10.0.0.2:7000",
        "ws://10.0.0.2:8000/rpc",
        "tcp://127.0.0.1:7001",
        "ws://10.1.1.1:80/",
    )
    assert local_urls(urls, "fd00::2")[:2] == ("tcp://[fd00::2]:7000", "ws://[fd00::2]:8000/rpc")
    assert local_urls(urls, None) == urls
    assert Responder("a", urls, version="1").has_wildcard
    assert not Responder("a", urls[2:], version="1").has_wildcard


def test_the_rate_limit_allows_at_most_n_in_any_sliding_window() -> None:
    limit = RateLimit(10, period=1.0)
    now, allowed = 0.0, []
    for _ in range(1000):  # a probe every 7 ms for 7 s
        if limit.allow(f"10.0.0.{int(now * 1000) % 200}", now):
            allowed.append(now)
        now += 0.007
    for start in allowed:
        assert sum(1 for moment in allowed if start <= moment < start + 1.0) <= 10
    assert 60 <= len(allowed) <= 80, "the budget comes back as the window slides"


def test_one_source_cannot_take_the_whole_budget() -> None:
    limit = RateLimit(20, 5)
    assert sum(limit.allow("10.0.0.66", index / 1000) for index in range(500)) == 5
    assert all(limit.allow(f"10.0.1.{index}", 0.5) for index in range(15)), "others still get answers"
    assert not limit.allow("10.0.2.1", 0.6), "the global bound holds"
    assert limit.allow("10.0.0.66", 1.01), "a second later the flooder gets its share again"


def test_the_rate_limit_remembers_a_bounded_number_of_sources() -> None:
    limit = RateLimit(10**6, 1)
    for index in range(10_000):
        limit.allow(f"source {index}", index / 10**5)
    assert len(limit._sources) == 256


def test_a_responder_applies_the_rate_limit_after_the_filter() -> None:
    responder = Responder("alpha", ["tcp://10.0.0.2:7000"], version="1", workgroup="lab",
                          max_rate=3, max_source_rate=2)  # fmt: skip
    other = encode_probe(new_probe("other"))
    for _ in range(10):
        assert responder.accept(other, "10.0.0.1", 0.0) is None  # not ours: costs no budget
    mine = encode_probe(new_probe("lab"))
    accepted = [responder.accept(mine, source, 0.1) is not None for source in ["10.0.0.1"] * 3 + ["10.0.0.3"] * 2]
    assert accepted == [True, True, False, True, False]
    assert responder.ignored == 12


def test_bad_rate_limits_are_refused() -> None:
    for counts in ((0, None), (1, 0)):
        with pytest.raises(ValueError):
            RateLimit(*counts)
    with pytest.raises(ValueError):
        RateLimit(1, 1, period=0)


def test_encode_answer_checks_the_fields() -> None:
    with pytest.raises(ValueError, match="URL"):
        encode_answer(Answer("n", "a", "1", None, ("no scheme",)))
    with pytest.raises(ValueError, match="version"):
        encode_answer(Answer("n", "a", "", None, ()))
