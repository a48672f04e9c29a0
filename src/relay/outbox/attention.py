"""The dashboard's own reads: the orders that need attention, a search by order number, and each shop's
time zone as its orders show it. They go out in the one D1 call that /status's figures go in
(relay.outbox.one_call).

Rows carry delivery facts only, never ``payload`` (no customer data, not even hashed). "Needs
attention" is every event touched in the last 7 days that is not sent and not cancelled: failed,
expired, retrying, waiting for payment, and queued or being sent (which a held shop's events are).

Only the rows a shop's list shows are read (``SHOW_PER_SHOP``, picked in SQL in the page's order), with
the shop's full count beside them: a day of missed webhooks leaves hundreds of orders due, and reading
them all to show thirty cost a free-plan page more than its 10 ms of CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.core.ports import Database

ATTENTION = ("failed", "expired", "retry", "waiting", "due", "sending")
SHOW_PER_SHOP = 30             # rows read and shown per shop; the rest are counted
# The list's order: what the owner can act on first (failed, then retrying), then newest first.
RANK = ("CASE state WHEN 'failed' THEN 0 WHEN 'retry' THEN 1 WHEN 'due' THEN 2 WHEN 'sending' THEN 2 "
        "WHEN 'expired' THEN 3 WHEN 'waiting' THEN 4 ELSE 5 END")
SEARCH_LIMIT = 20
DAY = 86400

COLUMNS = ("shop, order_id, event_name, order_number, event_time, state, payment_status, attempts, "
           "next_attempt_at, last_status, last_code, last_subcode, last_error, sent_at, created_at, updated_at")


@dataclass
class Reads:
    attention: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # by shop, in RANK order
    counts: dict[str, int] = field(default_factory=dict)     # by shop: all the rows that need attention
    found: list[dict[str, Any]] = field(default_factory=list)                  # the search, all shops
    utc_offsets: dict[str, int] = field(default_factory=dict)                  # learned from orders


async def read(db: Database, shops: Sequence[str], now: int, number: str | None = None) -> Reads:
    if not shops:
        return Reads()
    marks = ", ".join("?" for _ in shops)
    states = ", ".join(f"'{s}'" for s in ATTENTION)
    statements: list[tuple[str, Sequence[Any]]] = [
        (f"SELECT {COLUMNS}, total FROM (SELECT {COLUMNS}, ROW_NUMBER() OVER (PARTITION BY shop "
         f"ORDER BY {RANK}, event_time DESC, order_id DESC) AS pick, COUNT(*) OVER (PARTITION BY shop) "
         f"AS total FROM outbox WHERE state IN ({states}) AND updated_at >= ? AND shop IN ({marks})) "
         "WHERE pick <= ? ORDER BY shop, pick",
         (now - 7 * DAY, *shops, SHOW_PER_SHOP)),
        ("SELECT shop, utc_offset FROM backfill WHERE utc_offset IS NOT NULL", ()),
    ]
    if number:
        statements.append((f"SELECT {COLUMNS} FROM outbox WHERE shop IN ({marks}) AND order_number = ? "
                           "COLLATE NOCASE ORDER BY event_time DESC LIMIT ?", (*shops, number, SEARCH_LIMIT)))
    results = await db.batch(statements)
    reads = Reads(utc_offsets={str(r["shop"]): int(r["utc_offset"]) for r in results[1].rows})
    for row in results[0].rows:
        reads.attention.setdefault(str(row["shop"]), []).append(row)
        reads.counts[str(row["shop"])] = int(row.pop("total"))
    if number:
        reads.found = results[2].rows
    return reads
