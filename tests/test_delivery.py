"""Nothing lost, nothing twice: Meta outages, timeouts, rejections, bad tokens, crashes, racing senders."""

from __future__ import annotations

import asyncio
import json

import httpx

from conftest import PAID_HEADERS, PAID_RAW, TOKEN
from relay.core.config import load_shop
from relay.core.order import parse_webhook
from relay.jobs import cron, delivery, intake, runtime
from relay_tools.edges import HttpxClient
from relay_tools.fakes import Reply, graph_error
from relay_tools.server import LocalRelay, ServerThread
from relay_tools.sqlite import SqliteDatabase


def deliver(relay) -> httpx.Response:
    answer = httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])
    relay.drain()
    return answer


def row(relay) -> dict:
    return relay.call(relay.relay.runtime().ledger.get("vik", 384271665))


def sweep(relay) -> dict:
    return relay.call(relay.relay.sweep())


def stored_not_sent(relay) -> runtime.Runtime:
    """The paid fixture in the ledger as a webhook leaves it, with its send never started."""
    rt = relay.relay.runtime()
    shop = load_shop(rt.env, "vik")
    assert relay.call(intake.record_order(rt, shop, parse_webhook(PAID_RAW), "webhook")) == "due"
    return rt


def test_meta_500_answers_lightspeed_200_and_the_sweep_sends_it_once(relay, meta, clock):
    meta.script.append(Reply(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                             {"Content-Type": "text/html"}))
    assert deliver(relay).status_code == 200
    failed = row(relay)
    assert failed["state"] == "retry" and failed["last_status"] == 502
    assert failed["next_attempt_at"] > clock.now

    sweep(relay)                       # not due yet: nothing happens
    assert len(meta.event_posts) == 1
    clock.advance(failed["next_attempt_at"] - clock.now)
    sweep(relay)
    sweep(relay)
    first, second = (p.json()["data"][0] for p in meta.event_posts)
    assert len(meta.event_posts) == 2
    assert (second["event_id"], second["event_time"]) == (first["event_id"], first["event_time"])
    assert row(relay)["state"] == "sent"


def test_meta_slow_but_successful_is_sent_once(relay, meta, clock):
    meta.slow_success = 2.0        # more than the 1.5 s a request blocking a page may wait; nothing blocks here
    assert deliver(relay).json()["status"] == "accepted"
    assert row(relay)["state"] == "sent"
    clock.advance(3600)
    sweep(relay)
    assert [p.json()["data"][0]["event_id"] for p in meta.event_posts] == ["purchase_ORD04217"]


def test_a_timed_out_send_may_have_been_delivered_so_it_is_retried_later_not_at_once(
        env, meta, tmp_path, log_root, clock):
    meta.slow_success = 2.0
    server = ServerThread(LocalRelay({**env, "META_TIMEOUT": "1"}, tmp_path / "t.db", log_root / tmp_path.name,
                                     clock=clock, rand=lambda: 0.5, sweep_interval=None)).start()
    try:
        assert deliver(server).status_code == 200
        timed_out = row(server)
        assert timed_out["state"] == "retry"
        assert "did not answer within 1 s; it may have the event" in timed_out["last_error"]
        assert timed_out["next_attempt_at"] >= clock.now + 600
        clock.advance(120)                     # the next sweeps: too soon for a request that may have arrived
        sweep(server)
        assert len(meta.event_posts) == 1
        meta.slow_success = 0.0
        clock.advance(3600)
        sweep(server)
        assert row(server)["state"] == "sent"
        assert {p.json()["data"][0]["event_id"] for p in meta.event_posts} == {"purchase_ORD04217"}
    finally:
        server.stop()


def test_transient_graph_codes_are_retried(relay, meta, clock):
    meta.script.append(graph_error(400, 613, "There have been too many calls from this ad-account.",
                                   subcode=1487742, transient=True))
    deliver(relay)
    assert row(relay)["state"] == "retry" and row(relay)["last_code"] == 613
    clock.advance(3600)
    sweep(relay)
    assert row(relay)["state"] == "sent"


def test_meta_code_100_fails_with_the_reason_and_is_not_retried(relay, meta, clock):
    meta.reject_event_ids.add("purchase_ORD04217")
    deliver(relay)
    failed = row(relay)
    assert failed["state"] == "failed"
    assert (failed["last_code"], failed["last_subcode"]) == (100, 2804050)
    assert "Insufficient customer information" in failed["last_error"]
    clock.advance(6 * 3600)
    sweep(relay)
    assert len(meta.event_posts) == 1


def test_meta_190_holds_the_shop_and_sends_after_the_token_is_replaced(relay, meta, clock):
    meta.valid_tokens = {"EAAnew-token"}
    deliver(relay)
    held = row(relay)
    assert held["state"] == "retry" and held["last_code"] == 190
    clock.advance(600)
    sweep(relay)                       # still the refused token: nothing is sent, nothing dropped
    assert len(meta.event_posts) == 1 and row(relay)["state"] == "retry"

    relay.relay.env["VIK_META_ACCESS_TOKEN"] = "EAAnew-token"
    sweep(relay)
    assert row(relay)["state"] == "sent"
    assert meta.event_posts[-1].json()["access_token"] == "EAAnew-token"


def test_held_shop_is_tried_again_after_the_hold_even_with_the_same_token(relay, meta, clock):
    meta.valid_tokens = {"EAAnew-token"}
    deliver(relay)
    meta.valid_tokens = None           # e.g. the permission was granted again in Business Manager
    clock.advance(delivery.HOLD_SECONDS + 1)
    sweep(relay)
    assert row(relay)["state"] == "sent"


def test_a_crash_between_the_ledger_write_and_the_send_is_completed_by_the_sweep(relay, meta):
    stored_not_sent(relay)
    assert meta.requests == []                          # stored, then the Worker died before sending
    sweep(relay)
    assert row(relay)["state"] == "sent" and len(meta.event_posts) == 1


def test_a_crash_mid_send_is_resent_after_the_lease_runs_out(relay, meta, clock):
    rt = stored_not_sent(relay)
    claimed = relay.call(rt.ledger.claim("vik", rt.now(), "dead-worker", delivery.LEASE_SECONDS, 10))
    assert len(claimed) == 1                            # claimed, then the Worker died
    sweep(relay)
    assert meta.requests == [], "a live lease must not be sent by anyone else"
    clock.advance(delivery.LEASE_SECONDS)
    sweep(relay)
    assert row(relay)["state"] == "sent" and len(meta.event_posts) == 1


def test_two_concurrent_sweeps_send_one_request(relay, meta, tmp_path):
    rt = stored_not_sent(relay)
    meta.script.append(Reply(200, {"events_received": 1, "messages": [], "fbtrace_id": "slow"}, delay=0.3))

    async def two_workers() -> None:
        runtimes = []
        for _ in range(2):     # two Workers: their own database connection and HTTP client each
            runtimes.append(runtime.Runtime(env=rt.env, db=SqliteDatabase(relay.relay.db.path), http=HttpxClient(),
                                            clock=rt.clock, random=rt.random))
        await asyncio.gather(*(cron.sweep(r) for r in runtimes))
        for r in runtimes:
            await r.http.aclose()
            r.db.close()

    asyncio.run(two_workers())
    assert len(meta.event_posts) == 1
    assert row(relay)["state"] == "sent"


def test_the_webhooks_waituntil_and_a_sweep_racing_send_once(relay, meta):
    meta.script.append(Reply(200, {"events_received": 1, "messages": [], "fbtrace_id": "slow"}, delay=0.3))
    answer = httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])
    assert answer.json()["status"] == "accepted"
    sweep(relay)                      # runs while the webhook's own send is in flight
    relay.drain()
    assert len(meta.event_posts) == 1
    assert json.loads(row(relay)["payload"])["custom_data"]["currency"] == "EUR"
    assert TOKEN not in row(relay)["payload"]


def test_a_redelivery_never_sends_an_event_past_metas_window(relay, meta, clock):
    meta.script.append(graph_error(500, 2, "Service temporarily unavailable", transient=True))
    deliver(relay)
    assert row(relay)["state"] == "retry"
    clock.advance(7 * 86400)                  # Meta was down all week; then Lightspeed redelivers
    answer = deliver(relay).json()
    assert answer["status"] == "ignored" and "7-day" in answer["reason"]
    assert row(relay)["state"] == "expired"
    sweep(relay)
    assert len(meta.event_posts) == 1, "an event this old would make Meta reject the whole request"


def test_the_webhook_path_never_claims_an_event_past_metas_window(relay, meta, clock):
    rt = stored_not_sent(relay)
    clock.advance(7 * 86400)
    assert relay.call(rt.ledger.claim("vik", rt.now(), "late", delivery.LEASE_SECONDS, 10, 384271665)) == []
    sweep(relay)
    assert row(relay)["state"] == "expired" and meta.requests == []


def test_a_duplicate_webhook_leaves_a_pending_send_to_the_sweep(relay, meta):
    stored_not_sent(relay)                   # the first delivery's send never ran
    assert deliver(relay).json()["status"] == "duplicate"
    assert meta.requests == [], "a duplicate costs no call on the webhook path"
    sweep(relay)
    assert row(relay)["state"] == "sent" and len(meta.event_posts) == 1
