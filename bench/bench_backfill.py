"""A week of missed webhooks drained by the cron pass: passes, subrequests, modeled CPU and days, on the fakes.

    uv run python bench/bench_backfill.py --shops 10 --orders 2000 --plan both [--budget N] [--embedded]
        [--cron-minutes N] [--latency-ms MS]

Scenario: ``--shops`` shops, each with ``--orders`` paid orders that no webhook delivered, placed over
the last ``--spread-hours`` hours (default 6 days: a week of misconfigured webhooks, the oldest still
inside Meta's 7-day window) and listed by ``orders.json`` without embedded lines, as Lightspeed lists
them (``--embedded``: with them, so no ``products.json`` call is needed). Each cron tick runs what the
Worker's ``scheduled`` runs (the daily health check, then ``relay.jobs.cron``) under ``--plan``
(``RELAY_PLAN``: free, paid, or both one after the other; ``--budget`` sets RELAY_SUBREQUEST_BUDGET) on
real SQLite and real loopback HTTP to ``relay_tools.fakes``; the clock is simulated: a tick is
``--cron-minutes`` apart (default: ``wrangler.toml``'s cron), a rate-limit wait moves it instead of
sleeping, and each fetch moves it ``--latency-ms`` past its start (default 0; fetches in flight together
overlap). Lightspeed's fake enforces 300 calls per
5-minute window per API key.

Subrequests are counted at the ports (every database call, fetch and log write), not by the pass's own
meter. Modeled CPU is ``relay.core.cpu_model.MODEL`` applied to what the ports and the fakes saw (calls,
listed orders, events), the figure the pass plans with; the CPython time is this process's, for scale.
Lost and duplicated are checked against what the fake Meta recorded. Figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from relay.core import cpu_model
from relay.core.ports import HttpRequest, HttpResponse, QueryResult
from relay.jobs import cron, limits, runtime, schedule
from relay_tools.edges import FolderBlobs, HttpxClient
from relay_tools.fakes import FakeLightspeed, FakeMeta, WindowedLightspeed
from relay_tools.sqlite import SqliteDatabase

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "lightspeed"
PAID, PAID_BE = json.loads((FIXTURES / "orders-list-page.json").read_text())["orders"][:2]
LINES = json.loads((FIXTURES / "order-products.json").read_text())["orderProducts"][:2]
START = 1_796_040_000           # 2026-11-30 12:00 UTC
SECRET = "bench-lightspeed-secret"
FREE_REQUESTS_PER_DAY = 100_000             # Workers Free: requests per day (cron invocations included)
AFTER_TICKS = 12                            # cron runs after the drain, looking for an idle one
KINDS = ("database", "lightspeed", "meta", "logs")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Ports:
    """Counts every call at the database, the log folder and the HTTP client, by kind."""

    def __init__(self, db: SqliteDatabase, blobs: FolderBlobs, http: HttpxClient, meta: str, clock: Clock,
                 latency: float = 0.0) -> None:
        self.db, self.blobs, self.http, self.meta, self.clock = db, blobs, http, meta, clock
        self.latency = latency
        self.calls: Counter[str] = Counter()
        self.meta_minutes: Counter[tuple[str, int]] = Counter()     # (pixel, minute) -> Meta requests

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        self.calls["database"] += 1
        return await self.db.run(sql, params)

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        self.calls["database"] += 1
        return await self.db.batch(statements)

    async def send(self, request: HttpRequest) -> HttpResponse:
        if request.url.startswith(self.meta):
            self.calls["meta"] += 1
            self.meta_minutes[(request.url.split("/")[4], int(self.clock() // 60))] += 1
        else:
            self.calls["lightspeed"] += 1
        start = self.clock.now        # calls in flight together (asyncio.gather) overlap on the simulated clock
        response = await self.http.send(request)
        self.clock.now = max(self.clock.now, start + self.latency)
        return response

    async def put(self, key: str, data: bytes, content_type: str = "application/x-ndjson") -> None:
        self.calls["logs"] += 1
        await self.blobs.put(key, data, content_type)

    async def get(self, key: str) -> bytes | None:
        self.calls["logs"] += 1
        return await self.blobs.get(key)

    async def list(self, prefix: str) -> list[str]:
        self.calls["logs"] += 1
        return await self.blobs.list(prefix)


def order(template: dict[str, Any], order_id: int, created: float, embedded: bool) -> dict[str, Any]:
    o = copy.deepcopy(template)
    stamp = datetime.fromtimestamp(created, timezone(timedelta(hours=1))).isoformat()
    o.update(id=order_id, number=f"ORD{order_id}", createdAt=stamp, updatedAt=stamp)
    if embedded:
        o["products"] = {"resource": {"id": False, "url": f"orders/{order_id}/products", "embedded": LINES}}
    return o


def cron_minutes() -> int:
    crons = re.search(r"crons\s*=\s*\[\s*\"([^\"]+)\"", (ROOT / "wrangler.toml").read_text())
    minute = crons.group(1).split()[0] if crons else "*/10"
    return 1 if minute == "*" else int(minute.removeprefix("*/"))


def settled(db: SqliteDatabase, shops: int) -> bool:
    """Every shop's listing is complete and nothing is left to send (sent, or expired unsent)."""
    open_rows = db.conn.execute("SELECT COUNT(*) FROM outbox WHERE state IN ('due', 'retry', 'sending')").fetchone()
    listed = db.conn.execute("SELECT COUNT(*) FROM backfill WHERE cursor IS NOT NULL AND run_page IS NULL").fetchone()
    return open_rows[0] == 0 and listed[0] == shops


def env_for(shops: int, meta: FakeMeta, lightspeed: FakeLightspeed, plan: str, budget: int | None) -> dict[str, str]:
    env = {"META_GRAPH_URL": meta.url, "LIGHTSPEED_API_URL": lightspeed.url, "RELAY_PLAN": plan}
    if budget is not None:
        env["RELAY_SUBREQUEST_BUDGET"] = str(budget)
    for i in range(shops):
        prefix = f"SHOP{i:02d}"
        env.update({f"{prefix}_LIGHTSPEED_API_KEY": f"key{i}", f"{prefix}_LIGHTSPEED_API_SECRET": SECRET,
                    f"{prefix}_LIGHTSPEED_SHOP_ID": "318842", f"{prefix}_META_ACCESS_TOKEN": f"EAAbench{i}tok",
                    f"{prefix}_META_PIXEL_ID": str(900000000000000 + i),
                    f"{prefix}_SHOP_URL": f"https://shop{i}.example"})
    return env


async def simulate(args: argparse.Namespace, plan: str, folder: Path) -> dict[str, Any]:
    clock = Clock(float(START))
    meta, lightspeed = FakeMeta().start(), WindowedLightspeed(clock).start()
    expected: set[str] = set()
    try:
        for i in range(args.shops):
            listed = lightspeed.add_account(f"key{i}", SECRET)
            for n in range(args.orders):
                order_id = 10_000_000 * (i + 1) + n
                created = START - args.spread_hours * 3600 + (n + 0.5) * args.spread_hours * 3600 / args.orders
                listed.append(order((PAID, PAID_BE)[n % 2], order_id, created, args.embedded))
                lightspeed.products[order_id] = LINES
                expected.add(f"purchase_ORD{order_id}")
        db = SqliteDatabase(folder / "relay.db")
        db.migrate()
        db.conn.execute("PRAGMA synchronous=OFF")     # a benchmark's scratch file: no fsync per commit
        http = HttpxClient()
        ports = Ports(db, FolderBlobs(folder / "logs"), http, meta.url, clock, args.latency_ms / 1000)
        env = env_for(args.shops, meta, lightspeed, plan, args.budget)
        plan_limits = limits.load_limits(env, cpu_limited=True)
        interval = args.cron_minutes * 60

        async def sleep(seconds: float) -> None:
            clock.now += seconds

        ticks: list[dict[str, Any]] = []
        drained_at = None
        idle: dict[str, Any] | None = None
        after: list[dict[str, Any]] = []
        changes0 = db.conn.total_changes
        drained_after = None
        while clock.now < START + args.max_days * 86400:
            tick_start = clock.now
            before = Counter(ports.calls)
            posts_before = len(meta.event_posts)
            rt = runtime.Runtime(env=env, db=ports, http=ports, blobs=ports, clock=clock, random=lambda: 0.5,
                                 cpu_limited=True)     # the Worker's cron
            cpu = time.thread_time()
            try:
                report = await cron.scheduled(rt, before=(schedule.health_check,), sleep=sleep)
            finally:
                await rt.log.flush(rt.blobs, rt.clock())
            spent = ports.calls - before
            events = sum(len(p.json()["data"]) for p in meta.event_posts[posts_before:])
            listed = sum(r.listed for r in report.shops.values())
            tick = {"calls": spent, "events": events, "cpu": time.thread_time() - cpu, "listed": listed,
                    "modeled": cpu_model.MODEL.cost(subrequests=sum(spent.values()), orders=listed, events=events),
                    "starved": report.starved, "wall": clock.now - tick_start}
            ticks.append(tick)
            if drained_at is None and settled(db, args.shops):
                drained_at = len(ticks)
                drained_after = clock.now - START
                changes = db.conn.total_changes - changes0
            elif drained_at is not None:
                after.append(tick)
                if not spent["lightspeed"] and not spent["meta"]:
                    idle = tick            # nothing to list or send
                if idle or len(after) >= AFTER_TICKS:
                    break
            clock.now = max(clock.now, tick_start + interval)
        await http.aclose()
        db.close()
        sent = Counter(e["event_id"] for e in meta.events())
        return {"ticks": ticks, "drained": drained_at, "idle": idle, "after": after, "sent": sent, "expected": expected,
                "plan": plan_limits, "drained_after": drained_after,
                "meta_posts": len(meta.event_posts), "over": lightspeed.over, "interval": interval,
                "meta_minutes": ports.meta_minutes, "changes": changes if drained_at else None,
                "lightspeed": sum(t["calls"]["lightspeed"] for t in ticks[:drained_at or len(ticks)])}
    finally:
        meta.stop()
        lightspeed.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(args: argparse.Namespace, r: dict[str, Any]) -> list[str]:
    drained = r["drained"]
    plan = r["plan"]
    working = r["ticks"][:drained or len(r["ticks"])]
    orders = args.shops * args.orders
    events = sum(t["events"] for t in working)
    # a Lightspeed call is a listing page or the shop's currency (once a day a shop: a pass of its own on the free plan)
    moved = [t for t in working if t["events"] or t["calls"]["lightspeed"] or t["calls"]["logs"]]
    sent_once = sum(1 for n in r["sent"].values() if n == 1)
    lost = len(r["expected"] - set(r["sent"]))
    duplicated = sum(1 for n in r["sent"].values() if n > 1)
    database = sum(t["calls"]["database"] for t in working)
    total = [sum(t["calls"].values()) for t in working]
    per_day = 86400 / r["interval"]
    cron_hours = len(working) * r["interval"] / 3600
    modeled = [t["modeled"] for t in working]
    limit = f"{plan.cpu_ms:,.0f} ms" if plan.cpu_ms is not None else "none"
    lines = [
        f"RELAY_PLAN={plan.plan}: {args.shops} shop(s) x {args.orders} paid orders listed "
        f"{'with' if args.embedded else 'without'} embedded lines; limits per invocation: {plan.budget:,} "
        f"subrequests, {plan.d1_budget:,} D1 queries, CPU {limit}; orders.json pages of {plan.page_size}; "
        f"cron every {args.cron_minutes} min (simulated clock, {args.latency_ms:g} ms a fetch)",
        f"passes: {len(working)}{'' if drained else ' (NOT drained: stopped at --max-days)'}; cron time "
        f"{cron_hours:.2f} h ({len(working)} x {args.cron_minutes} min)"
        + (f", {r['drained_after'] / 3600:.2f} h on the simulated clock" if r["drained_after"] is not None else ""),
        f"events per pass: mean {events / len(working):.1f}, max {max(t['events'] for t in working)}; "
        f"per day at this pace: {events / len(working) * per_day:,.0f}",
        f"subrequests per pass: max {max(total)}, median {statistics.median(total):g}",
        f"passes that listed a page, read a shop's currency, sent an event or copied the delivery log: {len(moved)} of "
        f"{len(working)}"
        + (f" ({len(working) - len(moved)} did none of these)" if len(moved) < len(working) else ""),
    ]
    for kind in KINDS:
        per = [t["calls"][kind] for t in working]
        lines.append(f"  {kind:<11} max {max(per):>5}  median {statistics.median(per):>5g}  total {sum(per):>7}")
    lines += [
        f"modeled Worker CPU per pass ({cpu_model.MODEL} on what the ports saw): median "
        f"{statistics.median(modeled):,.1f} ms, p95 {pct(modeled, 0.95):,.1f}, max {max(modeled):,.1f} "
        f"(plan limit {limit})" + (f"; {sum(t['starved'] for t in working)} passes starved (no unit fits)"
                                   if any(t["starved"] for t in working) else ""),
        f"CPython time per pass (this thread, with httpx and sqlite): median "
        f"{statistics.median(t['cpu'] for t in working) * 1000:.1f} ms, "
        f"max {max(t['cpu'] for t in working) * 1000:.1f}",
        f"wall per pass on the simulated clock: max {max(t['wall'] for t in working):.0f} s",
        f"Meta requests per event: {r['meta_posts'] / max(events, 1):.3f} ({r['meta_posts']} requests, {events} events)"
        f"; most in one minute for one shop: {max(r['meta_minutes'].values(), default=0)} (limit 60)",
        f"database calls per event: {database / max(events, 1):.3f}",
        f"Lightspeed calls per order: {r['lightspeed'] / orders:.3f}; 429s: {r['over']}",
        f"sent once: {sent_once:,} of {orders:,}; lost: {lost:,}; duplicated: {duplicated} "
        "(against what the fake Meta recorded)",
    ]
    if r["changes"] is not None:
        lines.append(f"SQLite rows changed per event: {r['changes'] / max(events, 1):.1f} "
                     "(D1 bills each index entry a write too)")
    if r["idle"] is None and r["after"]:
        steady = [sum(t["calls"].values()) for t in r["after"]]
        lines.append(f"no idle pass in the {len(steady)} cron runs after the drain (a listing is due every run); "
                     f"they cost {min(steady)}-{max(steady)} subrequests")
    if r["idle"] is not None:
        idle = sum(r["idle"]["calls"].values())
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["idle"]["calls"].items()) if v)
        lines.append(f"idle pass: {idle} subrequests ({kinds}), modeled {r['idle']['modeled']:.1f} ms, CPython "
                     f"{r['idle']['cpu'] * 1000:.1f} ms; {per_day:.0f} cron runs a day = "
                     f"{per_day / FREE_REQUESTS_PER_DAY:.1%} of the Free plan's 100,000 requests a day")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", type=int, default=3)
    parser.add_argument("--orders", type=int, default=300, help="missed paid orders per shop")
    parser.add_argument("--plan", choices=("free", "paid", "both"), default="both", help="RELAY_PLAN")
    parser.add_argument("--budget", type=int, default=None, help="RELAY_SUBREQUEST_BUDGET (default: the plan's)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="simulated time each fetch takes")
    parser.add_argument("--model", default=None, help="what-if CPU model the pass plans with: ms per invocation, "
                        "subrequest, listed order, event (e.g. 1.5,0.5,0.25,0.2); default relay.core.cpu_model.MODEL")
    parser.add_argument("--embedded", action="store_true", help="the listing embeds each order's lines")
    parser.add_argument("--cron-minutes", type=int, default=cron_minutes(), help="default: wrangler.toml's cron")
    parser.add_argument("--spread-hours", type=float, default=144.0, help="the orders were placed over this long")
    parser.add_argument("--max-days", type=float, default=30.0, help="stop the simulation after this long")
    args = parser.parse_args()
    logging.getLogger("relay").setLevel(logging.ERROR)      # the free plan's starved passes say so once each
    if args.model:
        cpu_model.MODEL = cpu_model.CpuModel(*(float(x) for x in args.model.split(",")))
    drained = True
    for plan in ("free", "paid") if args.plan == "both" else (args.plan,):
        with tempfile.TemporaryDirectory() as folder:
            result = asyncio.run(simulate(args, plan, Path(folder)))
        print("\n".join(report(args, result)), end="\n\n", flush=True)
        drained = drained and result["drained"] is not None
    sys.exit(0 if drained else 1)


if __name__ == "__main__":
    main()
