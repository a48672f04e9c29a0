"""The outbox read and re-queued by order: the statements behind ``GET /orders`` and ``relay.jobs.replay``.

Rows are listed newest first by ``(event_time, order_id, event_name)``, which is also the cursor, so a
page never repeats or skips a row while new orders arrive (they land before the first page, not in the
middle). The ``WHERE`` is assembled from fixed fragments, never from request text, so each shape finds
its rows through an index (``outbox_by_event_time``, ``outbox_by_state``, ``outbox_by_number``).

None of these statements reads ``payload``: the listing never carries customer data, not even hashed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relay.core.capi import EXPIRE_MARGIN, WINDOW
from relay.core.ports import Database
from relay.core.utc import MAX_TIMESTAMP

COLUMNS = ("order_id, event_name, order_number, event_id, event_time, state, payment_status, attempts, "
           "next_attempt_at, last_status, last_code, last_subcode, last_fbtrace_id, last_error, sent_at, source, "
           "match_keys, needs_lines, created_at, updated_at, cancelled_at, consent, consent_source")


def iso_sql(column: str) -> str:
    """SQL that formats a Unix time as ``relay.core.utc.iso`` does (``YYYY-MM-DDTHH:MM:SSZ``, held to 1970 .. 9999;
    NULL stays NULL: SQLite's ``max`` of a NULL is NULL). D1 is SQLite: the database formats a page's times, so the
    Worker's Python does not (~7 µs a time in Pyodide: 150 on a 50-row ``GET /orders`` page, ~1 ms)."""
    return f"strftime('%Y-%m-%dT%H:%M:%SZ', min(max({column}, 0), {MAX_TIMESTAMP}), 'unixepoch')"


# The times ``GET /orders`` shows, formatted by D1 beside their numbers (``<column>_iso``); a page reads both: the
# numbers make the cursor and decide what is replayable.
SHOWN_TIMES = ("event_time", "next_attempt_at", "sent_at", "updated_at")
_ISO_COLUMNS = ", ".join(f"{iso_sql(c)} AS {c}_iso" for c in SHOWN_TIMES)

REPLAYABLE = ("failed", "retry", "due", "sent")   # what a replay may put back in the queue
_CURSOR = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})\.([A-Za-z0-9]{1,64})", re.ASCII)

_REQUEUE_ROW = """
UPDATE outbox
SET state = 'due', next_attempt_at = ?, attempts = 0, lease_token = NULL, lease_until = NULL, updated_at = ?
WHERE shop = ? AND order_id = ? AND event_name = ? AND state IN ('failed', 'sent', 'retry', 'due')
  AND event_time > ? AND cancelled_at IS NULL
RETURNING order_id, event_name, order_number
"""

_REQUEUE_STATE = """
UPDATE outbox
SET state = 'due', next_attempt_at = ?, attempts = 0, lease_token = NULL, lease_until = NULL, updated_at = ?
WHERE shop = ? AND state = ? AND event_time > ? AND cancelled_at IS NULL
RETURNING order_id, event_name, order_number
"""

_LEFT_IN_STATE = f"""
SELECT {COLUMNS} FROM outbox WHERE shop = ? AND state = ? AND (event_time <= ? OR cancelled_at IS NOT NULL)
ORDER BY event_time DESC, order_id DESC LIMIT ?
"""

_COUNT_LEFT = ("SELECT COUNT(*) AS n FROM outbox WHERE shop = ? AND state = ? "
               "AND (event_time <= ? OR cancelled_at IS NOT NULL)")


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: just past this row, in newest-first order."""

    event_time: int
    order_id: int
    event_name: str

    def encode(self) -> str:
        return f"{self.event_time}.{self.order_id}.{self.event_name}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """The cursor ``encode`` wrote, or ``None`` when ``text`` is not one.

        ASCII only and bounded: ``str.isdigit`` also takes ``²`` and ``٣`` (which ``int`` then refuses or reads),
        and a 23-digit number overflows SQLite's 64-bit integers.
        """
        match = _CURSOR.fullmatch(text)
        if match is None:
            return None
        return cls(int(match.group(1)), int(match.group(2)), match.group(3))


def window_cutoff(now: int) -> int:
    """Events at or before this time are outside what Meta still takes (with the claim's margin)."""
    return now - (WINDOW - EXPIRE_MARGIN)


class OrderRows:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(self, shop: str, *, state: str | None = None, number: str | None = None,
                   after: Cursor | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Up to ``limit`` rows of one shop, newest first, optionally one state or one order number."""
        where = ["shop = ?"]
        params: list[Any] = [shop]
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if number is not None:
            where.append("order_number = ? COLLATE NOCASE")
            params.append(number)
        if after is not None:
            where.append("(event_time, order_id, event_name) < (?, ?, ?)")
            params += [after.event_time, after.order_id, after.event_name]
        sql = (f"SELECT {COLUMNS}, {_ISO_COLUMNS} FROM outbox WHERE {' AND '.join(where)} "
               "ORDER BY event_time DESC, order_id DESC, event_name DESC LIMIT ?")
        # each shown time also as text (``iso_sql``); plain rows: the Worker's D1 port brings a whole answer across
        # as one JSON text (``entry._AsJson``), so rows folded into one JSON value here would be decoded twice
        return (await self.db.run(sql, (*params, limit))).rows

    async def by_number(self, shop: str, number: str) -> list[dict[str, Any]]:
        return await self.page(shop, number=number, limit=20)

    async def by_order_id(self, shop: str, order_id: int) -> list[dict[str, Any]]:
        sql = f"SELECT {COLUMNS} FROM outbox WHERE shop = ? AND order_id = ? ORDER BY event_name"
        return (await self.db.run(sql, (shop, order_id))).rows

    async def requeue_rows(self, shop: str, rows: Sequence[tuple[int, str]], now: int) -> list[dict[str, Any]]:
        """Make these ``(order_id, event_name)`` rows due now, where still replayable; the rows that moved."""
        if not rows:
            return []
        cutoff = window_cutoff(now)
        results = await self.db.batch([(_REQUEUE_ROW, (now, now, shop, order_id, event_name, cutoff))
                                       for order_id, event_name in rows])
        return [r for result in results for r in result.rows]

    async def requeue_state(self, shop: str, state: str, now: int,
                            show: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        """Every row in ``state`` that Meta still takes becomes due now, in one D1 call.

        The answer: the rows that moved, up to ``show`` of the rows left behind (outside Meta's
        window, or cancelled), and how many were left behind in all.
        """
        cutoff = window_cutoff(now)
        moved, left, count = await self.db.batch([
            (_REQUEUE_STATE, (now, now, shop, state, cutoff)),
            (_LEFT_IN_STATE, (shop, state, cutoff, show)),
            (_COUNT_LEFT, (shop, state, cutoff)),
        ])
        return moved.rows, left.rows, int(count.rows[0]["n"]) if count.rows else 0
