"""Lightspeed orders as typed, plain values.

The API writes ``false`` or ``""`` for absent things and floats for money (up to 4 decimals). Here
absent becomes ``None`` and money becomes ``Decimal`` parsed from the JSON text itself, so no float
rounding ever touches a price.

A signed body is still untrusted input, so every value is bounded here, before anything is stored or
hashed (docs/EVENTS.md, "Hostile input"): nesting depth, ids (63 bits, SQLite's INTEGER), money (a range that
2-decimal arithmetic and Meta's float can hold), quantities; unpaired UTF-16 surrogates become U+FFFD;
a ``remoteIp`` that is no IP address is dropped. What cannot be bounded refuses the order with a
``PayloadError`` that names the field, never its value.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from relay.core.errors import PayloadError

PAID = "paid"
MAX_DEPTH = 32                  # a Lightspeed order nests 5 deep; the JSON parser recurses per level
MAX_ID = 2**63 - 1              # SQLite's INTEGER, and far above any Lightspeed id
MAX_MONEY = Decimal(10) ** 12   # exact to the cent as a float, and more than any order in any currency
MAX_QUANTITY = 1_000_000
MAX_NUMBER = 64                 # characters of an order number (it becomes the event_id)
MAX_USER_AGENT = 1024

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')    # what _check_depth drops
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Line:
    product_id: str | None
    variant_id: str | None
    quantity: int
    price_incl: Decimal  # line total after discount, VAT included
    price_excl: Decimal | None = None  # the same without VAT; None when Lightspeed sent none
    cost: Decimal | None = None        # priceCost: the line's cost price, VAT excluded; None when not a number

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
    _check_depth(body)
    try:
        return json.loads(body.decode("utf-8"), parse_float=Decimal)
    except UnicodeDecodeError as exc:
        raise PayloadError("body is not UTF-8 JSON; Lightspeed webhooks must use format json") from exc
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"body is not JSON (line {exc.lineno}, column {exc.colno}); register the webhook with format json"
        ) from exc
    except ValueError as exc:      # an integer over Python's 4,300-digit conversion limit
        raise PayloadError("body holds a number too long to be a Lightspeed value; nothing was stored") from exc
    except ArithmeticError as exc:  # decimal.InvalidOperation: an exponent past what Decimal can hold (1e99...9)
        raise PayloadError("body holds a number too large to be a Lightspeed value; nothing was stored") from exc
    except RecursionError as exc:  # unreachable after _check_depth; kept so no parser limit can answer 500
        raise PayloadError(f"body nests deeper than {MAX_DEPTH} levels; this is not a Lightspeed order") from exc


def _check_depth(body: bytes) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` before the parser recurses into it.

    Strings are cut out first (they may hold brackets), then matching innermost pairs are removed a
    level at a time, all with bytes methods in C (no regular expression over the whole body): escaped
    backslashes, then escaped quotes, go first, so every quote left opens or closes a string; then
    only quotes and brackets are kept, and every other quote-separated piece is a string's inside.

    Three shortcuts give the same brackets with fewer passes over a 13 KB order: a body without ``\\"``
    escapes no quote (taking out its backslash pairs cannot make one, and backslashes go anyway), so it is
    not rewritten; the brackets are counted on the kept characters, where they all still are; and when no string
    holds a bracket (every order Lightspeed sends), each string's two quotes are side by side, so removing ``""``
    pairs from the left leaves no quote, without splitting the body into a thousand pieces, one per string.
    """
    if b'\\"' in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = body.translate(None, _NOT_STRUCTURE)
    if structure.count(b"[") + structure.count(b"{") <= MAX_DEPTH:
        return
    brackets = structure.replace(b'""', b"")
    if b'"' in brackets:
        brackets = b"".join(structure.split(b'"')[::2])
    for _ in range(MAX_DEPTH):
        inner = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if inner == brackets:
            return                     # unbalanced: the parser says where
        brackets = inner
    if brackets:
        raise PayloadError(f"body nests deeper than {MAX_DEPTH} levels; this is not a Lightspeed order")


def parse_webhook(body: bytes) -> Order:
    data = loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("order"), dict):
        raise PayloadError('body has no "order" object; only orders/* webhooks can be relayed')
    return parse_order(data["order"])


def parse_order(raw: dict[str, Any]) -> Order:
    order_id = _id(raw.get("id"))
    if order_id is None:
        raise PayloadError('order has no numeric "id" from 1 to 2^63-1')
    number = _text(raw.get("number"))
    if number is None:
        raise PayloadError(f'order {order_id} has no "number"')
    if len(number) > MAX_NUMBER:
        raise PayloadError(f'order {order_id} "number" is over {MAX_NUMBER} characters; refused')
    created = _time(raw.get("createdAt"))
    if created is None:
        raise PayloadError(f'order {order_id} has no "createdAt" with a time zone offset')
    total = _money(raw.get("priceIncl"), f"order {order_id} priceIncl")
    if total < 0:
        raise PayloadError(f"order {order_id} priceIncl is negative; a Purchase cannot be worth less than 0")
    return Order(
        id=order_id,
        number=number,
        created_at=created,
        updated_at=_time(raw.get("updatedAt")),
        status=_text(raw.get("status")) or "",
        payment_status=_text(raw.get("paymentStatus")) or "",
        channel=_text(raw.get("channel")),
        remote_ip=_ip(raw.get("remoteIp")),
        user_agent=_user_agent(raw.get("userAgent")),
        price_incl=total,
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
        quantity = quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else 1
        price = _money(item.get("priceIncl"), "order product priceIncl")
        if not 1 <= quantity <= MAX_QUANTITY or price < 0:
            continue                   # a refund or nonsense line says nothing about what was bought: left out
        lines.append(Line(
            product_id=_str_id(_resource_id(item.get("product"))),
            variant_id=_str_id(_resource_id(item.get("variant"))),
            quantity=quantity,
            price_incl=price,
            price_excl=_optional_money(item.get("priceExcl")),
            cost=_optional_money(item.get("priceCost")),
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
    """Text, or ``None`` for absent; unpaired surrogates (``"\\ud800"``) become U+FFFD, so the value
    can always be UTF-8 encoded, hashed and stored.

    A JSON string (nearly every call) goes first; an ASCII one holds no surrogate, so it skips the pattern."""
    if type(value) is str:
        text = (value if value.isascii() else _SURROGATE.sub("\ufffd", value)).strip()
        return text or None
    if value is None or value is False or value is True:
        return None
    if isinstance(value, (dict, list)):   # a tuple: ``dict | list`` would build a union object on every call
        return None                    # an object where text belongs is no text
    text = _SURROGATE.sub("\ufffd", str(value)).strip()
    return text or None


def _id(value: Any) -> int | None:
    """A Lightspeed id: a positive integer that fits SQLite's 63 bits, else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def _ip(value: Any) -> str | None:
    """``remoteIp`` when it is an IPv4 or IPv6 address (Meta's ``client_ip_address``), else dropped.

    ``ipaddress.ip_address`` tries IPv4 first and fails (an exception) on every IPv6 address; a colon, which
    only IPv6 has, says which one to try, with the same result."""
    text = _text(value)
    if text is None or len(text) > 64:
        return None
    try:
        return str(ipaddress.IPv6Address(text) if ":" in text else ipaddress.IPv4Address(text))
    except ValueError:
        return None


def _user_agent(value: Any) -> str | None:
    text = _text(value)
    return text if text is not None and len(text) <= MAX_USER_AGENT else None


def _money(value: Any, what: str) -> Decimal:
    if type(value) is Decimal:   # a JSON number, already read exactly from its text by ``loads``
        amount = value
    elif isinstance(value, bool) or value is None:
        raise PayloadError(f"{what} is missing")
    elif isinstance(value, (dict, list)):
        raise PayloadError(f"{what} is not a number")
    else:
        try:
            amount = Decimal(str(value))
        except InvalidOperation as exc:
            raise PayloadError(f"{what} is not a number") from exc
    if not amount.is_finite():
        raise PayloadError(f"{what} is not a finite number")
    if abs(amount) >= MAX_MONEY:
        raise PayloadError(f"{what} is {MAX_MONEY:,.0f} or more; no order is worth that, refused")
    return amount


def _optional_money(value: Any) -> Decimal | None:
    """An amount that may be absent (null, missing, false, not a number): None then, never an error."""
    try:
        return _money(value, "amount")
    except PayloadError:
        return None


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
        return _id(block["resource"].get("id"))
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
