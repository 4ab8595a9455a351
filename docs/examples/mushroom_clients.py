"""Serve mushroom clients unchanged: mushroom's bootstrap, its poll transport and its error strings (run as shown)."""

import json
import urllib.request

import gevent

from dispatchers import MethodDispatcher, MushroomErrors, with_middleware
from transports.websocket import WebSocketServer


class Calculator:
    """What mushroom clients call."""

    def rpc_add(self, request):
        """Return a + b."""
        a, b = request.data
        return a + b


def authenticate(hello, peer_address):
    """A mushroom client's bootstrap ``auth`` arrives as ``hello.extra["auth"]``."""
    if hello is not None and hello.extra.get("mushroom"):
        return hello.extra["auth"] == {"token": "secret"}
    return True


def post(url, value):
    """POST ``value`` as JSON, as mushroom's client does (text/plain); return the decoded answer (blocking)."""
    request = urllib.request.Request(url, data=json.dumps(value).encode(), headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


handler = with_middleware(MethodDispatcher(Calculator()), MushroomErrors())  # mushroom's error strings
server = WebSocketServer(("127.0.0.1", 0), handler, mushroom="/mushroom", authenticate=authenticate).start()
base = f"http://127.0.0.1:{server.address[1]}/mushroom/"
calls = gevent.get_hub().threadpool  # urllib blocks: a native thread, so that the server keeps running

hello = calls.apply(post, (base, {"transports": ["poll"], "auth": {"token": "secret"}}))
assert hello["transport"] == "poll"
session_url = hello["url"]  # http://127.0.0.1:PORT/mushroom/<sid>/
assert calls.apply(post, (session_url, [[2, 0, "add", [2, 3]], [2, 1, "divide", [1, 0]]])) is None
answers = calls.apply(post, (session_url, [[0, None]]))  # a poll: what is ready, then [0, last id received]
assert {answer[2]: answer[3] for answer in answers[:-1]} == {0: 5, 1: "rpc_divide"}  # by request id
assert answers[-1] == [0, 1]
server.stop()
