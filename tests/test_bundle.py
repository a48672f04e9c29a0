"""The Worker's upload, built exactly as a deploy builds it (``./deploy.sh --bundle``), holds what the Worker runs.

Every module of ours in it is reachable from ``entry.py`` (the CPython tools live in tools/ and are never
uploaded), and the vendored runtime SDK is the only third-party package in it.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

import import_graph as imports
import node_packages
from test_layers import PUBLIC_ALIASES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node_packages.install()                  # a fresh clone: npm ci, once
    out = tmp_path_factory.mktemp("bundle") / "worker"
    proc = subprocess.run([str(ROOT / "deploy.sh"), "--bundle", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_every_uploaded_module_of_ours_is_reachable_from_entry(bundle: Path) -> None:
    ours = {name: path for name, path in imports.modules_under(bundle).items()
            if "python_modules" not in path.relative_to(bundle).parts}
    assert "entry" in ours and "relay.jobs.delivery" in ours
    unreached = set(ours) - imports.reachable(imports.graph(ours), "entry") - PUBLIC_ALIASES
    assert unreached == set()
    assert not any(name.startswith("relay_tools") for name in ours), "the CPython tools must not be uploaded"


def test_the_only_vendored_package_is_the_runtime_sdk(bundle: Path) -> None:
    vendored = {p.name for p in (bundle / "python_modules").iterdir()}
    packages = {name for name in vendored if (bundle / "python_modules" / name).is_dir() and "." not in name}
    assert packages == {"workers"}, vendored
    assert {name for name in vendored if name.endswith(".dist-info")} == {"workers_runtime_sdk-1.9.5.dist-info"}


def test_the_worker_project_declares_no_dependency_for_pywrangler_to_vendor() -> None:
    """pywrangler vendors ``[project] dependencies`` into the upload; the CPython tools' packages live in tools/."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["dependencies"] == []
