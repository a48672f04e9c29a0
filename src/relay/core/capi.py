"""Meta Conversions API: the Purchase event, the request, and what an answer means.

Pure functions. The event is built once, when the order is stored, and kept hashed in the ledger;
the shop's currency is added when it is sent, because it comes from Lightspeed's ``shop.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from relay.core import match
from relay.core.config import Settings, Shop
from relay.core.errors import PayloadError
from relay.core.order import Line, Order
from relay.core.ports import HttpRequest, HttpResponse
from relay.core.profit import net_revenue as profit_of
from relay.core.redact import redact

EVENT_NAME = "Purchase"
CANCEL_EVENT_NAME = "OrderCancelled"   # a custom event: Meta keeps the Purchase and nets nothing by itself
WINDOW = 7 * 24 * 3600          # Meta rejects a whole request holding an event_time older than this
EXPIRE_MARGIN = 15 * 60         # give up this long before the window closes: clocks and queues drift
MAYBE_DELIVERED_WAIT = 10 * 60  # after a timeout Meta may have the events: wait out its slow spell, then resend
MESSAGE_LIMIT = 300
EVENT_ID_MAX = 100              # Meta documents no limit; this is far above any real one and keeps requests sane

# Lightspeed writes this user agent on orders created through its API: no shopper's browser there.
API_USER_AGENTS = ("WebshopappApi",)

TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 368, 613}) | frozenset(range(80000, 80015))
HOLD_CODES = frozenset({10, 102, 190}) | frozenset(range(200, 300))


class Verdict(StrEnum):
    SENT = "sent"
    RETRY = "retry"      # transient: try again later with backoff
    FAILED = "failed"    # the payload is wrong: never retried
    HOLD = "hold"        # the shop's token or permission is wrong: hold its queue, drop nothing


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    status: int | None = None
    code: int | None = None
    subcode: int | None = None
    fbtrace_id: str | None = None
    message: str | None = None
    events_received: int | None = None
    retry_after: float | None = None


def event_id(shop: Shop, order: Order) -> str:
    """Stable across webhook, backfill, retries and the browser pixel (``purchase_{number}`` by default).

    Never shortened: a cut id would no longer match the pixel's ``eventID``, so an order whose id would be
    too long is refused instead.
    """
    ident = shop.event_id_template.format(number=order.number, id=order.id, shop=shop.name)
    if len(ident) > EVENT_ID_MAX:
        raise PayloadError(f"order {order.id}: its event_id would be over {EVENT_ID_MAX} characters; refused "
                           f"(check the order number and {shop.prefix}EVENT_ID_TEMPLATE)")
    return ident


def is_browser_order(order: Order) -> bool:
    agent = order.user_agent
    if not agent:
        return False
    return not any(agent.startswith(a) for a in API_USER_AGENTS)


def event_time(order: Order) -> int:
    return int(order.created_at.timestamp())


def money(amount: Decimal) -> float:
    """Two decimals, as a JSON number."""
    return float(amount.quantize(Decimal("0.01"), ROUND_HALF_UP))


def contents(lines: tuple[Line, ...]) -> list[dict[str, Any]]:
    return [
        {"id": line.content_id, "quantity": line.quantity, "item_price": money(line.item_price)}
        for line in lines
        if line.content_id
    ]


def build_event(order: Order, shop: Shop) -> dict[str, Any]:
    """The hashed Purchase event, without currency (added at send time by ``with_currency``)."""
    browser = is_browser_order(order)
    event: dict[str, Any] = {
        "event_name": EVENT_NAME,
        "event_time": event_time(order),
        "event_id": event_id(shop, order),
        "action_source": "website" if browser else "other",
    }
    if shop.shop_url:
        event["event_source_url"] = shop.shop_url + "/checkout/thankyou/"
    event["user_data"] = match.user_data(order, browser=browser)
    event["custom_data"] = {"value": money(order.price_incl), "order_id": order.number}
    return with_lines(event, order.lines, shop.net_revenue) if order.lines is not None else event


def cancellation_event(order: Order, shop: Shop, now: int) -> dict[str, Any]:
    """The ``OrderCancelled`` custom event for an order whose Purchase Meta has: the same order id and
    match keys, the positive value (currency added at send time), at the time the cancellation was seen.

    Meta does not subtract it from the Purchase; advertisers use it to build custom conversions that
    exclude cancelled orders. It is ``system_generated`` (no shopper's browser did it), so it carries no
    IP address or user agent, and its own ``event_id`` so it can never be deduplicated against the Purchase.
    """
    purchase = build_event(order, shop)
    return {
        "event_name": CANCEL_EVENT_NAME,
        "event_time": now,
        "event_id": "cancelled_" + purchase["event_id"],
        "action_source": "system_generated",
        "user_data": without_browser_data(purchase)["user_data"],
        "custom_data": {"value": money(abs(order.price_incl)), "order_id": order.number},
    }


def with_lines(event: dict[str, Any], lines: tuple[Line, ...], net_revenue: bool = False) -> dict[str, Any]:
    """The event with its lines' ``contents``; with ``net_revenue`` (the shop's ``NET_REVENUE=1``) also the
    order's profit from the lines' cost prices, when every line has one (relay.core.profit)."""
    custom = dict(event["custom_data"], contents=contents(lines), content_type="product")
    if net_revenue and (profit := profit_of(lines)) is not None:
        custom["net_revenue"] = money(profit)
    return dict(event, custom_data=custom)


def with_currency(event: dict[str, Any], currency: str) -> dict[str, Any]:
    return dict(event, custom_data=dict(event["custom_data"], currency=currency))


def without_browser_data(event: dict[str, Any]) -> dict[str, Any]:
    """What the ledger keeps once Meta has the event: no IP or user agent stays behind."""
    user = {k: v for k, v in event.get("user_data", {}).items()
            if k not in ("client_ip_address", "client_user_agent")}
    return dict(event, user_data=user)


def dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def events_url(shop: Shop, settings: Settings) -> str:
    """The URL has no token in it, so it can appear in logs and errors."""
    return f"{settings.meta_graph_url}/{settings.meta_api_version}/{shop.pixel_id}/events"


def events_request(shop: Shop, settings: Settings, events: list[dict[str, Any]]) -> HttpRequest:
    body: dict[str, Any] = {"data": events, "access_token": shop.meta_token.reveal()}
    if shop.test_event_code:
        body["test_event_code"] = shop.test_event_code
    return HttpRequest(
        method="POST",
        url=events_url(shop, settings),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        timeout=settings.meta_timeout,
    )


def classify(response: HttpResponse, expected: int) -> Outcome:
    """What Meta's answer means for the events in the request (docs/ARCHITECTURE.md, "Invariants"; Meta's error codes:
    https://developers.facebook.com/docs/graph-api/guides/error-handling)."""
    status = response.status
    body = response.json_object()
    if 200 <= status < 300:
        received = body.get("events_received") if body else None
        trace = body.get("fbtrace_id") if body else None
        if isinstance(received, int) and received >= expected >= 1:
            return Outcome(Verdict.SENT, status, fbtrace_id=trace, events_received=received)
        return Outcome(Verdict.RETRY, status, fbtrace_id=trace, events_received=received,
                       message=f"Meta answered {status} but received {received} of {expected} events; will retry")
    error = body.get("error") if body else None
    if not isinstance(error, dict):
        verdict = Verdict.RETRY if status >= 500 or status == 429 else Verdict.FAILED
        return Outcome(verdict, status, message=f"Meta answered {status} without a Graph error body")
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    parts = [str(error.get(k)) for k in ("message", "error_user_title", "error_user_msg") if error.get(k)]
    message = redact(" / ".join(parts))[:MESSAGE_LIMIT] or None   # Meta's words: never an address or a token
    trace = error.get("fbtrace_id") if isinstance(error.get("fbtrace_id"), str) else None
    if code in TRANSIENT_CODES or error.get("is_transient") is True:
        verdict = Verdict.RETRY
    elif code in HOLD_CODES or (code == 100 and subcode == 33):
        verdict = Verdict.HOLD
    elif status >= 500 or status == 429:
        verdict = Verdict.RETRY
    else:
        verdict = Verdict.FAILED
    return Outcome(verdict, status, code, subcode, trace, message, retry_after=_business_use_case_wait(response))


def unreachable(reason: str) -> Outcome:
    """A network error: Meta may or may not have the events, so retry with the same event_id."""
    return Outcome(Verdict.RETRY, message=reason[:MESSAGE_LIMIT])


def timed_out(seconds: float) -> Outcome:
    """No answer in time: the request may well have been delivered, so the retry waits (not at once)."""
    return Outcome(Verdict.RETRY, retry_after=MAYBE_DELIVERED_WAIT,
                   message=f"Meta did not answer within {seconds:g} s; it may have the event, so it is sent "
                           f"again (same event_id) in {MAYBE_DELIVERED_WAIT // 60} minutes or more")


def is_expired(event_time_s: int, now: float) -> bool:
    return now >= event_time_s + WINDOW - EXPIRE_MARGIN


def backoff(attempts: int, rand: float, retry_after: float | None = None) -> float:
    """Seconds before the next try: exponential from one minute, capped at an hour, with jitter."""
    ceiling = min(3600.0, 60.0 * 2.0 ** max(0, attempts - 1))
    delay = ceiling / 2 + rand * ceiling / 2
    return max(delay, retry_after or 0.0)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _business_use_case_wait(response: HttpResponse) -> float | None:
    """``X-Business-Use-Case``'s ``estimated_time_to_regain_access`` (minutes), as seconds."""
    raw = response.header("X-Business-Use-Case")
    if not raw:
        return None
    try:
        usage = json.loads(raw)
        waits = [entry.get("estimated_time_to_regain_access", 0) for entries in usage.values() for entry in entries]
    except (ValueError, AttributeError, TypeError):
        return None
    minutes = max((w for w in waits if isinstance(w, int | float)), default=0)
    return float(minutes) * 60 if minutes else None
