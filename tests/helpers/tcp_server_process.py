"""A TcpServer in a process of its own, for tests that kill, freeze, restart or load it.

Usage: ``python tcp_server_process.py HOST PORT OPTIONS_JSON``. It prints the
port it listens on, then serves until killed. Methods: ``echo`` (returns its
data), ``hang`` (never answers), ``connections`` (open connections now).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import gevent

from dispatchers import Registry
from transports.tcp import TcpServer


def main() -> None:
    """Serve on the address and options given on the command line."""
    host, port, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    registry = Registry()

    @registry.register
    def echo(request: Any) -> Any:
        return request.data

    @registry.register
    def hang(request: Any) -> Any:
        gevent.sleep(3600)

    @registry.register
    def connections(request: Any) -> int:
        return len(server.links)

    server = TcpServer((host, port), registry, **options).start()
    print(server.address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
