"""The outbox ledger: SQL that runs unchanged on D1 and SQLite, behind the ``Database`` port.

Why each statement looks the way it does:
- ``record`` is one UPSERT, so two webhooks for the same order (``orders/created`` and
  ``orders/paid``) racing each other still leave one row; its ``WHERE`` refuses stale updates
  (older ``updatedAt``) and touches nothing once a row is sending or final. No row back = duplicate.
- ``claim`` is one ``UPDATE … WHERE rowid IN (SELECT … LIMIT n) RETURNING``: a row moves to
  ``sending`` under a fresh lease token in a single statement, so two senders (the webhook's
  ``waitUntil`` and the cron sweep) can never both get it. A lease that runs out (the Worker died
  mid-send) makes the row claimable again.
- ``finish`` only writes where the lease token still matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relay.capi import EXPIRE_MARGIN, WINDOW
from relay.ports import Database

STATES = ("waiting", "due", "sending", "sent", "retry", "failed", "expired", "skipped")

_RECORD = """
INSERT INTO outbox (shop, order_id, event_name, order_number, event_id, event_time, state, payment_status,
                    order_updated_at, payload, match_keys, needs_lines, source, attempts, next_attempt_at,
                    last_error, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)
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
    updated_at = excluded.updated_at
WHERE outbox.state IN ('waiting', 'due', 'retry', 'skipped')
  AND (excluded.order_updated_at IS NULL OR outbox.order_updated_at IS NULL
       OR excluded.order_updated_at >= outbox.order_updated_at)
  AND (outbox.state <> excluded.state OR outbox.payload <> excluded.payload)
RETURNING state
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
RETURNING order_id, event_name, order_number, event_id, event_time, payload, needs_lines, attempts, match_keys
"""
# Two shapes of one statement, one for the webhook's order and one for the sweep, so that each finds
# its rows through an index. Neither ever claims an event past Meta's window: the sweep marks those
# ``expired`` (``expire``), and the webhook path need not spend a call on that first.
_CLAIM_DUE = _CLAIM.format(order="")
_CLAIM_ORDER = _CLAIM.format(order=" AND order_id = ?")

_FINISH = """
UPDATE outbox
SET state = ?, payload = ?, next_attempt_at = ?, last_status = ?, last_code = ?, last_subcode = ?,
    last_fbtrace_id = ?, last_error = ?, sent_at = ?, lease_token = NULL, lease_until = NULL, updated_at = ?
WHERE shop = ? AND order_id = ? AND event_name = ? AND lease_token = ?
"""

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


@dataclass(frozen=True)
class NewRow:
    shop: str
    order_id: int
    event_name: str
    order_number: str
    event_id: str
    event_time: int
    state: str
    payment_status: str
    order_updated_at: int | None
    payload: str
    match_keys: str
    needs_lines: bool
    source: str
    last_error: str | None = None


@dataclass(frozen=True)
class Claimed:
    order_id: int
    event_name: str
    order_number: str
    event_id: str
    event_time: int
    payload: str
    needs_lines: bool
    attempts: int
    match_keys: str


@dataclass(frozen=True)
class Finished:
    order_id: int
    event_name: str
    state: str
    payload: str
    next_attempt_at: int | None = None
    status: int | None = None
    code: int | None = None
    subcode: int | None = None
    fbtrace_id: str | None = None
    error: str | None = None
    sent_at: int | None = None


@dataclass(frozen=True)
class ShopState:
    shop: str
    currency: str | None = None
    currency_at: int | None = None
    held_until: int | None = None
    held_token: str | None = None
    held_reason: str | None = None


class Ledger:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, row: NewRow, now: int) -> str | None:
        """Store or update an order's event; the new state, or ``None`` when nothing changed (a duplicate)."""
        result = await self.db.run(_RECORD, (
            row.shop, row.order_id, row.event_name, row.order_number, row.event_id, row.event_time, row.state,
            row.payment_status, row.order_updated_at, row.payload, row.match_keys, int(row.needs_lines),
            row.source, now if row.state == "due" else None, row.last_error, now, now,
        ))
        return result.rows[0]["state"] if result.rows else None

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
        return [
            Claimed(
                order_id=int(r["order_id"]), event_name=r["event_name"], order_number=r["order_number"],
                event_id=r["event_id"], event_time=int(r["event_time"]), payload=r["payload"],
                needs_lines=bool(r["needs_lines"]), attempts=int(r["attempts"]), match_keys=r["match_keys"],
            )
            for r in result.rows
        ]

    async def finish(self, shop: str, token: str, now: int, results: Sequence[Finished]) -> None:
        if not results:
            return
        await self.db.batch([
            (_FINISH, (f.state, f.payload, f.next_attempt_at, f.status, f.code, f.subcode, f.fbtrace_id, f.error,
                       f.sent_at, now, shop, f.order_id, f.event_name, token))
            for f in results
        ])

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
        if not result.rows:
            return ShopState(shop)
        r = result.rows[0]
        return ShopState(shop, r["currency"], r["currency_at"], r["held_until"], r["held_token"], r["held_reason"])

    async def save_currency(self, shop: str, currency: str, now: int) -> None:
        await self.db.run(
            "INSERT INTO shops (shop, currency, currency_at, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (shop) DO UPDATE SET currency = excluded.currency, currency_at = excluded.currency_at, "
            "updated_at = excluded.updated_at", (shop, currency, now, now))

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


# --- the cron pass (relay.backfill) ------------------------------------------------------------------------

# Due rows per shop, and each held shop's hold (a replaced token lifts it at once, so it needs a turn).
_DUE_BY_SHOP = """
SELECT shop, COUNT(*) AS due, SUM(needs_lines) AS needs_lines, NULL AS held_until, NULL AS held_token FROM outbox
WHERE (state IN ('due', 'retry') AND next_attempt_at <= ?) OR (state = 'sending' AND lease_until <= ?)
GROUP BY shop
UNION ALL
SELECT shop, 0, 0, held_until, held_token FROM shops WHERE held_until IS NOT NULL
"""

_SAVE_LISTING = """
INSERT INTO backfill (shop, cursor, completed_at, run_since, run_filter, run_started, run_page, utc_offset, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (shop) DO UPDATE SET
    cursor = excluded.cursor, completed_at = excluded.completed_at, run_since = excluded.run_since,
    run_filter = excluded.run_filter, run_started = excluded.run_started, run_page = excluded.run_page,
    utc_offset = COALESCE(excluded.utc_offset, backfill.utc_offset), updated_at = excluded.updated_at
"""

# ``meta_requests`` is added to, not overwritten, so two passes that overlap both count.
_SAVE_TURN = """
INSERT INTO backfill (shop, paused_until, rate_limited_until, served_at, meta_window, meta_requests, last_error,
                      updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (shop) DO UPDATE SET
    paused_until = excluded.paused_until,
    rate_limited_until = excluded.rate_limited_until,
    served_at = COALESCE(excluded.served_at, backfill.served_at),
    meta_requests = CASE WHEN backfill.meta_window = excluded.meta_window
                         THEN backfill.meta_requests + excluded.meta_requests ELSE excluded.meta_requests END,
    meta_window = excluded.meta_window,
    last_error = excluded.last_error,
    updated_at = excluded.updated_at
"""

_REQUEUE = """
UPDATE outbox
SET state = 'due', next_attempt_at = ?, attempts = 0, lease_token = NULL, lease_until = NULL, updated_at = ?
WHERE shop = ? AND (order_id = ? OR ? IS NULL) AND (state = ? OR ? IS NULL)
  AND state IN ('failed', 'sent', 'retry', 'due') AND event_time > ?
RETURNING order_id
"""


@dataclass
class Progress:
    """A shop's row in ``backfill`` (migrations/0002_backfill.sql says what each column means)."""

    shop: str
    cursor: int | None = None
    completed_at: int | None = None
    run_since: int | None = None
    run_filter: str | None = None
    run_started: int | None = None
    run_page: int | None = None
    utc_offset: int | None = None
    paused_until: int | None = None
    rate_limited_until: int | None = None
    served_at: int | None = None
    meta_window: int | None = None
    meta_requests: int = 0
    last_error: str | None = None

    @property
    def listing(self) -> bool:
        """A listing run is in progress."""
        return self.run_page is not None


@dataclass(frozen=True)
class Due:
    rows: int = 0                   # due now (or a dead sender's lease ran out)
    needs_lines: int = 0            # of which need orders/{id}/products.json before sending
    held_until: int | None = None   # the shop's Meta token was refused (see ``Ledger.hold``)
    held_token: str | None = None


def _record_params(row: NewRow, now: int) -> tuple[Any, ...]:
    return (
        row.shop, row.order_id, row.event_name, row.order_number, row.event_id, row.event_time, row.state,
        row.payment_status, row.order_updated_at, row.payload, row.match_keys, int(row.needs_lines),
        row.source, now if row.state == "due" else None, row.last_error, now, now,
    )


async def _progress_rows(db: Database) -> dict[str, Progress]:
    result = await db.run("SELECT * FROM backfill")
    names = Progress.__dataclass_fields__
    return {r["shop"]: Progress(**{k: v for k, v in r.items() if k in names}) for r in result.rows}


class CronLedger(Ledger):
    """The statements only the cron pass needs; each costs one D1 call, however many rows it touches."""

    async def progress(self) -> dict[str, Progress]:
        return await _progress_rows(self.db)

    async def start_pass(self, now: int) -> dict[str, Due]:
        """What each shop has due now. The same D1 call first does the outbox's upkeep, so that a shop
        that sends nothing for days still gets it: rows past Meta's window forget the shopper's IP
        address and user agent, and rows past ``RETENTION`` are deleted (any later delivery of such an
        order is too old to send, so deleting it cannot cause a second send)."""
        window_cutoff = now - (WINDOW - EXPIRE_MARGIN)
        _, _, result = await self.db.batch([
            (_FORGET_BROWSER, (window_cutoff, None, None)),
            (_DELETE_OLD, (now - RETENTION,)),
            (_DUE_BY_SHOP, (now, now)),
        ])
        due: dict[str, Due] = {}
        for r in result.rows:
            before = due.get(r["shop"], Due())
            due[r["shop"]] = Due(before.rows + int(r["due"]), before.needs_lines + int(r["needs_lines"] or 0),
                                 r["held_until"] if r["held_until"] is not None else before.held_until,
                                 r["held_token"] if r["held_token"] is not None else before.held_token)
        return due

    async def record_page(self, rows: Sequence[NewRow], now: int, progress: Progress) -> list[str | None]:
        """A page's orders (``record``'s UPSERT, row by row) and the listing's new position, in one transaction.

        So the position can never move past an order that was not stored. Each entry of the answer is
        what ``record`` answers for that row.
        """
        p = progress
        statements: list[tuple[str, Sequence[Any]]] = [(_RECORD, _record_params(row, now)) for row in rows]
        statements.append((_SAVE_LISTING, (p.shop, p.cursor, p.completed_at, p.run_since, p.run_filter,
                                           p.run_started, p.run_page, p.utc_offset, now)))
        results = await self.db.batch(statements)
        return [r.rows[0]["state"] if r.rows else None for r in results[:-1]]

    async def save_turns(self, turns: Sequence[tuple[Progress, int]], now: int) -> None:
        """What a pass changed besides the listing: pauses, rotation, errors, and the Meta requests it made
        (``(progress, requests made this pass in progress.meta_window)``)."""
        if not turns:
            return
        await self.db.batch([
            (_SAVE_TURN, (p.shop, p.paused_until, p.rate_limited_until, p.served_at, p.meta_window, added,
                          p.last_error, now))
            for p, added in turns
        ])

    async def requeue(self, shop: str, now: int, order_id: int | None = None, state: str | None = None) -> list[int]:
        """Make sent, failed or waiting-for-retry events due now (``relay replay``), if Meta still takes them."""
        cutoff = now - (WINDOW - EXPIRE_MARGIN)
        result = await self.db.run(_REQUEUE, (now, now, shop, order_id, order_id, state, state, cutoff))
        return sorted(int(r["order_id"]) for r in result.rows)
