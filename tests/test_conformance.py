"""The relay inside Pyodide 0.28.2, the Python of the Workers runtime, behaves exactly as in CPython.

Runs ``conformance/check.mjs`` once (about 10 s; what each check proves is written at its top) and
turns each of its checks into a test. Nothing is skipped. A checkout without ``node_modules`` (a fresh
clone) gets it here: ``npm ci`` from package-lock.json, once, under a lock, so that two test sessions
on one checkout do not install over each other. Without Node or npm the tests fail and say what to install.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import node_packages

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ["runtime", "core-identical", "entry-imports", "send-path", "worker-fetch", "worker-scheduled",
          "free-log-spool", "orders-api"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    node = node_packages.node("the Pyodide conformance run")
    path = tmp_path_factory.mktemp("conformance") / "report.json"
    proc = subprocess.run(
        [node, "conformance/check.mjs", "--python", sys.executable, "--json", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    if not path.is_file():
        pytest.fail(f"conformance/check.mjs ended (exit {proc.returncode}) without a report:\n"
                    f"{proc.stdout}{proc.stderr}")
    data = json.loads(path.read_text())
    data["returncode"] = proc.returncode
    data["output"] = proc.stdout + proc.stderr
    return data


def test_every_check_ran_and_the_exit_code_agrees(report: dict[str, Any]) -> None:
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert report["returncode"] == (0 if all(c["ok"] for c in report["checks"]) else 1), report["output"]


@pytest.mark.parametrize("name", CHECKS)
def test_pyodide_conformance(report: dict[str, Any], name: str) -> None:
    check = next(c for c in report["checks"] if c["name"] == name)
    assert check["ok"], f"{name}: {check['detail']}"
