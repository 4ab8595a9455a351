"""The replay corpus (go-ethereum's transcript format) and the service its answers come from.

Shared by the sans-I/O replay (``test_jsonrpc_replay.py``) and the replay over
real transports (``test_jsonrpc_transports.py``). A transcript holds
``// comments``, ``--> request`` lines and the ``<-- response`` line that
follows each request, if any: a request with none must give no bytes at all.
A batch answer is compared as an unordered collection of objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dispatchers import Registry
from rpcengine import MethodNotFound, RequestException, error_data

CORPUS = Path(__file__).parent / "corpus"
TRANSCRIPTS = sorted(CORPUS.glob("*.txt"))

#: The codes of the answers to bad input: parse error, invalid request, method not found, invalid params.
BAD_INPUT_CODES = frozenset({-32700, -32600, -32601, -32602})

#: One exchange: (line number, request bytes, expected response text or None).
Exchange = tuple[int, bytes, "str | None"]


def parse_transcript(path: Path) -> list[Exchange]:
    """Return (line number, request bytes, expected response text or None) for each request."""
    exchanges: list[Exchange] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("--> "):
            exchanges.append((number, line[4:].encode(), None))
        elif line.startswith("<-- "):
            assert exchanges and exchanges[-1][2] is None, f"{path.name}:{number}: a response without its request"
            exchanges[-1] = (exchanges[-1][0], exchanges[-1][1], line[4:])
        else:
            assert not line.strip() or line.startswith("//"), f"{path.name}:{number}: not a transcript line"
    return exchanges


def canonical(value: Any) -> Any:
    """Return ``value`` with a batch (a list of objects) as a sorted list, to compare it in any order."""
    if isinstance(value, list):
        return sorted(json.dumps(item, sort_keys=True) for item in value)
    return value


def assert_answer(where: str, answer: bytes, expected: str) -> None:
    """Fail unless ``answer`` is the JSON of ``expected`` (a batch in any order) and shows no exception detail."""
    assert canonical(json.loads(answer)) == canonical(json.loads(expected)), f"{where}: got {answer[:500]!r}"
    assert b"Traceback" not in answer and b"secret" not in answer, f"{where}: exception detail in {answer[:500]!r}"


def bad_inputs() -> list[tuple[str, bytes, str]]:
    """Return (where, request, expected answer) for every bad input of the corpus.

    A bad input is one answered only with errors of :data:`BAD_INPUT_CODES`
    (a batch of such errors included); a mixed batch is not one.
    """
    found = []
    for path in TRANSCRIPTS:
        for number, request, expected in parse_transcript(path):
            if expected is None:
                continue
            answer = json.loads(expected)
            items = answer if isinstance(answer, list) else [answer]
            if all("error" in item and item["error"]["code"] in BAD_INPUT_CODES for item in items):
                found.append((f"{path.name}:{number}", request, expected))
    return found


class Service:
    """The methods of the specification's examples, plus a few to exercise the error map.

    Called as ``service(method, data)`` by the sans-I/O layer; :meth:`registry`
    serves the same methods through a real dispatcher.
    """

    #: The methods the corpus calls (``rpc_`` + name).
    METHODS = (
        "subtract",
        "sum",
        "get_data",
        "update",
        "notify_hello",
        "notify_sum",
        "custom_error",
        "app_error",
        "crash",
        "unencodable",
    )

    def __init__(self) -> None:
        self.notified: list[tuple[str, Any]] = []

    def __call__(self, method: str, data: Any) -> Any:
        handler = getattr(self, "rpc_" + method, None)
        if handler is None:
            raise MethodNotFound(method)
        return handler(data)

    def registry(self) -> Registry:
        """Return a Registry serving :attr:`METHODS` with the call's data (add more methods to it at will)."""
        registry = Registry()
        for name in self.METHODS:
            handler = getattr(self, "rpc_" + name)
            registry.add(name, lambda request, handler=handler: handler(request.data))
        return registry

    def rpc_subtract(self, data: Any) -> Any:
        if isinstance(data, dict):
            return data["minuend"] - data["subtrahend"]
        if len(data) != 2:
            raise RequestException(error_data("invalid_params", "subtract takes 2 arguments"))
        return data[0] - data[1]

    def rpc_sum(self, data: Any) -> Any:
        return sum(data)

    def rpc_get_data(self, data: Any) -> Any:
        return ["hello", 5]

    def rpc_update(self, data: Any) -> None:
        self.notified.append(("update", data))

    def rpc_notify_hello(self, data: Any) -> None:
        self.notified.append(("notify_hello", data))

    def rpc_notify_sum(self, data: Any) -> None:
        self.notified.append(("notify_sum", data))

    def rpc_custom_error(self, data: Any) -> None:
        raise RequestException({"code": 42, "message": "the answer", "data": {"why": "because"}, "extra": 1})

    def rpc_app_error(self, data: Any) -> None:
        raise RequestException(error_data("out_of_stock", "out of stock"))

    def rpc_crash(self, data: Any) -> None:
        raise ValueError("secret detail /etc/passwd")

    def rpc_unencodable(self, data: Any) -> Any:
        return {1, 2}
