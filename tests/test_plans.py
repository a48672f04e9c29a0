"""The plan profiles (``RELAY_PLAN``): what one cron invocation may do on the Free plan and on the Paid one.

Free: every pass stays inside the CPU cost model's share of 10 ms and inside 50 subrequests, and still makes
progress, so a backlog drains over successive passes, each order sent once. Paid: a big backlog drains within an
hour of cron runs, Lightspeed's 300 calls per 5 minutes per key being the brake. Real SQLite, real HTTP to the
loopback fakes; subrequests counted at the ports, events at the fake Meta, not by the pass's own meter. The CPU
figures are the model's (``relay.core.cpu_model``), checked against what the fakes saw: nothing here is timed.
"""

from __future__ import annotations

import base64
import gc
from typing import Any

import pytest

from conftest import SECRET, shop_env
from relay.core.bridge import KEEP
from relay.core.cpu_model import MODEL, TARGET, CpuModel
from relay.core.errors import ConfigError
from relay.jobs import cron, cron_pass, limits, schedule
from relay_tools.fakes import FakeLightspeed, WindowedLightspeed
from test_backfill import LINES, PAID, UNPAID, Harness, harness, list_requests, listed, paid_with_lines, sent_event_ids

__all__ = ["harness"]      # the fixture, shared with test_backfill

CRON = 120          # wrangler.toml: */2 * * * *
# A model in which a free pass holds a few units of work: the listing's pages (12 orders) and the sends (a few
# events a pass) are small, so the test sees many passes. The shipped constants are checked separately.
SMALL = CpuModel(per_invocation=1.5, per_subrequest=0.5, per_listed_order=0.25, per_event=0.2)
# The interim figures of the glue rewrite (docs/PLANS.md): one-order pages and about one event a pass.
GLUE_CUT = CpuModel(per_invocation=1.5, per_subrequest=0.6, per_listed_order=2.7, per_event=1.3)


def free_env(env: dict[str, str]) -> dict[str, str]:
    for name in ("RELAY_PLAN", "RELAY_SUBREQUEST_BUDGET"):
        env.pop(name, None)
    return env


def test_the_plan_is_free_unless_set_and_each_names_its_limits(env):
    free = limits.load_limits(free_env(env), cpu_limited=True)
    assert (free.plan, free.budget, free.d1_budget, free.cpu_ms) == ("free", 50, 50, 10.0)
    assert 1 <= free.page_size <= 250
    paid = limits.load_limits({**env, "RELAY_PLAN": "paid"}, cpu_limited=True)
    assert (paid.plan, paid.budget, paid.d1_budget, paid.cpu_ms, paid.page_size) == ("paid", 10_000, 1_000,
                                                                                      30_000.0, 250)
    # the override keeps working; above the free plan's 50 it can only mean the paid plan
    assert limits.load_limits({**env, "RELAY_SUBREQUEST_BUDGET": "30"}, cpu_limited=True).plan == "free"
    assert limits.load_limits({**env, "RELAY_SUBREQUEST_BUDGET": "1000"}, cpu_limited=True).plan == "paid"
    assert limits.load_limits({**env, "RELAY_PLAN": "paid", "RELAY_SUBREQUEST_BUDGET": "500"},
                              cpu_limited=True).d1_budget == 500
    with pytest.raises(ConfigError, match="RELAY_PLAN must be free or paid.*change RELAY_PLAN where your deploy"):
        limits.load_limits({**env, "RELAY_PLAN": "business"}, cpu_limited=True)
    with pytest.raises(ConfigError, match="above 50 needs RELAY_PLAN=paid"):
        limits.load_limits({**env, "RELAY_PLAN": "free", "RELAY_SUBREQUEST_BUDGET": "60"}, cpu_limited=True)


def test_cpython_keeps_the_plans_calls_but_not_its_cpu(env):
    """``relay serve`` and ``relay backfill`` (``Runtime.cpu_limited`` False): the plan's calls per pass, but full
    pages, no CPU model, and the daily jobs' most a run, where the Worker's 10 ms fit fewer."""
    worker = limits.load_limits(free_env(env), cpu_limited=True)
    cpython = limits.load_limits(env, cpu_limited=False)
    assert (cpython.plan, cpython.budget, cpython.d1_budget) == (worker.plan, worker.budget, worker.d1_budget)
    assert (cpython.cpu_ms, cpython.page_size) == (None, 250) and worker.page_size < 250
    assert schedule.per_run(cpython, schedule.HEALTH_CALLS, limits.HEALTH_SHOPS) == limits.HEALTH_SHOPS
    assert schedule.per_run(worker, schedule.HEALTH_CALLS, limits.HEALTH_SHOPS) < limits.HEALTH_SHOPS


def test_a_free_page_is_what_one_invocation_can_parse(env):
    small = limits.for_plan(limits.FREE, model=SMALL)
    # 10 ms x TARGET, less the invocation, and the 4 calls of a pass that lists one page (its start, the page, its
    # D1 batch with the shop's turn, its log object): 18 orders of 0.25 ms
    assert small.page_size == int((10 * TARGET - SMALL.cost(subrequests=limits.LISTING_PASS_CALLS)) / 0.25) == 18
    assert limits.for_plan(limits.PAID, model=SMALL).page_size == 250
    # the shipped model, fitted to bench_worker_cpu: 2 orders (1.6 + 4 x 1.3 + 2 x 0.6 = 8.0 ms, the target)
    assert limits.for_plan(limits.FREE).page_size == 2


def test_the_daily_checks_take_what_the_free_plans_cpu_fits_and_none_when_nothing_does():
    hopeless = CpuModel(per_invocation=8.0, per_subrequest=1.0, per_listed_order=0.2, per_event=0.2)
    # 10 ms x TARGET less the invocation, the idle pass's start and the job's read leaves 5.5 ms: two checks of 5
    # calls at 0.5 ms
    assert schedule.per_run(limits.for_plan(limits.FREE, model=SMALL), schedule.HEALTH_CALLS, 6) == 2
    # the shipped model: no token check (5 calls), one Dataset Quality pixel (2 calls) after an idle pass
    assert schedule.per_run(limits.for_plan(limits.FREE), schedule.HEALTH_CALLS, 6) == 0
    assert schedule.per_run(limits.for_plan(limits.FREE), schedule.QUALITY_CALLS, 6) == 1
    assert schedule.per_run(limits.for_plan(limits.FREE, model=hopeless), schedule.HEALTH_CALLS, 6) == 0
    assert schedule.per_run(limits.for_plan(limits.PAID, model=hopeless), schedule.HEALTH_CALLS, 6) == 6


@pytest.mark.parametrize("model", [SMALL, GLUE_CUT, MODEL], ids=["small", "glue-cut", "shipped"])
def test_a_free_pass_stays_inside_its_cpu_model_and_budget_and_drains_the_backlog_over_passes(harness, env, meta,
                                                                                          lightspeed, clock, model):
    h, now = harness, clock.now
    free_env(env)
    orders = [listed(UNPAID if i % 9 == 4 else PAID, 800_000 + i, now - 20 * 3600 + i * 600) for i in range(60)]
    accounts = [lightspeed.orders]
    for i, name in enumerate(("ATELIER", "KISS")):       # two more shops, listing at the same time
        env.update(shop_env(meta, lightspeed, name))
        env[f"{name}_LIGHTSPEED_API_KEY"], env[f"{name}_META_PIXEL_ID"] = f"{name}-key", f"11122233344455{i}"
        accounts.append(lightspeed.add_account(f"{name}-key", SECRET))
    for n, order in enumerate(orders):
        accounts[n % 3].append(order)
        lightspeed.products[order["id"]] = LINES
    paid = {f"purchase_{o['number']}" for o in orders if o["paymentStatus"] == "paid"}
    plan = limits.for_plan(limits.FREE, model=model)
    passes: list[dict[str, Any]] = []

    async def scenario() -> None:
        for _ in range(400):
            pages, events, shops = len(list_requests(lightspeed)), len(meta.events()), len(shop_requests(lightspeed))
            report = await h.one_pass(limits=plan)
            listed_now = sum(r.listed for r in report.shops.values())
            sent_now = len(meta.events()) - events
            passes.append({"calls": h.spent[-1], "pages": len(list_requests(lightspeed)) - pages,
                           "listed": listed_now, "sent": sent_now, "logged": report.logged,
                           "currency": len(shop_requests(lightspeed)) - shops})
            if set(sent_event_ids(meta)) == paid and not any(h.progress(n)["run_page"] for n in ("vik", "atelier",
                                                                                                  "kiss")):
                return
            clock.advance(CRON)

    h.run(scenario)

    sent = sent_event_ids(meta)
    assert set(sent) == paid and set(sent.values()) == {1}, "every paid order sent, none twice"
    assert len(passes) > 10, "the free plan's CPU spreads the drain over many passes"
    assert {p["limit"] for p in list_requests(lightspeed)} == {str(plan.page_size)}, "pages one pass can parse"
    assert plan.page_size == {SMALL: 18, GLUE_CUT: 1, MODEL: 2}[model]
    for n, p in enumerate(passes):
        modeled = model.cost(subrequests=p["calls"], orders=p["listed"], events=p["sent"])
        assert p["calls"] <= 50 and modeled <= 10.0, (n, p, modeled)
        # a pass with no room for one event besides a day-old currency fetches the currency alone (once a shop a day)
        # or copies the lines the sending passes staged, once one waited log_spool.COPY_AGE (relay.jobs.spool_copy)
        assert p["pages"] or p["sent"] or p["currency"] or p["logged"], f"pass {n} made no progress: {p}"
    assert sum(p["currency"] for p in passes) <= 3, "the currency is fetched once a shop"
    assert max(p["sent"] for p in passes) < 10, "a free pass sends a few events, not a batch of 40"
    first_send = next(n for n, p in enumerate(passes) if p["sent"])
    last_page = max(n for n, p in enumerate(passes) if p["pages"])
    assert first_send < last_page, "listed orders go out while the listing goes on: a long one cannot starve them"


def test_a_pass_leaves_no_cycle_for_pythons_collector(harness, env, meta, lightspeed, clock):
    """In the Worker a run of Python's cyclic GC costs ~1.2 ms per ~1,850 objects it frees (Pyodide): a pass's objects
    must go when it ends, by reference counting, or every few dozen passes one pays for theirs."""
    h, now = harness, clock.now
    free_env(env)
    for i in range(6):
        order = listed(PAID, 810_000 + i, now - 3600 + i * 60)
        lightspeed.orders.append(order)
        lightspeed.products[order["id"]] = LINES
    plan = limits.for_plan(limits.FREE, model=SMALL)

    async def passes() -> list[Any]:
        return [await h.one_pass(limits=plan) for _ in range(4)]

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)          # what a collection would free is kept in gc.garbage, to be looked at
    try:
        reports = h.run(passes)
        gc.collect()
        left = sorted({type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("relay.")})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert sum(r.turns for r in reports) and meta.events(), "the passes listed and sent"
    assert left == [], f"a pass left these in reference cycles: {left}"


def test_the_workers_upkeep_runs_on_an_isolates_first_pass_and_then_every_ten_minutes(harness, env, clock):
    """The retention deletes and the forgetting ride in a pass's first D1 call; in the Worker (an env with a memo)
    they run on an isolate's first pass and then at most every ``UPKEEP_EVERY`` seconds, four statements fewer in the
    other passes. Elsewhere (no memo: relay serve, relay backfill) every pass runs them, as before."""
    h = harness
    free_env(env)

    def old_post(number: str) -> None:          # a thank-you post past its 8 days
        h.sqlite.conn.execute("INSERT INTO bridge (shop, order_number, received_at, consent) VALUES "
                              "('vik', ?, ?, 'granted')", (number, clock.now - KEEP - 60))
        h.sqlite.conn.commit()

    def kept_posts() -> list[str]:
        return [r[0] for r in h.sqlite.conn.execute("SELECT order_number FROM bridge ORDER BY 1")]

    async def one() -> None:
        await h.one_pass()
        clock.advance(CRON)

    h.env = FixedEnv(**env)                      # an isolate: its first pass runs the upkeep
    old_post("A1")
    h.run(one)
    assert kept_posts() == []
    old_post("A2")
    for _ in range(cron_pass.UPKEEP_EVERY // CRON - 1):     # then not again within UPKEEP_EVERY
        h.run(one)
        assert kept_posts() == ["A2"]
    h.run(one)
    assert kept_posts() == [], "the upkeep came back within UPKEEP_EVERY"
    old_post("A3")
    h.env = FixedEnv(**env)                      # a new isolate: at once
    h.run(one)
    assert kept_posts() == []
    h.env = env                                  # no memo: every pass
    for n in range(2):
        old_post(f"B{n}")
        h.run(one)
        assert kept_posts() == []


def shop_requests(lightspeed: FakeLightspeed) -> list[Any]:
    return [r for r in lightspeed.requests if r.path.endswith("/shop.json")]


def test_a_pass_with_no_room_at_the_target_still_does_one_unit_inside_the_limit(harness, env, meta, lightspeed,
                                                                                   clock):
    """A model so tight that nothing fits its target share: each pass still sends one event (inside 10 ms)."""
    h, now = harness, clock.now
    free_env(env)
    # (3.5: a free pass's send stages its log lines in its finish, no R2 put, and at 3.0 a second event fit the target)
    tight = CpuModel(per_invocation=3.5, per_subrequest=0.5, per_listed_order=0.5, per_event=0.5)
    orders = [listed(PAID, 810_000 + i, now - 3600 + i * 60) for i in range(4)]
    lightspeed.orders.extend(orders)
    for order in orders:
        lightspeed.products[order["id"]] = LINES
    plan = limits.for_plan(limits.FREE, model=tight)

    async def scenario() -> list[tuple[int, int, int]]:
        seen = []
        while len(meta.events()) < 4 and len(seen) < 40:
            events = len(meta.events())
            report = await h.one_pass(limits=plan)
            seen.append((h.spent[-1], report.shops["vik"].listed, len(meta.events()) - events))
            clock.advance(CRON)
        return seen

    seen = h.run(scenario)
    assert set(sent_event_ids(meta).values()) == {1} and len(sent_event_ids(meta)) == 4
    for calls, listed_now, sent_now in seen:
        assert listed_now or sent_now == 1, seen
        assert tight.cost(subrequests=calls, orders=listed_now, events=sent_now) <= 10.0, seen


def test_when_the_free_plan_holds_no_unit_the_pass_starts_none_and_says_to_go_paid(harness, env, meta, lightspeed,
                                                                                    clock, caplog):
    """A model whose fixed cost leaves no unit inside 10 ms: the pass lists and claims nothing (it would be
    killed), and names RELAY_PLAN=paid."""
    h, now = harness, clock.now
    free_env(env)
    hopeless = CpuModel(per_invocation=8.0, per_subrequest=1.0, per_listed_order=0.2, per_event=0.2)
    lightspeed.orders.append(listed(PAID, 830_000, now - 3600))
    report = h.run(lambda: h.one_pass(limits=limits.for_plan(limits.FREE, model=hopeless)))
    assert report.starved and report.turns == 0 and list_requests(lightspeed) == [] and meta.event_posts == []
    assert "set RELAY_PLAN=paid" in caplog.text


def test_on_the_free_plan_the_daily_jobs_run_only_after_a_pass_that_did_nothing(harness, env, meta, lightspeed,
                                                                                  clock):
    """The Worker's scheduled() on the free plan: the pass goes first, with the shipped model; a pass that listed,
    sent or fetched the currency has no CPU left for the jobs' reads, an idle one runs them with what it left.
    Every pass stays inside the model and 50 subrequests, D1, fetch and R2 counted at the ports."""
    h, now = harness, clock.now
    free_env(env)
    paid_with_lines(lightspeed, 850_000, 3, now)
    jobs_ran: list[int] = []

    async def daily(rt: Any) -> None:
        await rt.db.run("SELECT 1")          # a job's read: counted against the calls the pass left
        jobs_ran.append(len(runs))

    runs: list[tuple[int, int, int, int]] = []

    async def scenario() -> None:
        for _ in range(20):
            events, before = len(meta.events()), h._count()
            report = await cron.scheduled(h.runtime(), before=(daily,), sleep=h.sleep)
            # a pass that copied the lines the sending passes staged did something too (relay.jobs.spool_copy)
            runs.append((report.turns + report.logged, h._count() - before, len(meta.events()) - events,
                         sum(r.listed for r in report.shops.values())))
            clock.advance(CRON)
            if len(sent_event_ids(meta)) == 3 and not report.turns and not report.logged:
                return

    h.run(scenario)
    assert set(sent_event_ids(meta).values()) == {1} and len(sent_event_ids(meta)) == 3
    busy = [n for n, (turns, *_) in enumerate(runs) if turns]
    assert len(busy) >= 3 and not set(jobs_ran) & set(busy), "no job on a pass that did something"
    assert jobs_ran and set(jobs_ran) == set(range(len(runs))) - set(busy), "the jobs on every idle pass"
    for _, calls, sent_now, listed_now in runs:
        assert calls <= 50 and sent_now <= 1
        assert MODEL.cost(subrequests=calls, events=sent_now, orders=listed_now) <= 10.0, runs


def test_relay_backfill_on_the_free_plan_is_not_held_to_the_workers_cpu(harness, env, meta, lightspeed, clock):
    """`relay backfill` runs in CPython: the plan's calls per pass, but full pages and no CPU model."""
    h, now = harness, clock.now
    free_env(env)
    paid_with_lines(lightspeed, 840_000, 30, now, step=10)
    totals = h.run(h.until_done)
    assert totals.shops["vik"].sent == 30 and set(sent_event_ids(meta).values()) == {1}
    assert {p["limit"] for p in list_requests(lightspeed)} == {"250"} and max(h.spent) <= 50


class KilledByTheRuntime(RuntimeError):
    """Cloudflare ending an invocation mid-way (error 1102): nothing after it runs."""


class KillAt:
    """The HTTP port, killing the invocation at the ``nth`` request to ``path``."""

    def __init__(self, inner: Any, path: str, nth: int) -> None:
        self.inner, self.path, self.nth, self.seen = inner, path, nth, 0

    async def send(self, request: Any) -> Any:
        if self.path in request.url:
            self.seen += 1
            if self.seen == self.nth:
                raise KilledByTheRuntime
        return await self.inner.send(request)


def test_a_pass_killed_mid_way_keeps_its_pages_and_its_rounds(harness, env, meta, lightspeed, clock):
    """Killed at its 4th page, then at a line fetch of a later round: what was stored before each kill
    stays stored (the listing position, the rounds' sends and each shop's turn), and the next passes go on
    from there, every order sent once."""
    h, now = harness, clock.now
    h.env.update(RELAY_PLAN="paid", RELAY_SUBREQUEST_BUDGET="1000")
    orders = [listed(PAID, 820_000 + i, now - 30 * 3600 + i * 60) for i in range(1_100)]
    lightspeed.orders.extend(orders)
    for order in orders:
        lightspeed.products[order["id"]] = LINES

    async def killed(path: str, nth: int) -> None:
        real = h.http
        h.http = KillAt(real, path, nth)
        try:
            with pytest.raises(KilledByTheRuntime):
                await h.one_pass()
        finally:
            h.http = real

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        await killed("/orders.json", 4)
        after_listing = h.progress()
        await killed("/products.json", 150)
        after_round = h.progress()
        clock.advance(CRON)
        await h.until_done()
        return after_listing, after_round

    after_listing, after_round = h.run(scenario)
    assert after_listing["run_page"] == 4, "three pages stored, the fourth next"
    assert after_round["meta_requests"] >= 1 and after_round["served_at"] is not None, \
        "the round that finished before the kill stored the shop's turn with it"
    pages = [p["page"] for p in list_requests(lightspeed)]
    assert pages[:5] == ["1", "2", "3", "4", "5"], "the killed pass's fourth page is the next pass's first"
    sent = sent_event_ids(meta)
    assert len(sent) == 1_100 and set(sent.values()) == {1}


def test_a_paid_pass_drains_a_big_backlog_within_an_hour_of_cron_runs(tmp_path, log_root, meta, clock):
    """3 shops x 600 missed orders (bench/bench_backfill.py runs 10 x 2,000): each order sent once, in at most
    30 cron runs (an hour at */2), each inside the paid plan's calls, D1 queries and modeled 30 s of CPU."""
    shops, per_shop = 3, 600
    lightspeed = WindowedLightspeed(clock).start()
    env: dict[str, str] = {"RELAY_PLAN": "paid"}
    expected = set()
    try:
        for i in range(shops):
            prefix = f"SHOP{i}"
            env.update(shop_env(meta, lightspeed, prefix))
            env[f"{prefix}_LIGHTSPEED_API_KEY"], env[f"{prefix}_META_PIXEL_ID"] = f"key{i}", f"90000000000000{i}"
            account = lightspeed.add_account(f"key{i}", SECRET)
            for n in range(per_shop):
                order = listed(PAID, 900_000 * (i + 1) + n, clock.now - 5 * 86400 + n * 600)
                account.append(order)
                lightspeed.products[order["id"]] = LINES
                expected.add(f"purchase_{order['number']}")
        h = Harness(env, tmp_path, log_root, clock, [meta, lightspeed])
        auths = {"Basic " + base64.b64encode(f"key{i}:{SECRET}".encode()).decode() for i in range(shops)}
        reports = []

        async def scenario() -> None:
            for _ in range(30):
                d1 = h.db.calls
                report = await h.one_pass()
                reports.append((report, h.spent[-1], h.db.calls - d1))
                if set(sent_event_ids(meta)) == expected:
                    return
                clock.advance(CRON)

        try:
            h.run(scenario)
        finally:
            h.close()
    finally:
        lightspeed.stop()

    sent = sent_event_ids(meta)
    assert set(sent) == expected and set(sent.values()) == {1}, "every order sent once"
    assert len(reports) <= 30, "drained within an hour of cron runs"
    assert len(reports) > 1, "Lightspeed's window, not the plan, spreads the drain"
    assert lightspeed.over == 0, "never past Lightspeed's window"
    assert {r.headers["authorization"] for r in lightspeed.requests} == auths
    modeled = []
    for report, calls, d1 in reports:
        assert calls <= 10_000 and d1 <= 1_000
        listed_now = sum(r.listed for r in report.shops.values())
        sent_now = sum(r.sent for r in report.shops.values())
        modeled.append(MODEL.cost(subrequests=calls, orders=listed_now, events=sent_now))
    # A paid pass is held to the paid plan's limits, not the free one's: these never come near 10,000 calls or 30 s,
    # so what shows it is that the passes go past the free plan's, in full pages (the CPU model cuts none)
    assert {p["limit"] for p in list_requests(lightspeed)} == {"250"}
    assert max(calls for _, calls, _ in reports) > limits.FREE.subrequests
    assert max(modeled) > limits.FREE.cpu_ms, modeled


class FixedEnv(dict[str, str]):
    """An env whose values cannot change, as the Worker's (``src/entry.py``'s ``Env``): it offers a ``memo``."""

    def __init__(self, **values: str) -> None:
        super().__init__(values)
        self.memo: dict[Any, Any] = {}


def test_a_workers_limits_are_worked_out_once_and_a_wrong_plan_is_refused_every_time() -> None:
    env = FixedEnv(RELAY_PLAN="free")
    held = limits.load_limits(env, True)
    assert limits.load_limits(env, True) is held and held.cpu_ms == 10
    assert limits.load_limits(env, False).cpu_ms is None     # CPython's own limits, kept apart
    assert limits.load_limits(FixedEnv(RELAY_PLAN="paid"), True).plan == "paid"
    wrong = FixedEnv(RELAY_PLAN="pro")
    for _ in range(2):                  # an error is raised each time, never kept as an answer
        with pytest.raises(ConfigError, match="RELAY_PLAN must be free or paid"):
            limits.load_limits(wrong, True)
    assert wrong.memo == {}
