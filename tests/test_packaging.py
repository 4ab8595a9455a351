"""The package as it would be published: metadata, the wheel, and name conflicts.

* the classifiers are on the maintained list (the ``trove-classifiers``
  package), the licence file exists and is declared, the test extra holds
  the type stubs;
* the wheel, built from a copy of the sources (``python -m build``, which
  fetches setuptools from the package index into its isolated build
  environment) and installed into a fresh virtual environment outside the
  repository (pip fetches gevent, ujson and msgspec from the package index; its
  cache makes that fast after the first run), contains the licence file,
  runs ``rpcengine --help`` and the README's first Python example;
* a foreign package named ``transports`` or ``dispatchers`` (as the
  unrelated ``transports`` package on the package index would be, installed
  over rpcengine's or ahead of it on ``sys.path``) fails the import with a
  message that names it and the fix.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def listed(value: str) -> list[str]:
    return [line.strip() for line in value.strip().splitlines() if line.strip()]


def test_classifiers_are_on_the_maintained_list() -> None:
    from trove_classifiers import classifiers, deprecated_classifiers

    declared = listed(setup_cfg()["metadata"]["classifiers"])
    assert declared
    for classifier in declared:
        assert classifier in classifiers, f"not a valid classifier: {classifier!r}"
        assert classifier not in deprecated_classifiers, f"deprecated classifier: {classifier!r}"


def test_the_licence_file_is_mit_and_declared() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) rpcengine developers" in text
    metadata = setup_cfg()["metadata"]
    assert metadata["license"] == "MIT"
    assert listed(metadata["license_files"]) == ["LICENSE"]


def test_the_test_extra_has_the_type_stubs_and_the_packaging_tools() -> None:
    test_extra = " ".join(listed(setup_cfg()["options.extras_require"]["test"]))
    for package in ("types-gevent", "trove-classifiers", "build"):
        assert re.search(rf"(^| ){re.escape(package)}\b", test_extra), package
    package_data = setup_cfg()["options.package_data"]
    assert "py.typed" in package_data["rpcengine"]


def copy_sources(target: Path) -> Path:
    """Copy the repository's sources (no virtual environments, builds or caches) to ``target``."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv", ".autobahn-venv", "_build", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
        ".hypothesis",
    )  # fmt: skip
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of the sources; return its path."""
    work = tmp_path_factory.mktemp("wheel")
    sources = copy_sources(work / "src")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(sources)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (built,) = (work / "dist").glob("rpcengine-*.whl")
    return built


def test_the_wheel_holds_the_licence_and_the_package_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    licences = [name for name in names if ".dist-info/" in name and name.endswith("LICENSE")]
    assert licences, names
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(licences[0]).decode().startswith("MIT License")
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
    for name in ("rpcengine/py.typed", "transports/py.typed", "dispatchers/py.typed", "transports/static/rpcengine.js"):
        assert name in names, name
    assert "Classifier: Typing :: Typed" in metadata
    assert "Framework :: gevent" not in metadata
    assert "Project-URL: Download, https://pypi.org/project/rpcengine/" in metadata


@pytest.mark.timeout(900)
def test_the_wheel_installs_in_a_fresh_environment_and_runs(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]

    where = subprocess.run(
        [str(python), "-c", "import rpcengine, transports, dispatchers; print(rpcengine.__file__)"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout  # the wheel's, not the checkout's

    help_run = subprocess.run(
        [str(env_dir / "bin" / "rpcengine"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert help_run.returncode == 0, help_run.stderr
    assert "serve" in help_run.stdout and "call" in help_run.stdout

    first_example = re.search(r"^```python\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)
    assert first_example is not None
    script = tmp_path / "readme_first_example.py"
    script.write_text(first_example.group(1))
    example = subprocess.run(
        [str(python), str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )
    assert example.returncode == 0, first_example.group(1) + example.stdout + example.stderr


FOREIGN_INIT = '"""An unrelated package that happens to be named like one of rpcengine\'s."""\n'


def run_python(code: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a subprocess with ``path`` first on ``sys.path``."""
    env = dict(os.environ, PYTHONPATH=str(path))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=path, env=env)


@pytest.mark.parametrize(
    ("package", "module"),
    [
        ("transports", "transports.tcp"),
        ("transports", "transports.memory"),
        ("transports", "transports.websocket"),
        ("dispatchers", "dispatchers.method"),
    ],
)
def test_a_package_installed_over_ours_is_named(package: str, module: str, tmp_path: Path) -> None:
    if module == "transports.websocket" and importlib.util.find_spec("websockets") is None:
        pytest.skip("the websocket extra is not installed")
    # pip installing the foreign package into the same site-packages replaces __init__.py, keeps our modules.
    shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / package / "__init__.py").write_text(FOREIGN_INIT)
    result = run_python(f"import {module}", tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: "), result.stderr
    assert str(tmp_path / package / "__init__.py") in last
    assert f"pip uninstall {package}" in last and "not rpcengine's" in last


def test_our_init_removed_by_an_uninstall_is_named(tmp_path: Path) -> None:
    # Uninstalling the foreign package removes the __init__.py it had replaced: a namespace package is left.
    shutil.copytree(ROOT / "transports", tmp_path / "transports", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "transports" / "__init__.py").unlink()
    result = run_python("import transports.tcp", tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ") and str(tmp_path / "transports") in last, result.stderr
    assert "pip uninstall transports" in last


@pytest.mark.parametrize("package", ["transports", "dispatchers"])
def test_the_command_line_names_a_package_that_shadows_ours(package: str, tmp_path: Path) -> None:
    # A foreign package earlier on sys.path: none of our modules of that package ever runs.
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(FOREIGN_INIT)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "rpcengine", "call", "tcp://127.0.0.1:9", "ping"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rpcengine: error: ") and str(tmp_path / package / "__init__.py") in lines[0]
    assert f"pip uninstall {package}" in lines[0]


def test_our_own_packages_pass_the_check() -> None:
    result = run_python(
        "import transports, dispatchers, transports.tcp, transports.memory, dispatchers.method\n"
        "from rpcengine.cli.packages import require_rpcengine_packages\n"
        "require_rpcengine_packages()\n"
        "assert transports.__rpcengine_package__ is True and dispatchers.__rpcengine_package__ is True\n",
        ROOT,
    )
    assert result.returncode == 0, result.stderr
