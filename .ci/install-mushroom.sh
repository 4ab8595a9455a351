#!/usr/bin/env bash
# Install the real mushroom 0.9.17 server (and its dependencies gevent-websocket and six) into
# .venv, for the compatibility tests. Its setup.py lists test tools (kombu, selenium) under
# setup_requires, which setuptools fetches at build time from the newest releases (whose own
# requirements the index may not have yet); they are not needed to install or run it, so that
# list is dropped from the downloaded sdist before it is built. mushroom's code is unchanged and
# never committed. Idempotent, bounded.
set -euo pipefail

log() { echo "[install-mushroom] $*"; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$REPO/.venv/bin/python"
VERSION="${MUSHROOM_VERSION:-0.9.17}"

if "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('mushroom') != '$VERSION')" 2>/dev/null; then
    log "mushroom $VERSION already installed"
    exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
timeout 300 "$PY" "$REPO/.ci/fetch_sdist.py" mushroom "$VERSION" "$WORK" >/dev/null
tar -xzf "$WORK/mushroom-$VERSION.tar.gz" -C "$WORK"
SRC="$WORK/mushroom-$VERSION"
"$PY" - "$SRC/setup.py" <<'PYEOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
stripped, count = re.subn(r"\n\s*setup_requires=\[[^\]]*\],", "", text)
if count != 1:
    sys.exit("install-mushroom: setup_requires not found exactly once in setup.py")
open(path, "w").write(stripped)
PYEOF
timeout 600 "$PY" -m pip install -q --disable-pip-version-check "$SRC" 'gevent-websocket==0.10.1' 'six>=1.16'
log "mushroom $VERSION installed"
