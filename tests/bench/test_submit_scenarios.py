"""The benchmarks' S and S8 scenarios (submit() from plain threads), without running a benchmark.

What is checked: the scenarios are selectable and run right after A in each
round; the thread load counts calls from every thread and reports failures
and the threads' CPUs; the threaded counter counts in the threads started
while it counts; and the ratios, microseconds and sentence of the report
against A of the same rounds.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import gevent
import pytest

from benchmarks.cli import parse_scenarios
from benchmarks.counting import ThreadedCounter
from benchmarks.loads import Meter, run_threads
from benchmarks.report import add_ratios, submit_sentence, submit_summary, submit_table, summarize_case
from benchmarks.rounds import plan


def test_scenarios_are_selectable_and_run_right_after_their_systems_a() -> None:
    assert parse_scenarios("A,S,S8") == ["A", "S", "S8"]
    available = {
        "raw-tcp": {"scenarios": ["A", "B"], "in_process": False},
        "rpcengine-tcp": {"scenarios": ["A", "S", "S8", "B"], "in_process": False},
    }
    available["mprpc"] = {"scenarios": ["A"], "in_process": False}
    cases = plan(available, ["B", "S8", "S", "A"], d_calls=100)
    assert [(c["system"], c["scenario"]) for c in cases] == [
        ("raw-tcp", "A"),
        ("rpcengine-tcp", "A"),
        ("rpcengine-tcp", "S"),
        ("rpcengine-tcp", "S8"),
        ("mprpc", "A"),
        ("raw-tcp", "B"),
        ("rpcengine-tcp", "B"),
    ]
    # without A, S and S8 keep their own place
    assert [c["scenario"] for c in plan(available, ["S", "B"], d_calls=100)] == ["S", "B", "B"]


class FakeConn:
    """A Conn whose calls return their data after a short pause (or raise once ``fail_after`` calls are made)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.threads: set[int] = set()
        self.fail_after = fail_after

    def call(self, data: Any, method: str = "echo") -> Any:
        with self.lock:
            self.calls += 1
            self.threads.add(threading.get_ident())
            if self.fail_after is not None and self.calls > self.fail_after:
                raise ConnectionError("gone")
        return data

    def close(self) -> None:
        pass


def test_run_threads_counts_every_thread_call() -> None:
    conn = FakeConn()
    rep = run_threads(conn, 8, {"x": 1}, 0.05, Meter(lambda: 0.0))
    assert rep.errors == 0
    assert rep.calls == conn.calls > 0
    assert rep.calls % 8 == 0  # each thread checks the clock every 8 calls
    assert len(conn.threads) == 8 and threading.get_ident() not in conn.threads
    assert rep.thread_cpus == sorted(os.sched_getaffinity(0))


def test_run_threads_reports_failed_calls() -> None:
    rep = run_threads(FakeConn(fail_after=20), 2, None, 0.05, Meter(lambda: 0.0))
    assert rep.errors == 2
    assert "ConnectionError" in rep.first_error


def test_threaded_counter_counts_new_threads_and_stops() -> None:
    counter = ThreadedCounter(lambda func, *args: func(*args))  # the "hub" is this thread

    def python_work() -> None:
        for _ in range(50):
            (lambda: None)()

    counter.start("calls")
    thread = threading.Thread(target=python_work)
    thread.start()
    thread.join()
    counted = counter.stop()
    assert counted >= 50
    thread = threading.Thread(target=python_work)
    thread.start()
    thread.join()
    assert counter.stop() == counted  # stopped: the new thread was not counted
    counter.start("switches")
    gevent.sleep(0)
    assert counter.stop() >= 2


def _case(system: str, scenario: str, rates: list[float], client_us: float) -> dict[str, Any]:
    case: dict[str, Any] = {
        "system": system,
        "scenario": scenario,
        "order": 0,
        "scenario_order": ["A", "S", "S8"].index(scenario),
        "label": scenario,
        "in_process": False,
        "counts": None,
        "rounds": [
            {"calls_per_s": r, "client_us": client_us, "server_us": 40.0, "errors": 0, "first_error": ""} for r in rates
        ],
    }
    if scenario != "A":
        case["rounds"][0]["thread_cpus"] = [0]
    summarize_case(case)
    return case


def test_submit_summary_against_a_of_the_same_rounds() -> None:
    cases = [
        _case("rpcengine-tcp", "A", [10_000, 8_000, 9_000], 60.0),
        _case("rpcengine-tcp", "S", [5_000, 5_000, 3_000], 120.0),
        _case("rpcengine-tcp", "S8", [20_000, 16_000, 9_000], 70.0),
    ]
    add_ratios(cases)
    assert cases[0]["ratios"] == {}
    assert cases[1]["ratios"]["rpcengine-tcp A"] == pytest.approx(0.5)
    rows = {row["scenario"]: row for row in submit_summary(cases)}
    s, s8 = rows["S"], rows["S8"]
    assert s["us_per_call"] == pytest.approx(200.0)
    assert s["reference_us_per_call"] == pytest.approx(1e6 / 9_000)
    # per round: 200 - 100, 200 - 125, 333.3 - 111.1: median 100
    assert s["extra_us_per_call"] == pytest.approx(100.0)
    assert s["client_cpu_us"] == 120.0 and s["reference_client_cpu_us"] == 60.0
    assert s["thread_cpus"] == [0]
    assert s8["ratio"] == pytest.approx(2.0)
    assert s8["thread_us_per_call"] == pytest.approx(8e6 / 16_000)
    assert s8["extra_us_per_call"] is None
    assert "S8 submit, 8 threads" in submit_table(list(rows.values()))
    sentence = submit_sentence(list(rows.values()))
    assert sentence is not None
    assert "submit() from a thread costs 200.0 us per call against 111.1 us for request() on the hub" in sentence
    assert "8 threads: 16,000 calls/s" in sentence


def test_submit_summary_without_a() -> None:
    cases = [_case("rpcengine-tcp", "S", [5_000], 120.0)]
    add_ratios(cases)
    (row,) = submit_summary(cases)
    assert row["ratio"] is None and row["reference_us_per_call"] is None
    assert submit_sentence([row]) is None
