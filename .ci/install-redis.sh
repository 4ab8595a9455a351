#!/usr/bin/env bash
# Install Debian's redis-server (idempotent, bounded, quiet on success). The package's own service
# is not needed: the tests start redis-server themselves on a Unix socket, with persistence off.
set -euo pipefail

log() { echo "[install-redis] $*"; }

if [ -x /usr/bin/redis-server ]; then
    log "redis-server already installed, skipping"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    LOG="$(mktemp)"
    trap 'rm -f "$LOG"' EXIT
    log "apt-get update"
    if ! timeout 300 $SUDO apt-get update -q >"$LOG" 2>&1; then
        cat "$LOG" >&2; log "apt-get update failed"; exit 1
    fi
    log "apt-get install redis-server"
    if ! timeout 900 $SUDO env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends redis-server >"$LOG" 2>&1; then
        cat "$LOG" >&2; log "apt-get install failed"; exit 1
    fi
fi
# Debian starts its own service on port 6379 when installed; the tests never use it.
log "version: $(timeout 60 /usr/bin/redis-server --version 2>/dev/null || echo unknown)"
