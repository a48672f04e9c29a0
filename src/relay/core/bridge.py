"""The identity bridge's rules: what a thank-you page may post, and how the post that counts for an order
(``relay.core.binding``) joins the order's Purchase at send time. Pure: the jobs bring the rows and the time.

Why the rules are these:

- ``fbp`` and ``fbc`` are forwarded byte for byte (Meta: never re-case or re-encode them; values from
  Meta's Parameter Builder carry a fifth, appendix segment), so only their shape is checked.
- A bare ``fbclid`` becomes ``fb.1.<ms>.<fbclid>`` with the time the post arrived: Meta's advice for a
  click id first seen on a server ("use the value 1"), with the fbclid's case kept.
- Order numbers are sequential, so anyone can post for someone else's order. A post is attached only
  when it is bound to the browser that placed the order (its user agent, inside the time window, the
  total when given): ``relay.core.binding`` holds that rule and which bound post counts. A post that is
  not bound is left out and counted; the browser never learns.
- A shopper who said no in the cookie banner gets nothing from the bridge attached, whatever the
  shop's consent mode; with ``CONSENT_MODE=required`` the Purchase is not sent at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from relay.core.config import Shop
from relay.core.errors import PayloadError

MAX_BODY = 4096                 # a post is a few hundred bytes; anything near this is not our script
WINDOW = 60 * 60                # bound only when received at most this long after the order's createdAt
EARLY = 5 * 60                  # ... or this long before it: the shop's clock and ours differ a little
KEEP = 8 * 24 * 3600            # bridge rows outlive Meta's 7-day window by a day, then are deleted
CONSENTS = ("granted", "denied", "unknown")

_FB_ID = re.compile(r"fb\.\d{1,2}\.\d{9,13}\.[A-Za-z0-9_-]{1,400}(?:\.[A-Za-z0-9_-]{1,64})?")
_FBCLID = re.compile(r"[A-Za-z0-9_-]{1,400}")
_ORDER_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
_FIELDS = frozenset({"order_number", "fbp", "fbc", "fbclid", "consent", "value", "url"})


@dataclass(frozen=True)
class Post:
    """One thank-you page's post, checked."""

    order_number: str
    consent: str = "unknown"
    fbp: str | None = None
    fbc: str | None = None
    fbclid: str | None = None
    value: Decimal | None = None
    url: str | None = None


@dataclass(frozen=True)
class Record:
    """A stored post as the send path reads it (``relay.outbox.bridge``); ``binding`` once settled
    (``relay.core.binding``: bound, or why not), ``None`` while its order was not known."""

    order_number: str
    received_at: int
    consent: str
    fbp: str | None = None
    fbc: str | None = None
    fbclid: str | None = None
    value: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    id: int = 0
    binding: str | None = None


def parse_post(body: bytes) -> Post:
    """The post, or ``PayloadError`` with the reason (the answer is 400 and nothing is stored)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError("the body is not JSON; post {\"order_number\": ..., \"consent\": ...}") from None
    if not isinstance(data, dict):
        raise PayloadError("the body must be a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise PayloadError(f"unknown field(s) {', '.join(unknown[:5])}; allowed: {', '.join(sorted(_FIELDS))}")
    number = data.get("order_number")
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    if not isinstance(number, str) or not _ORDER_NUMBER.fullmatch(number.strip()):
        raise PayloadError("order_number must be the order's number as the thank-you page shows it")
    consent = data.get("consent", "unknown")
    if consent not in CONSENTS:
        raise PayloadError("consent must be granted, denied or unknown")
    return Post(
        order_number=number.strip(), consent=consent,
        fbp=_fb_id(data.get("fbp"), "fbp", "fb.1.1596403881668.1116446470"),
        fbc=_fb_id(data.get("fbc"), "fbc", "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890"),
        fbclid=_fbclid(data.get("fbclid")), value=_value(data.get("value")), url=_url(data.get("url")))


def _fb_id(value: Any, name: str, example: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _FB_ID.fullmatch(value):
        raise PayloadError(f"{name} is not a Meta {name} value (fb.<index>.<ms>.<id>, e.g. {example}); "
                           f"send the _{name} cookie unchanged")
    return value


def _fbclid(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _FBCLID.fullmatch(value):
        raise PayloadError("fbclid must be the landing URL's fbclid parameter, unchanged")
    return value


def _value(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError("value must be the order total as a number, e.g. 49.95")
    try:
        amount = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation:
        raise PayloadError("value must be the order total as a number, e.g. 49.95") from None
    if not amount.is_finite() or not 0 <= amount < 10**9:
        raise PayloadError("value must be the order total as a number, e.g. 49.95")
    return amount


def _url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 1000 or not re.match(r"https?://", value):
        raise PayloadError("url must be the thank-you page's address (http or https, at most 1000 characters)")
    return value


def fbc_from_fbclid(fbclid: str, at_ms: int) -> str:
    """``fb.1.<ms>.<fbclid>``: Meta's format for a click id seen first on a server; the fbclid unchanged."""
    return f"fb.1.{at_ms}.{fbclid}"


def merge(event: dict[str, Any], record: Record) -> dict[str, Any]:
    """The event with the browser's ids, IP address and user agent; ``event_id``/``event_time`` untouched."""
    if record.consent == "denied":
        return event
    user = dict(event.get("user_data", {}))
    if record.fbp:
        user["fbp"] = record.fbp
    fbc = record.fbc or (fbc_from_fbclid(record.fbclid, record.received_at * 1000) if record.fbclid else None)
    if fbc:
        user["fbc"] = fbc
    if record.ip:
        user["client_ip_address"] = record.ip
    if record.user_agent:
        user["client_user_agent"] = record.user_agent
    merged = dict(event, user_data=user)
    if record.user_agent:
        merged["action_source"] = "website"   # the thank-you page was shown in this browser
    return merged


@dataclass(frozen=True)
class Consent:
    """Whether an event may go, and why: ``source`` is what decided (no values)."""

    send: bool
    source: str   # off | granted | denied | unknown (the post said so) | none (no bound post)

    @property
    def decision(self) -> str:
        return "send" if self.send else "skip"

    @property
    def reason(self) -> str | None:
        if self.send:
            return None
        if self.source == "denied":
            return "the shopper declined marketing cookies (CONSENT_MODE=required); never sent"
        return "no consent recorded by the thank-you script (CONSENT_MODE=required, CONSENT_UNKNOWN=skip); never sent"


def consent(shop: Shop, record: Record | None) -> Consent:
    """The shop's consent mode applied to the order's bound post that counts (``None``: none came)."""
    if shop.consent_mode == "off":
        return Consent(True, "off")
    choice = record.consent if record is not None else "none"
    if choice == "granted":
        return Consent(True, choice)
    if choice == "denied":
        return Consent(False, choice)
    return Consent(shop.consent_unknown == "send", choice)


def with_ldu(event: dict[str, Any]) -> dict[str, Any]:
    """Meta's Limited Data Use, country and state 0 (Meta geolocates): US state laws, not EU consent."""
    return dict(event, data_processing_options=["LDU"], data_processing_options_country=0,
                data_processing_options_state=0)
