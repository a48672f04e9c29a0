"""The ledger statements only the cron pass needs: due rows per shop, the listing position, turns.

Each method is one D1 call however many rows and shops it touches (``Database.batch``), because a
cron invocation spends its subrequest budget on D1 calls too: a pass starts with one call
(``start_pass``: upkeep, expiry, what is due, every shop's position and state, the reads of the jobs
that may run after the pass, and on the free plan the claim of its one event: ``relay.outbox.claim_ahead``),
claims for several shops in one (``claim_many``) and finishes them in one (``finish_many``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.core.bridge import KEEP
from relay.core.capi import EXPIRE_MARGIN, WINDOW
from relay.core.ports import Database, QueryResult
from relay.outbox import bridge, cancellations, claim_ahead
from relay.outbox.claim_ahead import Claim, ClaimAhead
from relay.outbox.ledger import (
    _BROWSER_FIELDS,
    _CLAIM_DUE,
    _DELETE_OLD,
    _FORGET_BROWSER,
    _RECORD,
    _RECORD_MANY,
    RETENTION,
    Ledger,
    claimed_rows,
    finish_statements,
    json_chunks,
    record_params,
    recorded_state,
    shop_state,
)
from relay.outbox.rows import Claimed, Due, Finished, NewRow, Progress, ShopState
from relay.outbox.unreadable import statements as unreadable_statements

# Due rows per shop, and each held shop's hold (a replaced token lifts it at once, so it needs a turn).
_DUE_BY_SHOP = """
SELECT shop, COUNT(*) AS due, SUM(needs_lines) AS needs_lines, NULL AS held_until, NULL AS held_token FROM outbox
WHERE (state IN ('due', 'retry') AND next_attempt_at <= ?) OR (state = 'sending' AND lease_until <= ?)
GROUP BY shop
UNION ALL
SELECT shop, 0, 0, held_until, held_token FROM shops WHERE held_until IS NOT NULL
"""

# Every shop's open rows about to leave Meta's window, in one statement (on the ``outbox_due`` and
# ``outbox_leases`` indexes): they become ``expired`` before they can poison a request.
_EXPIRE_ALL = f"""
UPDATE outbox
SET state = 'expired', lease_token = NULL, lease_until = NULL, updated_at = ?,
    payload = json_remove(payload, {_BROWSER_FIELDS}),
    last_error = 'older than Meta''s 7-day event_time window; not sent'
WHERE rowid IN (
    SELECT rowid FROM outbox WHERE state IN ('due', 'retry') AND event_time <= ?
    UNION ALL
    SELECT rowid FROM outbox WHERE state = 'sending' AND lease_until <= ? AND event_time <= ?
)
RETURNING shop, order_id, event_id
"""

_SAVE_LISTING = """
INSERT INTO backfill (shop, cursor, completed_at, run_since, run_filter, run_started, run_page, run_limit, utc_offset,
                      updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (shop) DO UPDATE SET
    cursor = excluded.cursor, completed_at = excluded.completed_at, run_since = excluded.run_since,
    run_filter = excluded.run_filter, run_started = excluded.run_started, run_page = excluded.run_page,
    run_limit = excluded.run_limit,
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


@dataclass
class PassStart:
    """What a pass knows after its first D1 call."""

    progress: dict[str, Progress] = field(default_factory=dict)
    due: dict[str, Due] = field(default_factory=dict)
    states: dict[str, ShopState] = field(default_factory=dict)
    expired: list[dict[str, Any]] = field(default_factory=list)     # shop, order_id, event_id
    also: list[QueryResult] = field(default_factory=list)           # the answers to ``start_pass``'s ``also``
    claimed: Claim | None = None                                    # the row claimed ahead (``claim_ahead``)


def _progress(rows: list[dict[str, Any]]) -> dict[str, Progress]:
    names = Progress.__dataclass_fields__
    return {r["shop"]: Progress(**{k: v for k, v in r.items() if k in names}) for r in rows}


async def _progress_rows(db: Database) -> dict[str, Progress]:
    return _progress((await db.run("SELECT * FROM backfill")).rows)


def _distinct_runs(rows: Sequence[NewRow]) -> list[list[NewRow]]:
    """``rows`` in order, cut wherever a row repeats an earlier one of its run: within a run each row is
    one RETURNING row at most, and a repeat is written after the row it repeats, as row by row."""
    runs: list[list[NewRow]] = []
    keys: set[tuple[int, str]] = set()
    for row in rows:
        key = (row.order_id, row.event_name)
        if not runs or key in keys:
            runs.append([])
            keys = set()
        runs[-1].append(row)
        keys.add(key)
    return runs


class CronLedger(Ledger):
    """The statements only the cron pass needs; each costs one D1 call, however many rows it touches."""

    async def progress(self) -> dict[str, Progress]:
        return await _progress_rows(self.db)

    async def start_pass(self, now: int, also: Sequence[tuple[str, Sequence[Any]]] = (),
                         ahead: ClaimAhead | None = None, upkeep: bool = True) -> PassStart:
        """Everything a pass starts from, in one D1 call. The same call first does the outbox's upkeep,
        so that a shop that sends nothing for days still gets it: rows past ``RETENTION`` are deleted
        (any later delivery of such an order is too old to send, so deleting it cannot cause a second
        send), as are bridge posts past 8 days; open rows about to leave Meta's window become
        ``expired`` (kept a pass at least: the deletion runs first); rows past the window forget the
        shopper's IP address and user agent, and so do the thank-you posts of expired orders.

        With ``ahead`` the pass's claim follows its reads (``claim_ahead``: they see what was due before it),
        answered in ``PassStart.claimed``. ``also`` are reads for others, run last in the same call (after the
        upkeep, so they see what it did) and answered in ``PassStart.also``: the cron's jobs read their tables
        here, not in calls of their own (``relay.outbox.read_ahead``); they run only after a pass that claimed
        nothing, whose claim wrote nothing. ``also``'s first statement follows the claim directly: it may read the
        claim's ``changes()`` (``relay.outbox.log_spool.read``).

        ``upkeep=False`` leaves out the deletions and the forgetting (``upkeep_of``), never the expiry: the Worker runs
        them at most every ``relay.jobs.cron_pass.UPKEEP_EVERY`` seconds, as each statement costs CPU there."""
        window_cutoff = now - (WINDOW - EXPIRE_MARGIN)
        claim = [claim_ahead.statement(ahead, now)] if ahead is not None else []
        deletes, forgets = upkeep_of(now, window_cutoff) if upkeep else ([], [])
        results = await self.db.batch([
            *deletes,
            (_EXPIRE_ALL, (now, window_cutoff, now, window_cutoff)),
            *forgets,          # after the expiry: the posts of orders it expired are forgotten in the same call
            (_DUE_BY_SHOP, (now, now)),
            ("SELECT * FROM backfill", ()),
            ("SELECT * FROM shops", ()),
            *claim,
            *also,
        ])
        expired = results[len(deletes)]
        due_rows, progress, shops, *others = results[len(deletes) + 1 + len(forgets):]
        due: dict[str, Due] = {}
        for r in due_rows.rows:
            before = due.get(r["shop"], Due())
            due[r["shop"]] = Due(before.rows + int(r["due"]), before.needs_lines + int(r["needs_lines"] or 0),
                                 r["held_until"] if r["held_until"] is not None else before.held_until,
                                 r["held_token"] if r["held_token"] is not None else before.held_token)
        return PassStart(_progress(progress.rows), due, {r["shop"]: shop_state(r) for r in shops.rows},
                         expired.rows, others[len(claim):], claim_ahead.claimed(others[0]) if claim else None)

    async def claim_many(self, limits: Mapping[str, int], now: int, token: str,
                         lease_seconds: int) -> dict[str, list[Claimed]]:
        """``limits[shop]`` due rows of each shop, claimed under one lease token, in one D1 call."""
        cutoff = now - (WINDOW - EXPIRE_MARGIN)
        shops = list(limits)
        results = await self.db.batch([
            (_CLAIM_DUE, (token, now + lease_seconds, now, shop, now, cutoff, shop, now, cutoff, limits[shop]))
            for shop in shops
        ])
        return {shop: claimed_rows(result.rows) for shop, result in zip(shops, results, strict=True)}

    async def finish_many(self, token: str, now: int, results: Mapping[str, Sequence[Finished]],
                          also: Mapping[str, Sequence[tuple[str, Sequence[Any]]]],
                          after: Sequence[tuple[str, Sequence[Any]]] = ()) -> None:
        """What Meta answered for every shop of a round, in one D1 call (only where the lease still holds);
        ``after`` (the pass's staged log lines, ``relay.outbox.log_spool.pass_lines``) in the same call, last."""
        statements = [statement for shop, done in results.items() if done
                      for statement in finish_statements(shop, token, now, done, also.get(shop, ()))]
        if statements:
            await self.db.batch([*statements, *after])

    async def record_page(self, rows: Sequence[NewRow], now: int, progress: Progress,
                          skipped: Sequence[tuple[int | None, str]] = (),
                          also: Sequence[tuple[str, Sequence[Any]]] = (),
                          after_each: Sequence[tuple[str, Sequence[Any]]] | None = None) -> list[str | None]:
        """A page's orders (``record``'s UPSERT, all rows in one statement) and the listing's new position, in
        one transaction.

        So the position can never move past an order that was not stored. Each entry of the answer is
        what ``record`` answers for that row. ``skipped`` are the page's unreadable orders (id, reason):
        kept in ``unreadable`` for /status, while the readable ones leave it. A cancelled order's own
        statements (``relay.outbox.cancellations``) follow the UPSERT; they touch only that order's rows. A
        page that holds an order twice is cut before the repeat, so both are written and answered as row by
        row (tests/test_ledger_bulk.py holds the two ways to the same rows and answers). ``also`` rides in the
        same batch after them (the shop's turn: one D1 call fewer for a pass that lists one page).

        ``after_each`` (a page with no cancelled order): each row is its own UPSERT, followed by its statement there
        (its staged log line, ``relay.outbox.log_spool.page``, which reads the UPSERT's ``changes()``).
        """
        p = progress
        tail = [*unreadable_statements(p.shop, [row.order_id for row in rows], skipped, now),
                (_SAVE_LISTING, (p.shop, p.cursor, p.completed_at, p.run_since, p.run_filter, p.run_started,
                                 p.run_page, p.run_limit, p.utc_offset, now)), *also]
        if after_each is not None:
            one_by_one: list[tuple[str, Sequence[Any]]] = []
            for row, staged in zip(rows, after_each, strict=True):
                one_by_one += [(_RECORD, record_params(row, now)), staged]
            results = await self.db.batch(one_by_one + tail)
            return [recorded_state(results[2 * i]) for i in range(len(rows))]
        statements: list[tuple[str, Sequence[Any]]] = []
        spans: list[tuple[int, int, int, int]] = []   # per row: its UPSERTs' results, its cancellation's results
        for group in _distinct_runs(rows):
            first = len(statements)
            statements += [(_RECORD_MANY, (chunk,)) for chunk in json_chunks([record_params(r, now) for r in group])]
            upserts = len(statements)
            for r in group:
                start = len(statements)
                if r.cancelled_at is not None:
                    statements += cancellations.statements(r, r.cancel_event, now)
                spans.append((first, upserts, start, len(statements)))
        results = await self.db.batch(statements + tail)
        answer: list[str | None] = []
        changed: dict[int, dict[tuple[Any, Any], str]] = {}   # per run (its first statement): what RETURNING said
        for row, (first, upserts, start, end) in zip(rows, spans, strict=True):
            if first not in changed:
                changed[first] = {(r["order_id"], r["event_name"]): r["state"] for res in results[first:upserts]
                                  for r in res.rows}
            state = changed[first].get((row.order_id, row.event_name))
            if end > start:
                state = cancellations.outcome(QueryResult([{"state": state}] if state else []), results[start:end])
            answer.append(state)
        return answer

    async def save_turns(self, turns: Sequence[tuple[Progress, int]], now: int) -> None:
        """What a pass changed besides the listing: pauses, rotation, errors, and the Meta requests it made
        (``(progress, requests made this pass in progress.meta_window)``)."""
        if not turns:
            return
        await self.db.batch([turn_statement(p, added, now) for p, added in turns])


Statements = list[tuple[str, Sequence[Any]]]


def upkeep_of(now: int, window_cutoff: int) -> tuple[Statements, Statements]:
    """The upkeep a pass's start may carry, as (deletions, forgetting): rows past ``RETENTION`` and bridge posts past
    8 days are deleted; rows past the window forget the shopper's IP address and user agent, and so do the thank-you
    posts of expired orders. Each is idempotent and none decides what a pass sends (a claim checks the window
    itself), so running them a few minutes late only keeps a row or an address that much longer."""
    return ([(_DELETE_OLD, (now - RETENTION,)), (bridge.DELETE_OLD, (now - KEEP,))],
            [(_FORGET_BROWSER, (window_cutoff, None, None)), (bridge.FORGET_EXPIRED, ())])


def turn_statement(p: Progress, added: int, now: int) -> tuple[str, Sequence[Any]]:
    """``save_turns``'s statement for one shop, for a batch that is going to D1 anyway (a send round's finish)."""
    return (_SAVE_TURN, (p.shop, p.paused_until, p.rate_limited_until, p.served_at, p.meta_window, added,
                         p.last_error, now))
