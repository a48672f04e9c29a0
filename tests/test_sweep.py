"""The retry sweep inside the cron pass: batches per pixel, bisection, backoff, the 7-day line, held shops;
and ``relay backfill`` / ``relay replay`` as a user runs them."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from contextlib import closing
from typing import Any

import pytest

from conftest import SECRET, TOKEN, order_body, shop_env
from relay.core import capi
from relay.core.config import load_shop
from relay.core.order import parse_webhook
from relay.jobs import cron, delivery, intake, limits
from relay_tools import cli
from relay_tools.fakes import Reply
from test_backfill import DAY, LINES, PAID, UNPAID, Harness, list_requests, listed, sent_event_ids, stamp


@pytest.fixture
def harness(env, tmp_path, log_root, clock, meta, lightspeed):
    h = Harness(env, tmp_path, log_root, clock, [meta, lightspeed])
    yield h
    h.close()


def store(h: Harness, *orders: bytes, shop: str = "vik") -> None:
    """Orders in the ledger as the webhook path leaves them when the Worker died before sending."""
    async def record() -> None:
        rt = h.runtime()
        for body in orders:
            await intake.record_order(rt, load_shop(rt.env, shop), parse_webhook(body), "webhook")
    h.run(record)


def sweep(h: Harness) -> dict[str, delivery.SendReport]:
    return h.run(lambda: cron.sweep(h.runtime()))


def bodies(count: int, first_id: int = 800_000, **changes: Any) -> list[bytes]:
    return [order_body(id=first_id + i, number=f"B{i}", **changes) for i in range(count)]


def test_one_invalid_event_fails_alone_and_the_rest_of_its_batch_is_sent(harness, meta):
    store(harness, *bodies(10))
    meta.reject_event_ids.add("purchase_B6")

    report = sweep(harness)["vik"]

    rows = harness.rows()
    bad = rows[800_006]
    assert bad["state"] == "failed" and (bad["last_code"], bad["last_subcode"]) == (100, 2804050)
    assert "Insufficient customer information" in bad["last_error"]
    assert {r["state"] for k, r in rows.items() if k != 800_006} == {"sent"}
    assert report.sent == 9 and report.failed == 1
    assert len(meta.event_posts[0].json()["data"]) == 10, "one request for the pixel's whole batch"
    assert len(meta.event_posts) <= 1 + 2 * math.ceil(math.log2(10)), "bisection, not one request per event"
    ok = [p for p in meta.event_posts if "purchase_B6" not in {e["event_id"] for e in p.json()["data"]}]
    assert sorted(e["event_id"] for p in ok for e in p.json()["data"]) == sorted(
        f"purchase_B{i}" for i in range(10) if i != 6), "each good event went out in exactly one accepted request"


def test_bisection_stops_at_the_request_cap_and_puts_the_rest_back(harness, meta):
    store(harness, *bodies(10))
    meta.reject_event_ids.add("purchase_B6")

    async def capped() -> delivery.SendReport:
        rt = harness.runtime()
        return await delivery.send_due(rt, load_shop(rt.env, "vik"), limit=10, max_requests=2)

    report = harness.run(capped)
    assert (report.requests, report.sent, report.due) == (2, 5, 5)
    states = {k - 800_000: r["state"] for k, r in harness.rows().items()}
    assert states == {**dict.fromkeys(range(5), "sent"), **dict.fromkeys(range(5, 10), "due")}
    assert delivery.DEFERRED in harness.rows()[800_009]["last_error"]

    sweep(harness)
    assert {k - 800_000: r["state"] for k, r in harness.rows().items() if r["state"] != "sent"} == {6: "failed"}
    assert set(sent_event_ids(meta)) == {f"purchase_B{i}" for i in range(10)}


def test_batches_are_cut_at_the_configured_size(harness, meta):
    harness.env["RELAY_BATCH_SIZE"] = "100"
    store(harness, *bodies(250))
    sweep(harness)
    assert [len(p.json()["data"]) for p in meta.event_posts] == [100, 100, 50]
    assert len(sent_event_ids(meta)) == 250


def test_transient_failures_back_off_exponentially_with_jitter(harness, meta, clock):
    store(harness, order_body())
    meta.script.extend([Reply(503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"})] * 3)
    waits = []
    for _ in range(3):
        sweep(harness)
        row = harness.rows()[384271665]
        assert row["state"] == "retry"
        waits.append(row["next_attempt_at"] - clock.now)
        sweep(harness)                                   # not due yet: nothing is sent
        clock.advance(waits[-1])
    assert waits == [45, 90, 180], "60 s doubling, jitter 0.5 of the upper half (the harness's random)"
    assert [capi.backoff(1, r) for r in (0.0, 1.0)] == [30.0, 60.0]
    sweep(harness)
    assert harness.rows()[384271665]["state"] == "sent" and len(meta.event_posts) == 4


def test_a_row_about_to_cross_the_7_day_line_is_expired_before_it_can_poison_a_batch(harness, meta, clock):
    created = clock.now - 7 * DAY + 30 * 60          # 30 minutes left in Meta's window
    fresh = order_body(id=810_001, number="FRESH")
    store(harness, order_body(id=810_000, number="OLD", createdAt=stamp(created), updatedAt=stamp(created)), fresh)
    meta.script.append(Reply(503, b"down", {"Content-Type": "text/plain"}))
    sweep(harness)                                    # Meta is down: both wait for a retry
    assert {r["state"] for r in harness.rows().values()} == {"retry"}

    clock.advance(20 * 60)                            # 10 minutes left: inside the safety margin
    sweep(harness)

    old = harness.rows()[810_000]
    assert old["state"] == "expired" and "7-day" in old["last_error"]
    assert harness.rows()[810_001]["state"] == "sent"
    last = meta.event_posts[-1].json()["data"]
    assert [e["event_id"] for e in last] == ["purchase_FRESH"], "the stale event never joins a request again"


def test_a_shop_whose_token_is_refused_is_held_not_dropped_and_others_go_on(harness, env, meta, lightspeed, clock):
    env.update(shop_env(meta, lightspeed, "ATELIER"))
    env.update(ATELIER_LIGHTSPEED_API_KEY="atelier-key", ATELIER_META_PIXEL_ID="111222333444555",
               ATELIER_META_ACCESS_TOKEN="EAAatelier-token")
    atelier = lightspeed.add_account("atelier-key", SECRET)
    atelier.append(listed(PAID, 820_000, clock.now - DAY))
    lightspeed.orders.extend(listed(PAID, 821_000 + i, clock.now - DAY + i * 60) for i in range(3))
    for order in [*atelier, *lightspeed.orders]:
        lightspeed.products[order["id"]] = LINES
    meta.valid_tokens = {"EAAatelier-token"}

    first = harness.run(harness.until_done)

    assert first.shops["vik"].held and not first.shops["atelier"].held
    assert harness.rows()[820_000]["state"] == "sent" and len(meta.event_posts) == 2
    vik_rows = [r for r in harness.rows().values() if r["shop"] == "vik"]
    assert len(vik_rows) == 3 and {(r["state"], r["last_code"]) for r in vik_rows} == {("retry", 190)}, \
        "listed and kept, not dropped"
    assert first.shops["vik"].listing == "complete"

    clock.advance(600)
    harness.run(harness.one_pass)
    assert len(meta.event_posts) == 2, "a held shop is not tried again on every run"

    env["VIK_META_ACCESS_TOKEN"] = "EAAnew-token"
    meta.valid_tokens.add("EAAnew-token")
    harness.run(harness.until_done)
    assert {r["state"] for r in harness.rows().values()} == {"sent"}
    assert meta.event_posts[-1].json()["access_token"] == "EAAnew-token"
    assert TOKEN not in json.dumps([r["payload"] for r in harness.rows().values()])


def write_env(tmp_path, env: dict[str, str]) -> str:
    path = tmp_path / ".env.local"
    path.write_text("\n".join(f"{k}={v}" for k, v in env.items()) + "\n")
    return str(path)


def test_relay_backfill_and_replay_from_the_command_line(tmp_path, env, meta, lightspeed, capsys):
    now = time.time()                                   # the CLI runs on the real clock
    orders = [listed(PAID if i % 3 else UNPAID, 830_000 + i, now - DAY + i * 60) for i in range(12)]
    lightspeed.orders.extend(orders)
    for order in orders:
        lightspeed.products[order["id"]] = LINES
    meta.reject_event_ids.add("purchase_ORD830001")
    options = ["--env-file", write_env(tmp_path, env), "--db", str(tmp_path / "relay.db"),
               "--logs", str(tmp_path / "logs")]

    assert cli.main(["backfill", *options]) == 0
    out, err = capsys.readouterr()
    assert "100%" in err and "pass 1" in err
    assert ("vik: 12 orders seen (1 page(s)); sent 7, waiting 4 (not paid yet), expired 0, failed 1, "
            "skipped 0 (cancelled)") in out
    assert "API calls used:" in out and "lightspeed" in out and "meta" in out

    meta.reject_event_ids.clear()                      # e.g. the shop fixed the customer's data
    posts = len(meta.event_posts)
    assert cli.main(["replay", "--shop", "vik", "--state", "failed", *options]) == 0
    assert "re-queued 1 event(s); sent 1, failed 0" in capsys.readouterr().out
    assert [e["event_id"] for p in meta.event_posts[posts:] for e in p.json()["data"]] == ["purchase_ORD830001"]

    assert cli.main(["replay", "--shop", "vik", "--order", "830000", *options]) == 2
    assert "not paid yet" in capsys.readouterr().err
    assert cli.main(["replay", "--shop", "vik", "--order", "830002", *options]) == 0
    assert [e["event_id"] for e in meta.event_posts[-1].json()["data"]] == ["purchase_ORD830002"]  # sent again

    assert cli.main(["backfill", "--shop", "nope", *options]) == 2
    assert "no shop 'nope' is configured" in capsys.readouterr().err


def test_replay_leaves_what_meta_would_refuse(tmp_path, env, meta, lightspeed, capsys):
    now = time.time()
    lightspeed.orders.append(listed(PAID, 840_000, now - DAY))
    lightspeed.products[840_000] = LINES
    meta.reject_event_ids.add("purchase_ORD840000")
    db = tmp_path / "relay.db"
    options = ["--env-file", write_env(tmp_path, env), "--db", str(db), "--logs", str(tmp_path / "logs")]
    assert cli.main(["backfill", "--since", "2025-11-01", *options]) == 0
    assert "failed 1" in capsys.readouterr().out
    assert list_requests(lightspeed)[0]["updated_at_min"] == "2025-10-31 12:00:00"   # less 12 h: zone unknown

    with closing(sqlite3.connect(db)) as conn:        # six days later: the order is 7 days old
        conn.execute("UPDATE outbox SET event_time = event_time - 6 * 86400 WHERE order_id = 840000")
        conn.commit()
    meta.reject_event_ids.clear()
    assert cli.main(["replay", "--shop", "vik", "--order", "840000", *options]) == 1
    out = capsys.readouterr().out
    assert "outside Meta's 7-day window" in out and "nothing to replay" in out
    assert len(meta.event_posts) == 1


@pytest.mark.parametrize("value", ["yesterday", "2025-13-01"])
def test_since_must_be_an_iso_time(value, capsys):
    with pytest.raises(SystemExit):
        cli.main(["backfill", "--since", value])
    assert "is not an ISO date or time" in capsys.readouterr().err


def test_the_default_budget_is_the_free_plan(env):
    for name in ("RELAY_PLAN", "RELAY_SUBREQUEST_BUDGET"):
        del env[name]
    free = limits.load_limits(env, cpu_limited=True)
    assert (free.plan, free.budget, free.d1_budget, free.cpu_ms) == ("free", 50, 50, 10.0)
