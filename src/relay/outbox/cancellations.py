"""A cancellation, whatever the Purchase row's state: the statements that record it, and what they say.

An order cancelled before it was sent becomes ``skipped`` through the ordinary UPSERT (``ledger._RECORD``).
Once Meta has the Purchase (or it is being sent, or has left the queue), the UPSERT touches nothing, so
the cancellation is marked on the row itself (``cancelled_at``; the row keeps ``sent``), and, when the shop
opted in (``<SHOP>_SEND_CANCELLATIONS=1``), an ``OrderCancelled`` row is queued, only while the Purchase
row is ``sent`` and at most once (its primary key). A Purchase that was in flight when the cancellation
came is not retried if that send failed (``NOT_RETRIED``); if it succeeded, the next listing of the
cancelled order queues the ``OrderCancelled`` row.

All of it runs in the transaction of the UPSERT, so a cancellation costs no extra D1 call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.core.capi import CANCEL_EVENT_NAME, EVENT_NAME
from relay.core.ports import QueryResult
from relay.outbox.rows import NewRow

# Pseudo-states ``Ledger.record`` answers for a cancellation of an order that the UPSERT no longer changes.
RECORDED = "cancelled"                 # marked on a row Meta has (or that is in flight or done)
QUEUED = "cancellation due"            # and an OrderCancelled event is queued for Meta

_MARK = f"""
UPDATE outbox SET cancelled_at = ?, updated_at = ?
WHERE shop = ? AND order_id = ? AND event_name = '{EVENT_NAME}' AND cancelled_at IS NULL
RETURNING state
"""

_QUEUE = f"""
INSERT INTO outbox (shop, order_id, event_name, order_number, event_id, event_time, state, payment_status,
                    order_updated_at, payload, match_keys, needs_lines, source, attempts, next_attempt_at,
                    last_error, created_at, updated_at)
SELECT ?, ?, ?, ?, ?, ?, 'due', ?, ?, ?, ?, 0, ?, 0, ?, NULL, ?, ?
WHERE EXISTS (SELECT 1 FROM outbox WHERE shop = ? AND order_id = ? AND event_name = '{EVENT_NAME}'
              AND state = 'sent')
ON CONFLICT (shop, order_id, event_name) DO NOTHING
RETURNING state
"""

# Run after a send's outcome is written: a cancelled Purchase whose send failed is not tried again.
NOT_RETRIED = f"""
UPDATE outbox SET state = 'skipped', next_attempt_at = NULL,
    payload = json_remove(payload, '$.user_data.client_ip_address', '$.user_data.client_user_agent'),
    last_error = 'order cancelled while it was being sent; not sent again'
WHERE shop = ? AND event_name = '{EVENT_NAME}' AND cancelled_at IS NOT NULL AND state IN ('due', 'retry')
"""


def statements(row: NewRow, event: NewRow | None, now: int) -> list[tuple[str, Sequence[Any]]]:
    """What records the cancellation ``row`` stands for (after its UPSERT), and queues ``event`` if given."""
    out: list[tuple[str, Sequence[Any]]] = [(_MARK, (row.cancelled_at or now, now, row.shop, row.order_id))]
    if event is not None:
        assert event.event_name == CANCEL_EVENT_NAME
        out.append((_QUEUE, (event.shop, event.order_id, event.event_name, event.order_number, event.event_id,
                             event.event_time, event.payment_status, event.order_updated_at, event.payload,
                             event.match_keys, event.source, now, now, now, row.shop, row.order_id)))
    return out


def outcome(upsert: QueryResult, rest: Sequence[QueryResult]) -> str | None:
    """``Ledger.record``'s answer for a cancellation: the UPSERT's state when it changed the row (``skipped``),
    ``QUEUED`` or ``RECORDED`` when only the mark or the OrderCancelled row did, ``None`` for a repeat."""
    if rest[1:] and rest[1].rows:
        return QUEUED
    if upsert.rows:
        return str(upsert.rows[0]["state"])
    return RECORDED if rest and rest[0].rows else None
