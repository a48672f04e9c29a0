"""Lightspeed webhook registration: pure request builders, parsers and the plan (https://developers.lightspeedhq.com/ecom/endpoints/webhook/).

Lightspeed adds a webhook twice if asked twice, so registering is list first, then create only the
topics whose (group, action, address) is not there yet; an existing one that is inactive or sends
XML is switched back on and to JSON. Auth and base URL come from ``relay.core.lightspeed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from relay.core.config import Settings, Shop
from relay.core.errors import ConfigError, LightspeedError
from relay.core.lightspeed import checked, request
from relay.core.ports import HttpRequest, HttpResponse

# paid decides; created and updated catch shops whose payment arrives without a paid event (§1.2).
TOPICS: tuple[tuple[str, str], ...] = (("orders", "paid"), ("orders", "created"), ("orders", "updated"))
PAGE_SIZE = 250
PERMISSION = "Webhooks (read and write)"


@dataclass(frozen=True)
class Webhook:
    id: int
    group: str
    action: str
    address: str
    active: bool
    format: str
    language: str | None

    def covers(self, group: str, action: str, address: str) -> bool:
        return self.group == group and self.action in (action, "*") and same_address(self.address, address)

    @property
    def healthy(self) -> bool:
        return self.active and self.format == "json"


@dataclass(frozen=True)
class Plan:
    """What ``register`` will do: create the missing topics, repair the ones switched off or set to XML."""

    create: tuple[tuple[str, str], ...]
    repair: tuple[Webhook, ...]
    present: tuple[Webhook, ...]


def normalized(url: str) -> str:
    """One spelling per address: ``https://HOST?shop=VIK`` and ``https://host/?shop=vik`` are the same webhook.

    The host is case-insensitive (RFC 3986 §6.2.2.1), an empty path is ``/`` and a default port is
    dropped; the relay reads ``?shop=`` case-insensitively, so its value is lower-cased too.
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.port is not None and parts.port != {"https": 443, "http": 80}.get(parts.scheme.lower()):
        host += f":{parts.port}"
    query = sorted((k, v.lower() if k == "shop" else v) for k, values in parse_qs(parts.query).items() for v in values)
    return f"{parts.scheme.lower()}://{host}{parts.path or '/'}" + (f"?{urlencode(query)}" if query else "")


def same_address(a: str, b: str) -> bool:
    return normalized(a) == normalized(b)


def shop_of(address: str) -> str | None:
    """The ``?shop=`` a relay address carries (lower-cased), or ``None`` for another app's webhook."""
    parts = urlsplit(address.strip())
    given = parse_qs(parts.query).get("shop", [])
    return given[0].lower() if len(given) == 1 and parts.path in ("", "/") else None


def check_address(url: str, shop: str) -> str:
    """The webhook address, if it is one the relay can serve for ``shop``; else a ``ConfigError`` saying why."""
    url = url.strip()
    parts = urlsplit(url)
    example = f"https://<your-worker>.workers.dev/?shop={shop}"
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"the webhook address must start with https:// (Lightspeed sends order data to it); "
                          f"use e.g. {example}")
    if parts.path not in ("", "/"):
        raise ConfigError(f"the relay takes webhooks at the root path, not {parts.path}; use e.g. {example}")
    given = parse_qs(parts.query).get("shop", [])
    if len(given) != 1 or given[0].lower() != shop.lower():
        raise ConfigError(f"the webhook address must end in ?shop={shop}: the relay picks the shop's secrets by it; "
                          f"use e.g. {example}")
    if parts.fragment or parts.username or parts.password:
        raise ConfigError(f"the webhook address must not carry a #fragment or user:password@; use e.g. {example}")
    return normalized(url)


def list_request(shop: Shop, settings: Settings, page: int = 1) -> HttpRequest:
    return request(shop, settings, "webhooks", {"limit": PAGE_SIZE, "page": page})


def parse_list(response: HttpResponse, shop: Shop) -> list[Webhook]:
    data = checked(response, shop, "webhooks.json", PERMISSION)
    if not isinstance(data, dict) or not isinstance(data.get("webhooks"), list):
        raise LightspeedError(f"shop '{shop.name}': webhooks.json has no webhooks list", retryable=False)
    return [_webhook(item, shop) for item in data["webhooks"]]


def create_request(shop: Shop, settings: Settings, group: str, action: str, address: str) -> HttpRequest:
    return request(shop, settings, "webhooks", method="POST", body={"webhook": _fields(shop, group, action, address)})


def repair_request(shop: Shop, settings: Settings, hook: Webhook) -> HttpRequest:
    return request(shop, settings, f"webhooks/{hook.id}", method="PUT",
                   body={"webhook": {"isActive": True, "format": "json"}})


def parse_one(response: HttpResponse, shop: Shop, what: str = "webhooks.json") -> Webhook:
    data = checked(response, shop, what, PERMISSION)
    if not isinstance(data, dict) or not isinstance(data.get("webhook"), dict):
        raise LightspeedError(f"shop '{shop.name}': {what} answered without a webhook object", retryable=False)
    return _webhook(data["webhook"], shop)


def plan(existing: list[Webhook], address: str, topics: tuple[tuple[str, str], ...] = TOPICS) -> Plan:
    create: list[tuple[str, str]] = []
    repair: dict[int, Webhook] = {}
    present: dict[int, Webhook] = {}
    for group, action in topics:
        matches = [hook for hook in existing if hook.covers(group, action, address)]
        if not matches:
            create.append((group, action))
        elif not any(hook.healthy for hook in matches):
            repair.setdefault(matches[0].id, matches[0])
        else:
            hook = next(h for h in matches if h.healthy)
            present.setdefault(hook.id, hook)
    return Plan(tuple(create), tuple(repair.values()), tuple(present.values()))


def delete_request(shop: Shop, settings: Settings, hook: Webhook) -> HttpRequest:
    return request(shop, settings, f"webhooks/{hook.id}", method="DELETE")


def checked_delete(response: HttpResponse, shop: Shop) -> None:
    """A DELETE may answer 204 with no body; anything else goes through the usual checks."""
    if 200 <= response.status < 300 and not response.body.strip():
        return
    checked(response, shop, "webhooks/{id}.json", PERMISSION)


def stale(existing: list[Webhook], shop: str, address: str) -> list[Webhook]:
    """The shop's order webhooks ``prune`` removes: relay addresses for this shop other than ``address``,
    and second copies of the same topic at ``address`` (each would deliver every event once more).

    Another app's webhooks (no ``?shop=<shop>`` at the root path) are never touched.
    """
    ours = [h for h in existing if h.group == "orders" and shop_of(h.address) == shop.lower()]
    elsewhere = [h for h in ours if not same_address(h.address, address)]
    kept: dict[str, Webhook] = {}
    copies: list[Webhook] = []
    for hook in sorted((h for h in ours if same_address(h.address, address)), key=lambda h: (not h.healthy, h.id)):
        if hook.action in kept:
            copies.append(hook)
        else:
            kept[hook.action] = hook
    return sorted(elsewhere + copies, key=lambda h: h.id)


def _fields(shop: Shop, group: str, action: str, address: str) -> dict[str, Any]:
    return {"isActive": True, "itemGroup": group, "itemAction": action, "language": shop.language,
            "format": "json", "address": address}


def _webhook(item: Any, shop: Shop) -> Webhook:
    try:
        language = item.get("language")
        if isinstance(language, dict):      # Lightspeed answers with {id, code, locale, title}
            language = language.get("code")
        return Webhook(id=int(item["id"]), group=str(item["itemGroup"]), action=str(item["itemAction"]),
                       address=str(item["address"]).strip(), active=item.get("isActive") in (True, "true", 1),
                       format=str(item.get("format") or "").lower(), language=language or None)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise LightspeedError(f"shop '{shop.name}': a webhook in Lightspeed's answer lacks id, itemGroup, itemAction "
                              "or address", retryable=False) from exc
