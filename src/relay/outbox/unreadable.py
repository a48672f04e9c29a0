"""Orders a listing could not read: kept per shop with their reason, so /status can show them.

The listing stores a page's readable orders and moves on (one bad order must never stop it); each
unreadable one is upserted here in the same transaction, and an order that reads well again leaves.
Rows older than ``KEEP`` go too: by then the order is outside Meta's window and the listing's overlap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from relay.core.ports import Database

KEEP = 7 * 24 * 3600

_UPSERT = """
INSERT INTO unreadable (shop, order_id, reason, source, seen_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (shop, order_id) DO UPDATE SET reason = excluded.reason, source = excluded.source,
    seen_at = excluded.seen_at
"""

_FORGET = """
DELETE FROM unreadable
WHERE shop = ? AND (seen_at < ? OR order_id IN (SELECT value FROM json_each(?)))
"""

_SUMMARY = """
SELECT shop, COUNT(*) AS n, MAX(seen_at) AS t FROM unreadable WHERE seen_at >= ? GROUP BY shop
"""

_LATEST = """
SELECT shop, order_id, reason, seen_at FROM unreadable AS u
WHERE seen_at >= ? AND seen_at = (SELECT MAX(seen_at) FROM unreadable WHERE shop = u.shop)
ORDER BY shop, order_id
"""


def statements(shop: str, readable: Sequence[int], unreadable: Sequence[tuple[int | None, str]], now: int,
               source: str = "backfill") -> list[tuple[str, Sequence[Any]]]:
    """What a listed page changes here: its readable orders leave, its unreadable ones are (re)recorded."""
    out: list[tuple[str, Sequence[Any]]] = []
    if readable or unreadable:
        out.append((_FORGET, (shop, now - KEEP, json.dumps(list(readable)))))
    out += [(_UPSERT, (shop, order_id or 0, reason, source, now)) for order_id, reason in unreadable]
    return out


async def summary(db: Database, now: int) -> dict[str, dict[str, Any]]:
    """Per shop: how many listed orders could not be read in the last week, and the latest with its reason."""
    since = now - KEEP
    summary, latest = await db.batch([(_SUMMARY, (since,)), (_LATEST, (since,))])
    counts = {r["shop"]: int(r["n"]) for r in summary.rows}
    out: dict[str, dict[str, Any]] = {}
    for r in latest.rows:
        if r["shop"] in out:
            continue
        out[r["shop"]] = {"orders": counts.get(r["shop"], 1), "latest_order_id": int(r["order_id"]) or None,
                          "latest_reason": r["reason"], "latest_at": int(r["seen_at"])}
    return out
