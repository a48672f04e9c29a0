"""The relay's work: take in a webhook, send what is due, sweep every shop. Async, ports injected.

The Worker (``src/entry.py``) and the local runner (``relay.local``) both build a ``Runtime`` from
their own edges and call these functions, so both behave the same.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from relay import capi, lightspeed_api, match
from relay.capi import Outcome, Verdict
from relay.config import Settings, Shop, load_settings, load_shop
from relay.delivery_log import DeliveryLog
from relay.errors import LightspeedError, SignatureError
from relay.ledger import Claimed, Finished, Ledger, NewRow
from relay.order import Line, Order, parse_webhook
from relay.ports import Blobs, Database, Http
from relay.signature import verify

LEASE_SECONDS = 120
HOLD_SECONDS = 3600          # a shop whose token is refused is tried again after this, or at once on a new token
CURRENCY_MAX_AGE = 24 * 3600
BATCH_SIZE = 100             # events per Meta request in the sweep (Meta allows 1,000)


@dataclass
class Runtime:
    env: Mapping[str, str]
    db: Database
    http: Http
    blobs: Blobs | None = None
    clock: Callable[[], float] = time.time
    random: Callable[[], float] = random.random
    env_names: Iterable[str] | None = None
    log: DeliveryLog = field(default_factory=DeliveryLog)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.env)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.db)

    def now(self) -> int:
        return int(self.clock())


@dataclass(frozen=True)
class WebhookResult:
    shop: Shop
    order_id: int
    body: dict[str, Any]

    @property
    def should_send(self) -> bool:
        """Only a new or changed paid order is sent from the webhook. A duplicate (Lightspeed fires
        ``orders/updated`` on every status change) costs no further call: whatever it might still find
        due, the cron sweep sends."""
        return self.body["status"] == "accepted"


# --- taking in an order -------------------------------------------------------------------------------------


SENDABLE = ("due", "waiting")   # states whose event may still go to Meta, so keep the IP and user agent


def row_for(order: Order, shop: Shop, now: int, source: str) -> NewRow:
    """The ledger row an order asks for: due when paid, waiting when not yet, skipped when cancelled."""
    event = capi.build_event(order, shop)
    reason = None
    if order.is_cancelled:
        state = "skipped"
        reason = "order cancelled before it was sent"
    elif order.is_paid:
        state = "due"
        if capi.is_expired(event["event_time"], now):
            state, reason = "expired", "older than Meta's 7-day event_time window; not sent"
    else:
        state = "waiting"
    return NewRow(
        shop=shop.name, order_id=order.id, event_name=capi.EVENT_NAME, order_number=order.number,
        event_id=event["event_id"], event_time=event["event_time"], state=state,
        payment_status=order.payment_status or "unknown",
        order_updated_at=int(order.updated_at.timestamp()) if order.updated_at else None,
        payload=capi.dumps(event if state in SENDABLE else capi.without_browser_data(event)),
        match_keys=",".join(match.key_names(event["user_data"])),
        needs_lines=order.lines is None, source=source, last_error=reason,
    )


async def record_order(rt: Runtime, shop: Shop, order: Order, source: str) -> str | None:
    """Store an order's event; its new state, or ``None`` when the ledger already had exactly this."""
    now = rt.now()
    row = row_for(order, shop, now, source)
    state = await rt.ledger.record(row, now)
    rt.log.add(shop.name, now, kind="decision", source=source, order_id=order.id, event_id=row.event_id,
               state=state or "unchanged", reason=row.last_error, match_keys=row.match_keys)
    return state


IGNORED_REASONS = {
    "waiting": "not paid yet: stored, and sent once Lightspeed reports it paid",
    "skipped": "order cancelled: never sent",
    "expired": "older than Meta's 7-day window: stored as expired, not sent",
}


async def receive_webhook(rt: Runtime, shop_name: str, headers: Mapping[str, str], body: bytes) -> WebhookResult:
    """Verify, parse and store one Lightspeed webhook. ``headers`` have lower-case names."""
    shop = load_shop(rt.env, shop_name)
    verify(body, headers.get("x-signature"), shop.lightspeed_secret)
    sent_shop_id = headers.get("x-shop-id")
    if sent_shop_id is not None and sent_shop_id.strip() != shop.shop_id:
        raise SignatureError(
            f"X-Shop-Id does not match {shop.prefix}LIGHTSPEED_SHOP_ID: this webhook belongs to another shop; "
            "check the ?shop= in the webhook address")
    order = parse_webhook(body)
    state = await record_order(rt, shop, order, "webhook")
    answer: dict[str, Any] = {"shop": shop.name, "order_id": order.id, "event_id": capi.event_id(shop, order)}
    if state is None:
        answer["status"] = "duplicate"
    elif state in ("due", "retry"):
        answer["status"] = "accepted"
    else:
        answer["status"] = "ignored"
        answer["reason"] = IGNORED_REASONS.get(state, state)
    return WebhookResult(shop, order.id, {"status": answer.pop("status"), **answer})


# --- sending ------------------------------------------------------------------------------------------------


@dataclass
class SendReport:
    claimed: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    expired: int = 0
    held: bool = False
    requests: int = 0
    due: int = 0              # claimed but put back unsent: ``max_requests`` ran out while bisecting


DEFERRED = "not sent yet: this pass's Meta request allowance ran out; the next pass sends it"


async def send_due(rt: Runtime, shop: Shop, order_id: int | None = None, limit: int = BATCH_SIZE, *,
                   max_requests: int | None = None) -> SendReport:
    """Claim what is due for one shop (or one order) and post it to Meta in one request.

    ``max_requests`` caps the Meta requests this call may make (bisecting a rejected batch makes more);
    what is left when it runs out goes back to ``due`` for the next call. The cron pass sets it from
    its subrequest budget and the shop's per-minute allowance.
    """
    report = SendReport()
    now = rt.now()
    state = await rt.ledger.shop_state(shop.name)
    if state.held_until is not None:
        if state.held_token != shop.meta_token.fingerprint():
            await rt.ledger.release(shop.name, now)
            rt.log.add(shop.name, now, kind="hold", state="released", reason="Meta token replaced; resending")
        elif state.held_until > now:
            report.held = True
            return report
    for row in await rt.ledger.expire(shop.name, now) if order_id is None else ():
        report.expired += 1
        rt.log.add(shop.name, now, kind="decision", order_id=row["order_id"], event_id=row["event_id"],
                   state="expired", reason="older than Meta's 7-day window")
    token = uuid.uuid4().hex
    claimed = await rt.ledger.claim(shop.name, now, token, LEASE_SECONDS, limit, order_id)
    report.claimed = len(claimed)
    if not claimed:
        return report
    finished: list[Finished] = []
    ready: list[tuple[Claimed, dict[str, Any]]] = []
    try:
        currency = await _currency(rt, shop, state.currency, state.currency_at, now)
    except LightspeedError as exc:
        finished = [_retry(rt, c, Outcome(Verdict.RETRY, message=str(exc)), now) for c in claimed]
    else:
        for row in claimed:
            event = json.loads(row.payload)
            if row.needs_lines:
                try:
                    event = capi.with_lines(event, await _lines(rt, shop, row.order_id))
                except LightspeedError as exc:
                    if exc.retryable:
                        finished.append(_retry(rt, row, Outcome(Verdict.RETRY, message=str(exc)), now))
                        continue
                    rt.log.add(shop.name, now, kind="warning", order_id=row.order_id,
                               error=f"sending without contents: {exc}")
            ready.append((row, capi.with_currency(event, currency)))
        finished += await _post(rt, shop, ready, now, report, max_requests)
    await rt.ledger.finish(shop.name, token, now, finished)
    for f in finished:
        setattr(report, f.state, getattr(report, f.state) + 1)
    return report


async def _post(rt: Runtime, shop: Shop, batch: list[tuple[Claimed, dict[str, Any]]], now: int,
                report: SendReport, max_requests: int | None = None) -> list[Finished]:
    """One Meta request for ``batch``; a payload error in a batch is bisected so good events still go."""
    if not batch:
        return []
    if max_requests is not None and report.requests >= max_requests:
        return [_finished(row, Outcome(Verdict.RETRY, message=DEFERRED), "due", row.payload, next_attempt_at=now)
                for row, _ in batch]
    request = capi.events_request(shop, rt.settings, [event for _, event in batch])
    started = time.monotonic()
    report.requests += 1
    try:
        outcome = capi.classify(await rt.http.send(request), len(batch))
    except TimeoutError:
        outcome = capi.unreachable(f"Meta did not answer within {request.timeout} s; will retry")
    except OSError as exc:
        outcome = capi.unreachable(f"Meta could not be reached ({type(exc).__name__}); will retry")
    ms = int((time.monotonic() - started) * 1000)
    if outcome.verdict is Verdict.FAILED and len(batch) > 1:
        half = len(batch) // 2
        return (await _post(rt, shop, batch[:half], now, report, max_requests)
                + await _post(rt, shop, batch[half:], now, report, max_requests))
    if outcome.verdict is Verdict.HOLD:
        until = now + HOLD_SECONDS
        await rt.ledger.hold(shop.name, until, shop.meta_token.fingerprint(), outcome.message or "", now)
        rt.log.add(shop.name, now, kind="hold", state="held", code=outcome.code, status=outcome.status,
                   error=f"{outcome.message}; replace {shop.prefix}META_ACCESS_TOKEN (a system-user token with "
                         "ads_management for this pixel); events stay queued")
        report.held = True
    results = []
    for row, event in batch:
        rt.log.add(shop.name, now, kind="attempt", order_id=row.order_id, event_id=row.event_id,
                   verdict=outcome.verdict.value, status=outcome.status, code=outcome.code, subcode=outcome.subcode,
                   fbtrace_id=outcome.fbtrace_id, events_received=outcome.events_received, error=outcome.message,
                   attempts=row.attempts, events=len(batch), ms=ms, match_keys=row.match_keys)
        if outcome.verdict is Verdict.SENT:
            results.append(_finished(row, outcome, "sent", capi.dumps(capi.without_browser_data(event)),
                                     sent_at=now))
        elif outcome.verdict is Verdict.FAILED:
            results.append(_finished(row, outcome, "failed", row.payload))
        elif outcome.verdict is Verdict.HOLD:
            results.append(_finished(row, outcome, "retry", row.payload, next_attempt_at=now + HOLD_SECONDS))
        else:
            results.append(_retry(rt, row, outcome, now))
    return results


def _retry(rt: Runtime, row: Claimed, outcome: Outcome, now: int) -> Finished:
    delay = capi.backoff(row.attempts, rt.random(), outcome.retry_after)
    return _finished(row, outcome, "retry", row.payload, next_attempt_at=now + int(delay))


def _finished(row: Claimed, outcome: Outcome, state: str, payload: str, **extra: Any) -> Finished:
    return Finished(
        order_id=row.order_id, event_name=row.event_name, state=state, payload=payload, status=outcome.status,
        code=outcome.code, subcode=outcome.subcode, fbtrace_id=outcome.fbtrace_id, error=outcome.message, **extra)


async def _currency(rt: Runtime, shop: Shop, cached: str | None, cached_at: int | None, now: int) -> str:
    """The shop's currency from ``shop.json``, cached a day in the ledger; a stale cache beats no answer."""
    if cached and cached_at is not None and now - cached_at < CURRENCY_MAX_AGE:
        return cached
    try:
        response = await rt.http.send(lightspeed_api.shop_request(shop, rt.settings))
        currency = lightspeed_api.parse_currency(response, shop)
    except (TimeoutError, OSError) as exc:
        if cached:
            return cached
        raise LightspeedError(f"shop '{shop.name}': Lightspeed shop.json unreachable ({type(exc).__name__}); "
                              "will retry") from exc
    except LightspeedError:
        if cached:
            return cached
        raise
    await rt.ledger.save_currency(shop.name, currency, now)
    return currency


async def _lines(rt: Runtime, shop: Shop, order_id: int) -> tuple[Line, ...]:
    try:
        response = await rt.http.send(lightspeed_api.order_products_request(shop, rt.settings, order_id))
    except (TimeoutError, OSError) as exc:
        raise LightspeedError(f"shop '{shop.name}': Lightspeed products.json unreachable; will retry") from exc
    return lightspeed_api.parse_order_products(response, shop)


# --- the sweep ----------------------------------------------------------------------------------------------


async def sweep(rt: Runtime, only: str | None = None) -> dict[str, SendReport]:
    """Send everything due now, shop by shop: the cron pass without the Lightspeed listing.

    The local server's retry timer runs this; it shares ``relay.backfill``'s turns and Meta allowance
    but has no subrequest budget (CPython has none).
    """
    from relay import backfill  # backfill builds on this module

    limits = dataclasses.replace(backfill.load_limits(rt.env), budget=None)
    report = await backfill.run_pass(rt, only=only, listing=False, limits=limits, flush=False)
    return {name: SendReport(sent=r.sent, retry=r.retry, failed=r.failed, expired=r.expired, held=r.held,
                             requests=r.requests)
            for name, r in report.shops.items()}
