"""Run one file transfer in its own process and report its memory.

``python files_client.py get|put HOST PORT FROM TO WARMUP_REMOTE WARMUP_LOCAL``

Connects as ``rpcengine get``/``put`` do (``max_unacked`` 256), warms up with
a small download, resets the peak-RSS counter (``/proc/self/clear_refs``),
transfers, and prints one JSON line: the RSS before, the peak during
(VmHWM), the seconds taken and the transfer's result.
"""

from __future__ import annotations

import json
import os
import sys
import time

from dispatchers import dummy_rpc_handler
from dispatchers.files import get_file, put_file
from transports.tcp import connect


def status_kib(field: str, pid: str = "self") -> int:
    """Return a ``VmRSS``/``VmHWM`` figure of /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def reset_peak(pid: str = "self") -> bool:
    """Reset the peak RSS of a process to its current RSS; return whether the kernel allowed it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def main() -> None:
    direction, host, port, first, second, warmup, warmup_local = sys.argv[1:8]
    max_unacked = int(os.environ.get("FILES_MAX_UNACKED", "256"))
    engine = connect(host, int(port), dummy_rpc_handler, max_unacked=max_unacked, default_timeout=60)
    get_file(engine, warmup, warmup_local)
    reset = reset_peak()
    before = status_kib("VmRSS")
    started = time.monotonic()
    if direction == "get":
        result = get_file(engine, first, second)
    else:
        result = put_file(engine, first, second)
    seconds = time.monotonic() - started
    peak = status_kib("VmHWM")
    engine.close()
    print(json.dumps({"rss_before": before, "peak": peak, "reset": reset, "seconds": seconds, "result": result}))


if __name__ == "__main__":
    main()
