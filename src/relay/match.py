"""Which customer data goes to Meta as match keys, and how it is taken from a Lightspeed order.

Every hashed key goes through ``relay.normalize`` (Meta's documented rules) and SHA-256 here, so
nothing raw leaves this module but the client IP and user agent, which Meta wants unhashed.
"""

from __future__ import annotations

from typing import Any

from relay.normalize import hash_field, sha256_hex
from relay.order import Address, Order


def _address(order: Order) -> Address:
    """Billing address, else shipping: the billing address is the card holder's."""
    return order.billing if order.billing.city or order.billing.zipcode else order.shipping


def surname(order: Order) -> str | None:
    """Dutch and Belgian surnames keep their particles: ``van den`` + ``Broek`` is ``van den Broek``."""
    parts = [p for p in (order.middlename, order.lastname) if p]
    return " ".join(parts) or None


def external_id(order: Order) -> str | None:
    """The Lightspeed customer id, hashed: stable for a registered customer on every path."""
    if order.customer_id is None:
        return None
    return sha256_hex(str(order.customer_id))


def user_data(order: Order, *, browser: bool) -> dict[str, Any]:
    """Meta ``user_data`` for an order; ``browser`` adds the shopper's IP and user agent from the order."""
    country = order.country
    address = _address(order)
    data: dict[str, Any] = {}

    def put(key: str, *values: str | None, region: str | None = country) -> None:
        hashed: list[str] = []
        for value in values:
            if value is None:
                continue
            digest = hash_field(key, value, region)
            if digest is not None and digest not in hashed:
                hashed.append(digest)
        if hashed:
            data[key] = hashed[0] if len(hashed) == 1 else hashed

    put("em", order.email)
    put("ph", order.phone, order.mobile)
    put("fn", order.firstname)
    put("ln", surname(order))
    put("ge", order.gender)
    put("db", order.birth_date)
    put("ct", address.city)
    put("st", address.region)
    put("zp", address.zipcode)
    put("country", address.country)
    ident = external_id(order)
    if ident:
        data["external_id"] = ident
    if browser:
        if order.remote_ip:
            data["client_ip_address"] = order.remote_ip
        if order.user_agent:
            data["client_user_agent"] = order.user_agent
    return data


def key_names(data: dict[str, Any]) -> list[str]:
    """The match keys an event carries, by name only: what the status page counts as coverage."""
    return sorted(data)
