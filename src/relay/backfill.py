"""The cron pass: for every shop, list the orders no webhook delivered, and send what is due.

One pass is one ``scheduled`` invocation, and an invocation has a subrequest budget (50 on the free
plan, D1 calls included), so a pass is planned from an exact count (``relay.budget``) and stops
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

The filter's time zone is unconfirmed (research/lightspeed.md §4): the filter is written in UTC and
moved back by the shop's UTC offset when that is west of UTC (learned from its order timestamps), so
that either reading covers the window.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay import lightspeed_api, service
from relay.budget import Meter
from relay.capi import WINDOW
from relay.config import CLUSTER_HOSTS, Settings, Shop, load_shop, scan_shops
from relay.errors import BudgetExhausted, ConfigError, LightspeedError
from relay.ledger import CronLedger, Due, Progress
from relay.ports import HttpResponse

logger = logging.getLogger("relay")

DEFAULT_BUDGET = 50            # the Workers free plan's subrequests per invocation
MIN_BUDGET = 20                # below this a pass cannot both list a page and send a batch
OVERLAP = 2 * 3600             # each listing re-reads this much before the last one started
UNKNOWN_OFFSET = -12 * 3600    # until a shop's orders show its UTC offset, assume the far west
LISTING_INTERVAL = 5 * 60      # a complete listing is not repeated sooner
META_PER_MINUTE = 60           # the product's budget of Meta requests per shop and minute
LOW_WATER = 10                 # Lightspeed calls left in a window for the webhook path and the merchant's tools
INLINE_WAIT = 5.0              # a 429 asking for at most this long is waited out within the pass
RATE_LIMITED_WAIT = 60.0       # a 429 that names no wait
ERROR_PAUSE = 60               # Lightspeed unreachable or 5xx
REFUSED_PAUSE = 30 * 60        # 401, 403 and other refusals: the merchant has to fix something
LIST_COST = 3                  # a page: the fetch, a 429 retry, the D1 batch
SEND_OVERHEAD = 9              # send_due besides lines and Meta: shop state, release, expire, claim,
                               # shop.json and its cache, a hold, finish, one spare
MIN_META_REQUESTS = 3          # enough for a rejected batch to be bisected a step each time
HEALTH_SHOPS = 2               # relay.health checks per cron run, before the pass (at most ~6 subrequests each)
UNLIMITED = 10**9

Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class Limits:
    budget: int | None = DEFAULT_BUDGET       # None: no limit (the local retry sweep)
    batch_size: int = service.BATCH_SIZE
    meta_per_minute: int = META_PER_MINUTE


def load_limits(env: Mapping[str, str]) -> Limits:
    return Limits(
        budget=_whole(env, "RELAY_SUBREQUEST_BUDGET", DEFAULT_BUDGET, MIN_BUDGET, 1_000_000,
                      "the Workers free plan allows 50 subrequests per invocation, paid plans 1,000 or more"),
        batch_size=_whole(env, "RELAY_BATCH_SIZE", service.BATCH_SIZE, 1, 1000,
                          "Meta takes at most 1,000 events per request"),
    )


def _whole(env: Mapping[str, str], name: str, default: int, low: int, high: int, why: str) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}; {why}")
    return int(raw)


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

    @property
    def used(self) -> int:
        return sum(self.calls.values())


@dataclass
class _Shop:
    """A shop's state within a pass."""

    shop: Shop
    progress: Progress
    due: int
    needs_lines: int
    report: ShopPass
    listing_wanted: bool
    meta_added: int = 0
    send_next: bool = False
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

    def can_list(self, now: int) -> bool:
        return self.listing_wanted and not self.paused(now)

    def can_send(self, now: int, per_minute: int) -> bool:
        return (self.due > 0 and not self.held and not self.lines_blocked(now)
                and self.meta_left(now, per_minute) > 0)


class _Pass:
    def __init__(self, rt: service.Runtime, limits: Limits, sleep: Sleep, listing: bool) -> None:
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
        self.shops: dict[str, _Shop] = {}
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
        limit = lightspeed_api.rate_limit(response)
        if response.status == 429:
            wait = lightspeed_api.retry_after(response) or RATE_LIMITED_WAIT
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
            state = _Shop(shop, p, d.rows, d.needs_lines, ShopPass(), self.listing and _start_listing(p, now, since))
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

    async def _rounds(self, order: list[_Shop]) -> None:
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
                        did = await self._list(s, room)
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

    async def _list(self, s: _Shop, room: int) -> bool:
        if room < LIST_COST:
            return False
        p, shop = s.progress, s.shop
        request = lightspeed_api.orders_request(shop, self.settings, p.run_filter or "", p.run_page or 1)
        page: lightspeed_api.OrdersPage | None = None
        for attempt in (1, 2):
            try:
                page = lightspeed_api.parse_orders(await self.rt.http.send(request), shop)
                break
            except (TimeoutError, OSError) as exc:
                return self._pause(s, ERROR_PAUSE, f"Lightspeed orders.json unreachable ({type(exc).__name__}); "
                                                   "the listing resumes at the same page")
            except LightspeedError as exc:
                if exc.status == 429:
                    wait = exc.retry_after or RATE_LIMITED_WAIT
                    if attempt == 1 and wait <= INLINE_WAIT and self.room() >= LIST_COST - 1:
                        await self.sleep(wait)
                        continue
                    return self._pause(s, wait, str(exc), rate_limited=True)
                return self._pause(s, ERROR_PAUSE if exc.retryable else REFUSED_PAUSE, str(exc))
        if page is None:
            return False
        now = self.rt.now()
        rows = [service.row_for(order, shop, now, "backfill") for order in page.orders]
        after = dataclasses.replace(p)
        for order in page.orders[-1:]:
            stamp = order.updated_at or order.created_at
            offset = stamp.utcoffset()
            if offset is not None:
                after.utc_offset = int(offset.total_seconds())
        if page.size < lightspeed_api.PAGE_LIMIT:     # a short page: the listing is complete
            after.cursor, after.completed_at = after.run_started, now
            after.run_since = after.run_filter = after.run_started = after.run_page = None
        else:
            after.run_page = (p.run_page or 1) + 1
        states = await self.ledger.record_page(rows, now, after)
        s.progress = after
        after.last_error = after.paused_until = None
        after.rate_limited_until = _until(now, s.ls_wait) if s.ls_wait else None
        r = s.report
        r.pages += 1
        r.listed += page.size
        r.unreadable += len(page.unreadable)
        r.seen.update(order.id for order in page.orders)
        r.listing = "in progress" if after.listing else "complete"
        s.listing_wanted = after.listing
        for row, state in zip(rows, states, strict=True):
            r.recorded[state or "unchanged"] += 1
            if state is None:
                continue
            if state == "due":
                s.due += 1
                s.needs_lines += row.needs_lines
            self.rt.log.add(shop.name, now, kind="decision", source="backfill", order_id=row.order_id,
                            event_id=row.event_id, state=state, reason=row.last_error, match_keys=row.match_keys)
        for order_id, problem in page.unreadable:
            self.rt.log.add(shop.name, now, kind="warning", source="backfill", order_id=order_id,
                            error=f"listed order could not be read, not stored: {problem}")
        if any(states) or page.unreadable:      # an idle shop's pass writes no log object (an R2 call each)
            self.rt.log.add(shop.name, now, kind="listing", events=page.size, state=r.listing,
                            reason=f"orders.json page {p.run_page or 1} updated_at_min {p.run_filter}")
        return True

    def _pause(self, s: _Shop, wait: float, error: str, rate_limited: bool = False) -> bool:
        """Stop listing this shop until ``wait`` has passed; the listing resumes at the same page."""
        now = self.rt.now()
        until = _until(now, wait)
        if rate_limited:
            s.progress.rate_limited_until = until
        else:
            s.progress.paused_until = until
        s.progress.last_error = error
        s.report.listing, s.report.error = "paused", error
        self.rt.log.add(s.shop.name, now, kind="listing", state="paused", error=error, next_attempt_at=until)
        return True

    async def _send(self, s: _Shop, share: int, room: int) -> bool:
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
        sent = await service.send_due(self.rt, s.shop, limit=limit, max_requests=cap)
        s.progress.meta_requests += sent.requests
        s.meta_added += sent.requests
        s.due = 0 if sent.claimed == 0 else max(0, s.due - sent.claimed + sent.due)
        s.needs_lines = min(s.needs_lines, s.due)
        if sent.held:
            s.held = s.report.held = True
        if s.ls_wait_turn:
            s.progress.rate_limited_until = _until(self.rt.now(), s.ls_wait_turn)
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


def _until(now: int, wait: float) -> int:
    return now + max(1, int(wait + 0.999))


def _start_listing(p: Progress, now: int, since: int | None) -> bool:
    """Whether this pass lists the shop's orders, and from when (set on ``p`` when a listing starts)."""
    if since is None:
        if p.listing:
            return True
        if p.completed_at is not None and now - p.completed_at < LISTING_INTERVAL:
            return False
        since = now - WINDOW if p.cursor is None else max(p.cursor - OVERLAP, now - WINDOW)
    offset = UNKNOWN_OFFSET if p.utc_offset is None else p.utc_offset
    p.run_since, p.run_started, p.run_page = since, now, 1
    p.run_filter = lightspeed_api.filter_time(since + min(0, offset))
    return True


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


async def run_pass(rt: service.Runtime, *, only: str | None = None, since: int | None = None, listing: bool = True,
                   limits: Limits | None = None, sleep: Sleep = asyncio.sleep, flush: bool = True) -> PassReport:
    """One cron invocation's work for every shop (or ``only`` one), within the subrequest budget.

    ``since`` (unix seconds) starts a fresh listing from that time; ``listing=False`` only sends what
    is due (the local server's retry timer). ``flush`` writes the delivery log at the end, inside the budget.
    """
    limits = limits or load_limits(rt.env)
    shops, problems = scan_shops(rt.env, rt.env_names)
    if only is not None:
        wanted = load_shop(rt.env, only)
        shops, problems = [s for s in shops if s.name == wanted.name] or [wanted], {}
    work = _Pass(rt, limits, sleep, listing)
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


async def scheduled(rt: service.Runtime, before: Sequence[Callable[[service.Runtime], Awaitable[Any]]] = (),
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
