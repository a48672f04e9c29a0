"""The claim a free pass's start makes (``relay.outbox.claim_ahead``) picks the shop the send round would.

The statement decides in SQL what ``relay.jobs.send_round.plan`` decides in Python on a free pass: which shop's
event goes out (the least recently served with an event due, then the smaller backlog, then the name; skipping a
shop held under its token, one waiting out Lightspeed's limit with lines to fetch, one out of Meta requests this
minute, one whose currency is a day old) and nothing while a hold names another token (the pass lifts it first).
Here both decide on the same generated ledgers, a few hundred of them, on real SQLite: the statement on one copy,
the pass's own turns and plan on another. A start that expires rows for other shops adds their lines to the
claimed event's finish, which stages them: no log object the claim was not planned with.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

from conftest import FIXTURE_NOW, shop_env
from relay.core.capi import EXPIRE_MARGIN, WINDOW
from relay.core.config import load_shop, scan_shops
from relay.core.cpu_model import MODEL
from relay.core.order import parse_order
from relay.jobs import intake, limits, runtime
from relay.jobs.cron_pass import Pass
from relay.jobs.currency import MAX_AGE
from relay.jobs.limits import ROUND_COST
from relay.jobs.send_ahead import claim_ahead
from relay.jobs.send_round import plan, release
from relay.outbox.ledger import Ledger
from relay_tools.sqlite import SqliteDatabase
from test_backfill import LINES, PAID, harness, listed
from test_plans import free_env

__all__ = ["harness"]      # the fixture, shared with test_backfill

NOW = FIXTURE_NOW
NAMES = ("vik", "atelier", "kiss", "noord")
FREE = limits.for_plan(limits.FREE)


def env() -> dict[str, str]:
    out = {"META_GRAPH_URL": "http://127.0.0.1:9", "LIGHTSPEED_API_URL": "http://127.0.0.1:9"}
    for i, name in enumerate(NAMES):
        p = name.upper()
        out.update({f"{p}_LIGHTSPEED_API_KEY": f"{name}-key", f"{p}_LIGHTSPEED_API_SECRET": f"{name}-secret",
                    f"{p}_LIGHTSPEED_SHOP_ID": str(318842 + i), f"{p}_META_ACCESS_TOKEN": f"EAA{name}-token",
                    f"{p}_META_PIXEL_ID": f"98765432101234{i}"})
    return out


def ledger(conn: sqlite3.Connection, rng: random.Random, fingerprints: dict[str, str]) -> None:
    """A random ledger: rows in every open state for the four shops and one no longer configured, and each
    shop's turn (served, rate-limited, Meta's count this minute) and state (currency, hold) drawn at random."""
    window = NOW // 60 * 60
    order_id = 1
    for name in (*NAMES, "gone"):
        for _ in range(rng.choice((0, 0, 1, 2, 3))):
            state, at = rng.choice((("due", NOW - 5), ("due", NOW + 60), ("retry", NOW - 1), ("retry", NOW + 600),
                                     ("sending", None), ("sent", None)))
            lease = rng.choice((NOW - 1, NOW + 60)) if state == "sending" else None
            event_time = NOW - rng.randrange(60, 86400)
            conn.execute(
                "INSERT INTO outbox (shop, order_id, event_name, order_number, event_id, event_time, state, "
                "payment_status, payload, needs_lines, source, next_attempt_at, lease_token, lease_until, "
                "created_at, updated_at) "
                "VALUES (?, ?, 'Purchase', ?, ?, ?, ?, 'paid', '{}', ?, 'listing', ?, ?, ?, ?, ?)",
                (name, order_id, f"N{order_id}", f"purchase_N{order_id}", event_time, state, rng.random() < 0.5,
                 at, "t" if lease else None, lease, NOW, NOW))
            order_id += 1
        if rng.random() < 0.8:
            conn.execute(
                "INSERT INTO backfill (shop, rate_limited_until, served_at, meta_window, meta_requests, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, rng.choice((None, NOW - 5, NOW + 30)), rng.choice((None, None, NOW - 300, NOW - 120, NOW - 120)),
                 rng.choice((None, window, window - 60)), rng.choice((0, 3, 59, 60, 75)), NOW))
        if rng.random() < 0.85:
            fingerprint = fingerprints.get(name, "x")
            held = rng.random() < 0.3
            conn.execute(
                "INSERT INTO shops (shop, currency, currency_at, held_until, held_token, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, rng.choice(("EUR", "EUR", "EUR", "", None)), rng.choice((NOW - 60, NOW - MAX_AGE + 5,
                                                                              NOW - MAX_AGE, None)),
                 rng.choice((NOW - 10, NOW, NOW + 600)) if held else None,
                 (fingerprint if rng.random() < 0.8 else "another-token") if held else None, NOW))


async def python_pick(db: SqliteDatabase, e: dict[str, str]) -> str | None:
    """What the pass decides without the claim ahead: its start, its turns, the holds it lifts, its plan."""
    rt = runtime.Runtime(env=e, db=db, http=None, clock=lambda: float(NOW), cpu_limited=True)   # type: ignore[arg-type]
    work = Pass(rt, FREE, asyncio.sleep, listing=True)
    shops, _ = scan_shops(e)
    start = await work.ledger.start_pass(NOW)
    order = work.shop_turns(shops, start, None, NOW)
    for s in order:
        if s.state.held_until is not None and not s.held and work.room() > ROUND_COST:
            await release(work, s)
    planned = plan(work, order) or plan(work, order, hard=True)
    return planned[0][0].shop.name if planned else None


async def sql_pick(db: SqliteDatabase, e: dict[str, str]) -> tuple[str | None, bool]:
    """What the start's claim takes; and whether the pass would make it (``claim_ahead`` says so before)."""
    rt = runtime.Runtime(env=e, db=db, http=None, clock=lambda: float(NOW), cpu_limited=True)   # type: ignore[arg-type]
    work = Pass(rt, FREE, asyncio.sleep, listing=True)
    shops, _ = scan_shops(e)
    ahead = claim_ahead(work, shops, NOW)
    assert ahead is not None, "the shipped model holds one event a pass: the start claims it"
    start = await work.ledger.start_pass(NOW, (), ahead)
    return (start.claimed.shop if start.claimed else None), start.claimed is not None


def test_the_start_claims_for_the_shop_the_send_round_would_serve(tmp_path: Path):
    e = env()
    shops, _ = scan_shops(e)
    fingerprints = {s.name: s.meta_token.fingerprint() for s in shops}
    picks: dict[str | None, int] = {}
    empty = SqliteDatabase(tmp_path / "empty.db")
    empty.migrate()
    for seed in range(300):
        rng = random.Random(seed)
        ours, theirs = SqliteDatabase(tmp_path / f"{seed}-sql.db"), SqliteDatabase(tmp_path / f"{seed}-py.db")
        empty.conn.backup(ours.conn)
        ledger(ours.conn, rng, fingerprints)
        ours.conn.commit()
        ours.conn.backup(theirs.conn)
        other_token = any(r[0] in fingerprints and r[1] != fingerprints[r[0]] for r in theirs.conn.execute(
            "SELECT shop, held_token FROM shops WHERE held_until IS NOT NULL"))
        expected = None if other_token else asyncio.run(python_pick(theirs, e))
        got, _ = asyncio.run(sql_pick(ours, e))
        assert got == expected, (seed, got, expected)
        picks[got] = picks.get(got, 0) + 1
        ours.close()
        theirs.close()
    empty.close()
    assert len(picks) == len(NAMES) + 1 and min(picks.values()) >= 5, picks    # every outcome, often enough


def test_lines_the_start_adds_ride_in_the_claimed_events_finish_and_it_is_sent(harness, env, meta, lightspeed,
                                                                             clock):
    """Two other shops' rows leave Meta's window in the same start: their decision lines were two log objects more
    than the claim was planned with, and the event no longer fitted 10 ms (it waited out its lease). Now a free pass
    stages every line it holds in its finish (relay.outbox.log_spool): no log object, and the event goes out."""
    h, now = harness, int(clock.now)
    free_env(env)
    for i, name in enumerate(("ATELIER", "KISS")):
        env.update(shop_env(meta, lightspeed, name))
        env[f"{name}_LIGHTSPEED_API_KEY"], env[f"{name}_META_PIXEL_ID"] = f"{name}-key", f"11122233344455{i}"
    vik = load_shop(env, "vik")
    row = intake.row_for(parse_order(listed(PAID, 900_001, now - 3600)), vik, now, "backfill")
    lightspeed.products[900_001] = LINES
    asyncio.run(Ledger(h.sqlite).record(row, now))
    for n, name in enumerate(("atelier", "kiss")):
        h.sqlite.conn.execute(
            "INSERT INTO outbox (shop, order_id, event_name, order_number, event_id, event_time, state, "
            "payment_status, payload, source, next_attempt_at, created_at, updated_at) "
            "VALUES (?, ?, 'Purchase', ?, ?, ?, 'due', 'paid', '{}', 'listing', ?, ?, ?)",
            (name, 910_000 + n, f"OLD{n}", f"purchase_OLD{n}", now - (WINDOW - EXPIRE_MARGIN) - 5, now, now, now))
    h.sqlite.conn.execute("INSERT INTO shops (shop, currency, currency_at, updated_at) VALUES ('vik', 'EUR', ?, ?)",
                          (now, now))
    h.sqlite.conn.commit()
    before = (h._count(), h.blobs.calls)
    h.run(lambda: h.one_pass(limits=FREE))
    first, puts = h._count() - before[0], h.blobs.calls - before[1]
    assert [e["event_id"] for e in meta.events()] == [row.event_id] and h.rows()[900_001]["state"] == "sent"
    assert (first, puts) == (4, 0) and MODEL.cost(subrequests=first, events=1) <= 10.0, \
        "the start, products.json, Meta, the finish"
    assert {r["state"] for o, r in h.rows().items() if o != 900_001} == {"expired"}
    staged = dict(h.sqlite.conn.execute("SELECT shop, body FROM log_spool").fetchall())
    assert sorted(staged) == ["atelier", "kiss", "vik"] and all('"expired"' in staged[n] for n in ("atelier", "kiss"))
