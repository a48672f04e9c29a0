"""Delivery-log lines staged in D1 (``log_spool``, migrations/0012) for the cron to write to R2.

On the Workers Free plan an R2 put costs ~1.5 ms of an invocation's 10 ms of CPU, as much as the webhook's D1 call.
So a free webhook's decision line and a thank-you post's ``bridge`` line are inserted into ``log_spool`` in the
invocation's one D1 call (a statement after the one whose answer the line reports), and the next cron pass with room
writes them to R2 (``copy``) and deletes the rows it wrote. The line is the one the R2 path writes, to the byte:
it is built by ``DeliveryLog.line`` and serialized by ``delivery_log.encode``; only the ledger's answer, which the
line reports and no Python sees before the batch returns, is filled in by SQL:

- ``decision``: right after the record's single UPSERT, ``changes()`` says whether it wrote (0: a duplicate, the
  line says ``unchanged``), and the row's state is what its ``RETURNING`` would have said (SQLite and miniflare's D1
  agree: tests/test_log_spool.py, conformance). ``json_quote`` writes the state as ``json.dumps`` does (ASCII).
- ``bridge``: right after ``bridge_take.STORE``, the post was kept when it inserted (``changes()``) and its row is
  ``last_insert_rowid()``; its ``binding`` picks one of the two lines the job built.

A free cron pass that sends stages its own lines too, in its send round's finish (``pass_lines``: one row per shop
with what ``DeliveryLog.flush`` would have written, key and body), so they commit with the outcomes they report. One
that lists a page stages the page's lines in the page's batch (``page``): each order's UPSERT is followed by its
decision line, inserted only when ``changes()`` says the UPSERT wrote (the R2 path logs nothing for an order the
ledger already had), and when any line was (or the page had unreadable orders) they become one row with the page's
``listing`` line.

``copy`` writes one object per shop: the shop's rows in id order under the key of its first row (the time of the
invocation that staged it). A pass whose delete did not reach D1 copies the same first row again, so its object is
overwritten with a superset: no line is written twice. A put that fails leaves that shop's rows for the next pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from relay.core.ports import Blobs, QueryResult
from relay.outbox.delivery_log import DeliveryLog, encode, new_key

logger = logging.getLogger("relay")

Statement = tuple[str, Sequence[Any]]

# Rows a cron pass reads (and writes) at most; the rest wait for the next pass. A free copy pass (its start, two
# shops' objects, the delete) measured 7.0 / 7.8 ms of thread CPU (median / p95) with 3 rows, 8.1 / 8.8 with 30 and
# 9.1 / 10.1 with 60 (bench/bench_worker_cpu.mjs --env RELAY_PLAN=free --kinds cron-copy --spool-rows N, the shim's
# ~2.5 ms included): ~0.035 ms a row, so 30 keeps it inside 10 ms with the bench's own cost counted.
LIMIT = 30
# A free pass copies only with room to spare, and in a backlog every pass is busy (and stages its own lines): a row
# staged this long ago makes the next pass copy before anything else (its claim ahead yields,
# relay.outbox.claim_ahead). Each copy pass is a pass that sends nothing: at 10 minutes a 3-shop backlog took 52.9 h
# to drain instead of 45.3 (bench/bench_backfill.py --shops 3 --orders 300 --plan free), at an hour 47.8 h; the
# delivery log is a record to read later, and an hour behind in a backlog costs no order.
COPY_AGE = 3600
# What a pass reads: its first ``LIMIT`` rows (by id), one answer row per shop with that shop's bodies already joined
# in id order by D1 (a window's ``group_concat`` takes its rows in the window's order), under the key of its first
# row, with its oldest ``at``, its last id (the delete) and its row count: turning rows into Python is what a copy
# pass spends its CPU on in Pyodide (~0.05 ms a row before this, cron-copy), so it turns one per shop.
_WINDOW = "WINDOW w AS (PARTITION BY shop ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
_READ = """SELECT id, shop, key, body, at, last, n FROM (
SELECT id, shop, key, at, group_concat(body, '') OVER w AS body, max(id) OVER w AS last, count(*) OVER w AS n,
    row_number() OVER w AS k
FROM (SELECT id, shop, key, body, at FROM log_spool {where} ORDER BY id LIMIT {limit})
{window}) WHERE k = 1 ORDER BY id"""
READ: Statement = (_READ.format(where="", limit=LIMIT, window=_WINDOW), ())
# What the claim ahead asks (``?`` is ``now - COPY_AGE``): no row staged that long ago, else it claims nothing.
NONE_OLD = "NOT EXISTS (SELECT 1 FROM log_spool WHERE at <= ?)"
# A free pass reads the rows only when it may copy them: when no outbox row is due (an idle pass: a pass with rows
# due sends one and has no CPU left to copy), or when one was staged ``COPY_AGE`` ago (``due``: it copies first).
# In a backlog every free pass stages its own lines, and a busy pass has no CPU for rows it cannot copy. Right
# after the claim ahead, also nothing when it claimed a row (``changes()`` is the claim's until the next write).
_MAY_COPY = """(NOT EXISTS (SELECT 1 FROM outbox WHERE (state IN ('due', 'retry') AND next_attempt_at <= ?1)
OR (state = 'sending' AND lease_until <= ?1)) OR EXISTS (SELECT 1 FROM log_spool WHERE at <= ?2))"""
# A free pass writes at most two shops' objects beside its start (three measured over 10 ms, relay.jobs.spool_copy), so
# it reads only the rows of the two shops whose lines waited longest: with many shops staging (a listing backlog: a
# page a pass, each with its lines) the first ``LIMIT`` rows of all shops held a few of each, and a copy pass wrote
# two shops' few rows (bench/bench_backfill.py --shops 10 --orders 2000 --plan free: 15,481 passes with three rows a
# page, against 10,599 before the listing's lines were staged).
FREE_SHOPS = 2
_OLDEST_SHOPS = f"shop IN (SELECT shop FROM log_spool GROUP BY shop ORDER BY min(id) LIMIT {FREE_SHOPS})"
_READ_FREE = _READ.format(where=f"WHERE {_MAY_COPY} AND {_OLDEST_SHOPS}", limit=LIMIT, window=_WINDOW)
_READ_UNCLAIMED = _READ.format(where=f"WHERE changes() = 0 AND {_MAY_COPY} AND {_OLDEST_SHOPS}", limit=LIMIT,
                               window=_WINDOW)


def read(now: int, free: bool, claimed_ahead: bool) -> Statement:
    """The read in a pass's start: every row on the paid plan (its passes have the room to copy); on the free plan
    only when the pass may copy them, and after a claim ahead only when it claimed nothing."""
    if not free:
        return READ
    return (_READ_UNCLAIMED if claimed_ahead else _READ_FREE), (now, now - COPY_AGE)


_STATE = "@state@"      # where the ledger's answer goes in a staged decision line

_DECISION = """INSERT INTO log_spool (shop, key, body, at) VALUES (?1, ?2, ?3 || json_quote(CASE WHEN changes() = 0
THEN 'unchanged' ELSE (SELECT state FROM outbox WHERE shop = ?1 AND order_id = ?5 AND event_name = ?6) END) || ?4,
?7)"""

_BRIDGE = """INSERT INTO log_spool (shop, key, body, at) SELECT ?, ?, CASE WHEN binding = 'bound' THEN ? ELSE ? END, ?
FROM bridge WHERE changes() > 0 AND id = last_insert_rowid()"""

_LINES = "INSERT INTO log_spool (shop, key, body, at) VALUES (?, ?, ?, ?)"

# A listed page's lines (the free plan's listing pass, relay.jobs.listing), under one key: an order's decision line
# only when the UPSERT just before it wrote (``changes()``: the R2 path logs no line for an order the ledger already
# had as listed), then its unreadable orders' warnings; then, when any of those was staged, one row with all of them
# in order (a window's ``group_concat``, as ``_READ``) and the page's ``listing`` line, and the pieces go: a page is
# one row to keep and copy, not three (a copy reads ``LIMIT`` rows).
_CHANGED = """INSERT INTO log_spool (shop, key, body, at) SELECT ?1, ?2, ?3 || json_quote((SELECT state FROM outbox
WHERE shop = ?1 AND order_id = ?5 AND event_name = ?6)) || ?4, ?7 WHERE changes() > 0"""
_PAGE_ROW = """INSERT INTO log_spool (shop, key, body, at) SELECT ?1, ?2, lines || ?3, ?4 FROM (
SELECT group_concat(body, '') OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS lines
FROM log_spool WHERE shop = ?1 AND key = ?2 LIMIT 1)"""
_PAGE_PIECES = """DELETE FROM log_spool WHERE shop = ?1 AND key = ?2
AND id < (SELECT max(id) FROM log_spool WHERE shop = ?1 AND key = ?2)"""

# each shop's rows up to the last one its object holds: all were in the read (its first ``LIMIT`` rows by id), and a
# row staged since has a higher id (SQLite gives a new row the highest id + 1, and those rows are still there)
_DELETE = """DELETE FROM log_spool WHERE EXISTS (SELECT 1 FROM json_each(?) j
WHERE json_extract(j.value, '$[0]') = log_spool.shop AND log_spool.id <= json_extract(j.value, '$[1]'))"""


def decision(shop: str, at: float, now: float, event_name: str, **fields: Any) -> Statement:
    """The statement staging a decision line about ``fields["order_id"]`` whose ``state`` is the answer of the
    UPSERT just before it."""
    before, after = _around_state(shop, at, fields)
    return _DECISION, (shop, new_key(shop, now), before, after, fields["order_id"], event_name, int(now))


def _around_state(shop: str, at: float, fields: dict[str, Any]) -> list[str]:
    """A decision line's encoded text before and after its ``state``, which SQL fills in."""
    return encode([DeliveryLog.line(shop, at, state=_STATE, **fields)]).split(json.dumps(_STATE), 1)


def page(shop: str, at: float, now: float, decisions: Sequence[tuple[str, dict[str, Any]]],
         warnings: Sequence[dict[str, Any]], listing: dict[str, Any]) -> tuple[list[Statement], list[Statement]]:
    """A listed page's lines as statements: one to follow each order's UPSERT (``decisions``: its event name and its
    decision line's fields but the state), and the ones to follow the page's statements (its ``warnings``, then its
    ``listing`` line). What the R2 path logs for the page, line for line: tests/test_pass_log_spool.py."""
    key, stamp = new_key(shop, now), int(now)
    rows: list[Statement] = [(_CHANGED, (shop, key, *_around_state(shop, at, fields), fields["order_id"], event_name,
                                         stamp)) for event_name, fields in decisions]
    tail: list[Statement] = []
    if warnings:
        tail.append((_LINES, (shop, key, encode([DeliveryLog.line(shop, at, **w) for w in warnings]), stamp)))
    return rows, [*tail, (_PAGE_ROW, (shop, key, encode([DeliveryLog.line(shop, at, **listing)]), stamp)),
                  (_PAGE_PIECES, (shop, key))]


def bridge(shop: str, now: float, bound: dict[str, Any], other: dict[str, Any]) -> Statement:
    """The statement staging a thank-you post's line, right after ``bridge_take.STORE``: ``bound`` when the post
    was kept bound to its order, ``other`` when kept pending; nothing when it was not kept."""
    return _BRIDGE, (shop, new_key(shop, now), encode([bound]), encode([other]), int(now))


def pass_lines(log: DeliveryLog, now: float) -> tuple[list[Statement], dict[str, int]]:
    """The statements staging every line ``log`` holds, one row per shop with what ``DeliveryLog.flush`` would
    write at ``now`` (its key and its body), and how many lines of each shop they hold: a free cron pass puts them
    in its send round's finish, and once that is committed ``DeliveryLog.drop`` forgets them."""
    at = int(now)
    statements: list[Statement] = [(_LINES, (shop, new_key(shop, now), encode(lines), at))
                                   for shop, lines in log.lines.items()]
    return statements, {shop: len(lines) for shop, lines in log.lines.items()}


def due(read: QueryResult, now: int) -> bool:
    """Whether the rows ``READ`` answered hold one staged ``COPY_AGE`` ago: the pass copies before its rounds."""
    return any(int(r["at"] or 0) <= now - COPY_AGE for r in read.rows)


def delete(written: Sequence[tuple[str, int]]) -> Statement:
    """The statement deleting what ``copy`` wrote: (shop, last id) pairs."""
    return _DELETE, (json.dumps([list(w) for w in written]),)


async def copy(blobs: Blobs, read: Sequence[dict[str, Any]]) -> tuple[list[tuple[str, int]], int]:
    """Write shops' rows as ``READ`` answered them (one per shop) to R2, one object each: what was written (the
    shops and their last ids, to delete) and how many staged rows that was."""
    written: list[tuple[str, int]] = []
    rows = 0
    for r in read:
        shop = str(r["shop"])
        try:
            await blobs.put(str(r["key"]), str(r["body"]).encode("utf-8"))
        except Exception as exc:  # R2 refused: the rows stay for the next pass, and sending goes on
            logger.warning("delivery log of %s: %d staged row(s) not written (%s); the next cron run tries again",
                           shop, int(r["n"]), type(exc).__name__)
            continue
        written.append((shop, int(r["last"])))
        rows += int(r["n"])
    return written, rows
