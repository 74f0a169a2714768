"""The package works installed, outside the checkout: the wheel carries its configuration, and
``stormwatch config validate`` and a small ``data fetch`` run in a fresh virtual environment
whose working directory and ``sys.path`` hold nothing of the repository.

The wheel is built offline (``--no-build-isolation``, with the setuptools of this environment)
and installed with ``--no-deps``; the dependencies are made importable from this environment's
site-packages through a ``.pth`` file, so the test needs no network and takes seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("market", "memory", "monitors", "models", "flows")


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh virtual environment with only the Stormwatch wheel installed; returns its
    ``stormwatch`` script and the environment to run it with."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy, so the build writes nothing into the shared checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "STORMWATCH_", "VIRTUAL_ENV"))}
    env["STORMWATCH_HOME"] = str(root / "home")
    built = run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w",
                root / "dist", cwd=source, env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "project.license" not in built.stdout + built.stderr  # no setuptools deprecation
    (wheel,) = (root / "dist").glob("stormwatch-*.whl")
    assert "flows/stormwatch.yaml" in zipfile.ZipFile(wheel).namelist()

    venv = root / "venv"
    made = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root, env=env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                    cwd=root, env=env).stdout.strip())
    # The dependencies come from this environment (not the repository: its editable finder is
    # not carried over, only the plain site-packages directory).
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = run(python, "-m", "pip", "--version", cwd=root, env=env)
    assert pip.returncode == 0, pip.stderr
    installed = run(python, "-m", "pip", "install", "--no-deps", "--no-index", wheel, cwd=root, env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv / "bin" / "stormwatch", env


def test_the_installed_package_is_not_the_checkout(installed: tuple[Path, dict[str, str]],
                                                   tmp_path: Path) -> None:
    script, env = installed
    python = script.parent / "python"
    found = run(python, "-c", "import flows, sys; print(flows.__file__); print(*sys.path, sep='\\n')",
                cwd=tmp_path, env=env)
    assert found.returncode == 0, found.stderr
    module, *path = found.stdout.splitlines()
    assert module.startswith(str(script.parent.parent)) and "site-packages" in module
    # Only the dependencies' site-packages may lie under the checkout (its .venv), never the
    # checkout itself or one of its packages.
    assert all(p != str(REPO_ROOT) and not p.startswith(tuple(str(REPO_ROOT / pkg) for pkg in PACKAGES))
               for p in path), path


def test_config_validate_and_show_find_the_packaged_default(installed: tuple[Path, dict[str, str]],
                                                            tmp_path: Path) -> None:
    script, env = installed
    result = run(script, "config", "validate", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid " in result.stdout and "site-packages/flows/stormwatch.yaml" in result.stdout
    assert "76 symbols, 8 archive events" in result.stdout
    shown = run(script, "config", "show", cwd=tmp_path, env=env)
    assert "chosen by: packaged default" in shown.stdout, shown.stdout + shown.stderr


def test_config_init_writes_a_copy_that_the_working_directory_then_uses(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    script, env = installed
    assert run(script, "config", "init", cwd=tmp_path, env=env).returncode == 0
    copy = tmp_path / "stormwatch.yaml"
    copy.write_text(copy.read_text().replace('version: "1.0.0"', 'version: "1.0.1"', 1))
    shown = run(script, "config", "show", cwd=tmp_path, env=env)
    assert f"configuration {copy}" in shown.stdout and "chosen by: working directory" in shown.stdout
    assert "version 1.0.1" in shown.stdout


def test_a_small_fetch_runs_outside_the_checkout(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    script, env = installed
    result = run(script, "data", "fetch", "--symbols", "AAPL,SPY", "--start", "2024-01-02", "--end", "2024-01-31",
                 cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "AAPL" in result.stdout and "Data is simulated" in result.stdout
    assert (Path(env["STORMWATCH_HOME"]) / "bars" / "simulated" / "AAPL.parquet").exists()
