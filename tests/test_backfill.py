"""The cron pass: listing every shop's orders from Lightspeed and sending what no webhook delivered.

Real SQLite, real HTTP to the loopback fakes, the Clock fixture for time: backoff never sleeps.
Each pass is checked against the subrequest budget by counting independently of ``relay.outbox.budget``:
requests the fakes received, calls the database and the log folder received.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, PIXEL, SECRET, SHOP_ID, TOKEN, Clock, shop_env
from relay.core.config import load_shop
from relay.core.errors import ConfigError, LedgerError
from relay.core.order import parse_order
from relay.core.ports import QueryResult
from relay.core.signature import sign
from relay.jobs import cron, delivery, intake, limits, pass_state, runtime
from relay.outbox.cron_ledger import CronLedger
from relay.outbox.rows import Progress
from relay_tools import backfill_cli
from relay_tools.edges import FolderBlobs, HttpxClient
from relay_tools.fakes import FakeLightspeed, FakeMeta, Reply, rate_limited
from relay_tools.sqlite import SqliteDatabase

PAID, PAID_BE, UNPAID, CANCELLED = json.loads((FIXTURES / "lightspeed" / "orders-list-page.json").read_text())["orders"]
LINES = json.loads((FIXTURES / "lightspeed" / "order-products.json").read_text())["orderProducts"][:1]
DAY = 86400


def stamp(unix: float, offset: int = 3600) -> str:
    return datetime.fromtimestamp(unix, timezone(timedelta(seconds=offset))).isoformat()


def listed(template: dict[str, Any], order_id: int, created: float, updated: float | None = None,
           offset: int = 3600, **changes: Any) -> dict[str, Any]:
    """A listed order built from a fixture template, with its own id, number and times."""
    order = copy.deepcopy(template)
    order.update(id=order_id, number=f"ORD{order_id}", createdAt=stamp(created, offset),
                 updatedAt=stamp(updated if updated is not None else created + 60, offset))
    order.update(changes)
    return order


def paid_with_lines(lightspeed: Any, first_id: int, count: int, now: float, step: int = 60) -> list[dict[str, Any]]:
    """``count`` paid orders placed an hour ago, ``step`` seconds apart, listed without their lines (as Lightspeed
    lists them) and with their lines at ``products.json``."""
    orders = [listed(PAID, first_id + i, now - 3600 + i * step) for i in range(count)]
    lightspeed.orders.extend(orders)
    for order in orders:
        lightspeed.products[order["id"]] = LINES
    return orders


def event_id(order: dict[str, Any]) -> str:
    return f"purchase_{order['number']}"


class Counted:
    """The database and the log folder, counting every call (what the Worker would spend subrequests on)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        self.calls += 1
        return await self.inner.run(sql, params)

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        self.calls += 1
        return await self.inner.batch(statements)

    async def put(self, key: str, data: bytes, content_type: str = "application/x-ndjson") -> None:
        self.calls += 1
        await self.inner.put(key, data, content_type)


class Harness:
    """A Worker's edges on CPython: SQLite for D1, a folder for R2, httpx for fetch, a settable clock."""

    def __init__(self, env: dict[str, str], tmp_path: Path, log_root: Path, clock: Clock,
                 fakes: Sequence[FakeMeta | FakeLightspeed]) -> None:
        self.env = env
        self.sqlite = SqliteDatabase(tmp_path / "relay.db")
        self.sqlite.migrate()
        self.db = Counted(self.sqlite)
        self.blobs = Counted(FolderBlobs(log_root / tmp_path.name))
        self.clock = clock
        self.fakes = fakes
        self.sleeps: list[float] = []
        self.http: HttpxClient | None = None
        self.spent: list[int] = []          # subrequests of each pass, counted here
        self.on_sleep: Callable[[float], None] | None = None

    def runtime(self, cpu_limited: bool = True) -> runtime.Runtime:
        """The Worker's (its plan limits the CPU), or ``cpu_limited=False`` CPython's (``relay backfill``)."""
        assert self.http is not None
        return runtime.Runtime(env=self.env, db=self.db, http=self.http, blobs=self.blobs, clock=self.clock,
                               random=lambda: 0.5, cpu_limited=cpu_limited)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)

    def _count(self) -> int:
        return self.db.calls + self.blobs.calls + sum(len(f.requests) for f in self.fakes)

    async def one_pass(self, **options: Any) -> pass_state.PassReport:
        before = self._count()
        report = await cron.run_pass(self.runtime(), sleep=self.sleep, **options)
        self.spent.append(self._count() - before)
        return report

    async def until_done(self, **options: Any) -> backfill_cli.Totals:
        counts = [self._count()]

        def on_pass(report: pass_state.PassReport, totals: backfill_cli.Totals) -> None:
            counts.append(self._count())

        totals = await backfill_cli.run_until_done(lambda: self.runtime(cpu_limited=False), sleep=self.sleep,
                                                   on_pass=on_pass, **options)
        self.spent += [b - a for a, b in zip(counts, counts[1:], strict=False)]
        return totals

    def run(self, scenario: Callable[[], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            self.http = HttpxClient()
            try:
                return await scenario()
            finally:
                await self.http.aclose()
        return asyncio.run(main())

    def rows(self) -> dict[int, dict[str, Any]]:
        return {r["order_id"]: dict(r) for r in self.sqlite.conn.execute("SELECT * FROM outbox")}

    def progress(self, shop: str = "vik") -> dict[str, Any]:
        row = self.sqlite.conn.execute("SELECT * FROM backfill WHERE shop = ?", (shop,)).fetchone()
        return dict(row) if row else {}

    def close(self) -> None:
        self.sqlite.close()


@pytest.fixture
def harness(env, tmp_path, log_root, clock, meta, lightspeed):
    h = Harness(env, tmp_path, log_root, clock, [meta, lightspeed])
    yield h
    h.close()


def webhook(h: Harness, order: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    """Lightspeed's webhook for ``order``, through the real receive-then-send path."""
    body = json.dumps({"order": order}, separators=(",", ":")).encode()

    async def deliver() -> None:
        rt = h.runtime()
        result = await intake.receive_webhook(rt, "vik", {"x-signature": sign(body, SECRET), "x-shop-id": SHOP_ID},
                                               body)
        await delivery.send_due(rt, result.shop, order_id=result.order_id)
    return deliver


def sent_event_ids(meta: FakeMeta) -> Counter[str]:
    return Counter(e["event_id"] for e in meta.events())


def list_requests(lightspeed: FakeLightspeed) -> list[dict[str, str]]:
    return [{k: v[-1] for k, v in r.query.items()} for r in lightspeed.requests if r.path == "/nl/orders.json"]


def test_600_orders_over_3_pages_every_paid_unsent_order_is_sent_exactly_once(harness, meta, lightspeed, clock):
    h, now = harness, clock.now
    orders = []
    for i in range(600):          # one every ten minutes over the last 4 days and 4 hours
        created = now - 100 * 3600 + i * 600
        template = UNPAID if i % 10 == 3 else CANCELLED if i % 10 == 7 else (PAID, PAID_BE)[i % 2]
        orders.append(listed(template, 500_000 + i, created))
    late_payer = listed(UNPAID, 499_001, now - 2 * DAY)                   # pays three days after ordering
    too_old = listed(PAID, 499_002, now - 7 * DAY - 60, updated=now - 3600)   # paid, 7 days and 1 minute old
    orders += [late_payer, too_old]
    lightspeed.orders.extend(orders)
    for order in orders:
        lightspeed.products[order["id"]] = LINES
    by_webhook = [o for o in orders[:600] if o["paymentStatus"] == "paid" and o["id"] % 7 == 0]
    paid = [o for o in orders[:600] if o["paymentStatus"] == "paid"]
    assert len(by_webhook) > 30 and len(paid) > 400

    async def scenario() -> tuple[backfill_cli.Totals, backfill_cli.Totals]:
        for order in by_webhook:
            await webhook(h, order)()
        assert sent_event_ids(meta) == Counter(event_id(o) for o in by_webhook)
        first = await h.until_done()
        clock.advance(600)                                              # the next cron run
        second = await h.until_done()
        return first, second

    first, second = h.run(scenario)

    sent = sent_event_ids(meta)
    assert set(sent) == {event_id(o) for o in paid}, "every paid order reached Meta"
    assert set(sent.values()) == {1}, "and none twice"
    assert first.shops["vik"].sent == len(paid) - len(by_webhook)
    assert second.shops["vik"].sent == 0 and second.shops["vik"].requests == 0
    assert event_id(too_old) not in sent and event_id(late_payer) not in sent

    rows = h.rows()
    assert Counter(r["state"] for r in rows.values()) == {
        "sent": len(paid), "waiting": 61, "skipped": 60, "expired": 1}
    assert rows[too_old["id"]]["state"] == "expired" and "7-day" in rows[too_old["id"]]["last_error"]
    assert all(json.loads(rows[o["id"]]["payload"])["custom_data"]["contents"] for o in paid[:5])

    # the first listing: 7 days back (and 12 h more while the shop's time zone is unknown), three pages of
    # 250 under one filter; the next cron run re-reads from two hours before the first one started
    pages = list_requests(lightspeed)
    assert [(p["updated_at_min"], p["page"], p["limit"]) for p in pages] == [
        ("2025-11-11 08:52:09", "1", "250"), ("2025-11-11 08:52:09", "2", "250"),
        ("2025-11-11 08:52:09", "3", "250"), ("2025-11-18 18:52:09", "1", "250")]
    assert first.shops["vik"].listed == 602 and len(first.shops["vik"].seen) == 602
    assert second.shops["vik"].listed == 13 and set(second.shops["vik"].recorded) == {"unchanged"}

    assert first.passes > 1, "the free plan's budget cannot send 400 orders in one invocation"
    assert max(h.spent) <= limits.DEFAULT_BUDGET, h.spent

    # the late payer: paid three days after it was placed, seen by the next cron run, sent once
    late_payer.update(paymentStatus="paid", status="processing_awaiting_shipment",
                      updatedAt=stamp(now + DAY))
    clock.now = now + DAY + 600
    third = h.run(h.until_done)
    assert third.shops["vik"].sent == 1
    assert sent_event_ids(meta)[event_id(late_payer)] == 1
    assert h.rows()[late_payer["id"]]["state"] == "sent"
    assert [e["event_time"] for e in meta.events() if e["event_id"] == event_id(late_payer)] == [int(now - 2 * DAY)]


@pytest.mark.parametrize(("reply", "waited"), [
    (rate_limited(retry_after=2), 2),             # Retry-After is honoured
    (rate_limited(reset=3), 3),                   # without it, X-RateLimit-Reset of the spent window
])
def test_a_429_mid_listing_is_waited_out_and_the_listing_completes(harness, meta, lightspeed, clock, reply, waited):
    h, now = harness, clock.now
    lightspeed.orders.extend(listed(PAID, 600_000 + i, now - DAY + i * 60) for i in range(300))
    for order in lightspeed.orders:
        lightspeed.products[order["id"]] = LINES
    lightspeed.orders_script[2] = [reply]

    totals = h.run(h.until_done)

    assert h.sleeps[0] == waited
    assert [p["page"] for p in list_requests(lightspeed)] == ["1", "2", "2"]
    assert len(h.rows()) == 300 and totals.shops["vik"].listing == "complete"
    assert set(sent_event_ids(meta).values()) == {1} and len(sent_event_ids(meta)) == 300


def test_lightspeeds_rate_limit_headers_keep_every_window_below_its_limit(harness, meta, lightspeed, clock):
    """With a budget big enough for everything (a paid plan), Lightspeed's own limit is what stops the
    pass: it slows down before the window is spent, waits for the reset, and never gets a 429."""
    h, now = harness, clock.now
    h.env["RELAY_SUBREQUEST_BUDGET"] = "1000"
    lightspeed.window = 60
    lightspeed.orders.extend(listed(PAID, 605_000 + i, now - DAY + i * 60) for i in range(130))
    for order in lightspeed.orders:
        lightspeed.products[order["id"]] = LINES
    windows = []

    def window_resets(seconds: float) -> None:
        if seconds >= lightspeed.window_reset:
            windows.append(lightspeed.window_used)
            lightspeed.window_used = 0

    h.on_sleep = window_resets
    totals = h.run(h.until_done)
    windows.append(lightspeed.window_used)

    assert len(windows) >= 3 and max(windows) <= 60, windows
    assert all(w >= 60 - limits.LOW_WATER - 1 for w in windows[:-1]), "each window is used, not wasted"
    assert totals.shops["vik"].sent == 130 and set(sent_event_ids(meta).values()) == {1}


def test_a_long_retry_after_pauses_the_shop_and_the_next_pass_resumes(harness, meta, lightspeed, clock):
    h, now = harness, clock.now
    lightspeed.orders.extend(listed(PAID, 610_000 + i, now - DAY + i * 60) for i in range(260))
    for order in lightspeed.orders:
        lightspeed.products[order["id"]] = LINES
    lightspeed.orders_script[2] = [rate_limited(retry_after=60)]

    async def scenario() -> None:
        report = await h.one_pass()
        assert report.shops["vik"].listing == "paused" and "429" in (report.shops["vik"].error or "")
        assert 55 <= (report.wait or 0) <= 61
        calls = len(lightspeed.requests)
        while (await h.one_pass()).more:         # the budget's leftovers: Meta sends only, no Lightspeed call
            pass
        assert len(lightspeed.requests) == calls, "nothing asked of Lightspeed before its Retry-After"
        clock.advance(60)
        await h.until_done()

    h.run(scenario)
    assert [p["page"] for p in list_requests(lightspeed)] == ["1", "2", "2"]
    assert len(h.rows()) == 260
    assert set(sent_event_ids(meta).values()) == {1} and len(sent_event_ids(meta)) == 260


def test_budget_spent_mid_shop_resumes_next_invocation_without_skipping_or_repeating(harness, meta, lightspeed,
                                                                                     clock):
    h, now = harness, clock.now
    h.env["RELAY_SUBREQUEST_BUDGET"] = "20"
    # 10 pages, more than one invocation of 20 subrequests can list; one order in 40 is paid
    lightspeed.orders.extend(listed(PAID if i % 40 == 0 else UNPAID, 620_000 + i, now - 3 * DAY + i * 60)
                             for i in range(2_320))
    paid = [o for o in lightspeed.orders if o["paymentStatus"] == "paid"]
    for order in paid:
        lightspeed.products[order["id"]] = LINES

    async def scenario() -> None:
        first = await h.one_pass()
        pages = first.shops["vik"].pages
        assert first.more and first.shops["vik"].listing == "in progress" and 1 <= pages < 10
        assert h.progress()["run_page"] == pages + 1, "the next page is stored with the page before it"
        assert len(h.rows()) == 250 * pages
        await h.until_done()

    h.run(scenario)
    assert [p["page"] for p in list_requests(lightspeed)] == [str(n) for n in range(1, 11)]
    assert len({p["updated_at_min"] for p in list_requests(lightspeed)}) == 1
    assert len(h.rows()) == 2_320
    assert set(sent_event_ids(meta).values()) == {1} and len(sent_event_ids(meta)) == len(paid)
    assert max(h.spent) <= 20, h.spent
    assert h.progress()["run_page"] is None and h.progress()["cursor"] == int(now)


def test_a_big_shop_does_not_starve_a_small_one(harness, env, meta, lightspeed, clock):
    h, now = harness, clock.now
    env.update(shop_env(meta, lightspeed, "ATELIER"))
    env["ATELIER_LIGHTSPEED_API_KEY"], env["ATELIER_META_PIXEL_ID"] = "atelier-key", "111222333444555"
    small = lightspeed.add_account("atelier-key", SECRET)
    small.extend(listed(PAID, 700_000 + i, now - DAY + i) for i in range(3))
    lightspeed.orders.extend(listed(PAID, 710_000 + i, now - 2 * DAY + i * 60) for i in range(600))
    for order in [*small, *lightspeed.orders]:
        lightspeed.products[order["id"]] = LINES

    report = h.run(h.one_pass)

    assert report.shops["atelier"].sent == 3, "the small shop is done in the first invocation"
    assert report.shops["vik"].sent > 0
    posts = {r.path.split("/")[2] for r in meta.event_posts}
    assert posts == {PIXEL, "111222333444555"}


def test_shops_the_budget_did_not_reach_go_first_next_time(harness, env, meta, lightspeed, clock):
    h, now = harness, clock.now
    h.env["RELAY_SUBREQUEST_BUDGET"] = "20"
    names = [f"shop{i}" for i in range(6)]
    for i, name in enumerate(names):
        prefix = name.upper()
        env.update(shop_env(meta, lightspeed, prefix))
        env[f"{prefix}_LIGHTSPEED_API_KEY"], env[f"{prefix}_META_PIXEL_ID"] = f"{name}-key", f"90000000000000{i}"
        orders = lightspeed.add_account(f"{name}-key", SECRET)
        orders.append(listed(PAID, 720_000 + i, now - DAY))
        lightspeed.products[720_000 + i] = LINES
    for key in [k for k in env if k.startswith("VIK_")]:
        del env[key]
    auth = {"Basic " + base64.b64encode(f"{n}-key:{SECRET}".encode()).decode(): n for n in names}

    def callers(start: int) -> list[str]:
        """The shops whose calls reached Lightspeed, in order of their first call."""
        return list(dict.fromkeys(auth[r.headers["authorization"]] for r in lightspeed.requests[start:]))

    async def scenario() -> tuple[list[str], list[str]]:
        first = await h.one_pass()
        assert first.more, "the budget did not reach every shop"
        served = callers(0)
        mark = len(lightspeed.requests)
        await h.one_pass()
        return served, callers(mark)

    served, then = h.run(scenario)
    assert 0 < len(served) < len(names)
    left_out = [n for n in names if n not in served]
    assert then[:len(left_out)] == left_out, "the shops left out go first in the next invocation"
    h.run(h.until_done)
    assert len(sent_event_ids(meta)) == 6 and max(h.spent) <= 20


def test_meta_requests_stay_within_60_a_minute_per_shop(harness, meta, lightspeed, clock):
    h, now = harness, clock.now
    h.env.update(RELAY_BATCH_SIZE="1", RELAY_SUBREQUEST_BUDGET="1000")
    lightspeed.orders.extend(listed(PAID, 630_000 + i, now - DAY + i * 60) for i in range(70))
    for order in lightspeed.orders:
        lightspeed.products[order["id"]] = LINES

    async def scenario() -> None:
        first = await h.one_pass()
        assert first.shops["vik"].requests == 60 and len(meta.event_posts) == 60
        assert 0 < (first.wait or 0) <= 60 and not first.more
        await h.one_pass()
        assert len(meta.event_posts) == 60, "the same minute: no more requests"
        await h.until_done()

    h.run(scenario)
    assert len(meta.event_posts) == 70 and set(sent_event_ids(meta).values()) == {1}


def test_filter_covers_the_window_when_lightspeed_reads_it_in_a_western_shop_time(harness, meta, lightspeed, clock):
    """The filter's time zone is unconfirmed: if Lightspeed reads it as the shop's local time west of
    UTC, a UTC value would skip the hours between; the offset learned from the orders closes that hole."""
    h, now = harness, clock.now
    lightspeed.filter_utc_offset = -5 * 3600
    west = -5 * 3600
    lightspeed.orders.extend(listed(PAID, 640_000 + i, now - DAY + i * 60, offset=west) for i in range(3))
    for order in lightspeed.orders:
        lightspeed.products[order["id"]] = LINES
    h.run(h.until_done)
    assert h.progress()["utc_offset"] == west

    paid_later = listed(UNPAID, 640_100, now - 3 * 3600, offset=west)
    lightspeed.orders.append(paid_later)
    lightspeed.products[640_100] = LINES
    paid_later.update(paymentStatus="paid", status="processing_awaiting_shipment", updatedAt=stamp(now + 1800, west))
    clock.advance(2400)
    h.run(h.until_done)
    assert sent_event_ids(meta)[event_id(paid_later)] == 1


def test_an_order_7_days_and_1_minute_old_is_expired_and_never_sent(harness, meta, lightspeed, clock):
    h, now = harness, clock.now
    old = listed(PAID, 650_000, now - 7 * DAY - 60, updated=now - 600)
    fresh = listed(PAID, 650_001, now - 7 * DAY + 3600)
    lightspeed.orders.extend([old, fresh])
    lightspeed.products.update({650_000: LINES, 650_001: LINES})

    totals = h.run(h.until_done)

    assert h.rows()[650_000]["state"] == "expired"
    assert "7-day" in h.rows()[650_000]["last_error"]
    assert event_id(old) not in sent_event_ids(meta)
    assert sent_event_ids(meta) == {event_id(fresh): 1}
    assert totals.shops["vik"].recorded["expired"] == 1


def test_403_on_the_listing_says_which_permission_and_keeps_the_cursor(harness, meta, lightspeed, clock):
    h, now = harness, clock.now
    lightspeed.orders.append(listed(PAID, 660_000, now - DAY))
    lightspeed.products[660_000] = LINES
    lightspeed.orders_script[1] = [Reply(403, {"error": {"code": 403, "message": "Forbidden"}})]

    report = h.run(h.one_pass)

    assert "give the API key the 'Orders (read)' permission" in (report.shops["vik"].error or "")
    assert h.progress()["cursor"] is None and h.rows() == {}
    assert report.wait == limits.REFUSED_PAUSE
    clock.advance(limits.REFUSED_PAUSE)
    h.run(h.until_done)
    assert sent_event_ids(meta) == {event_id(lightspeed.orders[0]): 1}


def test_lightspeed_down_the_listing_keeps_its_position_and_relay_backfill_stops_waiting(harness, meta, lightspeed,
                                                                                          clock):
    h, now = harness, clock.now
    lightspeed.orders.append(listed(PAID, 680_000, now - DAY))
    lightspeed.products[680_000] = LINES
    down = Reply(503, b"<html><body>Service Unavailable</body></html>", {"Content-Type": "text/html"})
    lightspeed.orders_script[1] = [down] * 5

    totals = h.run(h.until_done)

    assert "answered 503" in (totals.shops["vik"].error or "") and totals.shops["vik"].listing == "paused"
    assert len(list_requests(lightspeed)) == backfill_cli.IDLE_PASSES and h.sleeps == [limits.ERROR_PAUSE + 1] * 2
    assert h.progress()["cursor"] is None and "503" in h.progress()["last_error"] and h.rows() == {}
    lightspeed.orders_script.clear()                       # Lightspeed is back by the next cron run
    clock.advance(600)
    h.run(h.until_done)
    assert sent_event_ids(meta) == {event_id(lightspeed.orders[0]): 1} and h.progress()["last_error"] is None


def test_the_cron_run_shares_one_budget_with_the_jobs_before_it(harness, meta, lightspeed, clock):
    """The Worker's scheduled(): the daily health check spends first, the pass gets what is left, and a
    failing job does not stop orders from being sent."""
    h, now = harness, clock.now
    lightspeed.orders.extend(listed(PAID, 690_000 + i, now - DAY + i * 60) for i in range(100))
    for order in lightspeed.orders:
        lightspeed.products[order["id"]] = LINES

    async def spends_ten(rt: runtime.Runtime) -> None:
        for _ in range(10):
            await rt.db.run("SELECT 1")

    async def broken(rt: runtime.Runtime) -> None:
        raise RuntimeError("a bug in another cron job")

    async def cron_run() -> pass_state.PassReport:
        before = h._count()
        report = await cron.scheduled(h.runtime(), before=(spends_ten, broken), sleep=h.sleep)
        h.spent.append(h._count() - before)
        return report

    report = h.run(cron_run)
    assert report.budget == limits.DEFAULT_BUDGET - 10
    assert report.shops["vik"].pages == 1 and report.shops["vik"].sent > 0
    assert h.spent[0] <= limits.DEFAULT_BUDGET, "health and pass together stay inside one invocation's budget"
    warnings = [json.loads(line) for path in h.blobs.inner.root.glob("logs/relay/**/*.ndjson")
                for line in path.read_text().splitlines()]
    assert any("broken failed (RuntimeError)" in w.get("error", "") for w in warnings)


def test_budget_and_batch_size_settings_are_checked(env):
    env["RELAY_SUBREQUEST_BUDGET"] = "10"
    with pytest.raises(ConfigError, match="RELAY_SUBREQUEST_BUDGET must be a whole number from 20"):
        limits.load_limits(env, cpu_limited=True)
    env.update(RELAY_SUBREQUEST_BUDGET="1000", RELAY_BATCH_SIZE="1001")
    with pytest.raises(ConfigError, match="at most 1,000 events"):
        limits.load_limits(env, cpu_limited=True)
    env["RELAY_BATCH_SIZE"] = "500"
    assert limits.load_limits(env, cpu_limited=True) == limits.for_plan(limits.PAID, budget=1000, batch_size=500)


def test_a_page_and_the_listing_position_are_one_transaction(harness, clock):
    """If one row of a page cannot be written, the position does not move past the page."""
    ledger = CronLedger(harness.sqlite)
    shop = load_shop(harness.env, "vik")
    good = intake.row_for(parse_order(listed(PAID, 670_000, clock.now - DAY)), shop, int(clock.now), "backfill")
    bad = dataclasses.replace(good, order_id=670_001, state="bogus")
    moved = Progress("vik", run_since=1, run_filter="x", run_started=2, run_page=2)
    with pytest.raises(LedgerError):
        asyncio.run(ledger.record_page([good, bad], int(clock.now), moved))
    assert harness.rows() == {} and harness.progress() == {}
    assert asyncio.run(ledger.record_page([good], int(clock.now), moved)) == ["due"]
    assert harness.progress()["run_page"] == 2


def test_every_pass_of_a_multi_shop_drain_stays_inside_50_subrequests_counted_at_the_ports(harness, env, meta,
                                                                                          lightspeed, clock):
    """The bulk paths (one D1 call to start, one to claim and one to finish for several shops, lines for many
    orders and one Meta request per shop) under what can go wrong at once: a stale currency cache, a rejected
    event that makes a batch bisect, a shop whose refused token is replaced, and Lightspeed's window. Every pass
    is counted at the ports (database calls, log writes, requests the fakes received), not by the pass's meter."""
    h, now = harness, clock.now
    names = ["vik", "atelier", "noord"]
    for name in names[1:]:
        prefix = name.upper()
        env.update(shop_env(meta, lightspeed, prefix))
        env[f"{prefix}_LIGHTSPEED_API_KEY"], env[f"{prefix}_META_PIXEL_ID"] = f"{name}-key", f"5550000000000{len(name)}"
    env["NOORD_META_ACCESS_TOKEN"] = "EAAnoord-old-token"
    lists = {"vik": lightspeed.orders, **{n: lightspeed.add_account(f"{n}-key", SECRET) for n in names[1:]}}
    for k, name in enumerate(names):
        lists[name].extend(listed(PAID, 900_000 + 10_000 * k + i, now - 2 * DAY + i * 60) for i in range(120))
    for order in [o for orders in lists.values() for o in orders]:
        lightspeed.products[order["id"]] = LINES
    rejected = event_id(lists["atelier"][37])
    meta.reject_event_ids.add(rejected)
    meta.valid_tokens = {TOKEN, "EAAnoord-new-token"}       # noord's token is refused: the shop is held
    lightspeed.window = 250                                  # one window for all three keys

    events: list[int] = []                                   # events Meta received in each pass

    async def one_pass() -> pass_state.PassReport:
        before = len(meta.events())
        report = await h.one_pass()
        events.append(len(meta.events()) - before)
        return report

    async def scenario() -> list[pass_state.PassReport]:
        reports: list[pass_state.PassReport] = []
        for _ in range(200):                                 # cron runs two minutes apart
            reports.append(await one_pass())
            if len(reports) == 3:
                env["NOORD_META_ACCESS_TOKEN"] = "EAAnoord-new-token"
            if len(reports) > 3 and not (reports[-1].more or reports[-1].turns):
                break
            clock.advance(120)
            if clock.now // 300 != (clock.now - 120) // 300:     # Lightspeed's 5-minute window starts again
                lightspeed.window_used = 0
        return reports

    reports = h.run(scenario)

    assert max(h.spent) <= limits.DEFAULT_BUDGET, h.spent
    assert all(r.used <= limits.DEFAULT_BUDGET for r in reports)
    accepted = [p for p in meta.event_posts if p.json()["access_token"] in meta.valid_tokens
                and rejected not in {e["event_id"] for e in p.json()["data"]}]
    sent = Counter(e["event_id"] for p in accepted for e in p.json()["data"])
    everything = {event_id(o) for orders in lists.values() for o in orders}
    assert set(sent) == everything - {rejected} and set(sent.values()) == {1}, "every order once, none twice"
    assert h.rows()[lists["atelier"][37]["id"]]["state"] == "failed"
    assert any(r.shops["noord"].held for r in reports) and sum(r.shops["noord"].sent for r in reports) == 120
    assert max(events) >= 25, f"a pass at budget 50 sends at least 25 events with their lines: {events}"
    assert lightspeed.window_used <= 250, "and never a 429 from Lightspeed"
    assert all(e["custom_data"]["contents"] for e in meta.events())
