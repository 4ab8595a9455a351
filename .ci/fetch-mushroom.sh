#!/usr/bin/env bash
# Fetch mushroom 0.9.17's JavaScript client (js/mushroom.js) from its sdist on the package
# index into <repo>/.cache/mushroom/, for the mushroom compatibility tests. It is mushroom's
# code, not ours: never committed. Idempotent, bounded.
set -euo pipefail

log() { echo "[fetch-mushroom] $*"; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$REPO/.cache/mushroom"
VERSION="${MUSHROOM_VERSION:-0.9.17}"

if [ -s "$DEST/mushroom.js" ]; then
    log "mushroom.js $VERSION already fetched"
    exit 0
fi
mkdir -p "$DEST"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# The sdist only, without building it (its setup.py fetches test tools the index may not serve).
timeout 300 "$REPO/.venv/bin/python" "$REPO/.ci/fetch_sdist.py" mushroom "$VERSION" "$WORK" >/dev/null
tar -xzf "$WORK/mushroom-$VERSION.tar.gz" -C "$WORK" "mushroom-$VERSION/js/mushroom.js"
cp "$WORK/mushroom-$VERSION/js/mushroom.js" "$DEST/mushroom.js"
log "mushroom.js $VERSION fetched into $DEST"
