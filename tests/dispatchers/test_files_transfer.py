"""A 200 MiB file both ways through ``rpcengine serve --files``, with the RSS growth of each process bounded.

The server is ``rpcengine serve --files ROOT --writable`` in a subprocess;
each client is ``tests/helpers/files_client.py`` in another, which resets
its own peak-RSS counter after a warm-up and reports it. The server's peak
is reset the same way (``/proc/PID/clear_refs``) before each transfer.
``RPCENGINE_FILES_TEST_MIB`` sets the size (default 200).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import Served

pytestmark = [pytest.mark.timeout(240), pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="no /proc")]

ROOT = Path(__file__).resolve().parents[2]
SIZE_MIB = int(os.environ.get("RPCENGINE_FILES_TEST_MIB", "200"))
#: The most either process may grow while it moves the file.
MAX_GROWTH_KIB = 32 << 10
#: Seconds a transfer may take each way on a slow machine.
MAX_SECONDS = 40


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    return env


def make_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(mib):
            block = os.urandom(1 << 20)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def run_client(*args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "helpers" / "files_client.py"), *args],
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS * 3,
        env=environment(),
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return report


def test_a_large_file_both_ways_with_bounded_memory(tmp_path: Path) -> None:
    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    digest = make_file(root / "big.bin", SIZE_MIB)
    make_file(root / "warm.bin", 1)
    served = Served("--files", str(root), "--writable", "tcp://127.0.0.1:0", env=environment())
    try:
        port = served.wait_for(1)[0].rsplit(":", 1)[1]
        pid = served.proc.pid
        figures = {}
        for direction, source, target, landed in (
            ("get", "big.bin", str(local / "big.bin"), local / "big.bin"),
            ("put", str(local / "big.bin"), "up/big.bin", root / "up" / "big.bin"),
        ):
            (root / "up").mkdir(exist_ok=True)
            reset = reset_peak(pid)
            before = status_kib(pid, "VmRSS" if reset else "VmHWM")
            report = run_client(direction, "127.0.0.1", port, source, target, "warm.bin", str(local / "w"))
            server_growth = status_kib(pid, "VmHWM") - before
            client_growth = int(report["peak"]) - int(report["rss_before"])  # type: ignore[call-overload]
            figures[direction] = (report["seconds"], server_growth, client_growth)
            print(f"{direction} {SIZE_MIB} MiB: {report['seconds']:.1f} s, server +{server_growth} KiB, "
                  f"client +{client_growth} KiB")  # fmt: skip
            assert report["result"]["sha256"] == digest  # type: ignore[index]
            assert sha256_of(landed) == digest
            assert server_growth < MAX_GROWTH_KIB, figures
            assert client_growth < MAX_GROWTH_KIB, figures
            assert float(report["seconds"]) < MAX_SECONDS, figures  # type: ignore[arg-type]
        assert not [name for name in os.listdir(root / "up") if name.endswith(".part")]
    finally:
        assert served.stop() == 0, served.stderr
