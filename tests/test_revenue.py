"""Net revenue per shop: what Meta confirmed, less orders cancelled after they were sent."""

from __future__ import annotations

import httpx
import pytest

from conftest import order_body, shop_env, signed_headers
from relay_tools.server import LocalRelay, ServerThread

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
                            "cancelled": 0.0, "net": 201.0, "profit_orders": 0, "profit": 0.0}]
    assert money["profit_tracked"] is False
    assert money["30d"] == money["7d"]
    assert len(meta.events()) == 2


def test_with_net_revenue_on_the_dashboard_shows_the_profit_beside_the_value(meta, lightspeed, tmp_path, log_root,
                                                                           clock):
    """<SHOP>_NET_REVENUE=1: the profit Meta was told (net_revenue, 54.75 for the paid fixture; see
    tests/test_net_revenue.py for its arithmetic) beside the confirmed value, less an order cancelled after."""
    env = shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN, VIK_NET_REVENUE="1")
    server = ServerThread(LocalRelay(env, tmp_path / "p.db", log_root / tmp_path.name, clock=clock,
                                     rand=lambda: 0.5, sweep_interval=None)).start()
    try:
        for n in range(2):
            body = order_body(id=384271800 + n, number=f"ORD0700{n}")
            httpx.post(f"{server.url}/?shop=vik", content=body, headers=signed_headers(body))
        server.drain()
        bearer = {"Authorization": f"Bearer {ADMIN}"}
        money = httpx.get(f"{server.url}/status", headers=bearer).json()["shops"][0]["revenue"]
        assert money["profit_tracked"] is True
        [week] = money["7d"]
        assert (week["confirmed"], week["profit_orders"], week["profit"]) == (280.8, 2, 109.5)   # 2 × 54.75
        english = httpx.get(f"{server.url}/dashboard?lang=en", headers=bearer).text
        assert "€280.80 confirmed" in english and "€109.50 profit (net_revenue)" in english
        dutch = httpx.get(f"{server.url}/dashboard?lang=nl", headers=bearer).text
        assert "€109,50 winst (net_revenue)" in dutch
    finally:
        server.stop()


def test_without_net_revenue_the_dashboard_shows_no_profit(relay, meta):
    body = order_body()
    httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body))
    relay.drain()
    page = httpx.get(f"{relay.url}/dashboard?lang=en", headers={"Authorization": f"Bearer {ADMIN}"}).text
    assert "€140.40 confirmed" in page and "net_revenue" not in page
