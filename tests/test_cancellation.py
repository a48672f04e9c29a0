"""Cancellations: recorded whatever the order's state, logged truthfully, never replayed, and (opt-in)
told to Meta once as an ``OrderCancelled`` event for an order Meta had received."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from conftest import FIXTURE_NOW, order_body, shop_env, signed_headers
from relay.jobs import replay
from relay.outbox import revenue
from relay_tools.fakes import Reply
from relay_tools.server import LocalRelay, ServerThread

ORDER = 384271665
PAID = order_body(updatedAt="2025-11-18T21:48:31+01:00")
CANCELLED = order_body(updatedAt="2025-11-18T21:50:00+01:00", status="cancelled")


def post(relay, body: bytes) -> httpx.Response:
    answer = httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body))
    relay.drain()
    return answer


def rows(relay) -> dict[str, dict]:
    return {r["event_name"]: r for r in relay.call(relay.relay.runtime().ledger.rows("vik"))}


def logged(log_dir: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(log_dir.rglob("*.ndjson")) for line in f.read_text().splitlines()]


@pytest.fixture
def opted_in(meta, lightspeed, tmp_path, log_root, clock):
    env = shop_env(meta, lightspeed, VIK_SEND_CANCELLATIONS="1")
    server = ServerThread(LocalRelay(env, tmp_path / "c.db", log_root / tmp_path.name, clock=clock,
                                     rand=lambda: 0.5, sweep_interval=None)).start()
    yield server
    server.stop()


def test_a_cancellation_after_sending_is_recorded_and_logged_truthfully(relay, meta, clock, log_root, tmp_path):
    assert post(relay, PAID).json()["status"] == "accepted"
    clock.advance(120)
    answer = post(relay, CANCELLED).json()
    assert answer["status"] == "ignored" and "after Meta received" in answer["reason"]
    row = rows(relay)["Purchase"]
    assert row["state"] == "sent" and row["cancelled_at"] == FIXTURE_NOW + 120
    assert set(rows(relay)) == {"Purchase"} and len(meta.event_posts) == 1      # not opted in: nothing to Meta
    decisions = [line for line in logged(log_root / tmp_path.name) if line.get("kind") == "decision"]
    assert "after its Purchase reached Meta" in decisions[-1]["reason"]
    assert not any("before it was sent" in (line.get("reason") or "") for line in decisions)
    assert post(relay, CANCELLED).json()["status"] == "duplicate"


def test_a_replay_refuses_an_order_cancelled_after_it_was_sent(relay, meta, clock):
    post(relay, PAID)
    post(relay, CANCELLED)
    rt = relay.relay.runtime()
    result = relay.call(replay.requeue(rt, "vik", order_id=ORDER))
    assert result.requeued == [] and result.refused[0].code == "cancelled"
    assert "cancelled" in result.refused[0].reason
    relay.call(relay.relay.sweep())
    assert len(meta.event_posts) == 1


def test_a_failed_and_then_cancelled_order_is_not_replayed_by_state(relay, meta, clock):
    meta.reject_event_ids.add("purchase_ORD04217")
    post(relay, PAID)
    assert rows(relay)["Purchase"]["state"] == "failed"
    post(relay, CANCELLED)
    assert rows(relay)["Purchase"]["cancelled_at"] is not None
    meta.reject_event_ids.clear()
    result = relay.call(replay.requeue(relay.relay.runtime(), "vik", state="failed"))
    assert result.requeued == []
    relay.call(relay.relay.sweep())
    assert len(meta.event_posts) == 1


def test_net_revenue_takes_off_what_was_cancelled_after_sending(relay, meta, clock):
    post(relay, PAID)
    post(relay, CANCELLED)
    money = relay.call(revenue.net_revenue(relay.relay.db, clock.now))["vik"]
    assert money["cancellations_tracked"] is True
    week = money["7d"][0]
    assert (week["confirmed"], week["cancelled"], week["net"]) == (140.4, 140.4, 0.0)


def test_opted_in_a_cancelled_order_meta_had_is_sent_once_as_order_cancelled(opted_in, meta, clock):
    post(opted_in, PAID)
    clock.advance(600)
    answer = post(opted_in, CANCELLED).json()
    assert answer["status"] == "accepted" and "OrderCancelled" in answer["reason"]
    post(opted_in, CANCELLED)                                                  # Lightspeed fires it again
    clock.advance(3600)
    opted_in.call(opted_in.relay.sweep())
    events = meta.events()
    assert [e["event_name"] for e in events] == ["Purchase", "OrderCancelled"]
    cancel = events[1]
    assert cancel["event_id"] == "cancelled_purchase_ORD04217" and cancel["action_source"] == "system_generated"
    assert cancel["custom_data"] == {"value": 140.4, "currency": "EUR", "order_id": "ORD04217"}
    assert cancel["event_time"] == FIXTURE_NOW + 600
    assert cancel["user_data"]["em"] == events[0]["user_data"]["em"]
    assert "client_ip_address" not in cancel["user_data"]
    states = {name: r["state"] for name, r in rows(opted_in).items()}
    assert states == {"Purchase": "sent", "OrderCancelled": "sent"}
    money = opted_in.call(revenue.net_revenue(opted_in.relay.db, clock.now))["vik"]["7d"][0]
    assert money["confirmed_orders"] == 1 and money["net"] == 0.0     # the OrderCancelled row is no revenue


def test_opted_in_an_order_cancelled_before_sending_sends_nothing(opted_in, meta):
    unpaid = order_body(paymentStatus="not_paid", updatedAt="2025-11-18T21:48:31+01:00")
    assert post(opted_in, unpaid).json()["status"] == "ignored"
    answer = post(opted_in, CANCELLED).json()
    assert answer["status"] == "ignored" and answer["reason"] == "order cancelled: never sent"
    opted_in.call(opted_in.relay.sweep())
    assert meta.event_posts == []
    assert set(rows(opted_in)) == {"Purchase"} and rows(opted_in)["Purchase"]["state"] == "skipped"


def test_a_cancellation_during_a_failing_send_is_never_retried(opted_in, meta, clock):
    meta.script.append(Reply(500, b"", delay=1.5))            # the send in flight fails, slowly
    httpx.post(f"{opted_in.url}/?shop=vik", content=PAID, headers=signed_headers(PAID))   # not drained: in flight
    post(opted_in, CANCELLED)
    clock.advance(6 * 3600)
    opted_in.call(opted_in.relay.sweep())
    purchase = rows(opted_in)["Purchase"]
    assert purchase["state"] == "skipped" and purchase["cancelled_at"] is not None
    assert "client_ip_address" not in json.loads(purchase["payload"])["user_data"]   # it can no longer be sent
    assert len(meta.event_posts) <= 1 and "OrderCancelled" not in rows(opted_in)   # Meta never had it
