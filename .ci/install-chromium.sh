#!/usr/bin/env bash
# Install Debian's chromium + chromium-driver (idempotent, bounded, quiet on success).
set -euo pipefail

log() { echo "[install-chromium] $*"; }

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    log "chromium already installed, skipping"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    LOG="$(mktemp)"
    trap 'rm -f "$LOG"' EXIT
    log "apt-get update"
    if ! timeout 300 $SUDO apt-get update -q >"$LOG" 2>&1; then
        cat "$LOG" >&2; log "apt-get update failed"; exit 1
    fi
    log "apt-get install chromium chromium-driver"
    if ! timeout 900 $SUDO env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends chromium chromium-driver >"$LOG" 2>&1; then
        cat "$LOG" >&2; log "apt-get install failed"; exit 1
    fi
fi

log "version: $(timeout 60 /usr/bin/chromium --version 2>/dev/null || echo unknown)"
