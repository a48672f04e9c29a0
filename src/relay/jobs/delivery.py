"""Sending what is due: claim rows under a lease, post them to Meta in one request, record the outcome.

The claim is what makes two senders (the webhook's ``waitUntil`` and the cron) safe together; the
outcome of each event follows Meta's answer by code (``relay.core.capi.classify``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relay.core import capi, lightspeed
from relay.core.capi import Outcome, Verdict
from relay.core.config import Shop
from relay.core.errors import LightspeedError
from relay.core.order import Line
from relay.jobs import consent
from relay.jobs.currency import current as current_currency
from relay.jobs.runtime import Runtime
from relay.outbox.delivery_log import scrub
from relay.outbox.rows import Claimed, Finished, ShopState

LEASE_SECONDS = 120
HOLD_SECONDS = 3600          # a shop whose token is refused is tried again after this, or at once on a new token
BATCH_SIZE = 100             # events per Meta request in the sweep (Meta allows 1,000)
FETCHES_AT_ONCE = 6          # products.json calls in flight together: a Worker keeps 6 connections open at once
                             # (https://developers.cloudflare.com/workers/platform/limits/#simultaneous-open-connections)


@dataclass
class SendReport:
    claimed: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    expired: int = 0
    skipped: int = 0          # consent did not let them go (relay.jobs.consent)
    held: bool = False
    requests: int = 0
    due: int = 0              # claimed but put back unsent: ``max_requests`` ran out while bisecting


DEFERRED = "not sent yet: this pass's Meta request allowance ran out; the next pass sends it"
LINES_DEFERRED = "not sent yet: this pass's budget or Lightspeed's rate limit left no call for its lines"


async def send_due(rt: Runtime, shop: Shop, order_id: int | None = None, limit: int = BATCH_SIZE, *,
                   max_requests: int | None = None) -> SendReport:
    """Claim what is due for one shop (or one order) and post it to Meta in one request.

    ``max_requests`` caps the Meta requests this call may make (bisecting a rejected batch makes more);
    what is left when it runs out goes back to ``due`` for the next call. The cron pass sets it from
    its subrequest budget and the shop's per-minute allowance.
    """
    report = SendReport()
    now = rt.now()
    token = uuid.uuid4().hex
    if order_id is not None:         # the webhook's send: the shop's state comes with the claim, one D1 call
        state, claimed = await rt.ledger.claim_order(shop.name, order_id, now, token, LEASE_SECONDS,
                                                     shop.meta_token.fingerprint(), limit)
        if await held(rt, shop, state, now):
            report.held = True
            return report
    else:
        state = await rt.ledger.shop_state(shop.name)
        if await held(rt, shop, state, now):
            report.held = True
            return report
        for gone in await rt.ledger.expire(shop.name, now):
            report.expired += 1
            rt.log.add(shop.name, now, kind="decision", order_id=gone["order_id"], event_id=gone["event_id"],
                       state="expired", reason="older than Meta's 7-day window")
        claimed = await rt.ledger.claim(shop.name, now, token, LEASE_SECONDS, limit)
    report.claimed = len(claimed)
    if not claimed:
        return report
    finished, also = await deliver(rt, shop, claimed, state, now, report, max_requests, wait=order_id is not None)
    await rt.ledger.finish(shop.name, token, now, finished, also=also)
    count(report, finished)
    return report


async def held(rt: Runtime, shop: Shop, state: ShopState, now: int) -> bool:
    """Whether Meta's refusal of the shop's token still holds its events; a hold whose token has been
    replaced is lifted here (one D1 call), making its waiting retries due now."""
    if state.held_until is None:
        return False
    if state.held_token != shop.meta_token.fingerprint():
        await rt.ledger.release(shop.name, now)
        rt.log.add(shop.name, now, kind="hold", state="released", reason="Meta token replaced; resending")
        return False
    return state.held_until > now


def count(report: SendReport, finished: list[Finished]) -> None:
    for f in finished:
        setattr(report, f.state, getattr(report, f.state) + 1)


async def deliver(rt: Runtime, shop: Shop, claimed: list[Claimed], state: ShopState, now: int, report: SendReport,
                  max_requests: int | None = None, *, may_fetch: Callable[[], bool] | None = None,
                  wait: bool = False) -> tuple[list[Finished], list[tuple[str, Sequence[Any]]]]:
    """Rows already claimed: consent, their lines and the shop's currency, then one Meta request.

    Answers what to finish, and the statements to run with it (``consent.cleanup``). ``may_fetch`` is
    asked before each ``products.json`` call: when it says no (the cron pass's budget or Lightspeed's
    rate limit), that row goes back to ``due`` unsent, for the next pass. ``wait``: for the currency,
    wait for another sender's ``shop.json`` fetch (the webhook path) rather than put the rows back.
    """
    finished: list[Finished] = []
    ready: list[tuple[Claimed, dict[str, Any]]] = []
    prepared: dict[int, consent.Prepared] = {}
    keep: dict[int, str] = {}          # the stored event with the lines fetched now, for a row that goes back
    try:
        currency = await current_currency(rt, shop, state.currency, state.currency_at, now, wait=wait)
    except LightspeedError as exc:
        finished = [_retry(rt, c, Outcome(Verdict.RETRY, message=str(exc)), now) for c in claimed]
    else:
        wanted: list[tuple[Claimed, dict[str, Any], dict[str, Any]]] = []   # rows to send: stored event, event
        for row in claimed:
            stored = json.loads(row.payload)
            p = prepared[row.order_id] = consent.prepare(shop, row, stored)
            if p.records or shop.consent_mode != "off":
                rt.log.add(shop.name, now, kind="decision", order_id=row.order_id, order_number=row.order_number,
                           event_id=row.event_id, **consent.log_fields(p))
            if not p.consent.send:
                finished.append(consent.skipped(row, p))
                continue
            wanted.append((row, stored, p.event))
        lines = await _all_lines(rt, shop, [row for row, _, _ in wanted if row.needs_lines], may_fetch)
        for row, stored, event in wanted:
            if row.needs_lines:
                got = lines.get(row.order_id)
                if got is None:
                    finished.append(_finished(row, Outcome(Verdict.RETRY, message=LINES_DEFERRED), "due",
                                              row.payload, next_attempt_at=now))
                    continue
                if isinstance(got, LightspeedError):
                    if got.retryable:
                        finished.append(_retry(rt, row, Outcome(Verdict.RETRY, message=str(got)), now))
                        continue
                    rt.log.add(shop.name, now, kind="warning", order_id=row.order_id, order_number=row.order_number,
                               error=f"sending without contents: {got}")
                else:
                    event = capi.with_lines(event, got, shop.net_revenue)
                    keep[row.order_id] = capi.dumps(capi.with_lines(stored, got, shop.net_revenue))
            ready.append((row, capi.with_currency(event, currency)))
        finished += await _post(rt, shop, ready, now, report, max_requests, keep)
    finished = consent.stamp(finished, prepared)
    return finished, consent.cleanup(shop, claimed, finished, prepared)


async def _post(rt: Runtime, shop: Shop, batch: list[tuple[Claimed, dict[str, Any]]], now: int,
                report: SendReport, max_requests: int | None = None,
                keep: dict[int, str] | None = None) -> list[Finished]:
    """One Meta request for ``batch``; a payload error in a batch is bisected so good events still go.

    A row that goes back unsent stores ``keep[order_id]`` when given: its event with the lines just
    fetched, so the next attempt needs no ``products.json`` call (and a bisection that ran out of
    requests this pass finishes in a later one that has them).
    """
    keep = keep or {}
    if not batch:
        return []
    if max_requests is not None and report.requests >= max_requests:
        return [_finished(row, Outcome(Verdict.RETRY, message=DEFERRED), "due", keep.get(row.order_id, row.payload),
                          next_attempt_at=now, lines_fetched=row.order_id in keep) for row, _ in batch]
    request = capi.events_request(shop, rt.settings, [event for _, event in batch])
    started = time.monotonic()
    report.requests += 1
    try:
        outcome = capi.classify(await rt.http.send(request), len(batch))
    except TimeoutError:
        outcome = capi.timed_out(request.timeout)
    except OSError as exc:
        outcome = capi.unreachable(f"Meta could not be reached ({type(exc).__name__}); will retry")
    ms = int((time.monotonic() - started) * 1000)
    if outcome.verdict is Verdict.FAILED and len(batch) > 1:
        half = len(batch) // 2
        return (await _post(rt, shop, batch[:half], now, report, max_requests, keep)
                + await _post(rt, shop, batch[half:], now, report, max_requests, keep))
    if outcome.verdict is Verdict.HOLD:
        until = now + HOLD_SECONDS
        await rt.ledger.hold(shop.name, until, shop.meta_token.fingerprint(), outcome.message or "", now)
        rt.log.add(shop.name, now, kind="hold", state="held", code=outcome.code, status=outcome.status,
                   error=f"{outcome.message}; replace {shop.prefix}META_ACCESS_TOKEN (a system-user token with "
                         "ads_management for this pixel); events stay queued")
        report.held = True
    results = []
    for row, event in batch:
        rt.log.add(shop.name, now, kind="attempt", order_id=row.order_id, order_number=row.order_number,
                   event_id=row.event_id,
                   verdict=outcome.verdict.value, status=outcome.status, code=outcome.code, subcode=outcome.subcode,
                   fbtrace_id=outcome.fbtrace_id, events_received=outcome.events_received, error=outcome.message,
                   attempts=row.attempts, events=len(batch), ms=ms, match_keys=row.match_keys)
        if outcome.verdict is Verdict.SENT:
            results.append(_finished(row, outcome, "sent", capi.dumps(capi.without_browser_data(event)),
                                     sent_at=now))
        elif outcome.verdict is Verdict.FAILED:
            results.append(_finished(row, outcome, "failed", row.payload))
        elif outcome.verdict is Verdict.HOLD:
            results.append(_finished(row, outcome, "retry", keep.get(row.order_id, row.payload),
                                     next_attempt_at=now + HOLD_SECONDS, lines_fetched=row.order_id in keep))
        else:
            results.append(_retry(rt, row, outcome, now, keep.get(row.order_id)))
    return results


def _retry(rt: Runtime, row: Claimed, outcome: Outcome, now: int, with_lines: str | None = None) -> Finished:
    """Back off; ``with_lines`` is the stored event with its lines, kept so the retry needs no lines call."""
    delay = capi.backoff(row.attempts, rt.random(), outcome.retry_after)
    return _finished(row, outcome, "retry", with_lines or row.payload, next_attempt_at=now + int(delay),
                     lines_fetched=with_lines is not None)


def _finished(row: Claimed, outcome: Outcome, state: str, payload: str, **extra: Any) -> Finished:
    """The outcome for the ledger; Meta's words are scrubbed as the delivery log scrubs them (an error
    message may echo an email address or a token)."""
    return Finished(
        order_id=row.order_id, event_name=row.event_name, state=state, payload=payload, status=outcome.status,
        code=outcome.code, subcode=outcome.subcode, fbtrace_id=outcome.fbtrace_id,
        error=scrub(outcome.message) if outcome.message else None, **extra)


async def _all_lines(rt: Runtime, shop: Shop, rows: list[Claimed], may_fetch: Callable[[], bool] | None
                     ) -> dict[int, tuple[Line, ...] | LightspeedError]:
    """Each row's lines (or why not), ``FETCHES_AT_ONCE`` calls at a time: a round of a thousand lines is a
    thousand round trips to Lightspeed, and one at a time they would outlast the claim's lease. ``may_fetch``
    is asked before each call, in order; a row it refuses is absent from the answer."""
    got: dict[int, tuple[Line, ...] | LightspeedError] = {}
    for start in range(0, len(rows), FETCHES_AT_ONCE):
        allowed = [row for row in rows[start:start + FETCHES_AT_ONCE] if may_fetch is None or may_fetch()]
        results = await asyncio.gather(*(_lines(rt, shop, row.order_id) for row in allowed), return_exceptions=True)
        for row, result in zip(allowed, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, LightspeedError):
                raise result
            got[row.order_id] = result
    return got


async def _lines(rt: Runtime, shop: Shop, order_id: int) -> tuple[Line, ...]:
    try:
        response = await rt.http.send(lightspeed.order_products_request(shop, rt.settings, order_id))
    except (TimeoutError, OSError) as exc:
        raise LightspeedError(f"shop '{shop.name}': Lightspeed products.json unreachable; will retry") from exc
    return lightspeed.parse_order_products(response, shop)
