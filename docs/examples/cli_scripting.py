"""Script the command line: serve, listen for broadcasts, notify, call, and read exit codes."""

import json
import subprocess
import sys
import time

RPCENGINE = [sys.executable, "-m", "rpcengine"]  # or just "rpcengine", the console script

server = subprocess.Popen(
    [*RPCENGINE, "serve", "rpcengine.cli.demo_service:DemoService", "tcp://127.0.0.1:0"],
    stdout=subprocess.PIPE,
    text=True,
)
try:
    url = server.stdout.readline().split()[-1]  # "listening on tcp://127.0.0.1:PORT"
    listener = subprocess.Popen([*RPCENGINE, "listen", url, "--count", "1"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while listener.poll() is None and time.monotonic() < deadline:  # until it has seen a broadcast
        subprocess.run([*RPCENGINE, "notify", url, "say", '{"name": "script", "text": "hi"}'], check=True)
        time.sleep(0.2)
    line = listener.stdout.readline()
    assert json.loads(line) == {"method": "chat.message", "data": {"name": "script", "text": "hi"}}
    assert listener.wait(10) == 0

    # Exit codes: 0 success, 1 Error answer, 2 usage, 3 timeout, 4 connection failure.
    def call(*args):
        """Run ``rpcengine call URL ARGS``; return (exit code, stdout, stderr)."""
        done = subprocess.run([*RPCENGINE, "call", url, *args], capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout.strip(), done.stderr.strip()

    assert call("add", "5") == (0, "5", "")
    assert call("echo", "2", "three") == (0, '[2, "three"]', "")  # several ARGs: a list; JSON, or else a string
    code, _, error = call("add", '"five"')  # 1: the server answered with an Error
    assert code == 1 and json.loads(error)["error"] == "invalid_params"
    assert call("add", "[1,")[0] == 2  # 2: usage (here, invalid JSON)
    assert call("sleep", "3", "--timeout", "0.2")[0] == 3  # 3: timeout
finally:
    server.terminate()  # SIGTERM: stops gracefully
    assert server.wait(10) == 0
