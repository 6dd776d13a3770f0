"""A newcomer's install, as the README tells it, in one fresh virtual environment.

The sequence that broke before: ``pip install .`` and a run (numba compiled into a cache
that then lived in site-packages), then ``pip install -e '.[test]'`` over it, then ``cvj``
from a directory outside the checkout, which imported a leftover empty ``kernels`` folder.
Now the distribution has one import name (``cvj``) and numba's cache lives in the user's
cache directory. The test copies the checkout (tracked files only), so the repository
itself gets no build folders, and points HOME and XDG_CACHE_HOME at a temporary folder.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--customers", "20000", "--days", "20", "-q"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"),
]


def _sh(args, cwd, env, ok=True):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    if ok and done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def test_newcomer_sequence_in_one_venv(tmp_path):
    src = tmp_path / "checkout"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        target = src / name.decode()
        if (ROOT / name.decode()).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name.decode(), target)
    home = tmp_path / "home"
    home.mkdir()
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "NUMBA_", "CVJ_", "PYTHON"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    base = getattr(sys, "_base_executable", sys.executable)
    _sh([base, "-m", "venv", str(venv)], tmp_path, env)
    py = str(venv / "bin" / "python")

    # the README's first command (smaller market, so the test is quick)
    _sh([py, "-m", "pip", "install", "-q", "."], src, env)
    first = _sh(["cvj", "run", "--out", "results", *SMALL], src, env)
    assert (src / "results" / "summary").is_dir(), first.stderr
    site = Path(_sh([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], src, env).stdout.strip())
    installed = site / "cvj"
    assert installed.is_dir()
    assert not list(installed.rglob("*.nbi")), "numba cached into site-packages"
    assert list((home / ".cache" / "cvj" / "numba").rglob("*.nbi")), "numba's cache is not in the user's cache dir"

    # the README's second command, in the same environment
    _sh([py, "-m", "pip", "install", "-q", "-e", ".[test]"], src, env)
    assert not installed.exists(), "the editable install left the old package folder behind"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = _sh(["cvj", "run", "--out", "out", *SMALL], elsewhere, env)
    assert (elsewhere / "out" / "summary").is_dir(), again.stderr
    for name in ("sim", "kernels"):
        gone = _sh([py, "-c", f"import {name}"], elsewhere, env, ok=False)
        assert gone.returncode != 0 and "ModuleNotFoundError" in gone.stderr, f"{name} is importable"
    assert _sh([py, "-m", "cvj", "--version"], elsewhere, env).stdout.startswith("cvj")

    _sh([py, "-m", "pip", "uninstall", "-y", "-q", "cvj"], elsewhere, env)
    left = [p.name for p in site.iterdir() if p.name.split("-")[0].split(".")[0].lower() in ("cvj", "sim", "kernels")]
    left += [p.name for p in site.iterdir() if p.name.startswith("__editable__") and "cvj" in p.name]
    assert not left, f"pip uninstall left {left}"
