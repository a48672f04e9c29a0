"""On the Free plan the Worker's webhook stores the order and the cron pass sends it.

A webhook's accept and its ``waitUntil`` send together measured over the Free plan's 10 ms of CPU in the Worker
(docs/PERFORMANCE.md); the accept alone fits. So where the plan limits the CPU (the Worker, ``cpu_limited``) and
``RELAY_PLAN`` is ``free``, the webhook and the thank-you post send nothing themselves and the next cron pass
sends the stored row, once. Paid, and CPython's ``relay serve``, send at once as before. Real SQLite, real HTTP to
the loopback fakes, the shared signed fixture through ``relay.web.routes.handle`` as ``src/entry.py`` runs it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import shop_env
from relay.jobs import cron, limits, runtime
from relay.jobs.limits import STAGED_SEND_PASS_CALLS
from relay_tools.edges import FolderBlobs, HttpxClient
from test_backfill import Counted
from worker_webhook import NOW, cache_currency, deliver, loopback


@dataclass
class Outcome:
    after_webhook: int          # Meta's events after the webhook's invocation
    after_pass: int             # and after the next cron pass
    after_second: int           # and after one more pass
    status: int                 # the webhook's answer
    state: str                  # the row after the passes
    calls: Counter[str]         # the first cron pass's subrequests, counted at the ports


def scenario(tmp_path: Path, plan: str, cpu_limited: bool) -> tuple[int, int, int, str]:
    """Meta's events after the webhook's invocation, after the next cron pass, the answer's status, the row."""
    o = webhook_then_cron(tmp_path, plan, cpu_limited)
    return o.after_webhook, o.after_pass, o.status, o.state


def webhook_then_cron(tmp_path: Path, plan: str, cpu_limited: bool) -> Outcome:
    with loopback(tmp_path) as (meta, lightspeed, sqlite):
        cache_currency(sqlite)
        db, blobs = Counted(sqlite), Counted(FolderBlobs(tmp_path / "logs"))
        env = shop_env(meta, lightspeed, RELAY_PLAN=plan)

        def count() -> Counter[str]:
            return Counter(d1=db.calls, r2=blobs.calls, meta=len(meta.requests), lightspeed=len(lightspeed.requests))

        async def run() -> Outcome:
            http = HttpxClient()
            rt = runtime.Runtime(env=env, db=db, http=http, blobs=blobs,
                                 clock=lambda: float(NOW), random=lambda: 0.5, cpu_limited=cpu_limited)
            response = await deliver(rt)
            after_webhook = len(meta.events())
            before = count()
            await cron.run_pass(rt, limits=limits.load_limits(env, cpu_limited=True), sleep=asyncio.sleep)
            calls = count() - before
            after_pass = len(meta.events())
            await cron.run_pass(rt, limits=limits.load_limits(env, cpu_limited=True), sleep=asyncio.sleep)
            await http.aclose()
            state = sqlite.conn.execute("SELECT state FROM outbox").fetchone()[0]
            return Outcome(after_webhook, after_pass, len(meta.events()), response.status, state, calls)

        return asyncio.run(run())


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


def test_a_free_cron_pass_sending_a_stored_webhook_order_makes_three_subrequests_and_sends_it_once(tmp_path):
    """The pass's start claims the order in its own D1 call (relay.jobs.send_ahead); then Meta, and the finish (with
    the shop's turn and the pass's log lines, staged: relay.outbox.log_spool). The webhook carried the order's lines:
    no products.json. Before: five (the claim was a call of its own), then four (the log object was an R2 put)."""
    o = webhook_then_cron(tmp_path, "free", cpu_limited=True)
    assert (o.after_webhook, o.after_pass, o.after_second, o.state) == (0, 1, 1, "sent"), "sent by the pass, once"
    assert o.calls == Counter(d1=2, meta=1), o.calls
    assert o.calls.total() == STAGED_SEND_PASS_CALLS - 1, "the pass's planned calls less the lines it did not need"
