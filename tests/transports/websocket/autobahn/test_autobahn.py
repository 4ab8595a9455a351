"""Autobahn TestSuite against our WebSocket layer, as a server and as a client.

``wstest`` (Python 2.7, ``autobahntestsuite``) lives in ``.autobahn-venv``,
made by ``bash .ci/install-autobahn.sh``; its ``wstest-loopback`` variant
binds every listener to 127.0.0.1. Without it the tests skip, or fail when
the ``CI`` environment variable is set. ``WSTEST`` names another binary.

* server mode: ``wstest -m fuzzingclient`` runs every case against an echo
  endpoint built from :class:`~transports.websocket.server.WebSocketServer`'s
  upgrade and :class:`~transports.websocket.link.WebSocketLink` (see ws_echo.py);
* client mode: ``wstest -m fuzzingserver`` serves the cases, and our client
  side (:func:`~transports.websocket.client.open_websocket` and the same link)
  echoes each one.

A case passes when both its behaviour and its closing behaviour are OK or
INFORMATIONAL; any other result must be listed, with that exact result and
a reason, in allowlist.json. Reports are written under pytest's tmp_path.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import gevent.subprocess
import pytest
from helpers.ws_echo import EchoServer, echo_client, read_one_message

REPO = Path(__file__).resolve().parents[4]
ALLOWLIST = Path(__file__).with_name("allowlist.json")
AGENT = "rpcengine"
PASSING = {"OK", "INFORMATIONAL"}
#: Excluded: 9.* are performance cases (messages up to 16 MiB, minutes of run time);
#: 12.* and 13.* test permessage-deflate compression, an extension we never negotiate.
EXCLUDED = ["9.*", "12.*", "13.*"]
#: Cases the suite (25.10.1) runs after the exclusions; fewer means the run went wrong.
MIN_CASES = 240
WSTEST_TIMEOUT = 600


def find_wstest() -> str:
    """Return the wstest binary to use; fail (under CI) or skip if there is none."""
    candidates = [os.environ.get("WSTEST"), str(REPO / ".autobahn-venv" / "bin" / "wstest-loopback")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = (
        "wstest-loopback (Autobahn TestSuite) not found in .autobahn-venv: run `bash .ci/install-autobahn.sh`, "
        "or set WSTEST to a wstest that listens on 127.0.0.1 only"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_wstest(wstest: str, args: list[str], workdir: Path) -> gevent.subprocess.Popen:
    """Start wstest in ``workdir`` with its output going to ``workdir/wstest.log``."""
    with (workdir / "wstest.log").open("wb") as log:
        return gevent.subprocess.Popen([wstest, *args], cwd=workdir, stdout=log, stderr=gevent.subprocess.STDOUT)


def log_tail(workdir: Path, lines: int = 30) -> str:
    """Return the end of wstest's output, for failure messages."""
    text = (workdir / "wstest.log").read_text(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def check_results(outdir: Path, mode: str) -> int:
    """Assert that every case passed or is allowlisted with its exact result; return the number of cases."""
    index = json.loads((outdir / "index.json").read_text())
    results: dict[str, dict[str, Any]] = index[AGENT]
    allowed: dict[str, dict[str, str]] = json.loads(ALLOWLIST.read_text())[mode]
    assert len(results) >= MIN_CASES, f"only {len(results)} cases ran"
    unexpected, allowlisted = [], []
    for case, result in sorted(results.items(), key=lambda item: [int(n) for n in item[0].split(".")]):
        outcome = (result["behavior"], result["behaviorClose"])
        if set(outcome) <= PASSING:
            continue
        entry = allowed.get(case)
        if entry is not None and (entry["behavior"], entry["behaviorClose"]) == outcome:
            allowlisted.append(case)
            continue
        report = json.loads((outdir / result["reportfile"]).read_text())
        unexpected.append(f"{case} {outcome}: {report['description']} -- {report['result']} / {report['resultClose']}")
    stale = sorted(set(allowed) - set(allowlisted))
    if stale:
        warnings.warn(f"{mode} mode: allowlisted Autobahn cases now pass: {stale}", stacklevel=1)
    assert not unexpected, f"{mode} mode, {len(unexpected)} cases failed:\n" + "\n".join(unexpected)
    return len(results)


@pytest.mark.timeout(WSTEST_TIMEOUT + 60)
def test_autobahn_server_mode(tmp_path):
    wstest = find_wstest()
    server = EchoServer(("127.0.0.1", 0)).start()
    try:
        spec = {
            "outdir": str(tmp_path / "reports" / "servers"),
            "servers": [{"agent": AGENT, "url": server.url()}],
            "cases": ["*"],
            "exclude-cases": EXCLUDED,
            "exclude-agent-cases": {},
        }
        (tmp_path / "fuzzingclient.json").write_text(json.dumps(spec))
        process = run_wstest(wstest, ["-m", "fuzzingclient", "-s", "fuzzingclient.json"], tmp_path)
        try:
            returncode = process.wait(timeout=WSTEST_TIMEOUT)
        finally:
            stop_process(process)
    finally:
        server.stop(timeout=1)
    assert returncode == 0, f"wstest exited with {returncode}:\n{log_tail(tmp_path)}"
    check_results(tmp_path / "reports" / "servers", "server")


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_listener(port: int, process: gevent.subprocess.Popen, timeout: float = 60.0) -> bool:
    """Wait (bounded) until something accepts connections on ``port``; False if wstest exits first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        try:
            gevent.socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.1)
    return False


def start_fuzzingserver(wstest: str, workdir: Path, attempts: int = 3) -> tuple[gevent.subprocess.Popen, int]:
    """Start ``wstest -m fuzzingserver`` on a free port; try another port if that one was taken meanwhile."""
    for _ in range(attempts):
        port = free_port()
        spec = {
            "url": f"ws://127.0.0.1:{port}",
            "outdir": str(workdir / "reports" / "clients"),
            "cases": ["*"],
            "exclude-cases": EXCLUDED,
            "exclude-agent-cases": {},
        }
        (workdir / "fuzzingserver.json").write_text(json.dumps(spec))
        process = run_wstest(wstest, ["-m", "fuzzingserver", "-u", "0", "-s", "fuzzingserver.json"], workdir)
        if wait_for_listener(port, process):
            return process, port
        stop_process(process)
    pytest.fail(f"wstest -m fuzzingserver did not start listening:\n{log_tail(workdir)}")


def stop_process(process: gevent.subprocess.Popen) -> None:
    """Terminate ``process`` (kill it if it lingers); bounded."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except gevent.subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.timeout(WSTEST_TIMEOUT + 60)
def test_autobahn_client_mode(tmp_path):
    wstest = find_wstest()
    process, port = start_fuzzingserver(wstest, tmp_path)
    try:
        base = f"ws://127.0.0.1:{port}"
        count = int(read_one_message(f"{base}/getCaseCount"))
        assert count >= MIN_CASES, f"wstest offers only {count} cases"
        with gevent.Timeout(WSTEST_TIMEOUT, AssertionError(f"client cases not done in {WSTEST_TIMEOUT} s")):
            for case in range(1, count + 1):
                with gevent.Timeout(60, AssertionError(f"case number {case} did not end within 60 s")):
                    echo_client(f"{base}/runCase?case={case}&agent={AGENT}")
            echo_client(f"{base}/updateReports?agent={AGENT}")
    finally:
        stop_process(process)
    assert check_results(tmp_path / "reports" / "clients", "client") == count


def test_allowlist_gives_a_reason_for_every_case():
    allowlist = json.loads(ALLOWLIST.read_text())
    assert set(allowlist) == {"server", "client"}
    for mode, cases in allowlist.items():
        for case, entry in cases.items():
            assert set(entry) == {"behavior", "behaviorClose", "reason"}, (mode, case)
            assert len(entry["reason"]) > 40, (mode, case)
            assert not set((entry["behavior"], entry["behaviorClose"])) <= PASSING, (mode, case)
