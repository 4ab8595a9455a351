"""Replay the transcripts in corpus/ (go-ethereum's format) against the sans-I/O JSON-RPC layer.

The format, the service and the comparison are in ``jsonrpc_corpus.py``;
``test_jsonrpc_transports.py`` replays the same transcripts over HTTP, WebSocket and TCP.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonrpc_corpus import CORPUS, TRANSCRIPTS, Service, assert_answer, parse_transcript

from rpcengine import default_codec
from rpcengine.jsonrpc import respond_frame


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
        assert_answer(where, answer, expected)


def test_the_specification_notifications_reach_the_service() -> None:
    service = Service()
    exchanges = parse_transcript(CORPUS / "spec-examples.txt")
    for _, request, _ in exchanges:
        respond_frame(default_codec(), request, service)
    assert ("update", [1, 2, 3, 4, 5]) in service.notified
    assert ("notify_sum", [1, 2, 4]) in service.notified
    assert service.notified.count(("notify_hello", [7])) == 2
