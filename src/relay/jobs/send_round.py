"""A send round of the cron pass: which shops it serves and how many rows each, then the round itself.

A round costs two D1 calls however many shops it serves: one ``batch`` claims for all of them under
one lease token, and one ``batch`` finishes them all after each shop's lines were fetched and its
events went to Meta in one request. The rest of the budget goes to lines and Meta requests, so at
50 subrequests a pass sends about 40 events with their contents, unless the plan's CPU model says
fewer fit (``relay.core.cpu_model``: each event, and each of its ``products.json`` calls, costs CPU).
The finish also stores each served shop's turn (rotation, the Meta requests of this minute), so a pass
stopped after a round has lost nothing of it. On the free plan, where a pass holds one event, the pass's start
makes the claim (``relay.jobs.send_ahead``) and ``deliver_round`` does the rest.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

from relay.core.errors import LightspeedError
from relay.jobs import currency, delivery
from relay.jobs.limits import CURRENCY_CALLS, LIST_COST, LOW_WATER, ROUND_CALLS, ROUND_COST, SPARE, UNLIMITED
from relay.jobs.pass_state import PassContext, ShopTurn, deadline, turn_of
from relay.outbox import log_spool
from relay.outbox.cron_ledger import turn_statement
from relay.outbox.rows import Claimed, Finished


async def release(work: PassContext, s: ShopTurn) -> None:
    """Lift the hold of a shop whose Meta token was replaced: its waiting retries are due now, as many
    as a round may claim, all assumed to need their lines until the claim says otherwise. A hold under the
    same token whose time has passed lifts nothing: its retries fell due with it and are counted already (a
    shop with none was counted as a full batch, and on the free plan took every pass's one round, claiming
    nothing)."""
    replaced = s.state.held_token != s.shop.meta_token.fingerprint()
    work.meter.shop = s.shop.name
    try:
        s.held = s.report.held = await delivery.held(work.rt, s.shop, s.state, work.rt.now())
    finally:
        work.meter.shop = None
    s.state = dataclasses.replace(s.state, held_until=None)
    if not s.held and replaced:
        s.due = s.needs_lines = max(s.due, work.limits.batch_size)


async def refresh_currency(work: PassContext, order: list[ShopTurn]) -> bool:
    """A unit of its own for a pass that could not send even one event: the currency of the next shop to send
    for, when its cache is stale (the lease, ``shop.json`` and the cache write: 3 calls a send would otherwise
    add). On the free plan one event and those calls do not fit in one invocation's CPU; apart, each does."""
    if not work.sends_first:          # the free plan's passes only: elsewhere a round has room for the 3 calls
        return False
    now = work.rt.now()
    stale = [s for s in order if s.can_send(now, work.limits.meta_per_minute) and not s.held
             and not s.lines_blocked(now) and s.state_cost(now) >= CURRENCY_CALLS]
    if not stale or work.room(True) < CURRENCY_CALLS or (work.cpu_room(CURRENCY_CALLS, True) or 0.0) < 0:
        return False
    s = min(stale, key=lambda s: (s.sends, s.rank))
    work.meter.shop = s.shop.name
    try:
        value = await currency.current(work.rt, s.shop, s.state.currency, s.state.currency_at, now)
    except LightspeedError as exc:        # the send round retries it, as it would have
        work.rt.log.add(s.shop.name, now, kind="warning", error=str(exc))
        return False
    finally:
        work.meter.shop = None
    # fetched and cached now, or another isolate holds the lease and the stale value is what a send would use
    s.state = dataclasses.replace(s.state, currency=value, currency_at=now)
    work.turns += 1
    return True


def plan(work: PassContext, order: list[ShopTurn], hard: bool = False) -> list[tuple[ShopTurn, int, int]]:
    """Which shops this round sends for, and how many rows each claims.

    Listing pages come first (the room for each shop's next page is kept). Then the least recently
    served shop goes first (among equals, the smaller backlog) and takes what it
    needs, up to the budget and Lightspeed's window; what is left goes to the next. A round costs two
    D1 calls (claim and finish, for all its shops), ``SPARE`` for a bisected batch or a hold, and per
    shop one Meta request, its log object, its lines and, when its cached currency is stale, shop.json
    and the cache write. Under a CPU model each shop also takes no more events than the CPU left holds
    (each with a ``products.json`` call while the shop has rows that need one). ``hard``: the pass has
    done nothing yet, so one event may go past the model's target share, inside the plan's limit.
    """
    now = work.rt.now()
    if work.d1_room() < ROUND_COST:
        return []
    ready = sorted((s for s in order if s.can_send(now, work.limits.meta_per_minute)),
                   key=lambda s: (s.sends, s.rank))
    # their next pages go first (2 calls for 250 orders), unless the send round does
    listing = 0 if work.sends_first else sum(s.can_list(now) for s in order)
    reserve = ROUND_COST + (0 if hard else SPARE) + LIST_COST * listing
    avail = min(work.room(hard, sending=True) - reserve, ROUND_CALLS)
    # CPU is not kept for pages: on the free plan sends go first. A forced round (``hard``) sends one event, which
    # Meta cannot ask to bisect: it keeps no spare calls' CPU
    cpu = work.cpu_room(ROUND_COST if hard else ROUND_COST + SPARE, hard, sending=True)
    model = work.limits.cpu_model
    chosen: list[tuple[ShopTurn, int, int]] = []
    logs: set[str] = set()
    for s in ready:
        cost = 1 + work.logs(logs | {s.shop.name}, True) - work.logs(logs, True) + s.state_cost(now)
        lines_room = avail - cost
        if s.ls_left is not None:
            lines_room = min(lines_room, s.ls_left - LOW_WATER)
        if lines_room < min(s.needs_lines, 1):
            continue
        # every row may need lines when more need them than there is room for: claim no more than that
        limit = min(work.limits.batch_size, lines_room if s.needs_lines > lines_room else UNLIMITED)
        if cpu is not None:
            limit = min(limit, model.events_within(cpu - cost * model.per_subrequest, lines=s.needs_lines > 0))
            if hard:
                limit = min(limit, 1)
            if limit < 1:
                continue
        lines = min(s.needs_lines, limit)
        avail -= cost + lines
        if cpu is not None:
            cpu -= model.cost(subrequests=cost + lines, events=limit, invocations=0)
        logs.add(s.shop.name)
        chosen.append((s, limit, lines))
        if avail < 2 or hard:
            break
    return chosen


async def send_round(work: PassContext, order: list[ShopTurn]) -> bool:
    """Claim for every planned shop in one D1 call, fetch lines and post one Meta request per shop,
    and finish them all in one D1 call (``deliver_round``)."""
    planned = plan(work, order) or (plan(work, order, hard=True) if work.may_force() else [])
    if not planned:
        return work.may_force() and await refresh_currency(work, order)
    now = work.rt.now()
    token = uuid.uuid4().hex
    claimed = await work.ledger.claim_many({s.shop.name: limit for s, limit, _ in planned}, now, token,
                                           delivery.LEASE_SECONDS)
    return await deliver_round(work, planned, claimed, token, now)


async def deliver_round(work: PassContext, planned: list[tuple[ShopTurn, int, int]],
                        claimed: dict[str, list[Claimed]], token: str, now: int) -> bool:
    """A round's rows, claimed under ``token`` (by ``send_round``, or by the pass's start: ``relay.jobs.send_ahead``):
    each shop's lines and one Meta request, then one D1 call finishes them all with the shops' turns. Whether
    anything moved."""
    log_object = 0 if work.stages_log else 1      # a shop's log object: none when the finish stages the lines
    later = sum(lines + s.state_cost(now) + 1 + log_object for s, _, lines in planned)   # what the planned shops
    # still need: each its lines, Meta, its log object
    finished: dict[str, list[Finished]] = {}
    also: dict[str, list[tuple[str, Sequence[Any]]]] = {}
    reports: list[tuple[ShopTurn, delivery.SendReport, int]] = []
    for s, limit, lines in planned:
        later -= lines + s.state_cost(now) + 1 + log_object
        rows = claimed[s.shop.name]
        sent = delivery.SendReport(claimed=len(rows))
        reports.append((s, sent, limit))
        if not rows:
            continue
        work.meter.shop = s.shop.name
        s.ls_wait_turn = 0.0
        fetches = [lines, 0]

        def may_fetch(s: ShopTurn = s, fetches: list[int] = fetches) -> bool:
            """Within the lines this shop was planned, and while Lightspeed's window has room."""
            if fetches[1] >= fetches[0] or s.ls_wait > 0.0:
                return False
            fetches[1] += 1
            return True

        try:
            # Meta requests: the first, and for bisecting a rejected batch whatever the later shops, the
            # finish, this shop's lines and log object and a hold's write leave
            free = work.room(sending=True) - 1 - later - lines - s.state_cost(now) - log_object
            cap = max(min(s.meta_left(now, work.limits.meta_per_minute), free), 1)
            finished[s.shop.name], also[s.shop.name] = await delivery.deliver(
                work.rt, s.shop, rows, s.state, now, sent, max_requests=cap, may_fetch=may_fetch)
        finally:
            work.meter.shop = None
        work.meter.charge(len(rows) * work.limits.cpu_model.per_event)
        s.needs_lines = max(0, s.needs_lines - fetches[1])
    for s, sent, limit in reports:
        delivery.count(sent, finished.get(s.shop.name, []))
        _sent(work, s, sent, limit)
        if finished.get(s.shop.name):          # the shop's turn goes with its finish (see the module's docstring)
            also[s.shop.name] = [*also.get(s.shop.name, ()), turn_statement(s.progress, s.meta_added, now)]
            s.meta_added, s.started = 0, turn_of(s.progress)
    await finish(work, token, now, finished, also)
    return any(sent.claimed > sent.due for _, sent, _ in reports)     # rows put back unsent are no progress


async def finish(work: PassContext, token: str, now: int, finished: dict[str, list[Finished]],
                 also: dict[str, list[tuple[str, Sequence[Any]]]]) -> None:
    """The round's finish; on a pass that stages its log (the free plan's), with every line the invocation holds,
    one row per shop, as ``DeliveryLog.flush`` would write them to R2 (``relay.outbox.log_spool``): the lines go
    in the same transaction as the outcomes they report, and the next copy writes them. Once that is committed
    the log forgets them; if the finish fails they stay, and the pass's end writes them to R2 as before."""
    log = work.rt.log
    if not work.stages_log or not log.lines or not any(finished.values()):
        await work.ledger.finish_many(token, now, finished, also)
        return
    staged, counts = log_spool.pass_lines(log, work.rt.clock())
    await work.ledger.finish_many(token, now, finished, also, staged)
    log.drop(counts)


def _sent(work: PassContext, s: ShopTurn, sent: delivery.SendReport, limit: int) -> None:
    s.sends += 1
    s.progress.meta_requests += sent.requests
    s.meta_added += sent.requests
    # a claim short of its limit took everything due: what is left is what went back
    s.due = sent.due if sent.claimed < limit else max(0, s.due - sent.claimed + sent.due)
    s.needs_lines = min(max(s.needs_lines, sent.due), s.due)      # what was put back may need its lines
    if sent.held:
        s.held = s.report.held = True
    if s.ls_wait_turn:
        s.progress.rate_limited_until = deadline(work.rt.now(), s.ls_wait_turn)
    if sent.claimed:                       # served, even if all went back: the next shop goes first
        s.progress.served_at = work.rt.now()
    if sent.claimed > sent.due:
        work.turns += 1
    r = s.report
    for name in ("sent", "retry", "failed", "expired", "requests"):
        setattr(r, name, getattr(r, name) + getattr(sent, name))
