"""A cron invocation with nothing to do makes as few D1 calls as it can (issue 19): the jobs' reads ride in a call
that goes out anyway (``relay.outbox.read_ahead``). Free plan: one D1 call, the pass's start, which carries the
daily checks' and the alerts' reads; the checks still run when due and see what the last one stored. Paid plan:
the jobs' reads in one call before the pass, then the pass's start. Real SQLite, real HTTP to the loopback fakes,
D1 calls counted at the database (``Counted``), not by the relay's own meter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from relay.jobs import cron, limits, quality, schedule
from relay.outbox.budget import Meter
from relay.outbox.read_ahead import ReadAhead
from relay_tools.fakes import FakeReceiver
from relay_tools.sqlite import SqliteDatabase
from test_backfill import Counted, Harness, harness
from test_plans import free_env

__all__ = ["harness"]      # the fixture, shared with test_backfill


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    with FakeReceiver() as fake:
        yield fake


def invocations(h: Harness, meta: Any, clock: Any, n: int) -> list[tuple[int, int, int]]:
    """``n`` Worker cron invocations two minutes apart: (turns of the pass, D1 calls, Dataset Quality checks) each."""
    seen: list[tuple[int, int, int]] = []

    async def scenario() -> None:
        for _ in range(n):
            calls, checks = h.db.calls, len(meta.quality_requests)
            report = await cron.scheduled(h.runtime(), before=schedule.before_pass(), sleep=h.sleep)
            seen.append((report.turns, h.db.calls - calls, len(meta.quality_requests) - checks))
            clock.advance(120)

    h.run(scenario)
    return seen


def test_an_idle_free_run_is_one_d1_call_and_still_runs_the_daily_checks_when_due(harness, env, meta, receiver,
                                                                                   clock):
    h = harness
    free_env(env)
    env["ALERT_WEBHOOK_URL"] = f"{receiver.url}/hooks/relay"
    assert limits.load_limits(env, cpu_limited=True).plan == "free"
    plan = limits.load_limits(env, cpu_limited=True)
    assert schedule.per_run(plan, schedule.QUALITY_CALLS, quality.PIXELS_PER_RUN) == 1

    first = invocations(h, meta, clock, 8)
    assert first[0][0] > 0, "the first run lists (an empty page)"
    assert all(checks == 0 for turns, _, checks in first if turns), "no jobs after a pass that did something"
    idle = [(calls, checks) for turns, calls, checks in first if not turns]
    # the checking run: its start (with the jobs' reads), the check's write, then the alerts' own read (a job after
    # one that wrote does not trust what was read before the write); then the stored check, read in the start
    assert idle[0] == (3, 1)
    assert len(idle) >= 3 and set(idle[1:]) == {(1, 0)}, "idle runs: one D1 call, the check not run again"
    assert receiver.messages == []
    checked = h.sqlite.conn.execute("SELECT checked_at FROM dataset_quality").fetchone()[0]

    clock.advance(quality.CHECK_EVERY)
    later = [(calls, checks) for turns, calls, checks in invocations(h, meta, clock, 8) if not turns]
    assert later[0] == (3, 1) and set(later[1:]) == {(1, 0)}, "a day later the check runs again, once"
    assert h.sqlite.conn.execute("SELECT checked_at FROM dataset_quality").fetchone()[0] > checked


def test_an_idle_paid_run_reads_for_its_jobs_in_one_call_before_the_pass(harness, env, meta, receiver, clock):
    """Paid: the jobs run before the pass (the pass must see a hold the token check sets); their reads (the stored
    checks, the alerts' conditions) are one call, then the pass's start."""
    h = harness
    env["ALERT_WEBHOOK_URL"] = f"{receiver.url}/hooks/relay"
    assert limits.load_limits(env, cpu_limited=True).plan == "paid"
    runs = invocations(h, meta, clock, 8)
    assert len(meta.debug_requests) == 1 and len(meta.quality_requests) == 1
    assert {calls for turns, calls, _ in runs[1:] if not turns} == {2}


def test_a_read_ahead_answers_its_statements_once_and_nothing_after_a_call_to_the_database(tmp_path):
    """What was read ahead is only as fresh as the call that read it: a statement asked twice goes to the database
    the second time, and after any call that reaches the database (a write, say) every statement goes there, so a
    job sees what an earlier one wrote. A meter inside counts only the calls that reach the database."""
    sqlite = SqliteDatabase(tmp_path / "relay.db")
    sqlite.migrate()
    counted = Counted(sqlite)
    meter = Meter(None)
    health = ("SELECT shop FROM shop_health", ())
    pixels = ("SELECT pixel_id FROM dataset_quality WHERE checked_at >= ?", (0,))
    write = ("INSERT INTO dataset_quality (pixel_id, shop, checked_at, token_fingerprint, state) "
             "VALUES ('1234', 'vik', 1, 'f', 'ok')", ())

    async def scenario() -> list[tuple[list[Any], int, int]]:
        read = await counted.batch([health, pixels])
        db = ReadAhead(meter.database(counted), [(health, read[0]), (pixels, read[1])])
        seen = []
        for statements in ([health], [health], [write], [pixels]):
            before = counted.calls
            results = await db.batch(statements) if len(statements) > 1 else [await db.run(*statements[0])]
            seen.append(([r.rows for r in results], counted.calls - before, meter.used))
        return seen

    try:
        ahead, again, wrote, after = asyncio.run(scenario())
    finally:
        sqlite.close()
    assert ahead == ([[]], 0, 0), "answered from what was read: no call, none counted"
    assert again == ([[]], 1, 1), "asked a second time: the database"
    assert wrote[1:] == (1, 2)
    assert after == ([[{"pixel_id": "1234"}]], 1, 3), "after a write: the database, which has the new row"
