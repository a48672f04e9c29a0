"""The HTTP contract of docs/ARCHITECTURE.md, over real HTTP on loopback, with what was stored and sent."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from conftest import PAID_HEADERS, PAID_RAW, SECRET, order_body, signed_headers


def post(relay, body: bytes, headers: dict[str, str], shop: str | None = "vik") -> httpx.Response:
    url = f"{relay.url}/" + (f"?shop={shop}" if shop is not None else "")
    answer = httpx.post(url, content=body, headers=headers)
    relay.drain()
    return answer


def ledger_rows(relay) -> list[dict]:
    return relay.call(relay.relay.runtime().ledger.rows())


def test_health(relay):
    assert httpx.get(f"{relay.url}/health").status_code == 200


def test_get_on_root_is_405(relay, meta):
    answer = httpx.get(f"{relay.url}/?shop=vik")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


def test_unknown_route_is_404(relay):
    assert httpx.post(f"{relay.url}/debug-env").status_code == 404


def test_redelivery_of_the_same_bytes_is_a_duplicate_and_sends_nothing(relay, meta):
    first = post(relay, PAID_RAW, PAID_HEADERS["headers"])
    second = post(relay, PAID_RAW, PAID_HEADERS["headers"])
    assert first.json()["status"] == "accepted"
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert len(meta.event_posts) == 1


def test_created_then_paid_for_the_same_order_is_one_meta_request(relay, meta):
    created = order_body(updatedAt="2025-11-18T21:47:09+01:00")
    paid = order_body(updatedAt="2025-11-18T21:48:31+01:00")
    assert post(relay, created, signed_headers(created, **{"X-Event": "orders/created"})).json()["status"] == \
        "accepted"
    assert post(relay, paid, signed_headers(paid)).json()["status"] == "duplicate"
    assert len(meta.event_posts) == 1


@pytest.mark.parametrize("signature", [
    None,                                        # missing
    "",                                          # empty
    "7398594e05b5ea9baa7c2e758b22efcc",          # wrong in the last character
    "7398594e05b5ea9baa7c2e758b22efc",           # one character short
    "zz98594e05b5ea9baa7c2e758b22efcb",          # not hex
    "sha256=7398594e05b5ea9baa7c2e758b22efcb",   # another scheme's format
    "7398594e05b5ea9baa7c2e758b22efcb,extra",
])
def test_bad_signature_is_401_and_nothing_is_stored_or_sent(relay, meta, lightspeed, signature):
    headers = dict(PAID_HEADERS["headers"])
    headers.pop("X-Signature")
    if signature is not None:
        headers["X-Signature"] = signature
    answer = post(relay, PAID_RAW, headers)
    assert answer.status_code == 401
    assert "X-Signature" in answer.json()["error"]
    assert ledger_rows(relay) == []
    assert meta.requests == [] and lightspeed.requests == []


def test_signature_of_a_reserialised_body_fails(relay, meta):
    reserialised = json.dumps(json.loads(PAID_RAW), separators=(",", ":")).encode()
    assert reserialised != PAID_RAW
    assert post(relay, reserialised, PAID_HEADERS["headers"]).status_code == 401
    assert meta.requests == []


def test_signature_is_case_insensitive_hex(relay, meta):
    headers = dict(PAID_HEADERS["headers"], **{"X-Signature": PAID_HEADERS["headers"]["X-Signature"].upper()})
    assert post(relay, PAID_RAW, headers).status_code == 200


def test_another_shops_secret_does_not_verify(relay, env, meta):
    headers = signed_headers(PAID_RAW, secret="the-other-shops-secret")
    assert post(relay, PAID_RAW, headers).status_code == 401
    assert meta.requests == []


def test_shop_id_header_must_match_the_shop(relay, meta):
    headers = signed_headers(PAID_RAW, **{"X-Shop-Id": "999999"})
    answer = post(relay, PAID_RAW, headers)
    assert answer.status_code == 401
    assert "VIK_LIGHTSPEED_SHOP_ID" in answer.json()["error"]
    assert meta.requests == []


@pytest.mark.parametrize("shop", ["nosuchshop", None, "vik;drop", "../vik", "VIK_META"])
def test_unknown_shop_is_404(relay, meta, shop):
    answer = post(relay, PAID_RAW, PAID_HEADERS["headers"], shop=shop)
    assert answer.status_code == 404
    assert meta.requests == []


def test_half_configured_shop_is_500_naming_the_missing_variable_not_values(relay, meta):
    relay.relay.env.update({"HALF_LIGHTSPEED_API_KEY": "k", "HALF_LIGHTSPEED_API_SECRET": SECRET,
                            "HALF_LIGHTSPEED_SHOP_ID": "318842", "HALF_META_ACCESS_TOKEN": "EAAhalf-token"})
    answer = post(relay, PAID_RAW, PAID_HEADERS["headers"], shop="half")
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert "HALF_META_PIXEL_ID" in error
    assert "EAAhalf-token" not in error and SECRET not in error
    assert meta.requests == []


@pytest.mark.parametrize("body, fragment", [
    (b"not json at all", "not JSON"),
    (b'{"customer": {"id": 1}}', '"order"'),
    (b'{"order": "384271665"}', '"order"'),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b'{"order": {"id": 5, "createdAt": "2025-11-18T21:47:09+01:00"}}', '"number"'),
])
def test_signed_but_unusable_body_is_400_and_nothing_is_sent(relay, meta, body, fragment):
    answer = post(relay, body, signed_headers(body))
    assert answer.status_code == 400
    assert fragment in answer.json()["error"]
    assert ledger_rows(relay) == [] and meta.requests == []


def test_oversized_body_is_413(relay, meta):
    body = b"{" + b" " * (2 * 1024 * 1024 + 10) + b"}"
    answer = post(relay, body, signed_headers(body))
    assert answer.status_code == 413
    assert ledger_rows(relay) == [] and meta.requests == []


def test_unpaid_waits_then_is_sent_once_when_paid(relay, meta):
    unpaid = order_body(paymentStatus="not_paid", status="processing_awaiting_payment",
                        updatedAt="2025-11-18T21:47:09+01:00")
    answer = post(relay, unpaid, signed_headers(unpaid))
    assert answer.json()["status"] == "ignored"
    assert "not paid" in answer.json()["reason"]
    assert [r["state"] for r in ledger_rows(relay)] == ["waiting"]
    assert meta.requests == []

    paid = order_body(updatedAt="2025-11-19T09:00:00+01:00")
    assert post(relay, paid, signed_headers(paid)).json()["status"] == "accepted"
    assert post(relay, paid, signed_headers(paid)).json()["status"] == "duplicate"
    assert len(meta.event_posts) == 1
    assert [r["state"] for r in ledger_rows(relay)] == ["sent"]
    # event_time stays the order's creation time, whatever day it was paid
    assert meta.events()[0]["event_time"] == 1763498829


def test_cancelled_order_is_never_sent(relay, meta):
    cancelled = order_body(paymentStatus="cancelled", status="cancelled")
    answer = post(relay, cancelled, signed_headers(cancelled))
    assert answer.json()["status"] == "ignored"
    assert "cancelled" in answer.json()["reason"]
    assert [r["state"] for r in ledger_rows(relay)] == ["skipped"]
    assert meta.requests == []


def test_unpaid_then_cancelled_is_never_sent(relay, meta):
    unpaid = order_body(paymentStatus="not_paid", updatedAt="2025-11-18T21:47:09+01:00")
    cancelled = order_body(paymentStatus="cancelled", status="cancelled", updatedAt="2025-11-18T22:00:00+01:00")
    post(relay, unpaid, signed_headers(unpaid))
    post(relay, cancelled, signed_headers(cancelled))
    assert [r["state"] for r in ledger_rows(relay)] == ["skipped"]
    assert meta.requests == []


def test_a_stale_redelivery_cannot_undo_a_cancellation(relay, meta):
    cancelled = order_body(paymentStatus="cancelled", status="cancelled", updatedAt="2025-11-18T23:00:00+01:00")
    older_paid = order_body(updatedAt="2025-11-18T21:48:31+01:00")
    post(relay, cancelled, signed_headers(cancelled))
    assert post(relay, older_paid, signed_headers(older_paid)).json()["status"] == "duplicate"
    assert meta.requests == []


def test_api_order_without_a_browser_is_not_a_website_event(relay, meta):
    body = order_body(userAgent="WebshopappApi", remoteIp="192.0.2.10", channel="api")
    post(relay, body, signed_headers(body))
    [event] = meta.events()
    assert event["action_source"] == "other"
    assert "client_ip_address" not in event["user_data"]
    assert "client_user_agent" not in event["user_data"]


def test_client_ip_and_agent_come_from_the_order_not_the_webhook_request(relay, meta):
    headers = signed_headers(PAID_RAW, **{"User-Agent": "Lightspeed-Webhooks/1.0", "X-Forwarded-For": "198.51.100.7"})
    post(relay, PAID_RAW, headers)
    [event] = meta.events()
    assert event["user_data"]["client_ip_address"] == "2001:db8:3c4d:15::1a2f"
    assert event["user_data"]["client_user_agent"].startswith("Mozilla/5.0 (iPhone")


def test_ledger_keeps_hashes_and_drops_ip_and_agent_once_sent(relay, meta):
    post(relay, PAID_RAW, PAID_HEADERS["headers"])
    [row] = ledger_rows(relay)
    payload = json.loads(row["payload"])
    assert row["state"] == "sent" and row["last_fbtrace_id"] == "FakeTrace000001"
    assert payload["user_data"]["em"] == hashlib.sha256(b"marielle.vandenbroek@example.nl").hexdigest()
    assert "client_ip_address" not in payload["user_data"]
    assert "client_user_agent" not in payload["user_data"]


def test_paid_order_older_than_metas_window_is_stored_expired_and_never_sent(relay, meta, clock):
    clock.advance(7 * 86400)
    answer = post(relay, PAID_RAW, PAID_HEADERS["headers"])
    assert answer.json()["status"] == "ignored"
    assert "7-day" in answer.json()["reason"]
    [stored] = ledger_rows(relay)
    assert stored["state"] == "expired" and "7-day" in stored["last_error"]
    assert meta.requests == []
