"""On the Free plan a replay re-queues the order and the cron pass sends it; it is not sent in the request.

A send is four subrequests (claim, the order's lines, Meta, the finish): more than the Free plan's 10 ms of CPU leaves
after a request's own work (docs/PERFORMANCE.md), so an HTTP invocation that sent would end in Cloudflare's error 1102
part-way. Where the plan limits the CPU (the Worker, ``cpu_limited``) and ``RELAY_PLAN`` is ``free``, ``POST
/orders/replay`` and the dashboard's replay button only re-queue, as the webhook only stores
(tests/test_free_plan_webhook.py); the next cron pass sends the order, once. Paid, and CPython's ``relay serve``,
send at once as before. Real SQLite, real HTTP to the loopback fakes, through ``relay.web.routes.handle`` as
``src/entry.py`` runs it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import shop_env
from relay.jobs import cron, limits, runtime
from relay.web import routes
from relay.web.http import Request
from relay.web.orders import FREE_SENDING
from relay_tools.edges import FolderBlobs, HttpxClient
from relay_tools.orders_cli import CRON_POLL_SECONDS, POLL_SECONDS, watch_seconds
from test_backfill import Counted
from worker_webhook import NOW, cache_currency, deliver, loopback

ADMIN = "admin-token-for-free-replay-7c41d2"
NUMBER = "ORD04217"             # the shared paid fixture's order


@dataclass
class Replayed:
    status: int
    answer: dict[str, str] | None       # the API's JSON answer (None for the dashboard's redirect)
    location: str | None                # the dashboard's redirect
    sent_by_request: int                # Meta's new events after the request and its waitUntil work
    state: str                          # the row after the request
    calls: tuple[int, int, int]         # the request's D1 calls, R2 calls, Meta and Lightspeed requests
    sent_by_pass: int                   # Meta's new events after the next cron pass too
    state_after_pass: str


def replay_request(via: str) -> Request:
    if via == "api":
        body = json.dumps({"number": NUMBER}).encode()
        headers = {"authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
        path, query = "/orders/replay", {"shop": "vik"}
    else:
        body = urlencode({"action": "replay", "shop": "vik", "number": NUMBER}).encode()
        headers = {"authorization": f"Bearer {ADMIN}", "content-type": "application/x-www-form-urlencoded"}
        path, query = "/dashboard", {}

    async def read() -> bytes:
        return body

    return Request("POST", path, query, {**headers, "content-length": str(len(body))}, read)


def replay_failed_order(tmp_path: Path, plan: str, cpu_limited: bool, via: str) -> Replayed:
    """The fixture's order sent, then failed; replayed through ``via`` ("api" or "dashboard"); then one cron pass."""
    with loopback(tmp_path) as (meta, lightspeed, sqlite):
        cache_currency(sqlite)
        env = shop_env(meta, lightspeed, RELAY_PLAN=plan, ADMIN_TOKEN=ADMIN)
        pass_limits = limits.load_limits(env, cpu_limited=True)

        def state() -> str:
            return str(sqlite.conn.execute("SELECT state FROM outbox").fetchone()[0])

        async def run() -> Replayed:
            http = HttpxClient()
            db, blobs = Counted(sqlite), Counted(FolderBlobs(tmp_path / "logs"))
            rt = runtime.Runtime(env=env, db=db, http=http, blobs=blobs,
                                 clock=lambda: float(NOW), random=lambda: 0.5, cpu_limited=cpu_limited)

            def count() -> tuple[int, int, int]:
                return db.calls, blobs.calls, len(meta.requests) + len(lightspeed.requests)

            await deliver(rt)
            await cron.run_pass(rt, limits=pass_limits, sleep=asyncio.sleep)
            assert (len(meta.events()), state()) == (1, "sent")
            sqlite.conn.execute("UPDATE outbox SET state = 'failed', last_code = 100, last_status = 400")
            before = count()
            response = await routes.handle(rt, replay_request(via))
            for work in response.after:          # the Worker hands these to ctx.waitUntil: the same invocation
                await work
            calls = tuple(a - b for a, b in zip(count(), before, strict=True))
            by_request, after_request = len(meta.events()) - 1, state()
            await cron.run_pass(rt, limits=pass_limits, sleep=asyncio.sleep)
            await http.aclose()
            answer = response.body if response.text is None else None
            return Replayed(response.status, answer, response.headers.get("Location"), by_request, after_request,
                            (calls[0], calls[1], calls[2]), len(meta.events()) - 1, state())

        return asyncio.run(run())


def test_on_the_free_plan_an_api_replay_requeues_and_the_next_cron_pass_sends_it_once(tmp_path):
    r = replay_failed_order(tmp_path, "free", cpu_limited=True, via="api")
    assert r.status == 200 and r.answer is not None
    assert (r.answer["requeued"], r.answer["sending"]) == (1, FREE_SENDING)
    assert (r.sent_by_request, r.state) == (0, "due"), "the request sent nothing: a send does not fit its 10 ms"
    assert r.calls == (2, 1, 0), "the order's read with the shop's hold, the re-queue; the log's object"
    assert (r.sent_by_pass, r.state_after_pass) == (1, "sent"), "the next cron pass sent it, once"
    assert watch_seconds(r.answer) == CRON_POLL_SECONDS, "relay replay --url follows it past the next cron run"


def test_on_the_free_plan_the_dashboards_replay_button_requeues_and_says_the_cron_sends_it(tmp_path):
    r = replay_failed_order(tmp_path, "free", cpu_limited=True, via="dashboard")
    assert (r.status, r.location) == (303, f"/dashboard?q={NUMBER}&done=requeued&lang=en")
    assert (r.sent_by_request, r.state) == (0, "due")
    assert (r.sent_by_pass, r.state_after_pass) == (1, "sent")


@pytest.mark.parametrize("via", ["api", "dashboard"])
@pytest.mark.parametrize(("plan", "cpu_limited"), [("paid", True), ("free", False)], ids=["paid", "relay-serve"])
def test_on_the_paid_plan_and_in_relay_serve_a_replay_sends_at_once(tmp_path, plan, cpu_limited, via):
    r = replay_failed_order(tmp_path, plan, cpu_limited, via)
    assert (r.sent_by_request, r.state) == (1, "sent")
    assert (r.sent_by_pass, r.state_after_pass) == (1, "sent"), "and the cron pass does not send it again"
    if via == "api":
        assert r.answer is not None and r.answer["sending"].startswith("now, after this answer")
        assert watch_seconds(r.answer) == POLL_SECONDS
    else:
        assert r.location == f"/dashboard?q={NUMBER}&done=replayed&lang=en"
