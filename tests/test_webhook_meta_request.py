"""The exact Conversions API request the shared paid fixture becomes: URL, token placement, every field."""

from __future__ import annotations

import httpx

from conftest import PAID_HEADERS, PAID_RAW, PAID_USER_DATA, PIXEL, TOKEN

EXPECTED_EVENT = {
    "event_name": "Purchase",
    "event_time": 1763498829,                       # 2025-11-18T21:47:09+01:00
    "event_id": "purchase_ORD04217",
    "action_source": "website",
    "event_source_url": "https://www.vikginchoice.example/checkout/thankyou/",
    "user_data": PAID_USER_DATA,
    "custom_data": {
        "value": 140.4,
        "currency": "EUR",
        "order_id": "ORD04217",
        "content_type": "product",
        "contents": [
            {"id": "118903477", "quantity": 2, "item_price": 40.5},
            {"id": "118903602", "quantity": 1, "item_price": 31.5},
            {"id": "118904015", "quantity": 3, "item_price": 7.65},
        ],
    },
}


def test_paid_fixture_becomes_this_exact_meta_request(relay, meta, lightspeed):
    answer = httpx.post(f"{relay.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])
    relay.drain()

    assert answer.status_code == 200
    assert answer.json() == {"status": "accepted", "shop": "vik", "order_id": 384271665,
                             "event_id": "purchase_ORD04217"}
    [post] = meta.event_posts
    assert post.method == "POST"
    assert post.path == f"/v26.0/{PIXEL}/events"
    assert post.query == {}, "the access token must not travel in the URL, where logs keep it"
    assert post.headers["content-type"] == "application/json"
    body = post.json()
    assert set(body) == {"data", "access_token"}
    assert body["access_token"] == TOKEN
    assert body["data"] == [EXPECTED_EVENT]
    # the currency came from the shop's shop.json, with the shop's own API key
    assert [r.path for r in lightspeed.requests] == ["/nl/shop.json"]


def test_test_event_code_is_sent_beside_data_when_configured(env, tmp_path, log_root, clock, meta):
    from relay_tools.server import LocalRelay, ServerThread

    env["VIK_META_TEST_EVENT_CODE"] = "TEST12345"
    server = ServerThread(LocalRelay(env, tmp_path / "r.db", log_root / "test-code", clock=clock,
                                     sweep_interval=None)).start()
    try:
        httpx.post(f"{server.url}/?shop=vik", content=PAID_RAW, headers=PAID_HEADERS["headers"])
        server.drain()
    finally:
        server.stop()
    [post] = meta.event_posts
    assert post.json()["test_event_code"] == "TEST12345"


def test_currency_is_asked_once_then_cached(relay, meta, lightspeed, clock):
    from conftest import order_body, signed_headers

    for number, order_id in (("ORD1", 1001), ("ORD2", 1002)):
        body = order_body(id=order_id, number=number)
        assert httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body)).status_code == 200
        relay.drain()
    assert len(meta.event_posts) == 2
    assert [r.path for r in lightspeed.requests] == ["/nl/shop.json"]
