"""End to end over the in-memory loopback: the caller of a handler taking parameters gets invalid_params."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from dispatchers import MethodDispatcher, dummy_rpc_handler
from rpcengine import Engine, Request, RequestException
from transports.memory import pair


@dataclass
class Item:
    name: str
    quantity: int


class Shop:
    def rpc_add(self, a: int, b: int) -> int:
        """Return a + b."""
        return a + b

    def rpc_total(self, items: list[Item]) -> int:
        """Return the number of pieces."""
        return sum(item.quantity for item in items)

    def rpc_ask(self, request: Request, question: str) -> str:
        """Ask the caller back over the same connection."""
        assert request.engine is not None
        return f"{question} {request.engine.request('answer', None, timeout=5)}"


@pytest.fixture
def client() -> Iterator[Engine]:
    client_side, server_side = pair()
    server = Engine(server_side, MethodDispatcher(Shop(), unpack_params=True))
    client = Engine(client_side, lambda request: 42 if request.method == "answer" else dummy_rpc_handler(request))
    yield client
    client.close()
    server.close()


def test_the_caller_gets_the_result(client: Engine) -> None:
    assert client.request("add", [2, 3], timeout=5) == 5
    assert client.request("add", {"a": 2, "b": 3}, timeout=5) == 5
    assert client.request("total", [[{"name": "fig", "quantity": 2}, {"name": "pear", "quantity": 1}]], timeout=5) == 3
    assert client.request("ask", ["the answer is"], timeout=5) == "the answer is 42"


def test_the_caller_gets_invalid_params_for_a_signature_mismatch(client: Engine) -> None:
    with pytest.raises(RequestException) as caught:
        client.request("add", [1, 2, 3], timeout=5)
    assert caught.value.data == {
        "error": "invalid_params",
        "message": "add(a, b) takes 2 arguments, got 3",
        "method": "add",
        "expected": "add(a, b)",
        "got": "3 arguments",
    }


def test_the_caller_gets_invalid_params_with_the_path_for_a_wrong_type(client: Engine) -> None:
    with pytest.raises(RequestException) as caught:
        client.request("total", {"items": [{"name": "fig", "quantity": 2}, {"name": 5, "quantity": 1}]}, timeout=5)
    assert caught.value.data == {
        "error": "invalid_params",
        "message": "total(items): items[1].name must be str, got int",
        "method": "total",
        "path": "items[1].name",
        "expected": "str",
        "got": "int",
    }
    assert client.request("add", [1, 1], timeout=5) == 2, "the connection goes on"
