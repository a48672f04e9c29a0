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

``copy`` writes one object per shop: the shop's rows in id order under the key of its first row (the time of the
invocation that staged it). A pass whose delete did not reach D1 copies the same first row again, so its object is
overwritten with a superset: no line is written twice. A put that fails leaves that shop's rows for the next pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from relay.core.ports import Blobs, QueryResult
from relay.outbox.delivery_log import DeliveryLog, encode, new_key

logger = logging.getLogger("relay")

Statement = tuple[str, Sequence[Any]]

LIMIT = 200     # rows a cron pass reads (and writes) at most; the rest wait for the next pass
# A free pass copies only with room to spare, and in a backlog every pass is busy: a row staged this long ago makes
# the next pass copy before anything else (its claim ahead yields, relay.outbox.claim_ahead). Five cron runs at
# */2: at most one pass in five of a long backlog goes to the log, and no line waits much longer than this.
COPY_AGE = 600
_COLUMNS = "SELECT id, shop, key, body, at FROM log_spool"
READ: Statement = (f"{_COLUMNS} ORDER BY id LIMIT {LIMIT}", ())
# What the claim ahead asks (``?`` is ``now - COPY_AGE``): no row staged that long ago, else it claims nothing.
NONE_OLD = "NOT EXISTS (SELECT 1 FROM log_spool WHERE at <= ?)"
# A free pass reads the rows only when it may copy them: when no outbox row is due (an idle pass: a pass with rows
# due sends one and has no CPU left to copy), or when one was staged ``COPY_AGE`` ago (``due``: it copies first).
# In a backlog every free pass stages its own lines, and turning rows into Python costs Pyodide CPU a busy pass
# does not have. Right after the claim ahead, also nothing when it claimed a row (``changes()``).
_MAY_COPY = """(NOT EXISTS (SELECT 1 FROM outbox WHERE (state IN ('due', 'retry') AND next_attempt_at <= ?1)
OR (state = 'sending' AND lease_until <= ?1)) OR EXISTS (SELECT 1 FROM log_spool WHERE at <= ?2))"""
_READ_FREE = f"{_COLUMNS} WHERE {_MAY_COPY} ORDER BY id LIMIT {LIMIT}"
_READ_UNCLAIMED = f"{_COLUMNS} WHERE changes() = 0 AND {_MAY_COPY} ORDER BY id LIMIT {LIMIT}"


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

_DELETE = "DELETE FROM log_spool WHERE id IN (SELECT value FROM json_each(?))"


def decision(shop: str, at: float, now: float, event_name: str, **fields: Any) -> Statement:
    """The statement staging a decision line about ``fields["order_id"]`` whose ``state`` is the answer of the
    UPSERT just before it."""
    before, after = encode([DeliveryLog.line(shop, at, state=_STATE, **fields)]).split(json.dumps(_STATE), 1)
    return _DECISION, (shop, new_key(shop, now), before, after, fields["order_id"], event_name, int(now))


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


def delete(ids: Sequence[int]) -> Statement:
    return _DELETE, (json.dumps(list(ids)),)


async def copy(blobs: Blobs, read: QueryResult) -> list[int]:
    """Write the rows ``READ`` answered to R2, one object per shop; the ids written (to delete)."""
    written: list[int] = []
    rows = sorted(read.rows, key=lambda r: (str(r["shop"]), int(r["id"])))
    for shop, group in groupby(rows, key=lambda r: str(r["shop"])):
        staged = list(group)
        try:
            await blobs.put(str(staged[0]["key"]), "".join(str(r["body"]) for r in staged).encode("utf-8"))
        except Exception as exc:  # R2 refused: the rows stay for the next pass, and sending goes on
            logger.warning("delivery log of %s: %d staged line(s) not written (%s); the next cron run tries again",
                           shop, len(staged), type(exc).__name__)
            continue
        written += [int(r["id"]) for r in staged]
    return written
