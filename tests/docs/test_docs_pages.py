"""Every docs page's code, taken from the built page, runs as shown.

The docs are built once with ``sphinx-build -W`` (warnings are errors).
Then each page's code blocks are read back from its HTML, as a reader sees
them (``literalinclude`` resolved, markup stripped), and:

* every ``python`` block is run in a subprocess, in a fresh folder per
  page, in page order; a block with a file name as caption (``:caption:
  tutorial_service.py``) is first saved under that name, as the page tells
  the reader to, so later blocks can import it;
* a block that is deliberately part of a file is marked as such: class
  ``excerpt`` and the caption ``Excerpt from PATH``, which the reader sees;
  it is not run, but it must be a verbatim part of ``PATH`` (whose own
  tests run it);
* a block without a language is refused (``highlight-default``: a
  ``literalinclude`` or ``::`` block that names none), so a fragment cannot
  slip in as unmarked code; console sessions are replayed by ``test_docs_console.py``,
  data (``json``, ``text``) and install commands (``shell``) are shown only;
* every ``docs/examples/*.py`` file is shown whole on some page, so the
  files under ``docs/examples`` are exactly what the pages show.

The API reference pages hold the docstrings' code: their ``>>>`` examples
run in ``test_docs.py`` (``test_docstring_examples_pass``); their literal
blocks (``::``, no language) are illustrations, and they have no ``python``
blocks (checked here).
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"

HAS_WEBSOCKET = importlib.util.find_spec("transports.websocket") is not None
HAS_OPENSSL = shutil.which("openssl") is not None

#: Languages a block may be shown in without being run here, and why.
SHOWN_ONLY = {
    "console": "replayed by test_docs_console.py",
    "shell": "install commands",
    "json": "data on the wire",
    "text": "data, usage synopses",
    "javascript": "the browser client (tested in headless Chromium by its own tests)",
    "html": "a browser page",
    "pycon": "docstring examples, run by test_docstring_examples_pass",
}
RUN = {"python", "python3", "py"}

BLOCK = re.compile(
    r'(?:<div class="code-block-caption"><span class="caption-text">(?P<caption>.*?)</span>.*?</div>\s*)?'
    r'<div class="(?P<classes>[^"]*\bhighlight-[\w+-]+\b[^"]*)"><div class="highlight"><pre>(?P<code>.*?)</pre>',
    re.DOTALL,
)


@dataclass
class Block:
    """One code block of a built page, as shown."""

    page: str
    language: str
    classes: list[str]
    caption: str
    code: str

    @property
    def excerpt(self) -> bool:
        return "excerpt" in self.classes


def source_pages() -> list[str]:
    """Every page of the docs, by name (``howto/tls``), from the ``.rst`` sources."""
    return sorted(
        str(path.relative_to(DOCS).with_suffix("")) for path in DOCS.rglob("*.rst") if "_build" not in path.parts
    )


def blocks_of(built: Path, page: str) -> list[Block]:
    """Return the code blocks of one built page, in page order."""
    text = (built / f"{page}.html").read_text()
    found = []
    for match in BLOCK.finditer(text):
        classes = match.group("classes").split()
        language = next(name[len("highlight-") :] for name in classes if name.startswith("highlight-"))
        code = html.unescape(re.sub(r"<[^>]+>", "", match.group("code")))
        caption = html.unescape(re.sub(r"<[^>]+>", "", match.group("caption") or ""))
        found.append(Block(page, language, classes, caption.strip(), code))
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the docs once with ``sphinx-build -W``; return the HTML folder."""
    if importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("furo") is None:
        if os.environ.get("CI"):
            pytest.fail("sphinx and furo must be installed in CI (the docs extra)")
        pytest.skip("sphinx or furo is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("docs") / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    return out


def test_docs_build_without_warnings(built: Path) -> None:
    for page in ("index", "tutorial", "protocol", "cli", "faq", "changelog", "howto/index", "reference/index"):
        assert (built / f"{page}.html").exists(), page


def test_pages_link_to_their_source_and_to_python_and_gevent(built: Path) -> None:
    reference = (built / "reference" / "rpcengine.html").read_text()
    assert "_modules/rpcengine/engine.html" in reference  # viewcode's [source] links
    assert (built / "_modules" / "rpcengine" / "engine.html").exists()
    pages = "".join(path.read_text() for path in built.rglob("*.html") if "_modules" not in path.parts)
    assert 'href="https://docs.python.org/3/' in pages
    assert 'href="https://www.gevent.org/' in pages


@pytest.mark.parametrize("page", source_pages())
def test_page_code_runs_as_shown(page: str, built: Path, tmp_path: Path) -> None:
    blocks = blocks_of(built, page)
    assert (built / f"{page}.html").exists(), page
    for block in blocks:
        if page.startswith("reference/") and block.language == "default":
            continue  # a docstring's illustration (a literal block): shown, not claimed to run
        assert block.language in RUN or block.language in SHOWN_ONLY, (
            f"{page}: a code block without a known language ({block.language!r}); give it one "
            f"(.. code-block:: python / console / json / text ...):\n{block.code}"
        )
    for block in blocks:
        if block.excerpt:
            check_excerpt(block)
    runnable = [block for block in blocks if block.language in RUN]
    if page.startswith("reference/"):
        assert not [block for block in runnable if not block.excerpt], (
            f"{page}: python code in a docstring is run nowhere"
        )
    to_run = [block for block in runnable if not block.excerpt]
    for block in to_run:
        if block.caption.endswith(".py"):
            assert "/" not in block.caption, block.caption
            (tmp_path / block.caption).write_text(block.code)
    for index, block in enumerate(to_run):
        reason = missing_requirement(block.code)
        if reason:
            pytest.skip(reason)
        script = block.caption if block.caption.endswith(".py") else f"block_{index}.py"
        if not block.caption.endswith(".py"):
            (tmp_path / script).write_text(block.code)
        result = subprocess.run(
            [sys.executable, script], capture_output=True, text=True, timeout=90, cwd=tmp_path, env=clean_env()
        )
        assert result.returncode == 0, f"{page}: {script} failed:\n{block.code}\n{result.stdout}{result.stderr}"


def check_excerpt(block: Block) -> None:
    """An excerpt names the file it comes from, and is a verbatim part of it."""
    assert block.caption.startswith("Excerpt from "), f"{block.page}: an excerpt must say where it is from"
    source = ROOT / block.caption.removeprefix("Excerpt from ")
    assert source.is_file(), f"{block.page}: {source} does not exist"
    shown = [line.strip() for line in block.code.strip().splitlines()]
    lines = [line.strip() for line in source.read_text().splitlines()]
    assert shown and any(lines[start : start + len(shown)] == shown for start in range(len(lines))), (
        f"{block.page}: the excerpt is not a part of {source}"
    )


def missing_requirement(code: str) -> str:
    """Return why ``code`` cannot run here (an optional part is missing), or ``""``."""
    if ("transports.websocket" in code or "websockets" in code or "ws://" in code) and not HAS_WEBSOCKET:
        return "transports.websocket cannot be imported"
    if '"openssl"' in code and not HAS_OPENSSL:
        return "the openssl command is not installed"
    return ""


def clean_env() -> dict[str, str]:
    """The environment a reader's shell would have: no PYTHONPATH pointing into the repository."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def test_every_example_is_shown_whole(built: Path) -> None:
    shown = {block.code.strip() for page in source_pages() for block in blocks_of(built, page) if not block.excerpt}
    examples = sorted(EXAMPLES.glob("*.py"))
    assert examples
    for example in examples:
        assert example.read_text().strip() in shown, f"{example.name} is not shown whole on any page"


def test_no_lint_markers_are_shown(built: Path) -> None:
    for page in source_pages():
        for block in blocks_of(built, page):
            for marker in ("# noqa", "# type: ignore", "# fmt: skip", "# fmt: off", "# pragma"):
                assert marker not in block.code, f"{page} shows {marker!r}:\n{block.code}"


def test_the_install_line_and_the_extras_are_on_the_first_page_and_in_the_readme(built: Path) -> None:
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    extras = [name.strip() for name in config["options.extras_require"]]
    install = "python -m venv .venv && .venv/bin/pip install -e '.[websocket]'"
    index = [block.code for block in blocks_of(built, "index")]
    readme = (ROOT / "README.md").read_text()
    assert any(install in code for code in index)
    assert install in readme
    index_text = (DOCS / "index.rst").read_text()
    for extra in extras:
        assert f"``{extra}``" in index_text, f"the extra {extra!r} is not described in docs/index.rst"
        assert f"| `{extra}` |" in readme, f"the extra {extra!r} is not described in README.md"
