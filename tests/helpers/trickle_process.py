"""Send one byte stream on several plain TCP connections in small writes, from a process of its own.

Usage: ``python trickle_process.py HOST PORT CONNECTIONS WRITE PAUSE`` with
the stream on stdin. Each round writes the next ``WRITE`` bytes on every
connection (TCP_NODELAY, so each write leaves as its own segment), then
sleeps ``PAUSE`` seconds: a paced trickle, so that the server wakes up for
about every write. Then it reads one line from each connection and prints
them as a JSON list of strings (an empty string for a connection that
closed first). Blocking sockets, no gevent: the test process stays free
for the client whose latency it measures.
"""

from __future__ import annotations

import json
import socket
import sys
import time


def main() -> None:
    """Trickle stdin to the server on the command line; print the first line each connection got back."""
    host, (port, count, write), pause = sys.argv[1], map(int, sys.argv[2:5]), float(sys.argv[5])
    stream = sys.stdin.buffer.read()
    socks = [socket.create_connection((host, port), timeout=30) for _ in range(count)]
    for sock in socks:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for offset in range(0, len(stream), write):
        chunk = stream[offset : offset + write]
        for sock in socks:
            sock.sendall(chunk)
        time.sleep(pause)  # pacing of the trickle, not a wait for a condition
    answers = []
    for sock in socks:
        with sock.makefile("rb") as reader:
            answers.append(reader.readline().decode().rstrip("\n"))
        sock.close()
    print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    main()
