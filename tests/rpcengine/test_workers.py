"""The bounded worker pool: reuse, bound, join and close."""

from __future__ import annotations

import gevent
import gevent.event
from helpers.tcp import wait_until

from rpcengine.workers import WorkerPool


def test_reuses_workers_and_bounds_jobs() -> None:
    pool = WorkerPool(3)
    done: list[int] = []
    for i in range(100):
        assert pool.submit(done.append, i)
    assert pool.join(timeout=5)
    assert sorted(done) == list(range(100))
    assert pool.workers <= 3
    release = gevent.event.Event()
    started: list[int] = []

    def block(i: int) -> None:
        started.append(i)
        release.wait()

    submitter = gevent.spawn(lambda: [pool.submit(block, i) for i in range(5)])
    gevent.wait([submitter], timeout=0.1)
    assert len(started) == 3 and pool.busy == 3 and not submitter.ready()
    release.set()
    submitter.get(timeout=5)
    assert pool.join(timeout=5)
    assert len(started) == 5
    pool.close()


def test_join_times_out_and_close_wakes_blocked_submitters() -> None:
    pool = WorkerPool(1)
    release = gevent.event.Event()
    pool.submit(lambda _: release.wait(), None)
    assert not pool.join(timeout=0.05)
    blocked = gevent.spawn(pool.submit, print, "never")
    gevent.wait([blocked], timeout=0.05)
    assert not blocked.ready()
    pool.close()
    assert blocked.get(timeout=1) is False
    assert pool.submit(print, "never") is False
    release.set()
    assert pool.join(timeout=5)


def test_escaping_exception_is_logged_not_fatal(caplog: object) -> None:
    pool = WorkerPool(1)

    def boom(_: object) -> None:
        raise RuntimeError("boom")

    pool.submit(boom, None)
    results: list[int] = []
    pool.submit(results.append, 1)
    assert pool.join(timeout=5)
    assert results == [1]
    pool.kill()


def test_burst_of_fast_jobs_runs_on_one_worker_in_order() -> None:
    pool = WorkerPool(8)
    order: list[int] = []
    for i in range(100):
        pool.submit(order.append, i)
    assert pool.join(timeout=5)
    assert order == list(range(100))
    assert pool.workers == 1, "jobs that never block need no second worker"
    pool.close()


def test_blocking_job_does_not_hold_up_the_jobs_behind_it() -> None:
    pool = WorkerPool(4)
    release = gevent.event.Event()
    done: list[str] = []

    def slow(_: object) -> None:
        release.wait()
        done.append("slow")

    pool.submit(slow, None)
    for i in range(3):
        pool.submit(lambda i: done.append(f"fast{i}"), i)
    deadline = gevent.get_hub().loop.now() + 2
    while len(done) < 3 and gevent.get_hub().loop.now() < deadline:
        gevent.sleep(0.001)
    assert done == ["fast0", "fast1", "fast2"], "the fast jobs ran while the slow one blocked"
    assert pool.busy == 1
    release.set()
    assert pool.join(timeout=5)
    assert done[-1] == "slow"
    assert pool.workers == 2
    pool.close()


def test_close_still_runs_jobs_submitted_before_it() -> None:
    pool = WorkerPool(2)
    release = gevent.event.Event()
    ran: list[int] = []
    pool.submit(lambda _: release.wait(), None)
    pool.submit(ran.append, 1)
    pool.close()
    assert pool.submit(ran.append, 2) is False
    release.set()
    assert pool.join(timeout=5)
    assert ran == [1], "a job queued before close runs; one submitted after does not"


def test_idle_workers_are_shared_between_pools_and_end_when_idle(monkeypatch: object) -> None:
    from rpcengine import workers

    monkeypatch.setattr(workers, "IDLE_WORKER_SECONDS", 0.2)  # type: ignore[attr-defined]
    first, second = WorkerPool(2), WorkerPool(2)
    ran_on: list[object] = []
    first.submit(lambda _: ran_on.append(gevent.getcurrent()), None)
    assert first.join(timeout=5)
    lot = workers._parking_lot()
    assert len(lot) >= 1, "the worker parks in the thread's lot, not in its pool"
    second.submit(lambda _: ran_on.append(gevent.getcurrent()), None)
    assert second.join(timeout=5)
    assert ran_on[0] is ran_on[1], "the second pool reused the first one's idle worker"
    wait_until(lambda: len(lot) == 0, 5, what="idle workers end after IDLE_WORKER_SECONDS")
    assert ran_on[0].dead  # type: ignore[attr-defined]
    first.close()
    second.close()
