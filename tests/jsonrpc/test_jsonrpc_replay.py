"""Replay the transcripts in corpus/ (go-ethereum's format) against the sans-I/O JSON-RPC layer.

A transcript holds ``// comments``, ``--> request`` lines and the ``<-- response``
line that follows each request, if any: a request with none must give no bytes
at all. A batch answer is compared as an unordered collection of objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rpcengine import MethodNotFound, RequestException, default_codec, error_data
from rpcengine.jsonrpc import respond_frame

CORPUS = Path(__file__).parent / "corpus"


def parse_transcript(path: Path) -> list[tuple[int, bytes, str | None]]:
    """Return (line number, request bytes, expected response text or None) for each request."""
    exchanges: list[tuple[int, bytes, str | None]] = []
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


class Service:
    """The methods of the specification's examples, plus a few to exercise the error map."""

    def __init__(self) -> None:
        self.notified: list[tuple[str, Any]] = []

    def __call__(self, method: str, data: Any) -> Any:
        handler = getattr(self, "rpc_" + method, None)
        if handler is None:
            raise MethodNotFound(method)
        return handler(data)

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


TRANSCRIPTS = sorted(CORPUS.glob("*.txt"))


def test_the_corpus_is_there() -> None:
    assert {path.name for path in TRANSCRIPTS} >= {"spec-examples.txt", "extras.txt"}


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda path: path.stem)
def test_replay(path: Path) -> None:
    codec = default_codec()
    service = Service()
    exchanges = parse_transcript(path)
    assert exchanges
    for number, request, expected in exchanges:
        answer = respond_frame(codec, request, service)
        where = f"{path.name}:{number}"
        if expected is None:
            assert answer is None, f"{where}: expected no answer, got {answer!r}"
            continue
        assert answer is not None, f"{where}: expected {expected}, got no answer"
        assert canonical(json.loads(answer)) == canonical(json.loads(expected)), where
        assert b"Traceback" not in answer and b"secret" not in answer, where


def test_the_specification_notifications_reach_the_service() -> None:
    service = Service()
    exchanges = parse_transcript(CORPUS / "spec-examples.txt")
    for _, request, _ in exchanges:
        respond_frame(default_codec(), request, service)
    assert ("update", [1, 2, 3, 4, 5]) in service.notified
    assert ("notify_sum", [1, 2, 4]) in service.notified
    assert service.notified.count(("notify_hello", [7])) == 2
