"""A free cron pass that sends stages its own delivery-log lines in its send round's finish (relay.jobs.send_round,
relay.outbox.log_spool): no R2 put of its own, the lines committed in the transaction of the outcomes they report,
and written to R2 by a later pass's copy as the R2 path writes them. Real SQLite, a real log folder, loopback fakes
(one Meta and one Lightspeed a world, so each world's Meta answers alike).
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import SECRET, order_body, shop_env
from relay.core.capi import EXPIRE_MARGIN, WINDOW
from relay.core.config import load_shop
from relay.core.order import parse_order
from relay.jobs import cron, intake, limits, runtime
from relay.outbox.ledger import Ledger
from relay_tools.edges import FolderBlobs, HttpxClient
from relay_tools.fakes import FakeLightspeed, FakeMeta, Recorded, Reply, graph_error
from relay_tools.sqlite import SqliteDatabase
from test_backfill import CANCELLED, LINES, PAID, UNPAID, Counted, listed
from test_log_spool import RefusedBatches, invoke, webhook_request
from test_log_spool import run as run_closing
from worker_webhook import NOW

CRON = 120
SHOPS = ("vik", "atelier", "kiss")


@dataclass
class World:
    sqlite: SqliteDatabase
    db: Counted
    blobs: Counted
    root: Path
    env: dict[str, str]
    meta: FakeMeta
    lightspeed: FakeLightspeed
    clock: list[float] = field(default_factory=lambda: [float(NOW)])
    http: HttpxClient | None = None

    def rt(self, db: Any = None) -> runtime.Runtime:
        self.http = self.http or HttpxClient()
        return runtime.Runtime(env=self.env, db=db or self.db, http=self.http, blobs=self.blobs,
                               clock=lambda: self.clock[0], random=lambda: 0.5, cpu_limited=True)

    def spooled(self) -> int:
        return int(self.sqlite.conn.execute("SELECT COUNT(*) FROM log_spool").fetchone()[0])

    def state(self, order_id: int) -> str:
        return str(self.sqlite.conn.execute("SELECT state FROM outbox WHERE order_id = ?", (order_id,)).fetchone()[0])

    def lines(self, *kinds: str) -> list[tuple[str, str]]:
        """Every line of the log folder of ``kinds``, with its object's key less the random part, in key order;
        the Meta round trip's milliseconds (``ms``, the wall clock's) set to 0."""
        out = []
        for path in sorted(self.root.rglob("*.ndjson")):
            key = path.relative_to(self.root).as_posix().rsplit("-", 1)[0]
            for text in path.read_text().splitlines(keepends=True):
                if json.loads(text).get("kind") in kinds:
                    out.append((key, re.sub(r'"ms": \d+', '"ms": 0', text)))
        return out


@pytest.fixture
def worlds(tmp_path: Path) -> Iterator[Any]:
    made: list[World] = []

    def make(name: str, shops: Sequence[str] = ("vik",)) -> World:
        meta, lightspeed = FakeMeta().start(), FakeLightspeed("vik-key", SECRET).start()
        sqlite = SqliteDatabase(tmp_path / f"{name}.db")
        sqlite.migrate()
        env = shop_env(meta, lightspeed, RELAY_PLAN="free")
        for i, shop in enumerate(shops[1:]):
            upper = shop.upper()
            env.update(shop_env(meta, lightspeed, upper))
            env[f"{upper}_LIGHTSPEED_API_KEY"], env[f"{upper}_META_PIXEL_ID"] = f"{shop}-key", f"11122233344455{i}"
            lightspeed.add_account(f"{shop}-key", SECRET)
        for shop in shops:
            sqlite.conn.execute("INSERT INTO shops (shop, currency, currency_at, updated_at) VALUES (?, 'EUR', ?, ?)",
                                (shop, NOW - 3600, NOW - 3600))
        sqlite.conn.commit()
        root = tmp_path / f"{name}-logs"
        world = World(sqlite, Counted(sqlite), Counted(FolderBlobs(root)), root, env, meta, lightspeed)
        made.append(world)
        return world

    yield make
    for world in made:
        world.sqlite.close()
        world.meta.stop()
        world.lightspeed.stop()


def run(world_list: Sequence[World], steps: Any) -> None:
    """``test_log_spool.run``: the steps in one event loop, each world's HTTP client closed in it."""
    run_closing(steps, *world_list)


async def backfilled(world: World, shop: str, order_id: int, at: float) -> None:
    """A listed paid order whose lines are at ``products.json``, stored as the listing stores it."""
    row = intake.row_for(parse_order(listed(PAID, order_id, at - 3600)), load_shop(world.env, shop), int(at),
                         "backfill")
    world.lightspeed.products[order_id] = LINES
    await Ledger(world.sqlite).record(row, int(at))


def expiring(world: World, order_id: int) -> None:
    """A row of vik about to leave Meta's window: the pass's start expires it, and logs a decision line."""
    world.sqlite.conn.execute(
        "INSERT INTO outbox (shop, order_id, event_name, order_number, event_id, event_time, state, payment_status, "
        "payload, source, next_attempt_at, created_at, updated_at) VALUES ('vik', ?, 'Purchase', 'OLD1', "
        "'purchase_OLD1', ?, 'due', 'paid', '{}', 'listing', ?, ?, ?)",
        (order_id, NOW - (WINDOW - EXPIRE_MARGIN) - 5, NOW, NOW, NOW))
    world.sqlite.conn.commit()


def free(world: World) -> limits.Limits:
    return limits.load_limits(world.env, cpu_limited=True)


def test_a_free_pass_sending_a_backfilled_order_makes_four_calls_and_a_later_copy_writes_what_r2_would(worlds):
    spool, r2 = worlds("spool"), worlds("r2")

    async def steps() -> None:
        for world in (spool, r2):
            await backfilled(world, "vik", 900_001, NOW)
            expiring(world, 900_002)
        before = (spool.db.calls, spool.blobs.calls, len(spool.lightspeed.requests), len(spool.meta.requests))
        report = await cron.run_pass(spool.rt(), limits=free(spool), listing=False)
        spent = (spool.db.calls - before[0], spool.blobs.calls - before[1],
                 len(spool.lightspeed.requests) - before[2], len(spool.meta.requests) - before[3])
        assert report.shops["vik"].sent == 1 and spool.state(900_001) == "sent"
        assert spent == (2, 0, 1, 1), "the start (with the claim), products.json, Meta, the finish: no R2 put"
        assert spool.spooled() == 1 and spool.lines("attempt", "decision") == [], "staged in the finish"
        # the R2 path: the same pass where the CPU is not held (relay serve), which writes its own object
        await cron.run_pass(r2.rt(), limits=limits.load_limits(r2.env, cpu_limited=False), listing=False)
        assert r2.state(900_001) == "sent" and r2.spooled() == 0
        report = await cron.run_pass(spool.rt(), limits=free(spool), listing=False)     # idle: it copies
        assert report.logged == 1 and spool.spooled() == 0

    run([spool, r2], steps)
    expected = r2.lines("attempt", "decision")
    assert [json.loads(t)["kind"] for _, t in expected] == ["decision", "attempt"], expected
    assert spool.lines("attempt", "decision") == expected, "the same lines, bytes and keys (less the random part)"


def test_a_staged_line_is_committed_with_the_finish_or_not_at_all(worlds):
    """The finish fails: no outcome and no staged line (the row waits out its lease, as any unfinished claim);
    the pass's end writes the lines to R2, as it did before it staged them."""
    world = worlds("spool")
    refusing = RefusedBatches(world.db, "INSERT INTO log_spool (shop, key, body, at) VALUES (?, ?, ?, ?)")

    async def steps() -> None:
        await backfilled(world, "vik", 900_001, NOW)
        with pytest.raises(OSError):
            await cron.run_pass(world.rt(db=refusing), limits=free(world), listing=False)

    run([world], steps)
    assert refusing.refused == 1 and len(world.meta.events()) == 1, "Meta had the event; the finish was refused"
    assert world.state(900_001) == "sending" and world.spooled() == 0, "no outcome, no staged line"
    assert [json.loads(t)["verdict"] for _, t in world.lines("attempt")] == ["sent"], "the line went to R2"


def test_many_free_passes_over_a_backlog_send_each_order_once_and_log_each_attempt_once(worlds):
    """Three shops' backlog, webhooks arriving, Meta failing now and then (5xx: a retry), passes two minutes apart:
    every order is sent once, no pass that sent wrote R2 itself, and in the end every attempt line is in R2 once."""
    world = worlds("chaos", SHOPS)
    rng = random.Random(20261207)
    failed: list[str] = []

    def fail(request: Recorded) -> Reply:
        failed.extend(e["event_id"] for e in request.json()["data"])
        return graph_error(503, 2, "Service temporarily unavailable", transient=True)

    async def steps() -> None:
        orders = [(SHOPS[n % 3], 901_000 + n) for n in range(15)]
        for shop, order_id in orders:
            await backfilled(world, shop, order_id, NOW)
        webhooks = 0
        for _ in range(300):
            if rng.random() < 0.15:
                world.meta.script.append(fail)
            if webhooks < 8 and rng.random() < 0.3:
                webhooks += 1
                number = f"ORD07{webhooks:03d}"
                response = await invoke(world.rt(), webhook_request(order_body(id=384280000 + webhooks,
                                                                               number=number)))
                assert response.status == 200
            posts, puts = len(world.meta.event_posts), world.blobs.calls
            await cron.run_pass(world.rt(), limits=free(world))
            if len(world.meta.event_posts) > posts:
                assert world.blobs.calls == puts, "a pass that sent staged its lines: no R2 put"
            world.clock[0] += CRON
            open_rows = world.sqlite.conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE state NOT IN ('sent', 'failed', 'expired', 'skipped')").fetchone()
            if webhooks == 8 and not open_rows[0] and not world.spooled():
                return
        raise AssertionError("not drained after 300 passes")

    run([world], steps)
    posted = Counter(e["event_id"] for e in world.meta.events())
    posted.subtract(Counter(failed))
    rows = world.sqlite.conn.execute("SELECT event_id, state, attempts FROM outbox").fetchall()
    assert len(rows) == 15 + 8 and {state for _, state, _ in rows} == {"sent"}
    assert set(+posted) == {event_id for event_id, _, _ in rows} and set(posted.values()) == {1}, "each sent once"
    assert failed, "Meta failed some requests"
    attempts = [(json.loads(t)["event_id"], json.loads(t)["attempts"]) for _, t in world.lines("attempt")]
    assert len(attempts) == len(set(attempts)), "no attempt line twice"
    assert sorted(attempts) == sorted((e, n) for e, _, tries in rows for n in range(1, tries + 1)), \
        "every attempt's line"


def listing_lines(world: World) -> list[str]:
    """The listing's lines in the log folder (decisions from the listing, warnings, listing lines), in key order, their
    time (``t``: the pass's clock) set to 0."""
    return [re.sub(r'"t": \d+', '"t": 0', text) for _, text in world.lines("decision", "warning", "listing")
            if json.loads(text).get("source", "backfill") == "backfill"]


def listed_orders(world: World) -> None:
    """A listing of five: a new paid order, one not paid yet, one the ledger already has (``backfilled``), one that
    cannot be read, and another new paid order: pages of two on the free plan."""
    world.env["VIK_LIGHTSPEED_API_KEY"] = "vik-key"                 # the fake's key (``worlds``)
    world.lightspeed.orders.extend([
        listed(PAID, 902_001, NOW - 7200), listed(UNPAID, 902_002, NOW - 7100), listed(PAID, 902_003, NOW - 7000),
        listed(PAID, 902_004, NOW - 6900, number=""), listed(PAID, 902_005, NOW - 6800)])
    for order_id in (902_001, 902_005):
        world.lightspeed.products[order_id] = LINES


def test_a_free_listing_pass_stages_its_lines_in_its_page_batch_and_they_are_the_lines_r2_would_get(worlds):
    """The free plan's listing pass makes three calls (its start, orders.json, the page's batch): its decision,
    warning and listing lines ride in the page's batch, and a later copy writes what the R2 path writes for the same
    pages, line for line and byte for byte but their time (the staged path lists a page a pass)."""
    spool, r2 = worlds("spool"), worlds("r2")

    async def steps() -> None:
        for world in (spool, r2):
            listed_orders(world)
            await backfilled(world, "vik", 902_003, NOW - 7000 + 3600)     # as the listing will read it
        listing_passes, complete, started = 0, False, 0.0
        for _ in range(20):
            before = (spool.db.calls, spool.blobs.calls, len(spool.lightspeed.requests), spool.spooled())
            report = await cron.run_pass(spool.rt(), limits=free(spool))
            if report.shops["vik"].pages:
                listing_passes += 1
                started = started or spool.clock[0]
                assert report.logged == 0 and spool.blobs.calls == before[1], "no R2 put of its own"
                assert spool.spooled() - before[3] == 1 + report.shops["vik"].sent, "the page's lines are one row"
                if not report.shops["vik"].sent:
                    assert (spool.db.calls - before[0], len(spool.lightspeed.requests) - before[2]) == (2, 1), \
                        "its start and the page's batch; orders.json"
            complete = complete or report.shops["vik"].listing == "complete"
            open_rows = spool.sqlite.conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'due'").fetchone()[0]
            if complete and not open_rows and not spool.spooled():
                break
            spool.clock[0] += CRON
        else:
            raise AssertionError("the listing, its sends and the copy did not end in 20 passes")
        assert listing_passes == 3, "five orders in pages of two"
        # the R2 path: the same pages of two where the plan's CPU is not modeled (no staging), in one pass at the time
        # the staged listing started (its filter is that time's)
        r2.clock[0] = started
        r2_limits = dataclasses.replace(free(r2), cpu_ms=None)
        await cron.run_pass(r2.rt(), limits=r2_limits)
        assert r2.spooled() == 0

    run([spool, r2], steps)
    expected = listing_lines(r2)
    kinds = [(json.loads(t)["kind"], json.loads(t).get("state")) for t in expected]
    assert kinds == [("decision", "due"), ("decision", "waiting"), ("listing", "in progress"),
                     ("warning", None), ("listing", "in progress"), ("decision", "due"), ("listing", "complete")], kinds
    assert listing_lines(spool) == expected, "the same lines, bytes and order"


def test_a_free_listing_page_with_a_cancelled_order_logs_through_r2_as_before(worlds):
    world = worlds("spool")

    async def steps() -> None:
        world.env["VIK_LIGHTSPEED_API_KEY"] = "vik-key"
        world.lightspeed.orders.extend([listed(CANCELLED, 903_001, NOW - 7200), listed(PAID, 903_002, NOW - 7100)])
        world.lightspeed.products[903_002] = LINES
        report = await cron.run_pass(world.rt(), limits=free(world))
        assert report.shops["vik"].pages == 1 and world.blobs.calls == 1, "the page's lines in an object of their own"

    run([world], steps)
    assert world.spooled() == 0
    assert [(json.loads(t)["kind"], json.loads(t).get("state")) for t in listing_lines(world)] == [
        ("decision", "skipped"), ("decision", "due"), ("listing", "in progress")]
