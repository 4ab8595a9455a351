"""What a run was measured on: the machine, the library versions and the commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions are recorded with every run (missing ones are left out).
LIBRARIES = ("gevent", "greenlet", "ujson", "orjson", "websockets", "msgpack", "zerorpc", "pyzmq", "mprpc")


def _first(path: str, prefix: str) -> str | None:
    """The value after ``prefix`` on the first line of ``path`` that starts with it."""
    try:
        with open(path) as lines:
            return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), None)
    except OSError:
        return None


def library_versions() -> dict[str, str]:
    """Installed versions of :data:`LIBRARIES`, read from their metadata (nothing is imported)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def commit(root: Path) -> str | None:
    """The work tree's commit (with ``+dirty`` if it has uncommitted changes), or None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine_info(root: Path) -> dict[str, Any]:
    """CPU count and model, memory, Python and kernel versions, library versions, commit, load average."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _first("/proc/cpuinfo", "model name") or "unknown",
        "memory": _first("/proc/meminfo", "MemTotal") or "unknown",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "libraries": library_versions(),
        "commit": commit(root),
        "load_average_at_start": os.getloadavg(),
    }
