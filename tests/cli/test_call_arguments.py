"""`call` and `notify` with several positional arguments, read as JSON or as strings, run for real."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from helpers.cli import SERVICE, Served, assert_one_line_error, run_cli

from rpcengine.cli.arguments import parse_values, quoting_hints
from rpcengine.cli.errors import CliError


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """The demo service (its `echo` returns the data as it arrived) over TCP."""
    served = Served(SERVICE, "tcp://127.0.0.1:0")
    try:
        yield served.wait_for(1)[0]
    finally:
        assert served.stop() == 0


def echo(url: str, *args: str) -> object:
    """Return what the server received for `call URL echo ARGS`."""
    result = run_cli("call", url, "echo", *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def test_no_argument_sends_null_one_its_value_several_a_list(url: str) -> None:
    assert echo(url) is None
    assert echo(url, "5") == 5
    assert echo(url, "2", "3") == [2, 3]
    assert echo(url, "2", "three", "[4]", '{"five": 5}', "true", "null") == [2, "three", [4], {"five": 5}, True, None]


def test_valid_json_is_json_and_anything_else_a_string(url: str) -> None:
    assert echo(url, "five") == "five"
    assert echo(url, '"five"') == "five"
    assert echo(url, "007") == "007"  # not valid JSON: a string
    assert echo(url, "1.5e3") == 1500.0
    assert echo(url, "hello world") == "hello world"
    assert echo(url, "NaN") == "NaN"  # NaN is not JSON


def test_string_flag_sends_every_argument_as_a_string(url: str) -> None:
    assert echo(url, "--string", "123") == "123"
    assert echo(url, "--string", "1", "[2]", "null") == ["1", "[2]", "null"]


def test_json_flag_requires_json(url: str) -> None:
    assert echo(url, "--json", "1", '"two"') == [1, "two"]
    assert_one_line_error(run_cli("call", url, "echo", "--json", "two"), 2, "invalid JSON argument 'two'")


def test_json_and_string_flags_exclude_each_other(url: str) -> None:
    assert_one_line_error(run_cli("call", url, "echo", "--json", "--string", "1"), 2, "not allowed with")


def test_dash_reads_one_argument_from_stdin(url: str) -> None:
    result = run_cli("call", url, "echo", "1", "-", stdin='{"a": [1, 2]}\n')
    assert result.returncode == 0 and json.loads(result.stdout) == [1, {"a": [1, 2]}]
    result = run_cli("call", url, "echo", "-", stdin="plain words\n")
    assert json.loads(result.stdout) == "plain words"
    assert_one_line_error(run_cli("call", url, "echo", "-", "-", stdin="1"), 2, "'-' (read stdin) may be given once")


def test_negative_numbers_are_arguments_not_options(url: str) -> None:
    assert echo(url, "-1", "-2.5") == [-1, -2.5]


def test_notify_takes_several_arguments_too(url: str) -> None:
    result = run_cli("notify", url, "echo", "1", "two", "--trace")
    assert result.returncode == 0 and result.stdout == "", result.stderr
    sent = [line for line in result.stderr.splitlines() if " → " in line or " > " in line]
    assert len(sent) == 1 and re.search(r'\[1, ?\d+, ?"echo", ?\[1, ?"two"\]\]$', sent[0]), result.stderr


def test_a_bare_word_sent_as_a_string_gets_a_hint(url: str) -> None:
    result = run_cli("call", url, "sleep", "forty")  # sent as the string "forty"
    assert result.returncode == 1
    error, hint = result.stderr.splitlines()
    assert json.loads(error)["error"] == "invalid_params"
    assert hint.startswith('hint: forty was sent as the string "forty"')
    assert "Traceback" not in result.stderr


def test_a_bare_word_read_as_json_gets_a_hint_to_quote_it(url: str) -> None:
    result = run_cli("call", url, "say", "true")  # say wants an object; true was read as a boolean
    assert result.returncode == 1
    error, hint = result.stderr.splitlines()
    assert json.loads(error)["error"] == "invalid_params"
    assert (
        hint == "hint: true was sent as a boolean; to send the string, quote it as JSON ('\"true\"') or pass --string"
    )


def test_quoted_json_refused_by_the_server_gets_no_hint(url: str) -> None:
    line = assert_one_line_error(run_cli("call", url, "add", '"five"'), 1)
    assert json.loads(line)["got"] == "five"


def test_other_remote_errors_get_no_hint(url: str) -> None:
    line = assert_one_line_error(run_cli("call", url, "nothing_here", "5"), 1)
    assert json.loads(line)["error"] == "method_not_found"


# -- output: pretty on a terminal, compact when piped -------------------------


def run_on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `python -m rpcengine ARGS` with stdout on a pseudo-terminal; return the exit code and what it printed."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rpcengine", *args], stdout=follower, stderr=subprocess.PIPE, close_fds=True
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(30)
        assert proc.stderr is not None
        proc.stderr.close()
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    return code, b"".join(chunks).decode().replace("\r\n", "\n")


def test_output_is_indented_on_a_terminal_and_one_line_when_piped(url: str) -> None:
    code, shown = run_on_a_terminal("call", url, "echo", "1", '{"a": 2}')
    assert code == 0
    assert shown == '[\n  1,\n  {\n    "a": 2\n  }\n]\n'
    piped = run_cli("call", url, "echo", "1", '{"a": 2}')
    assert piped.stdout == '[1, {"a": 2}]\n'


def test_pretty_and_compact_force_the_layout(url: str) -> None:
    assert run_cli("call", url, "echo", "1", "2", "--pretty").stdout == "[\n  1,\n  2\n]\n"
    code, shown = run_on_a_terminal("call", url, "echo", "1", "2", "--compact")
    assert code == 0 and shown == "[1, 2]\n"


# -- the parsing rules, in process ---------------------------------------------


def test_parse_values_modes() -> None:
    assert parse_values(["1", "x"]).data == [1, "x"]
    assert parse_values(["1", "x"], "string").data == ["1", "x"]
    with pytest.raises(CliError, match="invalid JSON argument 'x'"):
        parse_values(["x"], "json")
    with pytest.raises(CliError, match="single quotes"):
        parse_values(["{name: me}"])
    with pytest.raises(ValueError):
        parse_values([], "yaml")


def test_quoting_hints_only_for_guessed_arguments_and_invalid_params() -> None:
    values = parse_values(["5", "five", '"six"', "[7]"])
    hints = quoting_hints(values, {"error": "invalid_params"})
    assert len(hints) == 2 and hints[0].startswith("hint: 5 was sent as a number")
    assert hints[1].startswith('hint: five was sent as the string "five"')
    assert quoting_hints(values, {"error": "internal_error"}) == []
    assert quoting_hints(parse_values(["5"], "json"), {"error": "invalid_params"}) == []
