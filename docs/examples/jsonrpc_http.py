"""JSON-RPC 2.0 over HTTP: POST /jsonrpc with one request, a batch, notifications only, and a timeout."""

import json
import urllib.request

import gevent

from dispatchers import MethodDispatcher
from transports.websocket import WebSocketServer


class Calculator:
    """Adds, and sleeps."""

    def rpc_add(self, request):
        """Return the sum of the params, a list of numbers."""
        return sum(request.data)

    def rpc_sleep(self, request):
        """Sleep for params[0] seconds; return "slept"."""
        gevent.sleep(request.data[0])
        return "slept"


def post(url, body):
    """POST the JSON-RPC document ``body`` as curl does; return the status and the answer's body (blocking)."""
    headers = {"Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=10) as answer:
        return answer.status, answer.read()


server = WebSocketServer(("127.0.0.1", 0), MethodDispatcher(Calculator())).start()
url = f"http://127.0.0.1:{server.address[1]}/jsonrpc"
# urllib blocks: run it in a native thread, so that the server's greenlets keep running.
calls = gevent.get_hub().threadpool

# One request: 200, its response object.
status, body = calls.apply(post, (url, b'{"jsonrpc":"2.0","method":"add","params":[2,3],"id":1}'))
assert (status, body) == (200, b'{"jsonrpc":"2.0","id":1,"result":5}')

# A batch: one array, an answer for each request (errors included), none for the notification.
batch = [
    {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1},
    {"jsonrpc": "2.0", "method": "add", "params": [40, 2]},
    {"jsonrpc": "2.0", "method": "sub", "id": "x"},
]
status, body = calls.apply(post, (url, json.dumps(batch).encode()))
answers = {answer["id"]: answer for answer in json.loads(body)}
assert status == 200 and set(answers) == {1, "x"}
assert answers[1]["result"] == 3
assert answers["x"]["error"]["code"] == -32601  # method not found

# Only notifications: 204, no body.
status, body = calls.apply(post, (url, b'{"jsonrpc":"2.0","method":"add","params":[1]}'))
assert (status, body) == (204, b"")

# Not JSON: still 200, with a parse error whose id is null.
status, body = calls.apply(post, (url, b'{"jsonrpc":'))
assert status == 200 and json.loads(body)["error"]["code"] == -32700 and json.loads(body)["id"] is None

# ?timeout= bounds the wait: a request not answered in time gets -32001, the others their answers.
slow = [
    {"jsonrpc": "2.0", "method": "sleep", "params": [5], "id": 1},
    {"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": 2},
]
status, body = calls.apply(post, (url + "?timeout=0.2", json.dumps(slow).encode()))
answers = {answer["id"]: answer for answer in json.loads(body)}
assert answers[1]["error"]["code"] == -32001 and answers[2]["result"] == 2
server.stop()
