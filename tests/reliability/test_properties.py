"""Property tests (hypothesis): round trips, any input to a documented outcome, and a session state machine.

Bounded: small ``max_examples`` and step counts keep the whole file well
under 30 seconds; no deadline (gevent scheduling makes timings noisy).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

import gevent
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from rpcengine import (
    Call,
    ConnectionLost,
    DecodeError,
    Disconnect,
    Engine,
    Error,
    Heartbeat,
    InvalidMessage,
    Message,
    MessageTooLarge,
    Notification,
    Request,
    RequestException,
    RequestTimeout,
    Response,
)
from rpcengine.codec import OrjsonCodec, UjsonCodec
from rpcengine.messages import MAX_MESSAGE_ID
from rpcengine.wire import parse_frame
from transports.framing import LineDecoder, frame_line
from transports.session import Session
from transports.session.config import SessionConfig

from .conftest import Figures

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CODECS = [UjsonCodec(max_size=1 << 16), OrjsonCodec(max_size=1 << 16)]
DOCUMENTED = (DecodeError, MessageTooLarge, InvalidMessage)

# -- strategies ------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)
ids = st.integers(min_value=0, max_value=MAX_MESSAGE_ID)
methods = st.text(min_size=1, max_size=30)
messages = st.one_of(
    st.builds(Heartbeat, ids),
    st.builds(Notification, ids, methods, json_values),
    st.builds(Request, ids, methods, json_values),
    st.builds(Response, ids, ids, json_values),
    st.builds(Error, ids, ids, json_values),
    st.just(Disconnect()),
)


def _tally(figures: Figures, key: str) -> None:
    """Count one hypothesis example under ``properties.key``."""
    figures.add("properties", key)


# -- round trips -----------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@FAST
@given(value=json_values)
def test_codec_round_trip(codec: Any, value: Any, figures: Figures) -> None:
    """Any JSON value encodes to one line of UTF-8 and decodes back equal."""
    encoded = codec.encode(value)
    assert b"\n" not in encoded
    encoded.decode("utf-8")
    assert codec.decode(encoded) == value
    _tally(figures, f"codec_round_trips_{codec.name}")


@FAST
@given(value=json_values)
def test_codecs_agree(value: Any, figures: Figures) -> None:
    """What one codec encodes, the other decodes to the same value."""
    ujson_codec, orjson_codec = CODECS
    assert orjson_codec.decode(ujson_codec.encode(value)) == value
    assert ujson_codec.decode(orjson_codec.encode(value)) == value
    _tally(figures, "codec_cross_checks")


@FAST
@given(message=messages)
def test_message_round_trip(message: Message, figures: Figures) -> None:
    """Every message survives to_list, the codec and from_list unchanged."""
    for codec in CODECS:
        assert parse_frame(codec, codec.encode(message.to_list())) == message
    _tally(figures, "message_round_trips")


@FAST
@given(
    batch=st.lists(messages, min_size=1, max_size=8),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_framing_round_trip(batch: list[Message], crlf: bool, cuts: list[int], figures: Figures) -> None:
    """Messages framed as lines and split anywhere come out whole, in order."""
    codec = CODECS[0]
    payloads = [codec.encode(m.to_list()) for m in batch]
    data = b"".join(frame_line(p)[:-1] + (b"\r\n" if crlf else b"\n") for p in payloads)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]
    decoder = LineDecoder(1 << 16)
    lines = [line for chunk in chunks for line in decoder.feed(chunk)]
    assert lines == payloads
    assert decoder.buffered == 0
    assert [parse_frame(codec, line) for line in lines] == batch
    _tally(figures, "framing_round_trips")


# -- any bytes in: a message or a documented error ---------------------------------

valid_frames = messages.map(lambda m: CODECS[0].encode(m.to_list()))


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid frame with a few bytes inserted, deleted or replaced (or plain random bytes)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    data = bytearray(draw(valid_frames))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        where = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.integers(min_value=0, max_value=255))
        if action == "insert":
            data.insert(where, byte)
        elif where < len(data):
            if action == "delete":
                del data[where]
            else:
                data[where] = byte
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(data=mutated_frames())
def test_any_bytes_parse_to_message_or_documented_error(data: bytes, figures: Figures) -> None:
    """codec.decode + Message.from_list: a message, or DecodeError / MessageTooLarge / InvalidMessage."""
    for codec in CODECS:
        try:
            message = parse_frame(codec, data)
        except DOCUMENTED:
            continue
        assert isinstance(message, Message)
        assert parse_frame(codec, codec.encode(message.to_list())) == message
    _tally(figures, "parser_inputs")


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=400) | valid_frames.map(lambda f: f + b"\n"),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
    max_line=st.integers(min_value=1, max_value=64),
)
def test_line_decoder_any_bytes(data: bytes, cuts: list[int], max_line: int, figures: Figures) -> None:
    """LineDecoder: lines or DecodeError/MessageTooLarge; a clean chunked run equals the one-shot run."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunked: list[bytes] = []
    decoder = LineDecoder(max_line)
    failed = False
    for a, b in itertools.pairwise([0, *points, len(data)]):
        try:
            chunked.extend(decoder.feed(data[a:b]))
        except (DecodeError, MessageTooLarge):
            failed = True
            break
        assert decoder.buffered <= max_line + 1
    for line in chunked:
        assert b"\n" not in line and 0 < len(line) <= max_line
    try:
        whole = LineDecoder(max_line).feed(data)
    except (DecodeError, MessageTooLarge):
        assert failed, "one feed refused what a chunked feed accepted"
    else:
        if not failed:
            assert chunked == whole
    _tally(figures, "line_decoder_inputs")


# -- the engine and session state machine ---------------------------------------------


class FakeLink:
    """What a Session needs of a link: records writes, reports its end once."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.written: list[bytes] = []
        self.closed = False
        self.close_reason = ""
        self.receiver: Any = None
        self.on_lost: Any = None
        self.on_protocol_error: Any = None
        self.on_activity: Any = None
        self.on_partial: Any = None
        self.budget: Any = None
        self.held = 0
        self.owner: Any = None
        self.can_probe = False
        self.reading = True
        self.peer_address = ("fake", number)
        self.buffered = 0

    def detach_callbacks(self) -> None:
        """Forget the upward callbacks."""
        self.receiver = self.on_lost = self.on_protocol_error = self.on_activity = self.on_partial = None

    def stop_reading(self) -> None:
        """Pass no more frames on."""
        self.reading = False

    def probe(self) -> None:
        """Plain lines cannot be probed."""

    def flush_quietly(self, timeout: float) -> bool:
        """Everything is written at once."""
        return True

    def write(self, payload: bytes, block: bool = True) -> None:
        """Record ``payload``; raise ConnectionLost once closed."""
        if self.closed:
            raise ConnectionLost("fake link closed")
        self.written.append(payload)

    def write_many(self, payloads: list[bytes]) -> None:
        """Record several payloads."""
        for payload in payloads:
            self.write(payload)

    def write_nowait(self, payload: bytes) -> bool:
        """Record ``payload`` (never full)."""
        self.write(payload)
        return True

    def write_final(self, payload: bytes) -> bool:
        """Record a last payload before close."""
        if not self.closed:
            self.written.append(payload)
        return not self.closed

    def close(self, reason: str = "closed locally") -> None:
        """End the link and tell its owner."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        callback, self.on_lost = self.on_lost, None
        if callback is not None:
            callback(self, reason)


class Clock:
    """An injected clock advanced by the machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


#: The machine under test (Call._finish reports completions to it).
CURRENT: list[Any] = []
MACHINE_STEPS: Counter[str] = Counter()


def settle() -> None:
    """Let every runnable greenlet run until all wait again."""
    for _ in range(4):
        gevent.idle()


class EngineSessionMachine(RuleBasedStateMachine):
    """An Engine on a resumable, handshaken Session over fake links, driven rule by rule."""

    def __init__(self) -> None:
        super().__init__()
        CURRENT[:] = [self]
        self.clock = Clock()
        self.config = SessionConfig(heartbeat_interval=1.0, heartbeat_timeout=3.0, resume_grace=5.0)
        self.session = Session(self.config, resumable=True, handshaken=True, clock=self.clock)
        self.session._arm_timer = lambda: None  # type: ignore[method-assign]  # the machine ticks
        self.engine = Engine(self.session, self._serve)
        self.sent_requests: set[int] = set()
        original_send = self.session.send

        def recording_send(message: Message, **kwargs: Any) -> None:
            if type(message) is Request:
                self.sent_requests.add(message.message_id)  # type: ignore[attr-defined]
            original_send(message, **kwargs)

        self.session.send = recording_send  # type: ignore[method-assign]
        self.links = 0
        self.link = self._new_link()
        self.session.attach(self.link)  # type: ignore[arg-type]
        self.calls: dict[int, dict[str, Any]] = {}
        self.completions: list[int] = []
        self.peer_next = 1
        self.outbox_before = self._outbox_ids()
        self.acked_before = 0

    def _serve(self, request: Any) -> Any:
        """The engine's rpc handler: echo."""
        return request.data

    def _new_link(self) -> FakeLink:
        self.links += 1
        return FakeLink(self.links)

    def _outbox_ids(self) -> list[int]:
        return [ident for ident, _ in self.session.outbox]

    def _deliver(self, items: list[Any]) -> None:
        """Hand a frame from the peer to the session, over the current link."""
        self.session.frame_received(json.dumps(items).encode())

    def _track_outbox(self) -> None:
        self.outbox_before = self._outbox_ids()
        self.acked_before = self.session.peer_acked

    # -- rules ---------------------------------------------------------------

    @rule(kind=st.sampled_from(["long", "short", "zero"]), data=st.integers(0, 100))
    def request(self, kind: str, data: int) -> None:
        """Call the peer; the call waits in its own greenlet."""
        MACHINE_STEPS["request"] += 1
        timeout = {"long": 1000.0, "short": 0.02, "zero": 0.0}[kind]
        ident = self.engine._last_message_id + 1
        record: dict[str, Any] = {"kind": kind, "data": data, "answers": [], "result": None}

        def call() -> None:
            try:
                record["result"] = ("ok", self.engine.request("m", data, timeout=timeout))
            except RequestException as exc:
                record["result"] = ("error", exc.data)
            except (RequestTimeout, ConnectionLost) as exc:
                record["result"] = (type(exc).__name__, None)

        record["greenlet"] = gevent.spawn(call)
        settle()
        if ident in self.sent_requests:
            self.calls[ident] = record
        else:
            assert self.engine.closed or record["result"] is not None

    @precondition(lambda self: self.session.link is not None and not self.session.closed)
    @rule(pick=st.integers(0, 1000), error=st.booleans(), data=st.integers(0, 100), unknown=st.booleans())
    def peer_answers(self, pick: int, error: bool, data: int, unknown: bool) -> None:
        """The peer answers a request (one waiting, one done already, or one never sent)."""
        if self.session.link is None or self.session.closed:
            return
        MACHINE_STEPS["answer"] += 1
        if unknown or not self.calls:
            target = 10**9 + pick
        else:
            target = sorted(self.calls)[pick % len(self.calls)]
        if target in self.calls and target in self.engine._pending:
            self.calls[target]["answers"].append(("error" if error else "ok", data))
        self._deliver([4 if error else 3, self.peer_next, target, data])
        self.peer_next += 1
        settle()

    @precondition(lambda self: self.session.link is not None and not self.session.closed)
    @rule(ack=st.integers(0, 60), beyond=st.booleans())
    def peer_heartbeat(self, ack: int, beyond: bool) -> None:
        """The peer acknowledges our messages up to ``ack`` (possibly beyond what was sent)."""
        if self.session.link is None or self.session.closed:
            return
        MACHINE_STEPS["heartbeat"] += 1
        value = self.session.last_sent + ack if beyond else min(ack, self.session.last_sent)
        self._deliver([0, value])
        settle()

    @precondition(lambda self: self.session.link is not None and not self.session.closed)
    @rule(data=st.integers(0, 100))
    def peer_requests(self, data: int) -> None:
        """The peer calls us; the answer goes to the outbox and the link."""
        if self.session.link is None or self.session.closed:
            return
        MACHINE_STEPS["peer_request"] += 1
        self._deliver([2, self.peer_next, "echo", data])
        self.peer_next += 1
        settle()

    @precondition(lambda self: self.session.link is not None and not self.session.closed)
    @rule(back=st.integers(1, 5))
    def peer_repeats_an_id(self, back: int) -> None:
        """The peer resends an id already received: dropped as a duplicate."""
        if self.session.link is None or self.session.closed or self.peer_next <= 1:
            return
        MACHINE_STEPS["duplicate"] += 1
        dropped = self.session.duplicates_dropped
        self._deliver([1, max(1, self.peer_next - back), "echo", None])
        settle()
        assert self.session.duplicates_dropped == dropped + 1

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 2.0, 3.5, 6.0]))
    def tick(self, seconds: float) -> None:
        """Time passes: heartbeats, the silent peer declared dead, the resume deadline."""
        MACHINE_STEPS["tick"] += 1
        self.clock.now += seconds
        self.session.tick(self.clock.now)
        settle()

    @precondition(lambda self: self.session.link is not None)
    @rule()
    def link_lost(self) -> None:
        """The connection drops; the resumable session waits for a resume."""
        if self.session.link is None:
            return
        MACHINE_STEPS["link_lost"] += 1
        self.session.link.close("lost")  # type: ignore[union-attr]
        settle()
        assert self.session.closed or self.session.detached

    @precondition(lambda self: self.session.detached)
    @rule(ack=st.integers(0, 60))
    def resume(self, ack: int) -> None:
        """A new connection resumes the session; what the peer lacks is sent again, in order."""
        MACHINE_STEPS["resume"] += 1
        peer_ack = min(ack, self.session.last_sent)
        acked = max(peer_ack, self.session.peer_acked)
        expected = [payload for ident, payload in self.session.outbox if ident > acked]
        self.link = self._new_link()
        self.session.attach(self.link, peer_ack)  # type: ignore[arg-type]
        assert self.link.written == expected
        settle()

    @precondition(lambda self: any(c["kind"] != "long" and c["result"] is None for c in self.calls.values()))
    @rule()
    def let_short_timeouts_expire(self) -> None:
        """Wait (bounded) for the calls with short timeouts to end."""
        MACHINE_STEPS["expire"] += 1
        short = [c["greenlet"] for c in self.calls.values() if c["kind"] != "long"]
        gevent.joinall(short, timeout=2)
        assert all(g.dead for g in short)

    @rule(dice=st.integers(0, 7))
    def close(self, dice: int) -> None:
        """Now and then the application closes the engine: every waiting call fails with ConnectionLost."""
        if dice or self.engine.closed:
            return
        MACHINE_STEPS["close"] += 1
        self.engine.close()
        settle()
        assert self.engine.pending_count == 0

    # -- invariants ------------------------------------------------------------

    @invariant()
    def no_request_completes_twice(self) -> None:
        """Each request is completed (answered, lost) at most once, with its first answer."""
        repeated = [ident for ident, count in Counter(self.completions).items() if count > 1]
        assert not repeated, f"requests completed twice: {repeated}"
        for ident, call in self.calls.items():
            result = call["result"]
            if result is not None and result[0] in ("ok", "error"):
                assert call["answers"], f"request {ident} completed without an answer"
                assert result == call["answers"][0], (ident, result, call["answers"])

    @invariant()
    def pending_only_holds_sent_and_not_completed(self) -> None:
        """Pending requests were handed to the transport and have not completed."""
        pending = set(self.engine._pending)
        assert pending <= self.sent_requests
        done = {ident for ident, call in self.calls.items() if call["result"] is not None}
        assert not pending & done, pending & done
        assert not pending & set(self.completions)

    @invariant()
    def outbox_shrinks_only_on_acknowledgement(self) -> None:
        """Outbox entries leave only when acknowledged (or when the session ends); order is kept."""
        now = self._outbox_ids()
        assert now == sorted(now) and len(set(now)) == len(now)
        assert self.session.peer_acked <= self.session.last_sent
        if self.session.closed:
            assert now == []
        else:
            removed = set(self.outbox_before) - set(now)
            assert all(ident <= self.session.peer_acked for ident in removed), (removed, self.session.peer_acked)
            kept = [ident for ident in self.outbox_before if ident in set(now)]
            assert now[: len(kept)] == kept
            assert all(ident > self.session.peer_acked for ident in now)
        self._track_outbox()

    def teardown(self) -> None:
        """Close the engine and let every call end (bounded)."""
        self.engine.close()
        greenlets = [c["greenlet"] for c in self.calls.values()]
        gevent.joinall(greenlets, timeout=5)
        assert all(g.dead for g in greenlets)
        assert self.engine.pending_count == 0
        CURRENT.clear()


@pytest.mark.timeout(120)
def test_engine_session_state_machine(monkeypatch: pytest.MonkeyPatch, figures: Figures, quiet_logs: None) -> None:
    """Request, response, timeout, heartbeat, disconnect, resume: the three invariants hold throughout."""
    original = Call._finish

    def counting(self: Call, outcome: Any) -> bool:
        done = original(self, outcome)
        if done and CURRENT:  # an outbound request completed (answered, timed out, cancelled or lost)
            CURRENT[0].completions.append(self.message_id)
        return done

    monkeypatch.setattr(Call, "_finish", counting)
    MACHINE_STEPS.clear()
    run_state_machine_as_test(
        EngineSessionMachine,
        settings=settings(max_examples=80, stateful_step_count=50, deadline=None),
    )
    for step, count in MACHINE_STEPS.items():
        figures.add("properties", f"machine_{step}", count)
