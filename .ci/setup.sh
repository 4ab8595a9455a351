#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine: a virtualenv with
# the package and its extras. With --test, also what the full test suite
# needs beyond Python packages (Chromium for the browser test, the Autobahn
# TestSuite in a Python 2 virtualenv, Debian's redis-server, mushroom 0.9.17's JavaScript client and
# server for the compatibility tests). Idempotent; every step is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  timeout 300 "$PYTHON" -m venv .venv
fi
echo "setup: installing rpcengine and its extras into .venv"
timeout 900 .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,docs,websocket,orjson,redis]'

if [ "${1:-}" = "--test" ]; then
  bash .ci/install-chromium.sh
  # A real redis-server for the broker tests (the tests start it themselves, on a Unix socket).
  bash .ci/install-redis.sh
  bash .ci/install-autobahn.sh
  bash .ci/fetch-mushroom.sh
  # A real mushroom server for the compatibility tests (its own dependencies: gevent-websocket, six).
  bash .ci/install-mushroom.sh
fi
echo "setup: done"
