"""Call a service over plain HTTP: one-shot POSTs, a batch, and a long-poll session (run as shown in the docs)."""

import json
import urllib.request

import gevent

from dispatchers import MethodDispatcher
from transports.http.client import connect_poll
from transports.websocket import WebSocketServer


class Calculator:
    """Adds."""

    def rpc_add(self, request):
        """Return a + b."""
        a, b = request.data
        return a + b


def post(url, body):
    """POST ``body`` the way curl -d does; return the status and the answer's body (blocking)."""
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as answer:
        return answer.status, answer.read()


server = WebSocketServer(("127.0.0.1", 0), MethodDispatcher(Calculator())).start()
url = f"http://127.0.0.1:{server.address[1]}/rpc"
# urllib blocks: run it in a native thread, so that the server's greenlets keep running.
calls = gevent.get_hub().threadpool

status, body = calls.apply(post, (url, b'[2,1,"add",[2,3]]'))
assert (status, body) == (200, b"[3,1,1,5]")

status, body = calls.apply(post, (url, b'[[2,1,"add",[2,3]],[2,2,"add",[40,2]]]'))
assert json.loads(body) == [[3, 1, 1, 5], [3, 2, 2, 42]]

status, body = calls.apply(post, (url, b'[1,1,"add",[0,0]]'))  # notifications only
assert (status, body) == (204, b"")

# A long-poll session: a whole Engine, server calls and broadcasts included.
client = connect_poll(url)
assert client.request("add", [20, 22], timeout=5) == 42
client.close()
server.stop()
