"""Lightspeed eCom REST: pure request builders and response parsers (https://developers.lightspeedhq.com/ecom/).

``{LIGHTSPEED_API_URL or cluster host}/{language}/{resource}.json`` with HTTP Basic (key:secret).
The caller sends the ``HttpRequest`` through its injected port and hands the answer back here.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from relay.core.config import CLUSTER_HOSTS, Settings, Shop
from relay.core.errors import LightspeedError, PayloadError
from relay.core.order import Line, Order, parse_lines, parse_order
from relay.core.ports import HttpRequest, HttpResponse

TIMEOUT = 10.0
PAGE_LIMIT = 250          # orders.json's maximum ``limit`` (Lightspeed eCom API, orders: limit ≤ 250)
FILTER_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class RateLimit:
    """``X-RateLimit-*`` as (5 min, 1 h, 1 day) triples; ``None`` where Lightspeed sent nothing."""

    remaining: tuple[int, ...] | None
    reset: tuple[int, ...] | None

    @property
    def exhausted_for(self) -> int | None:
        """Seconds to wait when a window has no calls left, else ``None``."""
        if not self.remaining or not self.reset:
            return None
        waits = [r for left, r in zip(self.remaining, self.reset, strict=False) if left <= 0]
        return max(waits) if waits else None


def base_url(shop: Shop, settings: Settings) -> str:
    return settings.lightspeed_api_url or CLUSTER_HOSTS[shop.cluster]


def request(shop: Shop, settings: Settings, resource: str, query: dict[str, Any] | None = None,
            method: str = "GET", body: dict[str, Any] | None = None) -> HttpRequest:
    url = f"{base_url(shop, settings)}/{shop.language}/{resource}.json"
    if query:
        url += "?" + urlencode(query)
    credentials = f"{shop.lightspeed_key.reveal()}:{shop.lightspeed_secret.reveal()}".encode()
    headers = {
        "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
        "Accept": "application/json",
    }
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    return HttpRequest(method=method, url=url, headers=headers, body=data, timeout=TIMEOUT)


def shop_request(shop: Shop, settings: Settings) -> HttpRequest:
    return request(shop, settings, "shop")


def order_products_request(shop: Shop, settings: Settings, order_id: int) -> HttpRequest:
    return request(shop, settings, f"orders/{order_id}/products")


def orders_request(shop: Shop, settings: Settings, updated_at_min: str, page: int,
                   limit: int = PAGE_LIMIT) -> HttpRequest:
    """One page of ``orders.json`` updated since ``updated_at_min`` (a ``filter_time`` string); pages start at 1."""
    return request(shop, settings, "orders", {"updated_at_min": updated_at_min, "limit": limit, "page": page})


def filter_time(unix: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` as the list filters take it, written in UTC.

    Which time zone Lightspeed reads it in is unconfirmed; ``relay.jobs.cron`` moves the value back
    by the shop's offset so that either reading covers the wanted window.
    """
    return datetime.fromtimestamp(unix, UTC).strftime(FILTER_FORMAT)


@dataclass(frozen=True)
class OrdersPage:
    """One ``orders.json`` page: the orders read, the items that could not be read, and the raw item count.

    ``size`` counts every item, readable or not, because a page is short (the listing's end) only when
    Lightspeed sent fewer items than asked for.
    """

    orders: tuple[Order, ...]
    unreadable: tuple[tuple[int | None, str], ...]
    size: int


def parse_orders(response: HttpResponse, shop: Shop) -> OrdersPage:
    data = checked(response, shop, "orders.json", "Orders (read)")
    items = data.get("orders") if isinstance(data, dict) else None
    if items is False:
        items = []                           # the API writes false for an absent list
    if not isinstance(items, list):
        raise LightspeedError(f"shop '{shop.name}': orders.json has no orders list; will retry", retryable=True)
    orders, unreadable = [], []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise PayloadError("a listed order is not an object")
            orders.append(parse_order(item))
        except PayloadError as exc:
            ident = item.get("id") if isinstance(item, dict) else None
            unreadable.append((ident if isinstance(ident, int) and not isinstance(ident, bool) else None, str(exc)))
    return OrdersPage(tuple(orders), tuple(unreadable), len(items))


def parse_currency(response: HttpResponse, shop: Shop) -> str:
    data = checked(response, shop, "shop.json", "Settings (read)")
    try:
        code = data["shop"]["currency"]["shortcode"]
    except (KeyError, TypeError) as exc:
        raise LightspeedError(f"shop '{shop.name}': shop.json has no currency.shortcode", retryable=False) from exc
    if not (isinstance(code, str) and len(code) == 3 and code.isalpha()):
        raise LightspeedError(f"shop '{shop.name}': shop.json currency is not an ISO 4217 code", retryable=False)
    return code.upper()


def shop_id_mismatch(response: HttpResponse, shop: Shop) -> str | None:
    """What to fix when a 2xx ``shop.json`` names another shop id than ``<SHOP>_LIGHTSPEED_SHOP_ID``, else ``None``.

    The webhook's ``X-Shop-Id`` must equal that variable, so a wrong one makes every webhook a 401.
    An answer without a readable ``shop.id`` says nothing either way.
    """
    try:
        found = json.loads(response.body)["shop"]["id"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        return None
    if isinstance(found, bool) or not isinstance(found, int | str) or str(found).strip() == shop.shop_id:
        return None
    shown = str(found).strip()[:20]
    return (f"shop.json says this API key belongs to shop id {shown}, but {shop.prefix}LIGHTSPEED_SHOP_ID is "
            f"{shop.shop_id}: every webhook of this shop is refused (X-Shop-Id differs); set "
            f"{shop.prefix}LIGHTSPEED_SHOP_ID to {shown}, or give this shop its own API key")


def parse_order_products(response: HttpResponse, shop: Shop) -> tuple[Line, ...]:
    data = checked(response, shop, "orders/{id}/products.json", "Orders (read)")
    if not isinstance(data, dict) or "orderProducts" not in data:
        raise LightspeedError(f"shop '{shop.name}': products.json has no orderProducts list", retryable=False)
    try:
        return parse_lines(data["orderProducts"])
    except PayloadError as exc:
        raise LightspeedError(f"shop '{shop.name}': {exc}", retryable=False) from exc


def rate_limit(response: HttpResponse) -> RateLimit:
    return RateLimit(_triple(response.header("X-RateLimit-Remaining")), _triple(response.header("X-RateLimit-Reset")))


def checked(response: HttpResponse, shop: Shop, what: str, permission: str) -> Any:
    """The JSON body of a 2xx answer, or a ``LightspeedError`` that says what to do."""
    status = response.status
    where = f"shop '{shop.name}': Lightspeed {what}"
    if status == 401:
        raise LightspeedError(
            f"{where} answered 401: the API key or secret is wrong; check "
            f"{shop.prefix}LIGHTSPEED_API_KEY and {shop.prefix}LIGHTSPEED_API_SECRET and the cluster "
            f"({shop.cluster})", status=status, retryable=False)
    if status == 403:
        raise LightspeedError(
            f"{where} answered 403: give the API key the '{permission}' permission in Lightspeed "
            "(Settings > Developers > API keys)", status=status, retryable=False)
    if status == 429:
        raise LightspeedError(f"{where} answered 429: rate limit reached, backing off", status=status,
                              retryable=True, retry_after=_retry_after(response))
    if status >= 500:
        raise LightspeedError(f"{where} answered {status}: Lightspeed is having trouble, will retry",
                              status=status, retryable=True)
    if not 200 <= status < 300:
        raise LightspeedError(f"{where} answered {status}", status=status, retryable=False)
    try:
        return json.loads(response.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LightspeedError(f"{where} answered {status} with a body that is not JSON; will retry",
                              status=status, retryable=True) from exc


def retry_after(response: HttpResponse) -> float | None:
    """Seconds to wait after a 429: ``Retry-After`` when sent, else the spent window's ``X-RateLimit-Reset``."""
    return _retry_after(response)


def _retry_after(response: HttpResponse) -> float | None:
    value = response.header("Retry-After")
    if value is not None and value.strip().isdigit():
        return float(value.strip())
    return rate_limit(response).exhausted_for


def _triple(value: str | None) -> tuple[int, ...] | None:
    if not value:
        return None
    try:
        return tuple(int(part) for part in value.split("/"))
    except ValueError:
        return None
