"""Replay: put an order's event (or every failed or retrying one) back in the queue, or say why not.

One decision for every caller: ``POST /orders/replay`` in the Worker and ``relay serve``, the
dashboard's Replay button, and ``relay replay`` on a local database. What a replay refuses, and why:

- a cancelled order: cancelled orders are never sent (not even again);
- an order the shopper did not consent to (the shop's consent mode): it is never sent;
- an event outside Meta's 7-day window: Meta would refuse the whole request that carried it;
- an order not paid yet: it goes out by itself once Lightspeed reports it paid;
- an event being sent right now: its sender's lease decides, and a second sender would send twice;
- a number the ledger does not know: the backfill has not listed it (or it is older than the ledger keeps).

A replay only re-queues (one D1 call); sending is the caller's next step (``send``), within what is
left of its invocation's subrequest budget, and the cron pass sends whatever that did not reach.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relay.core.capi import is_expired
from relay.core.config import Shop
from relay.core.errors import BudgetExhausted
from relay.jobs import delivery, limits
from relay.jobs.runtime import Runtime
from relay.outbox.orders import REPLAYABLE, OrderRows

STATES = ("failed", "retry")          # what a replay by state may name
SHOW_REFUSED = 50                     # refusals listed by a replay by state (the total is counted)

REASONS = {
    "unknown": "is not in the ledger: run the backfill (relay backfill --shop {shop}, or wait for the next cron "
               "run), which lists it from Lightspeed; orders older than 90 days are no longer kept",
    "cancelled": "was cancelled: cancelled orders are never sent to Meta",
    "consent": "was not sent because the shopper's consent did not allow it ({shop_prefix}CONSENT_MODE); a "
               "replay never overrides that",
    "outside_window": "was placed on {placed}, outside Meta's 7-day window: Meta refuses events that old, so it "
                      "stays as it is",
    "waiting": "is not paid yet: it is sent by itself once Lightspeed reports it paid",
    "sending": "is being sent right now: look again in a minute",
}


@dataclass(frozen=True)
class Refused:
    number: str
    code: str                 # a key of ``REASONS``: what the dashboard decides its button by
    reason: str
    order_id: int | None = None

    def body(self) -> dict[str, Any]:
        return {"number": self.number, "order_id": self.order_id, "code": self.code, "reason": self.reason}


@dataclass
class Replay:
    shop: str
    requeued: list[dict[str, Any]] = field(default_factory=list)   # {"order_id", "event_name", "order_number"}
    refused: list[Refused] = field(default_factory=list)
    refused_total: int = 0

    @property
    def order_ids(self) -> list[int]:
        return sorted({int(r["order_id"]) for r in self.requeued})

    def body(self) -> dict[str, Any]:
        return {"shop": self.shop, "requeued": len(self.requeued),
                "orders": sorted({str(r["order_number"]) for r in self.requeued}),
                "refused": [r.body() for r in self.refused], "refused_total": self.refused_total}


def is_cancelled(row: Mapping[str, Any]) -> bool:
    """Cancelled before it was sent (``skipped``), or after (the row's cancellation mark)."""
    return (row.get("state") == "skipped" and not is_consent_skip(row)) or bool(row.get("cancelled_at"))


def is_consent_skip(row: Mapping[str, Any]) -> bool:
    """Skipped at send time because consent did not let it go (relay.jobs.consent), not cancelled."""
    return row.get("state") == "skipped" and row.get("consent") == "skip"


def refusal(row: Mapping[str, Any], now: int) -> str | None:
    """Why this ledger row cannot be replayed now (a key of ``REASONS``), or ``None`` when it can."""
    if is_cancelled(row):
        return "cancelled"
    if is_consent_skip(row):
        return "consent"
    state = row.get("state")
    if state == "waiting":
        return "waiting"
    if state == "sending":
        return "sending"
    if state == "expired" or is_expired(int(row["event_time"]), now):
        return "outside_window"
    if state not in REPLAYABLE:
        return "cancelled" if state == "skipped" else "outside_window"
    return None


def refused(shop: str, code: str, number: str, row: Mapping[str, Any] | None = None) -> Refused:
    placed = ""
    if row is not None:
        placed = datetime.fromtimestamp(int(row["event_time"]), UTC).strftime("%Y-%m-%d")
    order_id = int(row["order_id"]) if row is not None else None
    reason = REASONS[code].format(shop=shop, shop_prefix=shop.upper() + "_", placed=placed)
    return Refused(number, code, f"order {number} {reason}", order_id)


async def requeue(rt: Runtime, shop: str, *, number: str | None = None, order_id: int | None = None,
                  state: str | None = None) -> Replay:
    """Re-queue one order (by ``number`` or ``order_id``) or every event in ``state``; nothing is sent here."""
    if sum(x is not None for x in (number, order_id, state)) != 1:
        raise ValueError("replay one order (number or order_id) or one state")
    now = rt.now()
    orders = OrderRows(rt.db)
    result = Replay(shop)
    if state is not None:
        if state not in STATES:
            raise ValueError(f"a replay by state takes {' or '.join(STATES)}")
        moved, left, total = await orders.requeue_state(shop, state, now, SHOW_REFUSED)
        result.requeued = moved
        result.refused = [refused(shop, refusal(r, now) or "outside_window", str(r["order_number"]), r) for r in left]
        result.refused_total = total
    else:
        rows = (await orders.by_number(shop, number.strip()) if number is not None
                else await orders.by_order_id(shop, int(order_id or 0)))
        label = number.strip() if number is not None else str(order_id)
        if not rows:
            result.refused = [refused(shop, "unknown", label)]
        elif any(is_cancelled(r) for r in rows):
            result.refused = [refused(shop, "cancelled", str(rows[0]["order_number"]), rows[0])]
        elif any(is_consent_skip(r) for r in rows):
            result.refused = [refused(shop, "consent", str(rows[0]["order_number"]), rows[0])]
        else:
            ready = [r for r in rows if refusal(r, now) is None]
            result.refused = [refused(shop, code, str(r["order_number"]), r)
                              for r in rows if (code := refusal(r, now)) is not None]
            result.requeued = await orders.requeue_rows(
                shop, [(int(r["order_id"]), str(r["event_name"])) for r in ready], now)
            if len(result.requeued) < len(ready):    # it moved on between the read and the update
                result.refused.append(refused(shop, "sending", label, ready[0]))
        result.refused_total = len(result.refused)
    for r in result.requeued:
        rt.log.add(shop, now, kind="decision", source="replay", order_id=int(r["order_id"]),
                   order_number=r.get("order_number"), state="due",
                   reason="re-queued by a replay")
    return result


async def send(rt: Runtime, shop: Shop, result: Replay, room: int | None = None) -> delivery.SendReport:
    """Send what ``requeue`` put back, within ``room`` subrequests (``None``: no limit, as on CPython).

    One order is claimed by its id; a replay by state sends the shop's due rows in one batch sized to
    the room, as the cron pass sizes its turns. A shop whose token is held sends nothing; whatever is
    not sent here stays due for the cron pass. On the Workers Free plan nothing is sent here, as a webhook's
    order is not (``limits.sends_inline``): a send is four subrequests, more CPU than the plan's 10 ms leaves
    a request after its own work, and the cron sends it.
    """
    if not result.requeued:
        return delivery.SendReport()
    if not limits.sends_inline(rt.env, rt.cpu_limited):
        return delivery.SendReport(due=len(result.requeued))
    ids = result.order_ids
    if room is None:
        if len(ids) == 1:
            return await delivery.send_due(rt, shop, order_id=ids[0])
        return await delivery.send_due(rt, shop)
    spare = room - limits.SEND_OVERHEAD
    cap = min(max(limits.MIN_META_REQUESTS, spare // 4), spare - 1)
    batch = min(delivery.BATCH_SIZE, spare - cap)         # each event may need its order lines fetched
    if cap < 1 or batch < 1:
        return delivery.SendReport(due=len(result.requeued))
    try:
        return await delivery.send_due(rt, shop, order_id=ids[0] if len(ids) == 1 else None, limit=batch,
                                       max_requests=cap)
    except BudgetExhausted as exc:        # a planning slip: what was claimed goes back when its lease ends
        rt.log.add(shop.name, rt.now(), kind="warning", error=str(exc))
        return delivery.SendReport()
