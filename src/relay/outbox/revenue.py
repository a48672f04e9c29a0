"""What Meta was told a shop earned, and what of that the shop no longer has: net revenue per shop.

Confirmed revenue is the ``value`` of every Purchase Meta accepted (state ``sent``), in the currency it was
sent with; an order cancelled after it was sent still counts in Meta's reports, so it is taken off again
here, and the difference is what the ads really brought in. One query over all shops, by order time.
"""

from __future__ import annotations

from typing import Any

from relay.core.ports import Database

DAY = 86400
WINDOWS = {"7d": 7 * DAY, "30d": 30 * DAY}

# A cancellation after sending is marked on the Purchase row (relay.outbox.cancellations), so it is subtracted.
CANCELLED_AFTER_SENT = "cancelled_at IS NOT NULL"
TRACKED = True

_REVENUE = f"""
SELECT shop, COALESCE(json_extract(payload, '$.custom_data.currency'), '') AS currency,
       SUM(CASE WHEN event_time >= ?1 THEN 1 ELSE 0 END) AS n7,
       SUM(CASE WHEN event_time >= ?1 THEN json_extract(payload, '$.custom_data.value') ELSE 0 END) AS v7,
       SUM(CASE WHEN event_time >= ?1 AND {CANCELLED_AFTER_SENT} THEN 1 ELSE 0 END) AS c7,
       SUM(CASE WHEN event_time >= ?1 AND {CANCELLED_AFTER_SENT}
                THEN json_extract(payload, '$.custom_data.value') ELSE 0 END) AS cv7,
       COUNT(*) AS n30, SUM(json_extract(payload, '$.custom_data.value')) AS v30,
       SUM(CASE WHEN {CANCELLED_AFTER_SENT} THEN 1 ELSE 0 END) AS c30,
       SUM(CASE WHEN {CANCELLED_AFTER_SENT} THEN json_extract(payload, '$.custom_data.value') ELSE 0 END) AS cv30
FROM outbox WHERE state = 'sent' AND event_name = 'Purchase' AND event_time >= ?2
GROUP BY shop, currency ORDER BY shop, n30 DESC
"""


def empty() -> dict[str, Any]:
    return {"cancellations_tracked": TRACKED, **{w: [] for w in WINDOWS}}


async def net_revenue(db: Database, now: int) -> dict[str, dict[str, Any]]:
    """Per shop and window (``7d``, ``30d``), one entry per currency: orders and value confirmed by Meta,
    orders and value cancelled after sending, and the net value."""
    rows = (await db.run(_REVENUE, (now - WINDOWS["7d"], now - WINDOWS["30d"]))).rows
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        shop = out.setdefault(str(r["shop"]), empty())
        for window, suffix in (("7d", "7"), ("30d", "30")):
            orders = int(r[f"n{suffix}"] or 0)
            if not orders:
                continue
            confirmed = round(float(r[f"v{suffix}"] or 0), 2)
            cancelled = round(float(r[f"cv{suffix}"] or 0), 2)
            shop[window].append({
                "currency": r["currency"] or None, "confirmed_orders": orders, "confirmed": confirmed,
                "cancelled_orders": int(r[f"c{suffix}"] or 0), "cancelled": cancelled,
                "net": round(confirmed - cancelled, 2)})
    return out
