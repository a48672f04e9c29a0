"""``node_modules`` for the tests that run Node (the Pyodide conformance run, the Worker bundle): a fresh clone
gets it from ``npm ci`` (package-lock.json) the first time one of them runs, so ``uv run pytest`` is the only
step. The install runs once per checkout, under a file lock, so two test sessions do not install over each other.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the tests load from node_modules, and the file npm writes last, when an install is complete.
NEEDED = ("pyodide/pyodide.mjs", "miniflare/dist/src/index.js", ".bin/wrangler", ".package-lock.json")
NPM_CI_TIMEOUT = 900


def ready() -> bool:
    return all((ROOT / "node_modules" / name).exists() for name in NEEDED)


def install() -> None:
    """``npm ci`` into this checkout unless its node_modules is complete; fails the test, saying why, if it cannot."""
    if ready():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("node_modules is missing and npm is not on PATH: install Node 20 or newer (it brings npm)")
    lock = Path(tempfile.gettempdir()) / f"relay-npm-ci-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:16]}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)         # a second session waits here, then finds the install done
        if ready():
            return
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, capture_output=True, text=True,
                              timeout=NPM_CI_TIMEOUT)
        if proc.returncode != 0 or not ready():
            pytest.fail(f"`npm ci` in {ROOT} failed (exit {proc.returncode}); it needs the npm registry once:\n"
                        f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}")


def node(needed_by: str) -> str:
    """The ``node`` on PATH, with this checkout's node_modules installed; fails the test, naming what needs it."""
    found = shutil.which("node")
    if found is None:
        pytest.fail(f"node is not on PATH: {needed_by} needs Node 20 or newer")
    install()
    return found
