"""The cron pass: for every shop, list the orders no webhook delivered, and send what is due.

One pass is one ``scheduled`` invocation, and an invocation has a subrequest budget (50 on the free
plan, D1 calls included), so a pass is planned from an exact count (``relay.outbox.budget``) and stops
before the budget does. Whatever it did not reach, the next pass continues:

- Listing: ``orders.json?updated_at_min=…&limit=250&page=k`` until a short page. A page's orders and
  the listing's next position are written in one D1 batch, so the position never passes an order
  that is not stored. A complete listing moves the shop's cursor to the time it started, and the
  next one starts ``OVERLAP`` before that: orders paid days after they were placed, or updated while
  a listing was under way, are listed again, and the ledger's UPSERT makes repeats harmless.
- Sending: ``service.send_due`` claims due rows and posts them to Meta in one request (bisecting a
  rejected batch), sized to what the budget and the shop's Meta allowance (``META_PER_MINUTE``) leave.
- Fairness: shops take turns (one page, or one send batch), each with an equal share of what is
  left; the shop served least recently goes first, so a big shop cannot starve the others.
- Lightspeed's limits: a 429 is waited out in the pass when short (``INLINE_WAIT``), else the shop
  is paused until Lightspeed's reset; a rate-limit window nearly spent pauses it too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from relay.core import lightspeed
from relay.core.config import CLUSTER_HOSTS, Settings, Shop, load_shop, scan_shops
from relay.core.errors import BudgetExhausted
from relay.core.ports import HttpResponse
from relay.jobs import delivery
from relay.jobs.limits import (
    LOW_WATER,
    MIN_META_REQUESTS,
    RATE_LIMITED_WAIT,
    SEND_OVERHEAD,
    UNLIMITED,
    Limits,
    load_limits,
)
from relay.jobs.listing import list_page, start_listing
from relay.jobs.pass_state import PassReport, ShopPass, ShopTurn, Sleep, deadline
from relay.jobs.runtime import Runtime
from relay.outbox.budget import Meter
from relay.outbox.cron_ledger import CronLedger
from relay.outbox.rows import Due, Progress

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
        self.turns = 0

    def room(self) -> int:
        """Subrequests this pass may still start: the budget less what its ending needs (the progress
        write, and one log object per shop that has lines)."""
        left = self.meter.left()
        if left is None:
            return UNLIMITED
        logs = 0
        if self.rt.blobs is not None:
            logs = len(self.rt.log.lines) + (self.meter.shop not in self.rt.log.lines)
        return left - 1 - logs

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
            state.ls_left = limit.remaining[0]
        state.ls_wait = wait
        state.ls_wait_turn = max(state.ls_wait_turn, wait)

    async def run(self, shops: list[Shop], since: int | None) -> PassReport:
        now = self.rt.now()
        progress = await self.ledger.progress()
        due = await self.ledger.start_pass(now)
        for shop in shops:
            p = progress.get(shop.name) or Progress(shop.name)
            d = due.get(shop.name) or Due()
            lists = self.listing and start_listing(p, now, since, self.spaced)
            state = ShopTurn(shop, p, d.rows, d.needs_lines, ShopPass(), lists)
            if d.held_until is not None:
                if d.held_token != shop.meta_token.fingerprint():
                    state.due = max(state.due, 1)      # a new token: send_due lifts the hold and sends
                elif d.held_until > now:
                    state.held = state.report.held = True
            self.shops[shop.name] = state
        order = sorted(self.shops.values(), key=lambda s: (s.progress.served_at or 0, s.shop.name))
        try:
            await self._rounds(order)
        except BudgetExhausted as exc:          # a planning bug, never the plan: report it, lose nothing
            self.rt.log.add("relay", self.rt.now(), kind="warning", error=str(exc))
        return self._report()

    async def _rounds(self, order: list[ShopTurn]) -> None:
        active = list(order)
        while active:
            progressed = False
            for s in list(active):
                now = self.rt.now()
                can_list = s.can_list(now)
                can_send = s.can_send(now, self.limits.meta_per_minute)
                if not (can_list or can_send):
                    active.remove(s)
                    continue
                room = self.room()
                share = max(room // len(active), 1)
                self.meter.shop = s.shop.name
                s.ls_wait_turn = 0.0
                try:
                    if can_send and (s.send_next or not can_list):
                        did = await self._send(s, share, room)
                    else:
                        did = await list_page(self, s, room)
                finally:
                    self.meter.shop = None
                s.send_next = not s.send_next
                if did:
                    progressed = True
                    self.turns += 1
                    s.progress.served_at = self.rt.now()
                elif share >= room:                 # it had everything there was, and it was not enough
                    active.remove(s)
            if not progressed:
                return


    async def _send(self, s: ShopTurn, share: int, room: int) -> bool:
        now = self.rt.now()
        share = min(room, max(share, SEND_OVERHEAD + 2))
        spare = share - SEND_OVERHEAD
        if spare < 2:
            return False
        meta_left = s.meta_left(now, self.limits.meta_per_minute)
        cap = min(meta_left, max(MIN_META_REQUESTS, spare // 4), spare - 1)
        lines_room = spare - cap
        if s.ls_left is not None:
            lines_room = min(lines_room, s.ls_left - LOW_WATER)
        limit = self.limits.batch_size if s.needs_lines <= lines_room else lines_room
        if limit < 1 or cap < 1:
            return False
        sent = await delivery.send_due(self.rt, s.shop, limit=limit, max_requests=cap)
        s.progress.meta_requests += sent.requests
        s.meta_added += sent.requests
        s.due = 0 if sent.claimed == 0 else max(0, s.due - sent.claimed + sent.due)
        s.needs_lines = min(s.needs_lines, s.due)
        if sent.held:
            s.held = s.report.held = True
        if s.ls_wait_turn:
            s.progress.rate_limited_until = deadline(self.rt.now(), s.ls_wait_turn)
        r = s.report
        for name in ("sent", "retry", "failed", "expired", "requests"):
            setattr(r, name, getattr(r, name) + getattr(sent, name))
        return sent.claimed > 0 or sent.expired > 0

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
                 if s.progress.served_at is not None or s.paused(self.rt.now()) or s.meta_added
                 or s.progress.last_error is not None]
        try:
            await self.ledger.save_turns(turns, self.rt.now())
        except BudgetExhausted as exc:      # only pauses, rotation and the Meta count are lost; nothing sent is
            self.rt.log.add("relay", self.rt.now(), kind="warning", error=str(exc))


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
