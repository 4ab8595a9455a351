"""The ``discover`` command, and the discovery responder ``serve --discovery`` starts.

``rpcengine discover`` broadcasts one probe (see :mod:`rpcengine.discovery`)
and prints the servers that answered within ``--timeout`` seconds, as a
table or, with ``--json``, as a JSON list; nothing answering exits with
code 3. ``rpcengine serve ... --discovery`` answers such probes beside its
listeners (:func:`start_responder`), with ``--name`` (default: what is
served), ``--workgroup`` and ``--discovery-port``.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
from collections.abc import Sequence

from rpcengine.cli.diagnose import describe_os_error
from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.cli.output import dump_json, wants_pretty
from rpcengine.discovery import DiscoveredServer
from transports.discovery import DiscoveryResponder, discover

__all__ = ["format_table", "run_discover", "start_responder"]

log = logging.getLogger(__name__)

_COLUMNS = ("NAME", "WORKGROUP", "VERSION", "ADDRESS", "URLS")


def format_table(servers: Sequence[DiscoveredServer]) -> str:
    """Return the servers as a table with a header line, one row each, columns aligned.

    >>> server = DiscoveredServer("counter", "0.1.0", None, ("tcp://10.0.0.2:7000",), "10.0.0.2")
    >>> print(format_table([server]))
    NAME     WORKGROUP  VERSION  ADDRESS   URLS
    counter  -          0.1.0    10.0.0.2  tcp://10.0.0.2:7000
    """
    rows = [_COLUMNS] + [
        (server.name, server.workgroup or "-", server.version, server.address, " ".join(server.urls))
        for server in servers
    ]
    widths = [max(len(row[index]) for row in rows) for index in range(len(_COLUMNS) - 1)]
    lines = []
    for *cells, urls in rows:  # the last column is not padded
        lines.append("  ".join([*(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)), urls]))
    return "\n".join(line.rstrip() for line in lines)


def run_discover(args: argparse.Namespace) -> int:
    """Run ``discover``: probe, print what answered; blocks (yields) for ``--timeout`` seconds.

    Raises CliError: exit 2 for a bad workgroup, 3 if nothing answered, 4 if the probe cannot be sent.
    """
    try:
        servers = discover(args.timeout, args.workgroup, port=args.port, address=args.address)
    except ValueError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    except OSError as exc:
        hint = ""
        if exc.errno == errno.ENETUNREACH:
            hint = "; no route for it: give --address, your subnet's broadcast address (as 192.168.1.255)"
        message = f"cannot send the probe to {args.address}:{args.port}: {describe_os_error(exc)}{hint}"
        raise CliError(message, ExitCode.CONNECTION) from None
    if args.json:
        print(dump_json([server.as_dict() for server in servers], wants_pretty(None)), flush=True)
    elif servers:
        print(format_table(servers), flush=True)
    if not servers:
        group = f" in workgroup {args.workgroup!r}" if args.workgroup is not None else ""
        raise CliError(f"no server{group} answered within {args.timeout:g} s", ExitCode.TIMEOUT)
    return ExitCode.OK


def start_responder(args: argparse.Namespace, urls: list[str]) -> DiscoveryResponder | None:
    """Start the responder ``serve --discovery`` asks for, answering with ``urls``; None without it.

    Raises CliError: exit 2 for ``--name`` or ``--workgroup`` without
    ``--discovery`` or beyond the bounds, 4 if the UDP port cannot be bound.
    """
    if not getattr(args, "discovery", False):
        if getattr(args, "name", None) is not None or getattr(args, "workgroup", None) is not None:
            raise CliError("--name and --workgroup are for --discovery", ExitCode.USAGE)
        return None
    name = args.name if args.name is not None else args.target
    if name is None and getattr(args, "files", None) is not None:
        name = f"files:{os.path.basename(os.path.abspath(args.files)) or '/'}"  # serve --files ROOT has no target
    try:
        responder = DiscoveryResponder(name, urls, workgroup=args.workgroup, port=args.discovery_port)
    except ValueError as exc:
        raise CliError(f"cannot answer discovery: {exc}", ExitCode.USAGE) from None
    try:
        responder.start()
    except OSError as exc:
        raise CliError(
            f"cannot answer discovery on UDP port {args.discovery_port}: {describe_os_error(exc)}", ExitCode.CONNECTION
        ) from None
    group = f", workgroup {args.workgroup!r}" if args.workgroup is not None else ""
    print(f"answering discovery on UDP port {responder.address[1]} as {name!r}{group}", flush=True)
    return responder
