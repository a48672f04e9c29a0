"""The stored row and Meta payload of every fixture order, byte for byte, against a golden file.

Issue 19 made the webhook's parsing and event building cheaper; what it stores and sends must not move by a
byte. ``tests/fixtures/golden/rows.json`` was written by the code before that work (``python
tests/test_row_golden.py --write`` rewrites it, for a change that means to alter rows). Every order of
the shared fixtures (both webhook bodies, the ``orders.json`` page) goes through ``parse_order`` and
``intake.row_for`` under three shop configurations, with and without its lines from
``orders/{id}/products.json``, plus hostile and odd variants of the paid order (numbers where text belongs,
exponents, surrogates, other IP and time spellings, refused values): the parsed ``Order`` (its repr: every
``Decimal`` digit), each ``NewRow`` field, the OrderCancelled row, and the refusal message where one is refused.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from relay.core import capi, lightspeed
from relay.core.config import load_shop
from relay.core.errors import PayloadError
from relay.core.order import parse_order, parse_webhook
from relay.core.ports import HttpResponse
from relay.jobs import intake

FIXTURES = Path(__file__).parent / "fixtures"
LIGHTSPEED = FIXTURES / "lightspeed"
GOLDEN = FIXTURES / "golden" / "rows.json"
NOW = 1763498829 + 300            # five minutes after the paid fixture's createdAt (tests/conftest.py FIXTURE_NOW)

_BASE = {"LIGHTSPEED_API_KEY": "k", "LIGHTSPEED_API_SECRET": "s", "LIGHTSPEED_SHOP_ID": "318842",
         "META_ACCESS_TOKEN": "t", "META_PIXEL_ID": "987654321012345"}
SHOPS = {
    "plain": {},
    "url": {"SHOP_URL": "https://vik.example"},
    "all": {"SHOP_URL": "https://vik.example/", "NET_REVENUE": "1", "SEND_CANCELLATIONS": "1",
            "EVENT_ID_TEMPLATE": "{shop}-{id}-{number}"},
}


def _shop(name: str) -> Any:
    env = {f"VIK_{k}": v for k, v in {**_BASE, **SHOPS[name]}.items()}
    return load_shop(env, "vik")


def _paid() -> dict[str, Any]:
    order: dict[str, Any] = json.loads((LIGHTSPEED / "webhook-order-paid.json").read_text())["order"]
    return order


def _variant(**fields: Any) -> bytes:
    order = _paid()
    for key, value in fields.items():
        if value is _DROP:
            order.pop(key, None)
        else:
            order[key] = value
    return json.dumps({"order": order}).encode()


_DROP = object()
_FIXTURE_BODIES = ("paid.raw", "paid.pretty", "missing-optional")


def _raw_variants() -> dict[str, bytes]:
    """Webhook bodies as bytes: the fixtures, and odd spellings whose parse must not change."""
    paid_raw = (LIGHTSPEED / "webhook-order-paid.raw.json").read_bytes()
    text = paid_raw.decode()
    cases = {
        "paid.raw": paid_raw,
        "paid.pretty": (LIGHTSPEED / "webhook-order-paid.json").read_bytes(),
        "missing-optional": (LIGHTSPEED / "webhook-order-paid-missing-optional.json").read_bytes(),
        # numbers spelled as the JSON grammar allows, where text and money belong
        "number-exponent": text.replace('"number":"ORD04217"', '"number":1e5').encode(),
        "number-float": text.replace('"number":"ORD04217"', '"number":4217.50').encode(),
        "number-tiny": text.replace('"number":"ORD04217"', '"number":0.00000001').encode(),
        "number-int": text.replace('"number":"ORD04217"', '"number":4217').encode(),
        "phone-float": text.replace('"phone":"06-12345678"', '"phone":612345678.0').encode(),
        "email-number": text.replace('"email":"marielle.vandenbroek@example.nl"', '"email":1E3').encode(),
        "city-negative-zero": text.replace('"addressBillingCity":"Amsterdam"', '"addressBillingCity":-0.0').encode(),
        "price-exponent": text.replace('"priceIncl":140.4,', '"priceIncl":1.404E2,').encode(),
        "price-string": text.replace('"priceIncl":140.4,', '"priceIncl":"140.40",').encode(),
        "price-int": text.replace('"priceIncl":140.4,', '"priceIncl":140,').encode(),
        "price-many-digits": text.replace('"priceIncl":140.4,', '"priceIncl":140.40000000000000000001,').encode(),
        "price-huge": text.replace('"priceIncl":140.4,', '"priceIncl":1e12,').encode(),
        "price-negative": text.replace('"priceIncl":140.4,', '"priceIncl":-1.5,').encode(),
        "price-bool": text.replace('"priceIncl":140.4,', '"priceIncl":true,').encode(),
        "price-missing": text.replace('"priceIncl":140.4,', "").encode(),
        "price-nan-text": text.replace('"priceIncl":140.4,', '"priceIncl":"NaN",').encode(),
        "price-infinity-text": text.replace('"priceIncl":140.4,', '"priceIncl":"Infinity",').encode(),
        "price-object": text.replace('"priceIncl":140.4,', '"priceIncl":{"a":1},').encode(),
        "deep": b'{"order":' + b'[' * 40 + b']' * 40 + b"}",
        "deep-in-string": _variant(comment="[" * 50 + "{" * 50),
        "deep-33": b'{"order":{"x":' + b'[' * 31 + b']' * 31 + b', "id": 1}}',
        "deep-34": b'{"order":{"x":' + b'[' * 32 + b']' * 32 + b', "id": 1}}',
        "deep-alternating": b'{"order":{"x":' + b'[{"a":' * 20 + b'1' + b'}]' * 20 + b', "id": 1}}',
        "deep-unbalanced": b'{"order":{"x":' + b'[' * 40 + b"}}",
        "deep-in-escaped-string": b'{"order":{"x":"\\\\' + b'[' * 40 + b'\\"' + b'{' * 40 + b'", "id": 1}}',
        "not-json": b'{"order": {',
        "not-utf8": b'{"order": {"id": 1, "number": "\xff"}}',
        "no-order": b'{"orders": []}',
        "long-int": b'{"order": {"id": ' + b"9" * 5000 + b"}}",
        "escaped-quotes": _variant(comment='he said "[[[" and \\"{"'),
    }
    variants = {
        "surrogate-name": {"firstname": "Mari\ud800lle", "lastname": "\udfffBroek"},
        "unicode-space-name": {"firstname": "\u00a0Mariëlle\u2003", "lastname": " Broek "},
        "nonascii-email": {"email": "Mariëlle@Exämple.nl"},
        "ipv4": {"remoteIp": "203.0.113.9"},
        "ipv4-padded": {"remoteIp": " 203.0.113.9 "},
        "ipv6-upper": {"remoteIp": "2001:DB8:0:0:0:0:0:1"},
        "ipv4-mapped": {"remoteIp": "::ffff:203.0.113.9"},
        "ipv6-scoped": {"remoteIp": "fe80::1%eth0"},
        "ip-garbage": {"remoteIp": "not an ip"},
        "ip-false": {"remoteIp": False},
        "ip-number": {"remoteIp": 3405803785},
        "api-agent": {"userAgent": "WebshopappApi/1.0"},
        "long-agent": {"userAgent": "x" * 1025},
        "created-z": {"createdAt": "2025-11-18T20:47:09Z"},
        "created-no-tz": {"createdAt": "2025-11-18T20:47:09"},
        "created-garbage": {"createdAt": "yesterday"},
        "created-future": {"createdAt": "2035-01-01T00:00:00+00:00"},
        "updated-future": {"updatedAt": "2035-01-01T00:00:00+00:00"},
        "updated-absent": {"updatedAt": _DROP},
        "created-old": {"createdAt": "2025-11-01T00:00:00+01:00"},
        "unpaid": {"paymentStatus": "not_paid"},
        "cancelled": {"status": "cancelled"},
        "payment-cancelled": {"paymentStatus": "cancelled"},
        "gender-male-word": {"gender": "Mijnheer"},
        "gender-false": {"gender": False},
        "birth-odd": {"birthDate": "23-04-1988"},
        "birth-false": {"birthDate": False},
        "middlename-real": {"middlename": "Anne"},
        "middlename-twice": {"middlename": "van den", "lastname": "van den Broek"},
        "no-customer": {"customer": False},
        "customer-id-bool": {"customer": {"resource": {"id": True}}},
        "id-zero": {"id": 0},
        "id-bool": {"id": True},
        "id-huge": {"id": 2**63},
        "number-long": {"number": "N" * 65},
        "number-empty": {"number": "  "},
        "number-list": {"number": ["ORD"]},
        "shipping-only": {"addressBillingCity": "", "addressBillingZipcode": False},
        "region-data": {"addressBillingRegion": "", "addressBillingRegionData": {"code": "NH", "name": "Noord"}},
        "country-missing": {"addressBillingCountry": False},
        "phones-differ": {"mobile": "+32 470 12 34 56"},
        "products-absent": {"products": False},
        "products-not-list": {"products": {"resource": {"embedded": {"a": 1}}}},
    }
    for name, fields in variants.items():
        cases[name] = _variant(**fields)
    lines = _paid()["products"]["resource"]["embedded"]
    odd_lines = copy.deepcopy(lines)
    odd_lines[0]["quantityOrdered"] = 0
    odd_lines[1]["priceIncl"] = -3
    odd_lines[2]["priceCost"] = False
    odd_lines[2]["priceExcl"] = "x"
    odd_lines.append({"quantityOrdered": True, "priceIncl": 1e-2, "product": {"resource": {"id": 5}},
                      "variant": False, "priceCost": 0.001, "priceExcl": 1E-2})
    odd_lines.append("not an object")
    cases["lines-odd"] = _variant(products={"resource": {"embedded": odd_lines[:-1]}})
    cases["lines-not-object"] = _variant(products={"resource": {"embedded": odd_lines}})
    return cases


def _row(row: Any) -> Any:
    if row is None:
        return None
    fields = asdict(row)
    fields["cancel_event"] = _row(row.cancel_event)
    return fields


def _outcome(order: Any, shops: tuple[str, ...] = tuple(SHOPS)) -> dict[str, Any]:
    out: dict[str, Any] = {"order": repr(order)}
    for name in shops:
        shop = _shop(name)
        try:
            row = intake.row_for(order, shop, NOW, "webhook", NOW + 60)
            out[name] = _row(row)
            if order.lines is None:
                lines = lightspeed.parse_order_products(
                    HttpResponse(200, {}, (LIGHTSPEED / "order-products.json").read_bytes()), shop)
                out[name + "+lines"] = capi.dumps(capi.with_lines(json.loads(row.payload), lines, shop.net_revenue))
        except PayloadError as exc:
            out[name] = f"refused: {exc}"
    return out


def outcomes() -> dict[str, Any]:
    """Every case's parsed order and rows (or refusal), as JSON-ready values."""
    result: dict[str, Any] = {}
    for name, body in _raw_variants().items():
        try:
            order = parse_webhook(body)
        except PayloadError as exc:
            result["webhook:" + name] = f"refused: {exc}"
            continue
        result["webhook:" + name] = _outcome(order, tuple(SHOPS) if name in _FIXTURE_BODIES else ("all",))
    page = json.loads((LIGHTSPEED / "orders-list-page.json").read_text())
    for index, item in enumerate(page["orders"]):
        result[f"listed:{index}"] = _outcome(parse_order(item))
    return result


def test_rows_and_payloads_match_the_golden_file() -> None:
    golden = json.loads(GOLDEN.read_text())
    now = json.loads(json.dumps(outcomes()))
    assert sorted(now) == sorted(golden)
    for case in golden:
        assert now[case] == golden[case], case


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_row_golden.py --write   (rewrites tests/fixtures/golden/rows.json)")
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(outcomes(), indent=1, sort_keys=True, ensure_ascii=False) + "\n")
