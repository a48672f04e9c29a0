"""The identity bridge's figures for /status and the dashboard: per shop, over paid orders of a period,
how many had a post that counted and what it carried, and the posts kept out. One D1 batch for all shops.

A post "counted" for an order when it was the first bound one at the order's send (its ``verdict`` is
``attached`` or ``denied``; ``relay.core.binding``). Posts kept out are those stored but not used
(``unused``: bound, after the first; ``agent``, ``early``, ``late``, ``value``: not bound) and those never
stored (``bridge_shops``: not bound to their known order, or after its event was decided).
"""

from __future__ import annotations

from typing import Any

from relay.core.ports import Database

_COVERAGE = """
SELECT o.shop AS shop,
       COUNT(*) AS paid,
       COUNT(c.id) AS bridged,
       SUM(c.verdict = 'attached' AND (c.fbc IS NOT NULL OR c.fbclid IS NOT NULL)) AS with_fbc,
       SUM(c.verdict = 'attached' AND c.fbp IS NOT NULL) AS with_fbp,
       SUM(c.consent = 'granted') AS granted,
       SUM(c.consent = 'denied') AS denied,
       SUM(c.consent = 'unknown') AS unknown,
       SUM((SELECT COUNT(*) FROM bridge u WHERE u.shop = o.shop AND u.order_number = o.order_number
            AND u.verdict = 'unused')) AS repeats,
       SUM((SELECT COUNT(*) FROM bridge r WHERE r.shop = o.shop AND r.order_number = o.order_number
            AND r.verdict IN ('agent', 'early', 'late', 'value'))) AS rejected
FROM outbox o LEFT JOIN bridge c ON c.shop = o.shop AND c.order_number = o.order_number
                                AND c.verdict IN ('attached', 'denied')
WHERE o.event_time >= ? AND o.event_name = 'Purchase'
  AND (o.state IN ('due', 'sending', 'sent', 'retry', 'failed', 'expired') OR o.consent = 'skip')
GROUP BY o.shop ORDER BY o.shop
"""

_TALLIES = """
SELECT shop, SUM(dropped) AS dropped, SUM(after_send) AS after_send FROM bridge_shops WHERE hour >= ?
GROUP BY shop ORDER BY shop
"""


async def coverage(db: Database, since: int) -> dict[str, dict[str, Any]]:
    """Per shop: ``paid``, ``bridged``, ``with_fbc``, ``with_fbp``, ``granted``, ``denied``, ``unknown``,
    ``repeats``, ``rejected`` (stored and not bound, plus not stored because not bound) and ``after`` (posts
    that came once the order's event was decided)."""
    orders, tallies = await db.batch([(_COVERAGE, (since,)), (_TALLIES, (since // 3600,))])
    out: dict[str, dict[str, Any]] = {r["shop"]: dict(r) for r in orders.rows}
    for t in tallies.rows:
        entry = out.setdefault(t["shop"], {"shop": t["shop"]})
        entry["rejected"] = int(entry.get("rejected") or 0) + int(t["dropped"] or 0)
        entry["after"] = int(t["after_send"] or 0)
    return out
