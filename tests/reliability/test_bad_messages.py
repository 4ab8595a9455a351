"""Bad message lists and bad method names, on loopback, TCP and WebSocket.

Every input is injected as one well-framed, valid-JSON frame and must lead,
within :data:`~support.BUDGET` (100 ms, measured), to an Error reply (when
the Request id can be recovered), a clean close (TCP and WebSocket close on
garbage they cannot answer; the loopback logs and skips it), or, for odd
but legal traffic, nothing but a connection that still answers. A healthy
client on the same server keeps getting answers throughout.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from rpcengine import RequestException
from rpcengine.messages import MAX_MESSAGE_ID

from .conftest import Figures
from .support import BUDGET, Baseline, Connection, HealthyClient, World, send_bad, wait_until

#: A case: a label, a function of a fresh message id giving the list, and the expected outcome.
Case = tuple[str, Callable[[int], Any], str]

FULL: dict[int, list[Any]] = {
    0: [0, "ID"],
    1: [1, "ID", "echo", None],
    2: [2, "ID", "echo", None],
    3: [3, "ID", 1, None],
    4: [4, "ID", 1, None],
    -1: [-1],
}
BAD_IDS: list[Any] = ["1", 1.5, True, False, None, -1, MAX_MESSAGE_ID + 1, [1], {}, 2**63]
BAD_CODES: list[Any] = ["2", 2.0, True, False, None, [2], {"c": 2}, 5, -2, 7, 2**53, 1.5, -0.0]
BAD_METHODS: list[Any] = [1, None, "", [], {}, True, 1.5, ["echo"]]


def _fill(layout: list[Any], ident: int) -> list[Any]:
    """Return ``layout`` with the ``"ID"`` placeholder replaced by ``ident``."""
    return [ident if item == "ID" else item for item in layout]


def _garbage_or_error(items: list[Any]) -> str:
    """Return ``error`` if the list looks like a Request whose id can be read, else ``garbage``."""
    if len(items) >= 2 and type(items[0]) is int and items[0] == 2 and type(items[1]) is int:
        return "error" if 0 <= items[1] <= MAX_MESSAGE_ID else "garbage"
    return "garbage"


def message_list_cases() -> Iterator[Case]:
    """Yield every malformed or odd message list this test sends."""
    for code, layout in FULL.items():
        for size in range(1, len(layout)):
            cut = layout[:size]
            yield f"code {code} with {size} of {len(layout)} fields", (lambda i, c=cut: _fill(c, i)), ""
        for extra in (1, 2, 5):
            longer = layout + [None] * extra
            yield f"code {code} with {extra} extra fields", (lambda i, c=longer: _fill(c, i)), ""
    for code in BAD_CODES:
        yield f"code {code!r}", (lambda i, c=code: [c, i, "echo", None]), ""
        yield f"code {code!r} in 2 fields", (lambda i, c=code: [c, i]), ""
    for code in (0, 1, 2, 3, 4):
        for bad in BAD_IDS:
            layout = list(FULL[code])
            yield f"code {code} id {bad!r}", (lambda i, c=layout, b=bad: [b if x == "ID" else x for x in c]), ""
    for code in (3, 4):
        for bad in BAD_IDS:
            yield f"code {code} request id {bad!r}", (lambda i, c=code, b=bad: [c, i, b, None]), ""
    for code in (1, 2):
        for bad in BAD_METHODS:
            yield f"code {code} method {bad!r}", (lambda i, c=code, b=bad: [c, i, b, None]), ""
    for value in ({}, {"rpcengine": 1}, "text", 1, None, True, [], [[2, 1, "echo", None]], [None]):
        yield f"not a message: {value!r}", (lambda i, v=value: v), ""
    # Odd but legal traffic: ignored, the connection keeps answering.
    yield "Response for an unknown id", (lambda i: [3, i, 987_654_321, "late"]), "survive"
    yield "Error for an unknown id", (lambda i: [4, i, 987_654_321, {"error": "x"}]), "survive"
    yield "Heartbeat acknowledging 2**53-1 (never sent)", (lambda i: [0, MAX_MESSAGE_ID]), "survive"
    yield "Heartbeat acknowledging 10**6 (never sent)", (lambda i: [0, 10**6]), "survive"
    yield "Heartbeat acknowledging 0", (lambda i: [0, 0]), "survive"
    yield "Notification of an unknown method", (lambda i: [1, i, "no_such_method", [1, 2]]), "survive"
    yield "Notification with null method data", (lambda i: [1, i, "echo", None]), "survive"


CASES = list(message_list_cases())


def _expected(case_expect: str, items: Any, world: World) -> set[str]:
    """Return the outcomes acceptable for ``items`` on ``world``."""
    expect = case_expect or _garbage_or_error(items if isinstance(items, list) else [items])
    if expect == "garbage":
        return {"close"} if world.closes_on_garbage else {"survive"}
    return {expect}


class Run:
    """One bad-input run: a replaceable victim connection, a healthy client, the tallies."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.victim = world.connect()
        self.healthy = HealthyClient(world.connect())
        self.outcomes: Counter[str] = Counter()
        self.worst = 0.0
        self.failures: list[str] = []

    def fresh(self) -> Connection:
        """Return an open victim connection (a new one after a close)."""
        if self.victim.client.closed:
            self.victim.close()
            self.victim = self.world.connect()
        return self.victim

    def check(self, label: str, frame: bytes, request_id: int | None, allowed: set[str]) -> None:
        """Send ``frame``; record a failure unless the outcome is allowed and within budget."""
        outcome = send_bad(self.fresh(), frame, request_id)
        self.outcomes[outcome.kind] += 1
        self.worst = max(self.worst, outcome.elapsed)
        if outcome.kind not in allowed:
            self.failures.append(f"{label}: {outcome.kind} ({outcome.detail!r}), expected {sorted(allowed)}")
        elif outcome.elapsed > BUDGET:
            self.failures.append(f"{label}: {outcome.kind} after {outcome.elapsed * 1000:.1f} ms")
        elif outcome.kind == "error" and outcome.detail.get("error") not in ("invalid_message", "method_not_found"):
            self.failures.append(f"{label}: unexpected Error data {outcome.detail!r}")

    def finish(self, baseline: Baseline) -> int:
        """Stop the healthy client, close everything, check health and leaks; return calls made."""
        stats = self.healthy.stop()
        self.victim.close()
        self.healthy.conn.close()
        del self.victim, self.healthy  # the leak check must not count what this run still holds
        assert not stats.failures, stats.failures
        assert stats.calls > 0
        wait_until(lambda: self.world.server_sessions() == 0, 5, "every server session closed")
        left = baseline.wait_back()
        assert not left, f"objects or fds left behind: {left}"
        return stats.calls


def test_message_lists(world: World, baseline: Baseline, figures: Figures) -> None:
    """Every code with too few/many fields, wrong types, bools as ints, odd ids: answered or closed."""
    run = Run(world)
    for label, make, expect in CASES:
        ident = run.fresh().client.next_message_id()
        items = make(ident)
        frame = json.dumps(items).encode()
        allowed = _expected(expect, items, world)
        request_id = ident if allowed == {"error"} else None
        run.check(label, frame, request_id, allowed)
    calls = run.finish(baseline)
    section = f"messages[{world.name}]"
    figures.add(section, "inputs", len(CASES))
    for kind, count in run.outcomes.items():
        figures.add(section, kind, count)
    figures.worst(section, "worst_ms", run.worst * 1000)
    figures.add(section, "healthy_calls", calls)
    assert not run.failures, "\n".join(run.failures)


def test_duplicate_and_out_of_order_ids(world: World, baseline: Baseline, figures: Figures) -> None:
    """Repeated and out-of-order ids: each Request answered at most once per delivery, nothing breaks."""
    run = Run(world)
    conn = run.fresh()
    answers: Counter[str] = Counter()
    for round_ in range(50):
        first, second = conn.client.next_message_id(), conn.client.next_message_id()
        # A Request sent twice with the same id.
        frame = json.dumps([2, first, "echo", ["dup", round_]]).encode()
        conn.inject(frame)
        run.check(f"round {round_}: duplicate request", frame, None, {"survive"})
        # The session layer drops a repeated id (it was handled); the loopback has no such layer.
        expected = 1 if world.name != "loopback" else 2
        conn.wait_for(lambda first=first, expected=expected: len(conn.replies_to(first)) >= expected, 2)
        replies = conn.replies_to(first)
        answers[f"{len(replies)} replies"] += 1
        assert len(replies) == expected, replies
        assert all(m.data == ["dup", round_] for _, m in replies)
        # Out of order: the higher id first, then the lower one.
        later, earlier = json.dumps([1, second, "echo", 0]).encode(), json.dumps([1, first, "echo", 0]).encode()
        run.check(f"round {round_}: notification {second}", later, None, {"survive"})
        run.check(f"round {round_}: late id {first}", earlier, None, {"survive"})
    conn = None  # drop references before the leak check
    calls = run.finish(baseline)
    section = f"messages[{world.name}]"
    figures.add(section, "duplicate_or_reordered_inputs", 200)
    figures.add(section, "healthy_calls", calls)
    assert not run.failures, "\n".join(run.failures)


def test_response_twice_for_the_same_id(world: World, baseline: Baseline, figures: Figures) -> None:
    """A peer answering one Request twice (and once with an Error too): the call completes once."""
    run = Run(world)
    conn = run.fresh()
    for round_ in range(100):
        ident = conn.client._last_message_id + 1  # the id the next request will get

        def answer_twice(ident: int = ident, round_: int = round_) -> None:
            conn.inject_to_client(json.dumps([3, 10**9 + 3 * round_, ident, ["first", round_]]).encode())
            conn.inject_to_client(json.dumps([3, 10**9 + 3 * round_ + 1, ident, ["second", round_]]).encode())
            conn.inject_to_client(json.dumps([4, 10**9 + 3 * round_ + 2, ident, {"error": "third"}]).encode())

        conn.server.rpc_handler = _answering_first(conn.server.rpc_handler, answer_twice)
        result = conn.client.request("echo", ["real", round_], timeout=5)
        conn.server.rpc_handler = conn.server.rpc_handler.inner  # type: ignore[attr-defined]
        assert result == ["first", round_]
        wait_until(lambda ident=ident: len(conn.replies_to(ident)) >= 4, 2, "all four replies delivered")
        assert conn.client.pending_count == 0
    conn = answer_twice = None  # drop references before the leak check
    calls = run.finish(baseline)
    section = f"messages[{world.name}]"
    figures.add(section, "repeated_replies", 300)
    figures.add(section, "healthy_calls", calls)


class _answering_first:
    """Wrap a handler: run ``before()`` (which answers behind the engine's back), then the handler."""

    def __init__(self, inner: Callable[[Any], Any], before: Callable[[], None]) -> None:
        self.inner = inner
        self.before = before

    def __call__(self, request: Any) -> Any:
        if request.method == "echo" and isinstance(request.data, list) and request.data[:1] == ["real"]:
            self.before()
        return self.inner(request)


BAD_NAMES: list[str] = [
    "__class__",
    "__init__",
    "__dict__",
    "__call__",
    "__getattribute__",
    "_private",
    "_rpc_private",
    "rpc_echo",
    "constant",
    "counted",
    "release",
    "class",
    "a-b",
    "a b",
    "1echo",
    "echo()",
    "echo.real",
    "ec\x00ho",
    "echo\n",
    " echo",
    "ECHO",
    "\u00e9cho",
    "\U0001f600",
    "x" * 201,
    "y" * 10_000,
    "z" * 100_000,
    "nope",
]


def test_method_names(world: World, baseline: Baseline, figures: Figures) -> None:
    """Dunder, private, non-identifier, long, non-callable and property names: method_not_found fast."""
    run = Run(world)
    failures: list[str] = []
    worst = 0.0
    for name in BAD_NAMES:
        for kind in ("request", "notification"):
            conn = run.fresh()
            if kind == "request":
                ident = conn.client._last_message_id + 1
                frame = json.dumps([2, ident, name, None]).encode()
                outcome = send_bad(conn, frame, ident)
                if outcome.kind != "error" or outcome.detail.get("error") != "method_not_found":
                    failures.append(f"{name[:40]!r}: {outcome}")
                try:
                    conn.client.request(name, None, timeout=2)
                    failures.append(f"{name[:40]!r} was called")
                except RequestException as exc:
                    if exc.data.get("error") != "method_not_found":
                        failures.append(f"{name[:40]!r}: {exc.data}")
            else:
                conn.client.notify(name, None)
                outcome = send_bad(conn, json.dumps([1, conn.client.next_message_id(), name, 1]).encode())
                if outcome.kind != "survive":
                    failures.append(f"notification {name[:40]!r}: {outcome}")
            worst = max(worst, outcome.elapsed)
            if outcome.elapsed > BUDGET:
                failures.append(f"{name[:40]!r} ({kind}) took {outcome.elapsed * 1000:.1f} ms")
    assert world.service.property_reads == 0, "a property was evaluated"
    assert world.service._private_calls == 0, "a private method was called"
    conn = None  # drop references before the leak check
    calls = run.finish(baseline)
    section = f"dispatch[{world.name}]"
    figures.add(section, "inputs", len(BAD_NAMES) * 3)
    figures.worst(section, "worst_ms", worst * 1000)
    figures.add(section, "healthy_calls", calls)
    assert not failures, "\n".join(failures)
