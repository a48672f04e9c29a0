"""Listing a shop's orders from Lightspeed, one page a turn, resumable across passes.

A page's orders and the listing's next position are stored in one D1 batch, so the position never
passes an order that is not stored: a pass stopped (or killed) after any page resumes at the next one.
A run asks for pages of one size (``run_limit``, the plan's: on the free plan as many orders as its CPU
model lets one invocation parse), since ``page`` counts in pages of that size; a run that finds the
plan's size changed converts its page number, re-reading a few orders rather than skipping any.

The filter's time zone is not documented by Lightspeed: the filter is written in UTC and moved back by
the shop's UTC offset when that is west of UTC (learned from its order timestamps), so that either
reading covers the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from relay.core import lightspeed
from relay.core.capi import WINDOW
from relay.core.errors import LightspeedError, PayloadError
from relay.jobs import intake
from relay.jobs.limits import (
    BUSY_LISTING_INTERVAL,
    ERROR_PAUSE,
    INLINE_WAIT,
    LIST_COST,
    LISTING_INTERVAL,
    OVERLAP,
    RATE_LIMITED_WAIT,
    REFUSED_PAUSE,
    UNKNOWN_OFFSET,
)
from relay.jobs.pass_state import PassContext, ShopTurn, deadline, turn_of
from relay.outbox import cancellations, log_spool
from relay.outbox.cron_ledger import turn_statement
from relay.outbox.rows import NewRow, Progress


async def list_page(work: PassContext, s: ShopTurn) -> bool:
    p, shop = s.progress, s.shop
    resize(p, work.limits.page_size)
    size = p.run_limit or lightspeed.PAGE_LIMIT
    if not work.may_list(size):
        return False
    request = lightspeed.orders_request(shop, work.settings, p.run_filter or "", p.run_page or 1, limit=size)
    page: lightspeed.OrdersPage | None = None
    for attempt in (1, 2):
        try:
            page = lightspeed.parse_orders(await work.rt.http.send(request), shop)
            break
        except (TimeoutError, OSError) as exc:
            return pause(work, s, ERROR_PAUSE, f"Lightspeed orders.json unreachable ({type(exc).__name__}); "
                                               "the listing resumes at the same page")
        except LightspeedError as exc:
            if exc.status == 429:
                wait = exc.retry_after or RATE_LIMITED_WAIT
                if attempt == 1 and wait <= INLINE_WAIT and work.room() >= LIST_COST - 1:
                    await work.sleep(wait)
                    continue
                return pause(work, s, wait, str(exc), rate_limited=True)
            return pause(work, s, ERROR_PAUSE if exc.retryable else REFUSED_PAUSE, str(exc))
    if page is None:
        return False
    work.meter.charge(page.size * work.limits.cpu_model.per_listed_order)
    now = work.rt.now()
    rows, unreadable = [], list(page.unreadable)
    for order in page.orders:          # one order that cannot become an event must not stop the listing
        try:
            rows.append(intake.row_for(order, shop, now, "backfill"))
        except PayloadError as exc:
            unreadable.append((order.id, str(exc)))
    after = dataclasses.replace(p)
    for order in page.orders[-1:]:
        stamp = order.updated_at or order.created_at
        offset = stamp.utcoffset()
        if offset is not None:
            after.utc_offset = int(offset.total_seconds())
    if page.size < size:     # a short page: the listing is complete
        after.cursor, after.completed_at = after.run_started, now
        after.run_since = after.run_filter = after.run_started = after.run_page = after.run_limit = None
    else:
        after.run_page = (p.run_page or 1) + 1
    after.last_error = after.paused_until = None
    after.rate_limited_until = deadline(now, s.ls_wait) if s.ls_wait else None
    after.served_at = now
    r, listing = s.report, "in progress" if after.listing else "complete"
    warnings = [dict(kind="warning", source="backfill", order_id=order_id,
                     error=f"listed order could not be read, not stored (shown on /status): {problem}")
                for order_id, problem in unreadable]
    listed = dict(kind="listing", events=page.size, state=listing,
                  reason=f"orders.json page {p.run_page or 1} updated_at_min {p.run_filter}")
    # the shop's turn rides in the page's batch: a pass that lists one page makes no other D1 write; on the free plan
    # so do its log lines, staged (relay.outbox.log_spool.page): no R2 put of its own, as a sending pass. A cancelled
    # order's record is several statements whose answer SQL does not fold into one line: such a page logs as before
    staged = work.stages_log and all(row.cancelled_at is None for row in rows)
    each: list[tuple[str, Sequence[Any]]] | None = None
    tail: list[tuple[str, Sequence[Any]]] = []
    if staged:
        each, tail = log_spool.page(shop.name, now, work.rt.clock(),
                                    [(row.event_name, _decision(row, None)) for row in rows], warnings, listed)
    states = await work.ledger.record_page(rows, now, after, unreadable,
                                           also=[*tail, turn_statement(after, s.meta_added, now)], after_each=each)
    s.progress = after
    s.meta_added, s.started = 0, turn_of(after)
    r.pages += 1
    r.listed += page.size
    r.unreadable += len(unreadable)
    r.seen.update(order.id for order in page.orders)
    r.listing = listing
    s.listing_wanted = after.listing
    for row, state in zip(rows, states, strict=True):
        r.recorded[state or "unchanged"] += 1
        if state is None:
            continue
        if state in ("due", cancellations.QUEUED):
            s.due += 1
            s.needs_lines += row.needs_lines and state == "due"
        if not staged:
            work.rt.log.add(shop.name, now, state=state, **_decision(row, state))
    if staged:
        return True
    for line in warnings:
        work.rt.log.add(shop.name, now, **line)
    if any(states) or unreadable:      # an idle shop's pass writes no log object (an R2 call each)
        work.rt.log.add(shop.name, now, **listed)
    return True


def _decision(row: NewRow, state: str | None) -> dict[str, Any]:
    """A recorded row's decision line, but its state (a row that is not cancelled has the same reason whatever the
    ledger answers: ``intake.decision_reason``)."""
    return dict(kind="decision", source="backfill", order_id=row.order_id, order_number=row.order_number,
                event_id=row.event_id, reason=intake.decision_reason(row, state), match_keys=row.match_keys)


def pause(work: PassContext, s: ShopTurn, wait: float, error: str, rate_limited: bool = False) -> bool:
    """Stop listing this shop until ``wait`` has passed; the listing resumes at the same page."""
    now = work.rt.now()
    until = deadline(now, wait)
    if rate_limited:
        s.progress.rate_limited_until = until
    else:
        s.progress.paused_until = until
    s.progress.last_error = error
    s.progress.served_at = now
    s.report.listing, s.report.error = "paused", error
    work.rt.log.add(s.shop.name, now, kind="listing", state="paused", error=error, next_attempt_at=until)
    return True


def resize(p: Progress, size: int) -> None:
    """Pages of ``size`` from here on: the run's page number becomes the page of the new size holding its
    first unread order (rounded down, so some orders may be read twice, none skipped)."""
    if p.run_page is None or p.run_limit == size:
        return
    read = (p.run_page - 1) * (p.run_limit or lightspeed.PAGE_LIMIT)
    p.run_page, p.run_limit = read // size + 1, size


def start_listing(p: Progress, now: int, since: int | None, spaced: bool = True, backlog: bool = False,
                  size: int = lightspeed.PAGE_LIMIT) -> bool:
    """Whether this pass lists the shop's orders, and from when (set on ``p`` when a listing starts).

    ``spaced``: the cron trigger's passes leave ``LISTING_INTERVAL`` between complete listings, or
    ``BUSY_LISTING_INTERVAL`` while the shop has rows due (``backlog``): the next listing starts from
    the cursor all the same, so waiting longer misses nothing, and the calls go to the lines of the
    orders already listed. A pass someone asked for (``relay backfill``) lists now, or it would miss
    what was ordered meanwhile.
    """
    if since is None:
        if p.listing:
            return True
        interval = BUSY_LISTING_INTERVAL if backlog else LISTING_INTERVAL
        if spaced and p.completed_at is not None and now - p.completed_at < interval:
            return False
        since = now - WINDOW if p.cursor is None else max(p.cursor - OVERLAP, now - WINDOW)
    offset = UNKNOWN_OFFSET if p.utc_offset is None else p.utc_offset
    p.run_since, p.run_started, p.run_page, p.run_limit = since, now, 1, size
    p.run_filter = lightspeed.filter_time(since + min(0, offset))
    return True
