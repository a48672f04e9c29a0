"""A realistic ledger for the dashboard's tests and screenshots, built through the relay's own code paths.

Two shops. ``vik`` has dozens of orders over the last week in every state: sent, failed (Meta refused
the payload), retrying (Meta was down), expired (found too late), waiting for payment, cancelled and
queued; its time zone is learned from a listed order's offset. ``retoertje`` is held: Meta refused its
token, so its newest orders wait in the queue. Every row is written by intake.record_order and every
outcome comes from delivery.send_due against the loopback fake Meta.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from conftest import PAID_RAW, shop_secrets
from relay.core.config import load_shop
from relay.core.order import parse_order
from relay.jobs import cron, delivery, intake
from relay.jobs.runtime import Runtime
from relay_tools.fakes import FakeLightspeed, FakeMeta, graph_error

HOUR = 3600
TEMPLATE = json.loads(PAID_RAW)["order"]
HELD_TOKEN = "EAAsecretretoertje2token"

# (how many, what happens) for vik, newest first in this order of kinds
VIK = [(3, "due"), (4, "retry"), (5, "failed"), (6, "waiting"), (3, "skipped"), (30, "sent"), (3, "expired")]


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
    return {**env, **other, "RETOERTJE_SHOP_URL": "https://www.retoertje.example"}


async def build(rt: Runtime, meta: FakeMeta, lightspeed: FakeLightspeed) -> dict[str, list[str]]:
    """Fill the ledger; the order numbers by what happened to them."""
    now = rt.now()
    vik = load_shop(rt.env, "vik")
    lightspeed.orders.append(order(500_000, "ORD-LISTED", now - 20 * HOUR))   # the listing learns +01:00
    await cron.run_pass(rt, only="vik")
    numbers: dict[str, list[str]] = {}
    n = 0
    for count, kind in VIK:
        for _ in range(count):
            n += 1
            created = now - (n * 2.6 * HOUR if kind != "expired" else 8 * 86400 + n * HOUR)
            number = f"ORD{10400 - n:05d}"
            changes: dict[str, Any] = {}
            if kind == "waiting":
                changes = {"paymentStatus": "not_paid"}
            elif kind == "skipped":
                changes = {"status": "cancelled", "paymentStatus": "cancelled"}
            await intake.record_order(rt, vik, parse_order(order(510_000 + n, number, created, **changes)), "webhook")
            numbers.setdefault(kind, []).append(number)
            if kind == "failed":
                meta.reject_event_ids.add(f"purchase_{number}")
            elif kind == "retry":
                meta.script.append(graph_error(503, 2, "Service temporarily unavailable", transient=True))
            if kind in ("sent", "failed", "retry"):
                await delivery.send_due(rt, vik, order_id=510_000 + n)
    held = load_shop(rt.env, "retoertje")
    for i in range(20):
        number = f"R{2200 - i}"
        created = now - (i * 5.5 * HOUR if i >= 8 else i * 0.4 * HOUR + 600)
        await intake.record_order(rt, held, parse_order(order(620_000 + i, number, created)), "webhook")
        numbers.setdefault("retoertje", []).append(number)
        if i >= 8:
            await delivery.send_due(rt, held, order_id=620_000 + i)
    meta.valid_tokens = {vik.meta_token.reveal()}          # Meta now refuses retoertje's token: held
    await delivery.send_due(rt, held)
    return numbers
