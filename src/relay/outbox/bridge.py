"""The identity bridge's tables (migrations 0006 and 0010): SQL that runs unchanged on D1 and SQLite.

- ``take`` is one D1 call (``relay.outbox.bridge_take``): it counts the client's posts this minute (an IPv6
  client by its /64, what one subscriber gets; an IPv4 one by its address), decides in SQL where the post goes
  by ``relay.core.binding``'s rule (a post that is not bound to a known order is not kept, a bound one may
  replace one that is not, and the order's pending posts are settled), writes that, and deletes what is past
  retention. A client over ``RATE`` changes nothing but its count.
- A bound post for an order held for it (``BRIDGE_WAIT``) makes that order due in the same call.
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
from relay.core.binding import Placed
from relay.core.bridge import Post, Record
from relay.core.clients import client_network
from relay.core.ports import Database
from relay.outbox import bridge_take
from relay.outbox.bridge_take import CLIENT_MINUTES, DELETE_OLD, RATE

__all__ = ["CLAIM_COLUMN", "CLIENT_MINUTES", "DELETE_OLD", "FORGET_EXPIRED", "RATE", "BridgeStore", "Taken",
           "client_key", "decided", "records_of"]

_KEPT = "SELECT id, received_at, consent, value, user_agent, binding FROM bridge WHERE shop = ? AND order_number = ?"

# A column for the claim's RETURNING: the order's posts as a JSON array (``[]`` when none came).
CLAIM_COLUMN = """(SELECT json_group_array(json_object('id', b.id, 'received_at', b.received_at,
        'consent', b.consent, 'fbp', b.fbp, 'fbc', b.fbc, 'fbclid', b.fbclid, 'value', b.value, 'ip', b.ip,
        'user_agent', b.user_agent, 'binding', b.binding))
    FROM bridge b WHERE b.shop = outbox.shop AND b.order_number = outbox.order_number) AS bridge"""

# Run by the cron pass after its expiry: an order that left Meta's window is never sent, so the send path's
# ``decided`` never clears its posts' IP address and user agent; they are forgotten here instead, as the order's
# own row forgets its own.
FORGET_EXPIRED = """
UPDATE bridge SET ip = NULL, user_agent = NULL
WHERE (ip IS NOT NULL OR user_agent IS NOT NULL) AND EXISTS (
    SELECT 1 FROM outbox o WHERE o.shop = bridge.shop AND o.order_number = bridge.order_number
      AND o.event_name = 'Purchase' AND o.state = 'expired')
"""

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

    async def take(self, shop: str, post: Post, ip: str | None, user_agent: str | None, now: int,
                   after_store: tuple[str, Sequence[Any]] | None = None) -> Taken:
        """The post in one call; ``after_store`` runs right after ``STORE`` (``relay.outbox.log_spool.bridge``)."""
        value = str(post.value) if post.value is not None else None
        statements = bridge_take.statements(shop, post.order_number, client_key(ip), now, user_agent, value,
                                            (post.consent, post.fbp, post.fbc, post.fbclid, post.url, ip))
        if after_store is not None:
            at = next(i for i, (sql, _) in enumerate(statements) if sql == bridge_take.STORE) + 1
            statements.insert(at, after_store)
        results = await self.db.batch(statements)
        answers = {sql: result.rows for (sql, _), result in zip(statements, results, strict=True)}
        if int(answers[bridge_take.COUNT][0]["posts"]) > RATE:
            return Taken(limited=True)
        stored = answers[bridge_take.STORE]
        return Taken(stored=bool(stored), bound=bool(stored) and stored[0]["binding"] == binding.BOUND,
                     held=[int(r["order_id"]) for r in answers[bridge_take.DUE_NOW]])

    async def bound(self, shop: str, order_number: str, order: Placed) -> bool:
        """Whether a post bound to ``order`` is in already (the order is being recorded: no wait for one)."""
        result = await self.db.run(_KEPT, (shop, order_number))
        return any(binding.binding(_record(order_number, r), order) == binding.BOUND for r in result.rows)

    async def rows(self, shop: str | None = None) -> list[dict[str, Any]]:
        result = await self.db.run(
            "SELECT * FROM bridge WHERE shop = ? OR ? IS NULL ORDER BY shop, order_number, received_at", (shop, shop))
        return result.rows


def _record(number: str, r: Mapping[str, Any]) -> Record:
    return Record(order_number=number, received_at=int(r["received_at"]), consent=r["consent"], value=r.get("value"),
                  user_agent=r.get("user_agent"), id=int(r["id"]), binding=r.get("binding"))
