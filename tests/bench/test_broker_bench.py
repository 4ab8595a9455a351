"""The broker benchmark rows (``python -m benchmarks.broker``) run and print their ratios, at a tiny size, untimed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.broker import redis_server_binary

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not installed")
def test_fanout_and_queue_rows_run_and_print_ratios(tmp_path: Path) -> None:
    out = tmp_path / "broker.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "benchmarks.broker", "--clients", "20", "--broadcasts", "30", "--calls", "40",
               "--inflight", "8", "--reps", "1", "--json", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert re.search(
        r"\| fan-out: 30 broadcasts x 20 clients over 2 nodes \(deliveries/s\) \| [\d,]+ \| [\d,]+ \| \d+\.\d\d \|",
        text,
    ), text
    assert re.search(
        r"\| queue: 40 calls, 8 in flight, 1 worker \(calls/s\) \| [\d,]+ \| [\d,]+ \| \d+\.\d\d \|", text
    ), text
    figures = json.loads(out.read_text())
    for name in ("fanout-rpc", "fanout-raw", "queue-rpc", "queue-raw"):
        assert figures[name]["errors"] == [], (name, figures[name])
    assert figures["fanout-rpc"]["clients"] == figures["fanout-raw"]["clients"] == 20


def test_a_missing_redis_server_skips_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import benchmarks.broker

    monkeypatch.setattr(benchmarks.broker, "redis_server_binary", lambda: None)
    assert benchmarks.broker.main(["--quick"]) == 0
    assert "SKIP broker benchmarks: redis-server is not installed" in capsys.readouterr().out
