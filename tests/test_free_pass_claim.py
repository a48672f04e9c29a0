"""A free pass's one event is claimed by the pass's start (``relay.jobs.send_ahead``): one subrequest fewer.

With the shipped CPU model a free pass holds one event; its start's D1 batch claims it, so a pass that sends a
listed order makes five subrequests (the start, products.json, Meta, the finish, the log object), not six. The
claim keeps its lease: a pass killed after its start sends nothing, the row stays leased until the lease runs
out, and every order still goes to Meta once. The shop the start claims for is the one the send round would have
served (least recently served first). Real SQLite, real HTTP to the loopback fakes; calls counted at the ports.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from conftest import SECRET, shop_env
from relay.core.config import load_shop
from relay.core.cpu_model import MODEL, CpuModel
from relay.core.order import parse_order
from relay.jobs import delivery, intake, limits
from relay.jobs.limits import STAGED_SEND_PASS_CALLS
from relay.outbox.ledger import Ledger
from test_backfill import LINES, PAID, Harness, harness, listed, paid_with_lines, sent_event_ids
from test_plans import CRON, SMALL, KillAt, KilledByTheRuntime, free_env

__all__ = ["harness"]      # the fixture, shared with test_backfill

FREE = limits.for_plan(limits.FREE)


def calls(h: Harness, meta: Any, lightspeed: Any) -> Counter[str]:
    products = sum(r.path.endswith("/products.json") for r in lightspeed.requests)
    return Counter(d1=h.db.calls, r2=h.blobs.calls, meta=len(meta.requests), products=products,
                   listing=len(lightspeed.requests) - products)


def paid_listed(h: Harness, lightspeed: Any, first_id: int, count: int, now: int) -> None:
    """``count`` paid orders listed without their lines (their lines at ``products.json``), and vik's currency
    fetched just now, so a free pass's one unit is an event."""
    paid_with_lines(lightspeed, first_id, count, now)
    cached_currency(h, now)


def cached_currency(h: Harness, now: int) -> None:
    h.sqlite.conn.execute("INSERT INTO shops (shop, currency, currency_at, updated_at) VALUES ('vik', 'EUR', ?, ?)",
                          (now, now))


def test_a_free_pass_sending_one_listed_order_makes_four_subrequests_and_a_killed_one_sends_nothing_twice(
        harness, env, meta, lightspeed, clock):
    h, now = harness, clock.now
    free_env(env)
    paid_listed(h, lightspeed, 870_000, 3, now)
    sends: list[Counter[str]] = []

    async def one(**kill: Any) -> Counter[str]:
        before = calls(h, meta, lightspeed)
        events = len(meta.events())
        if kill:
            real = h.http
            h.http = KillAt(real, **kill)
            try:
                with pytest.raises(KilledByTheRuntime):
                    await h.one_pass(limits=FREE)
            finally:
                h.http = real
        else:
            await h.one_pass(limits=FREE)
        spent = calls(h, meta, lightspeed) - before
        if len(meta.events()) - events:
            sends.append(spent)
        return spent

    def leased() -> list[int]:
        return [r[0] for r in h.sqlite.conn.execute("SELECT order_id FROM outbox WHERE state = 'sending'")]

    async def scenario() -> None:
        while len(h.rows()) < 3:                     # pages of 2 orders, sending first once orders are due
            await one()
            clock.advance(CRON)
        sent = len(sent_event_ids(meta))
        assert sent < 3
        killed = await one(path="/events", nth=1)    # killed at Meta: its start had claimed the row
        assert killed == Counter(d1=1, products=1), killed           # nothing to log yet: Meta never answered
        assert len(leased()) == 1 and len(sent_event_ids(meta)) == sent
        first = leased()[0]
        clock.advance(delivery.LEASE_SECONDS // 2)   # within the lease: the next pass does not claim it again
        await one()
        assert leased() == [first]
        clock.advance(delivery.LEASE_SECONDS // 2)   # the lease has run out: the row is claimed again
        for _ in range(4):
            await one()
            clock.advance(CRON)

    h.run(scenario)
    sent = sent_event_ids(meta)
    assert len(sent) == 3 and set(sent.values()) == {1}, "every order sent once"
    assert h.rows()[leased_first(h)]["attempts"] == 2, "the killed pass's claim counted as an attempt"
    # its log lines are staged in its finish (relay.outbox.log_spool): no R2 put
    assert len(sends) == 3 and all(s == Counter(d1=2, products=1, meta=1) for s in sends), sends
    assert all(s.total() == STAGED_SEND_PASS_CALLS for s in sends)
    assert MODEL.cost(subrequests=STAGED_SEND_PASS_CALLS, events=1) <= 10.0


def leased_first(h: Harness) -> int:
    return next(order_id for order_id, row in h.rows().items() if row["attempts"] == 2)


def test_the_start_claims_for_the_least_recently_served_shop_as_the_send_round_would(harness, env, meta,
                                                                                     lightspeed, clock):
    """Two shops with orders due: the passes take turns, and a shop whose currency is a day old gets its own unit
    (the currency), never a claim it could not send."""
    h, now = harness, clock.now
    free_env(env)
    env.update(shop_env(meta, lightspeed, "ATELIER"))
    env["ATELIER_LIGHTSPEED_API_KEY"], env["ATELIER_META_PIXEL_ID"] = "atelier-key", "111222333444550"
    for n, account in enumerate((lightspeed.orders, lightspeed.add_account("atelier-key", SECRET))):
        for i in range(2):
            order = listed(PAID, 880_000 + 10 * n + i, now - 3600 + i * 60)
            account.append(order)
            lightspeed.products[order["id"]] = LINES
    cached_currency(h, now)
    order: list[str] = []

    async def scenario() -> None:
        for _ in range(12):
            before = {e["event_id"] for e in meta.events()}
            shops = len([r for r in lightspeed.requests if r.path.endswith("/shop.json")])
            await h.one_pass(limits=FREE)
            new = [e for e in meta.events() if e["event_id"] not in before]
            order.extend("atelier" if e["event_id"].endswith(("880010", "880011")) else "vik" for e in new)
            if len([r for r in lightspeed.requests if r.path.endswith("/shop.json")]) > shops:
                order.append("currency")
            clock.advance(CRON)

    h.run(scenario)
    assert set(sent_event_ids(meta).values()) == {1} and len(sent_event_ids(meta)) == 4
    assert order == ["currency", "atelier", "atelier", "vik", "vik"], "as the send round chose before (f08068b)"


def test_a_model_that_holds_more_than_one_event_plans_its_round_after_its_start(harness, env, meta, lightspeed,
                                                                                clock):
    """With room for several events (a small model) the start claims nothing: the round plans them all."""
    h, now = harness, clock.now
    free_env(env)
    paid_listed(h, lightspeed, 890_000, 6, now)
    plan = limits.for_plan(limits.FREE, model=SMALL)

    async def scenario() -> None:
        while len(sent_event_ids(meta)) < 6:
            await h.one_pass(limits=plan)
            clock.advance(CRON)

    h.run(scenario)
    assert set(sent_event_ids(meta).values()) == {1}
    assert max(len(r.json()["data"]) for r in meta.requests if r.path.endswith("/events")) > 1, \
        "a round of several events, as before"


TIGHT = CpuModel(per_invocation=3.0, per_subrequest=0.5, per_listed_order=0.5, per_event=0.5)   # test_plans'


@pytest.mark.parametrize("model", [MODEL, TIGHT], ids=["shipped: the start claims", "tight: the round claims"])
def test_a_shop_whose_hold_ran_out_with_nothing_due_does_not_take_the_free_passes(harness, env, meta, lightspeed,
                                                                                  clock, model):
    """A hold under the same token ends by itself: its time passes, its row stays. Such a shop with nothing due
    was counted as a full batch due (as if its token had been replaced and its retries released), and being the
    least recently served it took every free pass's one round, which claimed nothing: the other shops' events
    never went out."""
    h, now = harness, int(clock.now)
    free_env(env)
    env.update(shop_env(meta, lightspeed, "ATELIER"))
    env["ATELIER_LIGHTSPEED_API_KEY"], env["ATELIER_META_PIXEL_ID"] = "atelier-key", "111222333444550"
    vik, atelier = load_shop(env, "vik"), load_shop(env, "atelier")
    for n in range(2):
        row = intake.row_for(parse_order(listed(PAID, 905_000 + n, now - 3600)), vik, now, "backfill")
        asyncio.run(Ledger(h.sqlite).record(row, now))
        lightspeed.products[905_000 + n] = LINES
    h.sqlite.conn.executemany(
        "INSERT INTO shops (shop, currency, currency_at, held_until, held_token, updated_at) "
        "VALUES (?, 'EUR', ?, ?, ?, ?)",
        [("vik", now, None, None, now), ("atelier", now, now - 10, atelier.meta_token.fingerprint(), now)])
    h.sqlite.conn.executemany("INSERT INTO backfill (shop, served_at, updated_at) VALUES (?, ?, ?)",
                              [("vik", now - 100, now), ("atelier", now - 1000, now)])
    h.sqlite.conn.commit()
    plan = limits.for_plan(limits.FREE, model=model)

    async def scenario() -> None:
        for _ in range(4):
            await h.one_pass(limits=plan, listing=False)
            clock.advance(CRON)

    h.run(scenario)
    assert sorted(sent_event_ids(meta)) == ["purchase_ORD905000", "purchase_ORD905001"]
