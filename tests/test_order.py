"""Lightspeed orders parsed into typed values: Decimal money, aware times, false/"" as absent."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from conftest import FIXTURES, PAID_RAW
from relay.core import capi
from relay.core.config import load_shop
from relay.core.errors import PayloadError
from relay.core.order import parse_order, parse_webhook

MISSING = (FIXTURES / "lightspeed" / "webhook-order-paid-missing-optional.json").read_bytes()
SHOP = load_shop({"VIK_LIGHTSPEED_API_KEY": "k", "VIK_LIGHTSPEED_API_SECRET": "s", "VIK_LIGHTSPEED_SHOP_ID": "1",
                  "VIK_META_ACCESS_TOKEN": "t", "VIK_META_PIXEL_ID": "2"}, "vik")


def test_paid_fixture():
    order = parse_webhook(PAID_RAW)
    assert (order.id, order.number, order.payment_status, order.is_paid) == (384271665, "ORD04217", "paid", True)
    assert order.created_at.utcoffset() == timedelta(hours=1)
    assert order.price_incl == Decimal("140.4") and isinstance(order.price_incl, Decimal)
    assert order.user_agent.startswith("Mozilla/5.0 (iPhone")   # the raw body's \/ escapes are undone
    assert (order.firstname, order.middlename, order.lastname) == ("Mariëlle", "van den", "Broek")
    assert order.billing.country == "nl" and order.billing.zipcode == "1015 KK"
    assert order.customer_id == 226104587
    assert [(line.content_id, line.quantity, line.item_price) for line in order.lines] == [
        ("118903477", 2, Decimal("40.50")), ("118903602", 1, Decimal("31.50")), ("118904015", 3, Decimal("7.65"))]


def test_false_and_empty_strings_are_absent():
    order = parse_webhook(MISSING)
    assert order.phone is None and order.mobile is None
    assert order.birth_date is None and order.gender is None
    assert order.lines is None, "no embedded products: the sender fetches orders/{id}/products.json"
    assert order.billing.country == "be"


def test_event_without_optional_data_has_no_empty_keys():
    event = capi.build_event(parse_webhook(MISSING), SHOP)
    assert "ph" not in event["user_data"] and "db" not in event["user_data"] and "ge" not in event["user_data"]
    assert all(value for value in event["user_data"].values())
    assert "contents" not in event["custom_data"]


def test_event_time_is_utc_epoch_of_created_at():
    assert capi.event_time(parse_webhook(PAID_RAW)) == 1763498829


def test_money_to_two_decimals_without_float_drift():
    data = json.loads(PAID_RAW)["order"]
    data["priceIncl"] = 0.1 + 0.2          # 0.30000000000000004 as written by a sloppy encoder
    assert capi.build_event(parse_order(data), SHOP)["custom_data"]["value"] == 0.3
    assert capi.money(Decimal("10.005")) == 10.01       # half up, as shops round prices


@pytest.mark.parametrize("change, fragment", [
    ({"id": "384271665"}, '"id"'), ({"id": False}, '"id"'), ({"number": ""}, '"number"'),
    ({"createdAt": "2025-11-18 21:47:09"}, "createdAt"), ({"createdAt": False}, "createdAt"),
    ({"priceIncl": "abc"}, "priceIncl"), ({"priceIncl": None}, "priceIncl"),
])
def test_unusable_orders_say_which_field(change, fragment):
    data = json.loads(PAID_RAW)["order"]
    data.update(change)
    with pytest.raises(PayloadError, match=fragment):
        parse_order(data)


def test_event_id_template_is_the_same_on_every_path():
    order = parse_webhook(PAID_RAW)
    assert capi.event_id(SHOP, order) == "purchase_ORD04217"
    assert capi.build_event(order, SHOP)["event_id"] == capi.build_event(parse_webhook(PAID_RAW), SHOP)["event_id"]
