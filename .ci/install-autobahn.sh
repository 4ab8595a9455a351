#!/usr/bin/env bash
# Create a Python 2.7 virtualenv with the Autobahn|Testsuite (wstest) at
# <repo>/.autobahn-venv (idempotent, bounded).
set -euo pipefail

log() { echo "[install-autobahn] $*"; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.autobahn-venv"
PROJECT_VENV="$REPO/.venv"
PY27="${PY27:-/root/.pyenv/versions/2.7.18/bin/python}"
AUTOBAHN_VERSION="${AUTOBAHN_VERSION:-25.10.1}"

write_loopback_wrapper() {
    # wstest binds its listeners to all interfaces (and fuzzingserver also
    # starts a web UI on :8080 unless -u 0 is given).  wstest-loopback is
    # wstest with every TCP listener forced onto 127.0.0.1.
    cat >"$VENV/bin/wstest-loopback" <<PYEOF
#!$VENV/bin/python
# wstest, but every listening socket is bound to 127.0.0.1 (written by .ci/install-autobahn.sh)
import sys
from autobahntestsuite.wstest import run  # installs the Twisted reactor
from twisted.internet import reactor

_listenTCP = reactor.listenTCP
_listenSSL = reactor.listenSSL


def _listen_tcp(port, factory, backlog=50, interface=''):
    return _listenTCP(port, factory, backlog, interface or '127.0.0.1')


def _listen_ssl(port, factory, ctx, backlog=50, interface=''):
    return _listenSSL(port, factory, ctx, backlog, interface or '127.0.0.1')


reactor.listenTCP = _listen_tcp
reactor.listenSSL = _listen_ssl

if __name__ == '__main__':
    sys.argv[0] = 'wstest'
    sys.exit(run())
PYEOF
    chmod +x "$VENV/bin/wstest-loopback"
}

if [ -x "$VENV/bin/wstest" ]; then
    log "wstest already installed at $VENV/bin/wstest, skipping install"
    if [ ! -x "$VENV/bin/wstest-loopback" ]; then
        log "writing $VENV/bin/wstest-loopback"
        write_loopback_wrapper
    fi
    exit 0
fi

if [ ! -x "$PY27" ]; then
    log "Python 2.7 interpreter not found at $PY27" >&2
    exit 1
fi

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
run() {  # run <timeout-seconds> cmd...: quiet on success, dump log on failure
    local t="$1"; shift
    if ! timeout "$t" "$@" >"$LOG" 2>&1; then
        cat "$LOG" >&2
        log "FAILED: $*" >&2
        exit 1
    fi
}

if [ ! -x "$PROJECT_VENV/bin/virtualenv" ] || \
   ! "$PROJECT_VENV/bin/python" -c 'import virtualenv, sys; v = tuple(int(x) for x in virtualenv.__version__.split(".")[:2]); sys.exit(0 if v < (20, 22) else 1)' 2>/dev/null; then
    log "installing 'virtualenv<20.22' into $PROJECT_VENV"
    run 300 "$PROJECT_VENV/bin/pip" install -q --disable-pip-version-check 'virtualenv<20.22'
else
    log "virtualenv<20.22 already present in $PROJECT_VENV"
fi

log "creating Python 2.7 virtualenv at $VENV"
rm -rf "$VENV"
run 300 "$PROJECT_VENV/bin/virtualenv" -q -p "$PY27" "$VENV"

log "installing autobahntestsuite==$AUTOBAHN_VERSION"
if ! timeout 900 "$VENV/bin/pip" install -q --disable-pip-version-check --no-python-version-warning \
        "autobahntestsuite==$AUTOBAHN_VERSION" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    rm -rf "$VENV"
    log "FAILED: pip install autobahntestsuite==$AUTOBAHN_VERSION" >&2
    exit 1
fi

log "writing $VENV/bin/wstest-loopback"
write_loopback_wrapper

log "checking wstest"
run 120 "$VENV/bin/wstest" --help
run 120 "$VENV/bin/wstest-loopback" --help
log "wstest installed at $VENV/bin/wstest (loopback-only variant: $VENV/bin/wstest-loopback)"
