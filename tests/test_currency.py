"""The currency stampede: with an empty cache, a burst of webhooks for one shop makes one shop.json call."""

from __future__ import annotations

import concurrent.futures

import httpx

from conftest import order_body, signed_headers
from relay_tools.fakes import Reply

BURST = 40


def test_a_burst_of_webhooks_with_an_empty_currency_cache_fetches_shop_json_once(relay, meta, lightspeed, clock):
    # the one fetch is slow, so every other send of the burst starts while it is still under way
    lightspeed.script.append(Reply(200, {"shop": {"id": 318842, "currency": {"shortcode": "EUR", "symbol": "€"}}},
                                   dict(lightspeed.RATE_HEADERS), delay=1.0))

    def post(i: int) -> str:
        body = order_body(id=500_000 + i, number=f"B{i:03d}")
        return httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body)).json()["status"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(BURST)))
    relay.drain()
    assert answers == ["accepted"] * BURST
    # A send that waited longer than its patience for the fetch (a loaded machine) put its event back for a retry;
    # the next sweep sends it with the cached currency, so the promise is one fetch and every order sent once.
    clock.advance(3600)
    relay.call(relay.relay.sweep())
    shop_json = [r for r in lightspeed.requests if r.path.endswith("/shop.json")]
    assert len(shop_json) == 1
    rows = relay.call(relay.relay.runtime().ledger.rows("vik"))
    assert [r["state"] for r in rows] == ["sent"] * BURST, {r["last_error"] for r in rows if r["state"] != "sent"}
    assert {e["custom_data"]["currency"] for e in meta.events()} == {"EUR"}
    assert sorted(e["event_id"] for e in meta.events()) == sorted(f"purchase_B{i:03d}" for i in range(BURST))


def test_a_stale_currency_is_used_while_another_send_refreshes_it(relay, meta, lightspeed, clock):
    body = order_body(id=600_001, number="S1")
    httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body))
    relay.drain()
    clock.advance(2 * 86400)                            # the cached currency is two days old
    lightspeed.currency = "USD"
    lightspeed.script.append(Reply(200, {"shop": {"id": 318842, "currency": {"shortcode": "USD", "symbol": "$"}}},
                                   dict(lightspeed.RATE_HEADERS), delay=1.0))

    def post(i: int) -> None:
        body = order_body(id=600_100 + i, number=f"S{100 + i}",
                          createdAt="2025-11-20T21:47:09+01:00", updatedAt="2025-11-20T21:47:09+01:00")
        httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(10)))
    relay.drain()
    assert len([r for r in lightspeed.requests if r.path.endswith("/shop.json")]) == 2     # first fill, one refresh
    assert len(meta.events()) == 11
