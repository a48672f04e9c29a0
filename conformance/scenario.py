"""The inputs every conformance run shares: fixtures, one shop's variables, a fixed clock, canonical JSON.

Plain stdlib and ``relay`` only, so the same file serves CPython and Pyodide. Paths are relative to
this file: the Pyodide harness mounts the repository at the same layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "lightspeed"

PAID_RAW = (FIXTURES / "webhook-order-paid.raw.json").read_bytes()
PAID_DELIVERY = json.loads((FIXTURES / "webhook-order-paid.headers.json").read_text())
PAID_HEADERS = {k.lower(): v for k, v in PAID_DELIVERY["headers"].items()}
SECRET = PAID_DELIVERY["secret_used_for_signature"]
# The missing-optional fixture comes without delivery headers: it is signed here, with hashlib directly
# (not relay.core.signature), so the check does not lean on the code it checks.
MISSING_RAW = (FIXTURES / "webhook-order-paid-missing-optional.json").read_bytes()
MISSING_HEADERS = {
    "content-type": "application/json",
    "x-shop-id": PAID_HEADERS["x-shop-id"],
    "x-signature": hashlib.md5(MISSING_RAW + SECRET.encode()).hexdigest(),
}
PRODUCTS = json.loads((FIXTURES / "order-products.json").read_text())["orderProducts"]

WEBHOOKS = {
    "paid": (PAID_RAW, PAID_HEADERS),
    "missing-optional": (MISSING_RAW, MISSING_HEADERS),
}

SHOP = "vik"
KEY = "conformance-api-key-0001"
TOKEN = "EAAconformance-token-not-real"
PIXEL = "987654321012345"
CURRENCY = "EUR"
# The later fixture's createdAt (2025-11-19T08:02:44+01:00) plus five minutes: both orders inside Meta's window.
NOW = 1763535764 + 300


def shop_env(prefix: str = "VIK", token: str = TOKEN, **extra: str) -> dict[str, str]:
    return {
        f"{prefix}_LIGHTSPEED_API_KEY": KEY,
        f"{prefix}_LIGHTSPEED_API_SECRET": SECRET,
        f"{prefix}_LIGHTSPEED_SHOP_ID": PAID_HEADERS["x-shop-id"],
        f"{prefix}_META_ACCESS_TOKEN": token,
        f"{prefix}_META_PIXEL_ID": PIXEL,
        f"{prefix}_SHOP_URL": "https://www.vikginchoice.example",
        **extra,
    }


def plain(value: Any) -> Any:
    """Dataclasses, decimals, datetimes and enums as JSON-ready values (decimals as text: no float rounding)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """One byte sequence per value: sorted keys, fixed indent, UTF-8 kept, trailing newline."""
    return json.dumps(plain(value), sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def error(exc: BaseException) -> dict[str, str]:
    return {"error": type(exc).__name__, "message": str(exc)}
