"""How-to: test a service with the in-memory loopback transport (run with pytest, or directly)."""

import pytest

from dispatchers import MethodDispatcher
from rpcengine import Engine, RequestException, RequestTimeout
from transports.memory import pair


class Counter:
    """The service under test."""

    def __init__(self):
        self.value = 0

    def rpc_increment(self, request):
        """Add data (default 1) and return the new value."""
        step = 1 if request.data is None else request.data
        if not isinstance(step, int):
            raise RequestException({"error": "invalid_params", "message": "step must be an integer"})
        self.value += step
        return self.value


@pytest.fixture
def client():
    """A client engine connected to a fresh Counter over the loopback; closed after the test."""
    client_side, server_side = pair()
    Engine(server_side, MethodDispatcher(Counter()))
    engine = Engine(client_side, lambda request: None)
    yield engine
    engine.close()


def test_increment(client):
    """Increment adds 1 by default, or the step given."""
    assert client.request("increment", timeout=1) == 1
    assert client.request("increment", 41, timeout=1) == 42


def test_bad_step_is_refused(client):
    """A step that is not an integer is refused with invalid_params."""
    with pytest.raises(RequestException) as info:
        client.request("increment", "two", timeout=1)
    assert info.value.data["error"] == "invalid_params"


def test_values_travel_as_json(client):
    """Values that JSON cannot hold fail at the sender."""
    # Everything passes through the codec, as on a socket: a tuple arrives as a list,
    # and a value JSON cannot hold fails at the sender.
    with pytest.raises(ValueError):
        client.request("increment", {1}, timeout=1)


def test_a_silent_peer_times_out():
    """A request nobody answers times out."""
    client_side, _ = pair()  # nobody serves the other end
    client = Engine(client_side, lambda request: None)
    with pytest.raises(RequestTimeout):
        client.request("increment", timeout=0.05)
    client.close()


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
