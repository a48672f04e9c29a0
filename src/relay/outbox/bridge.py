"""The identity bridge's table (migrations/0006_bridge.sql): SQL that runs unchanged on D1 and SQLite.

- ``take`` is one D1 batch: it counts the client's posts this minute, stores the post only while that
  count is within ``RATE``, and deletes what is past retention, so a flood costs one call per post and
  the table cleans itself even when no cron pass runs.
- The first post for an order is kept (``ON CONFLICT … posts = posts + 1``): a later one is counted,
  never applied, so nobody can replace a shopper's click ids after the fact.
- The send path reads a row through the claim (``CLAIM_COLUMN``, a column of the claim's own answer),
  so merging costs no extra call, and ``decided`` clears the IP address and user agent in the same
  batch that finishes the event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relay.core.bridge import KEEP, Post, Record
from relay.core.ports import Database

RATE = 20              # posts per client (IP address) and minute; a shopper posts once per order
CLIENT_MINUTES = 5     # how long a client's counts are kept

_COUNT = """
INSERT INTO bridge_clients (client, minute, posts) VALUES (?, ?, 1)
ON CONFLICT (client, minute) DO UPDATE SET posts = posts + 1
RETURNING posts
"""

_STORE = """
INSERT INTO bridge (shop, order_number, received_at, consent, fbp, fbc, fbclid, value, url, ip, user_agent)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
WHERE (SELECT posts FROM bridge_clients WHERE client = ? AND minute = ?) <= ?
ON CONFLICT (shop, order_number) DO UPDATE SET posts = posts + 1
RETURNING posts
"""

_DELETE_OLD_CLIENTS = "DELETE FROM bridge_clients WHERE minute < ?"
DELETE_OLD = "DELETE FROM bridge WHERE received_at < ?"   # also run by the cron pass: (now - KEEP,)

# A column for the claim's RETURNING: the order's stored post as a JSON object, or NULL.
CLAIM_COLUMN = """(SELECT json_object('received_at', b.received_at, 'consent', b.consent, 'fbp', b.fbp,
        'fbc', b.fbc, 'fbclid', b.fbclid, 'value', b.value, 'ip', b.ip, 'user_agent', b.user_agent)
    FROM bridge b WHERE b.shop = outbox.shop AND b.order_number = outbox.order_number) AS bridge"""

_DECIDED = """
UPDATE bridge SET ip = NULL, user_agent = NULL, verdict = COALESCE(verdict, ?)
WHERE shop = ? AND order_number = ?
"""

# By number through migration 0007's index (shop, order_number COLLATE NOCASE), then exactly.
_DUE_NOW = """
UPDATE outbox SET next_attempt_at = ?, updated_at = ?
WHERE shop = ? AND order_number = ? COLLATE NOCASE AND order_number = ?
  AND event_name = 'Purchase' AND state = 'due' AND next_attempt_at > ?
RETURNING order_id
"""


_AFTER_DECISION = """
UPDATE bridge SET ip = NULL, user_agent = NULL, verdict = COALESCE(verdict, 'after')
WHERE shop = ? AND order_number = ? AND EXISTS (
    SELECT 1 FROM outbox WHERE shop = ? AND order_number = ? COLLATE NOCASE AND order_number = ?
      AND event_name = 'Purchase' AND state IN ('sent', 'failed', 'skipped', 'expired'))
"""


@dataclass(frozen=True)
class Taken:
    stored: bool        # the first post for this order: stored
    limited: bool       # the client is over ``RATE``: nothing stored


def client_key(ip: str | None) -> str:
    """What the rate limit counts by: a hash of the address, never the address."""
    return hashlib.sha256((ip or "-").encode("utf-8")).hexdigest()[:24]


def record_of(order_number: str, column: str | None) -> Record | None:
    """The claim's ``bridge`` column as a ``Record``."""
    if not column:
        return None
    raw: dict[str, Any] = json.loads(column)
    return Record(order_number=order_number, received_at=int(raw["received_at"]), consent=raw["consent"],
                  fbp=raw.get("fbp"), fbc=raw.get("fbc"), fbclid=raw.get("fbclid"), value=raw.get("value"),
                  ip=raw.get("ip"), user_agent=raw.get("user_agent"))


def decided(shop: str, order_number: str, verdict: str) -> tuple[str, Sequence[Any]]:
    """The statement that ends a post's use once its order is sent, skipped or failed."""
    return _DECIDED, (verdict, shop, order_number)


class BridgeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def take(self, shop: str, post: Post, ip: str | None, user_agent: str | None, now: int) -> Taken:
        client, minute = client_key(ip), now // 60
        value = str(post.value) if post.value is not None else None
        counted, stored, _, _ = await self.db.batch([
            (_COUNT, (client, minute)),
            (_STORE, (shop, post.order_number, now, post.consent, post.fbp, post.fbc, post.fbclid, value,
                      post.url, ip, user_agent, client, minute, RATE)),
            (_DELETE_OLD_CLIENTS, (minute - CLIENT_MINUTES,)),
            (DELETE_OLD, (now - KEEP,)),
        ])
        if int(counted.rows[0]["posts"]) > RATE:
            return Taken(stored=False, limited=True)
        return Taken(stored=bool(stored.rows) and int(stored.rows[0]["posts"]) == 1, limited=False)

    async def exists(self, shop: str, order_number: str) -> bool:
        result = await self.db.run(
            "SELECT 1 AS found FROM bridge WHERE shop = ? AND order_number = ?", (shop, order_number))
        return bool(result.rows)

    async def arrived(self, shop: str, order_number: str, now: int) -> list[int]:
        """A paid order held for this post becomes due now (its order id, if one was held); and when the
        order's event is already decided (the post came after the send), the post keeps no IP address or
        user agent. One D1 call."""
        held, _ = await self.db.batch([
            (_DUE_NOW, (now, now, shop, order_number, order_number, now)),
            (_AFTER_DECISION, (shop, order_number, shop, order_number, order_number)),
        ])
        return [int(r["order_id"]) for r in held.rows]

    async def rows(self, shop: str | None = None) -> list[dict[str, Any]]:
        result = await self.db.run(
            "SELECT * FROM bridge WHERE shop = ? OR ? IS NULL ORDER BY shop, order_number", (shop, shop))
        return result.rows

    async def coverage(self, since: int) -> list[dict[str, Any]]:
        """Per shop, over paid orders with ``event_time >= since``: how many had a post, with fbc, with fbp,
        each consent choice, and the posts not attached (repeats, early, late, wrong value)."""
        result = await self.db.run(_COVERAGE, (since,))
        return result.rows


_COVERAGE = """
SELECT o.shop AS shop,
       COUNT(*) AS paid,
       COUNT(b.order_number) AS bridged,
       SUM((b.fbc IS NOT NULL OR b.fbclid IS NOT NULL) AND COALESCE(b.verdict, 'attached') = 'attached')
           AS with_fbc,
       SUM(b.fbp IS NOT NULL AND COALESCE(b.verdict, 'attached') = 'attached') AS with_fbp,
       SUM(b.consent = 'granted') AS granted,
       SUM(b.consent = 'denied') AS denied,
       SUM(b.consent = 'unknown') AS unknown,
       SUM(COALESCE(b.posts, 1) - 1) AS repeats,
       SUM(b.verdict IN ('early', 'late', 'value')) AS rejected
FROM outbox o LEFT JOIN bridge b ON b.shop = o.shop AND b.order_number = o.order_number
WHERE o.event_time >= ? AND o.event_name = 'Purchase'
  AND (o.state IN ('due', 'sending', 'sent', 'retry', 'failed', 'expired') OR o.consent = 'skip')
GROUP BY o.shop ORDER BY o.shop
"""
