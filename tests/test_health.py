"""Token and key health: Meta's debug_token and Lightspeed's shop.json, daily, stored, logged, and a hold on a
dead token that keeps the shop's events queued until the token is replaced."""

from __future__ import annotations

import json
from datetime import date

import httpx
import pytest

from conftest import FIXTURE_NOW, KEY, PAID_HEADERS, PAID_RAW, SECRET, TOKEN, shop_env
from relay.core.ports import HttpResponse
from relay.jobs import health
from relay_tools.cli import main
from relay_tools.fakes import Reply

DAY = 86400
NEW_TOKEN = "EAAreplacement-token-vik-not-real"


def run_health(relay, **kwargs) -> dict[str, health.HealthReport]:
    rt = relay.relay.runtime()
    try:
        return relay.call(health.run_daily(rt, **kwargs))
    finally:
        relay.call(rt.log.flush(rt.blobs, rt.clock()))


def stored_row(relay, shop: str = "vik") -> dict:
    return relay.call(health.stored(relay.relay.db))[shop]


def shop_state(relay, shop: str = "vik"):
    return relay.call(relay.relay.runtime().ledger.shop_state(shop))


def webhook(relay) -> dict:
    answer = httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])
    relay.drain()
    return answer.json()


def test_a_valid_token_and_a_working_key_are_checked_stored_and_ok(relay, meta, lightspeed):
    report = run_health(relay)["vik"]
    assert (report.token.state, report.token.expires_at, report.lightspeed.state) == ("ok", 0, "ok")
    assert report.warnings == () and not report.held
    (asked,) = meta.debug_requests
    assert asked.path == "/v26.0/debug_token"
    assert asked.query["input_token"] == [TOKEN]
    assert asked.headers["authorization"] == f"Bearer {TOKEN}"
    assert "access_token" not in asked.query
    assert [r.path for r in lightspeed.requests] == ["/nl/shop.json"]
    row = stored_row(relay)
    assert (row["token_state"], row["lightspeed_state"], row["graph_version"]) == ("ok", "ok", "v26.0")
    assert row["token_scopes"] == "ads_management,business_management"
    assert TOKEN not in json.dumps(row)


def test_the_check_runs_once_a_day_and_at_once_for_a_replaced_token(relay, meta, clock):
    run_health(relay)
    run_health(relay)
    clock.advance(23 * 3600)
    run_health(relay)
    assert len(meta.debug_requests) == 1
    clock.advance(3600)
    run_health(relay)
    assert len(meta.debug_requests) == 2
    relay.relay.env["VIK_META_ACCESS_TOKEN"] = NEW_TOKEN
    run_health(relay)
    assert len(meta.debug_requests) == 3
    assert meta.debug_requests[-1].query["input_token"] == [NEW_TOKEN]


@pytest.mark.parametrize("days, state, warned", [(10, "expiring", True), (14, "expiring", True), (20, "ok", False)])
def test_a_token_warns_from_14_days_before_it_expires(relay, meta, clock, days, state, warned):
    meta.token_info[TOKEN] = {"expires_at": int(clock.now) + days * DAY}
    report = run_health(relay)["vik"]
    assert report.token.state == state and not report.held
    expiry = [w for w in report.warnings if "expires on" in w]
    if warned:
        (sentence,) = expiry
        assert f"VIK_META_ACCESS_TOKEN expires on {health.iso_day(int(clock.now) + days * DAY)}" in sentence
        assert f"in {days} days" in sentence and "change VIK_META_ACCESS_TOKEN where your deploy reads it" in sentence
    else:
        assert expiry == []


@pytest.mark.parametrize("age_days, warned", [(60, False), (76, True), (120, True)])
def test_a_token_due_for_the_90_day_rotation_warns(relay, meta, clock, age_days, warned):
    issued = int(clock.now) - age_days * DAY
    meta.token_info[TOKEN] = {"issued_at": issued}
    report = run_health(relay)["vik"]
    rotation = [w for w in report.warnings if "rotated every 90 days" in w]
    assert report.token.state == "ok" and report.token.issued_at == issued
    if warned:
        (sentence,) = rotation
        assert f"was issued on {health.iso_day(issued)} ({age_days} days ago)" in sentence
    else:
        assert rotation == []


def test_a_refused_token_holds_the_shop_and_its_orders_stay_queued_until_the_token_is_replaced(relay, meta):
    meta.valid_tokens = {NEW_TOKEN}
    report = run_health(relay)["vik"]
    assert report.token.state == "invalid" and report.token.code == 190 and report.held
    assert any("Meta refused VIK_META_ACCESS_TOKEN" in w for w in report.warnings)
    held = shop_state(relay)
    assert held.held_until is not None and held.held_until > FIXTURE_NOW
    assert webhook(relay)["status"] == "accepted"
    assert meta.event_posts == []                                      # held: nothing posted with a dead token
    row = relay.call(relay.relay.runtime().ledger.get("vik", 384271665))
    assert row["state"] == "due"                                       # queued, not dropped
    relay.relay.env["VIK_META_ACCESS_TOKEN"] = NEW_TOKEN
    relay.call(relay.relay.sweep())
    assert [p.json()["access_token"] for p in meta.event_posts] == [NEW_TOKEN]
    assert relay.call(relay.relay.runtime().ledger.get("vik", 384271665))["state"] == "sent"


def test_a_token_meta_calls_invalid_in_its_data_is_invalid(relay, meta):
    meta.token_info[TOKEN] = {"is_valid": False, "error": {
        "code": 190, "subcode": 460, "message": "The session has been invalidated because the user changed their "
                                                "password."}}
    report = run_health(relay)["vik"]
    assert report.token.state == "invalid" and report.held
    assert "changed their password" in stored_row(relay)["token_error"]


def test_a_check_without_an_answer_is_unknown_does_not_hold_and_is_retried_within_the_hour(relay, meta, clock):
    meta.debug_script.append(Reply(503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"}))
    report = run_health(relay)["vik"]
    assert report.token.state == "unknown" and not report.held
    assert shop_state(relay).held_until is None
    assert "503" in report.token.error
    clock.advance(3600)
    run_health(relay)
    assert len(meta.debug_requests) == 2


def test_an_unreachable_meta_gives_an_error_without_the_token(relay, meta, lightspeed):
    relay.relay.env["META_GRAPH_URL"] = "http://127.0.0.1:9"        # the discard port: nothing listens
    report = run_health(relay)["vik"]
    assert report.token.state == "unknown"
    assert "did not answer (ConnectionError)" in report.token.error
    stored = json.dumps(stored_row(relay))
    assert TOKEN not in stored and TOKEN not in repr(report)


def test_a_wrong_lightspeed_key_is_reported_with_the_variables_to_check(relay, meta):
    relay.relay.env["VIK_LIGHTSPEED_API_KEY"] = "wrong-key"
    report = run_health(relay)["vik"]
    assert report.lightspeed.state == "failed" and report.lightspeed.status == 401
    assert "VIK_LIGHTSPEED_API_KEY" in report.lightspeed.error
    assert any(w.startswith("Lightspeed check:") for w in report.warnings)
    assert report.token.state == "ok" and not report.held         # Meta sending is not affected


def test_a_token_without_ads_management_warns(relay, meta):
    meta.token_info[TOKEN] = {"scopes": ["business_management"]}
    report = run_health(relay)["vik"]
    assert report.token.state == "ok"
    assert any("lacks the ads_management permission" in w for w in report.warnings)


def test_a_graph_version_meta_no_longer_serves_warns(relay, meta):
    meta.served_version = "v27.0"
    report = run_health(relay)["vik"]
    assert any("Meta answered with Graph API v27.0, not META_API_VERSION v26.0" in w for w in report.warnings)


@pytest.mark.parametrize("today, expected", [
    (date(2027, 6, 1), None),
    (date(2028, 1, 1), "Graph API v24.0 ends on 2028-02-18"),
    (date(2028, 3, 1), "Graph API v24.0 ended on 2028-02-18"),
])
def test_known_graph_version_ends_warn_90_days_ahead(today, expected):
    warning = health.version_warning("v24.0", None, today)
    assert warning is None if expected is None else expected in warning


@pytest.mark.parametrize("status, body, state, code", [
    (400, {"error": {"code": 190, "message": "Error validating access token"}}, "invalid", 190),
    (400, {"error": {"code": 4, "message": "Application request limit reached", "is_transient": True}}, "unknown", 4),
    (200, {"data": {"is_valid": True, "expires_at": FIXTURE_NOW - 60, "scopes": []}}, "invalid", 190),
    (200, {"data": {"app_id": "1"}}, "unknown", None),
    (502, b"<html>Bad Gateway</html>", "unknown", None),
])
def test_parse_debug_token(status, body, state, code):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    check = health.parse_debug_token(HttpResponse(status, {}, raw), FIXTURE_NOW)
    assert (check.state, check.code) == (state, code)


def test_each_run_checks_a_few_shops_least_recently_checked_first(relay, meta, lightspeed):
    relay.relay.env.update(shop_env(meta, lightspeed, "SHOP2"))
    first = run_health(relay, limit=1)
    second = run_health(relay, limit=1)
    assert sorted([*first, *second]) == ["shop2", "vik"]
    assert run_health(relay, limit=1) == {}


def test_health_checks_are_written_to_the_delivery_log(relay, meta):
    meta.valid_tokens = {NEW_TOKEN}
    run_health(relay)
    lines = [json.loads(raw) for f in relay.relay.blobs.root.rglob("*.ndjson") for raw in f.read_text().splitlines()]
    kinds = {(line["kind"], line.get("check")) for line in lines}
    assert {("health", "meta_token"), ("health", "lightspeed"), ("hold", None), ("warning", "health")} <= kinds
    token_line = next(line for line in lines if line.get("check") == "meta_token")
    assert (token_line["state"], token_line["code"]) == ("invalid", 190)


def test_relay_health_checks_now_and_says_what_it_found(meta, lightspeed, tmp_path, log_root, capsys):
    env_file = tmp_path / ".env.local"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in shop_env(meta, lightspeed).items()))
    argv = ["health", "--env-file", str(env_file), "--db", str(tmp_path / "relay.db"),
            "--logs", str(log_root / tmp_path.name)]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == \
        "vik: Meta token ok (never expires; ads_management, business_management); Lightspeed key ok (EUR)"
    meta.valid_tokens = {"someone-else"}
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "vik: Meta token invalid" in out and "HELD" in out and "  ! Meta refused VIK_META_ACCESS_TOKEN" in out
    assert TOKEN not in out and SECRET not in out and KEY not in out
