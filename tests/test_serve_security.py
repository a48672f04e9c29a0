"""``relay serve`` under a hostile client, through real HTTP to the real command: a forged ``X-Forwarded-For`` is
not believed unless the operator names the proxy (``--trusted-proxy``), and nothing in a request can forge or
garble a console line."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relay.web import throttle
from test_serve_output import Running, read_until, relay

ADMIN = "serve-security-admin-token-Qx7mB2vK9pLs"


def free_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path, env: dict[str, str]) -> Iterator[object]:
    """Starts ``relay serve`` with the given extra arguments; yields (Running, base URL)."""
    env_file = tmp_path / ".env.local"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in {**env, "ADMIN_TOKEN": ADMIN}.items()))
    started: list[Running] = []

    def start(*extra: str) -> tuple[Running, str]:
        port = free_port()
        running = Running(relay("serve", "--port", str(port), "--env-file", str(env_file), "--db",
                                str(tmp_path / f"r{port}.db"), "--logs", str(tmp_path / "logs"), *extra))
        started.append(running)
        read_until(running, "shops:")
        return running, f"http://127.0.0.1:{port}"

    yield start
    for running in started:
        running.__exit__()


def guess(base: str, n: int, forwarded: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer wrong-guess-{n:04d}"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return httpx.get(f"{base}/status", headers=headers)


def test_a_forged_forwarded_for_gives_no_fresh_address_per_guess(serve):
    _, base = serve()
    answers = [guess(base, n, f"203.0.113.{n}").status_code for n in range(throttle.MAX_FAILURES + 1)]

    assert answers == [401] * throttle.MAX_FAILURES + [429]      # one client: the connection's own address


def test_a_named_proxy_is_believed(serve):
    _, base = serve("--trusted-proxy", "127.0.0.1")
    answers = [guess(base, n, f"203.0.113.{n}").status_code for n in range(throttle.MAX_FAILURES + 1)]
    same = [guess(base, n, "198.51.100.7").status_code for n in range(throttle.MAX_FAILURES + 1)]

    assert answers == [401] * (throttle.MAX_FAILURES + 1)         # each forwarded address counted on its own
    assert same == [401] * throttle.MAX_FAILURES + [429]


def test_a_bad_trusted_proxy_is_one_line_with_the_fix(tmp_path):
    proc = relay("serve", "--port", str(free_port()), "--db", str(tmp_path / "r.db"), "--trusted-proxy", "*")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--trusted-proxy takes the IP address of the proxy in front of relay serve" in err


def test_control_characters_from_a_request_are_escaped_on_the_console(serve):
    running, base = serve()
    forged = "%0a12:00:00 POST / shop=vik 200 accepted 1 ms%1b[2J%1b]0;owned%07"
    httpx.get(f"{base}/{forged}")
    httpx.post(f"{base}/?shop=vik%0d%0a12:00:01%20POST%20/%20shop=vik%20200%20accepted%1b[31m", content=b"{}")
    httpx.get(f"{base}/health%E2%80%AEtxt.exe")                       # a right-to-left override

    first = read_until(running, "GET /")[-1]
    second = read_until(running, "POST /")[-1]
    third = read_until(running, "GET /health")[-1]

    assert first.split(" ", 1)[1].startswith("GET /\\x0a12:00:00 POST / shop=vik 200 accepted 1 ms\\x1b[2J\\x1b]0;owned"
                                             "\\x07 404 ")
    assert " POST / shop=vik\\x0d\\x0a12:00:01 POST / shop=vik 200 accept 404 " in second   # the name cut at 40
    assert "GET /health\\u202etxt.exe 404" in third
    for line in (first, second, third):
        assert line.isprintable()
