"""Alerts from the cron: one message when a condition starts, one when it clears, in the receiver's format."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from conftest import PAID_HEADERS, PAID_RAW, TOKEN, order_body, shop_env, signed_headers
from relay.core import alert_format
from relay.core.errors import ConfigError
from relay.jobs import cron, limits, schedule
from relay_tools.fakes import FakeReceiver, graph_error

NEW_TOKEN = "EAAreplacement-token-vik-not-real"
CUSTOMER = ("marielle", "vandenbroek", "example.nl", "612345678", "1015", "2001:db8")


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    with FakeReceiver() as fake:
        yield fake


@pytest.fixture
def env(meta, lightspeed, receiver) -> dict[str, str]:
    return shop_env(meta, lightspeed, ALERT_WEBHOOK_URL=f"{receiver.url}/hooks/relay")


def cron_pass(relay, clock, minutes: int = 10) -> None:
    """One Worker cron invocation (the jobs before the pass, then the pass), ten minutes after the last."""
    clock.advance(minutes * 60)
    rt = relay.relay.runtime()
    try:
        relay.call(cron.scheduled(rt, before=schedule.before_pass()))
    finally:
        relay.call(rt.log.flush(rt.blobs, rt.clock()))


def events(receiver: FakeReceiver) -> list[tuple[str, str, str]]:
    return [(m["event"], m["shop"], m["condition"]) for m in receiver.messages]


def test_a_hold_lasting_three_cron_passes_gives_one_started_and_one_cleared(relay, meta, receiver, clock):
    meta.valid_tokens = {NEW_TOKEN}                      # Meta refuses the shop's token
    httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])
    relay.drain()
    for _ in range(3):
        cron_pass(relay, clock)
    assert events(receiver) == [("started", "vik", "held")]
    started = receiver.messages[0]
    assert started["count"] == 1 and "VIK_META_ACCESS_TOKEN" in started["summary"]
    assert "change VIK_META_ACCESS_TOKEN where your deploy reads it" in started["fix"]

    relay.relay.env["VIK_META_ACCESS_TOKEN"] = NEW_TOKEN  # the owner replaces it
    cron_pass(relay, clock)                              # the pass lifts the hold and sends the order
    cron_pass(relay, clock)
    cron_pass(relay, clock)
    assert events(receiver) == [("started", "vik", "held"), ("cleared", "vik", "held")]
    assert "after 40 min" in receiver.messages[1]["text"]
    assert meta.events()[-1]["event_id"] == "purchase_ORD04217"
    sent = json.dumps(receiver.messages)
    assert not [c for c in CUSTOMER if c in sent] and TOKEN not in sent and NEW_TOKEN not in sent
    assert "ORD04217" not in sent


def test_a_receiver_that_is_down_gets_the_message_next_pass(relay, meta, receiver, clock):
    meta.valid_tokens = {NEW_TOKEN}
    receiver.script = [503]
    cron_pass(relay, clock)
    assert receiver.messages == []
    cron_pass(relay, clock)
    cron_pass(relay, clock)
    assert events(receiver) == [("started", "vik", "held")]


def test_failures_above_the_threshold_alert_and_clear_after_the_hour(relay, meta, receiver, clock):
    relay.relay.env["ALERT_FAILURES_PER_HOUR"] = "2"
    for n in range(3):
        meta.script.append(graph_error(400, 100, "Invalid parameter", subcode=2804019))
        body = order_body(id=384271700 + n, number=f"ORD0500{n}")
        httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body))
    relay.drain()
    cron_pass(relay, clock)
    assert events(receiver) == [("started", "vik", "failures")]
    assert receiver.messages[0]["count"] == 3 and "threshold 2" in receiver.messages[0]["summary"]
    assert receiver.messages[0]["summary"].endswith("(threshold 2): ORD05000, ORD05001, ORD05002")   # by number
    assert "3842717" not in receiver.messages[0]["text"]                                              # not by id
    cron_pass(relay, clock, minutes=70)
    assert events(receiver)[-1] == ("cleared", "vik", "failures")


def test_paid_orders_with_nothing_confirmed_for_hours_alert(relay, meta, receiver, clock):
    relay.relay.env["ALERT_UNCONFIRMED_HOURS"] = "2"
    for _ in range(40):                                  # Meta is down: every attempt fails with a 5xx
        meta.script.append(graph_error(500, 2, "Service temporarily unavailable", transient=True))
    httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])
    relay.drain()
    cron_pass(relay, clock, minutes=10)
    assert ("started", "vik", "unconfirmed") not in events(receiver), "too young to worry about"
    cron_pass(relay, clock, minutes=30)
    assert ("started", "vik", "unconfirmed") in events(receiver)
    alert = next(m for m in receiver.messages if m["condition"] == "unconfirmed")
    assert alert["count"] == 1 and "none confirmed by Meta" in alert["summary"]


def test_a_token_expiring_within_14_days_alerts_once(relay, meta, receiver, clock):
    meta.token_info[TOKEN] = {"expires_at": int(clock.now) + 10 * 86400}
    for _ in range(3):
        cron_pass(relay, clock)
    assert events(receiver) == [("started", "vik", "token_expiring")]
    assert receiver.messages[0]["count"] == 9


def test_no_webhook_address_costs_no_subrequest(relay, clock):
    del relay.relay.env["ALERT_WEBHOOK_URL"]
    rt = relay.relay.runtime()
    assert relay.call(schedule.before_pass()[-1](rt)) == {"started": [], "cleared": []}


def test_the_cron_jobs_leave_the_pass_its_budget(relay, meta, receiver, clock):
    meta.valid_tokens = {NEW_TOKEN}
    rt = relay.relay.runtime()
    clock.advance(600)
    report = relay.call(cron.scheduled(rt, before=schedule.before_pass()))
    spent = limits.DEFAULT_BUDGET - report.budget
    assert events(receiver) == [("started", "vik", "held")]
    assert spent <= 12, f"token check, Meta's quality figures and alerts spent {spent} of the pass's 50"
    assert report.budget >= limits.MIN_BUDGET


@pytest.mark.parametrize("url, fmt", [
    ("https://hooks.slack.com/services/T000/B000/XXXX", "slack"),
    ("https://discord.com/api/webhooks/123/abc", "discord"),
    ("https://contoso.webhook.office.com/webhookb2/abc", "teams"),
    ("https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke", "teams"),
    ("https://alerts.example.com/relay", "json"),
])
def test_the_format_follows_the_address(url, fmt):
    assert alert_format.choose_format(url, None) == fmt
    alert = alert_format.Alert("vik", "held", 3, "sending is held; 3 order(s) queued", "replace the token")
    body = json.loads(alert_format.body(fmt, "started", alert, "2026-12-01T08:00:00Z"))
    text = json.dumps(body)
    assert "vik" in text and "3 order(s)" in text and "replace the token" in text
    if fmt == "slack":
        assert set(body) == {"text"}
    elif fmt == "discord":
        assert body["content"].startswith("Relay alert") and body["allowed_mentions"] == {"parse": []}
    elif fmt == "teams":
        assert body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"


def test_alert_format_overrides_and_is_checked():
    assert alert_format.choose_format("https://alerts.example.com/x", "Slack") == "slack"
    with pytest.raises(ConfigError, match="ALERT_FORMAT must be one of"):
        alert_format.choose_format("https://alerts.example.com/x", "email")
    with pytest.raises(ConfigError, match="ALERT_WEBHOOK_URL must be an https"):
        alert_format.choose_format("hooks.slack.com/services/x", None)
