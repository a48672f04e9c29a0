"""The identity bridge end to end: thank-you posts to ``relay serve`` on loopback, webhooks, sweeps and
the fake Meta, on a real SQLite file. What Meta receives is what each test checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import FIXTURE_CREATED, PAID_HEADERS, PAID_RAW, Clock, order_body, sha256, shop_env, signed_headers
from relay_tools.fakes import graph_error
from relay_tools.server import LocalRelay, ServerThread

FBP = "fb.1.1763498500123.1116446470"
FBC = "fb.1.1763498400456.IwAR2F4-AbCdEf_123.AQICAQMC"   # a Parameter Builder appendix: kept verbatim
AGENT = json.loads(PAID_RAW)["order"]["userAgent"]   # a post counts only from the browser that placed the order
NUMBER, ORDER_ID, TOTAL = "ORD04217", 384271665, 140.4

ADMIN = "bridge-test-admin-token-0123456789"
Start = Callable[..., ServerThread]


@pytest.fixture
def start(meta, lightspeed, tmp_path: Path, log_root: Path, clock: Clock) -> Iterator[Start]:
    servers: list[ServerThread] = []

    def run(**extra: str) -> ServerThread:
        env = shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN, **extra)
        local = LocalRelay(env, tmp_path / f"r{len(servers)}.db", log_root / f"{tmp_path.name}-{len(servers)}",
                           clock=clock, rand=lambda: 0.5, sweep_interval=None)
        servers.append(ServerThread(local).start())
        return servers[-1]

    yield run
    for server in servers:
        server.stop()


def post(server: ServerThread, shop: str = "vik", **body: Any) -> httpx.Response:
    payload = {"order_number": NUMBER, "consent": "granted", "fbp": FBP, "fbc": FBC, "value": TOTAL, **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    return httpx.post(f"{server.url}/bridge?shop={shop}", content=json.dumps(payload),
                      headers={"Content-Type": "text/plain", "User-Agent": AGENT,
                               "Origin": "https://www.vikginchoice.example"})


def webhook(server: ServerThread, body: bytes = PAID_RAW) -> httpx.Response:
    headers = PAID_HEADERS["headers"] if body is PAID_RAW else signed_headers(body)
    return httpx.post(f"{server.url}/?shop=vik", content=body, headers=headers)


def user_data(meta) -> list[dict[str, Any]]:
    return [event["user_data"] for p in meta.event_posts for event in p.json()["data"]]


def row(server: ServerThread, order_id: int = ORDER_ID) -> dict[str, Any]:
    return server.call(server.relay.runtime().ledger.get("vik", order_id))


def bridge_rows(server: ServerThread) -> list[dict[str, Any]]:
    return server.call(server.relay.db.run("SELECT * FROM bridge")).rows


def sweep(server: ServerThread) -> None:
    server.call(server.relay.sweep())


def test_a_post_then_the_webhook_sends_one_event_with_the_browser_ids_ip_and_agent(start, meta):
    relay = start()
    answer = post(relay)
    relay.drain()
    assert answer.status_code == 204 and answer.content == b""
    assert answer.headers["access-control-allow-origin"] == "https://www.vikginchoice.example"
    webhook(relay)
    relay.drain()
    sweep(relay)

    [data] = user_data(meta)
    assert data["fbp"] == FBP and data["fbc"] == FBC
    assert data["client_ip_address"] == "127.0.0.1"        # the bridge request's peer, not the order's remoteIp
    assert data["client_user_agent"] == AGENT
    event = meta.event_posts[0].json()["data"][0]
    assert (event["event_id"], event["event_time"]) == ("purchase_ORD04217", FIXTURE_CREATED)
    assert row(relay)["consent_source"] == "off"


def test_the_webhook_then_the_post_inside_the_wait_sends_when_the_post_arrives(start, meta, clock):
    relay = start(VIK_BRIDGE_WAIT="120")
    assert webhook(relay).json()["status"] == "accepted"
    relay.drain()
    assert meta.event_posts == []                          # held for the thank-you page's post
    clock.advance(20)
    post(relay)
    relay.drain()                                          # the post's waitUntil sends it, long before the wait ends
    [data] = user_data(meta)
    assert (data["fbp"], data["fbc"], data["client_user_agent"]) == (FBP, FBC, AGENT)
    assert data["client_ip_address"] == "127.0.0.1"
    post(relay)                                            # a repeated post, and a later sweep: nothing twice
    relay.drain()
    clock.advance(600)
    sweep(relay)
    assert len(meta.event_posts) == 1


def test_no_post_sends_after_the_wait_without_browser_ids(start, meta, clock):
    relay = start(VIK_BRIDGE_WAIT="120")
    webhook(relay)
    relay.drain()
    sweep(relay)
    assert meta.event_posts == []
    clock.advance(121)                                     # the webhook came 300 s after createdAt: wait is over
    sweep(relay)
    [data] = user_data(meta)
    assert "fbp" not in data and "fbc" not in data
    assert data["client_ip_address"] == "2001:db8:3c4d:15::1a2f"   # the order's own, as before


def test_an_fbclid_alone_becomes_fbc_with_its_case_kept(start, meta, clock):
    relay = start()
    post(relay, fbc=None, fbp=None, fbclid="IwAR2F4-MiXeDcAsE_x")
    webhook(relay)
    relay.drain()
    [data] = user_data(meta)
    assert data["fbc"] == f"fb.1.{int(clock.now) * 1000}.IwAR2F4-MiXeDcAsE_x"
    assert "fbp" not in data


@pytest.mark.parametrize(("field", "value"), [
    ("fbc", "fb.1.IwAR2F4"), ("fbp", "FB.1.1596403881668.1116446470"), ("fbp", "fb.1.1596403881668"),
    ("fbc", 12), ("fbclid", "has spaces"), ("consent", "yes"), ("order_number", ""), ("value", "lots"),
])
def test_malformed_posts_are_400_and_store_nothing(start, field, value):
    relay = start()
    answer = post(relay, **{field: value})
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["error"] or field == "order_number"
    assert bridge_rows(relay) == []


def test_bad_json_oversized_unknown_shop_and_flooding(start):
    relay = start()
    assert httpx.post(f"{relay.url}/bridge?shop=vik", content=b"{not json").status_code == 400
    assert httpx.post(f"{relay.url}/bridge?shop=vik", content=b" " * 5000).status_code == 413
    assert post(relay, shop="nosuchshop").status_code == 404
    answers = [post(relay, order_number=f"ORD{n:05d}").status_code for n in range(25)]
    assert answers.count(204) == 20 and answers[20:] == [429] * 5
    assert len(bridge_rows(relay)) == 20


def test_the_answer_is_the_same_whether_the_order_exists_or_not(start):
    relay = start()
    webhook(relay)
    relay.drain()
    known, unknown = post(relay), post(relay, order_number="ORD99999")
    strip = {"date", "server"}
    assert (known.status_code, known.content) == (unknown.status_code, unknown.content) == (204, b"")
    assert {k: v for k, v in known.headers.items() if k not in strip} == \
        {k: v for k, v in unknown.headers.items() if k not in strip}


def test_cors_is_only_for_the_shops_own_origin(start):
    relay = start()
    for origin, allowed in (("https://vikginchoice.example", True), ("https://evil.example", False)):
        answer = httpx.options(f"{relay.url}/bridge?shop=vik", headers={"Origin": origin})
        assert answer.status_code == 204
        assert (answer.headers.get("access-control-allow-origin") == origin) is allowed


def test_a_second_post_does_not_replace_the_first(start, meta):
    relay = start()
    post(relay)
    post(relay, fbp="fb.1.1763498500999.999999999", fbc=None)
    webhook(relay)
    relay.drain()
    [data] = user_data(meta)
    assert (data["fbp"], data["fbc"]) == (FBP, FBC)
    assert [r["verdict"] for r in bridge_rows(relay)] == ["attached", "unused"]   # the first bound post counts


@pytest.mark.parametrize(("advance", "value", "verdict"), [
    (3700 - 300, TOTAL, "late"),          # received an hour and more after createdAt
    (0, 14.04, "value"),                  # the thank-you page showed another total
])
def test_a_post_outside_the_window_or_with_another_value_is_not_attached(start, meta, clock, advance, value, verdict):
    relay = start()
    clock.advance(advance)
    post(relay, value=value)
    webhook(relay)
    relay.drain()
    [data] = user_data(meta)
    assert "fbp" not in data and "fbc" not in data
    assert data["client_ip_address"] == "2001:db8:3c4d:15::1a2f"   # the order's own, not the post's
    [entry] = httpx.get(f"{relay.url}/status", headers={"Authorization": f"Bearer {ADMIN}"}).json()["shops"]
    assert entry["bridge"]["rejected"] == 1 and entry["bridge"]["bridged"] == 0
    assert bridge_rows(relay)[0]["verdict"] == verdict


def test_a_post_to_another_shop_attaches_nothing(start, meta, lightspeed):
    relay = start(**{k.replace("VIK_", "OTHER_"): v for k, v in shop_env(meta, lightspeed).items()
                     if k.startswith("VIK_")})
    assert post(relay, shop="other").status_code == 204
    webhook(relay)
    relay.drain()
    [data] = user_data(meta)
    assert "fbp" not in data and "fbc" not in data


def test_a_post_whose_order_never_comes_is_deleted_after_eight_days(start, clock):
    relay = start()
    post(relay, order_number="ORD77777")
    clock.advance(7 * 86400)
    server_pass(relay)
    assert [r["order_number"] for r in bridge_rows(relay)] == ["ORD77777"]
    clock.advance(86400 + 1)
    server_pass(relay)
    assert bridge_rows(relay) == []


def server_pass(relay: ServerThread) -> None:
    from relay.jobs import cron

    relay.call(cron.run_pass(relay.relay.runtime(), listing=False))


def test_after_sending_no_ip_or_agent_from_the_bridge_remains(start, meta):
    relay = start()
    post(relay)
    webhook(relay)
    relay.drain()
    assert len(meta.event_posts) == 1
    [stored] = bridge_rows(relay)
    assert stored["ip"] is None and stored["user_agent"] is None and stored["verdict"] == "attached"
    ledger_row = row(relay)
    assert AGENT not in json.dumps(ledger_row) and "127.0.0.1" not in json.dumps(ledger_row)


def test_a_post_after_the_send_keeps_no_ip_or_agent(start, meta):
    relay = start()                                        # BRIDGE_WAIT=0: the webhook's send does not wait
    webhook(relay)
    relay.drain()
    post(relay)
    relay.drain()
    [data] = user_data(meta)
    assert "fbp" not in data
    assert bridge_rows(relay) == []                        # not kept at all: it can no longer count
    [entry] = httpx.get(f"{relay.url}/status", headers={"Authorization": f"Bearer {ADMIN}"}).json()["shops"]
    assert entry["bridge"]["after"] == 1


def test_a_post_after_the_order_expired_is_as_late_as_one_after_the_send(start, meta, clock):
    """``expired`` is in ``relay.core.binding.FINAL``, the one list of decided states the bridge and the send path
    read: a post that comes after the order left Meta's window is counted as after the send and not kept, and
    nothing sends the order with it (the cron's pass claims no expired row, a replay refuses it)."""
    relay = start()
    meta.script.append(graph_error(500, 2, "Service temporarily unavailable", transient=True))
    webhook(relay)
    relay.drain()
    assert row(relay)["state"] == "retry"
    clock.advance(7 * 86400)
    server_pass(relay)                                     # the pass's start expires what left Meta's window
    assert row(relay)["state"] == "expired"
    assert post(relay).status_code == 204
    relay.drain()
    assert bridge_rows(relay) == []
    [entry] = httpx.get(f"{relay.url}/status", headers={"Authorization": f"Bearer {ADMIN}"}).json()["shops"]
    assert (entry["bridge"]["after"], entry["bridge"].get("rejected", 0)) == (1, 0)   # not "late": decided
    replayed = httpx.post(f"{relay.url}/orders/replay?shop=vik", json={"number": NUMBER},
                          headers={"Authorization": f"Bearer {ADMIN}"})
    relay.drain()
    server_pass(relay)
    assert replayed.json()["requeued"] == 0 and row(relay)["state"] == "expired"
    assert len(meta.event_posts) == 1, "only the send that failed before the order expired"


# --- consent ------------------------------------------------------------------------------------


def test_required_consent_granted_is_sent(start, meta):
    relay = start(VIK_CONSENT_MODE="required")
    post(relay, consent="granted")
    webhook(relay)
    relay.drain()
    assert len(meta.event_posts) == 1
    assert (row(relay)["consent"], row(relay)["consent_source"]) == ("send", "granted")


def test_required_consent_denied_is_skipped_and_never_sent_also_by_backfill_and_replay(start, meta, lightspeed,
                                                                                       clock):
    relay = start(VIK_CONSENT_MODE="required")
    post(relay, consent="denied", fbp=None, fbc=None)
    webhook(relay)
    relay.drain()
    assert meta.event_posts == []
    stored = row(relay)
    assert (stored["state"], stored["consent"], stored["consent_source"]) == ("skipped", "skip", "denied")
    assert "declined" in stored["last_error"]
    # the listing finds the order again (a missed webhook, `relay backfill`) and the row is due once more:
    # the send path decides again, and skips again
    lightspeed.orders = [json.loads(order_body(updatedAt="2025-11-18T22:00:00+01:00"))["order"]]
    clock.advance(60)
    server_pass_listing(relay)
    assert row(relay)["updated_at"] > stored["updated_at"] and row(relay)["state"] == "skipped"
    relay.call(relay.relay.db.run("UPDATE outbox SET state = 'due', next_attempt_at = 0 WHERE order_id = ?",
                                  (ORDER_ID,)))
    sweep(relay)
    assert meta.event_posts == [] and row(relay)["state"] == "skipped"
    # a replay (POST /orders/replay) refuses it
    answer = httpx.post(f"{relay.url}/orders/replay?shop=vik", json={"number": NUMBER},
                        headers={"Authorization": f"Bearer {ADMIN}"})
    relay.drain()
    assert answer.status_code == 200 and answer.json()["requeued"] == 0
    assert meta.event_posts == [] and row(relay)["state"] == "skipped"
    logged = [json.loads(line) for f in Path(relay.relay.blobs.root).rglob("*.ndjson")
              for line in f.read_text().splitlines()]
    assert any(entry.get("consent") == "skip" and entry.get("consent_source") == "denied" for entry in logged)


def server_pass_listing(relay: ServerThread) -> None:
    from relay.jobs import cron

    relay.call(cron.run_pass(relay.relay.runtime()))


@pytest.mark.parametrize(("unknown", "sent"), [("skip", 0), ("send", 1)])
def test_required_consent_without_a_choice_follows_consent_unknown(start, meta, unknown, sent):
    relay = start(VIK_CONSENT_MODE="required", VIK_CONSENT_UNKNOWN=unknown)
    post(relay, consent="unknown")
    webhook(relay)
    relay.drain()
    assert len(meta.event_posts) == sent
    assert row(relay)["consent_source"] == "unknown"


def test_required_consent_with_no_post_at_all_follows_consent_unknown(start, meta):
    relay = start(VIK_CONSENT_MODE="required", VIK_CONSENT_UNKNOWN="skip")
    webhook(relay)
    relay.drain()
    assert meta.event_posts == []
    assert (row(relay)["state"], row(relay)["consent_source"]) == ("skipped", "none")


def test_ldu_marks_every_event(start, meta):
    relay = start(VIK_LDU="1")
    webhook(relay)
    relay.drain()
    event = meta.event_posts[0].json()["data"][0]
    assert event["data_processing_options"] == ["LDU"]
    assert (event["data_processing_options_country"], event["data_processing_options_state"]) == (0, 0)


def test_the_paid_fixtures_last_name_goes_in_both_forms(start, meta):
    relay = start()
    webhook(relay)
    relay.drain()
    [data] = user_data(meta)
    assert data["ln"] == [sha256("vandenbroek"), sha256("van den broek")]


# --- operator side ------------------------------------------------------------------------------


def test_status_and_dashboard_show_the_shops_bridge_coverage(start, meta, clock):
    relay = start()
    post(relay)                                                       # ORD04217: fbp, fbc, granted
    webhook(relay)
    relay.drain()
    other = order_body(id=384271666, number="ORD04218")               # paid too, but no thank-you post
    webhook(relay, other)
    relay.drain()
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    [entry] = httpx.get(f"{relay.url}/status", headers=bearer).json()["shops"]
    figures = entry["bridge"]
    assert {k: figures[k] for k in ("paid", "bridged", "with_fbc", "with_fbp", "granted", "denied", "unknown")} == \
        {"paid": 2, "bridged": 1, "with_fbc": 1, "with_fbp": 1, "granted": 1, "denied": 0, "unknown": 0}
    assert figures["share"]["bridged"] == 0.5
    page = httpx.get(f"{relay.url}/dashboard", headers=bearer).text
    assert "Thank-you script (of 2 paid orders, 7 days)" in page
    assert "<td>with fbc (click id)</td><td class=\"n\">1</td><td class=\"n\">50%</td>" in page


def test_relay_bridge_snippet_prints_the_tag_and_where_it_goes(meta, lightspeed, tmp_path, capsys):
    from relay_tools.cli import main

    env_file = tmp_path / ".env.local"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in shop_env(meta, lightspeed).items()))
    assert main(["bridge", "snippet", "--shop", "vik", "--url", "https://relay.example.workers.dev/",
                 "--env-file", str(env_file)]) == 0
    out = capsys.readouterr().out
    assert ('<script async src="https://relay.example.workers.dev/bridge.js?shop=vik" '
            'data-order="{{ order.information.number }}" data-value="{{ order.information.price_incl }}">'
            '</script>') in out
    assert "Settings > Web extras > Tracking code" in out and "VIK_BRIDGE_WAIT=120" in out
    assert main(["bridge", "snippet", "--shop", "vik", "--browser-purchase", "--env-file", str(env_file)]) == 0
    out = capsys.readouterr().out
    assert 'data-event-id="purchase_{{ order.information.number }}"' in out and "<your-worker>" in out
    assert main(["bridge", "snippet", "--shop", "nosuch", "--env-file", str(env_file)]) == 2


def test_the_served_script_is_javascript_without_eval(start):
    relay = start()
    answer = httpx.get(f"{relay.url}/bridge.js?shop=vik")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/javascript")
    assert "max-age" in answer.headers["cache-control"]
    assert "eval(" not in answer.text and "new Function" not in answer.text
    assert httpx.get(f"{relay.url}/bridge.js?shop=nosuch").status_code == 404


def test_an_expired_orders_posts_forget_the_address_and_browser(start, meta, clock):
    """An order that leaves Meta's window is never sent, so no send clears its posts: the pass that expires it
    does, as it does for the order's own row."""
    relay = start()
    assert post(relay).status_code == 204                 # before the webhook: kept, pending
    meta.script.append(graph_error(500, 2, "Service temporarily unavailable", transient=True))
    webhook(relay)
    relay.drain()
    assert row(relay)["state"] == "retry"
    [kept] = bridge_rows(relay)
    assert kept["ip"] and kept["user_agent"] == AGENT
    clock.advance(7 * 86400)
    server_pass(relay)
    assert row(relay)["state"] == "expired"
    [kept] = bridge_rows(relay)
    assert (kept["ip"], kept["user_agent"]) == (None, None)
