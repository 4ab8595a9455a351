"""What a long partial line costs: line framing stays linear in the bytes received, however they are cut.

A line still waiting for its newline used to be copied and re-scanned on
every chunk, so 1 MiB of blanks before a request, sent in 256-byte writes,
took the server about a second of CPU and delayed every other client as
long. Each test here compares a partial line with the same pieces carrying
complete lines, which cost one wake-up and one split each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import gevent
import gevent.event
import gevent.subprocess
import pytest
import ujson

from transports.framing import LineDecoder

REQUEST = b'[2,1,"echo",1]\n'
MIB = 1 << 20


def pieces(stream: bytes, size: int) -> list[bytes]:
    """Cut ``stream`` into pieces of ``size`` bytes (the last may be shorter)."""
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def feed_all(chunks: list[bytes]) -> list[bytes]:
    """Feed every chunk to one fresh decoder; return the lines produced."""
    decoder = LineDecoder()
    feed = decoder.feed
    lines: list[bytes] = []
    for chunk in chunks:
        lines.extend(feed(chunk))
    return lines


def cpu_seconds(func: Callable[[], object], runs: int = 3) -> float:
    """Return the least CPU time (``time.process_time``) of ``runs`` calls of ``func``."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        func()
        best = min(best, time.process_time() - started)
    return best


# 1-byte pieces cost a Python call per byte whatever the decoder does, so that case
# uses 64 KiB instead of 1 MiB to keep the test within a few seconds; it is still
# quadratic enough to fail by far a decoder that copies the partial line per piece.
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("piece", "total"), [(256, MIB), (1, 64 * 1024)], ids=["256-byte", "1-byte"])
@pytest.mark.parametrize("partial", ["blanks", "digits"])
def test_partial_line_costs_at_most_three_times_complete_lines(piece: int, total: int, partial: str) -> None:
    """``total`` bytes of one line (blanks, or a long list) cost at most 3 times the same pieces of complete lines."""
    body = total - len(REQUEST)
    if partial == "blanks":
        hostile = b" " * body + REQUEST
        expected = [hostile[:-1]]
    else:
        hostile = b"[" + b"0," * ((body - 2) // 2) + b"0]" + b"\n"
        expected = [hostile[:-1]]
    complete = (b"[0,1]\n" * (total // 6 + 1))[:total]
    hostile_chunks, complete_chunks = pieces(hostile, piece), pieces(complete, piece)
    assert feed_all(hostile_chunks) == expected
    assert len(feed_all(complete_chunks)) == total // 6
    hostile_cpu = cpu_seconds(lambda: feed_all(hostile_chunks))
    complete_cpu = cpu_seconds(lambda: feed_all(complete_chunks))
    print(f"{partial} in {piece}-byte pieces: {hostile_cpu * 1e3:.1f} ms, complete lines {complete_cpu * 1e3:.1f} ms")
    assert hostile_cpu <= 3 * complete_cpu, (hostile_cpu, complete_cpu)


@pytest.mark.parametrize("piece", [1, 256])
def test_partial_line_memory_stays_near_its_size_however_it_is_cut(piece: int) -> None:
    """A partial line held in 1-byte pieces takes about its own size, not an object per piece."""
    total = 256 * 1024
    chunks = pieces(b"[" + b"0" * (total - 1), piece)
    decoder = LineDecoder()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for chunk in chunks:
            decoder.feed(chunk)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert decoder.buffered == total
    assert held <= 1.5 * total, f"{held} bytes held for a partial line of {total}"


# -- against a real server ------------------------------------------------------------

TRICKLE_SCRIPT = Path(__file__).parents[1] / "helpers" / "trickle_process.py"
WRITE = 256
PAUSE = 0.0001  # between rounds of writes: each write is about one wake-up of the server
BLANKS = 1_048_556  # then REQUEST: the whole line stays under the 1 MiB default limit
#: Hostile connections in the real-server test: one alone, and four at once (the issue's reproduction).
HOSTILE_CONNECTIONS = (1, 4)


def process_cpu(pid: int) -> float:
    """Return the CPU seconds (user + system) process ``pid`` has used, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trickle(address: tuple[str, int], stream: bytes, connections: int) -> list[object]:
    """Send ``stream`` on ``connections`` connections from a child process; return the answers (yields)."""
    command = [sys.executable, str(TRICKLE_SCRIPT), address[0], str(address[1]), str(connections)]
    process = gevent.subprocess.Popen([*command, str(WRITE), str(PAUSE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        out, _ = process.communicate(stream, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, process.returncode
    return [ujson.loads(answer) for answer in json.loads(out)]


def run_phase(server, healthy, stream: bytes, connections: int) -> tuple[float, float, int]:
    """Trickle ``stream`` on ``connections`` plain connections while ``healthy`` calls echo in a loop.

    Returns the server's CPU seconds, the healthy client's worst latency, and how many calls it made.
    """
    latencies: list[float] = []
    done = gevent.event.Event()

    def call_in_a_loop() -> None:
        i = 0
        while not done.is_set():
            started = time.perf_counter()
            assert healthy.request("echo", i, timeout=5) == i
            latencies.append(time.perf_counter() - started)
            i += 1
            gevent.sleep(0.002)  # pacing: about one call each 2 ms, not a wait for a condition

    cpu_before = process_cpu(server.proc.pid)
    caller = gevent.spawn(call_in_a_loop)
    try:
        answers = trickle(server.address, stream, connections)
    finally:
        done.set()
        caller.get(timeout=10)
    cpu = process_cpu(server.proc.pid) - cpu_before
    assert [answer[2:] for answer in answers] == [[1, 1]] * connections, answers
    return cpu, max(latencies), len(latencies)


@pytest.mark.timeout(120)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads a process's CPU time from /proc")
@pytest.mark.parametrize("connections", HOSTILE_CONNECTIONS)
def test_partial_megabyte_lines_cost_the_server_little_and_do_not_delay_others(
    tcp_server_process, tcp_connect, connections: int
) -> None:
    """1 or 4 connections, 1 MiB of blanks each in 256-byte writes, then a request: at most 3x the CPU of whole lines.

    The server runs in a process of its own, and so do the hostile
    connections. The same number of 256-byte writes carrying complete
    (blank) lines is the reference; the CPU of each is the server
    process's own. A healthy client calling echo meanwhile sees a worst
    latency under 50 ms. The reference is counted as at least 50 ms of CPU,
    so that the 10 ms ticks of ``/proc`` cannot fail the test on their own.
    """
    server = tcp_server_process()
    healthy = tcp_connect(server.address)
    assert healthy.request("echo", "warm", timeout=5) == "warm"
    partial = b" " * BLANKS + REQUEST
    complete = (b" " * (WRITE - 1) + b"\n") * (BLANKS // WRITE) + REQUEST
    complete_cpu, complete_worst, complete_calls = run_phase(server, healthy, complete, connections)
    partial_cpu, partial_worst, partial_calls = run_phase(server, healthy, partial, connections)
    print(
        f"{connections} connection(s): server CPU: complete lines {complete_cpu:.3f} s,"
        f" partial lines {partial_cpu:.3f} s; healthy client"
        f" worst latency {complete_worst * 1e3:.1f} ms ({complete_calls} calls),"
        f" {partial_worst * 1e3:.1f} ms ({partial_calls} calls)"
    )
    assert partial_cpu <= 3 * max(complete_cpu, 0.05), (partial_cpu, complete_cpu)
    assert partial_worst < 0.05, f"healthy client waited {partial_worst * 1e3:.0f} ms"
