"""``relay sandbox`` as a new user runs it: start it, place each kind of test order from another process, run the
commands it prints exactly as printed, and stop it with Ctrl-C, which must leave no folder and no open port."""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

RELAY = [sys.executable, "-m", "relay_tools.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_printed(line: str) -> list[str]:
    """A command the sandbox printed, run as printed (``uv run relay`` is this interpreter's ``relay``)."""
    argv = shlex.split(line.split("  (")[0])
    assert argv[:3] == ["uv", "run", "relay"], line
    return RELAY + argv[3:]


def closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def sandbox(tmp_path):
    port = free_port()
    proc = subprocess.Popen([*RELAY, "sandbox", "--port", str(port), "--sweep-interval", "3600"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner: list[str] = []
    assert proc.stdout is not None
    while not banner or not banner[-1].startswith("Ctrl-C"):
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "the sandbox ended"
        banner.append(line.rstrip("\n"))
    yield proc, banner, port
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=30)


def run(tmp_path: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_the_sandbox_takes_every_kind_of_test_order_and_leaves_nothing_behind(sandbox, tmp_path):
    proc, banner, port = sandbox
    text = "\n".join(banner)
    assert f"dashboard:    http://127.0.0.1:{port}/dashboard" in text
    token = re.search(r"admin token:  (\S+)", text).group(1)
    assert len(token) >= 32 and re.fullmatch(r"[0-9a-f]{64}", token)
    state = json.loads((tmp_path / ".relay" / "sandbox" / "sandbox.json").read_text())
    fakes = [int(state[k].rsplit(":", 1)[1]) for k in ("meta", "lightspeed")]

    order = next(line.strip() for line in banner if "relay sandbox order" in line)
    expected = {"--paid": "Meta (fake) received its Purchase", "--unpaid": "waiting for payment",
                "--cancelled": "cancelled before it was sent", "--refused": "Meta refused it for good: 400 code 100"}
    for number, (flag, says) in enumerate(expected.items(), 10001):
        placed = run(tmp_path, [*as_printed(order)[:-1], flag])
        assert placed.returncode == 0, placed.stdout + placed.stderr
        assert placed.stdout.startswith(f"ORD{number} (id {500000000 + number - 10000}, shop demo): ")
        assert says in placed.stdout
    console = ""
    while "FAILED demo order ORD10004 (id 500000004)" not in console:   # the sandbox's own console line
        console = proc.stdout.readline()
        assert console, "the sandbox ended"
    suggested = run(tmp_path, as_printed(console.split("; see ", 1)[1].strip()))
    assert suggested.returncode == 0 and "ORD10004  500000004  failed" in suggested.stdout, suggested.stderr
    paid_later = run(tmp_path, [*as_printed(order), "--number", "ORD10002"])
    assert paid_later.returncode == 0 and "Meta (fake) received its Purchase" in paid_later.stdout

    listing = run(tmp_path, as_printed(next(line.strip() for line in banner if "relay orders" in line)))
    rows = listing.stdout.splitlines()
    assert listing.returncode == 0 and rows[0].startswith("order ") and "None" not in listing.stdout
    assert [row.split()[:3] for row in rows[1:]] == [["ORD10004", "500000004", "failed"],
                                                     ["ORD10003", "500000003", "skipped"],
                                                     ["ORD10002", "500000002", "sent"],
                                                     ["ORD10001", "500000001", "sent"]]
    logs = run(tmp_path, as_printed(next(line.strip() for line in banner if "relay logs" in line)))
    assert logs.returncode == 0 and "ORD10001" in logs.stdout and "due → sent" in logs.stdout
    status = run(tmp_path, as_printed(next(line.strip() for line in banner if "relay status" in line)))
    assert "demo: ATTENTION" in status.stdout and "last error: ORD10004 (id 500000004)" in status.stdout
    assert "demo2: ok" in status.stdout and "has not been checked yet" in status.stdout
    page = httpx.get(f"http://127.0.0.1:{port}/dashboard", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200 and "demo2" in page.text

    proc.send_signal(signal.SIGINT)                      # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "removed" in err
    assert list(tmp_path.iterdir()) == [], "the sandbox must remove its folder"
    assert closed(port) and all(closed(p) for p in fakes)
    gone = run(tmp_path, as_printed(order))
    assert gone.returncode == 2 and "no sandbox is running in this folder" in gone.stderr


def test_a_second_sandbox_in_the_same_folder_is_refused_and_sigterm_cleans_up_too(sandbox, tmp_path):
    proc, _, _ = sandbox
    second = run(tmp_path, [*RELAY, "sandbox", "--port", str(free_port())])
    assert second.returncode == 2 and "a sandbox is already running in this folder" in second.stderr
    assert (tmp_path / ".relay" / "sandbox" / "sandbox.json").is_file()
    proc.terminate()
    proc.communicate(timeout=60)
    assert proc.returncode == 0 and list(tmp_path.iterdir()) == []
