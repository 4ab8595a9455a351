"""`--help` of every command: plain text with examples; the command list when run bare."""

from __future__ import annotations

import re

import pytest
from helpers.cli import run_cli

COMMANDS = ["serve", "call", "notify", "listen", "methods", "demo"]


def test_run_bare_prints_the_command_list_and_exits_2() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert result.stderr == ""
    assert result.stdout.startswith("usage: rpcengine")
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, re.MULTILINE), command
    assert "examples:" in result.stdout


def test_top_level_help_exits_0_with_examples_urls_and_exit_codes() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert "  rpcengine call tcp://127.0.0.1:7000 add 5" in result.stdout
    assert "tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH" in result.stdout
    assert "4 connection failure" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_examples_in_plain_text(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0 and result.stderr == ""
    text = result.stdout
    examples = text.split("examples:\n", 1)[1]
    assert re.search(rf"^  (echo .* \| )?rpcengine {command}\b", examples, re.MULTILINE), text
    assert "``" not in text and ":class:" not in text and ":mod:" not in text and ":meth:" not in text
    assert "--trace" in text and "--log-level" in text


def test_the_timeout_option_says_what_it_bounds() -> None:
    assert "wait for the answer" in run_cli("call", "--help").stdout
    for command in ("notify", "listen"):
        text = " ".join(run_cli(command, "--help").stdout.split())
        assert "seconds to connect (30)" in text and "wait for the answer" not in text


def test_call_help_explains_how_arguments_are_read() -> None:
    text = run_cli("call", "--help").stdout
    assert "URL METHOD [ARG ...]" in " ".join(text.split())
    assert "--json" in text and "--string" in text and "--pretty" in text and "--compact" in text
    assert "rpcengine call tcp://127.0.0.1:7000 echo 2 3" in text


def test_serve_help_names_every_kind_of_handler() -> None:
    text = run_cli("serve", "--help").stdout
    assert "--functions" in text and "dispatchers.Registry" in text and "callable taking the request" in text


def test_the_broker_options_have_examples() -> None:
    serve = run_cli("serve", "--help").stdout
    assert "--broker URL" in serve and "--broker-prefix" in serve and "--queue NAME" in serve
    assert re.search(r"^  rpcengine serve \S+ tcp://\S+ --broker redis://", serve, re.MULTILINE), serve
    assert re.search(r"^  rpcengine serve \S+ --broker \S+ --queue work", serve, re.MULTILINE), serve
    for command in ("call", "notify", "methods"):
        text = run_cli(command, "--help").stdout
        assert re.search(rf"^  rpcengine {command} --broker \S+ queue:work", text, re.MULTILINE), text
    demo = run_cli("demo", "--help").stdout
    assert "  rpcengine demo --cluster" in demo and "--broker URL" in demo
