"""One cron pass, planned against its invocation's limits: subrequests, D1 queries and modeled CPU.

``relay.jobs.cron`` says what a pass does and runs it; this is the pass itself: its shops' turns in
rounds (a listing page for each shop that wants one, then a send round), and the room each next unit of
work needs. Room is counted three ways, because the plan stops an invocation at whichever runs out first
(``relay.jobs.limits``): subrequests and D1 queries exactly, at the ports (``relay.outbox.budget``), and
CPU by the cost model (``relay.core.cpu_model``), since a Worker cannot time its own CPU. Whatever a pass
does not reach, the next one continues; each page and each send round is stored as it ends, so a pass
stopped at any point loses nothing it did.

A pass that has done nothing yet may take one unit over the model's target share, if it stays inside the
plan's limit, so that every pass makes progress.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import groupby

from relay.core import lightspeed
from relay.core.config import CLUSTER_HOSTS, Settings, Shop, kept
from relay.core.errors import BudgetExhausted
from relay.core.ports import HttpResponse, QueryResult
from relay.jobs.limits import (
    FREE,
    LIST_COST,
    LOW_WATER,
    PASS_SECONDS,
    RATE_LIMITED_WAIT,
    ROUND_COST,
    UNLIMITED,
    Limits,
)
from relay.jobs.listing import list_page, start_listing
from relay.jobs.pass_state import PassReport, ShopPass, ShopTurn, Sleep, turn_of
from relay.jobs.runtime import Runtime
from relay.jobs.send_ahead import claim_ahead, send_claimed
from relay.jobs.send_round import release, send_round
from relay.jobs.spool_copy import copy_spool
from relay.outbox import log_spool
from relay.outbox.budget import Meter
from relay.outbox.cron_ledger import CronLedger, PassStart
from relay.outbox.deferred import DeferredWrites
from relay.outbox.read_ahead import Statement
from relay.outbox.rows import Due, Progress, ShopState

logger = logging.getLogger("relay")

# The upkeep in a pass's start (retention deletes, forgetting addresses: ``cron_ledger.upkeep_of``) runs at most this
# often in one Worker isolate, and on its first pass: four statements less in most passes' one D1 call, ~0.3 ms of
# the Free plan's 10 (docs/PERFORMANCE.md). Where the env keeps nothing (CPython: relay serve, tests) every pass.
UPKEEP_EVERY = 600


class Pass:
    def __init__(self, rt: Runtime, limits: Limits, sleep: Sleep, listing: bool, spaced: bool = True) -> None:
        self.settings = rt.settings
        self.meter = Meter(limits.budget, _classifier(self.settings), d1_limit=limits.d1_budget,
                           cpu=limits.cpu_model, cpu_limit=limits.cpu_ms, cpu_spent=limits.cpu_spent)
        self.meter.observers.append(self._observe)
        self.deferred = DeferredWrites(self.meter.database(rt.db))    # the staged log's delete (spool_copy)
        self.rt = dataclasses.replace(
            rt, db=self.deferred, http=self.meter.http(rt.http),
            blobs=self.meter.blobs(rt.blobs) if rt.blobs is not None else None)
        self.ledger = CronLedger(self.rt.db)
        self.limits = limits
        self.sleep = sleep
        self.listing = listing
        self.spaced = spaced
        self.shops: dict[str, ShopTurn] = {}
        self.expired: dict[str, int] = {}
        self.turns = 0
        self.started = rt.clock()
        # on the free plan a pass's CPU holds a page or a few events: its send round goes before the pages, or a
        # long listing of small pages would keep listed orders from going out until Meta's window closed on them
        self.sends_first = limits.plan == FREE.name and limits.cpu_ms is not None
        # and its send round's finish stages the pass's log lines in D1 (relay.outbox.log_spool): no R2 put of its
        # own, as the free webhook. Without a LOGS bucket no line is staged: nothing would copy it
        self.stages_log = self.sends_first and rt.blobs is not None
        self.read: list[tuple[Statement, QueryResult]] = []
        self.logged = 0         # staged log lines this pass wrote to R2 (relay.jobs.spool_copy)

    def room(self, hard: bool = False, sending: bool = False) -> int:
        """Subrequests this pass may still start: the budget, and the modeled CPU's room for calls, less
        what its ending needs (the progress write, and one log object per shop that has lines: none for a send
        round of a pass that stages its lines, ``sending``). Nothing
        once the pass has run ``PASS_SECONDS``: the next cron run goes on, rather than overlap it. The CPU here
        only bounds the calls (as if nothing else used it); the events' and orders' CPU is planned with
        ``cpu_room``, and both read the one meter, so no unit is counted twice (tests/test_pass_room.py)."""
        if self.rt.clock() - self.started >= PASS_SECONDS:
            return 0
        left = self.meter.left()
        rooms = [] if left is None else [left - 1]      # the progress write: a call, though rarely a CPU cost
        cpu = self.meter.cpu_left(hard)                  # (see cpu_room)
        if cpu is not None:
            rooms.append(int(cpu // self.limits.cpu_model.per_subrequest))
        return min(rooms) - self.logs(set(), sending) if rooms else UNLIMITED

    def d1_room(self) -> int:
        """D1 queries this pass may still start, less the progress write."""
        left = self.meter.d1_left()
        return UNLIMITED if left is None else left - 1

    def cpu_room(self, calls: int, hard: bool = False, sending: bool = False) -> float | None:
        """Modeled CPU (ms) left after ``calls`` more subrequests and the log objects already due; None: not
        modeled. The pass's progress write is not counted: a page and a send round each carry their shop's
        turn in their own D1 batch, so a pass that did either writes nothing more (only a pause or a hold's
        release does, and those parse nothing)."""
        left = self.meter.cpu_left(hard)
        if left is None:
            return None
        return left - (calls + self.logs(set(), sending)) * self.limits.cpu_model.per_subrequest

    def may_force(self) -> bool:
        """Nothing done yet: one unit may go past the model's target share, inside the plan's limit (a copy of the
        staged log is a unit too, relay.jobs.spool_copy)."""
        return self.turns == 0 and not self.logged

    def may_list(self, size: int) -> bool:
        """Room for a listing page of ``size`` orders: its calls, its D1 batch, the CPU to parse it."""
        if self.d1_room() < 1:
            return False
        hard = self.may_force()          # the forced unit's room holds the target's: one check covers both
        cpu = self.cpu_room(LIST_COST, hard)
        return self.room(hard) >= LIST_COST and (cpu is None or cpu >= size * self.limits.cpu_model.per_listed_order)

    def logs(self, shops: set[str], sending: bool = False) -> int:
        """Log objects the pass will write if ``shops`` add lines too (one R2 call each). None for a send round
        (``sending``) of a pass that stages its lines: the round's finish stages every line held then, in its own
        D1 call (``relay.jobs.send_round.deliver_round``); a line added after it costs its object again."""
        if self.rt.blobs is None or (sending and self.stages_log):
            return 0
        return len(set(self.rt.log.lines) | shops | ({self.meter.shop} if self.meter.shop else set()))

    def _observe(self, shop: str | None, kind: str, response: HttpResponse) -> None:
        state = self.shops.get(shop or "")
        if kind != "lightspeed" or state is None:
            return
        wait = 0.0
        limit = lightspeed.rate_limit(response)
        if response.status == 429:
            wait = lightspeed.retry_after(response) or RATE_LIMITED_WAIT
        elif limit.remaining and limit.reset:
            low = [reset for left, reset in zip(limit.remaining, limit.reset, strict=False) if left <= LOW_WATER]
            wait = float(max(low)) if low else 0.0
        if limit.remaining:
            state.ls_left = min(limit.remaining)
        state.ls_wait = wait
        state.ls_wait_turn = max(state.ls_wait_turn, wait)

    async def run(self, shops: list[Shop], since: int | None, reads: Sequence[Statement] = ()) -> PassReport:
        """The pass; ``reads`` ride in its first D1 call for the jobs after it (``read_ahead``)."""
        now = self.rt.now()
        ahead = claim_ahead(self, shops, now)
        # the staged log rides too: right after the claim ahead, and on the free plan read only when the pass may
        # copy it (it claimed nothing, and nothing is due or a row is old: log_spool.read, spool_copy)
        spool = log_spool.read(now, self.sends_first, ahead is not None)
        last: dict[str, int] = kept(self.rt.env, ("upkeep",), dict)   # the isolate's, in the Worker
        upkeep = now - last.get("at", now - UPKEEP_EVERY) >= UPKEEP_EVERY
        start = await self.ledger.start_pass(now, [spool, *reads], ahead, upkeep=upkeep)
        if upkeep:
            last["at"] = now
        self.read = list(zip(reads, start.also[1:], strict=True))
        order = self.shop_turns(shops, start, since, now)
        try:
            staged = start.also[0]
            if log_spool.due(staged, now):          # a line staged long ago goes before the work (spool_copy)
                self.logged = await copy_spool(self, staged, self.deferred)
            if start.claimed is not None:
                await send_claimed(self, order, start.claimed, now)
            await self._rounds(order)
            if not self.logged:
                self.logged = await copy_spool(self, staged, self.deferred)
        except BudgetExhausted as exc:          # a planning bug, never the plan: report it, lose nothing
            self.rt.log.add("relay", self.rt.now(), kind="warning", error=str(exc))
        return self._report()

    def shop_turns(self, shops: list[Shop], start: PassStart, since: int | None, now: int) -> list[ShopTurn]:
        """Each shop's turn as the start found it (its expired rows logged), in the order the pass serves them:
        the least recently served first, then the smaller backlog, then the name."""
        by_shop = sorted(start.expired, key=lambda r: (str(r["shop"]), int(r["order_id"])))
        for name, group in groupby(by_shop, key=lambda r: str(r["shop"])):
            gone = list(group)
            for row in gone:
                self.rt.log.add(name, now, kind="decision", order_id=row["order_id"], event_id=row["event_id"],
                                state="expired", reason="older than Meta's 7-day window")
            if name in (shop.name for shop in shops):
                self.expired[name] = len(gone)
        for shop in shops:
            p = start.progress.get(shop.name) or Progress(shop.name)
            d = start.due.get(shop.name) or Due()
            wants = self.listing and start_listing(p, now, since, self.spaced, backlog=d.rows > 0,
                                                   size=self.limits.page_size)
            state = ShopTurn(shop, p, d.rows, d.needs_lines, ShopPass(), wants,
                             state=start.states.get(shop.name) or ShopState(shop.name))
            state.report.expired = self.expired.get(shop.name, 0)
            state.started = turn_of(p)
            if d.held_until is not None:
                if d.held_token != shop.meta_token.fingerprint():
                    state.due = max(state.due, 1)      # a new token: the send round lifts the hold and sends
                elif d.held_until > now:
                    state.held = state.report.held = True
            self.shops[shop.name] = state
        order = sorted(self.shops.values(), key=lambda s: (s.progress.served_at or 0, s.due, s.shop.name))
        for rank, s in enumerate(order):
            s.rank = rank
        return order

    async def _rounds(self, order: list[ShopTurn]) -> None:
        """Rounds until nothing moves: a listing page for every shop that wants one, then one send round
        (the send round first when ``sends_first``)."""
        for s in order:
            if s.state.held_until is not None and not s.held and self.room() > ROUND_COST:
                await release(self, s)
        sends_first = self.sends_first
        while True:
            progressed = sends_first and await send_round(self, order)
            for s in order:
                now = self.rt.now()
                if not s.can_list(now):
                    continue
                self.meter.shop = s.shop.name
                s.ls_wait_turn = 0.0
                try:
                    did = await list_page(self, s)
                finally:
                    self.meter.shop = None
                if did:             # list_page stored the shop's turn (served now) with its page
                    progressed = True
                    self.turns += 1
            if not sends_first and await send_round(self, order):
                progressed = True
            if not progressed:
                return

    def _report(self) -> PassReport:
        now = self.rt.now()
        report = PassReport({}, {}, self.meter.kinds, self.meter.limit, turns=self.turns, logged=self.logged)
        waits = []
        for name, s in self.shops.items():
            s.report.calls = self.meter.shops.get(name, Counter())
            s.report.due_left = s.due
            if s.report.listing == "idle" and s.listing_wanted:
                s.report.listing = "paused" if s.paused(now) else "not started"
            report.shops[name] = s.report
            if s.can_list(now) or s.can_send(now, self.limits.meta_per_minute):
                report.more = True
            if s.listing_wanted and s.paused(now):
                waits.append(max(s.progress.paused_until or now, s.progress.rate_limited_until or now) - now)
            if s.due and not s.held:
                if s.lines_blocked(now):
                    waits.append((s.progress.rate_limited_until or now) - now)
                elif s.meta_left(now, self.limits.meta_per_minute) <= 0:
                    waits.append((s.progress.meta_window or now) + 60 - now)
        report.wait = float(min(waits)) if waits else None
        report.cpu_ms = self.meter.cpu_used if self.limits.cpu_ms is not None else None
        calls_left = self.meter.left()
        if (report.more and not self.turns and not self.logged and self.limits.cpu_ms is not None
                and (calls_left is None or calls_left > LIST_COST + 1)):
            # work was waiting and the plan's CPU held none of it: say where it can go (a console line, no R2 call)
            report.starved = True
            logger.warning("the %s plan's %g ms of CPU per invocation holds no listing page or send after this "
                           "run's fixed work (modeled %.1f ms): set RELAY_PLAN=paid (docs/PLANS.md)",
                           self.limits.plan, self.limits.cpu_ms, self.meter.cpu_used)
        return report

    def read_ahead(self) -> list[tuple[Statement, QueryResult]]:
        """What the start read for others, while it is still what they would read: only if the pass made no
        D1 call after its start (an idle pass writes nothing; a released hold or a pause would)."""
        return self.read if self.meter.d1_used == 1 else []

    async def save(self) -> None:
        turns = [(s.progress, s.meta_added) for s in self.shops.values()
                 if s.meta_added or turn_of(s.progress) != s.started]     # an idle pass writes nothing
        try:
            await self.ledger.save_turns(turns, self.rt.now())
        except BudgetExhausted as exc:      # only pauses, rotation and the Meta count are lost; nothing sent is
            self.rt.log.add("relay", self.rt.now(), kind="warning", error=str(exc))

    def close(self) -> None:
        """Break the one cycle a pass makes (its meter calls back ``_observe``), so that its objects go when the pass
        does: left as a cycle, each pass's ~60 objects waited for Python's cyclic GC, whose run collected ~1,850 of
        them every ~38 free passes, ~1.2 ms of that pass's CPU in Pyodide (bench_worker_cpu's "Python GC")."""
        self.meter.observers.clear()

    async def end(self) -> None:
        """The staged log's delete, when no D1 call after the copy carried it (an idle pass writes nothing). A failed
        delete leaves the rows: the next pass copies them again to the same object (``relay.outbox.log_spool``)."""
        try:
            await self.deferred.flush()
        except Exception as exc:
            logger.warning("the staged delivery-log rows this pass wrote were not deleted (%s); the next cron run "
                           "writes them again, to the same object", type(exc).__name__)


def _classifier(settings: Settings) -> Callable[[str], str]:
    lightspeed = [settings.lightspeed_api_url] if settings.lightspeed_api_url else list(CLUSTER_HOSTS.values())
    meta = settings.meta_graph_url

    def classify(url: str) -> str:
        if url.startswith(meta + "/"):
            return "meta"
        if any(url.startswith(base + "/") for base in lightspeed):
            return "lightspeed"
        return "other"

    return classify
