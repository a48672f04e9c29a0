"""Taking in an order: verify a webhook, parse it, and store the row it asks for.

The webhook and the cron listing both go through ``row_for`` and ``record_order``, so an order
becomes the same row whichever path saw it first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relay.core import capi, match
from relay.core.config import Shop, load_shop
from relay.core.errors import PayloadError, SignatureError
from relay.core.order import Order, parse_webhook
from relay.core.signature import verify
from relay.jobs import bridge
from relay.jobs.runtime import Runtime
from relay.outbox import cancellations, log_spool
from relay.outbox.rows import NewRow


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
        return bool(self.body["status"] == "accepted")



SENDABLE = ("due", "waiting")   # states whose event may still go to Meta, so keep the IP and user agent


FUTURE_TIME = "createdAt is later than the time the order was received; event_time is that time instead"


def row_for(order: Order, shop: Shop, now: int, source: str, not_before: int | None = None) -> NewRow:
    """The ledger row an order asks for: due when paid, waiting when not yet, skipped when cancelled.

    Times later than ``now`` are clamped to it: Meta refuses events from the future, and an
    ``updatedAt`` from the future would make the ledger ignore every real update after it.
    ``not_before`` holds a due row back for its bridge post (``relay.jobs.bridge.hold_until``).
    """
    event = capi.build_event(order, shop)
    reason = None
    if event["event_time"] > now:
        event["event_time"], reason = now, FUTURE_TIME
    updated = int(order.updated_at.timestamp()) if order.updated_at else None
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
        order_updated_at=None if updated is None else min(updated, now),
        payload=capi.dumps(event if state in SENDABLE else capi.without_browser_data(event)),
        match_keys=",".join(match.key_names(event["user_data"])),
        needs_lines=order.lines is None, source=source, last_error=reason,
        not_before=not_before if state == "due" else None,
        cancelled_at=now if order.is_cancelled else None,
        cancel_event=cancel_row(order, shop, now, source) if order.is_cancelled and shop.send_cancellations else None,
    )


def cancel_row(order: Order, shop: Shop, now: int, source: str) -> NewRow:
    """The ``OrderCancelled`` row: queued only if Meta has the order's Purchase (relay.outbox.cancellations)."""
    event = capi.cancellation_event(order, shop, now)
    updated = int(order.updated_at.timestamp()) if order.updated_at else None
    return NewRow(
        shop=shop.name, order_id=order.id, event_name=capi.CANCEL_EVENT_NAME, order_number=order.number,
        event_id=event["event_id"], event_time=now, state="due", payment_status=order.payment_status or "unknown",
        order_updated_at=None if updated is None else min(updated, now), payload=capi.dumps(event),
        match_keys=",".join(match.key_names(event["user_data"])), needs_lines=False, source=source)


def decision_reason(row: NewRow, state: str | None) -> str | None:
    """What the delivery log says about a recorded row: the truth about a cancellation's timing included."""
    if state == cancellations.RECORDED:
        return ("order cancelled after its Purchase reached Meta (or while it was being sent): recorded, the row "
                "keeps its state; Meta does not subtract it from the Purchase")
    if state == cancellations.QUEUED:
        return "order cancelled after its Purchase reached Meta: recorded, and an OrderCancelled event is queued"
    return row.last_error


async def record_order(rt: Runtime, shop: Shop, order: Order, source: str, spool: bool = False) -> str | None:
    """Store an order's event; its new state, or ``None`` when the ledger already had exactly this.

    ``spool``: the decision line goes to D1's ``log_spool`` in the record's own call, not to the delivery log's R2
    object (the free plan's webhook, ``relay.outbox.log_spool``); a cancelled order's record, several statements
    whose answer SQL does not fold into one line, logs as before."""
    now = rt.now()
    row = row_for(order, shop, now, source, await bridge.hold_until(rt, shop, order, now))
    fields = dict(kind="decision", source=source, order_id=order.id, order_number=order.number,
                  event_id=row.event_id)
    if spool and row.cancelled_at is None:     # a single UPSERT: its reason does not depend on its answer
        staged = log_spool.decision(shop.name, now, rt.clock(), row.event_name, **fields,
                                    reason=row.last_error, match_keys=row.match_keys)
        return await rt.ledger.record(row, now, after=staged)
    state = await rt.ledger.record(row, now)
    rt.log.add(shop.name, now, **fields,
               state=state or "unchanged", reason=decision_reason(row, state), match_keys=row.match_keys)
    return state


IGNORED_REASONS = {
    "waiting": "not paid yet: stored, and sent once Lightspeed reports it paid",
    "skipped": "order cancelled: never sent",
    "expired": "older than Meta's 7-day window: stored as expired, not sent",
    cancellations.RECORDED: "order cancelled after Meta received its Purchase: the cancellation is recorded "
                            "and no replay sends it again; Meta does not subtract it (set "
                            "<SHOP>_SEND_CANCELLATIONS=1 to send an OrderCancelled event)",
}


async def receive_webhook(rt: Runtime, shop_name: str, headers: Mapping[str, str], body: bytes,
                          spool: bool = False) -> WebhookResult:
    """Verify, parse and store one Lightspeed webhook. ``headers`` have lower-case names. ``spool``: its decision
    line is staged in D1 (``record_order``)."""
    shop = load_shop(rt.env, shop_name)
    verify(body, headers.get("x-signature"), shop.lightspeed_secret)
    sent_shop_id = headers.get("x-shop-id")
    if sent_shop_id is not None and sent_shop_id.strip() != shop.shop_id:
        raise SignatureError(
            f"X-Shop-Id does not match {shop.prefix}LIGHTSPEED_SHOP_ID: this webhook belongs to another shop; "
            "check the ?shop= in the webhook address")
    try:
        order = parse_webhook(body)
        ident = capi.event_id(shop, order)
        state = await record_order(rt, shop, order, "webhook", spool)
    except PayloadError as exc:   # signed, so Lightspeed's own data: say why in the log, store nothing
        rt.log.add(shop.name, rt.now(), kind="warning", source="webhook", error=f"order refused, not stored: {exc}")
        raise
    answer: dict[str, Any] = {"shop": shop.name, "order_id": order.id, "event_id": ident}
    if state is None:
        answer["status"] = "duplicate"
    elif state in ("due", "retry", cancellations.QUEUED):
        answer["status"] = "accepted"
        if state == cancellations.QUEUED:
            answer["reason"] = "order cancelled after Meta received its Purchase: an OrderCancelled event is sent"
    else:
        answer["status"] = "ignored"
        answer["reason"] = IGNORED_REASONS.get(state, state)
    return WebhookResult(shop, order.id, {"status": answer.pop("status"), **answer})
