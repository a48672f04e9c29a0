"""``<SHOP>_NET_REVENUE=1``: the order's profit as ``custom_data.net_revenue`` (Meta's value optimization for
profit), from the lines' cost prices, through the real webhook path to a loopback Meta; off by default."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from conftest import FIXTURES, PAID_RAW, shop_env, signed_headers
from relay.core import capi
from relay.core.config import load_shop
from relay.core.errors import ConfigError
from relay.core.order import parse_lines, parse_webhook
from relay.core.profit import net_revenue
from relay_tools.server import LocalRelay, ServerThread

ORDER = 384271665
PRODUCTS = json.loads((FIXTURES / "lightspeed" / "order-products.json").read_text())["orderProducts"]

# The paid fixture (ORD04217): three lines, prices without VAT after the WINTER10 discount, cost prices without VAT.
#   Fietstas Waterdicht 20L ×2   priceExcl 66.9421 − priceCost 34.20 = 32.7421
#   LED-verlichtingsset USB ×1   priceExcl 26.0331 − priceCost 13.30 = 12.7331
#   Bidon 750 ml ×3              priceExcl 18.9669 − priceCost  9.69 =  9.2769
#                                                              sum      54.7521  → 54.75
# Shipping (4.95 incl., 4.0909 excl.) and the 21% VAT (24.3669) are not in it; value stays priceIncl 140.40.
NET_REVENUE = 54.75
assert Decimal("66.9421") - Decimal("34.20") + Decimal("26.0331") - Decimal("13.30") + Decimal("18.9669") \
    - Decimal("9.69") == Decimal("54.7521")


def send(env: dict[str, str], tmp_path: Path, log_root: Path, clock, body: bytes = PAID_RAW) -> None:
    server = ServerThread(LocalRelay(env, tmp_path / "n.db", log_root / tmp_path.name, clock=clock,
                                     rand=lambda: 0.5, sweep_interval=None)).start()
    try:
        answer = httpx.post(f"{server.url}/?shop=vik", content=body, headers=signed_headers(body))
        assert answer.json()["status"] == "accepted"
        server.drain()
    finally:
        server.stop()


def test_the_paid_fixture_sends_its_profit_as_net_revenue(meta, lightspeed, tmp_path, log_root, clock):
    send(shop_env(meta, lightspeed, VIK_NET_REVENUE="1"), tmp_path, log_root, clock)
    [event] = meta.events()
    assert event["custom_data"]["net_revenue"] == NET_REVENUE
    assert event["custom_data"]["value"] == 140.4 and event["custom_data"]["currency"] == "EUR"


def test_without_the_variable_the_same_order_sends_no_net_revenue(meta, lightspeed, tmp_path, log_root, clock):
    send(shop_env(meta, lightspeed), tmp_path, log_root, clock)
    [event] = meta.events()
    assert "net_revenue" not in event["custom_data"]
    assert event["custom_data"]["value"] == 140.4


def test_lines_fetched_from_products_json_give_the_same_net_revenue(meta, lightspeed, tmp_path, log_root, clock):
    data = json.loads(PAID_RAW)
    del data["order"]["products"]["resource"]["embedded"]           # a listed order: lines come from the API
    lightspeed.products[ORDER] = PRODUCTS
    body = json.dumps(data, separators=(",", ":")).encode()
    send(shop_env(meta, lightspeed, VIK_NET_REVENUE="1"), tmp_path, log_root, clock, body)
    [event] = meta.events()
    assert event["custom_data"]["net_revenue"] == NET_REVENUE and len(event["custom_data"]["contents"]) == 3


def test_a_line_without_a_cost_price_means_no_net_revenue_for_the_order(meta, lightspeed, tmp_path, log_root,
                                                                        clock):
    data = json.loads(PAID_RAW)
    data["order"]["products"]["resource"]["embedded"][1]["priceCost"] = None
    body = json.dumps(data, separators=(",", ":")).encode()
    send(shop_env(meta, lightspeed, VIK_NET_REVENUE="1"), tmp_path, log_root, clock, body)
    [event] = meta.events()
    assert "net_revenue" not in event["custom_data"]          # 12.7331 + 32.7421 + 9.2769 would be too high
    assert event["custom_data"]["value"] == 140.4             # the Purchase itself goes as always


@pytest.mark.parametrize(("change", "why"), [
    ({"priceCost": None}, "null"),
    ({"priceCost": "n.v.t."}, "not a number"),
    ({"priceCost": 0}, "0 on a line sold for money: a cost price never entered"),
    ({"priceExcl": None}, "no price without VAT"),
])
def test_net_revenue_is_none_when_any_line_lacks_what_it_needs(change, why):
    lines = [dict(line) for line in PRODUCTS]
    lines[2].update(change)
    assert net_revenue(parse_lines(lines)) is None, why
    del lines[2]["priceCost"]
    assert net_revenue(parse_lines(lines)) is None, "missing"


def test_net_revenue_arithmetic_and_its_edges():
    assert net_revenue(parse_lines(PRODUCTS)) == Decimal("54.7521")
    free = dict(PRODUCTS[0], priceExcl=0, priceIncl=0, priceCost=0)           # a free gift costing nothing
    assert net_revenue(parse_lines([free, PRODUCTS[1]])) == Decimal("12.7331")
    below_cost = dict(PRODUCTS[0], priceCost=100)                            # sold below cost: not negative
    assert net_revenue(parse_lines([below_cost])) is None
    assert net_revenue(()) is None


def test_build_event_with_and_without_the_shop_setting():
    order = parse_webhook(PAID_RAW)
    env = {f"VIK_{k}": v for k, v in (("LIGHTSPEED_API_KEY", "k"), ("LIGHTSPEED_API_SECRET", "s"),
                                        ("LIGHTSPEED_SHOP_ID", "1"), ("META_ACCESS_TOKEN", "t"),
                                        ("META_PIXEL_ID", "2"))}
    on = capi.build_event(order, load_shop(env | {"VIK_NET_REVENUE": "1"}, "vik"))
    off = capi.build_event(order, load_shop(env, "vik"))
    assert on["custom_data"]["net_revenue"] == NET_REVENUE
    assert {k: v for k, v in on["custom_data"].items() if k != "net_revenue"} == off["custom_data"]
    with pytest.raises(ConfigError, match="VIK_NET_REVENUE must be 1"):
        load_shop(env | {"VIK_NET_REVENUE": "yes"}, "vik")
