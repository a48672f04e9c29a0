"""The local runner's commands as a user runs them: ``relay serve`` and ``relay backfill`` on one database."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx

from conftest import order_body, signed_headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_takes_a_webhook_and_backfill_shares_its_database(tmp_path, env, meta):
    env_file = tmp_path / ".env.local"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in env.items()) + "\n# comment line\n")
    db = tmp_path / "relay.db"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "relay_tools.cli", "serve", "--port", str(port), "--env-file", str(env_file),
         "--db", str(db), "--logs", str(tmp_path / "logs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        # an order created now, so that it is inside Meta's window on the real clock
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        body = order_body(createdAt=now, updatedAt=now)
        answer = httpx.post(f"http://127.0.0.1:{port}/?shop=vik", content=body, headers=signed_headers(body))
        assert answer.status_code == 200 and answer.json()["status"] == "accepted"
        for _ in range(100):
            if meta.event_posts:
                break
            time.sleep(0.05)
        assert len(meta.event_posts) == 1
    finally:
        server.terminate()
        server.communicate(timeout=10)

    result = subprocess.run([sys.executable, "-m", "relay_tools.cli", "backfill", "--env-file", str(env_file),
                             "--db", str(db), "--logs", str(tmp_path / "logs")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "vik" in result.stdout
    assert len(meta.event_posts) == 1, "backfill must not send what serve already sent"


def test_missing_env_file_says_what_to_do(tmp_path):
    result = subprocess.run([sys.executable, "-m", "relay_tools.cli", "backfill", "--env-file",
                             str(tmp_path / "nope.env"), "--db", str(tmp_path / "x.db")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "copy .env.example" in result.stderr


def test_the_serve_timer_checks_tokens_daily_and_sweeps(relay, meta, clock):
    from conftest import PAID_HEADERS, PAID_RAW
    from relay_tools.fakes import graph_error

    meta.script.append(graph_error(500, 2, "Service temporarily unavailable", transient=True))
    httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])
    relay.drain()
    clock.advance(3600)
    relay.call(relay.relay.timer_tick())
    assert any(r.path.endswith("/debug_token") for r in meta.requests), "the daily token check ran"
    assert len(meta.event_posts) == 2 and meta.event_posts[-1].json()["data"][0]["event_id"] == "purchase_ORD04217"
