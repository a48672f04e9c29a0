"""On the Free plan ``GET /orders`` serves at most 50 rows a page, whatever ``limit`` asks; ``next`` pages on.

Each row costs the Worker ~0.06 ms of the plan's 10 ms of CPU (a 100-row page measured 11.6 / 15.7 ms of thread
CPU, median / p95: relay.web.orders.FREE_MAX_LIMIT), so a 200-row page would end in Cloudflare's error 1102. Paid,
and CPython's ``relay serve``, serve what was asked, up to 200. Real SQLite, through ``relay.web.routes.handle`` as
``src/entry.py`` runs it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import PAID_RAW, shop_env
from relay.core.config import load_shop
from relay.core.order import parse_order
from relay.jobs import intake, runtime
from relay.web import routes
from relay.web.http import Request
from relay.web.orders import FREE_MAX_LIMIT
from relay_tools.edges import HttpxClient
from worker_webhook import NOW, loopback

ADMIN = "admin-token-for-free-orders-page-90b3e1"
ORDERS = 60


def pages(tmp_path: Path, plan: str, cpu_limited: bool, limit: int) -> list[int]:
    """The row counts of the pages ``GET /orders?limit=<limit>`` serves, following ``next`` to the end."""
    with loopback(tmp_path) as (meta, lightspeed, sqlite):
        env = shop_env(meta, lightspeed, RELAY_PLAN=plan, ADMIN_TOKEN=ADMIN)

        async def nothing() -> bytes:
            return b""

        async def run() -> list[int]:
            http = HttpxClient()
            rt = runtime.Runtime(env=env, db=sqlite, http=http, blobs=None, clock=lambda: float(NOW),
                                 random=lambda: 0.5, cpu_limited=cpu_limited)
            vik = load_shop(rt.env, "vik")
            for n in range(1, ORDERS + 1):
                raw = json.loads(PAID_RAW)["order"]
                raw.update(id=80_000 + n, number=f"PG{n:05d}",
                           createdAt=datetime.fromtimestamp(NOW - 7200 + n, UTC).isoformat())
                await intake.record_order(rt, vik, parse_order(raw), "backfill")
            sizes: list[int] = []
            cursor = ""
            while True:
                query = {"shop": "vik", "limit": str(limit), **({"cursor": cursor} if cursor else {})}
                answer = await routes.handle(
                    rt, Request("GET", "/orders", query, {"authorization": f"Bearer {ADMIN}"}, nothing))
                assert answer.status == 200, answer.body
                sizes.append(len(answer.body["orders"]))
                cursor = answer.body["next"] or ""
                if not cursor:
                    break
            await http.aclose()
            return sizes

        return asyncio.run(run())


def test_on_the_free_plan_a_page_holds_at_most_fifty_rows_and_next_serves_the_rest(tmp_path):
    assert FREE_MAX_LIMIT == 50
    assert pages(tmp_path, "free", cpu_limited=True, limit=200) == [50, 10], "every order, 50 at a time"
    assert pages(tmp_path / "small", "free", cpu_limited=True, limit=25) == [25, 25, 10], "a smaller limit holds"


@pytest.mark.parametrize(("plan", "cpu_limited"), [("paid", True), ("free", False)], ids=["paid", "relay-serve"])
def test_on_the_paid_plan_and_in_relay_serve_a_page_holds_what_limit_asks(tmp_path, plan, cpu_limited):
    assert pages(tmp_path, plan, cpu_limited, limit=200) == [60]
