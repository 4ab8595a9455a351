"""A WebSocketServer in a process of its own, for the hostile-client tests.

Usage: ``python ws_server_process.py OPTIONS_JSON``. It listens on a free
loopback port, prints the port, then serves ``echo`` (returns its data) on
``/`` until killed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dispatchers import Registry
from transports.websocket import WebSocketServer


def main() -> None:
    """Serve with the options given on the command line."""
    registry = Registry()

    @registry.register
    def echo(request: Any) -> Any:
        return request.data

    server = WebSocketServer(("127.0.0.1", 0), registry, **json.loads(sys.argv[1])).start()
    print(server.address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
