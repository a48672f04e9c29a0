"""On the Free plan the Worker's webhook stores the order and the cron pass sends it.

A webhook's accept and its ``waitUntil`` send together measured over the Free plan's 10 ms of CPU in the Worker
(docs/PERFORMANCE.md); the accept alone fits. So where the plan limits the CPU (the Worker, ``cpu_limited``) and
``RELAY_PLAN`` is ``free``, the webhook and the thank-you post send nothing themselves and the next cron pass
sends the stored row, once. Paid, and CPython's ``relay serve``, send at once as before. Real SQLite, real HTTP to
the loopback fakes, the shared signed fixture through ``relay.web.routes.handle`` as ``src/entry.py`` runs it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import KEY, SECRET, shop_env
from relay.jobs import cron, limits, runtime
from relay_tools.edges import FolderBlobs, HttpxClient
from relay_tools.fakes import FakeLightspeed, FakeMeta
from relay_tools.sqlite import SqliteDatabase
from worker_webhook import NOW, cache_currency, deliver


def scenario(tmp_path: Path, plan: str, cpu_limited: bool) -> tuple[int, int, int, str]:
    """Meta's events after the webhook's invocation, after the next cron pass, the answer's status, the row."""
    meta = FakeMeta().start()
    lightspeed = FakeLightspeed(KEY, SECRET).start()
    db = SqliteDatabase(tmp_path / "relay.db")
    db.migrate()
    cache_currency(db)
    env = shop_env(meta, lightspeed, RELAY_PLAN=plan)

    async def run() -> tuple[int, int, int, str]:
        http = HttpxClient()
        rt = runtime.Runtime(env=env, db=db, http=http, blobs=FolderBlobs(tmp_path / "logs"),
                             clock=lambda: float(NOW), random=lambda: 0.5, cpu_limited=cpu_limited)
        response = await deliver(rt)
        after_webhook = len(meta.events())
        await cron.run_pass(rt, limits=limits.load_limits(env, cpu_limited=True), sleep=asyncio.sleep)
        await http.aclose()
        state = db.conn.execute("SELECT state FROM outbox").fetchone()[0]
        return after_webhook, len(meta.events()), response.status, state

    try:
        return asyncio.run(run())
    finally:
        db.close()
        meta.stop()
        lightspeed.stop()


def test_on_the_free_plan_the_workers_webhook_stores_and_the_next_cron_pass_sends_it_once(tmp_path):
    after_webhook, after_pass, status, state = scenario(tmp_path, "free", cpu_limited=True)
    assert status == 200
    assert after_webhook == 0, "the webhook's invocation sent nothing: its accept alone fits 10 ms"
    assert (after_pass, state) == (1, "sent"), "the next cron pass sent the stored order, once"


@pytest.mark.parametrize(("plan", "cpu_limited"), [("paid", True), ("free", False)], ids=["paid", "relay-serve"])
def test_on_the_paid_plan_and_in_relay_serve_the_webhook_sends_at_once(tmp_path, plan, cpu_limited):
    after_webhook, after_pass, status, state = scenario(tmp_path, plan, cpu_limited)
    assert (status, after_webhook, after_pass, state) == (200, 1, 1, "sent")


def test_a_wrong_plan_variable_keeps_sending_at_once():
    """The cron refuses to run with it, so the webhook's own send is the only one left."""
    assert limits.sends_inline({"RELAY_PLAN": "business"}, cpu_limited=True)
    assert not limits.sends_inline({}, cpu_limited=True), "free is the default"
