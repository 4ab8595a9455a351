"""The wire protocol over WebSocket: one JSON message list per text frame.

The server runs in its own process (``rpcengine serve``, here with the demo
service), so this script can use a plain blocking WebSocket client (the
``websockets`` package) to show the frames as they are.
"""

import json
import subprocess
import sys

from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

server = subprocess.Popen(
    [sys.executable, "-m", "rpcengine", "serve", "rpcengine.cli.demo_service:DemoService", "ws://127.0.0.1:0/rpc"],
    stdout=subprocess.PIPE,
    text=True,
)
try:
    url = server.stdout.readline().split()[-1]  # "listening on ws://127.0.0.1:PORT/rpc"

    # One message per text frame; a hello after the first frame is a protocol error.
    with connect(url, subprotocols=["rpcengine.v1"], open_timeout=10) as ws:
        assert ws.subprotocol == "rpcengine.v1"  # the protocol version, negotiated
        ws.send('[2, 1, "get", null]')  # one text frame, one message: a Request for the counter
        assert json.loads(ws.recv(timeout=5)) == [3, 1, 1, 0]
        ws.send('{"rpcengine": 1, "session": null, "ack": 0}')  # too late: a hello must come first
        try:
            ws.recv(timeout=5)
        except ConnectionClosedError as closed:
            assert closed.rcvd.code == 1002  # protocol error: the connection is closed

    # A binary frame is refused.
    with connect(url, subprotocols=["rpcengine.v1"], open_timeout=10) as ws:
        ws.send(b'[2, 1, "get", null]')
        try:
            ws.recv(timeout=5)
        except ConnectionClosedError as closed:
            assert closed.rcvd.code == 1003  # unsupported data: messages are text
finally:
    server.terminate()
    server.wait(10)
