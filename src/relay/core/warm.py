"""Work done once at import, so a Python Worker's memory snapshot already holds it.

Python Workers snapshot the interpreter after the top-level import and start every isolate from that
snapshot. Whatever the first webhook would do lazily (importing the modules it reaches, building the
normalization tables and compiled patterns, filling first-call caches) is done here instead, on a
made-up order that reaches every branch of the hot path: signature check, parsing with embedded
lines, normalizing and hashing each match key, building the event. Pure: no clock, no randomness
(the snapshot has no entropy), no I/O.
"""

from __future__ import annotations

import json

from relay.core import capi, match
from relay.core.config import load_shop
from relay.core.order import parse_webhook
from relay.core.signature import sign, verify

_SECRET = "warm-up-secret"
_ENV = {
    "WARM_LIGHTSPEED_API_KEY": "warm-up-key", "WARM_LIGHTSPEED_API_SECRET": _SECRET,
    "WARM_LIGHTSPEED_SHOP_ID": "1", "WARM_META_ACCESS_TOKEN": "warm-up-token", "WARM_META_PIXEL_ID": "1",
    "WARM_SHOP_URL": "https://warm.example.invalid",
}
_LINE = {"id": 1, "productTitle": "Warm-up", "variantTitle": "", "quantityOrdered": 2, "priceIncl": 10.0,
         "basePriceIncl": 5.0, "product": {"resource": {"id": 1}}, "variant": {"resource": {"id": 2}},
         "articleCode": "W1", "sku": "W1", "ean": ""}
_ORDER = {
    "id": 1, "number": "WARM1", "createdAt": "2025-01-01T10:00:00+01:00", "updatedAt": "2025-01-01T10:01:00+01:00",
    "status": "processing_awaiting_shipment", "paymentStatus": "paid", "priceIncl": 10.0,
    "remoteIp": "192.0.2.1", "userAgent": "Mozilla/5.0 (warm-up)", "gender": "female", "birthDate": "1990-01-31",
    "email": "Warm.Up@Example.invalid", "firstname": "Wärm", "middlename": "van der", "lastname": "Up",
    "phone": "06-12345678", "mobile": "+31 6 12345678", "addressBillingZipcode": "1015 KK",
    "addressBillingCity": "Amsterdam", "addressBillingRegion": "Noord-Holland",
    "addressBillingCountry": {"code": "nl"}, "customer": {"resource": {"id": 7}},
    "products": {"resource": {"id": False, "embedded": [_LINE]}},
}


def warm_up() -> dict[str, object]:
    """Run the webhook's pure path once on a made-up order; the event it builds (for a test to check)."""
    body = json.dumps({"order": _ORDER}, separators=(",", ":")).encode()
    shop = load_shop(_ENV, "warm")
    verify(body, sign(body, _SECRET), shop.lightspeed_secret)
    event = capi.build_event(parse_webhook(body), shop)
    match.key_names(event["user_data"])
    capi.dumps(capi.without_browser_data(event))
    return event
