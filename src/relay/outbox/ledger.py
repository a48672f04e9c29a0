"""The outbox ledger: SQL that runs unchanged on D1 and SQLite, behind the ``Database`` port.

Why each statement looks the way it does:
- ``record`` is one UPSERT, so two webhooks for the same order (``orders/created`` and
  ``orders/paid``) racing each other still leave one row; its ``WHERE`` refuses stale updates
  (older ``updatedAt``) and touches nothing once a row is sending or final. No row back = duplicate.
- ``claim`` is one ``UPDATE … WHERE rowid IN (SELECT … LIMIT n) RETURNING``: a row moves to
  ``sending`` under a fresh lease token in a single statement, so two senders (the webhook's
  ``waitUntil`` and the cron sweep) can never both get it. A lease that runs out (the Worker died
  mid-send) makes the row claimable again.
- ``finish`` only writes where the lease token still matches. A row that goes back unsent keeps its
  event with the lines it was sent with: its next attempt needs no ``products.json`` call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from relay.core.capi import EXPIRE_MARGIN, WINDOW
from relay.core.ports import Database, QueryResult
from relay.outbox import cancellations
from relay.outbox.bridge import CLAIM_COLUMN
from relay.outbox.rows import Claimed, Finished, NewRow, ShopState

_RECORD_FIELDS = ("shop", "order_id", "event_name", "order_number", "event_id", "event_time", "state",
                  "payment_status", "order_updated_at", "payload", "match_keys", "needs_lines", "source", "attempts",
                  "next_attempt_at", "last_error", "created_at", "updated_at")
_RECORD_COLUMNS = ", ".join(_RECORD_FIELDS)


def _record_values(param: Callable[[int], str]) -> str:
    """The VALUES of ``_RECORD_FIELDS``: ``param(i)`` for the i-th of ``record_params``, 0 for ``attempts``."""
    values, i = [], 0
    for name in _RECORD_FIELDS:
        if name == "attempts":        # a row is recorded before any attempt
            values.append("0")
        else:
            values.append(param(i))
            i += 1
    return ", ".join(values)


_RECORD_UPSERT = """
ON CONFLICT (shop, order_id, event_name) DO UPDATE SET
    state = CASE WHEN outbox.state = 'retry' AND excluded.state = 'due' THEN 'retry' ELSE excluded.state END,
    next_attempt_at = CASE WHEN outbox.state IN ('due', 'retry') AND excluded.state = 'due'
                           THEN outbox.next_attempt_at ELSE excluded.next_attempt_at END,
    payment_status = excluded.payment_status,
    order_updated_at = COALESCE(excluded.order_updated_at, outbox.order_updated_at),
    payload = excluded.payload,
    match_keys = excluded.match_keys,
    needs_lines = excluded.needs_lines,
    last_error = CASE WHEN excluded.last_error IS NULL THEN outbox.last_error ELSE excluded.last_error END,
    cancelled_at = CASE WHEN excluded.state = 'skipped' THEN outbox.cancelled_at END,
    updated_at = excluded.updated_at
WHERE outbox.state IN ('waiting', 'due', 'retry', 'skipped')
  AND (excluded.order_updated_at IS NULL OR outbox.order_updated_at IS NULL
       OR excluded.order_updated_at >= outbox.order_updated_at)
  AND (outbox.state <> excluded.state OR outbox.payload <> excluded.payload)
"""
_RECORD = f"""
INSERT INTO outbox ({_RECORD_COLUMNS})
VALUES ({_record_values(lambda i: "?")})
{_RECORD_UPSERT}
RETURNING state
"""
# The same UPSERT for many rows in one statement: each row is a JSON array of ``record_params`` in the one
# parameter (``json_each``), so a listed page of 250 orders is one statement, not 250. ``WHERE true`` tells
# SQLite that ``ON CONFLICT`` belongs to the UPSERT, not to a join. RETURNING's order is unspecified, so each
# changed row says which it is.
_RECORD_MANY = f"""
INSERT INTO outbox ({_RECORD_COLUMNS})
SELECT {_record_values(lambda i: f"json_extract(value, '$[{i}]')")}
FROM json_each(?) WHERE true
{_RECORD_UPSERT}
RETURNING order_id, event_name, state
"""

_CLAIM = """
UPDATE outbox
SET state = 'sending', lease_token = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
WHERE rowid IN (
    SELECT id FROM (
        SELECT rowid AS id, next_attempt_at AS t, order_id FROM outbox
        WHERE shop = ?{order} AND state IN ('due', 'retry') AND next_attempt_at <= ? AND event_time > ?
        UNION ALL
        SELECT rowid, lease_until, order_id FROM outbox
        WHERE shop = ?{order} AND state = 'sending' AND lease_until <= ? AND event_time > ?
    ) ORDER BY t, order_id LIMIT ?
)
RETURNING order_id, event_name, order_number, event_id, event_time, payload, needs_lines, attempts, match_keys,
    {bridge}
"""
# Two shapes of one statement, one for the webhook's order and one for the sweep, so that each finds
# its rows through an index. Neither ever claims an event past Meta's window: the sweep marks those
# ``expired`` (``expire``), and the webhook path need not spend a call on that first.
_CLAIM_DUE = _CLAIM.format(order="", bridge=CLAIM_COLUMN)
_CLAIM_ORDER = _CLAIM.format(order=" AND order_id = ?", bridge=CLAIM_COLUMN)
# The webhook's claim, unless the shop is held under this very token (a replaced token is released after).
_CLAIM_ORDER_UNHELD = _CLAIM_ORDER.replace("\n)\nRETURNING", """
) AND NOT EXISTS (SELECT 1 FROM shops WHERE shops.shop = ? AND shops.held_until > ? AND shops.held_token = ?)
RETURNING""")

# Every outcome of a send in one statement: the outcomes are rows of a JSON array (``json_each``), joined to
# the ledger on its primary key; only rows whose lease still holds are written.
_FINISH_FIELDS = ("order_id", "event_name", "state", "payload", "lines", "next_attempt_at", "status", "code",
                  "subcode", "fbtrace_id", "error", "sent_at", "consent", "consent_source")
_FINISH_MANY = f"""
UPDATE outbox
SET state = f.state, payload = f.payload, needs_lines = CASE WHEN f.lines THEN 0 ELSE outbox.needs_lines END,
    next_attempt_at = f.next_attempt_at, last_status = f.status, last_code = f.code, last_subcode = f.subcode,
    last_fbtrace_id = f.fbtrace_id, last_error = f.error, sent_at = f.sent_at, lease_token = NULL,
    lease_until = NULL, updated_at = ?,
    consent = COALESCE(f.consent, outbox.consent), consent_source = COALESCE(f.consent_source, outbox.consent_source)
FROM (SELECT {", ".join(f"json_extract(value, '$[{i}]') AS {name}" for i, name in enumerate(_FINISH_FIELDS))}
      FROM json_each(?)) AS f
WHERE outbox.shop = ? AND outbox.order_id = f.order_id AND outbox.event_name = f.event_name
  AND outbox.lease_token = ?
"""

JSON_PARAM_LIMIT = 500_000   # characters of one JSON parameter (D1 caps a string value at 2 MB)


def json_chunks(rows: Sequence[Sequence[Any]], limit: int = JSON_PARAM_LIMIT) -> list[str]:
    """``rows`` as JSON arrays of arrays, each under ``limit`` characters (one row over it goes alone).

    ASCII only (``json.dumps``' default), so characters are bytes; ``json_extract`` unescapes them.
    """
    chunks: list[str] = []
    part: list[str] = []
    size = 0
    for row in rows:
        item = json.dumps(list(row), separators=(",", ":"))
        if part and size + len(item) + 1 > limit:
            chunks.append("[" + ",".join(part) + "]")
            part, size = [], 0
        part.append(item)
        size += len(item) + 1
    if part:
        chunks.append("[" + ",".join(part) + "]")
    return chunks


RETENTION = 90 * 24 * 3600   # how long the outbox keeps an order, by its event_time (as long as the R2 logs)

_DELETE_OLD = """
DELETE FROM outbox WHERE event_time < ? AND state NOT IN ('due', 'retry', 'sending')
"""

_BROWSER_FIELDS = "'$.user_data.client_ip_address', '$.user_data.client_user_agent'"

_EXPIRE = f"""
UPDATE outbox
SET state = 'expired', lease_token = NULL, lease_until = NULL, updated_at = ?,
    payload = json_remove(payload, {_BROWSER_FIELDS}),
    last_error = 'older than Meta''s 7-day event_time window; not sent'
WHERE shop = ? AND event_time <= ?
  AND (state IN ('due', 'retry') OR (state = 'sending' AND lease_until <= ?))
RETURNING order_id, event_id
"""

# Rows that can no longer be sent keep no IP address or user agent (Meta's only unhashed personal data).
_FORGET_BROWSER = f"""
UPDATE outbox
SET payload = json_remove(payload, {_BROWSER_FIELDS})
WHERE has_browser AND event_time <= ? AND (shop = ? OR ? IS NULL)
  AND state NOT IN ('due', 'retry', 'sending')
"""


class Ledger:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, row: NewRow, now: int, after: tuple[str, Sequence[Any]] | None = None) -> str | None:
        """Store or update an order's event; the new state, or ``None`` when nothing changed (a duplicate).

        A cancelled order may also answer ``cancellations.RECORDED`` or ``QUEUED`` (see there). ``after`` runs
        right after the UPSERT of an order that is not cancelled (one statement), in the same call: it may read
        ``changes()`` (``relay.outbox.log_spool.decision``); a cancelled order's record ignores it."""
        statements = record_statements(row, now)
        if len(statements) == 1:
            if after is not None:
                result = (await self.db.batch([statements[0], after]))[0]
            else:
                result = await self.db.run(*statements[0])
            return recorded_state(result)
        results = await self.db.batch(statements)
        return cancellations.outcome(results[0], results[1:])

    async def expire(self, shop: str, now: int) -> list[dict[str, Any]]:
        """Open rows about to leave Meta's window become ``expired`` before they can poison a request,
        and every row past the window forgets the shopper's IP address and user agent."""
        cutoff = now - (WINDOW - EXPIRE_MARGIN)
        expired, _ = await self.db.batch([(_EXPIRE, (now, shop, cutoff, now)), (_FORGET_BROWSER, (cutoff, shop, shop))])
        return expired.rows

    async def claim(self, shop: str, now: int, token: str, lease_seconds: int, limit: int,
                    order_id: int | None = None) -> list[Claimed]:
        head, cutoff = (token, now + lease_seconds, now), now - (WINDOW - EXPIRE_MARGIN)
        if order_id is None:
            result = await self.db.run(_CLAIM_DUE, (*head, shop, now, cutoff, shop, now, cutoff, limit))
        else:
            result = await self.db.run(
                _CLAIM_ORDER, (*head, shop, order_id, now, cutoff, shop, order_id, now, cutoff, limit))
        return claimed_rows(result.rows)

    async def claim_order(self, shop: str, order_id: int, now: int, token: str, lease_seconds: int,
                          fingerprint: str, limit: int) -> tuple[ShopState, list[Claimed]]:
        """The shop's state and the claim of one order, in one D1 call (the webhook's send). Nothing is
        claimed while the shop is held under the token whose ``fingerprint`` is given."""
        head, cutoff = (token, now + lease_seconds, now), now - (WINDOW - EXPIRE_MARGIN)
        state, claim = await self.db.batch([
            ("SELECT * FROM shops WHERE shop = ?", (shop,)),
            (_CLAIM_ORDER_UNHELD, (*head, shop, order_id, now, cutoff, shop, order_id, now, cutoff, limit,
                                   shop, now, fingerprint)),
        ])
        return (shop_state(state.rows[0]) if state.rows else ShopState(shop)), claimed_rows(claim.rows)

    async def finish(self, shop: str, token: str, now: int, results: Sequence[Finished],
                     also: Sequence[tuple[str, Sequence[Any]]] = ()) -> None:
        """Write each event's outcome; ``also`` runs in the same transaction (the bridge's cleanup)."""
        if results:
            await self.db.batch(finish_statements(shop, token, now, results, also))

    async def get(self, shop: str, order_id: int, event_name: str = "Purchase") -> dict[str, Any] | None:
        result = await self.db.run(
            "SELECT * FROM outbox WHERE shop = ? AND order_id = ? AND event_name = ?", (shop, order_id, event_name))
        return result.rows[0] if result.rows else None

    async def rows(self, shop: str | None = None) -> list[dict[str, Any]]:
        result = await self.db.run(
            "SELECT * FROM outbox WHERE shop = ? OR ? IS NULL ORDER BY shop, order_id", (shop, shop))
        return result.rows

    async def shop_state(self, shop: str) -> ShopState:
        result = await self.db.run("SELECT * FROM shops WHERE shop = ?", (shop,))
        return shop_state(result.rows[0]) if result.rows else ShopState(shop)

    async def save_currency(self, shop: str, currency: str, now: int) -> ShopState:
        """Store the shop's currency; answers the shop's whole state (its hold too) from the same statement."""
        result = await self.db.run(
            "INSERT INTO shops (shop, currency, currency_at, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (shop) DO UPDATE SET currency = excluded.currency, currency_at = excluded.currency_at, "
            "currency_lease_until = NULL, updated_at = excluded.updated_at RETURNING *", (shop, currency, now, now))
        return shop_state(result.rows[0])

    async def take_currency_lease(self, shop: str, now: int, until: int) -> bool:
        """Whether this caller may fetch the shop's currency now (relay.jobs.currency): one at a time."""
        result = await self.db.run(
            "INSERT INTO shops (shop, currency_lease_until, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (shop) DO UPDATE SET currency_lease_until = excluded.currency_lease_until, "
            "updated_at = excluded.updated_at "
            "WHERE shops.currency_lease_until IS NULL OR shops.currency_lease_until <= ? RETURNING shop",
            (shop, until, now, now))
        return bool(result.rows)

    async def hold(self, shop: str, until: int, token_fingerprint: str, reason: str, now: int) -> None:
        await self.db.run(
            "INSERT INTO shops (shop, held_until, held_token, held_reason, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (shop) DO UPDATE SET held_until = excluded.held_until, held_token = excluded.held_token, "
            "held_reason = excluded.held_reason, updated_at = excluded.updated_at",
            (shop, until, token_fingerprint, reason, now))

    async def release(self, shop: str, now: int) -> None:
        """Lift a hold and make the shop's waiting retries due now (its token was replaced)."""
        await self.db.batch([
            ("UPDATE shops SET held_until = NULL, held_token = NULL, held_reason = NULL, updated_at = ? "
             "WHERE shop = ?", (now, shop)),
            ("UPDATE outbox SET next_attempt_at = ?, updated_at = ? WHERE shop = ? AND state = 'retry'",
             (now, now, shop)),
        ])




def record_statements(row: NewRow, now: int) -> list[tuple[str, Sequence[Any]]]:
    """The UPSERT of ``row``, and for a cancelled order the statements that record the cancellation."""
    upsert: list[tuple[str, Sequence[Any]]] = [(_RECORD, record_params(row, now))]
    if row.cancelled_at is None:
        return upsert
    return upsert + cancellations.statements(row, row.cancel_event, now)


def recorded_state(result: QueryResult) -> str | None:
    """What ``_RECORD``'s ``RETURNING`` says: the row's new state, or ``None`` when the UPSERT changed nothing."""
    return result.rows[0]["state"] if result.rows else None


def record_params(row: NewRow, now: int) -> tuple[Any, ...]:
    return (
        row.shop, row.order_id, row.event_name, row.order_number, row.event_id, row.event_time, row.state,
        row.payment_status, row.order_updated_at, row.payload, row.match_keys, int(row.needs_lines),
        row.source, (row.not_before or now) if row.state == "due" else None, row.last_error, now, now,
    )


def claimed_rows(rows: list[dict[str, Any]]) -> list[Claimed]:
    return [
        Claimed(
            order_id=int(r["order_id"]), event_name=r["event_name"], order_number=r["order_number"],
            event_id=r["event_id"], event_time=int(r["event_time"]), payload=r["payload"],
            needs_lines=bool(r["needs_lines"]), attempts=int(r["attempts"]), match_keys=r["match_keys"],
            bridge=r.get("bridge"),
        )
        for r in rows
    ]


def finish_statements(shop: str, token: str, now: int, results: Sequence[Finished],
                      also: Sequence[tuple[str, Sequence[Any]]] = ()) -> list[tuple[str, Sequence[Any]]]:
    """One shop's outcomes, where its lease still holds (one statement), then ``also`` (one transaction)."""
    rows = [(f.order_id, f.event_name, f.state, f.payload, f.lines_fetched, f.next_attempt_at, f.status, f.code,
             f.subcode, f.fbtrace_id, f.error, f.sent_at, f.consent, f.consent_source) for f in results]
    return [(_FINISH_MANY, (now, chunk, shop, token)) for chunk in json_chunks(rows)] + [
        (cancellations.NOT_RETRIED, (shop,)), *also]


def shop_state(r: dict[str, Any]) -> ShopState:
    return ShopState(r["shop"], r["currency"], r["currency_at"], r["held_until"], r["held_token"], r["held_reason"])
