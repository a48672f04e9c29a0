"""``bench/bench_worker_cpu.mjs`` keeps running: its ``--quick`` mode (a couple of invocations per kind) prints a row
for every kind of Worker invocation, with the subrequests each one made. Not timed: the CPU figures are printed
by the benchmark, never asserted (about 15 s: Pyodide, miniflare and the fakes start once).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import node_packages

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["webhook", "bridge", "cron-idle", "cron-busy", "dashboard", "status", "orders"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    node = node_packages.node("the Worker CPU benchmark")
    path = tmp_path_factory.mktemp("bench") / "cpu.json"
    proc = subprocess.run([node, "bench/bench_worker_cpu.mjs", "--quick", "--python", sys.executable, "--json",
                           str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and path.is_file(), f"exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    data: dict[str, Any] = json.loads(path.read_text())
    data["output"] = proc.stdout
    return data


def test_every_kind_has_a_row_in_the_printed_table(quick: dict[str, Any]) -> None:
    assert [r["kind"] for r in quick["rows"]] == KINDS
    lines = quick["output"].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| invocation |"))
    table = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    assert len(table) == 2 + len(KINDS), quick["output"]     # the header, its rule and a row per kind
    for row in quick["rows"]:
        assert f"| {row['label']} | {row['n']} |" in quick["output"]
        assert row["n"] >= 1 and row["median"] > 0 and row["first"] > 0


def test_the_issues_targets_are_printed_beside_the_figures_they_read(quick: dict[str, Any]) -> None:
    """Printed, never asserted on time: a paid run names its one ms target, the first pass over a 250-order page."""
    output = quick["output"]
    assert "targets (issue 19; paid plan), ms of thread CPU:" in output
    first = quick["first_pass"]
    line = next(line for line in output.splitlines() if line.startswith("| cron backlog, first pass: "))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[0] == f"cron backlog, first pass: {first['listed']} orders listed (the target is for a 250-order page)"
    assert cells[1] == "≤ 1000" and abs(float(cells[2]) - first["thread"]) <= 0.05
    assert cells[4] == ("met" if float(cells[2]) <= 1000 else "MISSED")


def test_each_kind_did_its_work_through_the_forwarded_bindings(quick: dict[str, Any]) -> None:
    rows = {r["kind"]: r["subrequests"] for r in quick["rows"]}
    assert rows["webhook"]["fetch"] >= 1 and rows["webhook"]["d1"] >= 1 and rows["webhook"]["r2"] >= 1
    assert rows["cron-busy"]["fetch"] >= 1           # listing pages and Meta posts went through the fetch shim
    assert all(rows[k]["d1"] >= 1 for k in ("bridge", "cron-idle", "dashboard", "status", "orders"))
    assert quick["first_pass"]["calls"]["d1"] >= 1
    busy = next(r for r in quick["rows"] if r["kind"] == "cron-busy")
    assert ", 0 sent twice" in busy["note"]


def test_the_machine_and_versions_are_printed(quick: dict[str, Any]) -> None:
    machine = quick["machine"]
    assert machine["pyodide"] == "0.28.2" and machine["node"].startswith("v")
    assert machine["sdk"].startswith("workers-runtime-sdk ")
    for text in ("machine:", "load average", "Pyodide 0.28.2", "shim cost in this process per forwarded call"):
        assert text in quick["output"]


def test_the_floor_rows_make_only_the_call_each_names(tmp_path: Path) -> None:
    """``--kinds floor``: the runtime's and the adapter's own cost, against which every other row is read. Each row
    must make exactly the call it names (none, one D1 statement, one D1 batch, one fetch) and nothing of the relay's."""
    node = node_packages.node("the Worker CPU benchmark")
    path = tmp_path / "floor.json"
    command = [node, "bench/bench_worker_cpu.mjs", "--quick", "--kinds", "floor", "--python", sys.executable, "--json",
               str(path)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and path.is_file(), f"exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    rows = {r["label"]: r["subrequests"] for r in json.loads(path.read_text())["rows"]}
    calls = {label: (s["fetch"], s["d1"], s["r2"]) for label, s in rows.items()}
    assert calls == {
        "floor: fetch answered 204 at once": (0, 0, 0),
        "floor: scheduled returning at once": (0, 0, 0),
        "floor: scheduled with one D1 statement (entry.D1.run)": (0, 1, 0),
        "floor: scheduled with one D1 batch of 8 statements": (0, 1, 0),
        "floor: scheduled with one fetch (entry.FetchHttp)": (1, 0, 0),
    }
