"""``relay serve`` says what it does: a line per request, one for each hold, failure and recovery, no customer
data; and its start-up mistakes (a busy port, a missing env file, an unknown --kind) are one line with the fix."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from conftest import PAID_RAW, TOKEN, order_body, signed_headers
from relay_tools import logs_cli
from relay_tools.fakes import Reply, graph_error
from relay_tools.server import LocalRelay, ServerThread

ROOT = Path(__file__).resolve().parents[1]
ORDER = json.loads(PAID_RAW)["order"]
PII = [v for k in ("email", "phone", "mobile", "lastname", "remoteIp", "addressBillingZipcode")
       if isinstance(v := ORDER.get(k), str) and len(v) > 3]


@pytest.fixture
def said(env, tmp_path, clock):
    lines: list[str] = []
    server = ServerThread(LocalRelay(env, tmp_path / "relay.db", None, clock=clock, rand=lambda: 0.5,
                                     sweep_interval=None, say=lines.append)).start()
    yield server, lines
    server.stop()


def post(server: ServerThread, body: bytes) -> None:
    assert httpx.post(f"{server.url}/?shop=vik", content=body, headers=signed_headers(body)).status_code == 200
    server.drain()


def sweep(server: ServerThread) -> None:
    server.call(server.relay.sweep())


def new(lines: list[str], start: int) -> list[str]:
    return [line.split(" ", 1)[1] for line in lines[start:]]      # without the clock


def test_each_request_hold_failure_and_recovery_is_one_line(said, meta, clock):
    server, lines = said
    post(server, order_body(id=700_001, number="S1"))
    (request,) = new(lines, 0)
    assert request.startswith("POST / shop=vik 200 accepted ") and request.endswith(" ms")

    meta.script.append(Reply(503, {"error": {"message": "Service unavailable", "code": 2, "is_transient": True}}))
    mark = len(lines)
    post(server, order_body(id=700_002, number="S2"))
    request, retry = new(lines, mark)
    assert request.startswith("POST / shop=vik 200 accepted")
    assert retry.startswith("RETRY vik order S2 (id 700002) (attempt 1) (503/2): ")
    clock.advance(3600)
    mark = len(lines)
    sweep(server)
    assert new(lines, mark) == ["RECOVERED vik order S2 (id 700002): sent after 2 attempts"]

    meta.reject_event_ids.add("purchase_S3")
    mark = len(lines)
    post(server, order_body(id=700_003, number="S3"))
    (failed,) = [line for line in new(lines, mark) if not line.startswith("POST")]
    assert failed.startswith("FAILED vik order S3 (id 700003): Meta refused it (400/100/2804050): ")
    assert "relay orders --shop vik" in failed

    meta.valid_tokens = {"EAAthe-replacement-token"}
    mark = len(lines)
    post(server, order_body(id=700_004, number="S4"))
    (held,) = [line for line in new(lines, mark) if not line.startswith("POST")]
    assert held.startswith("HELD vik: ") and "replace VIK_META_ACCESS_TOKEN" in held
    server.relay.env["VIK_META_ACCESS_TOKEN"] = "EAAthe-replacement-token"
    mark = len(lines)
    sweep(server)
    assert new(lines, mark) == ["RECOVERED vik: hold lifted, Meta token replaced; resending",
                                "RECOVERED vik order S4 (id 700004): sent after 2 attempts"]

    mark = len(lines)
    assert httpx.post(f"{server.url}/?shop=nope", content=b"{}").status_code == 404
    assert httpx.get(f"{server.url}/orders?shop=vik&number=S1").status_code == 401
    unknown, closed = new(lines, mark)
    assert unknown.startswith("POST / shop=nope 404 error: no shop 'nope' is configured")
    assert closed.startswith("GET /orders shop=vik 401 error: ")
    text = "\n".join(lines)
    assert not [v for v in PII if v in text] and TOKEN not in text and "EAAthe" not in text


def test_the_serve_lines_carry_no_query_beyond_the_shop(said):
    server, lines = said
    httpx.get(f"{server.url}/orders?shop=vik&number=ORD04217&cursor=1.2.Purchase&token=secret-in-url")
    (line,) = new(lines, 0)
    assert line.startswith("GET /orders shop=vik 401") and "ORD04217" not in line and "secret-in-url" not in line


def test_a_browsers_favicon_request_is_204_and_not_a_console_line(said):
    server, lines = said
    answer = httpx.get(f"{server.url}/favicon.ico")
    assert answer.status_code == 204 and answer.content == b""
    httpx.get(f"{server.url}/health")
    assert [line.split(" ", 2)[1:] for line in lines] == [["GET", "/health 200 ok " + lines[-1].rsplit(" ", 2)[1]
                                                                   + " ms"]]


# --- the real command ---------------------------------------------------------------------------------------


def relay(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VIK_", "ADMIN_TOKEN"))}
    return subprocess.Popen([sys.executable, "-m", "relay_tools.cli", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**base, **(env or {})})


def one_line_error(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    # Beside the error, only the line that says which env file was read (relay_tools.envfile).
    lines = [line for line in err.strip().splitlines() if not line.startswith(("relay: read ", "relay: no .env.local"))]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_a_busy_port_is_one_line_with_the_fix(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = one_line_error(relay("serve", "--port", str(port), "--db", str(tmp_path / "r.db")))
    assert err == (f"relay: port {port} on 127.0.0.1 is in use (another relay serve, or wrangler dev?): stop it, "
                   f"or pass --port {port + 1}")


def test_a_missing_env_file_and_an_unknown_kind_are_one_line_each(tmp_path):
    err = one_line_error(relay("serve", "--env-file", str(tmp_path / ".env.local"), "--db", str(tmp_path / "r.db")))
    assert err == f"relay: env file {tmp_path / '.env.local'} not found; copy .env.example to " \
                  f"{tmp_path / '.env.local'} and fill it in"
    err = one_line_error(relay("logs", "--shop", "vik", "--kind", "attempts"))
    assert err.startswith("relay: --kind 'attempts' is not a kind of log line; use one of decision, attempt")


class Running:
    """A started ``relay serve`` whose stdout lines arrive on a queue; stopped (it is ours) and closed on exit."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout or ():
            self.lines.put(line.rstrip("\n"))

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def read_until(proc: Running, wanted: str) -> list[str]:
    seen = []
    while True:
        line = proc.lines.get(timeout=30)
        seen.append(line)
        if wanted in line:
            return seen


def test_relay_serve_prints_what_it_serves_and_each_request(tmp_path, env):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env_file = tmp_path / ".env.local"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    with Running(relay("serve", "--port", str(port), "--env-file", str(env_file), "--db", str(tmp_path / "r.db"),
                       "--logs", str(tmp_path / "logs"))) as proc:
        start = read_until(proc, "ADMIN_TOKEN")
        assert start[0].startswith(f"relay serving on http://127.0.0.1:{port}")
        assert start[1:] == ["shops: vik; webhooks go to /?shop=<name>",
                             "ADMIN_TOKEN is not set: /status, /dashboard and /orders stay closed (401)"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")        # the command runs on the real clock
        body = order_body(id=700_010, number="S10", createdAt=now, updatedAt=now)
        assert httpx.post(f"http://127.0.0.1:{port}/?shop=vik", content=body,
                          headers=signed_headers(body)).status_code == 200
        (line,) = read_until(proc, "POST /")
        assert " POST / shop=vik 200 accepted " in line


def test_relay_serve_without_shops_says_to_pass_an_env_file(tmp_path):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with Running(relay("serve", "--port", str(port), "--db", str(tmp_path / "r.db"))) as proc:
        seen = read_until(proc, "no shop")
    assert seen[-1] == ("no shop is configured, so every webhook is a 404: copy .env.example to .env.local and "
                        "fill it in, or pass --env-file PATH")


def test_an_address_or_token_in_a_graph_error_is_neither_said_nor_stored(said, meta):
    server, lines = said
    meta.script.append(graph_error(400, 100, "Invalid parameter for marielle.vandenbroek@example.nl EAAabcdefghijkl"))
    post(server, order_body(id=700_020, number="S20"))
    text = "\n".join(lines)
    assert "FAILED vik order S20 (id 700020)" in text and "marielle" not in text and "EAAabcdefghijkl" not in text
    stored = server.call(server.relay.db.run("SELECT last_error FROM outbox WHERE order_id = 700020")).rows
    assert stored == [{"last_error": "Invalid parameter for [email] [token]"}]     # the ledger keeps neither


def test_relay_logs_accepts_every_kind_of_line_the_relay_writes():
    written = set()
    for path in (ROOT / "src").rglob("*.py"):
        written |= set(re.findall(r'kind="([a-z_]+)"', path.read_text()))
    assert written and written <= set(logs_cli.KINDS), written - set(logs_cli.KINDS)
