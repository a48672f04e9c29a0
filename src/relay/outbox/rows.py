"""The outbox's rows as plain data: what the ledger stores, claims, finishes and reports.

Kept apart from the SQL so the jobs can build and read rows without importing statements.
"""

from __future__ import annotations

from dataclasses import dataclass

STATES = ("waiting", "due", "sending", "sent", "retry", "failed", "expired", "skipped")


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
    not_before: int | None = None     # a due row waits until then for its bridge post (BRIDGE_WAIT)
    cancelled_at: int | None = None   # the order is cancelled: relay.outbox.cancellations records it
    cancel_event: NewRow | None = None   # and Meta is told (OrderCancelled) if it had the Purchase


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
    bridge: str | None = None         # the order's bridge posts as a JSON array (relay.outbox.bridge.records_of)


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
    consent: str | None = None        # send | skip, when consent was decided for this send
    lines_fetched: bool = False       # ``payload`` carries the order's lines now: the row needs no more
    consent_source: str | None = None


@dataclass(frozen=True)
class ShopState:
    shop: str
    currency: str | None = None
    currency_at: int | None = None
    held_until: int | None = None
    held_token: str | None = None
    held_reason: str | None = None




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
    run_limit: int | None = None      # the run's orders.json ``limit`` (NULL: 250, the only one before 0011)
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
