"""Download one release's sdist from the package index without building it: python fetch_sdist.py NAME VERSION DIR.

``pip download`` prepares an sdist's metadata, which runs its setup.py (and whatever its
setup_requires fetch). This reads the index's simple page instead (pip's index-url, or
PyPI's), checks the file's sha256 and saves it into DIR. Prints the saved path.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import urllib.request


def index_url() -> str:
    """Return pip's configured index URL, else PyPI's simple index."""
    configured = os.environ.get("PIP_INDEX_URL")
    if not configured:
        try:
            configured = subprocess.run(
                [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            configured = ""
    return (configured or "https://pypi.org/simple").rstrip("/")


def main() -> None:
    """Fetch the sdist named on the command line."""
    name, version, dest = sys.argv[1:4]
    request = urllib.request.Request(f"{index_url()}/{name}/", headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        page = answer.read().decode()
    pattern = rf'href="([^"]*/{re.escape(name)}-{re.escape(version)}\.tar\.gz)#sha256=([0-9a-f]{{64}})"'
    match = re.search(pattern, page)
    if match is None:
        sys.exit(f"fetch_sdist: no sdist of {name} {version} on the index")
    url, digest = match.groups()
    with urllib.request.urlopen(url, timeout=120) as answer:
        data = answer.read()
    if hashlib.sha256(data).hexdigest() != digest:
        sys.exit(f"fetch_sdist: {url} does not match its sha256")
    path = os.path.join(dest, f"{name}-{version}.tar.gz")
    with open(path, "wb") as out:
        out.write(data)
    print(path)


if __name__ == "__main__":
    main()
