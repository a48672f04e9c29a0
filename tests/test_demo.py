"""``relay demo`` works with nothing but the project: a signed webhook in, one Meta request out, said in plain words."""

from __future__ import annotations

import os
import subprocess
import sys


def demo(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "relay_tools.cli", "demo", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TMPDIR": str(scratch)})


def test_relay_demo_ends_with_a_plain_summary_and_leaves_nothing_behind(tmp_path):
    result = demo(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Meta received 1 Purchase for ORD04217, € 140,40, once; the repeat was recognised." in lines
    assert len(lines) < 25 and "{" not in result.stdout and "lease_token" not in result.stdout
    log = lines[lines.index("Delivery log (the R2 stand-in), in time order:") + 1:][:3]
    assert [line.split()[1:4] for line in log] == [["decision", "ORD04217", "due"], ["attempt", "ORD04217", "due"],
                                                   ["decision", "ORD04217", "unchanged"]]
    assert "demo-meta-access-token" not in result.stdout and "marielle" not in result.stdout
    assert list((tmp_path / "tmp").iterdir()) == [], "the demo's temporary folder must be removed"


def test_relay_demo_json_shows_the_requests_and_the_ledger(tmp_path):
    result = demo(tmp_path, "--json", "--db", str(tmp_path / "demo.db"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"status": "accepted"' in out and '"status": "duplicate"' in out
    assert "Meta received 1 request(s)" in out
    assert '"event_id": "purchase_ORD04217"' in out
    assert '"state": "sent"' in out
    assert "demo-meta-access-token" not in out, "the demo must not print the token"
    assert "marielle.vandenbroek@example.nl" not in out
    assert (tmp_path / "demo.db").is_file() and list((tmp_path / "tmp").iterdir()) == []
