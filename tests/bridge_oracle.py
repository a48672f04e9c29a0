"""The thank-you post's old write path, kept as the oracle for ``relay.outbox.bridge_take``: two D1 calls, the
decision in Python between them by ``relay.core.binding.place`` (the specification). This is the code that
``BridgeStore.take`` ran before it became one call (f08068b), unchanged but for its names; the differential
test (tests/test_bridge_take_sql.py) runs both on copies of one SQLite database and compares everything."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from relay.core import binding
from relay.core.binding import Placed, Slot
from relay.core.bridge import KEEP, Post, Record
from relay.core.ports import Database
from relay.outbox.bridge import CLIENT_MINUTES, DELETE_OLD, RATE, Taken, _by_id, client_key

_COUNT = """
INSERT INTO bridge_clients (client, minute, posts) VALUES (?, ?, 1)
ON CONFLICT (client, minute) DO UPDATE SET posts = posts + 1
RETURNING posts
"""
_ORDER = """
SELECT state, event_time, json_extract(payload, '$.user_data.client_user_agent') AS agent,
       json_extract(payload, '$.custom_data.value') AS total
FROM outbox WHERE shop = ? AND order_number = ? COLLATE NOCASE AND order_number = ? AND event_name = 'Purchase'
"""
_KEPT = "SELECT id, received_at, consent, value, user_agent, binding FROM bridge WHERE shop = ? AND order_number = ?"
_HOUR = "SELECT stored FROM bridge_shops WHERE shop = ? AND hour = ?"
_DELETE_OLD_CLIENTS = "DELETE FROM bridge_clients WHERE minute < ?"
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
_DUE_NOW = """
UPDATE outbox SET next_attempt_at = ?, updated_at = ?
WHERE shop = ? AND order_number = ? COLLATE NOCASE AND order_number = ?
  AND event_name = 'Purchase' AND state = 'due' AND next_attempt_at > ?
RETURNING order_id
"""


async def take(db: Database, shop: str, post: Post, ip: str | None, user_agent: str | None,
               now: int) -> tuple[Taken, Slot | None, str | None]:
    """What the old ``BridgeStore.take`` answered, the slot ``place`` chose (``None`` for a client over the limit)
    and the post's binding (``None`` while its order is not known), which the differential test counts to show
    that its cases reach every outcome."""
    client, minute, hour = client_key(ip), now // 60, now // 3600
    number = post.order_number
    counted, order, kept, tally, *_ = await db.batch([
        (_COUNT, (client, minute)),
        (_ORDER, (shop, number, number)),
        (_KEPT, (shop, number)),
        (_HOUR, (shop, hour)),
        (_DELETE_OLD_CLIENTS, (minute - CLIENT_MINUTES,)),
        (DELETE_OLD, (now - KEEP,)),
        (_DELETE_OLD_HOURS, (hour - KEEP // 3600,)),
    ])
    if int(counted.rows[0]["posts"]) > RATE:
        return Taken(limited=True), None, None
    value = str(post.value) if post.value is not None else None
    new = Record(order_number=number, received_at=now, consent=post.consent, value=value, user_agent=user_agent)
    placed, final = _placed(order.rows)
    slot = binding.place(new, placed, final, [_record(number, r) for r in kept.rows],
                         int(tally.rows[0]["stored"]) if tally.rows else 0)
    writes = _writes(shop, post, ip, user_agent, now, slot)
    results = await db.batch(writes)
    answers = {sql: result.rows for (sql, _), result in zip(writes, results, strict=True)}
    stored = bool(answers.get(_STORE))
    held = [int(r["order_id"]) for r in answers.get(_DUE_NOW, [])] if stored else []
    taken = Taken(stored=stored, bound=stored and slot.binding == binding.BOUND, held=held)
    return taken, slot, None if placed is None else binding.binding(new, placed)


def _placed(rows: list[dict[str, Any]]) -> tuple[Placed | None, bool]:
    if not rows:
        return None, False
    r = rows[0]
    return Placed.of(r.get("agent"), r["event_time"], r.get("total")), r["state"] in binding.FINAL


def _record(number: str, r: Mapping[str, Any]) -> Record:
    return Record(order_number=number, received_at=int(r["received_at"]), consent=r["consent"], value=r.get("value"),
                  user_agent=r.get("user_agent"), id=int(r["id"]), binding=r.get("binding"))


def _writes(shop: str, post: Post, ip: str | None, user_agent: str | None, now: int,
            slot: Slot) -> list[tuple[str, Sequence[Any]]]:
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
