"""What the repository tracks: sources, not the machine they were built on.

A worktree links ``node_modules`` to a shared install; a symlink is not matched by a ``dir/`` ignore rule, so
it was once committed, and a checkout of it replaced the real ``node_modules`` with a link to itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILT = ("node_modules", "python_modules", ".venv", ".relay", ".wrangler", "dist")


def test_no_symlink_and_no_installed_or_built_folder_is_tracked() -> None:
    listing = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    tracked = [line.split("\t", 1) for line in listing.splitlines()]
    assert [path for mode, path in tracked if mode.startswith("120000")] == []
    assert [path for _, path in tracked if path.split("/")[0] in BUILT] == []
