"""The plain-text descriptions and examples that ``rpcengine --help`` and each ``COMMAND --help`` print.

Plain text on purpose: argparse prints it as it stands (with
``RawDescriptionHelpFormatter``), so it carries no reST markup. The client
examples run as typed against the demo service,
``rpcengine serve rpcengine.cli.demo_service:DemoService tcp://127.0.0.1:7000``.
"""

from __future__ import annotations

__all__ = ["DESCRIPTIONS", "EPILOGS"]

_SERVICE = "rpcengine.cli.demo_service:DemoService"

DESCRIPTIONS = {
    "rpcengine": "Serve, call and watch rpcengine servers.",
    "serve": (
        "Serve an rpc handler on one or more listeners until Ctrl-C or SIGTERM, then stop gracefully.\n"
        "\n"
        "MODULE:OBJECT names an object with rpc_ methods (a class is instantiated with no arguments),\n"
        "a dispatchers.Registry, a dispatcher, or any callable taking the request. With --functions,\n"
        "MODULE's public functions are served, each under its own name. An on_serve(servers)\n"
        "function or method is called once with the started servers (to broadcast from).\n"
        "With --files ROOT (and no MODULE:OBJECT), the directory ROOT is served for 'rpcengine get'\n"
        "(and 'rpcengine put' with --writable): every path stays inside ROOT.\n"
        "One line is printed per listener: 'listening on URL', with the real port.\n"
        "\n"
        "With --broker URL (a Redis) the process is one node of a service: a broadcast made on any\n"
        "node reaches the clients of every node, and a call to a session id reaches that client on\n"
        "whichever node holds it. It prints 'broker node ID on URL (prefix P)' after the listeners.\n"
        "--queue NAME also serves the work queue NAME with the same handler, for\n"
        "'rpcengine call --broker URL queue:NAME METHOD' (each call goes to one worker, at least once);\n"
        "with --queue no listener URL is needed."
    ),
    "call": (
        "Send one request and print its result as JSON (indented on a terminal, one line when piped).\n"
        "\n"
        "No ARG sends null, one ARG sends its value, several send a list. An ARG is JSON when it is\n"
        "valid JSON (5, true, null, '\"five\"', '[1, 2]', '{\"a\": 1}'), a string otherwise (five);\n"
        "--json requires JSON, --string sends every ARG as a string, '-' reads one ARG from stdin.\n"
        "Quote JSON objects and lists for the shell, in single quotes.\n"
        "\n"
        "With --broker URL (a Redis), the URL queue:NAME sends the request to the work queue NAME:\n"
        "one worker of 'rpcengine serve MODULE:OBJECT --broker URL --queue NAME' answers it.\n"
        "--timeout travels with the request as its deadline."
    ),
    "notify": (
        "Send one notification: the server runs METHOD and answers nothing.\n"
        "\n"
        "ARGs make the data as for 'call': none is null, one is its value, several a list;\n"
        "JSON when valid JSON, a string otherwise (--json, --string force one way).\n"
        "With --broker URL, the URL queue:NAME sends it to the work queue NAME (one worker runs it)."
    ),
    "listen": (
        'Print every notification the server sends, one JSON line each: {"method": ..., "data": ...}.\n'
        "\n"
        "Ends after --count notifications, after --duration seconds, or on Ctrl-C (exit 0),\n"
        "or when the connection is lost (exit 4)."
    ),
    "methods": (
        "List the methods a server exposes, with their signatures and docstrings (rpcengine.describe);\n"
        "with NAME, show that one method in full. With --broker URL, the URL queue:NAME asks a worker\n"
        "of that work queue."
    ),
    "discover": (
        "Broadcast one discovery probe on the LAN (UDP) and list the servers that answered:\n"
        "those started with 'rpcengine serve ... --discovery' (or a transports.discovery.DiscoveryResponder).\n"
        "Each says its name, workgroup, version, address and listener URLs. With --workgroup only that\n"
        "workgroup's servers answer. Nothing answering within --timeout exits with code 3."
    ),
    "get": (
        "Download REMOTE (a path relative to the root of a server run with 'serve --files ROOT')\n"
        "to the local file LOCAL, in chunks, with a progress bar on a terminal. LOCAL is written\n"
        "under a temporary name and renamed only once the SHA-256 matches the server's; the result\n"
        "(path, size, sha256) is printed as JSON."
    ),
    "put": (
        "Upload the local file LOCAL to REMOTE (a path relative to the root of a server run with\n"
        "'serve --files ROOT --writable'), in chunks, with a progress bar on a terminal. The server\n"
        "renames the upload into place only once size and SHA-256 match; the result is printed as JSON."
    ),
    "demo": (
        "Run a server and two scripted clients that show a request, a broadcast, a notification,\n"
        "a server-to-client request, a remote error, a timeout and introspection, with a browser\n"
        "page that shows calls and broadcasts live.\n"
        "\n"
        "With --cluster: a private redis-server on a Unix socket in a temporary folder (or the Redis\n"
        "given with --broker), two 'rpcengine serve --broker' processes on their own ports, alice on\n"
        "node 1 and bob on node 2: each broadcast reaches the clients of both nodes, and node 1 calls\n"
        "bob, whose connection node 2 holds. Everything started is stopped and removed at the end."
    ),
}

_EXIT_CODES = "exit codes: 0 ok, 1 the server answered with an Error, 2 usage, 3 timeout, 4 connection failure"

EPILOGS = {
    "rpcengine": (
        "examples:\n"
        f"  rpcengine serve {_SERVICE} tcp://127.0.0.1:7000\n"
        "  rpcengine call tcp://127.0.0.1:7000 add 5\n"
        "  rpcengine methods tcp://127.0.0.1:7000\n"
        "  rpcengine demo --keep-running 300\n"
        "  rpcengine demo --cluster                (two server processes, one counter, through Redis)\n"
        "\n"
        "URLs: tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH, wss://HOST:PORT/PATH,\n"
        "      http://HOST:PORT/PATH/rpc (a client only: long-poll to a ws:// listener, which answers HTTP too)\n"
        "JSON-RPC 2.0 (clients; every listener answers it too): --jsonrpc, or jsonrpc+tcp://HOST:PORT,\n"
        "      ws://HOST:PORT/jsonrpc, http://HOST:PORT/jsonrpc (one POST per call)\n"
        f"{_EXIT_CODES}\n"
        "Run 'rpcengine COMMAND --help' for a command's options and examples."
    ),
    "serve": (
        "examples:\n"
        f"  rpcengine serve {_SERVICE} tcp://127.0.0.1:7000\n"
        f"  rpcengine serve {_SERVICE} tcp://127.0.0.1:7000 ws://127.0.0.1:8000/rpc\n"
        "  rpcengine serve myservice:registry tcp://127.0.0.1:0      (a dispatchers.Registry; port 0: a free port)\n"
        "  rpcengine serve --functions mymodule tcp://127.0.0.1:7000 (mymodule's public functions)\n"
        "  rpcengine serve --files ./shared tcp://127.0.0.1:7000     (a directory; --writable: uploads too)\n"
        f"  rpcengine serve {_SERVICE} tls://127.0.0.1:7443 --certfile cert.pem --keyfile key.pem\n"
        f"  rpcengine serve {_SERVICE} tcp://127.0.0.1:7000 --trace   (every message on stderr)\n"
        f"  rpcengine serve {_SERVICE} tcp://0.0.0.0:7000 --discovery --workgroup lab  (found by discover)\n"
        f"  rpcengine serve {_SERVICE} tcp://127.0.0.1:7000 --broker redis://127.0.0.1:6379/0\n"
        f"  rpcengine serve {_SERVICE} tcp://127.0.0.1:7001 --broker unix:///run/redis/redis.sock\n"
        f"  rpcengine serve {_SERVICE} --broker redis://127.0.0.1:6379/0 --queue work   (a queue worker only)\n"
        "\n"
        "Every listener answers JSON-RPC 2.0 clients too, with no flag: a tcp:// one when a\n"
        "connection's first line is a JSON-RPC document, a ws://HOST:PORT/PATH one at PATH/jsonrpc\n"
        "(a WebSocket, or POST) or for the jsonrpc subprotocol.\n"
        "\n"
        "exit codes: 0 stopped by a signal, 2 usage (a bad target or URL), 4 a listener cannot be opened\n"
        "            or the broker's Redis does not answer"
    ),
    "call": (
        "examples:\n"
        "  rpcengine call tcp://127.0.0.1:7000 get\n"
        "  rpcengine call tcp://127.0.0.1:7000 add 5                  (sends 5)\n"
        "  rpcengine call tcp://127.0.0.1:7000 echo 2 3               (sends [2, 3])\n"
        '  rpcengine call tcp://127.0.0.1:7000 echo five              (sends "five")\n'
        '  rpcengine call tcp://127.0.0.1:7000 echo --string 123      (sends "123", not 123)\n'
        '  rpcengine call tcp://127.0.0.1:7000 say \'{"name": "me", "text": "hi"}\'\n'
        "  echo 0.5 | rpcengine call tcp://127.0.0.1:7000 sleep -\n"
        "  rpcengine call ws://127.0.0.1:8000/rpc sleep 3 --timeout 0.5 --trace\n"
        "  rpcengine call http://127.0.0.1:8000/rpc add 5         (over HTTP, to ws://127.0.0.1:8000/)\n"
        "  rpcengine call --jsonrpc tcp://127.0.0.1:7000 echo 2 3     (JSON-RPC 2.0: params [2, 3])\n"
        "  rpcengine call jsonrpc+tcp://127.0.0.1:7000 echo 2 3      (the same)\n"
        "  rpcengine call ws://127.0.0.1:8000/jsonrpc echo 2 3 --trace (the JSON-RPC documents on stderr)\n"
        "  rpcengine call http://127.0.0.1:8000/jsonrpc add         (one JSON-RPC POST)\n"
        "  rpcengine call --broker redis://127.0.0.1:6379/0 queue:work add 5   (a worker of queue work answers)\n"
        "  rpcengine call --broker unix:///run/redis/redis.sock queue:work sleep 3 --timeout 1\n"
        "\n"
        "The result is printed on stdout; an Error answer's data on stderr as one line of JSON\n"
        "(with a 'hint:' line after it when a bare ARG may have been read as the wrong type).\n"
        "Over JSON-RPC the data is the params, an array or an object: one ARG that is neither is\n"
        "sent as a one-item array (echo 5 sends [5]); an error answer's data is\n"
        '{"error": KIND, "message": ..., "code": JSON-RPC CODE, "data": ...}.\n'
        f"{_EXIT_CODES}"
    ),
    "notify": (
        "examples:\n"
        '  rpcengine notify tcp://127.0.0.1:7000 say \'{"name": "me", "text": "hello"}\'\n'
        "  rpcengine notify ws://127.0.0.1:8000/rpc add 1 --trace\n"
        "  rpcengine notify http://127.0.0.1:8000/jsonrpc add     (a JSON-RPC notification, HTTP 204)\n"
        "  rpcengine notify --broker redis://127.0.0.1:6379/0 queue:work add 1   (one worker runs it)\n"
        "\n"
        "--timeout bounds the connection only: nothing is answered to wait for.\n"
        f"{_EXIT_CODES}"
    ),
    "listen": (
        "examples:\n"
        "  rpcengine listen tcp://127.0.0.1:7000\n"
        "  rpcengine listen tcp://127.0.0.1:7000 --count 1\n"
        "  rpcengine listen ws://127.0.0.1:8000/rpc --duration 60 > broadcasts.jsonl\n"
        "  rpcengine listen ws://127.0.0.1:8000/jsonrpc --count 1   (JSON-RPC 2.0 notifications)\n"
        "\n"
        "--timeout bounds the connection only; --duration bounds the listening.\n"
        f"{_EXIT_CODES}"
    ),
    "methods": (
        "examples:\n"
        "  rpcengine methods tcp://127.0.0.1:7000\n"
        "  rpcengine methods tcp://127.0.0.1:7000 add\n"
        "  rpcengine methods tcp://127.0.0.1:7000 --json\n"
        "  rpcengine methods --jsonrpc tcp://127.0.0.1:7000\n"
        "  rpcengine methods --broker redis://127.0.0.1:6379/0 queue:work\n"
        "\n"
        f"{_EXIT_CODES} (1 also when NAME is not a method)"
    ),
    "discover": (
        "examples:\n"
        "  rpcengine discover\n"
        "  rpcengine discover --workgroup lab --timeout 2\n"
        "  rpcengine discover --json\n"
        "  rpcengine discover --address 192.168.1.255      (a subnet's broadcast address)\n"
        "  rpcengine discover --address 192.168.1.20       (ask one host)\n"
        "\n"
        "exit codes: 0 servers answered, 2 usage, 3 none answered within --timeout, 4 the probe cannot be sent"
    ),
    "get": (
        "examples:\n"
        "  rpcengine serve --files ./shared tcp://127.0.0.1:7000        (the server side)\n"
        "  rpcengine get tcp://127.0.0.1:7000 reports/june.csv june.csv\n"
        "  rpcengine get tcp://127.0.0.1:7000 big.iso big.iso --chunk 262144 --quiet\n"
        "  rpcengine call tcp://127.0.0.1:7000 files.list reports       (what there is)\n"
        "\n"
        "--timeout bounds the connection and each wait for a chunk. A refusal (not_found,\n"
        "path_refused: absolute, '..', a symlink out of the root; not_a_file) exits with 1.\n"
        f"{_EXIT_CODES}"
    ),
    "put": (
        "examples:\n"
        "  rpcengine serve --files ./inbox --writable tcp://127.0.0.1:7000   (the server side)\n"
        "  rpcengine put tcp://127.0.0.1:7000 notes.txt notes.txt\n"
        "  rpcengine put tcp://127.0.0.1:7000 build.tar.gz builds/build-42.tar.gz\n"
        "\n"
        "The remote directory must exist. A refusal (read_only, path_refused, checksum_mismatch)\n"
        "exits with 1, and nothing is left on the server.\n"
        f"{_EXIT_CODES}"
    ),
    "demo": (
        "examples:\n"
        "  rpcengine demo\n"
        "  rpcengine demo --keep-running 300     (keep the browser page alive for 5 minutes)\n"
        "  rpcengine demo --base-port 0 --trace  (free ports; every message on stderr)\n"
        "  rpcengine demo --cluster              (two nodes and a private redis-server: needs /usr/bin/redis-server)\n"
        "  rpcengine demo --cluster --broker redis://127.0.0.1:6379/0   (two nodes on that Redis)"
    ),
}
