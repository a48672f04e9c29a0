"""The webhook path through the pure core, printed as canonical JSON.

Run it under CPython and under Pyodide (``conformance/check.mjs`` does both): the two outputs must be
equal byte for byte. It covers what the Worker does for every webhook (signature check, parse,
normalization, SHA-256, the Purchase event, the ledger row, the exact bytes posted to Meta) and the
answers to broken inputs, whose error classes and messages must not differ either.

    uv run python conformance/core_events.py
"""

from __future__ import annotations

import sys
from typing import Any

import scenario

from relay.core import capi, normalize
from relay.core.config import load_settings, load_shop
from relay.core.errors import RelayError
from relay.core.order import parse_lines, parse_webhook
from relay.core.signature import verify
from relay.jobs import intake

# Inputs whose normalization leans on Unicode data, regular expressions and the generated phone table:
# where CPython and Pyodide could drift apart if either shipped different tables.
NORMALIZE_CASES: list[tuple[str, str, str | None]] = [
    ("em", "  Mariëlle.VanDenBroek@Example.NL ", None),
    ("em", "not an address", None),
    ("ph", "06-12 34 56 78", "nl"),
    ("ph", "+31 (0)20 123 4567", None),
    ("ph", "0032 470 12 34 56", "be"),
    ("ph", "0470/12.34.56", "be"),
    ("ph", "(212) 555-0123 ext. 4", "us"),
    ("ph", "12345", "nl"),
    ("fn", "Jean-Luc", None),
    ("fn", "ÇELİK", "tr"),
    ("fn", "Zoë", None),
    ("ln", "van den Broek", "nl"),
    ("ln", "O'Brien-Smith", "gb"),
    ("ln", "Straße", "de"),
    ("ct", "'s-Hertogenbosch", "nl"),
    ("ct", "Liège", "be"),
    ("ct", "Ｔｏｋｙｏ", "jp"),
    ("st", "Noord-Brabant", "nl"),
    ("st", "California", "us"),
    ("zp", "1012 AB", "nl"),
    ("zp", "B-2000", "be"),
    ("zp", "94103-1234", "us"),
    ("country", "Nederland", None),
    ("country", "BEL", None),
    ("ge", "Mevrouw", None),
    ("ge", "female", None),
    ("db", "1988-04-23", None),
    ("db", "04/23/1988", "us"),
    ("db", "23.04.1988", "de"),
]


def attempt(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:  # a difference in *which* error is raised is a finding too
        return scenario.error(exc)


def webhook(name: str, raw: bytes, headers: dict[str, str]) -> dict[str, Any]:
    env = scenario.shop_env()
    shop = load_shop(env, scenario.SHOP)
    settings = load_settings(env)
    verify(raw, headers.get("x-signature"), shop.lightspeed_secret)
    order = parse_webhook(raw)
    event = capi.build_event(order, shop)
    if order.lines is None:
        event = capi.with_lines(event, parse_lines(scenario.PRODUCTS))
    request = capi.events_request(shop, settings, [capi.with_currency(event, scenario.CURRENCY)])
    body = request.body or b""
    return {
        "order": order,
        "event": event,
        "ledger_row": intake.row_for(order, shop, scenario.NOW, "webhook"),
        "meta_request": {"method": request.method, "url": request.url, "headers": request.headers,
                         "timeout": request.timeout, "body": body.decode("utf-8"),
                         "body_sha256": normalize.sha256_hex(body.decode("utf-8"))},
    }


def refusals() -> dict[str, Any]:
    """Broken deliveries: each must fail the same way in both runtimes, with the same message."""
    raw, headers = scenario.WEBHOOKS["paid"]
    secret = scenario.SECRET
    tampered = raw.replace(b'"priceIncl":140.4', b'"priceIncl":1.4', 1)
    assert tampered != raw, "the paid fixture changed: update the tampering in conformance/core_events.py"
    cases = {
        "tampered body": lambda: verify(tampered, headers["x-signature"], secret),
        "wrong secret": lambda: verify(raw, headers["x-signature"], secret + "x"),
        "no signature": lambda: verify(raw, None, secret),
        "not hex": lambda: verify(raw, "z" * 32, secret),
        "not json": lambda: parse_webhook(b"{\"order\": "),
        "not utf-8": lambda: parse_webhook(b"\xff\xfe{}"),
        "no order": lambda: parse_webhook(b'{"customer": {}}'),
        "unknown shop": lambda: load_shop(scenario.shop_env(), "nope"),
        "half-configured": lambda: load_shop({"VIK_META_PIXEL_ID": "1"}, "vik"),
    }
    results: dict[str, Any] = {}
    for name, case in cases.items():
        try:
            case()
        except RelayError as exc:
            results[name] = scenario.error(exc)
        else:
            results[name] = "accepted (expected a RelayError)"
    return results


def render() -> str:
    return scenario.canonical({
        "webhooks": {name: webhook(name, raw, headers) for name, (raw, headers) in scenario.WEBHOOKS.items()},
        "refusals": refusals(),
        "normalize": [
            {"field": field, "value": value, "country": country,
             "normalized": attempt(normalize.normalize, field, value, country),
             "hashed": attempt(normalize.hash_field, field, value, country)}
            for field, value, country in NORMALIZE_CASES
        ],
    })


if __name__ == "__main__":
    sys.stdout.buffer.write(render().encode("utf-8"))
