"""GET /status: who may see it, and whether its figures answer "did Meta get last night's orders?"."""

from __future__ import annotations

import httpx
import pytest

from conftest import FIXTURE_CREATED, FIXTURE_NOW, order_body, shop_env, signed_headers
from relay.jobs import health
from relay.web.status import iso
from relay_tools.cli import main
from relay_tools.fakes import Reply, graph_error

ADMIN = "admin-token-for-tests-7c1f0a9e2b"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN)


def status(relay, query: str = "", headers: dict[str, str] | None = AUTH) -> httpx.Response:
    return httpx.get(f"{relay.url}/status{query}", headers=headers)


def vik(relay) -> dict:
    answer = status(relay, "?shop=vik")
    assert answer.status_code == 200, answer.text
    (shop,) = answer.json()["shops"]
    return shop


def send(relay, body: bytes) -> dict:
    answer = httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body))
    relay.drain()
    return answer.json()


# --- who may look -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    None,
    {"Authorization": "Bearer wrong-token-of-some-length"},
    {"Authorization": f"Bearer {ADMIN}x"},
    {"Authorization": f"Basic {ADMIN}"},
    {"Authorization": ADMIN},
])
def test_status_without_the_admin_token_is_401(relay, headers):
    answer = status(relay, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer <ADMIN_TOKEN>" in answer.json()["error"]
    assert "shops" not in answer.json()


def test_a_token_in_the_url_is_not_accepted(relay):
    assert status(relay, f"?token={ADMIN}", headers=None).status_code == 401
    assert status(relay, f"?access_token={ADMIN}", headers=None).status_code == 401


@pytest.mark.parametrize("value, message", [
    (None, "ADMIN_TOKEN is not set"),
    ("short", "it is 5 characters; it needs at least 32"),
    ("admin-token-16ch", "it is 16 characters; it needs at least 32"),   # what the Worker used to take
    ("ab" * 20, "it uses only 2 different characters"),
    ("abcdefghijklmnopqrstuvwxyz0123456789", "a repeated or sequential pattern"),
    ("Secret-99!" * 4, "a repeated or sequential pattern"),
])
def test_without_a_usable_admin_token_status_is_closed_and_says_how_to_set_it(relay, value, message):
    relay.relay.env.pop("ADMIN_TOKEN")
    if value is not None:
        relay.relay.env["ADMIN_TOKEN"] = value
    answer = status(relay, headers={"Authorization": f"Bearer {value or ADMIN}"})
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert message in error and "change ADMIN_TOKEN where your deploy reads it" in error
    assert 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"' in error


@pytest.mark.parametrize("path", ["/status/x", "/statuses", "/admin", "/debug-env", "/dashboard/x"])
@pytest.mark.parametrize("headers", [None, AUTH])
def test_routes_that_do_not_exist_are_404_not_401(relay, path, headers):
    assert httpx.get(f"{relay.url}{path}", headers=headers).status_code == 404


def test_status_only_answers_get(relay):
    answer = httpx.post(f"{relay.url}/status", headers=AUTH)
    assert answer.status_code == 405 and answer.headers["allow"] == "GET"


# --- the figures --------------------------------------------------------------------------------------------


def test_a_sent_order_shows_in_counts_last_success_coverage_and_the_daily_chart(relay, meta):
    assert send(relay, order_body())["status"] == "accepted"
    assert send(relay, order_body(id=384271666, number="ORD04219", phone="", mobile=""))["status"] == "accepted"
    answer = status(relay)
    assert answer.headers["cache-control"] == "no-store"
    report = answer.json()
    assert report["status"] == "ok"                            # never health-checked yet: said, not alarmed
    assert report["graph_api_version"] == "v26.0"
    (shop,) = report["shops"]
    assert shop["counts"]["24h"]["sent"] == 2 and shop["counts"]["7d"]["sent"] == 2
    assert shop["counts"]["24h"]["failed"] == 0
    assert shop["last_success_at"] == iso(FIXTURE_NOW)
    assert shop["last_error"] is None and shop["held"] is None
    assert shop["match_keys"]["events"] == 2
    assert shop["match_keys"]["coverage"]["em"] == 1.0
    assert shop["match_keys"]["coverage"]["ph"] == 0.5
    assert shop["daily"][-1] == {"date": iso(FIXTURE_NOW)[:10], "sent": 2, "failed": 0}
    assert len(shop["daily"]) == 14
    assert shop["graph_api_version"] == "v26.0"
    assert shop["health"] is None
    assert shop["ok"] and shop["warnings"] == []
    assert shop["notes"] == ["VIK_META_ACCESS_TOKEN has not been checked yet; the next cron run checks it"]


def test_after_the_health_check_a_quiet_shop_is_ok(relay, meta):
    send(relay, order_body())
    relay.call(health.run_daily(relay.relay.runtime()))
    report = status(relay).json()
    assert report["status"] == "ok"
    (shop,) = report["shops"]
    assert shop["ok"] and shop["warnings"] == []
    assert shop["health"]["meta_token"] == {"state": "ok", "expires_at": None, "never_expires": True, "issued_at": None,
                                            "scopes": ["ads_management", "business_management"], "code": None,
                                            "error": None}
    assert shop["health"]["lightspeed"]["state"] == "ok"


def test_an_unpaid_order_is_the_oldest_waiting(relay, meta):
    assert send(relay, order_body(paymentStatus="not_paid"))["status"] == "ignored"
    shop = vik(relay)
    assert shop["counts"]["24h"]["waiting"] == 1
    assert shop["oldest_waiting"] == {"order_id": 384271665, "order_number": "ORD04217",    # the number the owner
                                      "placed_at": iso(FIXTURE_CREATED),                # knows, the id beside it
                                      "age_seconds": FIXTURE_NOW - FIXTURE_CREATED}
    assert shop["oldest_retrying"] is None


def test_a_retrying_order_shows_its_error_and_warns_after_six_hours(relay, meta, clock):
    meta.script.append(graph_error(503, 2, "Service temporarily unavailable", transient=True))
    send(relay, order_body())
    shop = vik(relay)
    assert shop["counts"]["24h"]["retry"] == 1
    assert shop["oldest_retrying"]["order_id"] == 384271665
    assert (shop["last_error"]["code"], shop["last_error"]["state"]) == (2, "retry")
    assert "Service temporarily unavailable" in shop["last_error"]["message"]
    assert not any("retrying since" in w for w in shop["warnings"])
    clock.advance(7 * 3600)
    assert any("order ORD04217 (id 384271665) has been retrying since" in w for w in vik(relay)["warnings"])


def test_a_refused_event_counts_as_failed_with_its_code_and_a_warning(relay, meta):
    meta.reject_event_ids.add("purchase_ORD04217")
    send(relay, order_body())
    shop = vik(relay)
    assert shop["counts"]["24h"]["failed"] == 1
    e = shop["last_error"]
    assert (e["code"], e["subcode"], e["status"], e["state"], e["order_id"]) == (100, 2804050, 400, "failed",
                                                                                 384271665)
    assert e["order_number"] == "ORD04217"
    assert e["fbtrace_id"] == "FakeTraceError"
    assert any("1 event(s) of the last 24 h failed for good" in w for w in shop["warnings"])
    assert shop["daily"][-1]["failed"] == 1


def test_a_held_shop_says_so_and_why(relay, meta):
    meta.valid_tokens = {"another-token"}
    send(relay, order_body())
    shop = vik(relay)
    assert shop["held"]["reason"].startswith("Error validating access token")
    assert any(w.startswith("sending is held until") and "events stay queued" in w for w in shop["warnings"])
    assert shop["counts"]["24h"]["retry"] == 1


def test_one_shop_or_all_and_unknown_shops_are_404(relay, meta, lightspeed):
    relay.relay.env.update(shop_env(meta, lightspeed, "SHOP2"))
    relay.relay.env["HALF_META_PIXEL_ID"] = "123"
    send(relay, order_body())
    report = status(relay).json()
    assert [s["shop"] for s in report["shops"]] == ["half", "shop2", "vik"]
    half, shop2, vik_shop = report["shops"]
    assert half["config_error"] and "HALF_LIGHTSPEED_API_KEY" in half["config_error"] and not half["ok"]
    assert shop2["counts"]["24h"]["sent"] == 0 and vik_shop["counts"]["24h"]["sent"] == 1
    assert [s["shop"] for s in status(relay, "?shop=SHOP2").json()["shops"]] == ["shop2"]
    missing = status(relay, "?shop=nope")
    assert missing.status_code == 404 and "NOPE_META_PIXEL_ID" in missing.json()["error"]
    assert status(relay, "?shop=../etc").status_code == 404


# The columns of migrations/0002_backfill.sql this page reads (the backfill's own migration creates the table).
BACKFILL_TABLE = """CREATE TABLE IF NOT EXISTS backfill (shop TEXT PRIMARY KEY, cursor INTEGER, run_page INTEGER,
                                                       last_error TEXT, updated_at INTEGER NOT NULL)"""


def test_the_backfill_cursor_and_its_lag(relay, meta, clock):
    assert vik(relay)["backfill"] == {"cursor": None, "lag_seconds": None, "listing": False, "last_error": None}
    cursor = FIXTURE_NOW - 600
    relay.call(relay.relay.db.run(BACKFILL_TABLE))
    relay.call(relay.relay.db.run(
        "INSERT INTO backfill (shop, cursor, updated_at) VALUES (?, ?, ?)", ("vik", cursor, FIXTURE_NOW)))
    assert vik(relay)["backfill"] == {"cursor": iso(cursor), "lag_seconds": 600, "listing": False,
                                      "last_error": None}
    clock.advance(4 * 3600)
    assert any(w.startswith("the backfill is 4 h behind") for w in vik(relay)["warnings"])


def test_without_the_backfill_table_the_cursor_is_null(relay, meta):
    relay.call(relay.relay.db.run("DROP TABLE IF EXISTS backfill"))
    assert vik(relay)["backfill"]["cursor"] is None


def test_a_replaced_token_is_flagged_until_it_is_checked(relay, meta):
    relay.call(health.run_daily(relay.relay.runtime()))
    relay.relay.env["VIK_META_ACCESS_TOKEN"] = "EAAnew-token-for-status-test"
    assert any("was replaced after the last check" in w for w in vik(relay)["warnings"])


@pytest.mark.parametrize("reply", [Reply(200, {"data": {"is_valid": True, "expires_at": FIXTURE_NOW + 5 * 86400,
                                                        "scopes": ["ads_management"]}})])
def test_an_expiring_token_is_on_the_status(relay, meta, reply):
    meta.debug_script.append(reply)
    relay.call(health.run_daily(relay.relay.runtime()))
    shop = vik(relay)
    assert shop["health"]["meta_token"]["state"] == "expiring"
    assert shop["health"]["meta_token"]["expires_at"] == iso(FIXTURE_NOW + 5 * 86400)
    assert any("expires on" in w and "in 5 days" in w for w in shop["warnings"])


def test_settings_that_cost_match_quality_or_mark_test_events_are_warned(relay):
    relay.relay.env.pop("VIK_SHOP_URL")
    relay.relay.env["VIK_META_TEST_EVENT_CODE"] = "TEST4242"
    warnings = vik(relay)["warnings"]
    assert any(w.startswith("VIK_SHOP_URL is not set") for w in warnings)
    assert any(w.startswith("VIK_META_TEST_EVENT_CODE is set") for w in warnings)
    assert not any("TEST4242" in w for w in warnings)


# --- relay status, the command ------------------------------------------------------------------------------


def relay_status(relay, tmp_path, capsys) -> tuple[int, list[str]]:
    env_file = tmp_path / "status.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in relay.relay.env.items()))
    code = main(["status", "--db", str(relay.relay.db.path), "--env-file", str(env_file)])
    return code, capsys.readouterr().out.splitlines()


def test_relay_status_right_after_start_says_not_checked_yet_without_alarm(relay, meta, tmp_path, capsys):
    send(relay, order_body())
    code, lines = relay_status(relay, tmp_path, capsys)
    assert code == 0, lines
    assert lines[0].startswith("relay ok at ")
    assert lines[1].startswith("vik: ok;") and "ATTENTION" not in "\n".join(lines)
    assert "  VIK_META_ACCESS_TOKEN has not been checked yet; the next cron run checks it" in lines


def test_relay_status_names_orders_by_their_number_with_the_id_beside_it(relay, meta, tmp_path, capsys):
    send(relay, order_body(paymentStatus="not_paid"))
    meta.reject_event_ids.add("purchase_ORD10005")
    send(relay, order_body(id=500000005, number="ORD10005"))
    _, lines = relay_status(relay, tmp_path, capsys)             # the command's clock is a year past these orders
    assert any(line.startswith("  oldest waiting for payment: ORD04217 (id 384271665), placed ") for line in lines)
    (error,) = [line for line in lines if line.startswith("  last error: ")]
    assert error.startswith("  last error: ORD10005 (id 500000005), failed at ")
    assert "Meta 400 code 100/2804050: " in error and "None" not in error
