"""JSON-RPC 2.0 over WebSocket: a call, the server calling the client back, a broadcast, a cancel."""

import json

import gevent
import websocket  # the websocket-client package: a plain blocking client

from dispatchers import MethodDispatcher
from rpcengine import HandlerInterrupted
from transports.websocket import WebSocketServer


class Service:
    """Greets its callers by the name they give, and works until told to stop."""

    def rpc_greet(self, request):
        """Ask the caller its name (a call to the client), and greet it."""
        name = request.engine.request("whoami", timeout=5)
        return f"Hello, {name}!"

    def rpc_crunch(self, request):
        """Work for params[0] seconds; return "done"."""
        try:
            gevent.sleep(request.data[0])
        except HandlerInterrupted as exc:  # the caller sent $/cancelRequest
            print("crunch stopped:", exc.reason)  # crunch stopped: cancelled
            raise
        return "done"


server = WebSocketServer(("127.0.0.1", 0), MethodDispatcher(Service())).start()
host, port = server.address
# websocket-client blocks: run it in a native thread, so that the server's greenlets keep running.
calls = gevent.get_hub().threadpool


def send(ws, document):
    """Send one JSON-RPC document as a text frame (blocking)."""
    calls.apply(ws.send, (json.dumps(document),))


def receive(ws):
    """Return the next JSON-RPC document the server sends (blocking)."""
    return json.loads(calls.apply(ws.recv))


# The /jsonrpc path speaks JSON-RPC from the start (or any path, offering the "jsonrpc" subprotocol).
ws = calls.apply(websocket.create_connection, (f"ws://{host}:{port}/jsonrpc",), {"timeout": 5})

# The handler of greet calls the client: a request object with the engine's own integer id.
send(ws, {"jsonrpc": "2.0", "method": "greet", "id": "g"})
call = receive(ws)
assert call == {"jsonrpc": "2.0", "id": call["id"], "method": "whoami"}  # no params: its data is None
assert isinstance(call["id"], int)
send(ws, {"jsonrpc": "2.0", "id": call["id"], "result": "Ada"})  # the client answers it
assert receive(ws) == {"jsonrpc": "2.0", "id": "g", "result": "Hello, Ada!"}

# A broadcast reaches a JSON-RPC peer as a notification object.
server.sessions.notify("price", {"symbol": "ACME", "value": 12.5})
assert receive(ws) == {"jsonrpc": "2.0", "method": "price", "params": {"symbol": "ACME", "value": 12.5}}

# $/cancelRequest stops the running handler; the request is answered -32800.
send(ws, {"jsonrpc": "2.0", "method": "crunch", "params": [30], "id": 7})
gevent.sleep(0.1)  # the handler is running now
send(ws, {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 7}})
answer = receive(ws)
assert answer["id"] == 7 and answer["error"]["code"] == -32800
calls.apply(ws.close)

# The subprotocol on any path: the same dialect.
ws = calls.apply(websocket.create_connection, (f"ws://{host}:{port}/",), {"timeout": 5, "subprotocols": ["jsonrpc"]})
assert ws.subprotocol == "jsonrpc"
send(ws, {"jsonrpc": "2.0", "method": "crunch", "params": [0], "id": 1})
assert receive(ws) == {"jsonrpc": "2.0", "id": 1, "result": "done"}
calls.apply(ws.close)
server.stop()
