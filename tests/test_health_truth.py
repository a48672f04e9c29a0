"""``relay health`` and /status tell the truth: a held shop is not "ok", and a Lightspeed key that belongs
to another shop than ``<SHOP>_LIGHTSPEED_SHOP_ID`` (every webhook a 401) is reported with the id to set."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from conftest import KEY, SECRET, TOKEN, order_body, shop_env, signed_headers
from relay_tools.cli import main
from relay_tools.fakes import graph_error

ADMIN = "admin-token-for-health-truth-4e2b"


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN)


def relay_health(tmp_path, log_root, env: dict[str, str], capsys) -> tuple[int, str]:
    env_file = tmp_path / ".env.health"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    code = main(["health", "--env-file", str(env_file), "--db", str(tmp_path / "relay.db"),
                 "--logs", str(log_root / tmp_path.name)])
    return code, capsys.readouterr().out


def test_relay_health_is_not_ok_while_the_shop_is_held(relay, meta, env, clock, tmp_path, log_root, capsys):
    clock.now = time.time()                     # ``relay health`` runs on the real clock; so does this relay now
    placed = datetime.fromtimestamp(clock.now - 300, UTC).isoformat()
    body = order_body(createdAt=placed, updatedAt=placed)
    # Meta refuses the event for a permission (code 200) while debug_token calls the token valid
    meta.script.append(graph_error(403, 200, "(#200) Permissions error"))
    assert httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body)).status_code == 200
    relay.drain()
    assert relay.call(relay.relay.runtime().ledger.shop_state("vik")).held_until is not None
    code, out = relay_health(tmp_path, log_root, env, capsys)
    assert code == 1
    assert "vik: Meta token ok" in out and "HELD" in out
    assert "  ! sending is held until " in out and "(#200) Permissions error" in out
    assert "VIK_META_ACCESS_TOKEN" in out and TOKEN not in out


def test_a_shop_id_that_is_not_the_keys_is_reported_by_health_and_status(relay, meta, lightspeed, tmp_path,
                                                                         log_root, capsys):
    wrong = shop_env(meta, lightspeed, VIK_LIGHTSPEED_SHOP_ID="318843", ADMIN_TOKEN=ADMIN)
    code, out = relay_health(tmp_path, log_root, wrong, capsys)
    assert code == 1
    sentence = ("shop.json says this API key belongs to shop id 318842, but VIK_LIGHTSPEED_SHOP_ID is 318843: "
                "every webhook of this shop is refused (X-Shop-Id differs); set VIK_LIGHTSPEED_SHOP_ID to 318842")
    assert sentence in out
    assert SECRET not in out and KEY not in out
    relay.relay.env["VIK_LIGHTSPEED_SHOP_ID"] = "318843"
    status = httpx.get(f"{relay.url}/status", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    vik = status["shops"][0]
    assert not vik["ok"] and vik["health"]["lightspeed"]["state"] == "failed"
    assert any(sentence in w for w in vik["warnings"])
    # the right id makes the same check green again
    code, out = relay_health(tmp_path, log_root, shop_env(meta, lightspeed), capsys)
    assert code == 0 and "Lightspeed key ok (EUR)" in out
