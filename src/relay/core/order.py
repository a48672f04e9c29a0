"""Lightspeed orders as typed, plain values.

The API writes ``false`` or ``""`` for absent things and floats for money (up to 4 decimals). Here
absent becomes ``None`` and money becomes ``Decimal`` parsed from the JSON text itself, so no float
rounding ever touches a price.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from relay.core.errors import PayloadError

PAID = "paid"


@dataclass(frozen=True)
class Line:
    product_id: str | None
    variant_id: str | None
    quantity: int
    price_incl: Decimal  # line total after discount, VAT included

    @property
    def content_id(self) -> str | None:
        return self.variant_id or self.product_id

    @property
    def item_price(self) -> Decimal:
        if self.quantity <= 0:
            return self.price_incl
        return (self.price_incl / self.quantity).quantize(Decimal("0.01"), ROUND_HALF_UP)


@dataclass(frozen=True)
class Address:
    zipcode: str | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None  # ISO alpha-2, lowercase, as Lightspeed sends it


@dataclass(frozen=True)
class Order:
    id: int
    number: str
    created_at: datetime
    updated_at: datetime | None
    status: str
    payment_status: str
    channel: str | None
    remote_ip: str | None
    user_agent: str | None
    price_incl: Decimal
    email: str | None
    firstname: str | None
    middlename: str | None
    lastname: str | None
    phone: str | None
    mobile: str | None
    gender: str | None
    birth_date: str | None
    billing: Address
    shipping: Address
    customer_id: int | None
    lines: tuple[Line, ...] | None  # None: not embedded, fetch orders/{id}/products.json

    @property
    def is_paid(self) -> bool:
        return self.payment_status == PAID and not self.is_cancelled

    @property
    def is_cancelled(self) -> bool:
        return self.status == "cancelled" or self.payment_status == "cancelled"

    @property
    def country(self) -> str | None:
        """The order's country for phone numbers: billing, else shipping."""
        return self.billing.country or self.shipping.country


def loads(body: bytes) -> Any:
    """JSON with exact decimals; every decoding problem is a ``PayloadError``."""
    try:
        return json.loads(body.decode("utf-8"), parse_float=Decimal)
    except UnicodeDecodeError as exc:
        raise PayloadError("body is not UTF-8 JSON; Lightspeed webhooks must use format json") from exc
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"body is not JSON (line {exc.lineno}, column {exc.colno}); register the webhook with format json"
        ) from exc


def parse_webhook(body: bytes) -> Order:
    data = loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("order"), dict):
        raise PayloadError('body has no "order" object; only orders/* webhooks can be relayed')
    return parse_order(data["order"])


def parse_order(raw: dict[str, Any]) -> Order:
    order_id = raw.get("id")
    if not isinstance(order_id, int) or isinstance(order_id, bool) or order_id <= 0:
        raise PayloadError('order has no numeric "id"')
    number = _text(raw.get("number"))
    if number is None:
        raise PayloadError(f'order {order_id} has no "number"')
    created = _time(raw.get("createdAt"))
    if created is None:
        raise PayloadError(f'order {order_id} has no "createdAt" with a time zone offset')
    return Order(
        id=order_id,
        number=number,
        created_at=created,
        updated_at=_time(raw.get("updatedAt")),
        status=_text(raw.get("status")) or "",
        payment_status=_text(raw.get("paymentStatus")) or "",
        channel=_text(raw.get("channel")),
        remote_ip=_text(raw.get("remoteIp")),
        user_agent=_text(raw.get("userAgent")),
        price_incl=_money(raw.get("priceIncl"), f"order {order_id} priceIncl"),
        email=_text(raw.get("email")),
        firstname=_text(raw.get("firstname")),
        middlename=_text(raw.get("middlename")),
        lastname=_text(raw.get("lastname")),
        phone=_text(raw.get("phone")),
        mobile=_text(raw.get("mobile")),
        gender=_text(raw.get("gender")),
        birth_date=_text(raw.get("birthDate")),
        billing=_address(raw, "addressBilling"),
        shipping=_address(raw, "addressShipping"),
        customer_id=_resource_id(raw.get("customer")),
        lines=_embedded_lines(raw.get("products")),
    )


def parse_lines(items: Any) -> tuple[Line, ...]:
    """Order lines from ``orders/{id}/products.json`` or an embedded ``products`` block."""
    if not isinstance(items, list):
        raise PayloadError("order products are not a list")
    lines = []
    for item in items:
        if not isinstance(item, dict):
            raise PayloadError("an order product is not an object")
        quantity = item.get("quantityOrdered")
        lines.append(Line(
            product_id=_str_id(_resource_id(item.get("product"))),
            variant_id=_str_id(_resource_id(item.get("variant"))),
            quantity=quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else 1,
            price_incl=_money(item.get("priceIncl"), "order product priceIncl"),
        ))
    return tuple(lines)


def _embedded_lines(block: Any) -> tuple[Line, ...] | None:
    if not isinstance(block, dict) or not isinstance(block.get("resource"), dict):
        return None
    embedded = block["resource"].get("embedded")
    if embedded is None:
        return None
    return parse_lines(embedded)


def _text(value: Any) -> str | None:
    if value is None or value is False or value is True:
        return None
    text = str(value).strip()
    return text or None


def _money(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise PayloadError(f"{what} is missing")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise PayloadError(f"{what} is not a number") from exc
    if not amount.is_finite():
        raise PayloadError(f"{what} is not a finite number")
    return amount


def _time(value: Any) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _resource_id(block: Any) -> int | None:
    if isinstance(block, dict) and isinstance(block.get("resource"), dict):
        ident = block["resource"].get("id")
        if isinstance(ident, int) and not isinstance(ident, bool):
            return ident
    return None


def _str_id(value: int | None) -> str | None:
    return None if value is None else str(value)


def _address(raw: dict[str, Any], prefix: str) -> Address:
    country = raw.get(prefix + "Country")
    code = _text(country.get("code")) if isinstance(country, dict) else None
    region = _text(raw.get(prefix + "Region"))
    region_data = raw.get(prefix + "RegionData")
    if region is None and isinstance(region_data, dict):
        region = _text(region_data.get("code")) or _text(region_data.get("name"))
    return Address(
        zipcode=_text(raw.get(prefix + "Zipcode")),
        city=_text(raw.get(prefix + "City")),
        region=region,
        country=code.lower() if code else None,
    )
