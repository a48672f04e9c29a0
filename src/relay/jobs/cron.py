"""The cron pass: for every shop, list the orders no webhook delivered, and send what is due.

One pass is one ``scheduled`` invocation, and an invocation has a subrequest budget (50 on the free
plan, D1 calls included), so a pass is planned from an exact count (``relay.outbox.budget``) and stops
before the budget does. Whatever it did not reach, the next pass continues:

- Listing: ``orders.json?updated_at_min=…&limit=250&page=k`` until a short page. A page's orders and
  the listing's next position are written in one D1 batch, so the position never passes an order
  that is not stored. A complete listing moves the shop's cursor to the time it started, and the
  next one starts ``OVERLAP`` before that: orders paid days after they were placed, or updated while
  a listing was under way, are listed again, and the ledger's UPSERT makes repeats harmless.
- Sending, in rounds that cost two D1 calls however many shops they serve: one ``batch`` claims
  for every planned shop (under one lease token), then each shop's lines are fetched and its events
  go to Meta in one request (bisecting a rejected batch), and one ``batch`` finishes them all. A pass
  starts with one D1 call too (``CronLedger.start_pass``: upkeep, expiry, what is due, every shop's
  position and state), so the budget goes to events: at 50, about 40 a pass with their lines.
- Fairness: every shop wanting a listing lists a page each round, and a round sends first for the
  shop served least recently (among equals, the smaller backlog), taking what it needs; what is left
  goes to the next, so a big shop cannot starve the others and each Meta request carries many events.
- Lightspeed's limits: a 429 is waited out in the pass when short (``INLINE_WAIT``), else the shop
  is paused until Lightspeed's reset; a rate-limit window nearly spent pauses it too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from itertools import groupby
from typing import Any

from relay.core import lightspeed
from relay.core.config import CLUSTER_HOSTS, Settings, Shop, load_shop, scan_shops
from relay.core.errors import BudgetExhausted
from relay.core.ports import HttpResponse
from relay.jobs import delivery
from relay.jobs.limits import (
    LOW_WATER,
    RATE_LIMITED_WAIT,
    ROUND_COST,
    UNLIMITED,
    Limits,
    load_limits,
)
from relay.jobs.listing import list_page, start_listing
from relay.jobs.pass_state import PassReport, ShopPass, ShopTurn, Sleep
from relay.jobs.runtime import Runtime
from relay.jobs.send_round import release, send_round
from relay.outbox.budget import Meter
from relay.outbox.cron_ledger import CronLedger
from relay.outbox.rows import Due, Progress, ShopState

logger = logging.getLogger("relay")

class Pass:
    def __init__(self, rt: Runtime, limits: Limits, sleep: Sleep, listing: bool, spaced: bool = True) -> None:
        self.settings = rt.settings
        self.meter = Meter(limits.budget, _classifier(self.settings))
        self.meter.observers.append(self._observe)
        self.rt = dataclasses.replace(
            rt, db=self.meter.database(rt.db), http=self.meter.http(rt.http),
            blobs=self.meter.blobs(rt.blobs) if rt.blobs is not None else None)
        self.ledger = CronLedger(self.rt.db)
        self.limits = limits
        self.sleep = sleep
        self.listing = listing
        self.spaced = spaced
        self.shops: dict[str, ShopTurn] = {}
        self.expired: dict[str, int] = {}
        self.turns = 0

    def room(self) -> int:
        """Subrequests this pass may still start: the budget less what its ending needs (the progress
        write, and one log object per shop that has lines)."""
        left = self.meter.left()
        if left is None:
            return UNLIMITED
        return left - 1 - self.logs(set())

    def logs(self, shops: set[str]) -> int:
        """Log objects the pass will write if ``shops`` add lines too (one R2 call each)."""
        if self.rt.blobs is None:
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

    async def run(self, shops: list[Shop], since: int | None) -> PassReport:
        now = self.rt.now()
        start = await self.ledger.start_pass(now)
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
            wants = self.listing and start_listing(p, now, since, self.spaced, backlog=d.rows > 0)
            state = ShopTurn(shop, p, d.rows, d.needs_lines, ShopPass(), wants,
                             state=start.states.get(shop.name) or ShopState(shop.name))
            state.report.expired = self.expired.get(shop.name, 0)
            state.started = _turn(p)
            if d.held_until is not None:
                if d.held_token != shop.meta_token.fingerprint():
                    state.due = max(state.due, 1)      # a new token: the send round lifts the hold and sends
                elif d.held_until > now:
                    state.held = state.report.held = True
            self.shops[shop.name] = state
        order = sorted(self.shops.values(), key=lambda s: (s.progress.served_at or 0, s.due, s.shop.name))
        for rank, s in enumerate(order):
            s.rank = rank
        try:
            await self._rounds(order)
        except BudgetExhausted as exc:          # a planning bug, never the plan: report it, lose nothing
            self.rt.log.add("relay", self.rt.now(), kind="warning", error=str(exc))
        return self._report()

    async def _rounds(self, order: list[ShopTurn]) -> None:
        """Rounds until nothing moves: a listing page for every shop that wants one, then one send round."""
        for s in order:
            if s.state.held_until is not None and not s.held and self.room() > ROUND_COST:
                await release(self, s)
        while True:
            progressed = False
            for s in order:
                now = self.rt.now()
                if not s.can_list(now):
                    continue
                self.meter.shop = s.shop.name
                s.ls_wait_turn = 0.0
                try:
                    did = await list_page(self, s, self.room())
                finally:
                    self.meter.shop = None
                if did:
                    progressed = True
                    self.turns += 1
                    s.progress.served_at = self.rt.now()
            if await send_round(self, order):
                progressed = True
            if not progressed:
                return

    def _report(self) -> PassReport:
        now = self.rt.now()
        report = PassReport({}, {}, self.meter.kinds, self.meter.limit, turns=self.turns)
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
        return report

    async def save(self) -> None:
        turns = [(s.progress, s.meta_added) for s in self.shops.values()
                 if s.meta_added or _turn(s.progress) != s.started]     # an idle pass writes nothing
        try:
            await self.ledger.save_turns(turns, self.rt.now())
        except BudgetExhausted as exc:      # only pauses, rotation and the Meta count are lost; nothing sent is
            self.rt.log.add("relay", self.rt.now(), kind="warning", error=str(exc))


def _turn(p: Progress) -> tuple[int | None, int | None, int | None, str | None]:
    """What ``save_turns`` writes besides the Meta count."""
    return p.paused_until, p.rate_limited_until, p.served_at, p.last_error


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


async def run_pass(rt: Runtime, *, only: str | None = None, since: int | None = None, listing: bool = True,
                   limits: Limits | None = None, sleep: Sleep = asyncio.sleep, flush: bool = True,
                   spaced: bool = True) -> PassReport:
    """One cron invocation's work for every shop (or ``only`` one), within the subrequest budget.

    ``since`` (unix seconds) starts a fresh listing from that time; ``listing=False`` only sends what
    is due (the local server's retry timer). ``flush`` writes the delivery log at the end, inside the budget.
    ``spaced=False`` lists even when the last complete listing is recent (``relay backfill``, run by hand).
    """
    limits = limits or load_limits(rt.env)
    shops, problems = scan_shops(rt.env, rt.env_names)
    if only is not None:
        wanted = load_shop(rt.env, only)
        shops, problems = [s for s in shops if s.name == wanted.name] or [wanted], {}
    work = Pass(rt, limits, sleep, listing, spaced)
    now = rt.now()
    for name, problem in problems.items():
        work.rt.log.add(name, now, kind="config", error=problem)
    try:
        report = await work.run(shops, since)
        report.problems = problems
        await work.save()
    finally:
        if flush:
            await work.rt.log.flush(work.rt.blobs, work.rt.clock())
    return report


async def scheduled(rt: Runtime, before: Sequence[Callable[[Runtime], Awaitable[Any]]] = (),
                    sleep: Sleep = asyncio.sleep) -> PassReport:
    """What the Worker's cron trigger runs: ``before`` jobs first, then the pass with the budget they left.

    The jobs get the runtime through the same meter, so what they spend is counted. A job that would
    go over the budget, or fails, is logged and the pass runs all the same: a broken health check
    must not stop orders from being sent.
    """
    limits = load_limits(rt.env)
    meter = Meter(limits.budget)
    metered = dataclasses.replace(rt, db=meter.database(rt.db), http=meter.http(rt.http),
                                  blobs=meter.blobs(rt.blobs) if rt.blobs is not None else None)
    for job in before:
        name = getattr(getattr(job, "func", job), "__name__", "a job")
        try:
            await job(metered)
        except BudgetExhausted as exc:
            rt.log.add("relay", rt.now(), kind="warning", error=f"{name}: {exc}")
        except Exception as exc:
            logger.exception("cron job %s failed; the backfill and retry pass runs anyway", name)
            rt.log.add("relay", rt.now(), kind="warning",
                       error=f"{name} failed ({type(exc).__name__}); the backfill and retry pass ran anyway")
    left = None if limits.budget is None else max(limits.budget - meter.used, 0)
    return await run_pass(rt, limits=dataclasses.replace(limits, budget=left), sleep=sleep)


async def sweep(rt: Runtime, only: str | None = None) -> dict[str, delivery.SendReport]:
    """Send everything due now, shop by shop: the cron pass without the Lightspeed listing.

    The local server's retry timer runs this; it shares ``relay.jobs.cron``'s turns and Meta allowance
    but has no subrequest budget (CPython has none).
    """
    limits = dataclasses.replace(load_limits(rt.env), budget=None)
    report = await run_pass(rt, only=only, listing=False, limits=limits, flush=False)
    return {name: delivery.SendReport(sent=r.sent, retry=r.retry, failed=r.failed, expired=r.expired, held=r.held,
                             requests=r.requests)
            for name, r in report.shops.items()}
