"""The work queue across processes: 3,000 requests over 3 workers, one of them killed with SIGKILL mid-way."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import gevent
import pytest
import redis

from tests.helpers.tcp import wait_until
from tests.transports.broker.processes import WorkerProcess
from transports.redis.queue import GROUP, connect_queue, queue_key

pytestmark = pytest.mark.timeout(180)

TOTAL = 3000


def test_3000_requests_over_3_workers_survive_a_killed_worker(
    redis_server: Any, redis_url: str, tmp_path: Path
) -> None:
    workers = [
        WorkerProcess(redis_url, "q", "jobs", f"w{i}", tmp_path / f"w{i}.log", concurrency=8, claim_idle=1.0)
        for i in range(3)
    ]
    caller = connect_queue(redis_url, "jobs", prefix="q", max_pending=TOTAL + 10)
    raw = redis.Redis(unix_socket_path=redis_server.path)
    try:
        calls: list[Any] = []
        submitting = gevent.spawn(lambda: calls.extend(caller.call("work", i, timeout=120) for i in range(TOTAL)))
        victim = workers[2]
        wait_until(lambda: len(victim.runs()) >= 600, 60, what="the third worker did 600")
        victim.kill()  # mid-way, holding entries it took and has not answered
        submitting.get(timeout=60)
        assert len(victim.runs()) < 1000, "it was killed before the end"
        pending = {c["name"].decode(): c["pending"] for c in raw.xpending(queue_key("q", "jobs"), GROUP)["consumers"]}
        in_flight_at_kill = pending.get(victim.consumer, 0)
        answers = [call.get() for call in calls]
        assert answers == list(range(TOTAL)), "all 3,000 answered, each with its own data"
        runs = Counter(run for worker in workers for run in worker.runs())
        assert set(runs) == {str(i) for i in range(TOTAL)}
        duplicates = sum(runs.values()) - TOTAL
        assert duplicates <= in_flight_at_kill, (duplicates, in_flight_at_kill)
        done = [len(worker.runs()) for worker in workers]
        assert min(done) >= 600, done
        assert [worker.blocks() for worker in workers] == [0, 0, 0]
        assert raw.xpending(queue_key("q", "jobs"), GROUP)["pending"] == 0
        print(f"runs per worker {done}, in flight at the kill {in_flight_at_kill}, duplicates {duplicates}")
    finally:
        caller.close()
        raw.close()
        for worker in workers:
            worker.stop()
