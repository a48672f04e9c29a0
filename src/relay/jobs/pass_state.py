"""What a cron pass knows while it runs: per shop (``ShopTurn``), what it reports (``ShopPass``,
``PassReport``), and the pass itself as the listing sees it (``PassContext``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from relay.core.config import Settings, Shop
from relay.core.ports import QueryResult
from relay.jobs.currency import MAX_AGE as CURRENCY_MAX_AGE
from relay.jobs.limits import CURRENCY_CALLS, Limits
from relay.jobs.runtime import Runtime
from relay.outbox.budget import Meter
from relay.outbox.cron_ledger import CronLedger
from relay.outbox.read_ahead import Statement
from relay.outbox.rows import Progress, ShopState

Sleep = Callable[[float], Awaitable[Any]]


@dataclass
class ShopPass:
    """What one pass did for one shop."""

    listed: int = 0
    pages: int = 0
    unreadable: int = 0
    recorded: Counter[str] = field(default_factory=Counter)    # new ledger states from the listing
    sent: int = 0
    retry: int = 0
    failed: int = 0
    expired: int = 0
    requests: int = 0
    held: bool = False
    due_left: int = 0            # due rows this pass did not reach (about: rows may fall due meanwhile)
    listing: str = "idle"        # idle | in progress | complete | paused | not started
    error: str | None = None
    calls: Counter[str] = field(default_factory=Counter)
    seen: set[int] = field(default_factory=set)


@dataclass
class PassReport:
    shops: dict[str, ShopPass]
    problems: dict[str, str]
    calls: Counter[str]
    budget: int | None
    more: bool = False             # work the budget did not reach: run another pass now
    wait: float | None = None      # seconds until paused work (Lightspeed's or Meta's limit) may go on
    turns: int = 0                 # turns that did something (a page, a batch, a pause)
    cpu_ms: float | None = None    # the invocation's modeled CPU (relay.core.cpu_model), when the plan has a limit
    starved: bool = False          # work was waiting and the plan's CPU held none of it (docs/PLANS.md)
    logged: int = 0                # staged delivery-log lines it wrote to R2 (relay.jobs.spool_copy)
    # the reads its start made for others (``run_pass``'s ``reads``) with their answers; empty when the pass made
    # another D1 call after its start, which may have changed what they read (relay.outbox.read_ahead)
    read: list[tuple[Statement, QueryResult]] = field(default_factory=list)

    @property
    def used(self) -> int:
        return sum(self.calls.values())




@dataclass
class ShopTurn:
    """A shop's state within a pass."""

    shop: Shop
    progress: Progress
    due: int
    needs_lines: int
    report: ShopPass
    listing_wanted: bool
    meta_added: int = 0
    state: ShopState = field(default_factory=lambda: ShopState(""))   # the shops row: currency cache, hold
    rank: int = 0                  # place in this pass's order (least recently served first)
    sends: int = 0                 # send rounds this pass gave the shop
    started: tuple[Any, ...] = ()  # the turn fields of ``progress`` as the pass found them
    held: bool = False
    ls_wait: float = 0.0           # what the last Lightspeed answer asks us to wait
    ls_wait_turn: float = 0.0      # the longest such wait seen during the current turn
    ls_left: int | None = None     # calls left in Lightspeed's 5-minute window, as last answered

    def rate_limited(self, now: int) -> bool:
        return (self.progress.rate_limited_until or 0) > now

    def paused(self, now: int) -> bool:
        return (self.progress.paused_until or 0) > now or self.rate_limited(now)

    def lines_blocked(self, now: int) -> bool:
        """Rows that need ``products.json`` wait while Lightspeed's limit says so; the others can go."""
        return self.rate_limited(now) and self.needs_lines > 0

    def meta_left(self, now: int, per_minute: int) -> int:
        window = now // 60 * 60
        if self.progress.meta_window != window:
            self.progress.meta_window, self.progress.meta_requests, self.meta_added = window, 0, 0
        return per_minute - self.progress.meta_requests

    def state_cost(self, now: int) -> int:
        """Subrequests a send needs besides lines and Meta: the fetch lease, shop.json and the cache write
        when the cached currency is stale (relay.jobs.currency), the release of a hold whose token was
        replaced."""
        cost = 0
        cached_at = self.state.currency_at
        if not self.state.currency or cached_at is None or now - cached_at >= CURRENCY_MAX_AGE:
            cost += CURRENCY_CALLS
        if self.state.held_until is not None and self.state.held_token != self.shop.meta_token.fingerprint():
            cost += 1
        return cost

    def can_list(self, now: int) -> bool:
        return self.listing_wanted and not self.paused(now)

    def can_send(self, now: int, per_minute: int) -> bool:
        return (self.due > 0 and not self.held and not self.lines_blocked(now)
                and self.meta_left(now, per_minute) > 0)



class PassContext(Protocol):
    """The pass as a listing turn and a send round use it (``relay.jobs.cron.Pass`` is the one implementation)."""

    rt: Runtime
    settings: Settings
    ledger: CronLedger
    sleep: Sleep
    meter: Meter
    limits: Limits
    turns: int
    sends_first: bool
    stages_log: bool               # its send rounds' finishes stage its log lines (relay.outbox.log_spool)

    def room(self, hard: bool = False, sending: bool = False) -> int: ...

    def d1_room(self) -> int: ...

    def cpu_room(self, calls: int, hard: bool = False, sending: bool = False) -> float | None: ...

    def may_force(self) -> bool: ...

    def may_list(self, size: int) -> bool: ...

    def logs(self, shops: set[str], sending: bool = False) -> int: ...


def turn_of(p: Progress) -> tuple[int | None, int | None, int | None, str | None]:
    """What ``CronLedger.save_turns`` writes besides the Meta count."""
    return p.paused_until, p.rate_limited_until, p.served_at, p.last_error


def deadline(now: int, wait: float) -> int:
    return now + max(1, int(wait + 0.999))
