"""The JSON layer: a generated corpus of malformed and edge-case documents (see ``corpus.py``).

Each document goes through both codecs and the message parser (a value or
a documented ProtocolError, never anything else), then over every
transport as a frame: an Error reply, a clean close, or a handled message
within 100 ms, while a healthy client on the same server keeps getting
answers.
"""

from __future__ import annotations

from collections import Counter

import pytest

from rpcengine import EncodeError, InvalidMessage, Message, ProtocolError, Request
from rpcengine.codec import DEFAULT_MAX_SIZE, OrjsonCodec, UjsonCodec

from .conftest import Figures
from .corpus import fill_id, json_documents, oversize_document
from .support import BUDGET, Baseline, HealthyClient, World, send_bad, wait_until

DOCUMENTS = [*json_documents(), ("just over the 1 MiB limit", oversize_document(DEFAULT_MAX_SIZE))]


@pytest.mark.parametrize("codec", [UjsonCodec(), OrjsonCodec()], ids=lambda c: c.name)
def test_codecs_accept_or_refuse_with_documented_errors(codec: object, figures: Figures) -> None:
    """Every document decodes to a message or raises a ProtocolError subclass; messages round-trip."""
    outcomes: Counter[str] = Counter()
    for label, document in DOCUMENTS:
        data = fill_id(document, 12345)
        try:
            message = Message.from_list(codec.decode(data))  # type: ignore[attr-defined]
        except ProtocolError as exc:
            outcomes[type(exc).__name__] += 1
            continue
        except Exception as exc:  # pragma: no cover - the failure this test exists for
            pytest.fail(f"{label}: undocumented {type(exc).__name__}: {exc}")
        outcomes["message"] += 1
        try:
            encoded = codec.encode(message.to_list())  # type: ignore[attr-defined]
        except EncodeError:
            outcomes["unencodable"] += 1
            continue
        assert Message.from_list(codec.decode(encoded)) == message, label  # type: ignore[attr-defined]
    figures.add("json", f"documents_through_{codec.name}", len(DOCUMENTS))  # type: ignore[attr-defined]
    for kind, count in outcomes.items():
        figures.add("json", f"{codec.name}_{kind}", count)  # type: ignore[attr-defined]


def expected_outcomes(document: bytes, world: World) -> tuple[set[str], int | None]:
    """Return the acceptable outcomes for ``document`` on ``world`` and the request id to watch."""
    codec = UjsonCodec()
    if not document.strip(b" \t\r"):
        return {"survive", "close"}, None  # a blank line is skipped by the TCP framer
    try:
        message = Message.from_list(codec.decode(document))
    except InvalidMessage as exc:
        if exc.request_id is not None:
            return {"error"}, exc.request_id
        return ({"close"} if world.closes_on_garbage else {"survive"}), None
    except ProtocolError:
        return ({"close"} if world.closes_on_garbage else {"survive"}), None
    if type(message) is Request:
        return {"response", "error"}, message.message_id
    return {"survive"}, None


@pytest.mark.timeout(120)
def test_corpus_over_transport(world: World, baseline: Baseline, figures: Figures) -> None:
    """Every corpus document as a frame: answered, refused or closed within 100 ms."""
    victim = world.connect()
    healthy = HealthyClient(world.connect())
    failures: list[str] = []
    outcomes: Counter[str] = Counter()
    worst = 0.0
    for label, document in DOCUMENTS:
        if victim.client.closed:
            victim.close()
            victim = world.connect()
        data = fill_id(document, victim.client.next_message_id())
        allowed, request_id = expected_outcomes(data, world)
        outcome = send_bad(victim, data, request_id)
        outcomes[outcome.kind] += 1
        worst = max(worst, outcome.elapsed)
        if outcome.kind not in allowed:
            failures.append(f"{label}: {outcome.kind} {outcome.detail!r:.100}, expected {sorted(allowed)}")
        elif outcome.elapsed > (BUDGET if outcome.kind != "response" else 1.0):  # a valid request may be big
            failures.append(f"{label}: {outcome.kind} after {outcome.elapsed * 1000:.1f} ms")
    stats = healthy.stop()
    victim.close()
    healthy.conn.close()
    victim = healthy = None  # drop references before the leak check
    assert not stats.failures, stats.failures
    wait_until(lambda: world.server_sessions() == 0, 5, "every server session closed")
    left = baseline.wait_back()
    section = f"json[{world.name}]"
    figures.add(section, "documents", len(DOCUMENTS))
    for kind, count in outcomes.items():
        figures.add(section, kind, count)
    figures.worst(section, "worst_ms", worst * 1000)
    figures.add(section, "healthy_calls", stats.calls)
    figures.add("leaks", "found", len(left))
    assert not failures, "\n".join(failures)
    assert not left, f"objects or fds left behind: {left}"
