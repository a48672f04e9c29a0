"""A realistic ledger for the dashboard's tests and screenshots, built through the relay's own code paths.

Two shops. ``vik`` has dozens of orders over the last week in every state: sent, failed (Meta refused
the payload), retrying (Meta was down), expired (found too late), waiting for payment, cancelled and
queued; its time zone is learned from a listed order's offset. ``retoertje`` is held: Meta refused its
token three hours ago, so its newest orders wait in the queue; its time zone is set by hand (+02:00).
Every row is written by intake.record_order and every outcome comes from delivery.send_due against
the loopback fake Meta.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from conftest import PAID_RAW, shop_secrets
from relay.core.config import load_shop
from relay.core.order import parse_order
from relay.jobs import cron, delivery, health, intake, quality
from relay.jobs.runtime import Runtime
from relay.outbox import unreadable
from relay_tools.fakes import FakeLightspeed, FakeMeta, graph_error
from relay_tools.server import ServerThread

HOUR = 3600
TEMPLATE = json.loads(PAID_RAW)["order"]
HELD_TOKEN = "EAAsecretretoertje2token"

# vik's orders: how many of each outcome, and how long before the end of the scene they were placed (hours)
VIK = {"due": (3, 0.1, 0.1), "retry": (4, 0.4, 0.15), "failed": (5, 1.5, 5.5), "waiting": (6, 2.0, 9.0),
       "skipped": (3, 6.0, 30.0), "sent": (30, 0.6, 5.4), "expired": (3, 200.0, 3.0)}


def order(order_id: int, number: str, created: float, offset: int = 3600, **changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(TEMPLATE)
    zone = timezone(timedelta(seconds=offset))
    raw.update(id=order_id, number=number, createdAt=datetime.fromtimestamp(created, zone).isoformat(),
               updatedAt=datetime.fromtimestamp(created + 90, zone).isoformat(), priceIncl=round(40 + order_id % 97, 2))
    raw.update(changes)
    return raw


def scene_env(meta: FakeMeta, lightspeed: FakeLightspeed, env: dict[str, str]) -> dict[str, str]:
    """The two shops' variables: vik's from ``env``, retoertje's own (its key is a second Lightspeed account)."""
    other = shop_secrets("RETOERTJE", 2)
    lightspeed.add_account(other["RETOERTJE_LIGHTSPEED_API_KEY"], other["RETOERTJE_LIGHTSPEED_API_SECRET"])
    return {**env, **other, "RETOERTJE_SHOP_URL": "https://www.retoertje.example",
            "RETOERTJE_UTC_OFFSET": "+02:00"}          # its owner set the time zone by hand


def troubled_env(meta: FakeMeta, lightspeed: FakeLightspeed, env: dict[str, str]) -> dict[str, str]:
    """``scene_env`` plus two shops set up wrong: ``proef`` (no SHOP_URL, a test event code) and ``kapot``."""
    proef = shop_secrets("PROEF", 3)
    lightspeed.add_account(proef["PROEF_LIGHTSPEED_API_KEY"], proef["PROEF_LIGHTSPEED_API_SECRET"])
    return {**scene_env(meta, lightspeed, env), **proef, "PROEF_META_TEST_EVENT_CODE": "TEST123",
            "KAPOT_META_PIXEL_ID": "123456789012345"}           # a shop with four of its five variables missing


class Clock(Protocol):
    now: float


async def build(rt: Runtime, meta: FakeMeta, lightspeed: FakeLightspeed, clock: Clock) -> dict[str, list[str]]:
    """Fill the ledger as a week of traffic would, moving ``clock`` along; the order numbers by outcome.

    The clock ends where it started. Meta was down for the last half hour (vik's retrying orders), and
    refused retoertje's token three hours ago (everything since is held).
    """
    end = clock.now
    vik, held = load_shop(rt.env, "vik"), load_shop(rt.env, "retoertje")
    lightspeed.orders.append(order(500_000, "ORD10400", end - 20 * HOUR))   # the listing learns +01:00
    clock.now = end - 600
    await cron.run_pass(rt, only="vik")
    numbers: dict[str, list[str]] = {}
    plan = []
    n = 0
    for kind, (count, first, step) in VIK.items():
        for i in range(count):
            n += 1
            plan.append((end - (first + i * step) * HOUR, kind, 510_000 + n, f"ORD{10_400 + n:05d}"))
    for created, kind, order_id, number in sorted(plan):
        changes: dict[str, Any] = {}
        if kind == "waiting":
            changes = {"paymentStatus": "not_paid"}
        elif kind == "skipped":
            changes = {"status": "cancelled", "paymentStatus": "cancelled"}
        clock.now = created + 60 if kind != "expired" else end - 3 * HOUR       # expired: found too late
        source = "backfill" if kind == "expired" else "webhook"
        await intake.record_order(rt, vik, parse_order(order(order_id, number, created, **changes)), source)
        numbers.setdefault(kind, []).append(number)
        if kind == "failed":
            meta.reject_event_ids.add(f"purchase_{number}")
        for attempt in range(2 if kind == "retry" else 1):
            if kind == "retry":
                meta.script.append(graph_error(503, 2, "Service temporarily unavailable", transient=True))
                clock.now = created + 60 if attempt == 0 else end - 120
            if kind in ("sent", "failed", "retry"):
                await delivery.send_due(rt, vik, order_id=order_id)
    for i in range(20):
        number, order_id = f"R{2200 + i}", 620_000 + i
        created = end - (150 - i * 7.5) * HOUR if i < 12 else end - (3 - (i - 12) * 0.35) * HOUR
        clock.now = created + 60
        if i == 12:
            meta.valid_tokens = {vik.meta_token.reveal()}     # Meta refuses retoertje's token from here on
        await intake.record_order(rt, held, parse_order(order(order_id, number, created)), "webhook")
        numbers.setdefault("retoertje", []).append(number)
        await delivery.send_due(rt, held, order_id=order_id)
    clock.now = end
    return numbers


def fill(server: ServerThread, meta: FakeMeta, lightspeed: FakeLightspeed, clock: Clock, *,
         troubles: bool = False) -> dict[str, list[str]]:
    """``build`` on a served relay, with the daily quality and health checks around it; the order numbers by outcome.

    retoertje's token may send but not read quality. With ``troubles``, vik also has an unreadable order and
    a backfill nine hours behind (Lightspeed answered 503): what the page says about those.
    """
    rt = server.relay.runtime()
    meta.quality_denied = {HELD_TOKEN}
    try:
        server.call(quality.run_daily(rt))
        numbers: dict[str, list[str]] = server.call(build(rt, meta, lightspeed, clock))
        server.call(health.run_daily(rt))
    finally:
        server.call(rt.log.flush(rt.blobs, rt.clock()))
    if troubles:
        now = int(clock.now)
        server.call(rt.db.batch(unreadable.statements("vik", [], [(777, 'order 777 has no "number"')], now)))
        server.call(rt.db.run("UPDATE backfill SET cursor = ?, last_error = ? WHERE shop = 'vik'",
                              (now - 9 * 3600, "Lightspeed answered 503")))
    return numbers
