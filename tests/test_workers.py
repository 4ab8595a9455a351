"""The bounded worker pool: reuse, bound, join and close."""

from __future__ import annotations

import gevent
import gevent.event

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
