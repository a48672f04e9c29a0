"""``relay demo`` works with nothing but the project: a signed webhook in, one Meta request out."""

from __future__ import annotations

import subprocess
import sys


def test_relay_demo_sends_one_purchase_and_shows_the_ledger(tmp_path):
    result = subprocess.run([sys.executable, "-m", "relay_tools.cli", "demo", "--db", str(tmp_path / "demo.db")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"status": "accepted"' in out and '"status": "duplicate"' in out
    assert "Meta received 1 request(s)" in out
    assert '"event_id": "purchase_ORD04217"' in out
    assert '"state": "sent"' in out
    assert "demo-meta-access-token" not in out, "the demo must not print the token"
    assert "marielle.vandenbroek@example.nl" not in out
