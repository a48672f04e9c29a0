"""The identity bridge's tables (migrations 0006 and 0010): SQL that runs unchanged on D1 and SQLite.

- ``take`` is two D1 calls. The first counts the client's posts this minute (an IPv6 client by its /64,
  what one subscriber gets; an IPv4 one by its address), reads the order's facts when the ledger knows the
  order, its posts so far and the shop's hour, and deletes what is past retention. ``relay.core.binding``
  then decides where the post goes, and the second call writes that: a post that is not bound to a known
  order is not kept, a bound one may replace one that is not, and the order's pending posts are settled.
  A client over ``RATE`` costs the first call only.
- A bound post for an order held for it (``BRIDGE_WAIT``) makes that order due in the same write.
- The send path reads the order's posts through the claim (``CLAIM_COLUMN``, a column of the claim's own
  answer), so choosing costs no extra call, and ``decided`` settles every post of the order and clears
  their IP address and user agent in the same batch that finishes the event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.core import binding
from relay.core.binding import Placed, Slot
from relay.core.bridge import KEEP, Post, Record
from relay.core.clients import client_network
from relay.core.ports import Database

RATE = 20              # posts per client (an IPv6 /64 or an IPv4 address) and minute; a shopper posts once
CLIENT_MINUTES = 5     # how long a client's counts are kept

_COUNT = """
INSERT INTO bridge_clients (client, minute, posts) VALUES (?, ?, 1)
ON CONFLICT (client, minute) DO UPDATE SET posts = posts + 1
RETURNING posts
"""

# The order as the ledger has it, found by number through migration 0007's index, then exactly.
_ORDER = """
SELECT state, event_time, json_extract(payload, '$.user_data.client_user_agent') AS agent,
       json_extract(payload, '$.custom_data.value') AS total
FROM outbox WHERE shop = ? AND order_number = ? COLLATE NOCASE AND order_number = ? AND event_name = 'Purchase'
"""
_KEPT = "SELECT id, received_at, consent, value, user_agent, binding FROM bridge WHERE shop = ? AND order_number = ?"
_HOUR = "SELECT stored FROM bridge_shops WHERE shop = ? AND hour = ?"

_DELETE_OLD_CLIENTS = "DELETE FROM bridge_clients WHERE minute < ?"
DELETE_OLD = "DELETE FROM bridge WHERE received_at < ?"   # also run by the cron pass: (now - KEEP,)
_DELETE_OLD_HOURS = "DELETE FROM bridge_shops WHERE hour < ?"

_SETTLE = """
UPDATE bridge SET binding = json_extract(?, '$.r' || id)
WHERE shop = ? AND order_number = ? AND binding IS NULL
"""
_EVICT = "DELETE FROM bridge WHERE id = ? AND shop = ?"
_EVICT_SHOP_OLDEST = """
DELETE FROM bridge WHERE id = (
    SELECT id FROM bridge WHERE shop = ? AND binding IS NULL ORDER BY received_at, id LIMIT 1)
"""
_STORE = """
INSERT INTO bridge (shop, order_number, received_at, consent, fbp, fbc, fbclid, value, url, ip, user_agent, binding)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
WHERE (SELECT COUNT(*) FROM bridge WHERE shop = ? AND order_number = ?) < ?
RETURNING id
"""
_TALLY = """
INSERT INTO bridge_shops (shop, hour, stored, dropped, after_send) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (shop, hour) DO UPDATE SET stored = stored + excluded.stored, dropped = dropped + excluded.dropped,
    after_send = after_send + excluded.after_send
"""
# A paid order held for its post (BRIDGE_WAIT) becomes due now.
_DUE_NOW = """
UPDATE outbox SET next_attempt_at = ?, updated_at = ?
WHERE shop = ? AND order_number = ? COLLATE NOCASE AND order_number = ?
  AND event_name = 'Purchase' AND state = 'due' AND next_attempt_at > ?
RETURNING order_id
"""

# A column for the claim's RETURNING: the order's posts as a JSON array (``[]`` when none came).
CLAIM_COLUMN = """(SELECT json_group_array(json_object('id', b.id, 'received_at', b.received_at,
        'consent', b.consent, 'fbp', b.fbp, 'fbc', b.fbc, 'fbclid', b.fbclid, 'value', b.value, 'ip', b.ip,
        'user_agent', b.user_agent, 'binding', b.binding))
    FROM bridge b WHERE b.shop = outbox.shop AND b.order_number = outbox.order_number) AS bridge"""

_DECIDED = """
UPDATE bridge SET ip = NULL, user_agent = NULL, binding = COALESCE(binding, json_extract(?, '$.r' || id)),
    verdict = COALESCE(verdict, json_extract(?, '$.r' || id))
WHERE shop = ? AND order_number = ?
"""


@dataclass(frozen=True)
class Taken:
    stored: bool = False        # kept (bound, or pending while the order is not known)
    limited: bool = False       # the client is over ``RATE``: nothing stored
    bound: bool = False         # kept and bound to its known order
    held: list[int] = field(default_factory=list)   # orders held for this post, due now


def client_key(ip: str | None) -> str:
    """What the rate limit counts by: a hash of the address (an IPv6 one's /64), never the address."""
    text = client_network(ip) or (ip or "").strip() or "-"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def records_of(order_number: str, column: str | None) -> list[Record]:
    """The claim's ``bridge`` column as ``Record``s, oldest first."""
    raw: list[dict[str, Any]] = json.loads(column) if column else []
    records = [Record(order_number=order_number, received_at=int(r["received_at"]), consent=r["consent"],
                      fbp=r.get("fbp"), fbc=r.get("fbc"), fbclid=r.get("fbclid"), value=r.get("value"),
                      ip=r.get("ip"), user_agent=r.get("user_agent"), id=int(r["id"]), binding=r.get("binding"))
               for r in raw]
    return sorted(records, key=lambda r: (r.received_at, r.id))


def decided(shop: str, order_number: str, bindings: Mapping[int, str],
            verdicts: Mapping[int, str]) -> tuple[str, Sequence[Any]]:
    """The statement that settles an order's posts once its event is sent, skipped or failed, and clears
    their IP address and user agent."""
    return _DECIDED, (_by_id(bindings), _by_id(verdicts), shop, order_number)


def _by_id(values: Mapping[int, str]) -> str:
    return json.dumps({f"r{k}": v for k, v in values.items()})


class BridgeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def take(self, shop: str, post: Post, ip: str | None, user_agent: str | None, now: int) -> Taken:
        client, minute, hour = client_key(ip), now // 60, now // 3600
        number = post.order_number
        counted, order, kept, tally, *_ = await self.db.batch([
            (_COUNT, (client, minute)),
            (_ORDER, (shop, number, number)),
            (_KEPT, (shop, number)),
            (_HOUR, (shop, hour)),
            (_DELETE_OLD_CLIENTS, (minute - CLIENT_MINUTES,)),
            (DELETE_OLD, (now - KEEP,)),
            (_DELETE_OLD_HOURS, (hour - KEEP // 3600,)),
        ])
        if int(counted.rows[0]["posts"]) > RATE:
            return Taken(limited=True)
        value = str(post.value) if post.value is not None else None
        new = Record(order_number=number, received_at=now, consent=post.consent, value=value, user_agent=user_agent)
        placed, final = _placed(order.rows)
        slot = binding.place(new, placed, final, [_record(number, r) for r in kept.rows],
                             int(tally.rows[0]["stored"]) if tally.rows else 0)
        writes = _writes(shop, post, ip, user_agent, now, slot)
        results = await self.db.batch(writes)
        answers = {sql: result.rows for (sql, _), result in zip(writes, results, strict=True)}
        stored = bool(answers.get(_STORE))
        held = [int(r["order_id"]) for r in answers.get(_DUE_NOW, [])] if stored else []
        return Taken(stored=stored, bound=stored and slot.binding == binding.BOUND, held=held)

    async def bound(self, shop: str, order_number: str, order: Placed) -> bool:
        """Whether a post bound to ``order`` is in already (the order is being recorded: no wait for one)."""
        result = await self.db.run(_KEPT, (shop, order_number))
        return any(binding.binding(_record(order_number, r), order) == binding.BOUND for r in result.rows)

    async def rows(self, shop: str | None = None) -> list[dict[str, Any]]:
        result = await self.db.run(
            "SELECT * FROM bridge WHERE shop = ? OR ? IS NULL ORDER BY shop, order_number, received_at", (shop, shop))
        return result.rows


def _placed(rows: list[dict[str, Any]]) -> tuple[Placed | None, bool]:
    """The order's facts from its ledger row (``None``: the ledger does not know it yet), and whether its
    event is decided."""
    if not rows:
        return None, False
    r = rows[0]
    return Placed.of(r.get("agent"), r["event_time"], r.get("total")), r["state"] in binding.FINAL


def _record(number: str, r: Mapping[str, Any]) -> Record:
    return Record(order_number=number, received_at=int(r["received_at"]), consent=r["consent"], value=r.get("value"),
                  user_agent=r.get("user_agent"), id=int(r["id"]), binding=r.get("binding"))


def _writes(shop: str, post: Post, ip: str | None, user_agent: str | None, now: int,
            slot: Slot) -> list[tuple[str, Sequence[Any]]]:
    """The second call: settle, make room, store, release a held order, and count the post for the hour."""
    number = post.order_number
    out: list[tuple[str, Sequence[Any]]] = []
    if slot.settle:
        out.append((_SETTLE, (_by_id(slot.settle), shop, number)))
    if slot.stored:
        if slot.evict is not None:
            out.append((_EVICT, (slot.evict, shop)))
        elif slot.evict_shop_oldest:
            out.append((_EVICT_SHOP_OLDEST, (shop,)))
        value = str(post.value) if post.value is not None else None
        out.append((_STORE, (shop, number, now, post.consent, post.fbp, post.fbc, post.fbclid, value, post.url, ip,
                             user_agent, slot.binding, shop, number, binding.PER_ORDER)))
        if slot.binding == binding.BOUND:
            out.append((_DUE_NOW, (now, now, shop, number, number, now)))
    out.append((_TALLY, (shop, now // 3600, int(slot.stored), int(slot.outcome in ("unbound", "full")),
                         int(slot.outcome == "after"))))
    return out
