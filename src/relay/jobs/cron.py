"""The cron pass: for every shop, list the orders no webhook delivered, and send what is due.

One pass is one ``scheduled`` invocation, and an invocation has its plan's limits (``RELAY_PLAN``,
``relay.jobs.limits``): subrequests (50 free, D1 calls included), D1 queries, and CPU (10 ms free). A
pass is planned from an exact count of calls and a model of its CPU (``relay.jobs.cron_pass``) and stops
before either runs out. Whatever it did not reach, the next pass continues:

- Listing: ``orders.json?updated_at_min=…&limit=N&page=k`` until a short page (N: 250 on the paid
  plan, on the free one what its CPU model can parse in one invocation). A page's orders and
  the listing's next position are written in one D1 batch, so the position never passes an order
  that is not stored. A complete listing moves the shop's cursor to the time it started, and the
  next one starts ``OVERLAP`` before that: orders paid days after they were placed, or updated while
  a listing was under way, are listed again, and the ledger's UPSERT makes repeats harmless.
- Sending, in rounds that cost two D1 calls however many shops they serve: one ``batch`` claims
  for every planned shop (under one lease token), then each shop's lines are fetched and its events
  go to Meta in one request (bisecting a rejected batch), and one ``batch`` finishes them all. A pass
  starts with one D1 call too (``CronLedger.start_pass``: upkeep, expiry, what is due, every shop's
  position and state; on the free plan the reads of the jobs that run after an idle pass, and the claim of the
  one event the pass holds, ``relay.jobs.send_ahead``, as well), so
  the budget goes to events: at 50 subrequests and no CPU limit, about 40 a pass with their lines; on
  the free plan the CPU model decides, a few a pass.
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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from relay.core.config import load_shop, scan_shops
from relay.core.errors import BudgetExhausted
from relay.core.ports import QueryResult
from relay.jobs import delivery
from relay.jobs.cron_pass import Pass
from relay.jobs.limits import FREE, Limits, load_limits
from relay.jobs.pass_state import PassReport, Sleep
from relay.jobs.runtime import Runtime
from relay.outbox.budget import Meter
from relay.outbox.read_ahead import ReadAhead, Statement

logger = logging.getLogger("relay")


async def run_pass(rt: Runtime, *, only: str | None = None, since: int | None = None, listing: bool = True,
                   limits: Limits | None = None, sleep: Sleep = asyncio.sleep, flush: bool = True,
                   spaced: bool = True, reads: Sequence[Statement] = ()) -> PassReport:
    """One cron invocation's work for every shop (or ``only`` one), within the subrequest budget.

    ``since`` (unix seconds) starts a fresh listing from that time; ``listing=False`` only sends what
    is due (the local server's retry timer). ``flush`` writes the delivery log at the end, inside the budget.
    ``spaced=False`` lists even when the last complete listing is recent (``relay backfill``, run by hand).
    ``reads`` ride in the pass's first D1 call, answered in ``PassReport.read`` while still current.
    """
    limits = limits or load_limits(rt.env, rt.cpu_limited)
    shops, problems = scan_shops(rt.env, rt.env_names)
    if only is not None:
        wanted = load_shop(rt.env, only)
        shops, problems = [s for s in shops if s.name == wanted.name] or [wanted], {}
    work = Pass(rt, limits, sleep, listing, spaced)
    now = rt.now()
    for name, problem in problems.items():
        work.rt.log.add(name, now, kind="config", error=problem)
    try:
        report = await work.run(shops, since, reads)
        report.problems = problems
        await work.save()
        report.read = work.read_ahead()     # the staged log's delete, after it, changes nothing the jobs read
        await work.end()
    finally:
        try:
            if flush:
                await work.rt.log.flush(work.rt.blobs, work.rt.clock())
        finally:
            work.close()
    return report


async def scheduled(rt: Runtime, before: Sequence[Callable[[Runtime], Awaitable[Any]]] = (),
                    sleep: Sleep = asyncio.sleep) -> PassReport:
    """What the Worker's cron trigger runs: ``before`` jobs first, then the pass with the budget they left.

    The jobs get the runtime through the same meter, so what they spend (calls, D1 queries, modeled
    CPU) is counted and the pass plans with the rest. A job that would go over the budget, or fails, is
    logged and the pass runs all the same: a broken health check must not stop orders from being sent.
    On the free plan (10 ms of CPU: one page or one event a pass) the pass goes first and the jobs run
    only after a pass that did nothing, with the calls and modeled CPU it left (docs/PLANS.md).

    The reads the jobs start with (a job's ``reads``, ``relay.jobs.schedule``) are made ahead, all in one
    D1 call (``relay.outbox.read_ahead``): on the free plan in the pass's first call, so an idle run is one
    D1 call; on the paid plan in one call before the jobs, which still run before the pass, so the pass
    sees a hold the health check set. A job after one that wrote reads for itself, as before.
    """
    limits = load_limits(rt.env, rt.cpu_limited)
    reads = _reads(rt, before)
    if limits.cpu_ms is not None and limits.plan == FREE.name:
        # 10 ms of CPU holds one unit of work: the pass goes first, and the jobs run only after a pass that
        # did nothing, with what it left (their reads, made in the pass's first call, cost no call of their own)
        report = await run_pass(rt, limits=limits, sleep=sleep, flush=False, reads=reads)
        try:
            if not report.turns and not report.logged:     # a pass that wrote the staged log has no CPU for them
                spent = report.cpu_ms
                await _jobs(rt, before, dataclasses.replace(
                    limits, budget=None if limits.budget is None else max(limits.budget - report.used - 1, 0),
                    d1_budget=None if limits.d1_budget is None else max(limits.d1_budget - report.used - 1, 0)),
                    spent, reads, report.read)
        finally:
            await rt.log.flush(rt.blobs, rt.clock())
        return report
    meter = await _jobs(rt, before, limits, None, reads)
    left = None if limits.budget is None else max(limits.budget - meter.used, 0)
    d1_left = None if limits.d1_budget is None else max(limits.d1_budget - meter.d1_used, 0)
    return await run_pass(rt, limits=dataclasses.replace(limits, budget=left, d1_budget=d1_left,
                                                         cpu_spent=meter.cpu_used), sleep=sleep)


def _reads(rt: Runtime, jobs: Sequence[Callable[[Runtime], Awaitable[Any]]]) -> list[Statement]:
    """The reads ``jobs`` start with: each job's ``reads(rt)``, if it has one."""
    found: list[Statement] = []
    for job in jobs:
        reads = getattr(job, "reads", None)
        try:
            found += reads(rt) if reads is not None else ()
        except Exception:        # the job meets the same problem when it runs, and is logged then; the pass goes on
            logger.debug("cron job %r: its reads are not made ahead", job, exc_info=True)
    return found


async def _jobs(rt: Runtime, jobs: Sequence[Callable[[Runtime], Awaitable[Any]]], limits: Limits,
                spent: float | None, reads: Sequence[Statement] = (),
                read: Sequence[tuple[Statement, QueryResult]] = ()) -> Meter:
    """Run ``jobs`` through one meter of ``limits`` (``spent``: modeled CPU already used this invocation).

    ``read``: ``reads`` with their answers, read ahead; without them (none, or no longer current) ``reads``
    are made here first, in one call."""
    meter = Meter(limits.budget, d1_limit=limits.d1_budget, cpu=limits.cpu_model, cpu_limit=limits.cpu_ms,
                  cpu_spent=spent)
    db = meter.database(rt.db)
    if reads and not read:
        try:
            read = list(zip(reads, await db.batch(reads), strict=True))
        except Exception:        # D1 failed or the budget is spent: each job reads for itself, and is logged
            logger.debug("the cron jobs' reads failed; each job reads for itself", exc_info=True)
    metered = dataclasses.replace(rt, db=ReadAhead(db, read), http=meter.http(rt.http),
                                  blobs=meter.blobs(rt.blobs) if rt.blobs is not None else None)
    for job in jobs:
        name = getattr(getattr(job, "func", job), "__name__", "a job")
        try:
            await job(metered)
        except BudgetExhausted as exc:
            rt.log.add("relay", rt.now(), kind="warning", error=f"{name}: {exc}")
        except Exception as exc:
            logger.exception("cron job %s failed; the backfill and retry pass runs anyway", name)
            rt.log.add("relay", rt.now(), kind="warning",
                       error=f"{name} failed ({type(exc).__name__}); the backfill and retry pass ran anyway")
    return meter


async def sweep(rt: Runtime, only: str | None = None) -> dict[str, delivery.SendReport]:
    """Send everything due now, shop by shop: the cron pass without the Lightspeed listing.

    The local server's retry timer runs this; it shares ``relay.jobs.cron``'s turns and Meta allowance
    but has no subrequest budget (and in CPython, ``rt.cpu_limited`` False, no CPU limit either).
    """
    limits = dataclasses.replace(load_limits(rt.env, rt.cpu_limited), budget=None, d1_budget=None)
    report = await run_pass(rt, only=only, listing=False, limits=limits, flush=False)
    return {name: delivery.SendReport(sent=r.sent, retry=r.retry, failed=r.failed, expired=r.expired, held=r.held,
                             requests=r.requests)
            for name, r in report.shops.items()}
