"""Net revenue per shop: what Meta confirmed, less orders cancelled after they were sent."""

from __future__ import annotations

import httpx
import pytest

from conftest import order_body, shop_env, signed_headers

ADMIN = "admin-token-for-revenue-tests-7a2b4c"


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN)


def test_status_shows_confirmed_and_net_revenue_by_currency(relay, meta, clock):
    for n, paid in enumerate(("paid", "paid", "not_paid")):
        body = order_body(id=384271800 + n, number=f"ORD0600{n}", paymentStatus=paid, priceIncl=100.0 + n)
        httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body))
    relay.drain()
    answer = httpx.get(f"{relay.url}/status", headers={"Authorization": f"Bearer {ADMIN}"})
    money = answer.json()["shops"][0]["revenue"]
    assert money["7d"] == [{"currency": "EUR", "confirmed_orders": 2, "confirmed": 201.0, "cancelled_orders": 0,
                            "cancelled": 0.0, "net": 201.0}]
    assert money["30d"] == money["7d"]
    assert len(meta.events()) == 2
