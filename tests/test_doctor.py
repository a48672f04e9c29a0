"""``relay doctor`` against the fakes: each misconfiguration is reported on its own line with its fix, and a
correct setup passes. The "Worker" is ``relay serve`` on loopback; the test servers' addresses come from
the process environment, as they would never be in an env file about to be deployed."""

from __future__ import annotations

import os
import shlex
import socket
import time
from typing import Any

import pytest

from conftest import KEY, PIXEL, SECRET, SHOP_ID, TOKEN
from relay_tools import cli, doctor_advice
from relay_tools.fakes import Reply
from relay_tools.server import LocalRelay, ServerThread

ADMIN = "doctor-admin-token-0123456789abcdef0123"


def shop_vars(**changes: str) -> dict[str, str]:
    values = {"VIK_LIGHTSPEED_API_KEY": KEY, "VIK_LIGHTSPEED_API_SECRET": SECRET, "VIK_LIGHTSPEED_SHOP_ID": SHOP_ID,
              "VIK_META_ACCESS_TOKEN": TOKEN, "VIK_META_PIXEL_ID": PIXEL,
              "VIK_SHOP_URL": "https://www.vikginchoice.example", "ADMIN_TOKEN": ADMIN}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


@pytest.fixture
def worker(meta, lightspeed, tmp_path, monkeypatch) -> Any:
    monkeypatch.setenv("META_GRAPH_URL", meta.url)
    monkeypatch.setenv("LIGHTSPEED_API_URL", lightspeed.url)
    meta.valid_tokens = {TOKEN}
    env = {**shop_vars(), "META_GRAPH_URL": meta.url, "LIGHTSPEED_API_URL": lightspeed.url}
    server = ServerThread(LocalRelay(env, tmp_path / "worker.db", None, sweep_interval=None)).start()
    for hook_id, action in enumerate(("paid", "created", "updated"), 4101):
        lightspeed.webhooks[hook_id] = {"id": hook_id, "itemGroup": "orders", "itemAction": action,
                                        "address": f"{server.url}/?shop=vik", "isActive": True, "format": "json"}
    yield server
    server.stop()


def doctor(tmp_path, worker, capsys, values: dict[str, str] | None = None, *extra: str) -> tuple[int, list[str]]:
    path = tmp_path / ".env.deploy"
    path.write_text("".join(f"{k}={v}\n" for k, v in (shop_vars() if values is None else values).items()))
    code = cli.main(["doctor", "--env-file", str(path), "--url", worker.url, *extra])
    return code, capsys.readouterr().out.splitlines()


def failures(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


def only_failure(lines: list[str], name: str) -> str:
    (line,) = failures(lines)
    assert line.startswith(f"FAIL  {name}: "), line
    assert "; fix: " in line
    return line


def test_a_correct_setup_passes_every_check(tmp_path, worker, capsys, meta):
    code, lines = doctor(tmp_path, worker, capsys)
    assert code == 0, "\n".join(lines)
    names = [line[6:].split(":")[0] for line in lines[:-1]]
    assert names == ["env file", "META_GRAPH_URL", "LIGHTSPEED_API_URL", "ADMIN_TOKEN", "vik", "vik", "vik", "vik",
                     "vik", "vik", "vik", "Worker", "Worker ADMIN_TOKEN"]
    assert lines[-1] == "doctor: 13 checks, all passed"
    assert any(f"the token reads pixel {PIXEL}" in line for line in lines)
    assert not meta.event_posts                 # without a test event code nothing is posted


def test_an_env_file_that_does_not_parse(tmp_path, worker, capsys):
    path = tmp_path / "broken.env"
    path.write_text("VIK_META_PIXEL_ID\n")
    assert cli.main(["doctor", "--env-file", str(path)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("FAIL  env file: ") and "broken.env:1 is not KEY=value" in line


def test_a_half_configured_shop(tmp_path, worker, capsys):
    code, lines = doctor(tmp_path, worker, capsys, shop_vars(VIK_META_PIXEL_ID=None))
    assert code == 1
    assert "VIK_META_PIXEL_ID is not set" in only_failure(lines, "vik: variables")


def test_a_shop_id_that_is_not_the_one_lightspeed_has(tmp_path, worker, capsys):
    code, lines = doctor(tmp_path, worker, capsys, shop_vars(VIK_LIGHTSPEED_SHOP_ID="318843"))
    line = only_failure(lines, "vik: Lightspeed shop id")
    assert code == 1 and "318842 ≠ VIK_LIGHTSPEED_SHOP_ID (318843)" in line and "VIK_LIGHTSPEED_SHOP_ID=318842" in line


def test_a_lightspeed_key_that_is_refused(tmp_path, worker, capsys):
    code, lines = doctor(tmp_path, worker, capsys, shop_vars(VIK_LIGHTSPEED_API_SECRET="wrong-secret"))
    assert code == 1
    (key,) = failures(lines)
    assert key.startswith("FAIL  vik: Lightspeed key: ") and "401" in key
    for name in ("Lightspeed shop id", "Lightspeed orders", "webhooks"):
        assert f"--    vik: {name}: not run: the key check failed" in lines


def test_a_key_that_may_not_read_orders(tmp_path, worker, capsys, lightspeed):
    lightspeed.orders_script[1] = [Reply(403, {"error": {"code": 403, "message": "Forbidden"}})]
    code, lines = doctor(tmp_path, worker, capsys)
    assert code == 1 and "'Orders (read)'" in only_failure(lines, "vik: Lightspeed orders")


@pytest.mark.parametrize("change, says", [
    ({"action": "updated", "address": "https://old-relay.example.workers.dev/?shop=vik"},
     "orders/updated (goes to https://old-relay.example.workers.dev/?shop=vik)"),
    ({"action": "paid", "isActive": False}, "orders/paid"),
    ({"action": "created", "address": "{worker}/"}, "orders/created"),
])
def test_webhooks_that_do_not_reach_this_worker(tmp_path, worker, capsys, lightspeed, change, says):
    hook = next(h for h in lightspeed.webhooks.values() if h["itemAction"] == change["action"])
    hook.update({k: v.format(worker=worker.url) if isinstance(v, str) else v for k, v in change.items()
                 if k != "action"})
    code, lines = doctor(tmp_path, worker, capsys)
    line = only_failure(lines, "vik: webhooks")
    assert code == 1 and says in line
    # the worker here is loopback, which register refuses: no register command, but what to do first
    assert "relay webhooks register" not in line and worker.url in line and "deploy" in line


def test_a_meta_token_that_is_refused(tmp_path, worker, capsys, meta):
    meta.valid_tokens = {"EAAsome-other-token"}
    code, lines = doctor(tmp_path, worker, capsys)
    line = only_failure(lines, "vik: Meta token")
    assert code == 1 and "ads_management" in line and "VIK_META_ACCESS_TOKEN" in line
    assert "--    vik: Meta pixel: not run: the token check failed" in lines


def test_a_meta_token_that_expires_soon(tmp_path, worker, capsys, meta):
    meta.token_info[TOKEN] = {"expires_at": int(time.time()) + 5 * 86400}
    code, lines = doctor(tmp_path, worker, capsys)
    assert code == 1 and "valid, expires " in only_failure(lines, "vik: Meta token")


def test_a_token_without_access_to_the_pixel(tmp_path, worker, capsys, meta):
    meta.pixels = {"111111111111111"}
    code, lines = doctor(tmp_path, worker, capsys)
    line = only_failure(lines, "vik: Meta pixel")
    assert code == 1 and "missing permissions" in line and "META_TEST_EVENT_CODE" in line


def test_a_test_event_code_makes_a_test_events_post(tmp_path, worker, capsys, meta):
    code, lines = doctor(tmp_path, worker, capsys, shop_vars(VIK_META_TEST_EVENT_CODE="TEST12345"))
    assert code == 0, "\n".join(lines)
    (post,) = meta.event_posts
    body = post.json()
    assert body["test_event_code"] == "TEST12345" and body["data"][0]["event_name"] == "Purchase"
    assert any("Test Events post to" in line and "received" in line for line in lines)

    meta.pixels = {"111111111111111"}
    code, lines = doctor(tmp_path, worker, capsys, shop_vars(VIK_META_TEST_EVENT_CODE="TEST12345"))
    assert code == 1 and "Test Events post" in only_failure(lines, "vik: Meta pixel")


@pytest.mark.parametrize("name", ["META_GRAPH_URL", "LIGHTSPEED_API_URL"])
def test_a_test_override_left_in_the_env_file(tmp_path, worker, capsys, name):
    fake = os.environ[name]             # the fakes work, so only the leftover itself is wrong
    code, lines = doctor(tmp_path, worker, capsys, shop_vars(**{name: fake}))
    line = only_failure(lines, name)
    assert code == 1 and f"set in {tmp_path / '.env.deploy'} ({fake})" in line and f"remove {name} from" in line


@pytest.mark.parametrize("token, says", [
    ("", "not set"),
    ("short-but-sixteen+", "it is 18 characters; it needs at least 32"),
    ("0123456789abcdefghijklmnopqrstuvwxyz", "a repeated or sequential pattern"),   # 36 characters, still guessable
])
def test_an_admin_token_missing_short_or_guessable(tmp_path, worker, capsys, monkeypatch, token, says):
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    code, lines = doctor(tmp_path, worker, capsys, shop_vars(ADMIN_TOKEN=token))
    assert code == 1
    line = next(line for line in failures(lines) if line.startswith("FAIL  ADMIN_TOKEN"))
    assert says in line and 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"' in line


def test_a_worker_deployed_with_another_admin_token(tmp_path, worker, capsys):
    code, lines = doctor(tmp_path, worker, capsys, shop_vars(ADMIN_TOKEN="another-strong-admin-token-q8w2e4r6t1y3"))
    assert code == 1 and "/status answered 401" in only_failure(lines, "Worker ADMIN_TOKEN")


# --- the network, and commands that run as printed ----------------------------------------------------------


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_lightspeed_not_answering_is_named_as_the_network_and_the_rest_shows_as_not_run(tmp_path, worker, capsys,
                                                                                        monkeypatch):
    gone = closed_port()
    monkeypatch.setenv("LIGHTSPEED_API_URL", gone)
    code, lines = doctor(tmp_path, worker, capsys)
    assert code == 1
    (key,) = [line for line in lines if "vik: Lightspeed key" in line]
    assert key.startswith("FAIL  vik: Lightspeed key: network: 127.0.0.1 did not answer")
    assert f"nothing answers at {gone} on this machine" in key and "API_KEY" not in key
    for name in ("Lightspeed shop id", "Lightspeed orders", "webhooks"):
        assert f"--    vik: {name}: not run: Lightspeed did not answer" in lines


def test_meta_not_answering_is_named_as_the_network_not_the_token(tmp_path, worker, capsys, monkeypatch):
    monkeypatch.setenv("META_GRAPH_URL", closed_port())
    code, lines = doctor(tmp_path, worker, capsys)
    (token,) = [line for line in lines if "vik: Meta token" in line]
    assert code == 1 and token.startswith("FAIL  vik: Meta token: network: 127.0.0.1 did not answer")
    assert "system-user token" not in token and "in an hour" not in "\n".join(lines)
    assert "--    vik: Meta pixel: not run: Meta did not answer" in lines


def test_meta_failing_to_check_the_token_is_not_blamed_on_the_token(tmp_path, worker, capsys, meta):
    meta.debug_script.append(Reply(500, {"error": {"message": "An unknown error occurred", "code": 1}}))
    code, lines = doctor(tmp_path, worker, capsys)
    (token,) = [line for line in lines if "vik: Meta token" in line]
    assert code == 1 and "Meta could not check it just now" in token and "run relay doctor again" in token
    assert "system-user token" not in token and "in an hour" not in token


def test_an_unreachable_internet_host_says_to_check_the_connection():
    watched = doctor_advice.Watched(None)
    watched.failed, watched.why = "https://api.webshopapp.com/nl/shop.json", "ConnectError"
    line = watched.check("vik: Lightspeed key").line()
    assert line.startswith("FAIL  vik: Lightspeed key: network: api.webshopapp.com did not answer (ConnectError)")
    assert "check its internet connection" in line and "run relay doctor again" in line


def test_the_register_command_it_suggests_runs_as_printed(tmp_path, lightspeed, monkeypatch, capsys):
    monkeypatch.setenv("LIGHTSPEED_API_URL", lightspeed.url)
    env_file = tmp_path / "shops.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in shop_vars().items()))
    fix = doctor_advice.register_fix("vik", "https://relay.example.workers.dev", f" --env-file {env_file}")
    argv = shlex.split(fix)
    assert argv[:3] == ["uv", "run", "relay"]
    assert cli.main(argv[3:]) == 0, capsys.readouterr()
    assert sorted(h["itemAction"] for h in lightspeed.webhooks.values()) == ["created", "paid", "updated"]
    assert {h["address"] for h in lightspeed.webhooks.values()} == {"https://relay.example.workers.dev/?shop=vik"}
    for url in (None, "http://127.0.0.1:8787", "http://relay.example.workers.dev"):
        fix = doctor_advice.register_fix("vik", url)
        assert not fix.startswith("uv run") and "--url http" not in fix and "deploy" in fix
