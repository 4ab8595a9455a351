"""The type hints hold: mypy, configured in setup.cfg, finds no error.

The core (``rpcengine``, strict) and ``dispatchers`` must pass; ``transports``
is checked on its own so that its state cannot hide a regression in the core.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: A cold run takes a few seconds; this bounds a hung or thrashing one.
MYPY_TIMEOUT = 100


def run_mypy(*targets: str) -> subprocess.CompletedProcess[str]:
    """Run mypy on ``targets`` from the repository root (so it reads setup.cfg); return the result."""
    return subprocess.run(
        [sys.executable, "-m", "mypy", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=MYPY_TIMEOUT,
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    """Fail with mypy's whole output unless it exited 0."""
    assert result.returncode == 0, f"mypy exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_core_and_dispatchers() -> None:
    assert_clean(run_mypy("rpcengine", "dispatchers"))


def test_transports() -> None:
    assert_clean(run_mypy("transports"))
