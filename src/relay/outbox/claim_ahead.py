"""The claim a free cron pass makes in its first D1 call (``CronLedger.start_pass``), before it knows what is due.

On the free plan a pass holds one event (``relay.core.cpu_model``): its start, the claim, the lines, Meta, the
finish and the log object were six subrequests at ~1.3 ms of CPU each. Once the pass can know in advance that its
unit will be one event, it need not wait for its start's answer to claim it: the start's batch claims the one row
its send round would have claimed, after the upkeep (expired rows are gone by then) and after the reads (the pass
counts what was due before the claim, as a round's claim would leave it). One subrequest fewer.

So the statement picks the shop as ``relay.jobs.send_round.plan`` does on such a pass: among the configured shops
with a row due, not held under their token, not waiting out Lightspeed's rate limit with lines to fetch, with
Meta requests left this minute and a currency fresher than a day (a stale one is a unit of its own), the least
recently served (``backfill.served_at``), then the smaller backlog, then the name. It claims nothing while any
configured shop's hold names another token: the pass lifts that hold first, as before; nor while a delivery-log
line staged ``log_spool.COPY_AGE`` ago waits: that pass copies it first (``relay.jobs.spool_copy``). A row
claimed here is finished by the pass, or claimed again after its lease (``LEASE_SECONDS``) if the pass is killed,
as any claim.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.core.capi import EXPIRE_MARGIN, WINDOW
from relay.core.ports import QueryResult
from relay.outbox.bridge import CLAIM_COLUMN
from relay.outbox.ledger import claimed_rows
from relay.outbox.log_spool import COPY_AGE, NONE_OLD
from relay.outbox.rows import Claimed

_CLAIM_AHEAD = f"""
WITH cfg AS (SELECT key AS shop, value AS fingerprint FROM json_each(?)),
due AS (
    SELECT shop, COUNT(*) AS n, SUM(needs_lines) AS lines FROM outbox
    WHERE (state IN ('due', 'retry') AND next_attempt_at <= ?) OR (state = 'sending' AND lease_until <= ?)
    GROUP BY shop
),
pick AS (
    SELECT due.shop FROM due JOIN cfg ON cfg.shop = due.shop
    LEFT JOIN backfill b ON b.shop = due.shop
    LEFT JOIN shops s ON s.shop = due.shop
    WHERE s.currency <> '' AND s.currency_at > ?
      AND (s.held_until IS NULL OR s.held_until <= ?)
      AND NOT (COALESCE(b.rate_limited_until, 0) > ? AND due.lines > 0)
      AND NOT (b.meta_window IS ? AND b.meta_requests >= ?)
      AND NOT EXISTS (SELECT 1 FROM shops h JOIN cfg c ON c.shop = h.shop
                      WHERE h.held_until IS NOT NULL AND h.held_token IS NOT c.fingerprint)
      AND {NONE_OLD}
    ORDER BY COALESCE(b.served_at, 0), due.n, due.shop
    LIMIT 1
)
UPDATE outbox
SET state = 'sending', lease_token = lower(hex(randomblob(16))), lease_until = ?, attempts = attempts + 1,
    updated_at = ?
WHERE rowid IN (
    SELECT id FROM (
        SELECT rowid AS id, next_attempt_at AS t, order_id FROM outbox
        WHERE shop = (SELECT shop FROM pick) AND state IN ('due', 'retry') AND next_attempt_at <= ? AND event_time > ?
        UNION ALL
        SELECT rowid, lease_until, order_id FROM outbox
        WHERE shop = (SELECT shop FROM pick) AND state = 'sending' AND lease_until <= ? AND event_time > ?
    ) ORDER BY t, order_id LIMIT 1
)
RETURNING shop, lease_token, order_id, event_name, order_number, event_id, event_time, payload, needs_lines, attempts,
    match_keys, {CLAIM_COLUMN}
"""


@dataclass(frozen=True)
class ClaimAhead:
    """What the pass knows before its start: its shops' token fingerprints, its lease, the limits it plans with.

    The lease token is D1's (``randomblob``), answered with the row: no random bytes on the Worker's CPU (a
    ``uuid4`` costs ~80 µs in Pyodide), and one row is one token."""

    fingerprints: Mapping[str, str]    # every configured shop of the pass: its Meta token's fingerprint
    lease_seconds: int
    fresh_after: int                   # a cached currency from before this is stale
    meta_per_minute: int


@dataclass(frozen=True)
class Claim:
    """What the start claimed: one row of one shop, under the token D1 gave it."""

    shop: str
    token: str
    row: Claimed


def statement(ahead: ClaimAhead, now: int) -> tuple[str, Sequence[Any]]:
    """The claim, for the start's batch (after its upkeep and its reads)."""
    cutoff = now - (WINDOW - EXPIRE_MARGIN)
    return (_CLAIM_AHEAD, (
        json.dumps(dict(ahead.fingerprints)), now, now,
        ahead.fresh_after, now, now, now // 60 * 60, ahead.meta_per_minute, now - COPY_AGE,
        now + ahead.lease_seconds, now,
        now, cutoff, now, cutoff,
    ))


def claimed(result: QueryResult) -> Claim | None:
    """The statement's answer: the row it claimed, if any."""
    if not result.rows:
        return None
    r = result.rows[0]
    return Claim(str(r["shop"]), str(r["lease_token"]), claimed_rows([r])[0])
