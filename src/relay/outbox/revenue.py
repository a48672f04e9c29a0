"""What Meta was told a shop earned, and what of that the shop no longer has: net revenue per shop.

Confirmed revenue is the ``value`` of every Purchase Meta accepted (state ``sent``), in the currency it was
sent with; an order cancelled after it was sent still counts in Meta's reports, so it is taken off again
here, and the difference is what the ads really brought in. One query over all shops, by order time.
Beside it, for shops that send it (``<SHOP>_NET_REVENUE=1``), the profit Meta was told: the sum of
``custom_data.net_revenue`` over the same orders, less those cancelled, and how many orders carried one.
"""

from __future__ import annotations

from typing import Any

from relay.core.ports import Database

DAY = 86400
WINDOWS = {"7d": 7 * DAY, "30d": 30 * DAY}

# A cancellation after sending is marked on the Purchase row (relay.outbox.cancellations), so it is subtracted.
CANCELLED_AFTER_SENT = "cancelled_at IS NOT NULL"
TRACKED = True
_PROFIT = "json_extract(payload, '$.custom_data.net_revenue')"
_KEPT_PROFIT = f"NOT {CANCELLED_AFTER_SENT} AND {_PROFIT} IS NOT NULL"

_REVENUE = f"""
SELECT shop, COALESCE(json_extract(payload, '$.custom_data.currency'), '') AS currency,
       SUM(CASE WHEN event_time >= ?1 THEN 1 ELSE 0 END) AS n7,
       SUM(CASE WHEN event_time >= ?1 THEN json_extract(payload, '$.custom_data.value') ELSE 0 END) AS v7,
       SUM(CASE WHEN event_time >= ?1 AND {CANCELLED_AFTER_SENT} THEN 1 ELSE 0 END) AS c7,
       SUM(CASE WHEN event_time >= ?1 AND {CANCELLED_AFTER_SENT}
                THEN json_extract(payload, '$.custom_data.value') ELSE 0 END) AS cv7,
       COUNT(*) AS n30, SUM(json_extract(payload, '$.custom_data.value')) AS v30,
       SUM(CASE WHEN {CANCELLED_AFTER_SENT} THEN 1 ELSE 0 END) AS c30,
       SUM(CASE WHEN {CANCELLED_AFTER_SENT} THEN json_extract(payload, '$.custom_data.value') ELSE 0 END) AS cv30,
       SUM(CASE WHEN event_time >= ?1 AND {_KEPT_PROFIT} THEN 1 ELSE 0 END) AS pn7,
       SUM(CASE WHEN event_time >= ?1 AND {_KEPT_PROFIT} THEN {_PROFIT} ELSE 0 END) AS p7,
       SUM(CASE WHEN {_KEPT_PROFIT} THEN 1 ELSE 0 END) AS pn30,
       SUM(CASE WHEN {_KEPT_PROFIT} THEN {_PROFIT} ELSE 0 END) AS p30
FROM outbox WHERE state = 'sent' AND event_name = 'Purchase' AND event_time >= ?2
GROUP BY shop, currency ORDER BY shop, n30 DESC
"""


def empty() -> dict[str, Any]:
    return {"cancellations_tracked": TRACKED, **{w: [] for w in WINDOWS}}


async def net_revenue(db: Database, now: int) -> dict[str, dict[str, Any]]:
    """Per shop and window (``7d``, ``30d``), one entry per currency: orders and value confirmed by Meta,
    orders and value cancelled after sending, the net value, and the profit sent as ``net_revenue`` (with the
    number of orders that carried one) of the orders not cancelled."""
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
                "net": round(confirmed - cancelled, 2),
                "profit_orders": int(r[f"pn{suffix}"] or 0), "profit": round(float(r[f"p{suffix}"] or 0), 2)})
    return out
